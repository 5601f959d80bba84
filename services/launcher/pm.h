/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* ACPI fixed-hardware power management and the reset registers, decoded in
 * the launcher because their only effect is on the VM's life: PM1a event
 * block (status/enable, power button), PM1a control (SLP_TYP/SLP_EN for S5),
 * the FADT reset register and the i8042 reset command. Ports: layout.h. */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum pm_action {
        PM_NONE = -1,
        PM_POWEROFF = 0,
        PM_REBOOT = 1,
};

struct pm {
        pthread_mutex_t lock;
        uint16_t sts, en, cnt;
        /* Sets the SCI line level; called with lock held. */
        void (*set_sci)(void *userdata, bool level);
        void *userdata;
};

void pm_init(struct pm *pm, void (*set_sci)(void *userdata, bool level), void *userdata);
/* Back to power-on values (no event enabled or pending), for a VM restart:
 * a power-button press left over from the last run must not stop the next. */
void pm_reset(struct pm *pm);
void pm_done(struct pm *pm);

/* Whether [port, port+len) touches a port pm decodes (device ranges must not). */
bool pm_port_is_ours(uint64_t port, uint64_t len);
/* Whether a guest access of size bytes at port goes to pm_io(): like the
 * above, except that only a byte at the reset port is the reset register. */
bool pm_access_is_ours(uint16_t port, uint32_t size);

/* A guest access to one of our ports; returns what the VM must do. */
enum pm_action pm_io(struct pm *pm, uint16_t port, uint8_t *data, uint32_t size, bool is_write);

/* The power button: sets PWRBTN_STS and raises the SCI if the guest enabled it.
 * Returns whether the guest had enabled the power button event. */
bool pm_press_power_button(struct pm *pm);
