/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "irq-routes.h"

void irq_routes_init(struct irq_routes *r) {
        memset(r, 0, sizeof(*r));
        pthread_mutex_init(&r->lock, NULL);
}

void irq_routes_done(struct irq_routes *r) {
        pthread_mutex_destroy(&r->lock);
}

int irq_routes_alloc(struct irq_routes *r, uint32_t *ret_gsi) {
        int ret = -ENOSPC;

        pthread_mutex_lock(&r->lock);
        if (r->n_gsis < IRQ_ROUTES_MAX_MSI) {
                *ret_gsi = IRQ_ROUTES_IOAPIC_PINS + r->n_gsis++;
                ret = 0;
        }
        pthread_mutex_unlock(&r->lock);
        return ret;
}

bool irq_routes_msi_valid(uint64_t address) {
        return address >> 20 == 0xfee;
}

/* Under the lock. */
static int commit_locked(struct irq_routes *r) {
        struct irq_route_msi routes[IRQ_ROUTES_MAX_MSI];
        size_t n = 0;

        if (!r->commit)
                return 0;
        for (uint32_t i = 0; i < r->n_gsis; i++)
                if (r->msi[i].valid)
                        routes[n++] = (struct irq_route_msi) {
                                .gsi = IRQ_ROUTES_IOAPIC_PINS + i,
                                .address = r->msi[i].address,
                                .data = r->msi[i].data,
                        };
        return r->commit(r->userdata, routes, n);
}

int irq_routes_set(struct irq_routes *r, uint32_t gsi, bool valid, uint64_t address, uint32_t data) {
        uint32_t i = gsi - IRQ_ROUTES_IOAPIC_PINS;
        int ret = 0;

        if (valid && !irq_routes_msi_valid(address))
                return -EINVAL;
        if (!valid)
                address = data = 0;

        pthread_mutex_lock(&r->lock);
        if (gsi < IRQ_ROUTES_IOAPIC_PINS || i >= r->n_gsis)
                ret = -EINVAL;
        else if (r->msi[i].valid != valid || r->msi[i].address != address || r->msi[i].data != data) {
                r->msi[i].valid = valid;
                r->msi[i].address = address;
                r->msi[i].data = data;
                ret = commit_locked(r);
        }
        pthread_mutex_unlock(&r->lock);
        return ret;
}

int irq_routes_bind(struct irq_routes *r, irq_routes_commit_t commit, void *userdata) {
        int ret;

        pthread_mutex_lock(&r->lock);
        r->commit = commit;
        r->userdata = userdata;
        ret = commit_locked(r);
        pthread_mutex_unlock(&r->lock);
        return ret;
}

void irq_routes_unbind(struct irq_routes *r) {
        pthread_mutex_lock(&r->lock);
        r->commit = NULL;
        r->userdata = NULL;
        pthread_mutex_unlock(&r->lock);
}
