/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "layout.h"
#include "pm.h"

#define PM1_PWRBTN (1u << 8)  /* PWRBTN_STS / PWRBTN_EN */
#define PM1_SCI_EN (1u << 0)  /* in PM1_CNT: ACPI mode, always on (no SMI_CMD) */
#define PM1_SLP_EN (1u << 13)
#define PM1_SLP_TYP(cnt) (((cnt) >> 10) & 7)
#define I8042_CMD_PORT 0x64
#define I8042_RESET 0xfe

void pm_init(struct pm *pm, void (*set_sci)(void *userdata, bool level), void *userdata) {
        memset(pm, 0, sizeof(*pm));
        pthread_mutex_init(&pm->lock, NULL);
        pm->cnt = PM1_SCI_EN;
        pm->set_sci = set_sci;
        pm->userdata = userdata;
}

void pm_reset(struct pm *pm) {
        pthread_mutex_lock(&pm->lock);
        pm->sts = pm->en = 0;
        pm->cnt = PM1_SCI_EN;
        pthread_mutex_unlock(&pm->lock);
}

void pm_done(struct pm *pm) {
        pthread_mutex_destroy(&pm->lock);
}

bool pm_port_is_ours(uint64_t port, uint64_t len) {
        static const struct { uint64_t base, len; } ours[] = {
                { LAYOUT_PM1A_EVT_PORT, 4 },
                { LAYOUT_PM1A_CNT_PORT, 2 },
                { LAYOUT_RESET_PORT, 1 },
                { I8042_CMD_PORT, 1 },
        };
        for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
                if (port < ours[i].base + ours[i].len && ours[i].base < port + len)
                        return true;
        return false;
}

bool pm_access_is_ours(uint16_t port, uint32_t size) {
        /* The reset control register is only a byte access to 0xCF9, as on
         * PC chipsets: a dword at 0xCF8 is PCI CONFIG_ADDRESS. */
        if (port == LAYOUT_RESET_PORT)
                return size == 1;
        if (port + size > LAYOUT_RESET_PORT && port < LAYOUT_RESET_PORT + 1)
                return false;
        return pm_port_is_ours(port, size);
}

static void pm_update_sci(struct pm *pm) {
        if (pm->set_sci)
                pm->set_sci(pm->userdata, (pm->sts & pm->en & PM1_PWRBTN) != 0);
}

/* Reads and writes of 16-bit registers may come as two byte accesses. */
static void reg_access(uint16_t *reg, unsigned offset, uint8_t *data, uint32_t size, bool is_write, bool w1c) {
        for (uint32_t i = 0; i < size && offset + i < 2; i++) {
                unsigned shift = 8 * (offset + i);
                if (!is_write)
                        data[i] = (uint8_t) (*reg >> shift);
                else if (w1c)
                        *reg &= (uint16_t) ~((uint16_t) data[i] << shift);
                else
                        *reg = (uint16_t) ((*reg & ~(0xffu << shift)) | ((unsigned) data[i] << shift));
        }
}

enum pm_action pm_io(struct pm *pm, uint16_t port, uint8_t *data, uint32_t size, bool is_write) {
        enum pm_action action = PM_NONE;

        if (!is_write)
                memset(data, 0xff, size);

        pthread_mutex_lock(&pm->lock);
        if (port >= LAYOUT_PM1A_EVT_PORT && port < LAYOUT_PM1A_EVT_PORT + 2) {
                /* PM1_STS: write one to clear. */
                reg_access(&pm->sts, port - LAYOUT_PM1A_EVT_PORT, data, size, is_write, true);
                pm_update_sci(pm);
        } else if (port >= LAYOUT_PM1A_EVT_PORT + 2 && port < LAYOUT_PM1A_EVT_PORT + 4) {
                reg_access(&pm->en, port - LAYOUT_PM1A_EVT_PORT - 2, data, size, is_write, false);
                pm_update_sci(pm);
        } else if (port >= LAYOUT_PM1A_CNT_PORT && port < LAYOUT_PM1A_CNT_PORT + 2) {
                reg_access(&pm->cnt, port - LAYOUT_PM1A_CNT_PORT, data, size, is_write, false);
                pm->cnt |= PM1_SCI_EN;
                if (is_write && (pm->cnt & PM1_SLP_EN)) {
                        pm->cnt &= (uint16_t) ~PM1_SLP_EN; /* SLP_EN reads as zero */
                        if (PM1_SLP_TYP(pm->cnt) == LAYOUT_SLP_TYP_S5)
                                action = PM_POWEROFF;
                }
        } else if (port == LAYOUT_RESET_PORT) {
                if (is_write && size >= 1 && data[0] == LAYOUT_RESET_VALUE)
                        action = PM_REBOOT;
        } else if (port == I8042_CMD_PORT) {
                /* No keyboard controller: a status read of 0xff would make
                 * Linux wait for it, so report "empty, nothing pending". */
                if (!is_write)
                        memset(data, 0, size);
                else if (size >= 1 && data[0] == I8042_RESET)
                        action = PM_REBOOT;
        }
        pthread_mutex_unlock(&pm->lock);
        return action;
}

bool pm_press_power_button(struct pm *pm) {
        bool enabled;

        pthread_mutex_lock(&pm->lock);
        pm->sts |= PM1_PWRBTN;
        enabled = pm->en & PM1_PWRBTN;
        pm_update_sci(pm);
        pthread_mutex_unlock(&pm->lock);
        return enabled;
}
