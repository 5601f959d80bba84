/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The 16550A register model (services/devmgr/devices/uart.c) as Linux's
 * 8250 driver uses it: divisor latch, transmit, receive FIFO, interrupt
 * identification and priorities, line and modem status, loopback. */
#include <glib.h>
#include <string.h>

#include "uart.h"

struct sink {
        uint8_t out[64];
        size_t n;
};

static void sink_tx(void *userdata, uint8_t byte) {
        struct sink *s = userdata;
        g_assert_cmpuint(s->n, <, sizeof(s->out));
        s->out[s->n++] = byte;
}

static void setup(struct uart *u, struct sink *s) {
        memset(s, 0, sizeof(*s));
        uart_init(u, sink_tx, s);
}

static void test_reset_state(void) {
        struct uart u;
        struct sink s;
        setup(&u, &s);
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_NO_INT);
        g_assert_cmphex(uart_read(&u, UART_LSR), ==, UART_LSR_THRE | UART_LSR_TEMT);
        g_assert_cmphex(uart_read(&u, UART_IER), ==, 0);
        g_assert_cmphex(uart_read(&u, UART_MSR) & 0xf0, ==, UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
        g_assert_false(uart_irq_pending(&u));
}

/* With DLAB set, offsets 0 and 1 are the divisor latch, not THR/IER. */
static void test_dlab_selects_divisor_latch(void) {
        struct uart u;
        struct sink s;
        setup(&u, &s);
        uart_write(&u, UART_IER, 0x05);
        uart_write(&u, UART_LCR, UART_LCR_DLAB | 0x03);
        uart_write(&u, UART_DLL, 0x01); /* 115200 baud */
        uart_write(&u, UART_DLM, 0x00);
        g_assert_cmphex(uart_read(&u, UART_DLL), ==, 0x01);
        g_assert_cmphex(uart_read(&u, UART_DLM), ==, 0x00);
        g_assert_cmpuint(s.n, ==, 0); /* the DLL write sent nothing */
        uart_write(&u, UART_LCR, 0x03);
        g_assert_cmphex(uart_read(&u, UART_LCR), ==, 0x03);
        g_assert_cmphex(uart_read(&u, UART_IER), ==, 0x05); /* IER kept */
        uart_write(&u, UART_LCR, UART_LCR_DLAB);
        g_assert_cmphex(uart_read(&u, UART_DLL), ==, 0x01); /* latch kept */
}

static void test_thr_write_transmits(void) {
        struct uart u;
        struct sink s;
        setup(&u, &s);
        uart_write(&u, UART_THR, 'o');
        uart_write(&u, UART_THR, 'k');
        g_assert_cmpuint(s.n, ==, 2);
        g_assert_cmpmem(s.out, 2, "ok", 2);
        /* Sent at once: THR and the shift register are empty. */
        g_assert_cmphex(uart_read(&u, UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT), ==,
                        UART_LSR_THRE | UART_LSR_TEMT);
}

static void test_thre_interrupt(void) {
        struct uart u;
        struct sink s;
        setup(&u, &s);
        /* Enabling THRI with THR empty raises it at once. */
        uart_write(&u, UART_IER, UART_IER_THRI);
        g_assert_true(uart_irq_pending(&u));
        /* Reading IIR reporting THRE acknowledges it. */
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_THRI);
        g_assert_false(uart_irq_pending(&u));
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_NO_INT);
        /* Each byte sent empties THR again. */
        uart_write(&u, UART_THR, 'a');
        g_assert_true(uart_irq_pending(&u));
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_THRI);
        /* Disabled in IER: pending but not reported. */
        uart_write(&u, UART_THR, 'b');
        uart_write(&u, UART_IER, 0);
        g_assert_false(uart_irq_pending(&u));
}

static void test_rx_without_fifo_holds_one_byte(void) {
        struct uart u;
        struct sink s;
        setup(&u, &s);
        g_assert_cmpuint(uart_rx_space(&u), ==, 1);
        uart_receive(&u, 'a');
        g_assert_cmpuint(uart_rx_space(&u), ==, 0);
        uart_receive(&u, 'b'); /* overrun */
        g_assert_cmphex(uart_read(&u, UART_LSR), ==, UART_LSR_DR | UART_LSR_OE | UART_LSR_THRE | UART_LSR_TEMT);
        /* OE clears on read, DR stays while data waits. */
        g_assert_cmphex(uart_read(&u, UART_LSR) & (UART_LSR_DR | UART_LSR_OE), ==, UART_LSR_DR);
        g_assert_cmpint(uart_read(&u, UART_RBR), ==, 'a');
        g_assert_cmphex(uart_read(&u, UART_LSR) & UART_LSR_DR, ==, 0);
        g_assert_cmpint(uart_read(&u, UART_RBR), ==, 0); /* empty reads 0 */
}

static void test_rx_fifo_and_interrupts(void) {
        struct uart u;
        struct sink s;
        setup(&u, &s);
        uart_write(&u, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX | UART_FCR_CLEAR_TX | 0x80); /* trigger 8 */
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_FIFO_ENABLED | UART_IIR_NO_INT);
        g_assert_cmpuint(uart_rx_space(&u), ==, UART_FIFO_SIZE);
        uart_write(&u, UART_IER, UART_IER_RDI);

        for (int i = 0; i < 3; i++)
                uart_receive(&u, (uint8_t) ('0' + i));
        /* Below the trigger level: character timeout. */
        g_assert_true(uart_irq_pending(&u));
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_FIFO_ENABLED | UART_IIR_TIMEOUT);
        for (int i = 3; i < 8; i++)
                uart_receive(&u, (uint8_t) ('0' + i));
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_FIFO_ENABLED | UART_IIR_RDI);

        /* In order, and the interrupt goes when the FIFO is drained. */
        for (int i = 0; i < 8; i++) {
                g_assert_cmphex(uart_read(&u, UART_LSR) & UART_LSR_DR, ==, UART_LSR_DR);
                g_assert_cmpint(uart_read(&u, UART_RBR), ==, '0' + i);
        }
        g_assert_false(uart_irq_pending(&u));
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_FIFO_ENABLED | UART_IIR_NO_INT);

        /* 16 fit, the 17th overruns; FCR clear-RX empties the FIFO. */
        for (int i = 0; i < UART_FIFO_SIZE; i++)
                uart_receive(&u, 'x');
        g_assert_cmpuint(uart_rx_space(&u), ==, 0);
        uart_receive(&u, 'y');
        uart_write(&u, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
        g_assert_cmpuint(uart_rx_space(&u), ==, UART_FIFO_SIZE);
        g_assert_cmphex(uart_read(&u, UART_FCR) & 0xc0, ==, 0xc0); /* FCR bits self-clear; IIR shows FIFO on */
}

/* Receiver line status outranks data, which outranks THRE, which outranks
 * modem status. */
static void test_iir_priorities(void) {
        struct uart u;
        struct sink s;
        setup(&u, &s);
        uart_write(&u, UART_IER, UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI);
        uart_write(&u, UART_MCR, UART_MCR_LOOP); /* changes modem lines: MSR deltas */
        uart_receive(&u, 'a');
        uart_receive(&u, 'b'); /* overrun */
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_RLSI);
        (void) uart_read(&u, UART_LSR); /* clears the error */
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_RDI);
        (void) uart_read(&u, UART_RBR);
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_THRI); /* and acknowledged */
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_MSI);
        g_assert_cmphex(uart_read(&u, UART_MSR) & 0x0f, !=, 0);
        g_assert_cmphex(uart_read(&u, UART_IIR), ==, UART_IIR_NO_INT); /* MSR read cleared the deltas */
}

/* Loopback: THR comes back in RBR, nothing goes out, modem outputs show up
 * as inputs (what Linux's autoconfig probes). */
static void test_loopback(void) {
        struct uart u;
        struct sink s;
        setup(&u, &s);
        uart_write(&u, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_RTS);
        g_assert_cmphex(uart_read(&u, UART_MSR) & 0xf0, ==, UART_MSR_DCD | UART_MSR_CTS);
        uart_write(&u, UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT1);
        g_assert_cmphex(uart_read(&u, UART_MSR) & 0xf0, ==, UART_MSR_DSR | UART_MSR_RI);
        uart_write(&u, UART_THR, 'L');
        g_assert_cmpuint(s.n, ==, 0);
        g_assert_cmphex(uart_read(&u, UART_LSR) & UART_LSR_DR, ==, UART_LSR_DR);
        g_assert_cmpint(uart_read(&u, UART_RBR), ==, 'L');
        uart_write(&u, UART_MCR, UART_MCR_OUT2);
        g_assert_cmphex(uart_read(&u, UART_MCR), ==, UART_MCR_OUT2);
        uart_write(&u, UART_THR, 'T');
        g_assert_cmpuint(s.n, ==, 1);
        g_assert_cmphex(uart_read(&u, UART_MSR) & 0xf0, ==, UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
}

static void test_scratch_and_read_only_registers(void) {
        struct uart u;
        struct sink s;
        setup(&u, &s);
        uart_write(&u, UART_SCR, 0xa5);
        g_assert_cmphex(uart_read(&u, UART_SCR), ==, 0xa5);
        uart_write(&u, UART_LSR, 0x00);
        g_assert_cmphex(uart_read(&u, UART_LSR), ==, UART_LSR_THRE | UART_LSR_TEMT);
        /* Offsets wrap within the 8 registers. */
        g_assert_cmphex(uart_read(&u, 8 + UART_SCR), ==, 0xa5);
        /* IER keeps its 4 defined bits only; MCR its 5. */
        uart_write(&u, UART_IER, 0xff);
        g_assert_cmphex(uart_read(&u, UART_IER), ==, 0x0f);
        uart_write(&u, UART_MCR, 0xff);
        g_assert_cmphex(uart_read(&u, UART_MCR), ==, 0x1f);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/serial/reset-state", test_reset_state);
        g_test_add_func("/serial/dlab-selects-divisor-latch", test_dlab_selects_divisor_latch);
        g_test_add_func("/serial/thr-write-transmits", test_thr_write_transmits);
        g_test_add_func("/serial/thre-interrupt", test_thre_interrupt);
        g_test_add_func("/serial/rx-without-fifo-holds-one-byte", test_rx_without_fifo_holds_one_byte);
        g_test_add_func("/serial/rx-fifo-and-interrupts", test_rx_fifo_and_interrupts);
        g_test_add_func("/serial/iir-priorities", test_iir_priorities);
        g_test_add_func("/serial/loopback", test_loopback);
        g_test_add_func("/serial/scratch-and-read-only-registers", test_scratch_and_read_only_registers);
        return g_test_run();
}
