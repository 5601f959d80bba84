/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The register model of a 16550A UART, without any I/O: the serial device
 * kind feeds it port accesses and console input, and collects what it
 * transmits. Transmission is instant (THR is always empty again at once). */

#include <stdbool.h>
#include <stdint.h>

#define UART_FIFO_SIZE 16

/* Register offsets from the base port. */
enum {
        UART_RBR = 0, /* read, DLAB=0 */
        UART_THR = 0, /* write, DLAB=0 */
        UART_DLL = 0, /* DLAB=1 */
        UART_IER = 1, /* DLAB=0 */
        UART_DLM = 1, /* DLAB=1 */
        UART_IIR = 2, /* read */
        UART_FCR = 2, /* write */
        UART_LCR = 3,
        UART_MCR = 4,
        UART_LSR = 5,
        UART_MSR = 6,
        UART_SCR = 7,
};

#define UART_IER_RDI 0x01  /* received data available */
#define UART_IER_THRI 0x02 /* transmit holding register empty */
#define UART_IER_RLSI 0x04 /* receiver line status */
#define UART_IER_MSI 0x08  /* modem status */

#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI 0x00
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI 0x04
#define UART_IIR_RLSI 0x06
#define UART_IIR_TIMEOUT 0x0c
#define UART_IIR_FIFO_ENABLED 0xc0

#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_FCR_CLEAR_TX 0x04

#define UART_LCR_DLAB 0x80

#define UART_MCR_DTR 0x01
#define UART_MCR_RTS 0x02
#define UART_MCR_OUT1 0x04
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10

#define UART_LSR_DR 0x01
#define UART_LSR_OE 0x02
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

#define UART_MSR_DCTS 0x01
#define UART_MSR_DDSR 0x02
#define UART_MSR_TERI 0x04
#define UART_MSR_DDCD 0x08
#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI 0x40
#define UART_MSR_DCD 0x80

typedef void (*uart_tx_t)(void *userdata, uint8_t byte);

struct uart {
        uint8_t rx[UART_FIFO_SIZE];
        unsigned rx_head, rx_count;
        uint8_t ier, fcr, lcr, mcr, lsr_errors, msr, scr, dll, dlm;
        bool thr_interrupt; /* THRE interrupt pending until IIR read or THR write */
        uart_tx_t tx;
        void *tx_userdata;
};

void uart_init(struct uart *u, uart_tx_t tx, void *userdata);
uint8_t uart_read(struct uart *u, unsigned offset);
void uart_write(struct uart *u, unsigned offset, uint8_t value);
/* Bytes the receiver can take now (the FIFO, or the single holding register). */
unsigned uart_rx_space(const struct uart *u);
/* Queues a byte from the outside; when full it is dropped and overrun set. */
void uart_receive(struct uart *u, uint8_t byte);
/* Whether the interrupt output is active (IIR bit 0 clear). */
bool uart_irq_pending(const struct uart *u);
