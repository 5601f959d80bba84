/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The launcher's side of one device process: its endpoint, the ranges it
 * serves, and reads/writes with a timeout. A device that stops answering
 * (no reply within the timeout, hang-up, a malformed or wrong reply, a send
 * that cannot get through) is marked failed: reads then return all ones, as
 * on real hardware when nothing decodes an address, and writes are dropped,
 * so the VM goes on. A device's error reply is no failure: that access
 * alone reads all ones. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

struct device_datapath;

#define DEVICE_PROXY_REASON_MAX 256

struct device_proxy {
        char *kind;
        char *object; /* org.polyvm.Device1 path at devmgr */
        pid_t pid;
        int endpoint;
        int timeout_ms;
        pthread_mutex_t lock; /* one request in flight per endpoint */
        struct proto_ranges ranges;

        /* Failure: the first thread to fail the device claims it (failing),
         * writes reason, then publishes failed and pokes notify_fd, so the
         * main thread reads reason only after it is complete. */
        atomic_bool failing;
        atomic_bool failed;
        char reason[DEVICE_PROXY_REASON_MAX];
        int notify_fd;  /* an eventfd of the owner's, or -1; not ours to close */
        struct device_datapath *datapath; /* the VM's (device-datapath.h), or NULL */
        bool reported;  /* main thread only */
};

int device_proxy_new(const char *kind, const char *object, pid_t pid, int endpoint, struct device_proxy **ret);
struct device_proxy *device_proxy_free(struct device_proxy *d);

/* Bounds every send and every wait for a reply (also at the socket, with
 * SO_SNDTIMEO, so a device that stops reading cannot block a vCPU). */
int device_proxy_set_timeout(struct device_proxy *d, int timeout_ms);
/* An eventfd written once when the device fails (from whatever thread). */
void device_proxy_set_notify(struct device_proxy *d, int notify_fd);

/* Sends Activate, then GetRanges. err says which step failed and why. */
int device_proxy_activate(struct device_proxy *d, char *err, size_t errlen);

/* Hands an fd to the device (PROTO_ATTACH_FD); fd stays the caller's. */
int device_proxy_attach_fd(struct device_proxy *d, enum proto_fd_role role, uint32_t arg, int fd);

void device_proxy_read(struct device_proxy *d, unsigned range, uint64_t addr, uint8_t *data, uint32_t len);
void device_proxy_write(struct device_proxy *d, unsigned range, uint64_t addr, const uint8_t *data, uint32_t len);

/* PCI config space (PROTO_READ_CONFIG/WRITE_CONFIG), with the failure rules
 * of read/write. read_config: *ret is all ones unless the device answered.
 * write_config: offset + len within the 4-byte register; *ret says what
 * moved (all zero on failure); if anything moved, d's ranges are fetched
 * again (GetRanges) and, like them, copied to *ret_ranges (may be NULL).
 * Both return 0 or -errno (-ENODEV for a failed device). */
int device_proxy_read_config(struct device_proxy *d, uint32_t reg, uint32_t *ret);
int device_proxy_write_config(struct device_proxy *d, uint32_t reg, uint32_t offset, uint32_t len,
                              const uint8_t *data, struct proto_config_result *ret, struct proto_ranges *ret_ranges);

/* The device's data path requests (proto.h), with the failure rules of
 * read_config. 0, or -errno (-EOPNOTSUPP: the device has none). */
int device_proxy_get_ioevents(struct device_proxy *d, struct proto_ioevents *ret);
int device_proxy_get_msi_routes(struct device_proxy *d, struct proto_msi_routes *ret);
/* Marks d failed (once; later calls do nothing) with "what: strerror(r)"
 * and pokes the notify fd. Any thread. */
void device_proxy_fail(struct device_proxy *d, int r, const char *what);
bool device_proxy_is_failed(struct device_proxy *d);
/* For the thread that reports failures: true once per failed device, with
 * the reason ("Read: Connection timed out", ...). */
bool device_proxy_take_failure(struct device_proxy *d, const char **ret_reason);
