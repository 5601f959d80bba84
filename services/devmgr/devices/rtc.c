/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The "rtc" device kind: a CMOS RTC (devices/cmos.c) at ports 0x70-0x71
 * showing the host's UTC time. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "cmos.h"
#include "device.h"
#include "json-util.h"

#define RTC_PORT 0x70

static int rtc_create(json_object *config, void **ret, char *err, size_t errlen) {
        struct cmos *c;
        int r;

        /* No fields yet; an empty table still rejects unknown ones by name. */
        r = json_parse_fields(config, "rtc", NULL, 0, err, errlen);
        if (r < 0)
                return r;
        c = malloc(sizeof(*c));
        if (!c)
                return -ENOMEM;
        cmos_init(c);
        *ret = c;
        return 0;
}

static void rtc_destroy(void *dev) {
        free(dev);
}

static int rtc_get_ranges(void *dev, struct proto_ranges *ret) {
        ret->count = 1;
        ret->ranges[0] = (struct proto_range) { .base = RTC_PORT, .len = 2, .bus = PROTO_BUS_PIO };
        return 0;
}

static int rtc_read(void *dev, uint32_t range, uint64_t offset, uint32_t len, uint8_t *data) {
        time_t now = time(NULL);

        for (uint32_t i = 0; i < len; i++)
                data[i] = cmos_read(dev, (unsigned) (offset + i), now);
        return 0;
}

static int rtc_write(void *dev, uint32_t range, uint64_t offset, uint32_t len, const uint8_t *data) {
        time_t now = time(NULL);

        for (uint32_t i = 0; i < len; i++)
                cmos_write(dev, (unsigned) (offset + i), data[i], now);
        return 0;
}

static const struct device_kind rtc_kind = {
        .name = "rtc",
        .seccomp_policy = "rtc",
        .rlimit_as = 64 << 20, /* it maps nothing but itself */
        .create = rtc_create,
        .destroy = rtc_destroy,
        .get_ranges = rtc_get_ranges,
        .read = rtc_read,
        .write = rtc_write,
};
DEVICE_KIND_REGISTER(rtc_kind);
