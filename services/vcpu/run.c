/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vCPU thread: KVM_RUN, exit dispatch, the pause/stop handshake. A kick
 * is SIGRTMIN sent to the thread; its handler sets kvm_run.immediate_exit,
 * so a kick that lands between our flag check and KVM_RUN still makes
 * KVM_RUN return at once (KVM's documented race-free exit). */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "emulate.h"
#include "guest-ram.h"
#include "log.h"
#include "vcpu-internal.h"

static _Thread_local struct kvm_run *current_run;

static void kick_handler(int sig) {
        struct kvm_run *run = current_run;

        if (run)
                *(volatile __u8 *) &run->immediate_exit = 1;
}

static pthread_once_t signal_once = PTHREAD_ONCE_INIT;
static int signal_init_result;

static void signal_init_once(void) {
        struct sigaction sa = {
                .sa_handler = kick_handler,
                .sa_flags = SA_RESTART, /* only KVM_RUN should see the kick */
        };

        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGRTMIN, &sa, NULL) < 0)
                signal_init_result = negative_errno();
}

int vcpu_signal_init(void) {
        (void) pthread_once(&signal_once, signal_init_once);
        return signal_init_result;
}

void vcpu_kick(struct vcpu *v) {
        int r;

        r = pthread_kill(v->thread, SIGRTMIN);
        if (r != 0 && r != ESRCH)
                log_warning_errno(r, "Failed to kick vCPU %u: %m", v->index);
}

static void vcpu_set_state(struct vcpu *v, enum vcpu_state s) {
        atomic_store(&v->state, (int) s);
        pthread_cond_broadcast(&v->cond);
}

/* Called with v->lock held by the waiters below. */
static bool vcpu_thread_is_self(struct vcpu *v) {
        return v->thread_started && pthread_equal(pthread_self(), v->thread);
}

void vcpu_pause(struct vcpu *v) {
        pthread_mutex_lock(&v->lock);
        atomic_store(&v->pause_requested, true);
        if (!v->thread_started || atomic_load(&v->state) == VCPU_STATE_STOPPED || vcpu_thread_is_self(v)) {
                pthread_mutex_unlock(&v->lock);
                return;
        }
        vcpu_kick(v);
        /* Until parked or gone (the thread may not have left "created" yet);
         * a concurrent vcpu_resume ends the wait too. */
        for (;;) {
                int s = atomic_load(&v->state);

                if (s == VCPU_STATE_PAUSED || s == VCPU_STATE_STOPPED || !atomic_load(&v->pause_requested))
                        break;
                pthread_cond_wait(&v->cond, &v->lock);
        }
        pthread_mutex_unlock(&v->lock);
}

void vcpu_pause_async(struct vcpu *v) {
        pthread_mutex_lock(&v->lock);
        atomic_store(&v->pause_requested, true);
        if (v->thread_started && atomic_load(&v->state) != VCPU_STATE_STOPPED && !vcpu_thread_is_self(v))
                vcpu_kick(v);
        pthread_mutex_unlock(&v->lock);
}

bool vcpu_is_parked(struct vcpu *v) {
        bool parked;
        int s;

        pthread_mutex_lock(&v->lock);
        s = atomic_load(&v->state);
        parked = !v->thread_started || s == VCPU_STATE_PAUSED || s == VCPU_STATE_STOPPED;
        pthread_mutex_unlock(&v->lock);
        return parked;
}

void vcpu_request_exit(struct vcpu *v) {
        pthread_mutex_lock(&v->lock);
        atomic_store(&v->exit_requested, true);
        if (v->thread_started && atomic_load(&v->state) != VCPU_STATE_STOPPED && !vcpu_thread_is_self(v))
                vcpu_kick(v);
        pthread_mutex_unlock(&v->lock);
}

void vcpu_resume(struct vcpu *v) {
        pthread_mutex_lock(&v->lock);
        atomic_store(&v->pause_requested, false);
        pthread_cond_broadcast(&v->cond);
        pthread_mutex_unlock(&v->lock);
}

void vcpu_stop(struct vcpu *v) {
        pthread_mutex_lock(&v->lock);
        atomic_store(&v->stop_requested, true);
        pthread_cond_broadcast(&v->cond); /* a parked thread wakes and leaves */
        if (!v->thread_started) {
                atomic_store(&v->state, (int) VCPU_STATE_STOPPED);
                pthread_mutex_unlock(&v->lock);
                return;
        }
        if (vcpu_thread_is_self(v)) {
                pthread_mutex_unlock(&v->lock);
                return;
        }
        vcpu_kick(v);
        while (atomic_load(&v->state) != VCPU_STATE_STOPPED)
                pthread_cond_wait(&v->cond, &v->lock);
        pthread_mutex_unlock(&v->lock);
}

/* KVM finishes an I/O or MMIO exit (the read value, the string I/O step)
 * only when KVM_RUN is entered again; with immediate_exit set it does just
 * that and returns EINTR, so a paused vCPU's registers are consistent.
 * Finishing one chunk of a rep ins/outs can instead return the exit for the
 * next chunk (KVM_RUN returns 0): true then, and that exit must be handled. */
static bool vcpu_complete_pending(struct vcpu *v) {
        *(volatile __u8 *) &v->run->immediate_exit = 1;
        if (ioctl(v->fd, KVM_RUN, 0) >= 0)
                return true;
        if (errno != EINTR && errno != EAGAIN)
                log_warning_errno(errno, "vCPU %u: completing the last exit before pausing did not return EINTR: %m",
                                  v->index);
        return false;
}

enum {
        VCPU_PARK_GO_ON,
        VCPU_PARK_LEAVE,
        VCPU_PARK_NEW_EXIT, /* completing the pending exit produced another one, in v->run */
};

/* Parks while a pause is asked. */
static int vcpu_park(struct vcpu *v, bool *pending) {
        bool go_on;

        if (!atomic_load(&v->pause_requested) && !atomic_load(&v->stop_requested))
                return VCPU_PARK_GO_ON;

        pthread_mutex_lock(&v->lock);
        if (atomic_load(&v->pause_requested) && !atomic_load(&v->stop_requested)) {
                if (*pending) {
                        *pending = false;
                        if (vcpu_complete_pending(v)) {
                                pthread_mutex_unlock(&v->lock);
                                return VCPU_PARK_NEW_EXIT;
                        }
                }
                vcpu_set_state(v, VCPU_STATE_PAUSED);
                while (atomic_load(&v->pause_requested) && !atomic_load(&v->stop_requested))
                        pthread_cond_wait(&v->cond, &v->lock);
                if (!atomic_load(&v->stop_requested))
                        vcpu_set_state(v, VCPU_STATE_RUNNING);
        }
        go_on = !atomic_load(&v->stop_requested);
        pthread_mutex_unlock(&v->lock);
        return go_on ? VCPU_PARK_GO_ON : VCPU_PARK_LEAVE;
}

static void vcpu_count_exit(struct vcpu *v, unsigned slot) {
        atomic_fetch_add_explicit(&v->exit_counts[slot], 1, memory_order_relaxed);
}

static int exit_stop(struct exit_result *res, enum vcpu_exit_kind kind, const char *fmt, ...) _printf_(3, 4);
static int exit_stop(struct exit_result *res, enum vcpu_exit_kind kind, const char *fmt, ...) {
        va_list ap;

        res->kind = kind;
        va_start(ap, fmt);
        vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
        va_end(ap);
        return 1;
}

/* A launcher callback's verdict: -1 go on, a vcpu_exit_kind stops. */
static int exit_from_callback(struct exit_result *res, int r, const char *what, uint64_t addr, bool is_write) {
        if (r < 0)
                return 0;
        if (r > VCPU_EXIT_HALTED)
                return exit_stop(res, VCPU_EXIT_FAILED, "%s handler returned invalid verdict %d", what, r);
        return exit_stop(res, (enum vcpu_exit_kind) r, "%s %s at 0x%" PRIx64, what, is_write ? "write" : "read", addr);
}

/* The verdict of a hook that is no I/O access (halt, user_stop). */
static int exit_from_hook(struct exit_result *res, int r, const char *what) {
        if (r < 0)
                return 0;
        if (r > VCPU_EXIT_HALTED)
                return exit_stop(res, VCPU_EXIT_FAILED, "%s handler returned invalid verdict %d", what, r);
        return exit_stop(res, (enum vcpu_exit_kind) r, "%s", what);
}

static int vcpu_handle_io(struct vcpu *v, struct exit_result *res) {
        struct kvm_run *run = v->run;
        uint32_t size = run->io.size, count = run->io.count;
        uint64_t off = run->io.data_offset;
        bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

        if (size != 1 && size != 2 && size != 4)
                return exit_stop(res, VCPU_EXIT_FAILED, "KVM_EXIT_IO on port 0x%x with size %" PRIu32,
                                 run->io.port, size);
        if (off > v->run_size || (uint64_t) size * count > v->run_size - off)
                return exit_stop(res, VCPU_EXIT_FAILED,
                                 "KVM_EXIT_IO on port 0x%x with data outside kvm_run (offset %" PRIu64 ", %" PRIu32 " x %" PRIu32 ")",
                                 run->io.port, off, count, size);

        for (uint32_t i = 0; i < count; i++) {
                uint8_t *data = (uint8_t *) run + off + (size_t) i * size;
                int r = -1;

                if (!is_write)
                        memset(data, 0xff, size);
                if (v->ops && v->ops->pio)
                        r = v->ops->pio(v->userdata, v->index, run->io.port, data, size, is_write);
                if (exit_from_callback(res, r, "port", run->io.port, is_write))
                        return 1;
        }
        return 0;
}

static int vcpu_handle_mmio(struct vcpu *v, struct exit_result *res) {
        struct kvm_run *run = v->run;
        uint32_t len = run->mmio.len;
        int r = -1;

        if (len == 0 || len > sizeof(run->mmio.data))
                return exit_stop(res, VCPU_EXIT_FAILED, "KVM_EXIT_MMIO at 0x%llx with length %" PRIu32,
                                 (unsigned long long) run->mmio.phys_addr, len);
        if (!run->mmio.is_write)
                memset(run->mmio.data, 0xff, len);
        if (v->ops && v->ops->mmio)
                r = v->ops->mmio(v->userdata, v->index, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write);
        return exit_from_callback(res, r, "mmio", run->mmio.phys_addr, run->mmio.is_write);
}

/* Reads up to EMULATE_INSN_BYTES_MAX bytes at CS:RIP through the guest's
 * page tables (KVM_TRANSLATE), page by page; stops at the first hole. */
static size_t vcpu_fetch_insn(struct vcpu *v, uint64_t rip, uint8_t *buf) {
        struct kvm_sregs sregs;
        uint64_t linear;
        size_t got = 0;

        if (!v->mem || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
                return 0;

        linear = sregs.cs.base + rip;
        if (!(sregs.efer & (1ULL << 10)) || !sregs.cs.l) /* not 64-bit code */
                linear &= 0xffffffff;

        while (got < EMULATE_INSN_BYTES_MAX) {
                uint64_t la = linear + got, chunk, off;
                struct kvm_translation t = { .linear_address = la };

                if (ioctl(v->fd, KVM_TRANSLATE, &t) < 0 || !t.valid)
                        break;
                chunk = MIN((uint64_t) (EMULATE_INSN_BYTES_MAX - got), 4096 - (la & 4095));
                if (guest_ram_offset(t.physical_address, chunk, v->mem_size, &off) < 0)
                        break;
                memcpy(buf + got, (const uint8_t *) v->mem + off, chunk);
                got += chunk;
        }
        return got;
}

static int vcpu_inject_bp(struct vcpu *v) {
        struct kvm_vcpu_events ev;

        if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
                return negative_errno();
        if (ev.exception.injected)
                return -EBUSY; /* an exception is already on its way: do not lose it */

        ev.exception.injected = 1;
        ev.exception.nr = 3; /* #BP */
        ev.exception.has_error_code = 0;
        ev.exception.error_code = 0;
        /* Flags as KVM_GET_VCPU_EVENTS returned them: the other fields are
         * written back unchanged. */
        if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
                return negative_errno();
        return 0;
}

static int vcpu_complete_emulation(struct vcpu *v, struct exit_result *res) {
        struct kvm_run *run = v->run;
        uint8_t bytes[EMULATE_INSN_BYTES_MAX];
        struct emulate_state s;
        struct kvm_regs regs;
        enum emulate_insn insn;
        size_t len = 0;
        int r;

        if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
                return exit_stop(res, VCPU_EXIT_FAILED, "emulation failure, and reading registers failed: %s",
                                 strerror(errno));

        /* data[0] flags, data[1..2] insn_size and the bytes (struct
         * emulation_failure in linux/kvm.h). */
        if (run->emulation_failure.ndata >= 3 &&
            (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
                len = MIN((size_t) run->emulation_failure.insn_size, sizeof(bytes));
                memcpy(bytes, run->emulation_failure.insn_bytes, len);
        }
        if (len == 0)
                len = vcpu_fetch_insn(v, regs.rip, bytes);

        s = (struct emulate_state) { .rip = regs.rip, .rflags = regs.rflags };
        r = emulate_complete(bytes, len, &s, &insn);
        if (r < 0) {
                res->kind = VCPU_EXIT_INTERNAL_ERROR;
                emulate_format_failure(res->detail, sizeof(res->detail), regs.rip, bytes, len);
                return 1;
        }

        regs.rip = s.rip;
        regs.rflags = s.rflags;
        /* Besides moving RIP, KVM_SET_REGS drops the #UD that KVM queued
         * for the instruction it could not emulate (x86.c
         * handle_emulation_failure, __set_regs): keep it before the #BP. */
        if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
                return exit_stop(res, VCPU_EXIT_FAILED, "completing %s at rip 0x%llx: setting registers failed: %s",
                                 emulate_insn_to_string(insn), (unsigned long long) regs.rip, strerror(errno));
        if (s.inject_bp) {
                r = vcpu_inject_bp(v);
                if (r < 0)
                        return exit_stop(res, VCPU_EXIT_FAILED, "completing int3: injecting #BP failed: %s",
                                         strerror(-r));
        }
        atomic_fetch_add_explicit(&v->emulated[insn], 1, memory_order_relaxed);
        return 0;
}

static const char *internal_suberror_to_string(uint32_t s) {
        switch (s) {
        case KVM_INTERNAL_ERROR_EMULATION:
                return "emulation failure";
        case KVM_INTERNAL_ERROR_SIMUL_EX:
                return "simultaneous exceptions";
        case KVM_INTERNAL_ERROR_DELIVERY_EV:
                return "exit while delivering an event";
        case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
                return "unexpected exit reason";
        default:
                return "unknown suberror";
        }
}

static int vcpu_handle_internal_error(struct vcpu *v, struct exit_result *res) {
        struct kvm_run *run = v->run;
        struct kvm_regs regs = {};
        size_t off;
        int k;

        if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION)
                return vcpu_complete_emulation(v, res);

        (void) ioctl(v->fd, KVM_GET_REGS, &regs);
        res->kind = VCPU_EXIT_INTERNAL_ERROR;
        k = snprintf(res->detail, sizeof(res->detail), "KVM internal error: %s (suberror %" PRIu32 ") at rip 0x%llx",
                     internal_suberror_to_string(run->internal.suberror), run->internal.suberror,
                     (unsigned long long) regs.rip);
        off = k < 0 ? sizeof(res->detail) : MIN((size_t) k, sizeof(res->detail));
        for (uint32_t i = 0; i < MIN(run->internal.ndata, (uint32_t) ELEMENTSOF(run->internal.data)); i++) {
                if (off >= sizeof(res->detail))
                        break;
                k = snprintf(res->detail + off, sizeof(res->detail) - off, "%s0x%llx", i == 0 ? ", data " : " ",
                             (unsigned long long) run->internal.data[i]);
                if (k < 0)
                        break;
                off += (size_t) k;
        }
        return 1;
}

static int vcpu_handle_system_event(struct vcpu *v, struct exit_result *res) {
        switch (v->run->system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN:
                return exit_stop(res, VCPU_EXIT_POWEROFF, "KVM system event: shutdown");
        case KVM_SYSTEM_EVENT_RESET:
                return exit_stop(res, VCPU_EXIT_REBOOT, "KVM system event: reset");
        default:
                return exit_stop(res, VCPU_EXIT_FAILED, "KVM system event of type %" PRIu32,
                                 v->run->system_event.type);
        }
}

int vcpu_handle_exit(struct vcpu *v, struct exit_result *res, bool *pending) {
        uint32_t reason = v->run->exit_reason;
        const char *name;

        vcpu_count_exit(v, reason < VCPU_EXIT_REASONS ? reason : VCPU_COUNT_OTHER);
        *pending = false;

        switch (reason) {
        case KVM_EXIT_IO:
                *pending = true;
                return vcpu_handle_io(v, res);
        case KVM_EXIT_MMIO:
                *pending = true;
                return vcpu_handle_mmio(v, res);
        case KVM_EXIT_HLT:
                if (v->ops && v->ops->halt)
                        return exit_from_hook(res, v->ops->halt(v->userdata, v->index, false), "hlt");
                return 0;
        case KVM_EXIT_INTR:
                /* With the in-kernel LAPIC a hlt stays in KVM; if it comes
                 * out, re-entering runs on after it. */
                return 0;
        case KVM_EXIT_SHUTDOWN:
                if (v->ops && v->ops->halt)
                        return exit_from_hook(res, v->ops->halt(v->userdata, v->index, true),
                                              "triple fault (KVM_EXIT_SHUTDOWN)");
                return exit_stop(res, VCPU_EXIT_SHUTDOWN, "triple fault (KVM_EXIT_SHUTDOWN)");
        case KVM_EXIT_INTERNAL_ERROR:
                return vcpu_handle_internal_error(v, res);
        case KVM_EXIT_SYSTEM_EVENT:
                return vcpu_handle_system_event(v, res);
        case KVM_EXIT_FAIL_ENTRY:
                return exit_stop(res, VCPU_EXIT_FAILED, "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x%llx",
                                 (unsigned long long) v->run->fail_entry.hardware_entry_failure_reason);
        default:
                name = reason < VCPU_EXIT_REASONS ? vcpu_exit_count_name(reason) : NULL;
                return exit_stop(res, VCPU_EXIT_FAILED, "unexpected KVM exit %s (%" PRIu32 ")", name ?: "unknown",
                                 reason);
        }
}

void *vcpu_thread(void *arg) {
        struct vcpu *v = arg;
        struct exit_result res = {};
        bool guest_stop = false, pending = false, first = true;
        sigset_t kick;

        sigemptyset(&kick);
        sigaddset(&kick, SIGRTMIN);
        current_run = v->run;
        (void) pthread_sigmask(SIG_UNBLOCK, &kick, NULL);

        pthread_mutex_lock(&v->lock);
        if (atomic_load(&v->state) == VCPU_STATE_CREATED)
                vcpu_set_state(v, VCPU_STATE_RUNNING);
        pthread_mutex_unlock(&v->lock);

        for (;;) {
                int park = vcpu_park(v, &pending);

                if (park == VCPU_PARK_LEAVE)
                        break;
                if (park == VCPU_PARK_NEW_EXIT) {
                        /* Handled like any exit; the next park completes it in turn. */
                        if (vcpu_handle_exit(v, &res, &pending) > 0) {
                                guest_stop = true;
                                break;
                        }
                        continue;
                }

                /* The owner's stop (first run, vcpu_request_exit), at a clean
                 * point: a pending exit is completed first. */
                if (v->ops && v->ops->user_stop && (first || atomic_load(&v->exit_requested))) {
                        if (pending) {
                                pending = false;
                                if (vcpu_complete_pending(v)) {
                                        if (vcpu_handle_exit(v, &res, &pending) > 0) {
                                                guest_stop = true;
                                                break;
                                        }
                                        continue;
                                }
                        }
                        /* A request made before the first run stays for
                         * the stop right after it, not lost in the INIT. */
                        if (!first)
                                atomic_store(&v->exit_requested, false);
                        if (exit_from_hook(&res, v->ops->user_stop(v->userdata, v->index, first),
                                           first ? "stopped before its first run" : "stopped on request")) {
                                guest_stop = true;
                                break;
                        }
                        first = false;
                        continue; /* the stop and pause flags again before entering */
                }

                /* Clear, then check: a kick after the check sets it again. */
                *(volatile __u8 *) &v->run->immediate_exit = 0;
                if (atomic_load(&v->stop_requested) || atomic_load(&v->pause_requested) ||
                    (v->ops && v->ops->user_stop && atomic_load(&v->exit_requested)))
                        continue;

                if (ioctl(v->fd, KVM_RUN, 0) < 0) {
                        if (errno == EINTR) {
                                vcpu_count_exit(v, KVM_EXIT_INTR);
                                continue;
                        }
                        if (errno == EAGAIN) { /* a woken AP, see PLATFORM.md */
                                vcpu_count_exit(v, VCPU_COUNT_EAGAIN);
                                continue;
                        }
                        exit_stop(&res, VCPU_EXIT_FAILED, "KVM_RUN failed: %s", strerror(errno));
                        guest_stop = true;
                        break;
                }

                if (vcpu_handle_exit(v, &res, &pending) > 0) {
                        guest_stop = true;
                        break;
                }
        }

        (void) pthread_sigmask(SIG_BLOCK, &kick, NULL);
        current_run = NULL;

        pthread_mutex_lock(&v->lock);
        if (guest_stop)
                atomic_store(&v->stop_requested, true);
        vcpu_set_state(v, VCPU_STATE_STOPPED);
        pthread_mutex_unlock(&v->lock);

        if (guest_stop) {
                if (res.kind == VCPU_EXIT_HALTED)
                        log_info("vCPU %u ended its run: %s", v->index, res.detail);
                else
                        log_info("vCPU %u stopped the VM: %s", v->index, res.detail);
                if (v->ops && v->ops->stop)
                        v->ops->stop(v->userdata, v->index, res.kind, res.detail);
        }
        return NULL;
}
