/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The "echo" device kind, for tests (after crosvm's test EchoDevice): a
 * window of "size" I/O ports at "port" that returns what was written at
 * each offset, 16 PCI-style config registers and 16 virtual config
 * registers that do the same, and every other path of the protocol:
 * Snapshot/Restore as JSON, Sleep/Wake, InitPciConfigMapping. Config
 * register 4 is its I/O BAR: writing a new port there moves the window,
 * and the WriteConfig result says so.
 *
 * While asleep, port reads fail with EAGAIN (the launcher turns that into
 * all ones, as for a device that does not decode) and port writes are
 * dropped: a sleeping device must not change state a snapshot may be
 * taking. Config registers stay reachable, as PCI config space does in
 * D3. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "device.h"
#include "json-util.h"

#define ECHO_DEFAULT_PORT 0x500
#define ECHO_DEFAULT_SIZE 8
#define ECHO_MAX_SIZE 256
#define ECHO_REGS 16
#define ECHO_REG_IO_BAR 4

struct echo {
        uint16_t port;
        uint32_t size;
        bool asleep;
        uint8_t data[ECHO_MAX_SIZE];
        uint32_t config[ECHO_REGS];
        uint32_t virtual_config[ECHO_REGS];
};

static int echo_create(json_object *config, void **ret, char *err, size_t errlen) {
        uint64_t port = ECHO_DEFAULT_PORT, size = ECHO_DEFAULT_SIZE;
        const struct json_field fields[] = {
                { "port", JSON_FIELD_UINT64, false, &port, 1, 0xffff },
                { "size", JSON_FIELD_UINT64, false, &size, 1, ECHO_MAX_SIZE },
        };
        struct echo *e;
        int r;

        r = json_parse_fields(config, "echo", fields, ELEMENTSOF(fields), err, errlen);
        if (r < 0)
                return r;
        if (port + size > 0x10000) {
                snprintf(err, errlen, "echo.port: 0x%llx + size %llu runs past the last port 0xffff",
                         (unsigned long long) port, (unsigned long long) size);
                return -EINVAL;
        }
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->port = (uint16_t) port;
        e->size = (uint32_t) size;
        e->config[ECHO_REG_IO_BAR] = e->port;
        *ret = e;
        return 0;
}

static void echo_destroy(void *dev) {
        free(dev);
}

static int echo_get_ranges(void *dev, struct proto_ranges *ret) {
        struct echo *e = dev;

        ret->count = 1;
        ret->ranges[0] = (struct proto_range) { .base = e->port, .len = e->size, .bus = PROTO_BUS_PIO };
        return 0;
}

static int echo_read(void *dev, uint32_t range, uint64_t offset, uint32_t len, uint8_t *data) {
        struct echo *e = dev;

        if (e->asleep)
                return -EAGAIN;
        memcpy(data, e->data + offset, len); /* the loop checked offset + len <= size */
        return 0;
}

static int echo_write(void *dev, uint32_t range, uint64_t offset, uint32_t len, const uint8_t *data) {
        struct echo *e = dev;

        if (e->asleep)
                return -EAGAIN;
        memcpy(e->data + offset, data, len);
        return 0;
}

/* Registers that do not exist read as all ones, as in PCI config space. */
static int echo_read_config(void *dev, uint32_t reg, uint32_t *ret) {
        struct echo *e = dev;

        *ret = reg < ECHO_REGS ? e->config[reg] : UINT32_MAX;
        return 0;
}

static int echo_write_config(void *dev, uint32_t reg, uint32_t offset, uint32_t len, const uint8_t *data,
                             struct proto_config_result *ret) {
        struct echo *e = dev;
        uint8_t bytes[4];
        uint32_t port;

        if (reg >= ECHO_REGS)
                return 0; /* writes to nothing vanish */
        memcpy(bytes, &e->config[reg], 4);
        memcpy(bytes + offset, data, len);
        memcpy(&e->config[reg], bytes, 4);

        if (reg != ECHO_REG_IO_BAR)
                return 0;
        /* The BAR moves the window only to a place where it fits whole. */
        port = e->config[reg];
        if (port == e->port || port == 0 || (uint64_t) port + e->size > 0x10000)
                return 0;
        ret->n_io_remove = ret->n_io_add = 1;
        ret->io_remove[0] = (struct proto_range) { .base = e->port, .len = e->size, .bus = PROTO_BUS_PIO };
        ret->io_add[0] = (struct proto_range) { .base = port, .len = e->size, .bus = PROTO_BUS_PIO };
        e->port = (uint16_t) port;
        return 0;
}

static int echo_read_virtual_config(void *dev, uint32_t reg, uint32_t *ret) {
        struct echo *e = dev;

        *ret = reg < ECHO_REGS ? e->virtual_config[reg] : UINT32_MAX;
        return 0;
}

static int echo_write_virtual_config(void *dev, uint32_t reg, uint32_t value) {
        struct echo *e = dev;

        if (reg >= ECHO_REGS)
                return -EINVAL;
        e->virtual_config[reg] = value;
        return 0;
}

/* Accepts the mapping if the shared memory is large enough for it. */
static int echo_init_pci_config_mapping(void *dev, int fd, uint64_t base, uint64_t len, bool *ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        *ret = st.st_size >= 0 && base + len <= (uint64_t) st.st_size;
        return 0;
}

static json_object *regs_to_json(const uint32_t *regs) {
        json_object *a = json_object_new_array_ext(ECHO_REGS);

        for (size_t i = 0; a && i < ECHO_REGS; i++)
                if (json_object_array_add(a, json_object_new_int64(regs[i])) < 0) {
                        json_object_put(a);
                        return NULL;
                }
        return a;
}

static int echo_snapshot(void *dev, char **ret_json, char *err, size_t errlen) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        struct echo *e = dev;
        char hex[ECHO_MAX_SIZE * 2 + 1];
        json_object *config, *virtual_config;
        const char *text;

        if (!o)
                return -ENOMEM;
        for (uint32_t i = 0; i < e->size; i++)
                snprintf(hex + 2 * i, 3, "%02x", e->data[i]);
        hex[2 * e->size] = 0;
        config = regs_to_json(e->config);
        virtual_config = regs_to_json(e->virtual_config);
        if (!config || !virtual_config || json_object_object_add(o, "config", config) < 0 ||
            json_object_object_add(o, "virtual_config", virtual_config) < 0 ||
            json_object_object_add(o, "port", json_object_new_int64(e->port)) < 0 ||
            json_object_object_add(o, "size", json_object_new_int64(e->size)) < 0 ||
            json_object_object_add(o, "data", json_object_new_string(hex)) < 0)
                return -ENOMEM;
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!text)
                return -ENOMEM;
        *ret_json = strdup(text);
        return *ret_json ? 0 : -ENOMEM;
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static int regs_from_json(json_object *a, const char *field, uint32_t *regs, char *err, size_t errlen) {
        if (json_object_array_length(a) != ECHO_REGS) {
                snprintf(err, errlen, "snapshot.%s: %zu registers, expected %d", field, json_object_array_length(a),
                         ECHO_REGS);
                return -EINVAL;
        }
        for (size_t i = 0; i < ECHO_REGS; i++) {
                json_object *v = json_object_array_get_idx(a, i);
                int64_t x;

                if (!json_object_is_type(v, json_type_int)) {
                        snprintf(err, errlen, "snapshot.%s[%zu]: must be an integer", field, i);
                        return -EINVAL;
                }
                x = json_object_get_int64(v);
                if (x < 0 || x > UINT32_MAX) {
                        snprintf(err, errlen, "snapshot.%s[%zu]: %lld is out of range 0..4294967295", field, i,
                                 (long long) x);
                        return -EINVAL;
                }
                regs[i] = (uint32_t) x;
        }
        return 0;
}

static int echo_restore(void *dev, const char *json, char *err, size_t errlen) {
        _cleanup_(json_object_putp) json_object *o = NULL, *config = NULL, *virtual_config = NULL;
        _cleanup_free_ char *data = NULL;
        struct echo *e = dev, n = *e;
        uint64_t port = 0, size = 0;
        char perr[PROTO_ERROR_MAX];
        const struct json_field fields[] = {
                { "port", JSON_FIELD_UINT64, true, &port, 1, 0xffff },
                { "size", JSON_FIELD_UINT64, true, &size, 1, ECHO_MAX_SIZE },
                { "data", JSON_FIELD_STRING, true, &data },
                { "config", JSON_FIELD_ARRAY, true, &config },
                { "virtual_config", JSON_FIELD_ARRAY, true, &virtual_config },
        };
        int r;

        /* Everything is checked into n before e changes. */
        r = json_parse_object(json, &o, perr, sizeof(perr));
        if (r < 0) {
                snprintf(err, errlen, "snapshot is not a JSON object (%s)", perr);
                return r;
        }
        r = json_parse_fields(o, "snapshot", fields, ELEMENTSOF(fields), err, errlen);
        if (r < 0)
                return r;
        if (port != e->port || size != e->size) {
                snprintf(err, errlen, "snapshot.port/size: 0x%llx/%llu is not this device's window 0x%x/%u",
                         (unsigned long long) port, (unsigned long long) size, e->port, e->size);
                return -EINVAL;
        }
        if (strlen(data) != 2 * size) {
                snprintf(err, errlen, "snapshot.data: %zu hex digits, expected %llu", strlen(data),
                         (unsigned long long) (2 * size));
                return -EINVAL;
        }
        for (size_t i = 0; i < size; i++) {
                int hi = hex_digit(data[2 * i]), lo = hex_digit(data[2 * i + 1]);
                if (hi < 0 || lo < 0) {
                        snprintf(err, errlen, "snapshot.data: not a hex digit at offset %zu", 2 * i + (hi < 0 ? 0 : 1));
                        return -EINVAL;
                }
                n.data[i] = (uint8_t) (hi << 4 | lo);
        }
        r = regs_from_json(config, "config", n.config, err, errlen);
        if (r < 0)
                return r;
        r = regs_from_json(virtual_config, "virtual_config", n.virtual_config, err, errlen);
        if (r < 0)
                return r;
        if (n.config[ECHO_REG_IO_BAR] != e->port) {
                snprintf(err, errlen, "snapshot.config[%d]: 0x%x disagrees with port 0x%x", ECHO_REG_IO_BAR,
                         n.config[ECHO_REG_IO_BAR], e->port);
                return -EINVAL;
        }
        *e = n;
        return 0;
}

static int echo_sleep(void *dev, char *err, size_t errlen) {
        struct echo *e = dev;
        e->asleep = true;
        return 0;
}

static int echo_wake(void *dev, char *err, size_t errlen) {
        struct echo *e = dev;
        e->asleep = false;
        return 0;
}

static const struct device_kind echo_kind = {
        .name = "echo",
        .seccomp_policy = "echo",
        .create = echo_create,
        .destroy = echo_destroy,
        .get_ranges = echo_get_ranges,
        .read = echo_read,
        .write = echo_write,
        .read_config = echo_read_config,
        .write_config = echo_write_config,
        .init_pci_config_mapping = echo_init_pci_config_mapping,
        .read_virtual_config = echo_read_virtual_config,
        .write_virtual_config = echo_write_virtual_config,
        .snapshot = echo_snapshot,
        .restore = echo_restore,
        .sleep = echo_sleep,
        .wake = echo_wake,
};
DEVICE_KIND_REGISTER(echo_kind);
