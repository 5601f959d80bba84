/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The register model of an MC146818 CMOS RTC behind index/data ports 0x70
 * and 0x71, with the clock given by the caller (UTC seconds), so that it is
 * testable. Enough for Linux's rtc_cmos and mc146818 helpers: time and date
 * in BCD or binary, 24 or 12 hour, status registers A-D, 128 bytes of RAM.
 * No periodic/alarm/update interrupts. */

#include <stdint.h>
#include <time.h>

enum {
        CMOS_SECONDS = 0x00,
        CMOS_SECONDS_ALARM = 0x01,
        CMOS_MINUTES = 0x02,
        CMOS_MINUTES_ALARM = 0x03,
        CMOS_HOURS = 0x04,
        CMOS_HOURS_ALARM = 0x05,
        CMOS_WEEKDAY = 0x06,
        CMOS_DAY = 0x07,
        CMOS_MONTH = 0x08,
        CMOS_YEAR = 0x09,
        CMOS_REG_A = 0x0a,
        CMOS_REG_B = 0x0b,
        CMOS_REG_C = 0x0c,
        CMOS_REG_D = 0x0d,
        CMOS_CENTURY = 0x32,
};

#define CMOS_B_SET 0x80
#define CMOS_B_DM_BINARY 0x04
#define CMOS_B_24H 0x02
#define CMOS_D_VRT 0x80
#define CMOS_HOUR_PM 0x80

struct cmos {
        uint8_t index;
        uint8_t ram[128];
        int64_t offset; /* guest time minus host time, in seconds */
};

void cmos_init(struct cmos *c);
/* port: 0 = index (0x70), 1 = data (0x71); now: host UTC time. */
uint8_t cmos_read(struct cmos *c, unsigned port, time_t now);
void cmos_write(struct cmos *c, unsigned port, uint8_t value, time_t now);
