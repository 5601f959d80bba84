/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A plugin that ends each way test-plugin-spawn checks, run jailed by
 * devmgr as a real plugin is (plain libc, dynamically linked):
 *   exit N   writes a line to stderr and exits N
 *   segv     dies of SIGSEGV
 *   ptrace   calls ptrace(), which no plugin may
 *   uname    calls uname() (allowed only as an extra system call), exits 0
 *   hang     ignores SIGTERM and waits forever
 *   term     exits 0 from a SIGTERM handler
 * hang and term send "ready" on $POLYVM_PLUGIN_FD once set up. */
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
