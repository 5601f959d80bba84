/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "plugin-fake.h"

static void logf_(struct fake_vm *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct fake_vm *f, const char *fmt, ...) {
        size_t n = strlen(f->log);
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(f->log + n, sizeof(f->log) - n, fmt, ap);
        va_end(ap);
        n = strlen(f->log);
        if (n + 1 < sizeof(f->log)) {
                f->log[n] = '\n';
                f->log[n + 1] = 0;
        }
}

/* Every op starts here: log the call, and fail it if told to. */
#define ENTER(f, ...)                                   \
        do {                                            \
                logf_(f, __VA_ARGS__);                  \
                if ((f)->fail_next) {                   \
                        int e_ = (f)->fail_next;        \
                        (f)->fail_next = 0;             \
                        return -e_;                     \
                }                                       \
        } while (0)

static int add_io_event(void *ud, uint32_t id, const struct plugin_io_event *e, int fd) {
        struct fake_vm *f = ud;
        ENTER(f, "add_io_event id=%u space=%u address=0x%llx length=%u datamatch=%u value=0x%llx", id, e->space,
              (unsigned long long) e->address, e->length, e->datamatch, (unsigned long long) e->value);
        f->live_io_events++;
        return 0;
}

static int remove_io_event(void *ud, uint32_t id, const struct plugin_io_event *e, int fd) {
        struct fake_vm *f = ud;
        ENTER(f, "remove_io_event id=%u space=%u address=0x%llx length=%u datamatch=%u value=0x%llx", id, e->space,
              (unsigned long long) e->address, e->length, e->datamatch, (unsigned long long) e->value);
        f->live_io_events--;
        return 0;
}

static int add_memory(void *ud, uint32_t id, const struct plugin_memory *m, int memfd) {
        struct fake_vm *f = ud;
        void *map;
        ENTER(f, "add_memory id=%u offset=0x%llx guest=0x%llx size=0x%llx flags=%u", id,
              (unsigned long long) m->offset, (unsigned long long) m->guest_address, (unsigned long long) m->size,
              m->flags);
        if (f->n_memory >= FAKE_MAX_MEMORY)
                return -ENOSPC;
        map = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, (off_t) m->offset);
        if (map == MAP_FAILED)
                return -errno;
        f->memory[f->n_memory++] = (struct fake_memory) { .id = id, .m = *m, .map = map };
        return 0;
}

static int remove_memory(void *ud, uint32_t id, const struct plugin_memory *m) {
        struct fake_vm *f = ud;
        ENTER(f, "remove_memory id=%u guest=0x%llx size=0x%llx", id, (unsigned long long) m->guest_address,
              (unsigned long long) m->size);
        for (unsigned i = 0; i < f->n_memory; i++)
                if (f->memory[i].id == id) {
                        munmap(f->memory[i].map, f->memory[i].m.size);
                        f->memory[i] = f->memory[--f->n_memory];
                        return 0;
                }
        return -ENOENT;
}

static int get_dirty_log(void *ud, uint32_t id, const struct plugin_memory *m, uint8_t *bitmap, size_t len) {
        struct fake_vm *f = ud;
        ENTER(f, "get_dirty_log id=%u len=%zu", id, len);
        /* Pages 0 and the last one are dirty. */
        uint64_t pages = m->size / PLUGIN_PAGE_SIZE;
        bitmap[0] |= 1;
        bitmap[(pages - 1) / 8] |= (uint8_t) (1u << ((pages - 1) % 8));
        return 0;
}

static int add_irq_event(void *ud, uint32_t id, uint32_t irq, int fd, int resample_fd) {
        struct fake_vm *f = ud;
        ENTER(f, "add_irq_event id=%u irq=%u resample=%d", id, irq, resample_fd >= 0);
        f->live_irq_events++;
        return 0;
}

static int remove_irq_event(void *ud, uint32_t id, uint32_t irq, int fd, int resample_fd) {
        struct fake_vm *f = ud;
        ENTER(f, "remove_irq_event id=%u irq=%u resample=%d", id, irq, resample_fd >= 0);
        f->live_irq_events--;
        return 0;
}

static int set_irq_line(void *ud, uint32_t irq, bool level) {
        struct fake_vm *f = ud;
        ENTER(f, "set_irq_line irq=%u level=%d", irq, level);
        f->irq_level[irq] = level;
        return 0;
}

static int get_clock(void *ud, uint64_t *clock, uint32_t *flags) {
        struct fake_vm *f = ud;
        ENTER(f, "get_clock");
        *clock = f->clock;
        *flags = PLUGIN_CLOCK_STABLE | 0x80; /* a bit the protocol has no name for: the server drops it */
        return 0;
}

static int set_clock(void *ud, uint64_t clock) {
        struct fake_vm *f = ud;
        ENTER(f, "set_clock clock=%llu", (unsigned long long) clock);
        f->clock = clock;
        return 0;
}

static int pause_vcpus(void *ud, uint64_t mask) {
        struct fake_vm *f = ud;
        ENTER(f, "pause_vcpus mask=0x%llx", (unsigned long long) mask);
        f->paused_mask |= mask;
        return 0;
}

static int resume_vcpus(void *ud, uint64_t mask) {
        struct fake_vm *f = ud;
        ENTER(f, "resume_vcpus mask=0x%llx", (unsigned long long) mask);
        f->paused_mask &= ~mask;
        return 0;
}

static int reserve_range(void *ud, const struct plugin_range *r) {
        struct fake_vm *f = ud;
        ENTER(f, "reserve_range space=%u start=0x%llx length=0x%llx", r->space, (unsigned long long) r->start,
              (unsigned long long) r->length);
        f->live_ranges++;
        return 0;
}

static int unreserve_range(void *ud, const struct plugin_range *r) {
        struct fake_vm *f = ud;
        ENTER(f, "unreserve_range space=%u start=0x%llx length=0x%llx", r->space, (unsigned long long) r->start,
              (unsigned long long) r->length);
        f->live_ranges--;
        return 0;
}

static uint64_t get_features(void *ud) {
        struct fake_vm *f = ud;
        return f->features;
}

#define STATE_OPS(name, type, field)                                                    \
        static int vcpu_get_##name(void *ud, unsigned cpu, type *ret) {                 \
                struct fake_vm *f = ud;                                                 \
                ENTER(f, "vcpu_get_" #name " cpu=%u", cpu);                             \
                *ret = f->field;                                                        \
                return 0;                                                               \
        }                                                                               \
        static int vcpu_set_##name(void *ud, unsigned cpu, const type *v) {             \
                struct fake_vm *f = ud;                                                 \
                ENTER(f, "vcpu_set_" #name " cpu=%u", cpu);                             \
                f->field = *v;                                                          \
                return 0;                                                               \
        }
STATE_OPS(regs, struct kvm_regs, regs)
STATE_OPS(sregs, struct kvm_sregs, sregs)
STATE_OPS(fpu, struct kvm_fpu, fpu)
STATE_OPS(lapic, struct kvm_lapic_state, lapic)

static int vcpu_get_msrs(void *ud, unsigned cpu, struct plugin_msr *e, uint32_t n) {
        struct fake_vm *f = ud;
        ENTER(f, "vcpu_get_msrs cpu=%u n=%u", cpu, n);
        for (uint32_t i = 0; i < n; i++)
                e[i].data = e[i].index ^ f->msr_value;
        return 0;
}

static int vcpu_set_msrs(void *ud, unsigned cpu, const struct plugin_msr *e, uint32_t n) {
        struct fake_vm *f = ud;
        ENTER(f, "vcpu_set_msrs cpu=%u n=%u", cpu, n);
        memcpy(f->last_msrs, e, n * sizeof(*e));
        f->n_last_msrs = n;
        return 0;
}

static int vcpu_get_cpuid(void *ud, unsigned cpu, struct kvm_cpuid_entry2 *e, uint32_t max, uint32_t *ret_n) {
        struct fake_vm *f = ud;
        ENTER(f, "vcpu_get_cpuid cpu=%u", cpu);
        memcpy(e, f->cpuid, f->n_cpuid * sizeof(*e));
        *ret_n = f->n_cpuid;
        return 0;
}

static int vcpu_set_cpuid(void *ud, unsigned cpu, const struct kvm_cpuid_entry2 *e, uint32_t n) {
        struct fake_vm *f = ud;
        ENTER(f, "vcpu_set_cpuid cpu=%u n=%u", cpu, n);
        memcpy(f->cpuid, e, n * sizeof(*e));
        f->n_cpuid = n;
        return 0;
}

static int vcpu_resume(void *ud, unsigned cpu, const uint8_t *data, uint32_t len) {
        struct fake_vm *f = ud;
        ENTER(f, "vcpu_resume cpu=%u len=%u", cpu, len);
        pthread_mutex_lock(&f->lock);
        memcpy(f->resume_data, data, len);
        f->resume_len = len;
        f->resumes++;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
        return 0;
}

static int vcpu_request_exit(void *ud, unsigned cpu) {
        struct fake_vm *f = ud;
        ENTER(f, "vcpu_request_exit cpu=%u", cpu);
        f->exit_requests++;
        return 0;
}

static int vcpu_pause(void *ud, unsigned cpu, uint64_t user) {
        struct fake_vm *f = ud;
        ENTER(f, "vcpu_pause cpu=%u user=0x%llx", cpu, (unsigned long long) user);
        f->pause_user = user;
        return 0;
}

const struct plugin_vm_ops fake_ops = {
        .add_io_event = add_io_event,
        .remove_io_event = remove_io_event,
        .add_memory = add_memory,
        .remove_memory = remove_memory,
        .get_dirty_log = get_dirty_log,
        .add_irq_event = add_irq_event,
        .remove_irq_event = remove_irq_event,
        .set_irq_line = set_irq_line,
        .get_clock = get_clock,
        .set_clock = set_clock,
        .pause_vcpus = pause_vcpus,
        .resume_vcpus = resume_vcpus,
        .reserve_range = reserve_range,
        .unreserve_range = unreserve_range,
        .get_features = get_features,
        .vcpu_get_regs = vcpu_get_regs,
        .vcpu_set_regs = vcpu_set_regs,
        .vcpu_get_sregs = vcpu_get_sregs,
        .vcpu_set_sregs = vcpu_set_sregs,
        .vcpu_get_fpu = vcpu_get_fpu,
        .vcpu_set_fpu = vcpu_set_fpu,
        .vcpu_get_lapic = vcpu_get_lapic,
        .vcpu_set_lapic = vcpu_set_lapic,
        .vcpu_get_msrs = vcpu_get_msrs,
        .vcpu_set_msrs = vcpu_set_msrs,
        .vcpu_get_cpuid = vcpu_get_cpuid,
        .vcpu_set_cpuid = vcpu_set_cpuid,
        .vcpu_resume = vcpu_resume,
        .vcpu_request_exit = vcpu_request_exit,
        .vcpu_pause = vcpu_pause,
};

void fake_vm_init(struct fake_vm *f) {
        memset(f, 0, sizeof(*f));
        f->features = UINT64_MAX;
        /* x86 reset state, where it matters to the tests. */
        f->sregs.cs.base = 0xffff0000;
        f->sregs.cs.selector = 0xf000;
        f->regs.rip = 0xfff0;
        f->regs.rflags = 0x2;
        pthread_mutex_init(&f->lock, NULL);
        pthread_cond_init(&f->cond, NULL);
}

void fake_vm_done(struct fake_vm *f) {
        for (unsigned i = 0; i < f->n_memory; i++)
                munmap(f->memory[i].map, f->memory[i].m.size);
        f->n_memory = 0;
        pthread_mutex_destroy(&f->lock);
        pthread_cond_destroy(&f->cond);
}

bool fake_vm_called(const struct fake_vm *f, const char *prefix) {
        size_t n = strlen(prefix);
        for (const char *l = f->log; *l; l = strchr(l, '\n') + 1) {
                if (strncmp(l, prefix, n) == 0)
                        return true;
                if (!strchr(l, '\n'))
                        break;
        }
        return false;
}

unsigned fake_vm_wait_resume(struct fake_vm *f, unsigned seen) {
        struct timespec deadline;
        unsigned r;

        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 5;
        pthread_mutex_lock(&f->lock);
        while (f->resumes <= seen)
                if (pthread_cond_timedwait(&f->cond, &f->lock, &deadline) != 0)
                        break;
        r = f->resumes > seen ? f->resumes : 0;
        pthread_mutex_unlock(&f->lock);
        return r;
}

int fake_server_new(struct fake_server *sv) {
        int fd, r;

        fake_vm_init(&sv->fake);
        atomic_store(&sv->result, 0);
        r = plugin_server_new(&fake_ops, &sv->fake, 1, &sv->s, &fd);
        if (r < 0) {
                fake_vm_done(&sv->fake);
                return r;
        }
        return fd;
}

static void *fake_server_serve(void *arg) {
        struct fake_server *sv = arg;
        int r;

        do
                r = plugin_server_process(sv->s, 20);
        while (r >= 0);
        atomic_store(&sv->result, r);
        return NULL;
}

int fake_server_start(struct fake_server *sv) {
        return -pthread_create(&sv->thread, NULL, fake_server_serve, sv);
}

int fake_server_finish(struct fake_server *sv) {
        (void) pthread_join(sv->thread, NULL);
        plugin_server_free(sv->s);
        fake_vm_done(&sv->fake);
        return atomic_load(&sv->result);
}
