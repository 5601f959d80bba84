/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "address-map.h"
#include "pm.h"

static int ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
        return a < b + blen && b < a + alen;
}

int address_map_add_device(struct address_map *m, struct device_proxy *d, char *err, size_t errlen) {
        for (uint32_t i = 0; i < d->ranges.count && i < PROTO_MAX_RANGES; i++) {
                const struct proto_range *r = &d->ranges.ranges[i];

                if (r->len == 0 || r->base + r->len < r->base || r->bus > PROTO_BUS_MMIO ||
                    (r->bus == PROTO_BUS_PIO && r->base + r->len > 0x10000)) {
                        snprintf(err, errlen, "device %s (%s): range %u (0x%" PRIx64 "+0x%" PRIx64 ") is invalid",
                                 d->object, d->kind, i, r->base, r->len);
                        return -EINVAL;
                }
                if (r->bus == PROTO_BUS_PIO && pm_port_is_ours(r->base, r->len)) {
                        snprintf(err, errlen, "device %s (%s): port range 0x%" PRIx64 "+0x%" PRIx64
                                 " overlaps the launcher's ACPI/reset ports", d->object, d->kind, r->base, r->len);
                        return -EEXIST;
                }
                for (size_t j = 0; j < m->n; j++)
                        if (m->entries[j].bus == r->bus &&
                            ranges_overlap(m->entries[j].base, m->entries[j].len, r->base, r->len)) {
                                snprintf(err, errlen, "device %s (%s): range 0x%" PRIx64 "+0x%" PRIx64
                                         " overlaps device %s (%s)", d->object, d->kind, r->base, r->len,
                                         m->entries[j].device->object, m->entries[j].device->kind);
                                return -EEXIST;
                        }
                if (m->n >= ADDRESS_MAP_MAX) {
                        snprintf(err, errlen, "too many device ranges (at most %d)", ADDRESS_MAP_MAX);
                        return -E2BIG;
                }
                m->entries[m->n++] = (struct address_map_entry) {
                        .base = r->base, .len = r->len, .bus = r->bus, .device = d, .range = i,
                };
        }
        return 0;
}

const struct address_map_entry *address_map_find(const struct address_map *m, enum proto_bus bus, uint64_t addr,
                                                  uint32_t len) {
        for (size_t i = 0; i < m->n; i++) {
                const struct address_map_entry *e = &m->entries[i];
                if (e->bus == bus && addr >= e->base && addr - e->base + len <= e->len)
                        return e;
        }
        return NULL;
}
