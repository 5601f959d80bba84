/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Building the launcher's address map from device ranges, and lookups. */
#include <glib.h>
#include <string.h>

#include "address-map.h"

static struct device_proxy *fake_device(const char *object, const struct proto_range *ranges, uint32_t n) {
        struct device_proxy *d = NULL;

        g_assert_cmpint(device_proxy_new("fake", object, 1, -1, &d), ==, 0);
        d->ranges.count = n;
        memcpy(d->ranges.ranges, ranges, n * sizeof(*ranges));
        return d;
}

static void test_lookup_finds_the_right_device_and_range(void) {
        struct address_map m = {};
        char err[256];
        struct proto_range r1[] = { { 0x3f8, 8, PROTO_BUS_PIO }, { 0xd0000000, 0x1000, PROTO_BUS_MMIO } };
        struct proto_range r2[] = { { 0x70, 2, PROTO_BUS_PIO } };
        struct device_proxy *a = fake_device("/a", r1, 2), *b = fake_device("/b", r2, 1);
        const struct address_map_entry *e;

        g_assert_cmpint(address_map_add_device(&m, a, err, sizeof(err)), ==, 0);
        g_assert_cmpint(address_map_add_device(&m, b, err, sizeof(err)), ==, 0);

        e = address_map_find(&m, PROTO_BUS_PIO, 0x3fd, 1);
        g_assert_nonnull(e);
        g_assert_true(e->device == a);
        g_assert_cmpuint(e->range, ==, 0);
        e = address_map_find(&m, PROTO_BUS_MMIO, 0xd0000ffc, 4);
        g_assert_nonnull(e);
        g_assert_cmpuint(e->range, ==, 1);
        g_assert_true(address_map_find(&m, PROTO_BUS_PIO, 0x71, 1)->device == b);

        /* Accesses that stick out of a range, or hit the other bus, hit nothing. */
        g_assert_null(address_map_find(&m, PROTO_BUS_PIO, 0x3ff, 2));
        g_assert_null(address_map_find(&m, PROTO_BUS_MMIO, 0x3f8, 1));
        g_assert_null(address_map_find(&m, PROTO_BUS_MMIO, 0xd0000ffe, 4));
        g_assert_null(address_map_find(&m, PROTO_BUS_PIO, 0x72, 1));
        device_proxy_free(a);
        device_proxy_free(b);
}

static void test_bad_ranges_are_refused_with_a_reason(void) {
        struct {
                struct proto_range range;
                const char *needle;
        } cases[] = {
                { { 0x3f8, 0, PROTO_BUS_PIO }, "invalid" },
                { { 0xfff0, 0x20, PROTO_BUS_PIO }, "invalid" },
                { { UINT64_MAX - 4, 0x10, PROTO_BUS_MMIO }, "invalid" },
                { { 0x10, 4, 7 }, "invalid" },
                { { 0x600, 4, PROTO_BUS_PIO }, "ACPI" },
                { { 0xcf8, 8, PROTO_BUS_PIO }, "ACPI" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                struct address_map m = {};
                char err[256] = "";
                struct device_proxy *d = fake_device("/bad", &cases[i].range, 1);

                g_assert_cmpint(address_map_add_device(&m, d, err, sizeof(err)), <, 0);
                g_test_message("%s", err);
                g_assert_nonnull(strstr(err, cases[i].needle));
                g_assert_nonnull(strstr(err, "/bad"));
                g_assert_cmpuint(m.n, ==, 0);
                device_proxy_free(d);
        }
}

static void test_overlapping_devices_are_refused(void) {
        struct address_map m = {};
        char err[256];
        struct proto_range r1[] = { { 0x3f8, 8, PROTO_BUS_PIO } };
        struct proto_range r2[] = { { 0x3fc, 8, PROTO_BUS_PIO } };
        struct proto_range r3[] = { { 0x3f8, 8, PROTO_BUS_MMIO } };
        struct device_proxy *a = fake_device("/a", r1, 1), *b = fake_device("/b", r2, 1), *c = fake_device("/c", r3, 1);

        g_assert_cmpint(address_map_add_device(&m, a, err, sizeof(err)), ==, 0);
        g_assert_cmpint(address_map_add_device(&m, b, err, sizeof(err)), ==, -EEXIST);
        g_assert_nonnull(strstr(err, "overlaps device /a"));
        /* Same numbers on the other bus are not an overlap. */
        g_assert_cmpint(address_map_add_device(&m, c, err, sizeof(err)), ==, 0);
        device_proxy_free(a);
        device_proxy_free(b);
        device_proxy_free(c);
}

static void test_map_is_bounded(void) {
        struct address_map m = {};
        char err[256];
        struct device_proxy *devs[ADDRESS_MAP_MAX / 4 + 2];
        int r = 0;
        size_t n = 0;

        for (; n < G_N_ELEMENTS(devs) && r == 0; n++) {
                struct proto_range rs[4];
                for (int k = 0; k < 4; k++)
                        rs[k] = (struct proto_range) { 0x1000 + (n * 4 + k) * 0x10, 0x10, PROTO_BUS_PIO };
                devs[n] = fake_device("/many", rs, 4);
                r = address_map_add_device(&m, devs[n], err, sizeof(err));
        }
        g_assert_cmpint(r, ==, -E2BIG);
        g_assert_cmpuint(m.n, ==, ADDRESS_MAP_MAX);
        for (size_t i = 0; i < n; i++)
                device_proxy_free(devs[i]);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/address-map/lookup-finds-the-right-device-and-range",
                        test_lookup_finds_the_right_device_and_range);
        g_test_add_func("/address-map/bad-ranges-are-refused-with-a-reason", test_bad_ranges_are_refused_with_a_reason);
        g_test_add_func("/address-map/overlapping-devices-are-refused", test_overlapping_devices_are_refused);
        g_test_add_func("/address-map/map-is-bounded", test_map_is_bounded);
        return g_test_run();
}
