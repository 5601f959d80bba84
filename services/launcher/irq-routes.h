/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The VM's MSI routes. Each MSI-X vector of a device gets a GSI past the
 * IOAPIC's pins for the VM's lifetime; the message the guest programmed
 * for it (address, data) is its route. KVM replaces its routing table as a
 * whole (KVM_SET_GSI_ROUTING), so a change commits every route; changes
 * are rare (a driver programs its MSI-X table when it loads). Any thread:
 * vCPU threads update routes after the guest's table writes. */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IRQ_ROUTES_IOAPIC_PINS 24
#define IRQ_ROUTES_MAX_MSI 256

struct irq_route_msi {
        uint32_t gsi;
        uint64_t address;
        uint32_t data;
};

/* Installs routes[0..n) as the MSI part of the table (the caller adds the
 * irqchip's own routes). */
typedef int (*irq_routes_commit_t)(void *userdata, const struct irq_route_msi *routes, size_t n);

struct irq_routes {
        pthread_mutex_t lock;
        uint32_t n_gsis; /* handed out: IRQ_ROUTES_IOAPIC_PINS .. + n_gsis */
        struct {
                bool valid;
                uint64_t address;
                uint32_t data;
        } msi[IRQ_ROUTES_MAX_MSI];
        irq_routes_commit_t commit; /* NULL while no KVM VM exists */
        void *userdata;
};

void irq_routes_init(struct irq_routes *r);
void irq_routes_done(struct irq_routes *r);

/* A new GSI for an MSI vector, or -ENOSPC. */
int irq_routes_alloc(struct irq_routes *r, uint32_t *ret_gsi);

/* Whether a device may ask for this message: x86 MSIs go to the local
 * APICs' window (0xFEExxxxx); anything else would be a DMA write. */
bool irq_routes_msi_valid(uint64_t address);

/* Sets (valid) or clears gsi's message; if it changed and a KVM VM is
 * bound, commits the table. -EINVAL for a GSI not handed out or an address
 * irq_routes_msi_valid() refuses; else what commit returns. */
int irq_routes_set(struct irq_routes *r, uint32_t gsi, bool valid, uint64_t address, uint32_t data);

/* From now on changes go to commit; commits the table once. */
int irq_routes_bind(struct irq_routes *r, irq_routes_commit_t commit, void *userdata);
/* The KVM VM is going away; its table with it. Routes stay for the next one. */
void irq_routes_unbind(struct irq_routes *r);
