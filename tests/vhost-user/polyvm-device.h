/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The bridge's other side: one polyvm virtio-pci device process, created
 * by the real devmgr (CreateDevice), and driven over its endpoint as the
 * launcher (Activate, BAR0 placement, AttachFd) and a virtio driver
 * (common cfg through BAR0 Read/Write, MSI-X table) would. Every call
 * returns 0 or -errno and logs what failed. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "proto.h"

/* Where the bridge puts BAR0 and the MSI address it programs. Nothing
 * reaches them: no guest accesses the device but through the bridge. */
#define PDEV_BAR_ADDRESS 0xe0000000ULL
#define PDEV_MSI_ADDRESS 0xfee00000ULL
#define PDEV_MAX_QUEUES 16

/* Common cfg offsets (virtio 1.2 4.1.4.3). */
#define PDEV_CC_DFSELECT 0x00
#define PDEV_CC_DF 0x04
#define PDEV_CC_GFSELECT 0x08
#define PDEV_CC_GF 0x0c
#define PDEV_CC_MSIX 0x10
#define PDEV_CC_NUMQ 0x12
#define PDEV_CC_STATUS 0x14
#define PDEV_CC_Q_SELECT 0x16
#define PDEV_CC_Q_SIZE 0x18
#define PDEV_CC_Q_MSIX 0x1a
#define PDEV_CC_Q_ENABLE 0x1c
#define PDEV_CC_Q_DESC 0x20
#define PDEV_CC_Q_DRIVER 0x28
#define PDEV_CC_Q_DEVICE 0x30

struct pdev {
        sd_bus *bus;
        char *path; /* the Device1 object */
        pid_t pid;
        int ep;     /* the endpoint */

        uint16_t virtio_id;
        uint64_t bar_size;
        /* From the capabilities (offsets in BAR0 / config space). */
        uint32_t common, isr, device, device_len, notify, notify_mult;
        uint32_t msix_cap, msix_table;
        unsigned n_vectors;
        uint16_t num_queues;
        uint16_t queue_max[PDEV_MAX_QUEUES];
        uint64_t features; /* what the device offers */

        int config_irq_fd; /* ours: MSI-X vector 0, the config interrupt */
};

/* CreateDevice(vm, kind, config) on bus; fills path, pid and ep. */
int pdev_create(struct pdev *d, sd_bus *bus, const char *vm, const char *kind, const char *config);
/* Activate, identity (a modern virtio PCI device), BAR0 sized and placed
 * at PDEV_BAR_ADDRESS with memory decode and bus mastering on, the
 * capabilities, the device's queues and features, every MSI-X vector
 * programmed and unmasked and MSI-X enabled, and vector 0 (config) on
 * config_irq_fd. */
int pdev_setup(struct pdev *d);
/* DestroyDevice on the bus (if created) and every fd closed. */
void pdev_destroy(struct pdev *d);

int pdev_bar_read(struct pdev *d, uint64_t offset, uint32_t len, uint64_t *ret);
int pdev_bar_write(struct pdev *d, uint64_t offset, uint32_t len, uint64_t value);
int pdev_common_read(struct pdev *d, uint32_t field, uint32_t len, uint64_t *ret);
int pdev_common_write(struct pdev *d, uint32_t field, uint32_t len, uint64_t value);
uint8_t pdev_status(struct pdev *d); /* 0xff if it cannot be read */

/* AttachFd(role, arg) with a copy of fd (fd stays ours). */
int pdev_attach(struct pdev *d, uint32_t role, uint32_t arg, int fd);

/* Device-specific config: len bytes at offset; bytes past the device's
 * config length read as zeros; writes there are -ERANGE. */
int pdev_device_config_read(struct pdev *d, uint32_t offset, uint32_t len, uint8_t *buf);
int pdev_device_config_write(struct pdev *d, uint32_t offset, uint32_t len, const uint8_t *buf);
