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

/* Slots 0 and 1 hold guest RAM (below and above the MMIO hole); a plugin
 * VM's memory regions take slots from here. */
#define KVM_VM_FIRST_FREE_SLOT 2

struct kvm_vm {
        int kvm_fd;
        int vm_fd;
        bool irqchip; /* in-kernel irqchip and PIT */
};

/* Opens /dev/kvm and creates the VM with guest RAM mem (memory_bytes, laid
 * out as layout.h says). err says what failed, e.g. that /dev/kvm is missing. */
int kvm_vm_create(void *mem, uint64_t memory_bytes, struct kvm_vm *ret, char *err, size_t errlen);
/* The same with a choice: irqchip false leaves out the in-kernel irqchip
 * and PIT (a guest hlt then exits to userspace); memory_bytes 0 maps no
 * RAM (a plugin VM whose plugin brings all memory). */
int kvm_vm_create_with(void *mem, uint64_t memory_bytes, bool irqchip, struct kvm_vm *ret, char *err, size_t errlen);
void kvm_vm_destroy(struct kvm_vm *vm);

/* KVM_CHECK_EXTENSION on the VM fd: > 0 when present. */
int kvm_vm_check_extension(struct kvm_vm *vm, long cap);

/* KVM_SET_USER_MEMORY_REGION of slot (size 0 deletes it). */
int kvm_vm_set_memory(struct kvm_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host, bool read_only,
                      bool dirty_log);
/* KVM_GET_DIRTY_LOG of slot into bitmap (one bit per page, 64-bit words). */
int kvm_vm_get_dirty_log(struct kvm_vm *vm, uint32_t slot, void *bitmap);

/* KVM_IRQFD with an optional resample fd (-1: none); assign false removes it. */
int kvm_vm_irqfd_resample(struct kvm_vm *vm, int fd, uint32_t gsi, int resample_fd, bool assign);

/* KVM_IOEVENTFD with an optional datamatch on value. */
int kvm_vm_ioeventfd_match(struct kvm_vm *vm, int fd, enum proto_bus bus, uint64_t address, uint32_t len,
                           bool datamatch, uint64_t value, bool assign);

/* KVM_GET_CLOCK / KVM_SET_CLOCK (kvmclock, ns); *ret_stable from KVM_CLOCK_TSC_STABLE. */
int kvm_vm_get_clock(struct kvm_vm *vm, uint64_t *ret_clock, bool *ret_stable);
int kvm_vm_set_clock(struct kvm_vm *vm, uint64_t clock);

/* Binds eventfd fd to GSI gsi: each write raises an edge on that line. */
int kvm_vm_irqfd(struct kvm_vm *vm, int fd, uint32_t gsi);
int kvm_vm_irq_line(struct kvm_vm *vm, uint32_t gsi, bool level);

/* KVM_IOEVENTFD: a guest write of len bytes (0: any size, MMIO only) at
 * address signals fd instead of exiting. assign false removes it again. */
int kvm_vm_ioeventfd(struct kvm_vm *vm, int fd, enum proto_bus bus, uint64_t address, uint32_t len, bool assign);

/* KVM_SET_GSI_ROUTING: the irqchip's own routes (GSI 0-15 to the PICs and
 * the IOAPIC, 16-23 to the IOAPIC, as KVM sets them up) plus msi[0..n). */
int kvm_vm_set_msi_routes(struct kvm_vm *vm, const struct irq_route_msi *msi, size_t n);
