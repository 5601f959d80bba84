/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The CMOS RTC model (services/devmgr/devices/cmos.c) with a fixed clock:
 * what Linux's mc146818 helpers read, in BCD and binary, 24 and 12 hour. */
#include <glib.h>
#include <time.h>

#include "cmos.h"

/* 2026-11-25 16:07:09 UTC, a Wednesday. */
static time_t fixed_now(void) {
        struct tm tm = { .tm_year = 126, .tm_mon = 10, .tm_mday = 25, .tm_hour = 16, .tm_min = 7, .tm_sec = 9 };
        return timegm(&tm);
}

static uint8_t reg(struct cmos *c, uint8_t index, time_t now) {
        cmos_write(c, 0, index, now);
        return cmos_read(c, 1, now);
}

static void set_reg(struct cmos *c, uint8_t index, uint8_t value, time_t now) {
        cmos_write(c, 0, index, now);
        cmos_write(c, 1, value, now);
}

static void test_time_in_bcd(void) {
        struct cmos c;
        time_t now = fixed_now();
        cmos_init(&c);
        g_assert_cmphex(reg(&c, CMOS_SECONDS, now), ==, 0x09);
        g_assert_cmphex(reg(&c, CMOS_MINUTES, now), ==, 0x07);
        g_assert_cmphex(reg(&c, CMOS_HOURS, now), ==, 0x16);
        g_assert_cmphex(reg(&c, CMOS_WEEKDAY, now), ==, 0x04); /* Sunday = 1 */
        g_assert_cmphex(reg(&c, CMOS_DAY, now), ==, 0x25);
        g_assert_cmphex(reg(&c, CMOS_MONTH, now), ==, 0x11);
        g_assert_cmphex(reg(&c, CMOS_YEAR, now), ==, 0x26);
        g_assert_cmphex(reg(&c, CMOS_CENTURY, now), ==, 0x20);
        /* The clock runs with the host's. */
        g_assert_cmphex(reg(&c, CMOS_SECONDS, now + 61), ==, 0x10);
        g_assert_cmphex(reg(&c, CMOS_MINUTES, now + 61), ==, 0x08);
}

static void test_status_registers(void) {
        struct cmos c;
        time_t now = fixed_now();
        cmos_init(&c);
        g_assert_cmphex(reg(&c, CMOS_REG_A, now) & 0x80, ==, 0); /* no update in progress */
        g_assert_cmphex(reg(&c, CMOS_REG_A, now), ==, 0x26);
        g_assert_cmphex(reg(&c, CMOS_REG_B, now), ==, CMOS_B_24H); /* 24 h, BCD */
        g_assert_cmphex(reg(&c, CMOS_REG_C, now), ==, 0);
        g_assert_cmphex(reg(&c, CMOS_REG_D, now), ==, CMOS_D_VRT);
        /* D and C are read-only; A's UIP bit too. */
        set_reg(&c, CMOS_REG_D, 0, now);
        g_assert_cmphex(reg(&c, CMOS_REG_D, now), ==, CMOS_D_VRT);
        set_reg(&c, CMOS_REG_A, 0xa6, now);
        g_assert_cmphex(reg(&c, CMOS_REG_A, now), ==, 0x26);
        /* B is the guest's to set (rtc_cmos toggles its interrupt enables). */
        set_reg(&c, CMOS_REG_B, CMOS_B_24H | 0x10, now);
        g_assert_cmphex(reg(&c, CMOS_REG_B, now), ==, CMOS_B_24H | 0x10);
}

static void test_binary_and_12_hour_modes(void) {
        struct cmos c;
        time_t now = fixed_now();
        cmos_init(&c);
        set_reg(&c, CMOS_REG_B, CMOS_B_24H | CMOS_B_DM_BINARY, now);
        g_assert_cmpuint(reg(&c, CMOS_HOURS, now), ==, 16);
        g_assert_cmpuint(reg(&c, CMOS_DAY, now), ==, 25);
        g_assert_cmpuint(reg(&c, CMOS_YEAR, now), ==, 26);
        set_reg(&c, CMOS_REG_B, 0, now); /* BCD, 12 hour */
        g_assert_cmphex(reg(&c, CMOS_HOURS, now), ==, CMOS_HOUR_PM | 0x04);
        g_assert_cmphex(reg(&c, CMOS_HOURS, now - 16 * 3600), ==, 0x12); /* midnight is 12 AM */
}

static void test_index_port(void) {
        struct cmos c;
        time_t now = fixed_now();
        cmos_init(&c);
        /* Bit 7 of the index is the NMI mask, not part of the index. */
        cmos_write(&c, 0, 0x80 | CMOS_REG_D, now);
        g_assert_cmphex(cmos_read(&c, 1, now), ==, CMOS_D_VRT);
        g_assert_cmphex(cmos_read(&c, 0, now), ==, 0xff); /* write-only */
        /* Plain CMOS RAM keeps what is written. */
        set_reg(&c, 0x40, 0x5a, now);
        g_assert_cmphex(reg(&c, 0x40, now), ==, 0x5a);
        set_reg(&c, 0x7f, 0x33, now);
        g_assert_cmphex(reg(&c, 0x7f, now), ==, 0x33);
}

/* hwclock --systohc: written time registers move the guest clock, which
 * keeps running from there. */
static void test_setting_the_time(void) {
        struct cmos c;
        time_t now = fixed_now();
        cmos_init(&c);
        set_reg(&c, CMOS_REG_B, CMOS_B_24H | CMOS_B_SET, now);
        set_reg(&c, CMOS_YEAR, 0x30, now);
        set_reg(&c, CMOS_MONTH, 0x01, now);
        set_reg(&c, CMOS_DAY, 0x02, now);
        set_reg(&c, CMOS_HOURS, 0x03, now);
        set_reg(&c, CMOS_MINUTES, 0x04, now);
        set_reg(&c, CMOS_SECONDS, 0x05, now);
        set_reg(&c, CMOS_REG_B, CMOS_B_24H, now);
        g_assert_cmphex(reg(&c, CMOS_YEAR, now + 10), ==, 0x30);
        g_assert_cmphex(reg(&c, CMOS_MONTH, now + 10), ==, 0x01);
        g_assert_cmphex(reg(&c, CMOS_DAY, now + 10), ==, 0x02);
        g_assert_cmphex(reg(&c, CMOS_HOURS, now + 10), ==, 0x03);
        g_assert_cmphex(reg(&c, CMOS_SECONDS, now + 10), ==, 0x15);
        /* Nonsense values are ignored, not wrapped into another date. */
        set_reg(&c, CMOS_MONTH, 0x13, now);
        g_assert_cmphex(reg(&c, CMOS_MONTH, now), ==, 0x01);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/rtc/time-in-bcd", test_time_in_bcd);
        g_test_add_func("/rtc/status-registers", test_status_registers);
        g_test_add_func("/rtc/binary-and-12-hour-modes", test_binary_and_12_hour_modes);
        g_test_add_func("/rtc/index-port", test_index_port);
        g_test_add_func("/rtc/setting-the-time", test_setting_the_time);
        return g_test_run();
}
