/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The serial console: a 16550A on COM1. Output polls LSR.THRE; input comes
 * through the RX interrupt into a small ring that the shell drains. */

#include <stdbool.h>

#define COM1_PORT 0x3f8
#define COM1_IRQ 4

void console_init(void);
void console_putc(char c);
void console_puts(const char *s);

/* Enables the RX interrupt (call after the IOAPIC routes the IRQ). */
void console_enable_rx_irq(void);
/* The interrupt handler: moves received bytes into the ring. */
void console_rx_irq(void);
/* Takes one received byte; false if the ring is empty. */
bool console_getc(char *ret);
