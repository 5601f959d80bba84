/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The ACPI power button, handled the way Linux does: PWRBTN_EN in PM1a_EN,
 * the SCI through the IOAPIC, and a handler that acknowledges PWRBTN_STS.
 * The power-off itself runs outside the interrupt (it sleeps while the VMM
 * acts), from the shell's idle loop, as Linux hands it to user space. */

#include <stdbool.h>
#include <stdint.h>

/* Enters ACPI mode if needed, enables the power button event and routes
 * the SCI to VEC_SCI on this CPU. Prints one line saying what it did. */
void pm_init(void);

/* The SCI handler (CPL 0, interrupts off): acknowledges PWRBTN_STS. */
void pm_sci_irq(void);

/* True once per power button press seen by pm_sci_irq(). */
bool pm_take_button_press(void);

/* Prints PM1a_STS, PM1a_EN and PM1a_CNT (the `pm` command). */
void pm_dump(void);
