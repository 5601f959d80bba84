/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Register behaviour after the 16550A data sheet, as every VMM models it. */
#include <string.h>

#include "pvh-serial.h"

#define UART_LCR_DLAB 0x80
#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_IIR_FIFO 0xc0

void pvh_serial_init(struct pvh_serial *s) {
        memset(s, 0, sizeof(*s));
        s->lcr = 0x03; /* 8N1 */
        s->dll = 12;   /* 9600 baud, as after a BIOS */
}

int pvh_serial_write(struct pvh_serial *s, unsigned offset, uint8_t value) {
        bool dlab = s->lcr & UART_LCR_DLAB;

        switch (offset) {
        case 0:
                if (dlab) {
                        s->dll = value;
                        return -1;
                }
                s->thr_irq = true; /* sent at once: THR is empty again */
                return value;
        case 1:
                if (dlab)
                        s->dlm = value;
                else {
                        /* Enabling THRI with THR empty raises it, as on the chip. */
                        if ((value & UART_IER_THRI) && !(s->ier & UART_IER_THRI))
                                s->thr_irq = true;
                        s->ier = value & 0x0f;
                }
                return -1;
        case 2:
                s->fcr = value & 0xc9;
                if (value & UART_FCR_CLEAR_RX)
                        s->rx_head = s->rx_len = 0;
                return -1;
        case 3:
                s->lcr = value;
                return -1;
        case 4:
                s->mcr = value & 0x1f;
                return -1;
        case 7:
                s->scr = value;
                return -1;
        default: /* LSR, MSR: read-only */
                return -1;
        }
}

uint8_t pvh_serial_read(struct pvh_serial *s, unsigned offset) {
        bool dlab = s->lcr & UART_LCR_DLAB;
        uint8_t v;

        switch (offset) {
        case 0:
                if (dlab)
                        return s->dll;
                if (s->rx_len == 0)
                        return 0;
                v = s->rx[s->rx_head];
                s->rx_head = (s->rx_head + 1) % PVH_SERIAL_RX_MAX;
                s->rx_len--;
                return v;
        case 1:
                return dlab ? s->dlm : s->ier;
        case 2:
                v = (s->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFO : 0;
                if ((s->ier & UART_IER_RDI) && s->rx_len > 0)
                        return v | UART_IIR_RDI;
                if ((s->ier & UART_IER_THRI) && s->thr_irq) {
                        s->thr_irq = false; /* reading IIR acknowledges THRI */
                        return v | UART_IIR_THRI;
                }
                return v | UART_IIR_NONE;
        case 3:
                return s->lcr;
        case 4:
                return s->mcr;
        case 5:
                return UART_LSR_THRE | UART_LSR_TEMT | (s->rx_len > 0 ? UART_LSR_DR : 0);
        case 6:
                /* Loopback reflects MCR; otherwise CTS, DSR and DCD are up. */
                if (s->mcr & 0x10)
                        return (uint8_t) ((s->mcr & 0x02) << 3 | (s->mcr & 0x01) << 5 | (s->mcr & 0x08) << 4 |
                                          (s->mcr & 0x04) << 4);
                return 0xb0;
        case 7:
                return s->scr;
        default:
                return 0xff;
        }
}

size_t pvh_serial_receive(struct pvh_serial *s, const void *data, size_t len) {
        const uint8_t *p = data;
        size_t n = 0;

        for (; n < len && s->rx_len < PVH_SERIAL_RX_MAX; n++) {
                s->rx[(s->rx_head + s->rx_len) % PVH_SERIAL_RX_MAX] = p[n];
                s->rx_len++;
        }
        return n;
}

bool pvh_serial_irq(const struct pvh_serial *s) {
        return ((s->ier & UART_IER_RDI) && s->rx_len > 0) || ((s->ier & UART_IER_THRI) && s->thr_irq);
}
