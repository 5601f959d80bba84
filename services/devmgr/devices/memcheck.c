/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The "memcheck" device kind (memcheck.h): guest memory from inside a jail,
 * the way a virtio device touches it, so that tests can drive swap with a
 * device mapping without KVM. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device-memory.h"
#include "device.h"
#include "guest-ram.h"
#include "json-util.h"
#include "memcheck.h"

struct memcheck {
        uint16_t port;
        uint64_t gpa;
        void *mem;
        uint64_t mem_size;
};

static int memcheck_create(json_object *config, void **ret, char *err, size_t errlen) {
        uint64_t port = MEMCHECK_DEFAULT_PORT;
        const struct json_field fields[] = {
                { "port", JSON_FIELD_UINT64, false, &port, 1, 0x10000 - MEMCHECK_SIZE },
        };
        struct memcheck *m;
        int r;

        r = json_parse_fields(config, "memcheck", fields, ELEMENTSOF(fields), err, errlen);
        if (r < 0)
                return r;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->port = (uint16_t) port;
        *ret = m;
        return 0;
}

static void memcheck_destroy(void *dev) {
        /* The mapping goes with the process (device-memory.h). */
        free(dev);
}

static int memcheck_get_ranges(void *dev, struct proto_ranges *ret) {
        struct memcheck *m = dev;

        ret->count = 1;
        ret->ranges[0] = (struct proto_range) { .base = m->port, .len = MEMCHECK_SIZE, .bus = PROTO_BUS_PIO };
        return 0;
}

/* The guest bytes of a data access, or NULL with *error set. */
static uint8_t *memcheck_guest(struct memcheck *m, uint64_t offset, uint32_t len, int *error) {
        uint8_t *p;

        if (!m->mem) {
                *error = -ENODEV;
                return NULL;
        }
        p = guest_ram_ptr(m->mem, m->mem_size, m->gpa + (offset - MEMCHECK_DATA), len);
        if (!p)
                *error = -EFAULT;
        return p;
}

static int memcheck_read(void *dev, uint32_t range, uint64_t offset, uint32_t len, uint8_t *data) {
        struct memcheck *m = dev;
        uint8_t reg[MEMCHECK_SIZE] = {};
        uint32_t status = m->mem ? MEMCHECK_STATUS_MAPPED : 0;
        const uint8_t *p;
        int r = 0;

        if (offset >= MEMCHECK_DATA && offset < MEMCHECK_STATUS) {
                /* May wait in a page fault for memmgr while swapped out. */
                p = memcheck_guest(m, offset, len, &r);
                if (!p)
                        return r;
                memcpy(data, p, len);
                return 0;
        }
        memcpy(reg + MEMCHECK_GPA, &m->gpa, sizeof(m->gpa));
        memcpy(reg + MEMCHECK_STATUS, &status, sizeof(status));
        memcpy(data, reg + offset, MIN((uint64_t) len, MEMCHECK_SIZE - offset));
        return 0;
}

static int memcheck_write(void *dev, uint32_t range, uint64_t offset, uint32_t len, const uint8_t *data) {
        struct memcheck *m = dev;
        uint8_t *p;
        int r = 0;

        if (offset >= MEMCHECK_DATA && offset < MEMCHECK_STATUS) {
                p = memcheck_guest(m, offset, len, &r);
                if (!p)
                        return r;
                memcpy(p, data, len);
                return 0;
        }
        if (offset < MEMCHECK_DATA) {
                uint8_t reg[8];

                memcpy(reg, &m->gpa, sizeof(reg));
                memcpy(reg + offset, data, MIN((uint64_t) len, sizeof(reg) - offset));
                memcpy(&m->gpa, reg, sizeof(reg));
        }
        return 0;
}

static int memcheck_attach_fd(void *dev, uint32_t role, uint32_t arg, int fd, char *err, size_t errlen) {
        struct memcheck *m = dev;
        int r;

        if (role != PROTO_FD_MEMORY) {
                snprintf(err, errlen, "memcheck takes only guest memory (role %u), not role %u", PROTO_FD_MEMORY, role);
                return -EINVAL;
        }
        r = device_memory_map(fd, &m->mem, &m->mem_size);
        if (r < 0) {
                snprintf(err, errlen, "cannot map guest memory: %s", strerror(-r));
                return r;
        }
        close(fd);
        return 0;
}

static const struct device_kind memcheck_kind = {
        .name = "memcheck",
        .seccomp_policy = "memcheck",
        .maps_guest_memory = true,
        .create = memcheck_create,
        .destroy = memcheck_destroy,
        .get_ranges = memcheck_get_ranges,
        .read = memcheck_read,
        .write = memcheck_write,
        .attach_fd = memcheck_attach_fd,
};
DEVICE_KIND_REGISTER(memcheck_kind);
