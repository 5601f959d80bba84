/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Which device serves a port or MMIO address: built once from every
 * device's GetRanges at start, read-only while vCPUs run. */

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
        struct address_map_entry entries[ADDRESS_MAP_MAX];
        size_t n;
};

/* Adds every range of d; -EEXIST (with err) if one overlaps a range already
 * in the map or a range the launcher decodes itself. */
int address_map_add_device(struct address_map *m, struct device_proxy *d, char *err, size_t errlen);

const struct address_map_entry *address_map_find(const struct address_map *m, enum proto_bus bus, uint64_t addr,
                                                  uint32_t len);
