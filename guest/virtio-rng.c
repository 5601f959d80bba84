/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio entropy device (5.4): one queue of device-writable buffers. */
#include "console.h"
#include "lib.h"
#include "virtio.h"

#define RNG_MAX 4096
#define RNG_TIMEOUT_NS 3000000000ULL
#define RNG_DUMP_BYTES 32

static struct virtio_dev rng_dev;
static bool rng_ok;
static uint8_t rng_buf[RNG_MAX] __attribute__((aligned(64)));

static void rng_probe(struct pci_dev *pci) {
        if (rng_ok) {
                kprintf("virtio-rng: %02x:%02x.%u: one entropy device is enough, not used\n", pci->bus, pci->slot,
                        pci->fn);
                return;
        }
        rng_ok = virtio_pci_setup(&rng_dev, pci, "virtio-rng", 0, 1);
}

const struct virtio_driver virtio_rng_driver = { VIRTIO_ID_ENTROPY, "virtio-rng", rng_probe };

void virtio_rng_cmd(int argc, char **argv) {
        uint64_t n;
        if (argc != 2 || !parse_u64(argv[1], &n) || n < 1 || n > RNG_MAX) {
                console_puts("usage: rng N   (1..4096 bytes)\n");
                return;
        }
        if (!rng_ok) {
                console_puts("rng: no virtio-rng device\n");
                return;
        }
        struct virtqueue *q = &rng_dev.vqs[0];
        uint32_t irqs = q->irqs;
        unsigned requests = 0;
        memset(rng_buf, 0, n);
        /* The device may fill less than asked (5.4.6): ask again for the rest. */
        for (uint64_t got = 0; got < n;) {
                struct vq_buf b = { rng_buf + got, n - got, true };
                int64_t len = vq_submit_wait(q, &b, 1, RNG_TIMEOUT_NS);
                requests++;
                if (len < 0) {
                        kprintf("rng: failed after %lu bytes\n", got);
                        return;
                }
                if (len == 0 || (uint64_t) len > n - got) {
                        kprintf("rng: the device returned %ld bytes for a %lu-byte buffer\n", len, n - got);
                        return;
                }
                got += len;
        }

        kprintf("rng: %lu bytes in %u request(s):", n, requests);
        for (uint64_t i = 0; i < n && i < RNG_DUMP_BYTES; i++)
                kprintf(" %02x", rng_buf[i]);
        console_puts(n > RNG_DUMP_BYTES ? " ...\n" : "\n");

        bool seen[256] = { false };
        unsigned distinct = 0;
        for (uint64_t i = 0; i < n; i++)
                if (!seen[rng_buf[i]]) {
                        seen[rng_buf[i]] = true;
                        distinct++;
                }
        if (n == 1 || distinct > 1)
                kprintf("rng: check ok (%u distinct byte values)\n", distinct);
        else
                kprintf("rng: check FAILED: all %lu bytes are 0x%02x\n", n, rng_buf[0]);
        kprintf("rng: interrupts %u (+%u) irq %s\n", q->irqs, q->irqs - irqs, virtio_irq_mode_name(rng_dev.irq_mode));
}
