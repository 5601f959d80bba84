/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "acpi.h"
#include "apic.h"
#include "console.h"
#include "cpu.h"
#include "io.h"
#include "lib.h"
#include "pm.h"

#define PM1_PWRBTN (1u << 8) /* PWRBTN_STS in PM1_STS, PWRBTN_EN in PM1_EN */
#define PM1_SCI_EN (1u << 0) /* PM1_CNT: the chipset is in ACPI mode */
#define ACPI_MODE_WAIT_NS 3000000000ULL /* Linux waits up to 3 s as well */

static bool pm1_evt_ok; /* PM1a_EVT is a usable I/O block of 16-bit registers */
static bool pm1_cnt_ok;
static uint16_t pm1_sts_port, pm1_en_port;
static volatile bool button_pressed;

static bool sci_enabled(void) {
        return inw((uint16_t) acpi.pm1a_cnt) & PM1_SCI_EN;
}

/* Linux's acpi_enable(): firmware that starts in legacy mode takes the
 * FADT's ACPI_ENABLE value on its SMI command port and then sets SCI_EN. */
static void enter_acpi_mode(void) {
        if (!pm1_cnt_ok || sci_enabled())
                return;
        if (!acpi.smi_cmd || acpi.smi_cmd > 0xffff || !acpi.acpi_enable) {
                console_puts("pm: SCI_EN is clear and there is no SMI_CMD to set it\n");
                return;
        }
        outb((uint16_t) acpi.smi_cmd, acpi.acpi_enable);
        if (!wait_until(sci_enabled, ACPI_MODE_WAIT_NS))
                kprintf("pm: SCI_EN still clear after ACPI_ENABLE to port 0x%x\n", acpi.smi_cmd);
}

void pm_init(void) {
        if (!acpi.have_fadt) {
                console_puts("pm: no FADT, no power button\n");
                return;
        }
        if (acpi.hw_reduced) {
                console_puts("pm: hardware-reduced ACPI, no PM1 power button\n");
                return;
        }
        pm1_cnt_ok = acpi.pm1a_cnt && acpi.pm1a_cnt <= 0xffff;
        if (!acpi.pm1a_evt || acpi.pm1a_evt > 0xffff - 3 || acpi.pm1_evt_len < 4 || acpi.pm1_evt_len % 2) {
                kprintf("pm: no usable PM1a event block (0x%x len %u), no power button\n", acpi.pm1a_evt,
                        acpi.pm1_evt_len);
                return;
        }
        if (!acpi.have_ioapic) {
                console_puts("pm: no IOAPIC in the MADT, no power button\n");
                return;
        }
        pm1_sts_port = (uint16_t) acpi.pm1a_evt;
        pm1_en_port = (uint16_t) (acpi.pm1a_evt + acpi.pm1_evt_len / 2);
        pm1_evt_ok = true;

        enter_acpi_mode();
        /* Quiet first: only our event enabled, a stale press forgotten. */
        outw(pm1_en_port, 0);
        outw(pm1_sts_port, PM1_PWRBTN);

        uint16_t flags;
        uint32_t gsi = acpi_sci_gsi(&flags);
        if (!ioapic_route(acpi.ioapic_addr, acpi.ioapic_gsi_base, gsi, VEC_SCI, flags, lapic_id())) {
                kprintf("pm: sci gsi %u is not on the IOAPIC, no power button\n", gsi);
                return;
        }
        outw(pm1_en_port, PM1_PWRBTN);
        kprintf("pm: power button enabled, sci irq %u -> gsi %u flags 0x%x -> vector 0x%x\n", acpi.sci_irq, gsi,
                flags, VEC_SCI);
}

void pm_sci_irq(void) {
        if (!pm1_evt_ok)
                return;
        /* Clearing the status drops the level-triggered SCI before the EOI
         * that lets the IOAPIC deliver this pin again. */
        if (inw(pm1_sts_port) & PM1_PWRBTN) {
                outw(pm1_sts_port, PM1_PWRBTN);
                button_pressed = true;
        }
}

bool pm_take_button_press(void) {
        if (!button_pressed)
                return false;
        button_pressed = false;
        return true;
}

void pm_dump(void) {
        if (acpi.hw_reduced) {
                kprintf("pm: hardware-reduced ACPI, SLEEP_CONTROL_REG space %u addr 0x%lx, SLEEP_STATUS_REG "
                        "space %u addr 0x%lx\n", acpi.sleep_control.space_id, acpi.sleep_control.address,
                        acpi.sleep_status.space_id, acpi.sleep_status.address);
                return;
        }
        if (pm1_evt_ok)
                kprintf("pm: PM1a_STS 0x%04x PM1a_EN 0x%04x", inw(pm1_sts_port), inw(pm1_en_port));
        else
                console_puts("pm: PM1a_STS - PM1a_EN -");
        if (pm1_cnt_ok)
                kprintf(" PM1a_CNT 0x%04x\n", inw((uint16_t) acpi.pm1a_cnt));
        else
                console_puts(" PM1a_CNT -\n");
}
