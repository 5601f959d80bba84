/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "console.h"
#include "io.h"

#define UART_RBR 0 /* DLAB=0, read */
#define UART_THR 0 /* DLAB=0, write */
#define UART_DLL 0 /* DLAB=1 */
#define UART_IER 1
#define UART_DLM 1 /* DLAB=1 */
#define UART_IIR 2
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6

#define LCR_DLAB 0x80
#define LCR_8N1 0x03
#define FCR_ENABLE_CLEAR 0x07 /* FIFO on, clear both, RX trigger at 1 byte */
#define MCR_DTR_RTS_OUT2 0x0b /* OUT2 gates the IRQ line on a PC */
#define IER_RDI 0x01
#define LSR_DR 0x01
#define LSR_THRE 0x20

/* Bounded so a missing or stuck UART cannot hang the guest. */
#define THRE_POLL_MAX 100000

static char rx_ring[256];
static volatile unsigned rx_head, rx_tail;

void console_init(void) {
        /* The sequence Linux's 8250 driver uses: 115200 8N1, FIFO, modem
         * control lines up, interrupts off until the IOAPIC is ready. */
        outb(COM1_PORT + UART_IER, 0);
        outb(COM1_PORT + UART_LCR, LCR_DLAB);
        outb(COM1_PORT + UART_DLL, 1);
        outb(COM1_PORT + UART_DLM, 0);
        outb(COM1_PORT + UART_LCR, LCR_8N1);
        outb(COM1_PORT + UART_FCR, FCR_ENABLE_CLEAR);
        outb(COM1_PORT + UART_MCR, MCR_DTR_RTS_OUT2);
        (void) inb(COM1_PORT + UART_LSR);
        (void) inb(COM1_PORT + UART_RBR);
        (void) inb(COM1_PORT + UART_IIR);
        (void) inb(COM1_PORT + UART_MSR);
}

void console_enable_rx_irq(void) {
        outb(COM1_PORT + UART_IER, IER_RDI);
}

static void putc_raw(char c) {
        for (unsigned i = 0; i < THRE_POLL_MAX; i++)
                if (inb(COM1_PORT + UART_LSR) & LSR_THRE)
                        break;
        outb(COM1_PORT + UART_THR, (uint8_t) c);
}

void console_putc(char c) {
        if (c == '\n')
                putc_raw('\r');
        putc_raw(c);
}

void console_puts(const char *s) {
        while (*s)
                console_putc(*s++);
}

void console_rx_irq(void) {
        /* Bounded: a UART that always reports data must not wedge us. */
        for (unsigned i = 0; i < 64 && (inb(COM1_PORT + UART_LSR) & LSR_DR); i++) {
                char c = (char) inb(COM1_PORT + UART_RBR);
                unsigned next = (rx_head + 1) % sizeof(rx_ring);
                if (next != rx_tail) { /* drop on overflow */
                        rx_ring[rx_head] = c;
                        rx_head = next;
                }
        }
        (void) inb(COM1_PORT + UART_IIR);
}

bool console_getc(char *ret) {
        if (rx_tail == rx_head)
                return false;
        *ret = rx_ring[rx_tail];
        rx_tail = (rx_tail + 1) % sizeof(rx_ring);
        return true;
}
