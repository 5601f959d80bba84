/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polyvm-plugin-pvh: boots a PVH ELF (polyvm-testguest.elf, installed to
 * $datadir/polyvm/) in a plugin VM. It creates the guest's RAM, loads the
 * ELF, writes the boot data and ACPI tables, sets up the vCPUs and emulates
 * COM1 (output to stdout, line-buffered) and the ACPI power-off register.
 *   {"plugin": {"path": "/usr/libexec/polyvm/polyvm-plugin-pvh",
 *               "args": ["/usr/share/polyvm/polyvm-testguest.elf", "256",
 *                        "--type=cpus", "--type=poweroff"]}, "vcpus": 2}
 * ELF is a path the plugin can open in its jail (under /usr), or fd:N for
 * an fd it inherited: an ELF anywhere else comes through the config's
 * "files": ["/var/lib/.../guest.elf"] as "fd:4". It exits 0 when the guest
 * powers off. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pvh-boot.h"
#include "pvh-plugin.h"

#define ELF_MAX_SIZE (256u << 20)

static void usage(FILE *f) {
        fprintf(f, "Usage: polyvm-plugin-pvh [--cmdline=TEXT] [--type=LINE]... ELF|fd:N MEMORY_MIB\n"
                   "  --cmdline=TEXT  the guest's command line (default: console=ttyS0)\n"
                   "  --type=LINE     type LINE on the serial at the next shell prompt (repeatable)\n");
}

static void on_sigterm(int sig) {
        (void) sig;
        _exit(0); /* a Stop from the launcher: the guest has nothing to save */
}

/* Reads the whole ELF from a path or an inherited fd ("fd:N"). */
static int read_elf(const char *name, uint8_t **ret, size_t *ret_size) {
        struct stat st;
        uint8_t *buf;
        size_t done = 0;
        int fd, r = 0;

        if (strncmp(name, "fd:", 3) == 0) {
                char *end;
                long v;

                errno = 0;
                v = strtol(name + 3, &end, 10);
                if (errno || *end || end == name + 3 || v < 0 || v > 1 << 20)
                        return -EBADF;
                fd = (int) v;
        } else {
                fd = open(name, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
        }
        if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = -EINVAL;
        else if ((uint64_t) st.st_size > ELF_MAX_SIZE)
                r = -EFBIG;
        if (r < 0) {
                close(fd);
                return r;
        }
        buf = malloc(st.st_size ? (size_t) st.st_size : 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        while (done < (size_t) st.st_size) {
                ssize_t k = pread(fd, buf + done, (size_t) st.st_size - done, (off_t) done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        r = k < 0 ? -errno : -EIO;
                        break;
                }
                done += (size_t) k;
        }
        close(fd);
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret = buf;
        *ret_size = done;
        return 0;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "cmdline", required_argument, NULL, 'c' },
                { "type", required_argument, NULL, 't' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct pvh_config c = { .cmdline = "console=ttyS0", .out = stdout };
        struct polyvm_plugin *p = NULL;
        char *input = NULL, *end, err[512] = "";
        size_t input_len = 0;
        unsigned long long mib;
        uint8_t *elf = NULL;
        int opt, r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (opt) {
                case 'c':
                        c.cmdline = optarg;
                        break;
                case 't': {
                        size_t n = strlen(optarg);
                        char *s = realloc(input, input_len + n + 2);
                        if (!s)
                                return 1;
                        input = s;
                        memcpy(input + input_len, optarg, n);
                        input_len += n;
                        input[input_len++] = '\n';
                        input[input_len] = 0;
                        break;
                }
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (argc - optind != 2) {
                usage(stderr);
                return 2;
        }
        errno = 0;
        mib = strtoull(argv[optind + 1], &end, 10);
        if (errno || *end || end == argv[optind + 1] || mib > (PVH_MEMORY_MAX >> 20)) {
                fprintf(stderr, "polyvm-plugin-pvh: memory '%s' is not a number of MiB up to %llu\n",
                        argv[optind + 1], PVH_MEMORY_MAX >> 20);
                return 2;
        }
        c.memory_size = mib << 20;
        c.input = input;

        r = read_elf(argv[optind], &elf, &c.elf_size);
        if (r < 0) {
                fprintf(stderr, "polyvm-plugin-pvh: Failed to read %s: %s\n", argv[optind], strerror(-r));
                return 1;
        }
        c.elf = elf;
        (void) signal(SIGTERM, on_sigterm);

        r = polyvm_plugin_connect(&p);
        if (r < 0) {
                fprintf(stderr, "polyvm-plugin-pvh: Failed to connect to the launcher ($%s): %s\n",
                        POLYVM_PLUGIN_FD_ENV, strerror(-r));
                return 1;
        }
        r = pvh_plugin_run(p, &c, err, sizeof(err));
        polyvm_plugin_free(p);
        free(elf);
        free(input);
        if (r < 0) {
                fprintf(stderr, "polyvm-plugin-pvh: %s: %s\n", argv[optind], err[0] ? err : strerror(-r));
                return 1;
        }
        return 0;
}
