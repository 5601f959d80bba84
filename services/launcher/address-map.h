/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Which device serves a port or MMIO address: built from every device's
 * GetRanges at start, and changed while vCPUs run only when a PCI config
 * write moves a BAR (address_map_apply). vCPU threads look up under the
 * read side of a rwlock and copy the entry out; the lock is held for a scan
 * of at most ADDRESS_MAP_MAX entries, nothing else, so the read path is one
 * uncontended atomic pair next to an exit that costs a round trip to a
 * device process anyway. Updates (rare: BAR programming at boot) take the
 * write side. Device pointers in entries live as long as the VM. */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device-proxy.h"

#define ADDRESS_MAP_MAX 64

struct address_map_entry {
        uint64_t base, len;
        enum proto_bus bus;
        struct device_proxy *device;
        unsigned range; /* index in the device's own list */
};

struct address_map {
        pthread_rwlock_t lock; /* all zeros is PTHREAD_RWLOCK_INITIALIZER on glibc */
        struct address_map_entry entries[ADDRESS_MAP_MAX];
        size_t n;
};

void address_map_init(struct address_map *m);
void address_map_done(struct address_map *m);

/* Adds every range of d; -EEXIST (with err) if one overlaps a range already
 * in the map or a range the launcher decodes itself. */
int address_map_add_device(struct address_map *m, struct device_proxy *d, char *err, size_t errlen);

/* Adds range index `range` of d (base/len/bus as in d's list), checked as above. */
int address_map_add_range(struct address_map *m, struct device_proxy *d, unsigned range, enum proto_bus bus,
                          uint64_t base, uint64_t len, char *err, size_t errlen);
/* Removes d's entry of exactly base/len/bus; -ENOENT if d has none such
 * (a device cannot remove another's ranges). */
int address_map_remove(struct address_map *m, struct device_proxy *d, enum proto_bus bus, uint64_t base,
                       uint64_t len);

/* Applies a WriteConfig result of d in one step (no vCPU sees the map
 * half-changed): its removals, then its additions, each added range taking
 * its index from ranges (d's GetRanges list after the write). Bad items are
 * skipped; returns the first error (with err) or 0. */
int address_map_apply(struct address_map *m, struct device_proxy *d, const struct proto_config_result *res,
                      const struct proto_ranges *ranges, char *err, size_t errlen);

/* Unlocked: for the thread that builds the map, before vCPUs run. */
const struct address_map_entry *address_map_find(const struct address_map *m, enum proto_bus bus, uint64_t addr,
                                                  uint32_t len);
/* Any thread: copies the matching entry to *ret under the read lock. */
bool address_map_lookup(struct address_map *m, enum proto_bus bus, uint64_t addr, uint32_t len,
                        struct address_map_entry *ret);
