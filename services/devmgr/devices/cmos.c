/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "cmos.h"

void cmos_init(struct cmos *c) {
        memset(c, 0, sizeof(*c));
        c->ram[CMOS_REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate, no update in progress */
        c->ram[CMOS_REG_B] = CMOS_B_24H; /* BCD, 24 hour, no interrupts */
        c->ram[CMOS_REG_D] = CMOS_D_VRT; /* the battery is fine */
}

static uint8_t to_bcd(unsigned v) {
        return (uint8_t) (((v / 10) << 4) | (v % 10));
}

static unsigned from_bcd(uint8_t v) {
        return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t encode(const struct cmos *c, unsigned v) {
        return c->ram[CMOS_REG_B] & CMOS_B_DM_BINARY ? (uint8_t) v : to_bcd(v);
}

static unsigned decode(const struct cmos *c, uint8_t v) {
        return c->ram[CMOS_REG_B] & CMOS_B_DM_BINARY ? v : from_bcd(v);
}

static void guest_time(const struct cmos *c, time_t now, struct tm *tm) {
        time_t t = (time_t) (now + c->offset);
        gmtime_r(&t, tm);
}

static uint8_t encode_hour(const struct cmos *c, unsigned hour) {
        unsigned h12;

        if (c->ram[CMOS_REG_B] & CMOS_B_24H)
                return encode(c, hour);
        h12 = hour % 12 == 0 ? 12 : hour % 12;
        return encode(c, h12) | (hour >= 12 ? CMOS_HOUR_PM : 0);
}

static unsigned decode_hour(const struct cmos *c, uint8_t v) {
        unsigned h;

        if (c->ram[CMOS_REG_B] & CMOS_B_24H)
                return decode(c, v);
        h = decode(c, v & 0x7f) % 12;
        return v & CMOS_HOUR_PM ? h + 12 : h;
}

static uint8_t read_reg(struct cmos *c, uint8_t reg, time_t now) {
        struct tm tm;
        uint8_t v;

        switch (reg) {
        case CMOS_SECONDS:
        case CMOS_MINUTES:
        case CMOS_HOURS:
        case CMOS_WEEKDAY:
        case CMOS_DAY:
        case CMOS_MONTH:
        case CMOS_YEAR:
        case CMOS_CENTURY:
                break;
        case CMOS_REG_C:
                v = c->ram[CMOS_REG_C];
                c->ram[CMOS_REG_C] = 0; /* interrupt flags clear on read */
                return v;
        default:
                return c->ram[reg];
        }

        guest_time(c, now, &tm);
        switch (reg) {
        case CMOS_SECONDS:
                return encode(c, (unsigned) tm.tm_sec);
        case CMOS_MINUTES:
                return encode(c, (unsigned) tm.tm_min);
        case CMOS_HOURS:
                return encode_hour(c, (unsigned) tm.tm_hour);
        case CMOS_WEEKDAY:
                return encode(c, (unsigned) tm.tm_wday + 1); /* Sunday = 1 */
        case CMOS_DAY:
                return encode(c, (unsigned) tm.tm_mday);
        case CMOS_MONTH:
                return encode(c, (unsigned) tm.tm_mon + 1);
        case CMOS_YEAR:
                return encode(c, (unsigned) (tm.tm_year + 1900) % 100);
        default: /* CMOS_CENTURY */
                return encode(c, (unsigned) (tm.tm_year + 1900) / 100);
        }
}

/* A write to a time register sets the guest's clock: keep it as an offset
 * from the host clock so it keeps running. */
static void write_time_reg(struct cmos *c, uint8_t reg, uint8_t value, time_t now) {
        struct tm tm;
        time_t t;
        unsigned v = reg == CMOS_HOURS ? decode_hour(c, value) : decode(c, value);

        guest_time(c, now, &tm);
        switch (reg) {
        case CMOS_SECONDS:
                tm.tm_sec = (int) (v % 60);
                break;
        case CMOS_MINUTES:
                tm.tm_min = (int) (v % 60);
                break;
        case CMOS_HOURS:
                tm.tm_hour = (int) (v % 24);
                break;
        case CMOS_DAY:
                tm.tm_mday = v >= 1 && v <= 31 ? (int) v : tm.tm_mday;
                break;
        case CMOS_MONTH:
                tm.tm_mon = v >= 1 && v <= 12 ? (int) v - 1 : tm.tm_mon;
                break;
        case CMOS_YEAR:
                tm.tm_year = (tm.tm_year + 1900) / 100 * 100 + (int) (v % 100) - 1900;
                break;
        case CMOS_CENTURY:
                tm.tm_year = (int) (v % 100) * 100 + (tm.tm_year + 1900) % 100 - 1900;
                break;
        default:
                return;
        }
        t = timegm(&tm);
        if (t != (time_t) -1)
                c->offset = (int64_t) t - (int64_t) now;
}

static void write_reg(struct cmos *c, uint8_t reg, uint8_t value, time_t now) {
        switch (reg) {
        case CMOS_SECONDS:
        case CMOS_MINUTES:
        case CMOS_HOURS:
        case CMOS_DAY:
        case CMOS_MONTH:
        case CMOS_YEAR:
        case CMOS_CENTURY:
                write_time_reg(c, reg, value, now);
                return;
        case CMOS_WEEKDAY:
                return; /* derived from the date */
        case CMOS_REG_A:
                c->ram[reg] = value & 0x7f; /* UIP is read-only */
                return;
        case CMOS_REG_C:
        case CMOS_REG_D:
                return; /* read-only */
        default:
                c->ram[reg] = value;
                return;
        }
}

uint8_t cmos_read(struct cmos *c, unsigned port, time_t now) {
        if ((port & 1) == 0)
                return 0xff; /* the index port is write-only */
        return read_reg(c, c->index, now);
}

void cmos_write(struct cmos *c, unsigned port, uint8_t value, time_t now) {
        if ((port & 1) == 0) {
                c->index = value & 0x7f; /* bit 7 is the NMI mask */
                return;
        }
        write_reg(c, c->index, value, now);
}
