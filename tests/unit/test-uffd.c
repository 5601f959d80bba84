/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memmgr's real userfaultfd operations on real uffds: what counts as a
 * uffd, death detection by ESRCH, serving a missing-page fault on a shared
 * memfd, and reading a pidfd's pid. User-mode-only uffds suffice here (the
 * faults come from user space), so this runs without privileges. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "uffd.h" /* before glib.h, whose MIN/MAX win */
#include <glib.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static int new_uffd(bool api) {
        int fd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
        g_assert_cmpint(fd, >=, 0);
        if (api) {
                struct uffdio_api a = { .api = UFFD_API };
                g_assert_cmpint(ioctl(fd, UFFDIO_API, &a), ==, 0);
        }
        return fd;
}

static int pidfd_open(pid_t pid) {
        return (int) syscall(SYS_pidfd_open, pid, 0);
}

/* A child that made an initialised uffd and waits; *ret_uffd is our copy. */
static pid_t spawn_uffd_child(int *ret_uffd) {
        int sv[2];
        pid_t pid;

        g_assert_cmpint(pipe2(sv, O_CLOEXEC), ==, 0);
        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                int fd = new_uffd(true);
                char c = 'x';
                (void) fd;
                if (write(sv[1], &c, 1) != 1)
                        _exit(1);
                pause();
                _exit(0);
        }
        char c;
        g_assert_cmpint(read(sv[0], &c, 1), ==, 1);
        close(sv[0]);
        close(sv[1]);

        /* Take the child's uffd: its highest fd. */
        int pidfd = pidfd_open(pid), fd = -1;
        g_assert_cmpint(pidfd, >=, 0);
        for (int n = 64; n >= 3 && fd < 0; n--) {
                char path[64], link[64] = "";
                g_snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, n);
                if (readlink(path, link, sizeof(link) - 1) > 0 && g_str_equal(link, "anon_inode:[userfaultfd]"))
                        fd = (int) syscall(SYS_pidfd_getfd, pidfd, n, 0);
        }
        g_assert_cmpint(fd, >=, 0);
        close(pidfd);
        *ret_uffd = fd;
        return pid;
}

static void test_check_accepts_initialised_uffd_and_makes_it_nonblocking(void) {
        int fd = new_uffd(true);

        g_assert_cmpint(fcntl(fd, F_GETFL) & O_NONBLOCK, ==, 0);
        g_assert_cmpint(uffd_check(fd), ==, 0);
        g_assert_cmpint(fcntl(fd, F_GETFL) & O_NONBLOCK, ==, O_NONBLOCK);
        close(fd);
}

static void test_check_rejects_other_fds(void) {
        int efd = eventfd(0, EFD_CLOEXEC), memfd = memfd_create("x", MFD_CLOEXEC);

        g_assert_cmpint(uffd_check(efd), ==, -ENOTTY);
        g_assert_cmpint(uffd_check(memfd), ==, -ENOTTY);
        g_assert_cmpint(uffd_check(-1), ==, -EBADF);
        close(efd);
        close(memfd);
        g_assert_cmpint(uffd_check(efd), ==, -EBADF);
}

static void test_check_rejects_uffd_without_api(void) {
        int fd = new_uffd(false);

        g_assert_cmpint(uffd_check(fd), ==, -EBADFD);
        close(fd);
}

static void test_probe_tells_live_from_dead_process(void) {
        struct uffd_entry e = { .dead = false };
        int fd, status;
        pid_t pid;

        pid = spawn_uffd_child(&fd);
        e.fd = fd;
        g_assert_cmpint(uffd_probe_dead(fd), ==, 0);
        g_assert_false(uffd_entry_is_dead(&e, NULL));
        /* Our own uffd: alive. */
        int own = new_uffd(true);
        g_assert_cmpint(uffd_probe_dead(own), ==, 0);
        close(own);

        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_cmpint(uffd_probe_dead(fd), ==, 1);
        g_assert_true(uffd_entry_is_dead(&e, NULL));
        close(fd);
}

static void test_entry_marked_dead_is_dead_without_probe(void) {
        struct uffd_entry e = { .fd = eventfd(0, EFD_CLOEXEC), .dead = true };

        g_assert_true(uffd_entry_is_dead(&e, NULL));
        e.dead = false;
        /* An eventfd refuses the ioctl: not a death. */
        g_assert_false(uffd_entry_is_dead(&e, NULL));
        close(e.fd);
}

struct toucher {
        volatile unsigned char *p;
        unsigned char seen;
};

static void *touch(void *arg) {
        struct toucher *t = arg;
        t->seen = t->p[123];
        return NULL;
}

/* Registers MISSING on a shared mapping of a fresh memfd page. */
static void *map_registered(int uffd, int memfd, size_t len) {
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        struct uffdio_register reg = {
                .range = { .start = (uintptr_t) p, .len = len },
                .mode = UFFDIO_REGISTER_MODE_MISSING,
        };
        g_assert_true(p != MAP_FAILED);
        g_assert_cmpint(ioctl(uffd, UFFDIO_REGISTER, &reg), ==, 0);
        return p;
}

static void wait_readable(int fd) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        g_assert_cmpint(poll(&pfd, 1, 5000), ==, 1);
}

static void test_serve_answers_missing_fault_with_zero_page(void) {
        size_t page = (size_t) sysconf(_SC_PAGESIZE);
        int uffd = new_uffd(true), memfd = memfd_create("guest", MFD_CLOEXEC);
        struct toucher t = { .seen = 0xff };
        uint64_t served = 0;
        pthread_t thread;

        g_assert_cmpint(ftruncate(memfd, (off_t) page), ==, 0);
        t.p = map_registered(uffd, memfd, page);
        g_assert_cmpint(uffd_check(uffd), ==, 0);
        g_assert_cmpint(pthread_create(&thread, NULL, touch, &t), ==, 0);

        wait_readable(uffd);
        g_assert_cmpint(uffd_serve(uffd, &served), ==, 0);
        g_assert_cmpint(pthread_join(thread, NULL), ==, 0);
        g_assert_cmpuint(served, ==, 1);
        g_assert_cmpuint(t.seen, ==, 0);
        /* Nothing left to read: serve returns at once. */
        g_assert_cmpint(uffd_serve(uffd, &served), ==, 0);
        g_assert_cmpuint(served, ==, 1);
        munmap((void *) t.p, page);
        close(memfd);
        close(uffd);
}

static void test_serve_wakes_fault_whose_page_was_filled_elsewhere(void) {
        size_t page = (size_t) sysconf(_SC_PAGESIZE);
        int uffd = new_uffd(true), memfd = memfd_create("guest", MFD_CLOEXEC);
        struct toucher t = { .seen = 0 };
        uint64_t served = 0;
        pthread_t thread;
        unsigned char *other;

        g_assert_cmpint(ftruncate(memfd, (off_t) page), ==, 0);
        t.p = map_registered(uffd, memfd, page);
        g_assert_cmpint(uffd_check(uffd), ==, 0);
        g_assert_cmpint(pthread_create(&thread, NULL, touch, &t), ==, 0);
        wait_readable(uffd);

        /* Another process's mapping (here: an unguarded one) fills the page
         * while the fault waits: serving must not overwrite it. */
        other = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        g_assert_true(other != MAP_FAILED);
        other[123] = 42;

        g_assert_cmpint(uffd_serve(uffd, &served), ==, 0);
        g_assert_cmpint(pthread_join(thread, NULL), ==, 0);
        g_assert_cmpuint(t.seen, ==, 42);
        g_assert_cmpuint(served, ==, 1);
        munmap(other, page);
        munmap((void *) t.p, page);
        close(memfd);
        close(uffd);
}

static void test_serve_of_dead_process_uffd_reads_nothing(void) {
        uint64_t served = 0;
        int fd, status;
        pid_t pid;

        pid = spawn_uffd_child(&fd);
        g_assert_cmpint(uffd_check(fd), ==, 0);
        kill(pid, SIGKILL);
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_cmpint(uffd_serve(fd, &served), ==, 0);
        g_assert_cmpuint(served, ==, 0);
        close(fd);
}

static void test_pidfd_get_pid(void) {
        int self = pidfd_open(getpid()), efd = eventfd(0, EFD_CLOEXEC), pidfd, status;
        pid_t pid = 0, child;

        g_assert_cmpint(pidfd_get_pid(self, &pid), ==, 0);
        g_assert_cmpint(pid, ==, getpid());
        g_assert_cmpint(pidfd_get_pid(efd, &pid), ==, -EBADF);
        g_assert_cmpint(pidfd_get_pid(-1, &pid), ==, -EBADF);

        child = fork();
        if (child == 0)
                _exit(0);
        pidfd = pidfd_open(child);
        g_assert_cmpint(pidfd, >=, 0);
        g_assert_cmpint(pidfd_get_pid(pidfd, &pid), ==, 0); /* a zombie still has its pid */
        g_assert_cmpint(pid, ==, child);
        g_assert_cmpint(waitpid(child, &status, 0), ==, child);
        g_assert_cmpint(pidfd_get_pid(pidfd, &pid), ==, -ESRCH);
        close(pidfd);
        close(self);
        close(efd);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/uffd/check-accepts-initialised-uffd-and-makes-it-nonblocking",
                        test_check_accepts_initialised_uffd_and_makes_it_nonblocking);
        g_test_add_func("/uffd/check-rejects-other-fds", test_check_rejects_other_fds);
        g_test_add_func("/uffd/check-rejects-uffd-without-api", test_check_rejects_uffd_without_api);
        g_test_add_func("/uffd/probe-tells-live-from-dead-process", test_probe_tells_live_from_dead_process);
        g_test_add_func("/uffd/entry-marked-dead-is-dead-without-probe", test_entry_marked_dead_is_dead_without_probe);
        g_test_add_func("/uffd/serve-answers-missing-fault-with-zero-page",
                        test_serve_answers_missing_fault_with_zero_page);
        g_test_add_func("/uffd/serve-wakes-fault-whose-page-was-filled-elsewhere",
                        test_serve_wakes_fault_whose_page_was_filled_elsewhere);
        g_test_add_func("/uffd/serve-of-dead-process-uffd-reads-nothing", test_serve_of_dead_process_uffd_reads_nothing);
        g_test_add_func("/uffd/pidfd-get-pid", test_pidfd_get_pid);
        return g_test_run();
}
