/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "uffd.h"

static int fd_link(int fd, char *buf, size_t size) {
        char path[64];
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, buf, size - 1);
        if (n < 0)
                return errno == ENOENT ? -EBADF : -errno;
        buf[n] = 0;
        return 0;
}

int uffd_check(int fd) {
        char link[64];
        int flags, r;

        r = fd_link(fd, link, sizeof(link));
        if (r < 0)
                return r;
        if (strcmp(link, "anon_inode:[userfaultfd]") != 0)
                return -ENOTTY;
        r = uffd_probe_dead(fd);
        if (r == -EINVAL)
                return -EBADFD; /* the kernel refuses every ioctl but UFFDIO_API */
        if (r < 0)
                return r;
        /* A blocking read would stall every VM's faults behind this one. */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return -errno;
        if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

/* One page of ours that can never be read: the source of the probe. */
static void *unreadable_page(void) {
        static void *page = NULL;

        if (!page) {
                void *p = mmap(NULL, (size_t) sysconf(_SC_PAGESIZE), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        return NULL;
                page = p;
        }
        return page;
}

int uffd_probe_dead(int fd) {
        long page = sysconf(_SC_PAGESIZE);
        void *src = unreadable_page();
        /* Any page-aligned address above mmap_min_addr will do: if the
         * process has a missing page there, the copy from src faults and
         * nothing is installed; otherwise ENOENT or EEXIST. */
        struct uffdio_copy copy = {
                .dst = UINT64_C(1) << 30,
                .len = (uint64_t) page,
        };

        if (!src)
                return -ENOMEM;
        copy.src = (uint64_t) (uintptr_t) src;
        if (ioctl(fd, UFFDIO_COPY, &copy) == 0)
                return -EIO; /* cannot happen: src is unreadable */
        if (errno == ESRCH)
                return 1;
        if (errno == ENOENT || errno == EEXIST || errno == EFAULT || errno == EAGAIN)
                return 0;
        return -errno;
}

bool uffd_entry_is_dead(const struct uffd_entry *e, void *userdata) {
        return e->dead || uffd_probe_dead(e->fd) == 1;
}

int uffd_zeropage(int fd, uint64_t start, uint64_t len) {
        struct uffdio_zeropage z = { .range = { .start = start, .len = len } };

        return ioctl(fd, UFFDIO_ZEROPAGE, &z) < 0 ? -errno : 0;
}

int uffd_wake(int fd, uint64_t start, uint64_t len) {
        struct uffdio_range range = { .start = start, .len = len };

        return ioctl(fd, UFFDIO_WAKE, &range) < 0 ? -errno : 0;
}

int uffd_serve(int fd, uint64_t *served) {
        return uffd_serve_with(fd, 0, served, NULL, NULL);
}

int uffd_serve_with(int fd, uint32_t index, uint64_t *served, uffd_fault_handler_t handler, void *userdata) {
        static unsigned failures = 0;
        uint64_t page = (uint64_t) sysconf(_SC_PAGESIZE);
        struct uffd_msg msgs[16];
        int rounds = 16;

        while (rounds-- > 0) {
                ssize_t n = read(fd, msgs, sizeof(msgs));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                if (n == 0 || (size_t) n % sizeof(msgs[0]) != 0)
                        return -EBADMSG;

                for (size_t i = 0; i < (size_t) n / sizeof(msgs[0]); i++) {
                        uint64_t addr;
                        int r;

                        /* A process that asked for fork events would hand us a
                         * new uffd per fork: never keep one. */
                        if (msgs[i].event == UFFD_EVENT_FORK)
                                safe_close((int) msgs[i].arg.fork.ufd);
                        if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
                                continue;
                        if (handler) {
                                r = handler(fd, index, &msgs[i], userdata);
                                if (r == -ESRCH)
                                        return r;
                                if (r == 0)
                                        (*served)++;
                                continue;
                        }
                        addr = msgs[i].arg.pagefault.address & ~(page - 1);
                        r = uffd_zeropage(fd, addr, page);
                        if (r == -ESRCH)
                                return r;
                        if (r == 0) {
                                (*served)++;
                                continue;
                        }
                        /* EEXIST: another process's uffd filled the shared
                         * page first; anything else: let the thread retry. */
                        if (r != -EEXIST && failures++ < 16)
                                log_warning_errno(r, "Failed to fill page 0x%" PRIx64 " of a faulting process: %m", addr);
                        r = uffd_wake(fd, addr, page);
                        if (r == -ESRCH)
                                return r;
                        if (r == 0)
                                (*served)++;
                }
        }
        return 0;
}

int pidfd_get_pid(int pidfd, pid_t *ret) {
        char path[64], buf[1024];
        _cleanup_close_ int fd = -1;
        const char *p;
        ssize_t n;
        long pid;

        if (pidfd < 0)
                return -EBADF;
        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -EBADF : -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        if (strncmp(buf, "Pid:", 4) == 0)
                p = buf;
        else {
                p = strstr(buf, "\nPid:");
                if (!p)
                        return -EBADF;
                p++;
        }
        if (sscanf(p + 4, " %ld", &pid) != 1)
                return -EBADF;
        if (pid == -1)
                return -ESRCH; /* exited and reaped */
        if (pid <= 0)
                return -EREMOTE; /* 0: in a pid namespace we cannot see */
        *ret = (pid_t) pid;
        return 0;
}
