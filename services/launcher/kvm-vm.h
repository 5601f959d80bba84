/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The KVM VM of one polyvm VM: /dev/kvm, the VM fd with in-kernel irqchip
 * and PIT, guest RAM in memory slots, and irqfds for device interrupts. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "irq-routes.h"
#include "proto.h"

#define KVM_DEVICE_PATH "/dev/kvm"

struct kvm_vm {
        int kvm_fd;
        int vm_fd;
};

/* Opens /dev/kvm and creates the VM with guest RAM mem (memory_bytes, laid
 * out as layout.h says). err says what failed, e.g. that /dev/kvm is missing. */
int kvm_vm_create(void *mem, uint64_t memory_bytes, struct kvm_vm *ret, char *err, size_t errlen);
void kvm_vm_destroy(struct kvm_vm *vm);

/* Binds eventfd fd to GSI gsi: each write raises an edge on that line. */
int kvm_vm_irqfd(struct kvm_vm *vm, int fd, uint32_t gsi);
int kvm_vm_irq_line(struct kvm_vm *vm, uint32_t gsi, bool level);

/* KVM_IOEVENTFD: a guest write of len bytes (0: any size, MMIO only) at
 * address signals fd instead of exiting. assign false removes it again. */
int kvm_vm_ioeventfd(struct kvm_vm *vm, int fd, enum proto_bus bus, uint64_t address, uint32_t len, bool assign);

/* KVM_SET_GSI_ROUTING: the irqchip's own routes (GSI 0-15 to the PICs and
 * the IOAPIC, 16-23 to the IOAPIC, as KVM sets them up) plus msi[0..n). */
int kvm_vm_set_msi_routes(struct kvm_vm *vm, const struct irq_route_msi *msi, size_t n);
