/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "plugin-vm.h"
#include "vcpu.h"

/* KVM has at least 32 slots everywhere; a plugin needs few regions. */
#define PLUGIN_VM_MAX_REGIONS 64

struct region {
        uint32_t id;
        uint32_t slot;
        void *host;
        uint64_t size;
};

/* One vCPU's stop for the plugin. lock guards everything here; the vCPU
 * thread waits on cond. */
struct pvcpu {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct vcpu *vcpu;
        bool waiting; /* the thread has sent an event and waits for vcpu_resume */
        bool resumed;
        uint8_t data[8];
        uint32_t len;
        bool want_pause; /* PAUSE asked: the next user stop reports PAUSED */
        uint64_t pause_user;
};

struct plugin_vm {
        struct kvm_vm *kvm;
        struct plugin_server *server;
        unsigned n_vcpus;
        atomic_bool stopping;

        /* Main thread only. */
        struct region regions[PLUGIN_VM_MAX_REGIONS];
        size_t n_regions;
        uint32_t max_slots;

        /* Written on the main thread, read by the vCPU threads. */
        pthread_rwlock_t ranges_lock;
        struct plugin_range ranges[PLUGIN_SERVER_MAX_RANGES];
        size_t n_ranges;

        struct pvcpu vcpus[PLUGIN_MAX_VCPUS];

        /* Main thread only: the vCPUs the owner's Pause and the plugin's
         * PAUSE_VCPUS hold. Both use the engine's one pause flag, so a
         * vCPU goes on only once neither holds it. */
        uint64_t held[2];
};

enum hold_by {
        HOLD_OWNER,
        HOLD_PLUGIN,
};

/* ---- pure ---- */

bool plugin_ranges_hit(const struct plugin_range *ranges, size_t n, uint32_t space, uint64_t addr, uint32_t size) {
        uint64_t end;

        if (size == 0 || __builtin_add_overflow(addr, (uint64_t) size, &end))
                return false;
        for (size_t i = 0; i < n; i++)
                if (ranges[i].space == space && addr < ranges[i].start + ranges[i].length && ranges[i].start < end)
                        return true;
        return false;
}

bool plugin_event_for_access(uint32_t space, uint64_t addr, const uint8_t *data, uint32_t size, bool is_write,
                             struct plugin_event *ret) {
        struct plugin_event e = {
                .kind = space == PLUGIN_SPACE_PIO ? PLUGIN_EVENT_IO : PLUGIN_EVENT_MMIO,
                .is_write = is_write,
                .address = addr,
                .size = size,
        };

        if (size == 0 || size > sizeof(e.data))
                return false;
        if (is_write)
                memcpy(e.data, data, size);
        if (!plugin_proto_event_valid(&e))
                return false;
        *ret = e;
        return true;
}

uint64_t plugin_vm_features_for(bool irqchip, bool readonly_mem, bool immediate_exit) {
        uint64_t f = PLUGIN_FEATURE_IO_EVENT | PLUGIN_FEATURE_MEMORY | PLUGIN_FEATURE_DIRTY_LOG |
                     PLUGIN_FEATURE_CLOCK | PLUGIN_FEATURE_MMIO_RESERVE;

        if (irqchip)
                f |= PLUGIN_FEATURE_IRQ_EVENT | PLUGIN_FEATURE_IRQ_RESAMPLE;
        if (readonly_mem)
                f |= PLUGIN_FEATURE_READ_ONLY_MEMORY;
        if (immediate_exit)
                f |= PLUGIN_FEATURE_IMMEDIATE_EXIT;
        return f;
}

/* "<prefix><decimal>" and then end or a space: the number, else -1. */
static long long number_after(const char *s, const char *prefix) {
        size_t n = strlen(prefix);
        long long v = 0;
        const char *p;

        if (strncmp(s, prefix, n) != 0)
                return -1;
        p = s + n;
        if (*p < '0' || *p > '9')
                return -1;
        for (; *p >= '0' && *p <= '9'; p++) {
                v = v * 10 + (*p - '0');
                if (v > INT32_MAX)
                        return -1;
        }
        return *p == '\0' || *p == ' ' ? v : -1;
}

enum plugin_end plugin_end_from_exit_reason(const char *exit_reason, const char *asked, char *reason, size_t len) {
        long long n;

        exit_reason = exit_reason ?: "";
        if (asked) {
                if (strncmp(exit_reason, "timeout:", 8) == 0)
                        snprintf(reason, len, "%s; plugin %s", asked, exit_reason);
                else
                        snprintf(reason, len, "%s", asked);
                return PLUGIN_END_STOPPED;
        }
        n = number_after(exit_reason, "exited with status ");
        if (n == 0) {
                snprintf(reason, len, "plugin exited");
                return PLUGIN_END_STOPPED;
        }
        if (n > 0) {
                snprintf(reason, len, "plugin exited with error %lld", n);
                return PLUGIN_END_FAILED;
        }
        n = number_after(exit_reason, "killed by signal ");
        if (n >= 0) {
                snprintf(reason, len, "plugin killed by signal %lld", n);
                return PLUGIN_END_FAILED;
        }
        snprintf(reason, len, "plugin %s", exit_reason[0] ? exit_reason : "ended for an unknown reason");
        return PLUGIN_END_FAILED;
}

/* ---- life ---- */

int plugin_vm_new(struct kvm_vm *kvm, unsigned n_vcpus, struct plugin_vm **ret) {
        struct plugin_vm *p;
        int slots;

        if (n_vcpus < 1 || n_vcpus > PLUGIN_MAX_VCPUS)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->kvm = kvm;
        p->n_vcpus = n_vcpus;
        pthread_rwlock_init(&p->ranges_lock, NULL);
        for (unsigned i = 0; i < PLUGIN_MAX_VCPUS; i++) {
                pthread_mutex_init(&p->vcpus[i].lock, NULL);
                pthread_cond_init(&p->vcpus[i].cond, NULL);
        }
        slots = kvm && kvm->vm_fd >= 0 ? kvm_vm_check_extension(kvm, KVM_CAP_NR_MEMSLOTS) : 0;
        p->max_slots = slots > 0 ? (uint32_t) slots : 32; /* KVM's documented minimum */
        *ret = p;
        return 0;
}

struct plugin_vm *plugin_vm_free(struct plugin_vm *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_regions; i++)
                munmap(p->regions[i].host, p->regions[i].size);
        for (unsigned i = 0; i < PLUGIN_MAX_VCPUS; i++) {
                pthread_mutex_destroy(&p->vcpus[i].lock);
                pthread_cond_destroy(&p->vcpus[i].cond);
        }
        pthread_rwlock_destroy(&p->ranges_lock);
        free(p);
        return NULL;
}

void plugin_vm_set_vcpu(struct plugin_vm *p, unsigned cpu, struct vcpu *v) {
        if (cpu < p->n_vcpus)
                p->vcpus[cpu].vcpu = v;
}

void plugin_vm_set_server(struct plugin_vm *p, struct plugin_server *s) {
        p->server = s;
}

void plugin_vm_stop(struct plugin_vm *p) {
        if (!p)
                return;
        atomic_store(&p->stopping, true);
        for (unsigned i = 0; i < p->n_vcpus; i++) {
                pthread_mutex_lock(&p->vcpus[i].lock);
                pthread_cond_broadcast(&p->vcpus[i].cond);
                pthread_mutex_unlock(&p->vcpus[i].lock);
        }
}

/* ---- the vCPU threads ---- */

/* Sends ev and waits for the plugin's resume: its data (a read's bytes)
 * in out. -ESHUTDOWN once the VM stops. */
static int vcpu_wait(struct plugin_vm *p, unsigned cpu, const struct plugin_event *ev, uint8_t *out, uint32_t out_len) {
        struct pvcpu *c = &p->vcpus[cpu];
        int r;

        if (cpu >= p->n_vcpus || !p->server)
                return -EINVAL;
        pthread_mutex_lock(&c->lock);
        if (atomic_load(&p->stopping)) {
                pthread_mutex_unlock(&c->lock);
                return -ESHUTDOWN;
        }
        c->waiting = true;
        c->resumed = false;
        pthread_mutex_unlock(&c->lock);

        /* Not under c->lock: the server calls vcpu_resume under its own lock. */
        r = plugin_server_vcpu_event(p->server, cpu, ev);

        pthread_mutex_lock(&c->lock);
        if (r >= 0) {
                while (!c->resumed && !atomic_load(&p->stopping))
                        pthread_cond_wait(&c->cond, &c->lock);
                if (!c->resumed)
                        r = -ESHUTDOWN;
                else if (out)
                        memcpy(out, c->data, MIN(out_len, c->len));
        }
        c->waiting = false;
        pthread_mutex_unlock(&c->lock);
        return r;
}

/* After a stop for the plugin: go on, or end the run (the VM stops, or the
 * event could not be sent). */
static int verdict(struct plugin_vm *p, unsigned cpu, int r) {
        if (r == -ESHUTDOWN || atomic_load(&p->stopping))
                return VCPU_EXIT_HALTED;
        if (r < 0) {
                log_warning_errno(r, "vCPU %u: could not stop for the plugin: %m", cpu);
                return VCPU_EXIT_FAILED;
        }
        return -1;
}

int plugin_vm_io(struct plugin_vm *p, unsigned cpu, uint32_t space, uint64_t addr, uint8_t *data, uint32_t size,
                 bool is_write) {
        struct plugin_event ev;
        bool hit;
        int r;

        pthread_rwlock_rdlock(&p->ranges_lock);
        hit = plugin_ranges_hit(p->ranges, p->n_ranges, space, addr, size);
        pthread_rwlock_unlock(&p->ranges_lock);
        if (!hit)
                return -2;
        if (!plugin_event_for_access(space, addr, data, size, is_write, &ev))
                return VCPU_EXIT_FAILED;
        r = vcpu_wait(p, cpu, &ev, is_write ? NULL : data, size);
        return verdict(p, cpu, r);
}

int plugin_vm_user_stop(struct plugin_vm *p, unsigned cpu, bool first) {
        struct plugin_event ev = { .kind = PLUGIN_EVENT_INIT };
        struct pvcpu *c = &p->vcpus[cpu];

        if (cpu >= p->n_vcpus)
                return VCPU_EXIT_FAILED;
        if (!first) {
                pthread_mutex_lock(&c->lock);
                if (c->want_pause)
                        ev = (struct plugin_event) { .kind = PLUGIN_EVENT_PAUSED, .user = c->pause_user };
                else
                        ev.kind = PLUGIN_EVENT_IMMEDIATE_EXIT;
                c->want_pause = false;
                pthread_mutex_unlock(&c->lock);
        }
        return verdict(p, cpu, vcpu_wait(p, cpu, &ev, NULL, 0));
}

int plugin_vm_halt(struct plugin_vm *p, unsigned cpu, bool shutdown) {
        struct plugin_event ev = { .kind = shutdown ? PLUGIN_EVENT_SHUTDOWN : PLUGIN_EVENT_HLT };
        int r;

        r = verdict(p, cpu, vcpu_wait(p, cpu, &ev, NULL, 0));
        /* Resuming after HLT or SHUTDOWN ends the vCPU's run (protocol). */
        return r == VCPU_EXIT_FAILED ? r : VCPU_EXIT_HALTED;
}

/* Lets each vCPU of mask go on that neither holder holds any more. */
static void release_unheld(struct plugin_vm *p, uint64_t mask) {
        uint64_t held = p->held[HOLD_OWNER] | p->held[HOLD_PLUGIN];

        for (unsigned i = 0; i < p->n_vcpus; i++)
                if ((mask & ~held & (1ULL << i)) && p->vcpus[i].vcpu)
                        vcpu_resume(p->vcpus[i].vcpu);
}

static int hold(struct plugin_vm *p, enum hold_by who, uint64_t mask, int timeout_ms) {
        struct timespec tick = { .tv_nsec = 200 * 1000 };
        uint64_t before = p->held[who];
        long waited_us = 0;

        p->held[who] |= mask;
        for (unsigned i = 0; i < p->n_vcpus; i++)
                if ((mask & (1ULL << i)) && p->vcpus[i].vcpu)
                        vcpu_pause_async(p->vcpus[i].vcpu);
        for (;;) {
                bool all = true;

                for (unsigned i = 0; i < p->n_vcpus && all; i++) {
                        struct pvcpu *c = &p->vcpus[i];
                        bool waiting;

                        if (!(mask & (1ULL << i)) || !c->vcpu)
                                continue;
                        pthread_mutex_lock(&c->lock);
                        waiting = c->waiting;
                        pthread_mutex_unlock(&c->lock);
                        /* One waiting for the plugin is out of the guest, and
                         * parks before it enters again. */
                        all = waiting || vcpu_is_parked(c->vcpu);
                }
                if (all)
                        return 0;
                if (waited_us / 1000 >= timeout_ms) {
                        /* Failed: no vCPU stays held by a pause nobody will undo. */
                        p->held[who] = before;
                        release_unheld(p, mask);
                        return -ETIMEDOUT;
                }
                nanosleep(&tick, NULL);
                waited_us += 200;
        }
}

static void release(struct plugin_vm *p, enum hold_by who, uint64_t mask) {
        p->held[who] &= ~mask;
        release_unheld(p, mask);
}

int plugin_vm_pause(struct plugin_vm *p, uint64_t mask, int timeout_ms) {
        return hold(p, HOLD_OWNER, mask, timeout_ms);
}

void plugin_vm_resume(struct plugin_vm *p, uint64_t mask) {
        release(p, HOLD_OWNER, mask);
}

/* ---- the ops (main thread) ---- */

static enum proto_bus bus_of(uint32_t space) {
        return space == PLUGIN_SPACE_PIO ? PROTO_BUS_PIO : PROTO_BUS_MMIO;
}

static int op_add_io_event(void *userdata, uint32_t id, const struct plugin_io_event *e, int eventfd) {
        struct plugin_vm *p = userdata;
        return kvm_vm_ioeventfd_match(p->kvm, eventfd, bus_of(e->space), e->address, e->length, e->datamatch,
                                      e->value, true);
}

static int op_remove_io_event(void *userdata, uint32_t id, const struct plugin_io_event *e, int eventfd) {
        struct plugin_vm *p = userdata;
        return kvm_vm_ioeventfd_match(p->kvm, eventfd, bus_of(e->space), e->address, e->length, e->datamatch,
                                      e->value, false);
}

static struct region *region_find(struct plugin_vm *p, uint32_t id) {
        for (size_t i = 0; i < p->n_regions; i++)
                if (p->regions[i].id == id)
                        return &p->regions[i];
        return NULL;
}

static int slot_pick(struct plugin_vm *p, uint32_t *ret) {
        for (uint32_t slot = KVM_VM_FIRST_FREE_SLOT; slot < p->max_slots; slot++) {
                bool used = false;

                for (size_t i = 0; i < p->n_regions && !used; i++)
                        used = p->regions[i].slot == slot;
                if (!used) {
                        *ret = slot;
                        return 0;
                }
        }
        return -ENOSPC;
}

static int op_add_memory(void *userdata, uint32_t id, const struct plugin_memory *m, int memfd) {
        struct plugin_vm *p = userdata;
        bool ro = m->flags & PLUGIN_MEMORY_READ_ONLY;
        uint32_t slot;
        void *host;
        int r;

        if (p->n_regions >= PLUGIN_VM_MAX_REGIONS)
                return -ENOSPC;
        r = slot_pick(p, &slot);
        if (r < 0)
                return r;
        host = mmap(NULL, m->size, PROT_READ | (ro ? 0 : PROT_WRITE), MAP_SHARED, memfd, (off_t) m->offset);
        if (host == MAP_FAILED)
                return negative_errno();
        r = kvm_vm_set_memory(p->kvm, slot, m->guest_address, m->size, host, ro,
                              m->flags & PLUGIN_MEMORY_DIRTY_LOG);
        if (r < 0) {
                munmap(host, m->size);
                return r; /* EEXIST: it overlaps the VM's own RAM */
        }
        p->regions[p->n_regions++] = (struct region) { .id = id, .slot = slot, .host = host, .size = m->size };
        return 0;
}

static int op_remove_memory(void *userdata, uint32_t id, const struct plugin_memory *m) {
        struct plugin_vm *p = userdata;
        struct region *reg = region_find(p, id);
        int r;

        if (!reg)
                return -ENOENT;
        r = kvm_vm_set_memory(p->kvm, reg->slot, m->guest_address, 0, NULL, false, false);
        if (r < 0)
                return r;
        munmap(reg->host, reg->size);
        *reg = p->regions[--p->n_regions];
        return 0;
}

static int op_get_dirty_log(void *userdata, uint32_t id, const struct plugin_memory *m, uint8_t *bitmap, size_t len) {
        struct plugin_vm *p = userdata;
        struct region *reg = region_find(p, id);

        /* KVM writes ALIGN(pages, 64) / 8 bytes: what the server passes. */
        if (!reg || len < ALIGN_UP(m->size / PLUGIN_PAGE_SIZE, 64) / 8)
                return -EINVAL;
        return kvm_vm_get_dirty_log(p->kvm, reg->slot, bitmap);
}

static int op_add_irq_event(void *userdata, uint32_t id, uint32_t irq, int eventfd, int resample_fd) {
        struct plugin_vm *p = userdata;

        if (!p->kvm->irqchip)
                return -EOPNOTSUPP;
        return kvm_vm_irqfd_resample(p->kvm, eventfd, irq, resample_fd, true);
}

static int op_remove_irq_event(void *userdata, uint32_t id, uint32_t irq, int eventfd, int resample_fd) {
        struct plugin_vm *p = userdata;
        return kvm_vm_irqfd_resample(p->kvm, eventfd, irq, -1, false);
}

static int op_set_irq_line(void *userdata, uint32_t irq, bool level) {
        struct plugin_vm *p = userdata;

        if (!p->kvm->irqchip)
                return -EOPNOTSUPP;
        return kvm_vm_irq_line(p->kvm, irq, level);
}

static int op_get_clock(void *userdata, uint64_t *ret_clock, uint32_t *ret_flags) {
        struct plugin_vm *p = userdata;
        bool stable = false;
        int r;

        r = kvm_vm_get_clock(p->kvm, ret_clock, &stable);
        if (r < 0)
                return r;
        *ret_flags = stable ? PLUGIN_CLOCK_STABLE : 0;
        return 0;
}

static int op_set_clock(void *userdata, uint64_t clock) {
        struct plugin_vm *p = userdata;
        return kvm_vm_set_clock(p->kvm, clock);
}

static int op_pause_vcpus(void *userdata, uint64_t mask) {
        return hold(userdata, HOLD_PLUGIN, mask, 1000);
}

static int op_resume_vcpus(void *userdata, uint64_t mask) {
        release(userdata, HOLD_PLUGIN, mask);
        return 0;
}

static int op_reserve_range(void *userdata, const struct plugin_range *r) {
        struct plugin_vm *p = userdata;
        int k = 0;

        pthread_rwlock_wrlock(&p->ranges_lock);
        if (p->n_ranges >= ELEMENTSOF(p->ranges))
                k = -ENOSPC;
        else
                p->ranges[p->n_ranges++] = *r;
        pthread_rwlock_unlock(&p->ranges_lock);
        return k;
}

static int op_unreserve_range(void *userdata, const struct plugin_range *r) {
        struct plugin_vm *p = userdata;
        int k = -ENOENT;

        pthread_rwlock_wrlock(&p->ranges_lock);
        for (size_t i = 0; i < p->n_ranges; i++)
                if (p->ranges[i].space == r->space && p->ranges[i].start == r->start &&
                    p->ranges[i].length == r->length) {
                        p->ranges[i] = p->ranges[--p->n_ranges];
                        k = 0;
                        break;
                }
        pthread_rwlock_unlock(&p->ranges_lock);
        return k;
}

static uint64_t op_get_features(void *userdata) {
        struct plugin_vm *p = userdata;
        uint64_t f;

        f = plugin_vm_features_for(p->kvm->irqchip, kvm_vm_check_extension(p->kvm, KVM_CAP_READONLY_MEM) > 0,
                                   kvm_vm_check_extension(p->kvm, KVM_CAP_IMMEDIATE_EXIT) > 0);
        /* KVM_IRQFD_FLAG_RESAMPLE needs its own capability besides the irqchip. */
        if (kvm_vm_check_extension(p->kvm, KVM_CAP_IRQFD_RESAMPLE) <= 0)
                f &= ~(uint64_t) PLUGIN_FEATURE_IRQ_RESAMPLE;
        return f;
}

/* The vCPU's fd, -EINVAL for a vCPU that does not exist (yet). */
static int cpu_fd(struct plugin_vm *p, unsigned cpu) {
        if (cpu >= p->n_vcpus || !p->vcpus[cpu].vcpu)
                return -EINVAL;
        return vcpu_fd(p->vcpus[cpu].vcpu);
}

static int cpu_ioctl(struct plugin_vm *p, unsigned cpu, unsigned long req, void *arg) {
        int fd = cpu_fd(p, cpu);

        if (fd < 0)
                return fd;
        return ioctl(fd, req, arg) < 0 ? negative_errno() : 0;
}

static int op_get_regs(void *u, unsigned cpu, struct kvm_regs *ret) {
        return cpu_ioctl(u, cpu, KVM_GET_REGS, ret);
}
static int op_set_regs(void *u, unsigned cpu, const struct kvm_regs *regs) {
        return cpu_ioctl(u, cpu, KVM_SET_REGS, (void *) regs);
}
static int op_get_sregs(void *u, unsigned cpu, struct kvm_sregs *ret) {
        return cpu_ioctl(u, cpu, KVM_GET_SREGS, ret);
}
static int op_set_sregs(void *u, unsigned cpu, const struct kvm_sregs *sregs) {
        return cpu_ioctl(u, cpu, KVM_SET_SREGS, (void *) sregs);
}
static int op_get_fpu(void *u, unsigned cpu, struct kvm_fpu *ret) {
        return cpu_ioctl(u, cpu, KVM_GET_FPU, ret);
}
static int op_set_fpu(void *u, unsigned cpu, const struct kvm_fpu *fpu) {
        return cpu_ioctl(u, cpu, KVM_SET_FPU, (void *) fpu);
}
/* Without KVM's irqchip there is no in-kernel LAPIC (KVM says EINVAL). */
static int op_get_lapic(void *u, unsigned cpu, struct kvm_lapic_state *ret) {
        struct plugin_vm *p = u;
        return p->kvm->irqchip ? cpu_ioctl(p, cpu, KVM_GET_LAPIC, ret) : -EOPNOTSUPP;
}
static int op_set_lapic(void *u, unsigned cpu, const struct kvm_lapic_state *lapic) {
        struct plugin_vm *p = u;
        return p->kvm->irqchip ? cpu_ioctl(p, cpu, KVM_SET_LAPIC, (void *) lapic) : -EOPNOTSUPP;
}

/* struct kvm_msrs with room for PLUGIN_MAX_MSRS entries. */
struct msr_buf {
        struct kvm_msrs hdr;
        struct kvm_msr_entry entries[PLUGIN_MAX_MSRS];
};

static int msrs_ioctl(struct plugin_vm *p, unsigned cpu, unsigned long req, struct msr_buf *b, uint32_t n) {
        int fd = cpu_fd(p, cpu), r;

        if (fd < 0)
                return fd;
        b->hdr.nmsrs = n;
        r = ioctl(fd, req, b);
        if (r < 0)
                return negative_errno();
        /* KVM stops at the first MSR it does not know. */
        return (uint32_t) r == n ? 0 : -EINVAL;
}

static int op_get_msrs(void *u, unsigned cpu, struct plugin_msr *entries, uint32_t n) {
        struct msr_buf b = {};
        int r;

        if (n > PLUGIN_MAX_MSRS)
                return -EINVAL;
        for (uint32_t i = 0; i < n; i++)
                b.entries[i].index = entries[i].index;
        r = msrs_ioctl(u, cpu, KVM_GET_MSRS, &b, n);
        if (r < 0)
                return r;
        for (uint32_t i = 0; i < n; i++)
                entries[i].data = b.entries[i].data;
        return 0;
}

static int op_set_msrs(void *u, unsigned cpu, const struct plugin_msr *entries, uint32_t n) {
        struct msr_buf b = {};

        if (n > PLUGIN_MAX_MSRS)
                return -EINVAL;
        for (uint32_t i = 0; i < n; i++)
                b.entries[i] = (struct kvm_msr_entry) { .index = entries[i].index, .data = entries[i].data };
        return msrs_ioctl(u, cpu, KVM_SET_MSRS, &b, n);
}

struct cpuid_buf {
        struct kvm_cpuid2 hdr;
        struct kvm_cpuid_entry2 entries[PLUGIN_MAX_CPUID];
};

static int op_get_cpuid(void *u, unsigned cpu, struct kvm_cpuid_entry2 *entries, uint32_t max, uint32_t *ret_n) {
        _cleanup_free_ struct cpuid_buf *b = calloc(1, sizeof(*b));
        int r;

        if (!b)
                return -ENOMEM;
        b->hdr.nent = MIN(max, (uint32_t) PLUGIN_MAX_CPUID);
        r = cpu_ioctl(u, cpu, KVM_GET_CPUID2, b);
        if (r < 0)
                return r;
        memcpy(entries, b->entries, b->hdr.nent * sizeof(*entries));
        *ret_n = b->hdr.nent;
        return 0;
}

static int op_set_cpuid(void *u, unsigned cpu, const struct kvm_cpuid_entry2 *entries, uint32_t n) {
        _cleanup_free_ struct cpuid_buf *b = calloc(1, sizeof(*b));

        if (!b)
                return -ENOMEM;
        if (n > PLUGIN_MAX_CPUID)
                return -EINVAL;
        b->hdr.nent = n;
        memcpy(b->entries, entries, n * sizeof(*entries));
        return cpu_ioctl(u, cpu, KVM_SET_CPUID2, b);
}

static int op_vcpu_resume(void *userdata, unsigned cpu, const uint8_t *data, uint32_t len) {
        struct plugin_vm *p = userdata;
        struct pvcpu *c;
        int r = 0;

        if (cpu >= p->n_vcpus || len > sizeof(c->data))
                return -EINVAL;
        c = &p->vcpus[cpu];
        pthread_mutex_lock(&c->lock);
        if (!c->waiting)
                r = -EBUSY;
        else {
                memcpy(c->data, data, len);
                c->len = len;
                c->resumed = true;
                pthread_cond_broadcast(&c->cond);
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}

static int op_request_exit(void *userdata, unsigned cpu) {
        struct plugin_vm *p = userdata;

        if (cpu >= p->n_vcpus || !p->vcpus[cpu].vcpu)
                return -EINVAL;
        vcpu_request_exit(p->vcpus[cpu].vcpu);
        return 0;
}

static int op_pause(void *userdata, unsigned cpu, uint64_t user) {
        struct plugin_vm *p = userdata;
        struct pvcpu *c;

        if (cpu >= p->n_vcpus || !p->vcpus[cpu].vcpu)
                return -EINVAL;
        c = &p->vcpus[cpu];
        pthread_mutex_lock(&c->lock);
        c->want_pause = true;
        c->pause_user = user;
        pthread_mutex_unlock(&c->lock);
        vcpu_request_exit(c->vcpu);
        return 0;
}

const struct plugin_vm_ops plugin_vm_kvm_ops = {
        .add_io_event = op_add_io_event,
        .remove_io_event = op_remove_io_event,
        .add_memory = op_add_memory,
        .remove_memory = op_remove_memory,
        .get_dirty_log = op_get_dirty_log,
        .add_irq_event = op_add_irq_event,
        .remove_irq_event = op_remove_irq_event,
        .set_irq_line = op_set_irq_line,
        .get_clock = op_get_clock,
        .set_clock = op_set_clock,
        .pause_vcpus = op_pause_vcpus,
        .resume_vcpus = op_resume_vcpus,
        .reserve_range = op_reserve_range,
        .unreserve_range = op_unreserve_range,
        .get_features = op_get_features,
        .vcpu_get_regs = op_get_regs,
        .vcpu_set_regs = op_set_regs,
        .vcpu_get_sregs = op_get_sregs,
        .vcpu_set_sregs = op_set_sregs,
        .vcpu_get_fpu = op_get_fpu,
        .vcpu_set_fpu = op_set_fpu,
        .vcpu_get_lapic = op_get_lapic,
        .vcpu_set_lapic = op_set_lapic,
        .vcpu_get_msrs = op_get_msrs,
        .vcpu_set_msrs = op_set_msrs,
        .vcpu_get_cpuid = op_get_cpuid,
        .vcpu_set_cpuid = op_set_cpuid,
        .vcpu_resume = op_vcpu_resume,
        .vcpu_request_exit = op_request_exit,
        .vcpu_pause = op_pause,
};
