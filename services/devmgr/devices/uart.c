/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "uart.h"

/* Out of loopback the lines of a connected, ready terminal. */
#define UART_MSR_IDLE (UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS)

void uart_init(struct uart *u, uart_tx_t tx, void *userdata) {
        memset(u, 0, sizeof(*u));
        u->msr = UART_MSR_IDLE;
        u->dll = 0x0c; /* 9600 baud, what a PC BIOS leaves */
        u->lcr = 0x03; /* 8n1 */
        u->tx = tx;
        u->tx_userdata = userdata;
}

static bool fifo_enabled(const struct uart *u) {
        return u->fcr & UART_FCR_ENABLE;
}

static unsigned rx_capacity(const struct uart *u) {
        return fifo_enabled(u) ? UART_FIFO_SIZE : 1;
}

static unsigned rx_trigger(const struct uart *u) {
        static const unsigned levels[4] = { 1, 4, 8, 14 };
        return fifo_enabled(u) ? levels[u->fcr >> 6] : 1;
}

unsigned uart_rx_space(const struct uart *u) {
        return rx_capacity(u) - u->rx_count;
}

void uart_receive(struct uart *u, uint8_t byte) {
        if (u->rx_count >= rx_capacity(u)) {
                u->lsr_errors |= UART_LSR_OE;
                return;
        }
        u->rx[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = byte;
        u->rx_count++;
}

static uint8_t lsr(const struct uart *u) {
        /* Transmission is instant, so THR and the shift register are empty. */
        return u->lsr_errors | UART_LSR_THRE | UART_LSR_TEMT | (u->rx_count > 0 ? UART_LSR_DR : 0);
}

/* In loopback, the modem outputs come back as its inputs. */
static uint8_t msr_lines(const struct uart *u) {
        if (u->mcr & UART_MCR_LOOP)
                return (u->mcr & UART_MCR_RTS ? UART_MSR_CTS : 0) | (u->mcr & UART_MCR_DTR ? UART_MSR_DSR : 0) |
                       (u->mcr & UART_MCR_OUT1 ? UART_MSR_RI : 0) | (u->mcr & UART_MCR_OUT2 ? UART_MSR_DCD : 0);
        return UART_MSR_IDLE;
}

static void msr_update(struct uart *u) {
        uint8_t old = u->msr, now = msr_lines(u), delta = u->msr & 0x0f;

        if ((old ^ now) & UART_MSR_CTS)
                delta |= UART_MSR_DCTS;
        if ((old ^ now) & UART_MSR_DSR)
                delta |= UART_MSR_DDSR;
        if ((old & UART_MSR_RI) && !(now & UART_MSR_RI))
                delta |= UART_MSR_TERI; /* trailing edge only */
        if ((old ^ now) & UART_MSR_DCD)
                delta |= UART_MSR_DDCD;
        u->msr = now | delta;
}

/* The highest-priority pending source, as the 16550A ranks them. */
static uint8_t iir(const struct uart *u) {
        uint8_t fifo = fifo_enabled(u) ? UART_IIR_FIFO_ENABLED : 0;

        if ((u->ier & UART_IER_RLSI) && u->lsr_errors)
                return fifo | UART_IIR_RLSI;
        if ((u->ier & UART_IER_RDI) && u->rx_count > 0)
                /* Below the trigger level the real chip raises a character
                 * timeout after 4 character times; we raise it at once. */
                return fifo | (u->rx_count >= rx_trigger(u) ? UART_IIR_RDI : UART_IIR_TIMEOUT);
        if ((u->ier & UART_IER_THRI) && u->thr_interrupt)
                return fifo | UART_IIR_THRI;
        if ((u->ier & UART_IER_MSI) && (u->msr & 0x0f))
                return fifo | UART_IIR_MSI;
        return fifo | UART_IIR_NO_INT;
}

bool uart_irq_pending(const struct uart *u) {
        return !(iir(u) & UART_IIR_NO_INT);
}

static uint8_t rx_pop(struct uart *u) {
        uint8_t b;

        if (u->rx_count == 0)
                return 0;
        b = u->rx[u->rx_head];
        u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
        u->rx_count--;
        return b;
}

static void rx_clear(struct uart *u) {
        u->rx_head = u->rx_count = 0;
}

uint8_t uart_read(struct uart *u, unsigned offset) {
        uint8_t v;

        switch (offset & 7) {
        case UART_RBR:
                if (u->lcr & UART_LCR_DLAB)
                        return u->dll;
                return rx_pop(u);
        case UART_IER:
                if (u->lcr & UART_LCR_DLAB)
                        return u->dlm;
                return u->ier;
        case UART_IIR:
                v = iir(u);
                /* Reading IIR acknowledges a THRE interrupt it reports. */
                if ((v & 0x0f) == UART_IIR_THRI)
                        u->thr_interrupt = false;
                return v;
        case UART_LCR:
                return u->lcr;
        case UART_MCR:
                return u->mcr;
        case UART_LSR:
                v = lsr(u);
                u->lsr_errors = 0; /* error bits clear on read */
                return v;
        case UART_MSR:
                v = u->msr;
                u->msr &= 0xf0; /* deltas clear on read */
                return v;
        default: /* UART_SCR */
                return u->scr;
        }
}

void uart_write(struct uart *u, unsigned offset, uint8_t value) {
        switch (offset & 7) {
        case UART_THR:
                if (u->lcr & UART_LCR_DLAB) {
                        u->dll = value;
                        return;
                }
                if (u->mcr & UART_MCR_LOOP)
                        uart_receive(u, value);
                else if (u->tx)
                        u->tx(u->tx_userdata, value);
                /* Sent at once: THR is empty again, which is an interrupt. */
                u->thr_interrupt = true;
                return;
        case UART_IER:
                if (u->lcr & UART_LCR_DLAB) {
                        u->dlm = value;
                        return;
                }
                /* Enabling THRI with THR empty raises it at once (Linux's
                 * 8250 driver relies on this to start transmitting). */
                if ((value & UART_IER_THRI) && !(u->ier & UART_IER_THRI))
                        u->thr_interrupt = true;
                u->ier = value & 0x0f;
                return;
        case UART_FCR:
                if ((value ^ u->fcr) & UART_FCR_ENABLE)
                        rx_clear(u); /* switching modes empties the FIFOs */
                if (value & UART_FCR_CLEAR_RX)
                        rx_clear(u);
                u->fcr = value & 0xc1; /* clear bits self-reset */
                return;
        case UART_LCR:
                u->lcr = value;
                return;
        case UART_MCR:
                u->mcr = value & 0x1f;
                msr_update(u);
                return;
        case UART_LSR:
        case UART_MSR:
                return; /* read-only; writes are for factory tests */
        default: /* UART_SCR */
                u->scr = value;
                return;
        }
}
