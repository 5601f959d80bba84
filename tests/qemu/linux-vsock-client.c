/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A static vsock client for test-vhost-user-linux.py's busybox initramfs
 * (busybox has no AF_VSOCK tool): connects to CID PORT, sends BYTES of a
 * known pattern, half-closes, reads the echo to EOF and prints one line
 * saying what came back. Exit status 0 only if the echo is exact. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static unsigned char pattern_byte(size_t i) {
        return (unsigned char) (i * 7 + i / 251 + 3);
}

int main(int argc, char **argv) {
        struct sockaddr_vm addr = { .svm_family = AF_VSOCK };
        static unsigned char buf[65536];
        size_t sent = 0, got = 0, bytes, bad = 0;
        int fd;

        if (argc != 4) {
                fprintf(stderr, "usage: %s CID PORT BYTES\n", argv[0]);
                return 2;
        }
        addr.svm_cid = (unsigned) strtoul(argv[1], NULL, 0);
        addr.svm_port = (unsigned) strtoul(argv[2], NULL, 0);
        bytes = strtoul(argv[3], NULL, 0);

        fd = socket(AF_VSOCK, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &addr, sizeof(addr)) < 0) {
                printf("vsock: connect %u:%u failed: %s\n", addr.svm_cid, addr.svm_port, strerror(errno));
                return 1;
        }
        while (sent < bytes) {
                size_t n = bytes - sent < sizeof(buf) ? bytes - sent : sizeof(buf);
                ssize_t w;

                for (size_t i = 0; i < n; i++)
                        buf[i] = pattern_byte(sent + i);
                w = write(fd, buf, n);
                if (w <= 0) {
                        printf("vsock: write failed after %zu bytes: %s\n", sent, strerror(errno));
                        return 1;
                }
                sent += (size_t) w;
        }
        if (shutdown(fd, SHUT_WR) < 0) {
                printf("vsock: shutdown failed: %s\n", strerror(errno));
                return 1;
        }
        for (;;) {
                ssize_t r = read(fd, buf, sizeof(buf));

                if (r < 0) {
                        printf("vsock: read failed after %zu bytes: %s\n", got, strerror(errno));
                        return 1;
                }
                if (r == 0)
                        break;
                for (ssize_t i = 0; i < r; i++)
                        bad += buf[i] != pattern_byte(got + (size_t) i);
                got += (size_t) r;
        }
        close(fd);
        printf("vsock: sent %zu echoed %zu mismatched %zu\n", sent, got, bad);
        return got == sent && bad == 0 ? 0 : 1;
}
