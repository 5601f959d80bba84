/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A plugin that ends each way test-plugin-spawn checks, run jailed by
 * devmgr as a real plugin is (plain libc, dynamically linked):
 *   exit N   writes a line to stderr and exits N
 *   segv     dies of SIGSEGV
 *   ptrace   calls ptrace(), which no plugin may
 *   uname    calls uname() (allowed only as an extra system call), exits 0
 *   hang     ignores SIGTERM and waits forever
 *   term     exits 0 from a SIGTERM handler
 *   files P  reports what it inherited: $POLYVM_PLUGIN_FILES, what each of
 *            those fds reads and that it cannot write it, that the fd after
 *            them is closed, and that it cannot open P by its path; exits 0
 * hang and term send "ready" on $POLYVM_PLUGIN_FD once set up. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <poll.h>
#include <unistd.h>

static void on_term(int sig) {
        static const char msg[] = "plugin-misbehave: SIGTERM, leaving\n";

        (void) write(STDERR_FILENO, msg, sizeof(msg) - 1);
        _exit(0);
}

static void ready_and_wait(void) {
        const char *fd = getenv("POLYVM_PLUGIN_FD");

        if (!fd || write(atoi(fd), "ready", 5) != 5)
                exit(2);
        for (;;)
                (void) poll(NULL, 0, -1);
}

static int report_files(const char *path) {
        const char *list = getenv("POLYVM_PLUGIN_FILES");
        char buf[256];
        int last = 3, fd;

        fprintf(stderr, "plugin-misbehave: POLYVM_PLUGIN_FILES=%s\n", list ?: "(unset)");
        for (const char *p = list; p && *p; p += strspn(p, ",")) {
                ssize_t n;

                fd = (int) strtol(p, (char **) &p, 10);
                n = pread(fd, buf, sizeof(buf) - 1, 0);
                if (n < 0) {
                        fprintf(stderr, "plugin-misbehave: fd %d: read: %s\n", fd, strerror(errno));
                        return 5;
                }
                buf[n] = 0;
                fprintf(stderr, "plugin-misbehave: fd %d reads '%s'\n", fd, buf);
                if (write(fd, "x", 1) >= 0)
                        fprintf(stderr, "plugin-misbehave: fd %d is writable\n", fd);
                else
                        fprintf(stderr, "plugin-misbehave: fd %d write: %s\n", fd, strerror(errno));
                last = fd;
        }
        fprintf(stderr, "plugin-misbehave: fd %d: %s\n", last + 1,
                fcntl(last + 1, F_GETFD) < 0 && errno == EBADF ? "closed" : "open");
        fd = open(path, O_RDONLY | O_CLOEXEC);
        fprintf(stderr, "plugin-misbehave: open %s: %s\n", path, fd < 0 ? strerror(errno) : "opened");
        return 0;
}

int main(int argc, char *argv[]) {
        struct utsname u;

        if (argc < 2)
                return 2;
        if (strcmp(argv[1], "exit") == 0 && argc > 2) {
                fprintf(stderr, "plugin-misbehave: exiting with %s\n", argv[2]);
                return atoi(argv[2]);
        }
        if (strcmp(argv[1], "segv") == 0) {
                volatile uintptr_t bad = 8; /* no page there */
                *(volatile int *) bad = 1;
                return 0;
        }
        if (strcmp(argv[1], "ptrace") == 0) {
                syscall(SYS_ptrace, 0, 0, 0, 0);
                return 0;
        }
        if (strcmp(argv[1], "uname") == 0)
                return uname(&u) == 0 ? 0 : 4;
        if (strcmp(argv[1], "files") == 0 && argc > 2)
                return report_files(argv[2]);
        if (strcmp(argv[1], "hang") == 0) {
                signal(SIGTERM, SIG_IGN);
                ready_and_wait();
        }
        if (strcmp(argv[1], "term") == 0) {
                signal(SIGTERM, on_term);
                ready_and_wait();
        }
        return 2;
}
