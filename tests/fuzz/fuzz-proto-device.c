/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: bytes -> the device side of the protocol. Input byte 0
 * says how many fds come with the packet (0..PROTO_MAX_FDS+1) and whether
 * the echo device is activated (bit 4) and asleep (bit 5) first; the rest is
 * one packet. It is parsed by proto_parse() and, if valid, answered by the
 * device loop of a fresh echo device. Every reply the device sends must
 * itself pass proto_parse(): a device never emits what the launcher would
 * reject. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "device-loop.h"
#include "json-util.h"
#include "log.h"

static int sock[2] = { -1, -1 };

static void drain_and_check_replies(void) {
        static uint8_t buf[PROTO_PACKET_MAX + 1];

        for (;;) {
                struct proto_msg m;
                ssize_t n = recv(sock[1], buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0)
                        break;
                if (proto_parse(buf, (size_t) n, NULL, 0, &m) < 0)
                        __builtin_trap();
                if (m.hdr.type < PROTO_REPLY_OK)
                        __builtin_trap();
                proto_msg_done(&m);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const struct device_kind *echo = device_kind_find("echo");
        json_object *config = json_object_new_object();
        struct device_loop l;
        struct proto_msg m;
        int fds[PROTO_MAX_FDS + 1];
        size_t n_fds;
        void *dev = NULL;
        char err[256];

        if (sock[0] < 0) {
                log_set_max_level(LOG_CRIT);
                /* A big send buffer: a reply never blocks the fuzzer. */
                if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) < 0)
                        abort();
        }
        if (size < 1 || !echo || !config)
                goto out;
        if (echo->create(config, &dev, err, sizeof(err)) < 0)
                abort();

        n_fds = data[0] % (PROTO_MAX_FDS + 2);
        for (size_t i = 0; i < n_fds; i++) {
                /* A memfd of 4 KiB: InitPciConfigMapping can say yes. */
                fds[i] = memfd_create("fuzz", MFD_CLOEXEC);
                if (fds[i] < 0 || ftruncate(fds[i], 4096) < 0)
                        abort();
        }

        device_loop_init(&l, sock[0], echo, dev);
        if (data[0] & 0x10) {
                struct proto_msg a = { .hdr = { .magic = PROTO_MAGIC, .version = PROTO_VERSION, .type = PROTO_ACTIVATE } };
                if (device_loop_handle(&l, &a) < 0)
                        abort();
                if ((data[0] & 0x20) && echo->sleep(dev, err, sizeof(err)) == 0)
                        l.asleep = true;
        }
        drain_and_check_replies();

        if (proto_parse(data + 1, size - 1, fds, n_fds, &m) == 0) {
                (void) device_loop_handle(&l, &m);
                proto_msg_done(&m);
        }
        drain_and_check_replies();
        echo->destroy(dev);
out:
        json_object_put(config);
        return 0;
}
