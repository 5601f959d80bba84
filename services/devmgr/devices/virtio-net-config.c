/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The virtio-net config object and the device config space built from it.
 * Everything here runs in devmgr before the fork, so each error is a
 * D-Bus InvalidConfig naming the field. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "macro.h"
#include "virtio-net.h"

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int net_mac_parse(const char *s, uint8_t mac[6]) {
        uint8_t m[6];

        /* Exactly six pairs of hex digits with ':' between them. */
        if (strlen(s) != 17)
                return -EINVAL;
        for (unsigned i = 0; i < 6; i++) {
                int hi = hex_digit(s[3 * i]), lo = hex_digit(s[3 * i + 1]);

                if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
                        return -EINVAL;
                m[i] = (uint8_t) (hi << 4 | lo);
        }
        memcpy(mac, m, 6);
        return 0;
}

void net_mac_derive(const char *seed, unsigned index, uint8_t mac[6]) {
        /* FNV-1a over seed, a separator and the index: a stable spread,
         * not a secret. */
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        char idx[16];

        for (const char *p = seed; *p; p++)
                h = (h ^ (uint8_t) *p) * UINT64_C(0x100000001b3);
        h = (h ^ 0xff) * UINT64_C(0x100000001b3);
        snprintf(idx, sizeof(idx), "%u", index);
        for (const char *p = idx; *p; p++)
                h = (h ^ (uint8_t) *p) * UINT64_C(0x100000001b3);
        /* 02: locally administered (bit 1), unicast (bit 0 clear). */
        mac[0] = 0x02;
        for (unsigned i = 1; i < 6; i++)
                mac[i] = (uint8_t) (h >> (8 * (i - 1)));
}

bool net_ifname_valid(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n >= IFNAMSIZ || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (name[i] == '/' || name[i] == ':' || name[i] == '%' || isspace((unsigned char) name[i]) ||
                    (unsigned char) name[i] < 0x20 || name[i] == 0x7f)
                        return false;
        return true;
}

/* The JSON string's own length, to catch an embedded NUL. */
static size_t json_string_len(json_object *config, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(config, key, &v) || !json_object_is_type(v, json_type_string))
                return 0;
        return (size_t) json_object_get_string_len(v);
}

int net_config_parse(json_object *config, struct net_config *ret, char *err, size_t errlen) {
        _cleanup_free_ char *tap = NULL, *mac = NULL;
        uint64_t mtu = 0, queue_size = NET_QUEUE_SIZE_DEFAULT;
        const struct json_field fields[] = {
                { "tap", JSON_FIELD_STRING, false, &tap },
                { "mac", JSON_FIELD_STRING, false, &mac },
                { "mtu", JSON_FIELD_UINT64, false, &mtu, NET_MTU_MIN, NET_MTU_MAX },
                { "queue_size", JSON_FIELD_UINT64, false, &queue_size, NET_QUEUE_SIZE_MIN, VQ_MAX_SIZE },
        };
        struct net_config c = {};
        int r;

        r = json_parse_fields(config, "virtio-net", fields, ELEMENTSOF(fields), err, errlen);
        if (r < 0)
                return r;

        if (tap) {
                if (json_string_len(config, "tap") != strlen(tap) || !net_ifname_valid(tap)) {
                        snprintf(err, errlen,
                                 "virtio-net.tap: \"%s\" is not an interface name (1..%u bytes, no '/', ':', '%%' or "
                                 "whitespace)",
                                 tap, IFNAMSIZ - 1);
                        return -EINVAL;
                }
                memcpy(c.tap, tap, strlen(tap) + 1);
        }
        if (mac) {
                if (json_string_len(config, "mac") != strlen(mac) || net_mac_parse(mac, c.mac) < 0) {
                        snprintf(err, errlen, "virtio-net.mac: \"%s\" is not a MAC address like 02:00:00:00:00:01",
                                 mac);
                        return -EINVAL;
                }
                if (c.mac[0] & 0x01) {
                        snprintf(err, errlen, "virtio-net.mac: %s is a multicast address; a NIC needs a unicast one",
                                 mac);
                        return -EINVAL;
                }
                if (!(c.mac[0] | c.mac[1] | c.mac[2] | c.mac[3] | c.mac[4] | c.mac[5])) {
                        snprintf(err, errlen, "virtio-net.mac: %s is the all-zero address", mac);
                        return -EINVAL;
                }
                c.mac_set = true;
        }
        if ((queue_size & (queue_size - 1)) != 0) {
                snprintf(err, errlen, "virtio-net.queue_size: %" PRIu64 " is not a power of 2", queue_size);
                return -EINVAL;
        }
        c.mtu = (uint16_t) mtu;
        c.queue_size = (uint16_t) queue_size;
        *ret = c;
        return 0;
}

uint32_t net_max_frame(const struct net_config *c) {
        return NET_ETH_HLEN + NET_VLAN_HLEN + (c->mtu ?: NET_MTU_DEFAULT);
}

void net_config_build(const struct net_config *c, const uint8_t mac[6], uint8_t out[VIRTIO_NET_CONFIG_LEN]) {
        /* Little endian (VERSION_1). max_virtqueue_pairs is only read with
         * VIRTIO_NET_F_MQ; 1 is the truth anyway. */
        memcpy(out, mac, 6);
        out[6] = VIRTIO_NET_S_LINK_UP;
        out[7] = 0;
        out[8] = 1;
        out[9] = 0;
        out[10] = (uint8_t) c->mtu;
        out[11] = (uint8_t) (c->mtu >> 8);
}
