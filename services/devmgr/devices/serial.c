/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The "serial" device kind: a 16550A (devices/uart.c) on 8 ports, its output
 * written to the console socket, console input fed to its receiver, and its
 * interrupt output turned into irqfd edges. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "device.h"
#include "json-util.h"
#include "log.h"
#include "uart.h"

struct serial {
        struct uart uart;
        uint16_t port;
        unsigned irq;
        int irq_fd;     /* eventfd bound to a KVM irqfd */
        int console_fd; /* stream socket */
        bool irq_line;  /* last level we signalled */
};

static void serial_tx(void *userdata, uint8_t byte) {
        struct serial *s = userdata;
        ssize_t n;

        if (s->console_fd < 0)
                return; /* no console attached: the byte goes nowhere, as on an unplugged port */
        do
                n = send(s->console_fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        /* A full or gone console must not stall the guest: drop the byte. */
        if (n < 0 && errno != EAGAIN)
                s->console_fd = safe_close(s->console_fd);
}

/* An irqfd write is an edge: signal when the interrupt output goes active. */
static void serial_update_irq(struct serial *s) {
        bool line = uart_irq_pending(&s->uart);
        uint64_t one = 1;

        if (line && !s->irq_line && s->irq_fd >= 0)
                if (write(s->irq_fd, &one, sizeof(one)) < 0)
                        log_warning_errno(errno, "Failed to signal interrupt: %m");
        s->irq_line = line;
}

static int serial_create(json_object *config, void **ret, char *err, size_t errlen) {
        uint64_t port = 0x3f8, irq = 4;
        const struct json_field fields[] = {
                { "port", JSON_FIELD_UINT64, false, &port, 1, 0xfff8 },
                { "irq", JSON_FIELD_UINT64, false, &irq, 1, 23 },
        };
        struct serial *s;
        int r;

        r = json_parse_fields(config, "serial", fields, ELEMENTSOF(fields), err, errlen);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->port = (uint16_t) port;
        s->irq = (unsigned) irq;
        s->irq_fd = s->console_fd = -1;
        uart_init(&s->uart, serial_tx, s);
        *ret = s;
        return 0;
}

static void serial_destroy(void *dev) {
        struct serial *s = dev;

        if (!s)
                return;
        safe_close(s->irq_fd);
        safe_close(s->console_fd);
        free(s);
}

static int serial_get_ranges(void *dev, struct proto_ranges *ret) {
        struct serial *s = dev;

        ret->count = 1;
        ret->ranges[0] = (struct proto_range) { .base = s->port, .len = 8, .bus = PROTO_BUS_PIO };
        return 0;
}

static int serial_read(void *dev, uint32_t range, uint64_t offset, uint32_t len, uint8_t *data) {
        struct serial *s = dev;

        /* Byte registers: a wider access reads consecutive registers. */
        for (uint32_t i = 0; i < len; i++)
                data[i] = uart_read(&s->uart, (unsigned) (offset + i));
        serial_update_irq(s);
        return 0;
}

static int serial_write(void *dev, uint32_t range, uint64_t offset, uint32_t len, const uint8_t *data) {
        struct serial *s = dev;

        for (uint32_t i = 0; i < len; i++)
                uart_write(&s->uart, (unsigned) (offset + i), data[i]);
        serial_update_irq(s);
        return 0;
}

static int serial_attach_fd(void *dev, uint32_t role, uint32_t arg, int fd, char *err, size_t errlen) {
        struct serial *s = dev;

        switch (role) {
        case PROTO_FD_IRQ:
                if (arg != 0) {
                        snprintf(err, errlen, "serial has one interrupt (index 0), not %u", arg);
                        return -EINVAL;
                }
                safe_close(s->irq_fd);
                s->irq_fd = fd;
                s->irq_line = false;
                serial_update_irq(s);
                return 0;
        case PROTO_FD_CONSOLE:
                safe_close(s->console_fd);
                s->console_fd = fd;
                return 0;
        default:
                snprintf(err, errlen, "serial takes no fd of role %u", role);
                return -EINVAL;
        }
}

/* Poll the console only while the receiver has room: the socket buffer is
 * the flow control, so no input is lost. */
static int serial_event_fd(void *dev) {
        struct serial *s = dev;

        return uart_rx_space(&s->uart) > 0 ? s->console_fd : -1;
}

static int serial_handle_event(void *dev) {
        struct serial *s = dev;
        uint8_t buf[UART_FIFO_SIZE];
        unsigned space = uart_rx_space(&s->uart);
        ssize_t n;

        if (space == 0 || s->console_fd < 0)
                return 0;
        n = recv(s->console_fd, buf, MIN(space, sizeof(buf)), MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                log_warning_errno(errno, "Console read failed, detaching it: %m");
                s->console_fd = safe_close(s->console_fd);
                return 0;
        }
        if (n == 0) {
                log_info("Console hung up.");
                s->console_fd = safe_close(s->console_fd);
                return 0;
        }
        for (ssize_t i = 0; i < n; i++)
                uart_receive(&s->uart, buf[i]);
        serial_update_irq(s);
        return 0;
}

static const struct device_kind serial_kind = {
        .name = "serial",
        .seccomp_policy = "serial",
        .rlimit_as = 64 << 20, /* it maps nothing but itself */
        .create = serial_create,
        .destroy = serial_destroy,
        .get_ranges = serial_get_ranges,
        .read = serial_read,
        .write = serial_write,
        .attach_fd = serial_attach_fd,
        .event_fd = serial_event_fd,
        .handle_event = serial_handle_event,
};
DEVICE_KIND_REGISTER(serial_kind);
