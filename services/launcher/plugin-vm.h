/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The KVM side of a plugin VM (docs/plugins.md): struct plugin_vm_ops for
 * the plugin server, and what the vCPU threads call when their vCPU stops
 * for the plugin. The plugin's memory regions take KVM slots from
 * KVM_VM_FIRST_FREE_SLOT (guest RAM, if the config has any, keeps 0 and 1);
 * its reserved ranges are looked up by the vCPU's pio/mmio callbacks.
 *
 * A vCPU thread that stops for the plugin (INIT before its first run, an
 * access to a reserved range, hlt without irqchip, a shutdown, a
 * REQUEST_EXIT or PAUSE) sends the event through
 * plugin_server_vcpu_event() and waits until the plugin resumes it or
 * plugin_vm_stop() is called; it never re-enters the guest after that.
 *
 * The pure parts (range lookup, event building, exit status mapping,
 * features) need no KVM and are unit-tested alone. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm-vm.h"
#include "plugin-proto.h"
#include "plugin-server.h"

struct vcpu;
struct plugin_vm;

/* kvm is the VM's (already created); vcpus[0..n_vcpus) are filled in by
 * the caller before they start (plugin_vm_set_vcpu). */
int plugin_vm_new(struct kvm_vm *kvm, unsigned n_vcpus, struct plugin_vm **ret);
/* Unmaps what the regions still map (the server removed them first). */
struct plugin_vm *plugin_vm_free(struct plugin_vm *p);
void plugin_vm_set_vcpu(struct plugin_vm *p, unsigned cpu, struct vcpu *v);
void plugin_vm_set_server(struct plugin_vm *p, struct plugin_server *s);

/* Every waiting vCPU thread wakes and ends its run; none waits again.
 * Call before stopping the vCPUs. */
void plugin_vm_stop(struct plugin_vm *p);

/* The ops; userdata is the struct plugin_vm. */
extern const struct plugin_vm_ops plugin_vm_kvm_ops;

/* vCPU thread callbacks (struct vcpu_ops verdicts: -1 goes on, a
 * vcpu_exit_kind ends the vCPU's run). An access outside every reserved
 * range returns -2 (not the plugin's: the caller decides). */
int plugin_vm_io(struct plugin_vm *p, unsigned cpu, uint32_t space, uint64_t addr, uint8_t *data, uint32_t size,
                 bool is_write);
int plugin_vm_user_stop(struct plugin_vm *p, unsigned cpu, bool first);
int plugin_vm_halt(struct plugin_vm *p, unsigned cpu, bool shutdown);

/* The VM owner's Pause/Resume (main thread). Pauses every vCPU in mask
 * without waiting for ones stopped for the plugin (which answers through
 * this same thread): returns once each is parked or waiting for the
 * plugin; after timeout_ms it takes its pause back and returns -ETIMEDOUT.
 * The owner's hold and the plugin's PAUSE_VCPUS are kept apart: resume
 * lets a vCPU go on only if the plugin does not hold it, and the plugin's
 * RESUME_VCPUS does not undo the owner's Pause. */
int plugin_vm_pause(struct plugin_vm *p, uint64_t mask, int timeout_ms);
void plugin_vm_resume(struct plugin_vm *p, uint64_t mask);

/* ---- pure ---- */

/* Whether [addr, addr + size) touches a range of space in ranges[0..n). */
bool plugin_ranges_hit(const struct plugin_range *ranges, size_t n, uint32_t space, uint64_t addr, uint32_t size);

/* The IO (space PIO) or MMIO event of an access; data holds a write's
 * bytes. false if the protocol cannot carry it (a bad size). */
bool plugin_event_for_access(uint32_t space, uint64_t addr, const uint8_t *data, uint32_t size, bool is_write,
                             struct plugin_event *ret);

/* What GET_FEATURES says for a VM with or without irqchip and the KVM
 * capabilities read-only memory, immediate exit. */
uint64_t plugin_vm_features_for(bool irqchip, bool readonly_mem, bool immediate_exit);

enum plugin_end {
        PLUGIN_END_STOPPED,
        PLUGIN_END_FAILED,
};

/* How a plugin VM ends, from devmgr's ExitReason of its plugin: asked is
 * the verb the VM's owner used ("stopped", "killed") or NULL when the
 * plugin went by itself. reason gets the VM's StopReason:
 *   asked:           stopped, asked ("plugin timeout: ..." if it had to be killed)
 *   exited with status 0            -> stopped, "plugin exited"
 *   exited with status N            -> failed, "plugin exited with error N"
 *   killed by signal N (SIGX)       -> failed, "plugin killed by signal N"
 *   anything else (seccomp, ...)    -> failed, "plugin " + exit_reason */
enum plugin_end plugin_end_from_exit_reason(const char *exit_reason, const char *asked, char *reason, size_t len);
