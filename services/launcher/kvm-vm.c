/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm-vm.h"
#include "layout.h"
#include "macro.h"

/* Below the IOAPIC in the 32-bit hole, as QEMU and Firecracker place them. */
#define KVM_TSS_ADDR 0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

static int set_slot_flags(int vm_fd, uint32_t slot, uint64_t gpa, uint64_t size, void *host, uint32_t flags) {
        struct kvm_userspace_memory_region region = {
                .slot = slot,
                .flags = flags,
                .guest_phys_addr = gpa,
                .memory_size = size,
                .userspace_addr = (uint64_t) (uintptr_t) host,
        };
        return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0 ? -errno : 0;
}

static int set_slot(int vm_fd, uint32_t slot, uint64_t gpa, uint64_t size, void *host) {
        return set_slot_flags(vm_fd, slot, gpa, size, host, 0);
}

int kvm_vm_create(void *mem, uint64_t memory_bytes, struct kvm_vm *ret, char *err, size_t errlen) {
        return kvm_vm_create_with(mem, memory_bytes, true, ret, err, errlen);
}

int kvm_vm_create_with(void *mem, uint64_t memory_bytes, bool irqchip, struct kvm_vm *ret, char *err,
                       size_t errlen) {
        _cleanup_close_ int kvm_fd = -1, vm_fd = -1;
        struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
        uint64_t low = MIN(memory_bytes, LAYOUT_MMIO_HOLE_START);
        int r;

        kvm_fd = open(KVM_DEVICE_PATH, O_RDWR | O_CLOEXEC);
        if (kvm_fd < 0) {
                r = -errno;
                snprintf(err, errlen, "%s: %s (is KVM available on this host?)", KVM_DEVICE_PATH, strerror(errno));
                return r;
        }
        r = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
        if (r != KVM_API_VERSION) {
                snprintf(err, errlen, "%s: API version %d, need %d", KVM_DEVICE_PATH, r, KVM_API_VERSION);
                return -ENOTSUP;
        }
        if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) <= 0 ||
            ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) <= 0 ||
            ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0) {
                snprintf(err, errlen, "%s: lacks a required capability (IRQCHIP, IRQFD, USER_MEMORY)",
                         KVM_DEVICE_PATH);
                return -ENOTSUP;
        }

        vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
        if (vm_fd < 0) {
                r = -errno;
                snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
                return r;
        }
        if (ioctl(vm_fd, KVM_SET_TSS_ADDR, (unsigned long) KVM_TSS_ADDR) < 0) {
                r = -errno;
                snprintf(err, errlen, "KVM_SET_TSS_ADDR: %s", strerror(errno));
                return r;
        }
        /* Optional (api.rst: only with KVM_CAP_SET_IDENTITY_MAP_ADDR); must
         * come before the first vCPU. */
        if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
            ioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t) { KVM_IDENTITY_MAP_ADDR }) < 0) {
                r = -errno;
                snprintf(err, errlen, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
                return r;
        }
        if (irqchip && ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
                r = -errno;
                snprintf(err, errlen, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
                return r;
        }
        if (irqchip && ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
                r = -errno;
                snprintf(err, errlen, "KVM_CREATE_PIT2: %s", strerror(errno));
                return r;
        }

        r = memory_bytes > 0 ? set_slot(vm_fd, 0, 0, low, mem) : 0;
        if (r == 0 && memory_bytes > low)
                r = set_slot(vm_fd, 1, LAYOUT_MMIO_HOLE_END, memory_bytes - low, (uint8_t *) mem + low);
        if (r < 0) {
                snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION: %s", strerror(-r));
                return r;
        }

        ret->kvm_fd = TAKE_FD(kvm_fd);
        ret->vm_fd = TAKE_FD(vm_fd);
        ret->irqchip = irqchip;
        return 0;
}

void kvm_vm_destroy(struct kvm_vm *vm) {
        vm->vm_fd = safe_close(vm->vm_fd);
        vm->kvm_fd = safe_close(vm->kvm_fd);
}

int kvm_vm_irqfd(struct kvm_vm *vm, int fd, uint32_t gsi) {
        struct kvm_irqfd irqfd = { .fd = (uint32_t) fd, .gsi = gsi };

        return ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int kvm_vm_irq_line(struct kvm_vm *vm, uint32_t gsi, bool level) {
        struct kvm_irq_level irq = { .irq = gsi, .level = level };

        return ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

int kvm_vm_ioeventfd(struct kvm_vm *vm, int fd, enum proto_bus bus, uint64_t address, uint32_t len, bool assign) {
        struct kvm_ioeventfd io = {
                .addr = address,
                .len = len,
                .fd = fd,
                .flags = (bus == PROTO_BUS_PIO ? KVM_IOEVENTFD_FLAG_PIO : 0) |
                         (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
        };

        return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

int kvm_vm_set_msi_routes(struct kvm_vm *vm, const struct irq_route_msi *msi, size_t n) {
        _cleanup_free_ struct kvm_irq_routing *table = NULL;
        size_t count = 0;

        table = calloc(1, sizeof(*table) + (16 + IRQ_ROUTES_IOAPIC_PINS + n) * sizeof(table->entries[0]));
        if (!table)
                return -ENOMEM;
        /* KVM_SET_GSI_ROUTING replaces the default table: repeat it. */
        for (uint32_t gsi = 0; gsi < IRQ_ROUTES_IOAPIC_PINS; gsi++) {
                if (gsi < 16)
                        table->entries[count++] = (struct kvm_irq_routing_entry) {
                                .gsi = gsi,
                                .type = KVM_IRQ_ROUTING_IRQCHIP,
                                .u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                                               .pin = gsi % 8 },
                        };
                table->entries[count++] = (struct kvm_irq_routing_entry) {
                        .gsi = gsi,
                        .type = KVM_IRQ_ROUTING_IRQCHIP,
                        .u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi },
                };
        }
        for (size_t i = 0; i < n; i++)
                table->entries[count++] = (struct kvm_irq_routing_entry) {
                        .gsi = msi[i].gsi,
                        .type = KVM_IRQ_ROUTING_MSI,
                        .u.msi = { .address_lo = (uint32_t) msi[i].address,
                                   .address_hi = (uint32_t) (msi[i].address >> 32),
                                   .data = msi[i].data },
                };
        table->nr = (uint32_t) count;
        return ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, table) < 0 ? -errno : 0;
}

int kvm_vm_check_extension(struct kvm_vm *vm, long cap) {
        int r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, cap);
        return r < 0 ? -errno : r;
}

int kvm_vm_set_memory(struct kvm_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host, bool read_only,
                      bool dirty_log) {
        uint32_t flags = (read_only ? KVM_MEM_READONLY : 0) | (dirty_log ? KVM_MEM_LOG_DIRTY_PAGES : 0);

        return set_slot_flags(vm->vm_fd, slot, gpa, size, host, flags);
}

int kvm_vm_get_dirty_log(struct kvm_vm *vm, uint32_t slot, void *bitmap) {
        struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = bitmap };

        return ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -errno : 0;
}

int kvm_vm_irqfd_resample(struct kvm_vm *vm, int fd, uint32_t gsi, int resample_fd, bool assign) {
        struct kvm_irqfd irqfd = {
                .fd = (uint32_t) fd,
                .gsi = gsi,
                .flags = !assign ? KVM_IRQFD_FLAG_DEASSIGN : resample_fd >= 0 ? KVM_IRQFD_FLAG_RESAMPLE : 0,
                .resamplefd = assign && resample_fd >= 0 ? (uint32_t) resample_fd : 0,
        };

        return ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int kvm_vm_ioeventfd_match(struct kvm_vm *vm, int fd, enum proto_bus bus, uint64_t address, uint32_t len,
                           bool datamatch, uint64_t value, bool assign) {
        struct kvm_ioeventfd io = {
                .datamatch = datamatch ? value : 0,
                .addr = address,
                .len = len,
                .fd = fd,
                .flags = (bus == PROTO_BUS_PIO ? KVM_IOEVENTFD_FLAG_PIO : 0) |
                         (datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
                         (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
        };

        return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

int kvm_vm_get_clock(struct kvm_vm *vm, uint64_t *ret_clock, bool *ret_stable) {
        struct kvm_clock_data data = {};

        if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &data) < 0)
                return -errno;
        *ret_clock = data.clock;
        *ret_stable = data.flags & KVM_CLOCK_TSC_STABLE;
        return 0;
}

int kvm_vm_set_clock(struct kvm_vm *vm, uint64_t clock) {
        struct kvm_clock_data data = { .clock = clock };

        return ioctl(vm->vm_fd, KVM_SET_CLOCK, &data) < 0 ? -errno : 0;
}
