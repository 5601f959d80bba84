/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio console (5.3), one port: receiveq0 and transmitq0 only. QEMU
 * offers MULTIPORT whenever max_ports > 1 (the default is 31) but does not
 * require it: a driver that leaves it off talks to port 0 (where a
 * virtconsole sits), which QEMU opens at DRIVER_OK. Receive buffers stay
 * posted; `vcon read` collects what the device filled. */
#include "apic.h"
#include "console.h"
#include "lib.h"
#include "virtio.h"

#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_MULTIPORT 1
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2
#define CON_CFG_COLS 0
#define CON_CFG_ROWS 2
#define CON_CFG_MAX_PORTS 4

#define CON_RXQ 0
#define CON_TXQ 1
#define CON_RX_BUFS 8
#define CON_BUF_SIZE 512
#define CON_STAGE 4096 /* what `vcon read` prints at most */
#define CON_TX_TIMEOUT_NS 3000000000ULL
#define CON_READ_DEFAULT_MS 2000
#define CON_READ_MAX_MS 60000
#define WAIT_STEP_NS 1000000000ULL

static struct virtio_dev con_dev;
static bool con_ok;
static uint8_t con_rx[CON_RX_BUFS][CON_BUF_SIZE] __attribute__((aligned(64)));
static uint8_t con_tx[CON_BUF_SIZE] __attribute__((aligned(64)));
static struct vq_pool con_pool;
static uint8_t stage[CON_STAGE];
static uint32_t staged, lost, rx_total, tx_total;

/* Moves one filled receive buffer to the staging area. */
static void con_rx_one(const uint8_t *buf, uint32_t len) {
        if (len > CON_BUF_SIZE) /* the device claims more than the buffer: keep what fits */
                len = CON_BUF_SIZE;
        rx_total += len;
        for (uint32_t i = 0; i < len; i++) {
                if (staged < CON_STAGE)
                        stage[staged++] = buf[i];
                else
                        lost++;
        }
}

/* Moves filled receive buffers to the staging area and posts them again. */
static void con_drain(void) {
        (void) vq_pool_drain(&con_pool, VQ_POOL_ALL, con_rx_one);
}

static void con_probe(struct pci_dev *pci) {
        if (con_ok) {
                kprintf("virtio-console: %02x:%02x.%u: one console device is enough, not used\n", pci->bus,
                        pci->slot, pci->fn);
                return;
        }
        if (!virtio_pci_setup(&con_dev, pci, "virtio-console", 1ULL << VIRTIO_CONSOLE_F_SIZE, 2))
                return;
        vq_pool_init(&con_pool, &con_dev.vqs[CON_RXQ], con_rx, CON_RX_BUFS, CON_BUF_SIZE, true);
        vq_pool_put_all(&con_pool);
        vq_kick(&con_dev.vqs[CON_RXQ]);
        con_ok = true;
        uint32_t max_ports = 0;
        (void) virtio_cfg_read(&con_dev, CON_CFG_MAX_PORTS, &max_ports, 4);
        kprintf("virtio-console: port 0 (MULTIPORT %s, not used; max_nr_ports %u)\n",
                con_dev.device_features >> VIRTIO_CONSOLE_F_MULTIPORT & 1 ? "offered" : "not offered", max_ports);
}

const struct virtio_driver virtio_console_driver = { VIRTIO_ID_CONSOLE, "virtio-console", con_probe };

static uint32_t read_want;

static bool read_done(void) {
        con_drain();
        return staged >= read_want;
}

static void con_write(int argc, char **argv) {
        /* The words again, one space apart, and a newline. */
        uint32_t n = 0;
        for (int i = 2; i < argc; i++) {
                size_t l = strlen(argv[i]);
                if (n + l + 2 > CON_BUF_SIZE) {
                        console_puts("vcon write: too long\n");
                        return;
                }
                if (i > 2)
                        con_tx[n++] = ' ';
                memcpy(con_tx + n, argv[i], l);
                n += l;
        }
        con_tx[n++] = '\n';
        struct vq_buf b = { con_tx, n, false };
        if (vq_submit_wait(&con_dev.vqs[CON_TXQ], &b, 1, CON_TX_TIMEOUT_NS) < 0) {
                console_puts("vcon write: failed\n");
                return;
        }
        tx_total += n;
        kprintf("vcon write: %u bytes\n", n);
}

static void con_read(uint64_t want, uint64_t timeout_ms) {
        read_want = (uint32_t) want;
        uint64_t left = timeout_ms * 1000000;
        bool done = read_done();
        while (!done && left > 0) {
                uint64_t step = left < WAIT_STEP_NS ? left : WAIT_STEP_NS;
                done = wait_until(read_done, step);
                uint64_t waited = wait_last_ns ? wait_last_ns : step;
                left -= waited < left ? waited : left;
        }
        kprintf("vcon read: %u bytes%s: ", staged, done ? "" : " (timeout)");
        /* Printable ASCII as is, the rest (and the backslash) escaped. */
        for (uint32_t i = 0; i < staged; i++) {
                uint8_t c = stage[i];
                if (c >= ' ' && c < 0x7f && c != '\\')
                        console_putc((char) c);
                else
                        kprintf("\\x%02x", c);
        }
        console_putc('\n');
        if (lost)
                kprintf("vcon read: %u more bytes did not fit and were lost\n", lost);
        staged = lost = 0;
}

void virtio_console_cmd(int argc, char **argv) {
        if (!con_ok) {
                console_puts("vcon: no virtio-console device\n");
                return;
        }
        const char *op = argc > 1 ? argv[1] : "info";
        uint64_t want = 1, timeout = CON_READ_DEFAULT_MS;
        if (strcmp(op, "info") == 0 && argc <= 2) {
                con_drain();
                kprintf("vcon: %02x:%02x.%u features 0x%lx (offered 0x%lx) irq %s irqs rx %u tx %u config %u\n",
                        con_dev.pci->bus, con_dev.pci->slot, con_dev.pci->fn, con_dev.features,
                        con_dev.device_features, virtio_irq_mode_name(con_dev.irq_mode), con_dev.vqs[CON_RXQ].irqs,
                        con_dev.vqs[CON_TXQ].irqs, con_dev.config_irqs);
                kprintf("vcon: received %u bytes (%u waiting) sent %u bytes\n", rx_total, staged, tx_total);
        } else if (strcmp(op, "write") == 0 && argc >= 3) {
                con_write(argc, argv);
        } else if (strcmp(op, "read") == 0 && argc <= 4 &&
                   (argc < 3 || (parse_u64(argv[2], &want) && want >= 1 && want <= CON_STAGE)) &&
                   (argc < 4 || (parse_u64(argv[3], &timeout) && timeout <= CON_READ_MAX_MS))) {
                con_read(want, timeout);
        } else
                console_puts("usage: vcon [info]\n"
                             "       vcon write TEXT...\n"
                             "       vcon read [N] [TIMEOUT_MS]   (wait for N bytes, 1..4096; default 1, 2000 ms)\n");
}
