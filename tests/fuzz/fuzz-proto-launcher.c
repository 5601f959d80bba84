/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: bytes -> the launcher side of the protocol. Input byte
 * 0 says how many fds come with the packet; the rest is one packet, parsed
 * by proto_parse() as the launcher parses a device's reply, then judged as
 * the reply to each request type (proto_reply_check), and used the way the
 * launcher uses it: ranges go into an address map, data and config results
 * are read within their counts, a snapshot is parsed as JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <syslog.h>
#include <unistd.h>

#include <json-c/json.h>

#include "address-map.h"
#include "log.h"
#include "proto.h"

static volatile uint64_t sink;

static void use_reply(struct proto_msg *m) {
        switch (m->hdr.type) {
        case PROTO_REPLY_RANGES: {
                struct device_proxy d = { .kind = "fuzz", .object = "/fuzz", .endpoint = -1, .notify_fd = -1 };
                struct address_map map = {};
                char err[256];

                d.ranges = m->body.ranges;
                if (address_map_add_device(&map, &d, err, sizeof(err)) == 0)
                        for (size_t i = 0; i < map.n; i++)
                                sink += address_map_find(&map, map.entries[i].bus, map.entries[i].base, 1) != NULL;
                break;
        }
        case PROTO_REPLY_DATA: {
                uint8_t out[8];
                memcpy(out, m->body.data.data, m->body.data.len);
                sink += out[0];
                break;
        }
        case PROTO_REPLY_CONFIG_WRITE: {
                const struct proto_config_result *c = &m->body.config_result;
                for (uint32_t i = 0; i < c->n_io_add; i++)
                        sink += c->io_add[i].base + c->io_add[i].len;
                for (uint32_t i = 0; i < c->n_io_remove; i++)
                        sink += c->io_remove[i].base;
                for (uint32_t i = 0; i < c->n_mmio_add; i++)
                        sink += c->mmio_add[i].base;
                for (uint32_t i = 0; i < c->n_mmio_remove; i++)
                        sink += c->mmio_remove[i].base;
                for (uint32_t i = 0; i < c->n_removed_pci; i++)
                        sink += c->removed_pci[i];
                break;
        }
        case PROTO_REPLY_IOEVENTS:
                for (uint32_t i = 0; i < m->body.ioevents.count; i++)
                        sink += m->body.ioevents.ioevents[i].address + m->body.ioevents.ioevents[i].len;
                break;
        case PROTO_REPLY_MSI_ROUTES:
                for (uint32_t i = 0; i < m->body.msi_routes.count; i++)
                        sink += m->body.msi_routes.routes[i].address + m->body.msi_routes.routes[i].data;
                break;
        case PROTO_REPLY_SNAPSHOT: {
                json_object *o = json_tokener_parse(m->text);
                if (strlen(m->text) != m->text_len)
                        __builtin_trap();
                json_object_put(o);
                break;
        }
        case PROTO_REPLY_ERROR:
                sink += strlen(m->body.error.message);
                break;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct proto_msg m;
        int fds[PROTO_MAX_FDS + 1];
        size_t n_fds;

        log_set_max_level(LOG_CRIT);
        if (size < 1)
                return 0;
        n_fds = data[0] % (PROTO_MAX_FDS + 2);
        for (size_t i = 0; i < n_fds; i++)
                if ((fds[i] = eventfd(0, EFD_CLOEXEC)) < 0)
                        abort();
        if (proto_parse(data + 1, size - 1, fds, n_fds, &m) < 0)
                return 0;

        for (unsigned req = PROTO_ACTIVATE; req < _PROTO_REQUEST_MAX; req++) {
                /* A view that owns nothing: proto_reply_check may release it. */
                struct proto_msg view = m;
                char err[PROTO_ERROR_MAX];

                view.text = NULL;
                view.n_fds = 0;
                for (unsigned i = 0; i < PROTO_MAX_FDS; i++)
                        view.fds[i] = -1;
                if (proto_reply_check(req, &view, err, sizeof(err)) == 0 && strlen(err) >= sizeof(err))
                        __builtin_trap();
        }
        use_reply(&m);
        proto_msg_done(&m);
        return 0;
}
