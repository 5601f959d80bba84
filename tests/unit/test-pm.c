/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The launcher's ACPI PM1 / reset decoding, as a guest drives it. */
#include <glib.h>
#include <string.h>

#include "layout.h"
#include "pm.h"

static int sci_level = -1;

static void set_sci(void *userdata, bool level) {
        sci_level = level;
}

static enum pm_action out16(struct pm *pm, uint16_t port, uint16_t value) {
        uint8_t data[2] = { value & 0xff, value >> 8 };
        return pm_io(pm, port, data, 2, true);
}

static uint16_t in16(struct pm *pm, uint16_t port) {
        uint8_t data[2];
        g_assert_cmpint(pm_io(pm, port, data, 2, false), ==, PM_NONE);
        return (uint16_t) (data[0] | data[1] << 8);
}

/* Linux writes SLP_TYP first and SLP_EN in a second write; only the second acts. */
static void test_s5_powers_off_only_with_slp_en(void) {
        struct pm pm;

        pm_init(&pm, set_sci, NULL);
        g_assert_cmpint(out16(&pm, LAYOUT_PM1A_CNT_PORT, LAYOUT_SLP_TYP_S5 << 10), ==, PM_NONE);
        g_assert_cmphex(in16(&pm, LAYOUT_PM1A_CNT_PORT) & 0x1c00, ==, LAYOUT_SLP_TYP_S5 << 10);
        g_assert_cmpint(out16(&pm, LAYOUT_PM1A_CNT_PORT, LAYOUT_SLP_TYP_S5 << 10 | 1 << 13), ==, PM_POWEROFF);
        /* SLP_EN reads back as zero, SCI_EN as one. */
        g_assert_cmphex(in16(&pm, LAYOUT_PM1A_CNT_PORT) & (1 << 13), ==, 0);
        g_assert_cmphex(in16(&pm, LAYOUT_PM1A_CNT_PORT) & 1, ==, 1);
        pm_done(&pm);
}

static void test_other_sleep_types_do_nothing(void) {
        struct pm pm;

        pm_init(&pm, set_sci, NULL);
        for (unsigned typ = 0; typ < 8; typ++)
                if (typ != LAYOUT_SLP_TYP_S5)
                        g_assert_cmpint(out16(&pm, LAYOUT_PM1A_CNT_PORT, typ << 10 | 1 << 13), ==, PM_NONE);
        pm_done(&pm);
}

static void test_reset_register_and_i8042(void) {
        struct pm pm;
        uint8_t v;

        pm_init(&pm, set_sci, NULL);
        v = 0x02;
        g_assert_cmpint(pm_io(&pm, LAYOUT_RESET_PORT, &v, 1, true), ==, PM_NONE);
        v = LAYOUT_RESET_VALUE;
        g_assert_cmpint(pm_io(&pm, LAYOUT_RESET_PORT, &v, 1, true), ==, PM_REBOOT);
        v = 0xfe;
        g_assert_cmpint(pm_io(&pm, 0x64, &v, 1, true), ==, PM_REBOOT);
        v = 0xaa;
        g_assert_cmpint(pm_io(&pm, 0x64, &v, 1, true), ==, PM_NONE);
        /* The i8042 status reads "nothing pending" so probes give up at once. */
        g_assert_cmpint(pm_io(&pm, 0x64, &v, 1, false), ==, PM_NONE);
        g_assert_cmphex(v, ==, 0);
        pm_done(&pm);
}

/* The power button raises the SCI only once enabled; clearing the status
 * (write one to clear) lowers it. */
static void test_power_button_raises_and_clears_sci(void) {
        struct pm pm;

        pm_init(&pm, set_sci, NULL);
        sci_level = -1;
        g_assert_false(pm_press_power_button(&pm));
        g_assert_cmpint(sci_level, ==, 0);
        g_assert_cmphex(in16(&pm, LAYOUT_PM1A_EVT_PORT) & 0x100, ==, 0x100);

        g_assert_cmpint(out16(&pm, LAYOUT_PM1A_EVT_PORT + 2, 0x100), ==, PM_NONE);
        g_assert_cmpint(sci_level, ==, 1);
        g_assert_cmpint(out16(&pm, LAYOUT_PM1A_EVT_PORT, 0x100), ==, PM_NONE);
        g_assert_cmpint(sci_level, ==, 0);
        g_assert_cmphex(in16(&pm, LAYOUT_PM1A_EVT_PORT), ==, 0);

        g_assert_true(pm_press_power_button(&pm));
        g_assert_cmpint(sci_level, ==, 1);
        pm_done(&pm);
}

/* Byte-wide accesses to the 16-bit registers work like word ones. */
static void test_byte_accesses(void) {
        struct pm pm;
        uint8_t v;

        pm_init(&pm, set_sci, NULL);
        v = 0x01; /* PWRBTN_EN is bit 8: high byte of PM1_EN */
        g_assert_cmpint(pm_io(&pm, LAYOUT_PM1A_EVT_PORT + 3, &v, 1, true), ==, PM_NONE);
        g_assert_cmphex(in16(&pm, LAYOUT_PM1A_EVT_PORT + 2), ==, 0x100);
        v = (LAYOUT_SLP_TYP_S5 << 2) | (1 << 5); /* high byte of PM1_CNT */
        g_assert_cmpint(pm_io(&pm, LAYOUT_PM1A_CNT_PORT + 1, &v, 1, true), ==, PM_POWEROFF);
        pm_done(&pm);
}

static void test_ports_claimed(void) {
        g_assert_true(pm_port_is_ours(LAYOUT_PM1A_EVT_PORT, 4));
        g_assert_true(pm_port_is_ours(LAYOUT_PM1A_CNT_PORT + 1, 1));
        g_assert_true(pm_port_is_ours(0x5f0, 0x20));
        g_assert_true(pm_port_is_ours(LAYOUT_RESET_PORT, 1));
        g_assert_false(pm_port_is_ours(0x3f8, 8));
        g_assert_false(pm_port_is_ours(0x606, 2));
}

/* Only a byte at 0xCF9 is the reset control register: a dword at 0xCF8 is
 * PCI CONFIG_ADDRESS and must go on to whatever decodes config space. */
static void test_pci_config_address_is_not_the_reset_port(void) {
        g_assert_false(pm_access_is_ours(0xcf8, 4));
        g_assert_false(pm_access_is_ours(0xcf8, 2));
        g_assert_false(pm_access_is_ours(LAYOUT_RESET_PORT, 2));
        g_assert_false(pm_access_is_ours(0xcfc, 4));
        g_assert_true(pm_access_is_ours(LAYOUT_RESET_PORT, 1));
        g_assert_true(pm_access_is_ours(LAYOUT_PM1A_EVT_PORT, 4));
        g_assert_true(pm_access_is_ours(LAYOUT_PM1A_CNT_PORT + 1, 1));
        g_assert_true(pm_access_is_ours(0x64, 1));
        g_assert_false(pm_access_is_ours(0x3f8, 1));
}

/* A restarted VM starts with power-on PM state: a press left from the last
 * run must not shut the new guest down once it enables the button. */
static void test_reset_forgets_the_last_runs_button_press(void) {
        struct pm pm;

        pm_init(&pm, set_sci, NULL);
        g_assert_cmpint(out16(&pm, LAYOUT_PM1A_EVT_PORT + 2, 0x100), ==, PM_NONE);
        g_assert_true(pm_press_power_button(&pm));
        g_assert_cmpint(out16(&pm, LAYOUT_PM1A_CNT_PORT, 3 << 10), ==, PM_NONE);

        pm_reset(&pm);
        g_assert_cmphex(in16(&pm, LAYOUT_PM1A_EVT_PORT), ==, 0);
        g_assert_cmphex(in16(&pm, LAYOUT_PM1A_EVT_PORT + 2), ==, 0);
        g_assert_cmphex(in16(&pm, LAYOUT_PM1A_CNT_PORT), ==, 1); /* SCI_EN only */
        sci_level = -1;
        g_assert_cmpint(out16(&pm, LAYOUT_PM1A_EVT_PORT + 2, 0x100), ==, PM_NONE);
        g_assert_cmpint(sci_level, ==, 0);
        pm_done(&pm);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/pm/s5-powers-off-only-with-slp-en", test_s5_powers_off_only_with_slp_en);
        g_test_add_func("/pm/other-sleep-types-do-nothing", test_other_sleep_types_do_nothing);
        g_test_add_func("/pm/reset-register-and-i8042", test_reset_register_and_i8042);
        g_test_add_func("/pm/power-button-raises-and-clears-sci", test_power_button_raises_and_clears_sci);
        g_test_add_func("/pm/byte-accesses", test_byte_accesses);
        g_test_add_func("/pm/ports-claimed", test_ports_claimed);
        g_test_add_func("/pm/pci-config-address-is-not-the-reset-port", test_pci_config_address_is_not_the_reset_port);
        g_test_add_func("/pm/reset-forgets-the-last-runs-button-press", test_reset_forgets_the_last_runs_button_press);
        return g_test_run();
}
