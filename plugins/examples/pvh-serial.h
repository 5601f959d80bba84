/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The PVH example's 16550A UART (COM1), the registers a driver that polls
 * LSR for output and takes input by the RX interrupt uses: THR/RBR, IER,
 * IIR/FCR, LCR (with DLAB and the divisor latch), MCR, LSR, MSR, SCR.
 * Transmitting is instant (THR is always empty again); received bytes wait
 * in a FIFO. Pure: the plugin moves the bytes and the irq line. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PVH_SERIAL_PORT 0x3f8
#define PVH_SERIAL_PORTS 8
#define PVH_SERIAL_IRQ 4
#define PVH_SERIAL_RX_MAX 4096

#define UART_LSR_DR   0x01 /* data ready */
#define UART_LSR_THRE 0x20 /* transmit holding register empty */
#define UART_LSR_TEMT 0x40 /* transmitter empty */
#define UART_IER_RDI  0x01
#define UART_IER_THRI 0x02
#define UART_IIR_NONE 0x01
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI  0x04

struct pvh_serial {
        uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
        bool thr_irq; /* THR became empty since IIR last said so */
        uint8_t rx[PVH_SERIAL_RX_MAX];
        size_t rx_head, rx_len;
};

void pvh_serial_init(struct pvh_serial *s);
/* A guest write of value at register offset (0..7); returns the byte sent
 * when it is a THR write, else -1. */
int pvh_serial_write(struct pvh_serial *s, unsigned offset, uint8_t value);
/* A guest read of register offset (0..7). */
uint8_t pvh_serial_read(struct pvh_serial *s, unsigned offset);
/* Queues received bytes; how many fit. */
size_t pvh_serial_receive(struct pvh_serial *s, const void *data, size_t len);
/* The level the UART drives its interrupt line at now. */
bool pvh_serial_irq(const struct pvh_serial *s);
