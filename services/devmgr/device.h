/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One device kind = one file in devices/ that fills a struct device_kind and
 * registers it with DEVICE_KIND_REGISTER (as kvmtool's device init calls do):
 * devmgr and the serve loop only ever talk to this interface, never to a
 * concrete device. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define DEVICE_OWNED_FDS_MAX 8

struct device_kind {
        const char *name;
        /* Base name of the seccomp policy file, seccomp/<name>.policy. */
        const char *seccomp_policy;
        /* Jail limits (jail.h): address space in bytes (0: none, for kinds
         * that map guest memory) and open fds (0: JAIL_NOFILE_DEFAULT). */
        uint64_t rlimit_as;
        unsigned rlimit_nofile;
        /* Whether it maps guest memory (PROTO_FD_MEMORY, device_memory_map()
         * in device-memory.h): then devmgr opens /dev/userfaultfd for it
         * before the fork and its seccomp filter allows the few ioctls that
         * make and register its userfaultfd (docs/devmgr.md). */
        bool maps_guest_memory;
        /* Tasks of the device's uid, itself and its threads included (0:
         * it starts none; RLIMIT_NPROC also counts threads). */
        unsigned rlimit_nproc;

        /* Validates config (a JSON object) and builds the device state. Runs
         * in devmgr before the fork, so bad config is a D-Bus error; on
         * failure writes a message naming the field to err. */
        int (*create)(json_object *config, void **ret, char *err, size_t errlen);
        void (*destroy)(void *dev);
        /* The fds create() opened for the device with devmgr's rights
         * (backing files, taps, /dev/userfaultfd): the jail closes every
         * other fd. Points at the device's own fd fields, which the spawner
         * rewrites in place after moving them. Returns how many (at most
         * DEVICE_OWNED_FDS_MAX). Optional. */
        size_t (*owned_fds)(void *dev, int *ret[]);
        /* Optional: the path prefix devmgr may connect to for this device
         * (DEVICE_REPORT_CONNECT in device-report.h connects to
         * "<prefix>_<port>"), from its validated config; NULL for none. Asked
         * in devmgr after create(); the string belongs to dev. */
        const char *(*connect_prefix)(void *dev);

        int (*get_ranges)(void *dev, struct proto_ranges *ret);
        /* Accesses already checked against the ranges: range index valid,
         * offset + len within it. read fills data[0..len). */
        int (*read)(void *dev, uint32_t range, uint64_t offset, uint32_t len, uint8_t *data);
        int (*write)(void *dev, uint32_t range, uint64_t offset, uint32_t len, const uint8_t *data);
        /* Takes fd on success (returns 0); on failure the caller closes it. */
        int (*attach_fd)(void *dev, uint32_t role, uint32_t arg, int fd, char *err, size_t errlen);

        /* The device's own event source (console input): an fd to poll for
         * POLLIN now, or -1; asked again on every loop turn (not while the
         * device sleeps). */
        int (*event_fd)(void *dev);
        int (*handle_event)(void *dev);

        /* Optional; a kind without one answers that request with EOPNOTSUPP
         * (Sleep and Wake excepted: see below). err, when set, becomes the
         * error reply's message; returns 0 or -errno. */

        /* PCI config space registers (4 bytes each). write_config gets
         * offset + len <= 4 and fills what the write moved (ret starts
         * zeroed; lists within PROTO_MAX_CONFIG_CHANGES, I/O ranges with bus
         * PIO, MMIO ones with bus MMIO). */
        int (*read_config)(void *dev, uint32_t reg, uint32_t *ret);
        int (*write_config)(void *dev, uint32_t reg, uint32_t offset, uint32_t len, const uint8_t *data,
                            struct proto_config_result *ret);
        /* fd is borrowed for the call (dup it to keep it); *ret says whether
         * the device now mirrors its config space there. */
        int (*init_pci_config_mapping)(void *dev, int fd, uint64_t base, uint64_t len, bool *ret);
        int (*read_virtual_config)(void *dev, uint32_t reg, uint32_t *ret);
        int (*write_virtual_config)(void *dev, uint32_t reg, uint32_t value);
        /* The data path (virtio over PCI): where guest writes should
         * become PROTO_FD_IOEVENT signals, and the MSI-X table as the guest
         * programmed it (proto.h says when the launcher asks). */
        int (*get_ioevents)(void *dev, struct proto_ioevents *ret);
        int (*get_msi_routes)(void *dev, struct proto_msi_routes *ret);
        /* Releases what the device holds outside its own memory (fds,
         * mappings): on DestroyDevice, and before the Ok to Shutdown. */
        void (*destroy_device)(void *dev);
        /* State as JSON text (malloc'd, < PROTO_TEXT_MAX bytes), and back.
         * restore validates everything before it changes anything. */
        int (*snapshot)(void *dev, char **ret_json, char *err, size_t errlen);
        int (*restore)(void *dev, const char *json, char *err, size_t errlen);
        /* Without these, Sleep and Wake still work: the loop stops polling
         * event_fd while asleep, which is all a kind without its own
         * threads or timers does on its own. */
        int (*sleep)(void *dev, char *err, size_t errlen);
        int (*wake)(void *dev, char *err, size_t errlen);
};

void device_kind_register(const struct device_kind *kind);
const struct device_kind *device_kind_find(const char *name);
/* Registered kinds in name order; *n is set to their count. */
const struct device_kind *const *device_kind_list(size_t *n);

#define DEVICE_KIND_REGISTER(k)                                         \
        static void __attribute__((constructor)) register_##k(void) {   \
                device_kind_register(&(k));                             \
        }
