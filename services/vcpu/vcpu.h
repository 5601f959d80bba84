/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The vCPU engine: one thread per vCPU running KVM_RUN, dispatching exits
 * to the launcher through struct vcpu_ops, completing the few instructions
 * a software-backed KVM cannot emulate, and serving org.polyvm.Vcpu1. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "loader-x86.h"

struct vcpu;

enum vcpu_exit_kind {
        VCPU_EXIT_POWEROFF,       /* the launcher said so from an I/O handler */
        VCPU_EXIT_REBOOT,
        VCPU_EXIT_SHUTDOWN,       /* triple fault */
        VCPU_EXIT_INTERNAL_ERROR, /* detail names RIP and bytes */
        VCPU_EXIT_FAILED,         /* anything else unexpected; detail says what */
        VCPU_EXIT_HALTED,         /* this vCPU's run ended (a plugin VM's hlt/shutdown); not the VM's */
};

/* Callbacks from vCPU threads into the launcher. They run on the vCPU's
 * thread and must be thread-safe. Any of them may be NULL. */
struct vcpu_ops {
        /* Port I/O: fill data on a read (all ones if nothing is there).
         * Returning a vcpu_exit_kind >= 0 stops the VM with that reason
         * (poweroff/reboot from the PM and reset ports); -1 means go on. */
        int (*pio)(void *userdata, unsigned vcpu, uint16_t port, uint8_t *data, uint32_t size, bool is_write);
        int (*mmio)(void *userdata, unsigned vcpu, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);
        /* A vCPU ended the VM (after the thread stopped running the guest;
         * it will never enter the guest again). Called with no engine lock
         * held: it may vcpu_pause()/vcpu_stop() any vCPU, but must not
         * vcpu_free() the calling one. */
        void (*stop)(void *userdata, unsigned vcpu, enum vcpu_exit_kind kind, const char *detail);
        /* The vCPU is out of the guest at a clean point (its last exit is
         * complete): before its first KVM_RUN (first), or because
         * vcpu_request_exit() asked. -1 goes on; a vcpu_exit_kind ends the
         * vCPU's run with it. Plugin VMs report INIT / IMMEDIATE_EXIT here. */
        int (*user_stop)(void *userdata, unsigned vcpu, bool first);
        /* KVM_EXIT_HLT (shutdown false) or KVM_EXIT_SHUTDOWN (true). -1
         * goes on; a vcpu_exit_kind ends the run. Without it, hlt runs on
         * and a shutdown stops the VM as a triple fault. */
        int (*halt)(void *userdata, unsigned vcpu, bool shutdown);
};

/* Creates vCPU index of vm_fd with the CPUID KVM supports, LAPIC LINT0
 * ExtINT / LINT1 NMI, and for index 0 the registers of entry (APs wait for
 * INIT/SIPI in the in-kernel LAPIC). kvm_fd is /dev/kvm. The VM must have
 * its in-kernel irqchip (KVM_CREATE_IRQCHIP) before the first vCPU.
 * mem/mem_size is guest RAM as loader_load() sees it (guest address 0 at
 * mem, RAM above the MMIO hole at mem + LAYOUT_MMIO_HOLE_START); it is read
 * to fetch an instruction KVM failed to emulate when KVM gives no bytes.
 * entry NULL (plugin VMs): every vCPU keeps KVM's reset registers and is
 * runnable at once (no wait for SIPI); whoever owns it sets its state in
 * ops->user_stop before it first runs. A VM without in-kernel irqchip is
 * fine then (the LAPIC setup is skipped). */
int vcpu_new(int kvm_fd, int vm_fd, unsigned index, unsigned n_vcpus, const struct boot_entry *entry,
             void *mem, uint64_t mem_size, const struct vcpu_ops *ops, void *userdata, struct vcpu **ret);

/* Starts the thread. The thread uses SIGRTMIN to be kicked out of KVM_RUN:
 * the launcher must leave that signal alone. */
int vcpu_start(struct vcpu *v);

/* Pause: returns once the vCPU is out of KVM_RUN and parked (at once if it
 * is stopped or not started; a vCPU paused before vcpu_start starts parked). */
void vcpu_pause(struct vcpu *v);
void vcpu_resume(struct vcpu *v);

/* Makes the thread leave the guest for good and returns once it has (from
 * the vCPU's own thread, e.g. in ops->stop, it only asks). ops->stop is not
 * called for a stop asked this way. */
void vcpu_stop(struct vcpu *v);

/* Kicks the vCPU out of the guest without waiting; it then calls
 * ops->user_stop(first false) before it enters the guest again. */
void vcpu_request_exit(struct vcpu *v);

/* Pause without waiting (vcpu_pause's request and kick); vcpu_is_parked
 * says whether it is out of the guest for good or for the pause (paused,
 * stopped, or never started). */
void vcpu_pause_async(struct vcpu *v);
bool vcpu_is_parked(struct vcpu *v);

/* The KVM vCPU fd, for the state ioctls while its thread is stopped
 * outside the guest (a plugin VM's vCPU waiting for its plugin). */
int vcpu_fd(const struct vcpu *v);

/* Stops the thread (vcpu_stop), joins it, closes the fd. Never from the
 * vCPU's own thread. */
void vcpu_free(struct vcpu *v);

/* Publishes org.polyvm.Vcpu1 at path for v (sd_bus_add_object_vtable); the
 * slot goes away in vcpu_free. */
int vcpu_bus_add(struct vcpu *v, sd_bus *bus, const char *path);
