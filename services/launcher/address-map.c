/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "address-map.h"
#include "pci-host.h"
#include "pm.h"

static int ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
        return a < b + blen && b < a + alen;
}

void address_map_init(struct address_map *m) {
        memset(m, 0, sizeof(*m));
        pthread_rwlock_init(&m->lock, NULL);
}

void address_map_done(struct address_map *m) {
        pthread_rwlock_destroy(&m->lock);
}

/* Called with the write lock held (or before any other thread sees m). */
static int add_range_locked(struct address_map *m, struct device_proxy *d, unsigned i, enum proto_bus bus,
                            uint64_t base, uint64_t len, char *err, size_t errlen) {
        if (len == 0 || base + len < base || bus > PROTO_BUS_MMIO || (bus == PROTO_BUS_PIO && base + len > 0x10000)) {
                snprintf(err, errlen, "device %s (%s): range %u (0x%" PRIx64 "+0x%" PRIx64 ") is invalid", d->object,
                         d->kind, i, base, len);
                return -EINVAL;
        }
        if (bus == PROTO_BUS_PIO && pm_port_is_ours(base, len)) {
                snprintf(err, errlen, "device %s (%s): port range 0x%" PRIx64 "+0x%" PRIx64
                         " overlaps the launcher's ACPI/reset ports", d->object, d->kind, base, len);
                return -EEXIST;
        }
        if (bus == PROTO_BUS_PIO && pci_host_port_is_ours(base, len)) {
                snprintf(err, errlen, "device %s (%s): port range 0x%" PRIx64 "+0x%" PRIx64
                         " overlaps the launcher's PCI configuration ports 0xCF8-0xCFF", d->object, d->kind, base, len);
                return -EEXIST;
        }
        for (size_t j = 0; j < m->n; j++)
                if (m->entries[j].bus == bus && ranges_overlap(m->entries[j].base, m->entries[j].len, base, len)) {
                        snprintf(err, errlen, "device %s (%s): range 0x%" PRIx64 "+0x%" PRIx64
                                 " overlaps device %s (%s)", d->object, d->kind, base, len,
                                 m->entries[j].device->object, m->entries[j].device->kind);
                        return -EEXIST;
                }
        if (m->n >= ADDRESS_MAP_MAX) {
                snprintf(err, errlen, "too many device ranges (at most %d)", ADDRESS_MAP_MAX);
                return -E2BIG;
        }
        m->entries[m->n++] = (struct address_map_entry) {
                .base = base, .len = len, .bus = bus, .device = d, .range = i,
        };
        return 0;
}

static int remove_locked(struct address_map *m, struct device_proxy *d, enum proto_bus bus, uint64_t base,
                         uint64_t len) {
        for (size_t j = 0; j < m->n; j++) {
                struct address_map_entry *e = &m->entries[j];
                if (e->device == d && e->bus == bus && e->base == base && e->len == len) {
                        memmove(e, e + 1, (m->n - j - 1) * sizeof(*e));
                        m->n--;
                        return 0;
                }
        }
        return -ENOENT;
}

int address_map_add_device(struct address_map *m, struct device_proxy *d, char *err, size_t errlen) {
        int r = 0;

        pthread_rwlock_wrlock(&m->lock);
        for (uint32_t i = 0; i < d->ranges.count && i < PROTO_MAX_RANGES; i++) {
                const struct proto_range *rg = &d->ranges.ranges[i];
                r = add_range_locked(m, d, i, rg->bus, rg->base, rg->len, err, errlen);
                if (r < 0)
                        break;
        }
        pthread_rwlock_unlock(&m->lock);
        return r;
}

int address_map_add_range(struct address_map *m, struct device_proxy *d, unsigned range, enum proto_bus bus,
                          uint64_t base, uint64_t len, char *err, size_t errlen) {
        int r;

        pthread_rwlock_wrlock(&m->lock);
        r = add_range_locked(m, d, range, bus, base, len, err, errlen);
        pthread_rwlock_unlock(&m->lock);
        return r;
}

int address_map_remove(struct address_map *m, struct device_proxy *d, enum proto_bus bus, uint64_t base,
                       uint64_t len) {
        int r;

        pthread_rwlock_wrlock(&m->lock);
        r = remove_locked(m, d, bus, base, len);
        pthread_rwlock_unlock(&m->lock);
        return r;
}

static int find_index(const struct proto_ranges *ranges, const struct proto_range *rg, unsigned *ret) {
        for (uint32_t i = 0; i < ranges->count && i < PROTO_MAX_RANGES; i++)
                if (ranges->ranges[i].base == rg->base && ranges->ranges[i].len == rg->len &&
                    ranges->ranges[i].bus == rg->bus) {
                        *ret = i;
                        return 0;
                }
        return -ENOENT;
}

int address_map_apply(struct address_map *m, struct device_proxy *d, const struct proto_config_result *res,
                      const struct proto_ranges *ranges, char *err, size_t errlen) {
        const struct {
                const struct proto_range *list;
                uint32_t n;
                enum proto_bus bus;
        } removes[] = {
                { res->mmio_remove, res->n_mmio_remove, PROTO_BUS_MMIO },
                { res->io_remove, res->n_io_remove, PROTO_BUS_PIO },
        }, adds[] = {
                { res->mmio_add, res->n_mmio_add, PROTO_BUS_MMIO },
                { res->io_add, res->n_io_add, PROTO_BUS_PIO },
        };
        int r = 0, k;

        pthread_rwlock_wrlock(&m->lock);
        for (size_t l = 0; l < 2; l++)
                for (uint32_t i = 0; i < removes[l].n && i < PROTO_MAX_CONFIG_CHANGES; i++) {
                        const struct proto_range *rg = &removes[l].list[i];
                        k = remove_locked(m, d, removes[l].bus, rg->base, rg->len);
                        if (k < 0 && r == 0) {
                                snprintf(err, errlen, "device %s (%s): no range 0x%" PRIx64 "+0x%" PRIx64
                                         " of its own to remove", d->object, d->kind, rg->base, rg->len);
                                r = k;
                        }
                }
        for (size_t l = 0; l < 2; l++)
                for (uint32_t i = 0; i < adds[l].n && i < PROTO_MAX_CONFIG_CHANGES; i++) {
                        struct proto_range rg = adds[l].list[i];
                        char e[256];
                        unsigned index;

                        rg.bus = adds[l].bus;
                        k = find_index(ranges, &rg, &index);
                        if (k < 0)
                                snprintf(e, sizeof(e), "device %s (%s): added range 0x%" PRIx64 "+0x%" PRIx64
                                         " is not in its GetRanges list", d->object, d->kind, rg.base, rg.len);
                        else
                                k = add_range_locked(m, d, index, rg.bus, rg.base, rg.len, e, sizeof(e));
                        if (k < 0 && r == 0) {
                                snprintf(err, errlen, "%s", e);
                                r = k;
                        }
                }
        pthread_rwlock_unlock(&m->lock);
        return r;
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

bool address_map_lookup(struct address_map *m, enum proto_bus bus, uint64_t addr, uint32_t len,
                        struct address_map_entry *ret) {
        const struct address_map_entry *e;

        pthread_rwlock_rdlock(&m->lock);
        e = address_map_find(m, bus, addr, len);
        if (e)
                *ret = *e;
        pthread_rwlock_unlock(&m->lock);
        return e != NULL;
}
