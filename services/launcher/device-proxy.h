/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The launcher's side of one device process: its endpoint, the ranges it
 * serves, and reads/writes with a timeout. A device that stops answering is
 * marked failed: reads then return all ones, as on real hardware when
 * nothing decodes an address, and writes are dropped, so the VM goes on. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

struct device_proxy {
        char *kind;
        char *object; /* org.polyvm.Device1 path at devmgr */
        pid_t pid;
        int endpoint;
        int timeout_ms;
        pthread_mutex_t lock; /* one request in flight per endpoint */
        atomic_bool failed;
        struct proto_ranges ranges;
};

int device_proxy_new(const char *kind, const char *object, pid_t pid, int endpoint, struct device_proxy **ret);
struct device_proxy *device_proxy_free(struct device_proxy *d);

/* Sends Activate, then GetRanges. err says which step failed and why. */
int device_proxy_activate(struct device_proxy *d, char *err, size_t errlen);

/* Hands an fd to the device (PROTO_ATTACH_FD); fd stays the caller's. */
int device_proxy_attach_fd(struct device_proxy *d, enum proto_fd_role role, uint32_t arg, int fd);

void device_proxy_read(struct device_proxy *d, unsigned range, uint64_t addr, uint8_t *data, uint32_t len);
void device_proxy_write(struct device_proxy *d, unsigned range, uint64_t addr, const uint8_t *data, uint32_t len);
