/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One VM: its configuration, guest memory (from memmgr), devices (from
 * devmgr), console, and while it runs the KVM VM and its vCPUs. Everything
 * here runs on the launcher's main thread except the callbacks the vCPU
 * threads make (vm_pio, vm_mmio, vm_vcpu_stop), which only touch what is
 * read-only while vCPUs run or is locked. */

#include <pthread.h>
#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "address-map.h"
#include "config.h"
#include "console.h"
#include "device-datapath.h"
#include "irq-routes.h"
#include "kvm-vm.h"
#include "pci-host.h"
#include "plugin-server.h"
#include "plugin-vm.h"
#include "pm.h"
#include "vm-swap.h"
#include "vcpu.h"

enum vm_state {
        VM_CREATED,
        VM_RUNNING,
        VM_PAUSED,
        VM_STOPPED,
        VM_FAILED,
};

#define VM_STOP_TIMEOUT_USEC (10ULL * 1000 * 1000)
/* Stop/Kill of a plugin VM: SIGTERM, this long, then SIGKILL (devmgr). */
#define VM_PLUGIN_GRACE_USEC (1000ULL * 1000)

struct launcher {
        sd_bus *bus;
        sd_event *event;
        struct vm *vms;
        uint64_t host_memory_bytes;
        uint64_t memlock_limit; /* RLIMIT_MEMLOCK soft limit after startup (Launcher1.MemlockLimit) */
        bool early;             /* --early: org.polyvm.EarlyLauncher1, docs/early-vms.md */
        const char *root;       /* --root: prefix of the allowlists, /run and callers' executables */
};

struct vm {
        struct launcher *launcher;
        struct vm *next;
        char *name;
        char *path;
        char *config_text;
        struct vm_config config;
        enum vm_state state;
        char *stop_reason;
        unsigned starts;
        bool announced; /* linked in launcher->vms and on the bus */
        uint32_t cid;   /* the guest's vsock CID, unique among this launcher's VMs */

        char *memory_object;
        char swap_state[VM_SWAP_STATE_MAX]; /* vm-swap.h: memmgr's SwapState, "" for ready */
        int memfd;
        void *mem;

        struct device_proxy *devices[CONFIG_MAX_DEVICES];
        int irq_fds[CONFIG_MAX_DEVICES];
        struct device_datapath *datapaths[CONFIG_MAX_DEVICES]; /* PCI devices with a direct data path */
        struct irq_routes irq_routes;
        sd_event_source *device_hangup[CONFIG_MAX_DEVICES]; /* vm_watch_device() */
        size_t n_devices;
        struct address_map map;
        struct pci_host pci;
        struct console *console;
        struct pm pm;

        struct kvm_vm kvm;
        struct vcpu *vcpus[CONFIG_MAX_VCPUS];

        /* A vCPU thread asks the main thread to end the VM through this. */
        pthread_mutex_t stop_lock;
        bool stop_pending;
        enum vcpu_exit_kind stop_kind;
        char stop_detail[256];
        int stop_efd;
        sd_event_source *stop_source;
        sd_event_source *stop_timer;

        /* A plugin VM's plugin (docs/plugins.md), while it runs. */
        struct plugin_vm *plugin_vm;
        struct plugin_server *plugin_server;
        sd_event_source *plugin_source;   /* the server's fd */
        sd_event_source *plugin_gone;     /* deferred: devmgr said it ended */
        sd_bus_slot *plugin_match;        /* PropertiesChanged of its Device1 */
        char *plugin_object;              /* its Device1; NULL: none runs */
        uint32_t plugin_pid;              /* Vm1.Plugin; 0: none runs */
        char *plugin_exit_reason;         /* Vm1.PluginExitReason: devmgr's ExitReason of the last one */
};

const char *vm_state_to_string(enum vm_state s);
struct vm *vm_find(struct launcher *l, const char *name);

/* Each sets error (a named org.polyvm.Error) and returns < 0 on failure. */
/* cid: the vsock CID the caller has decided (early VMs), or 0: config.cid, else the lowest free from CONFIG_MIN_CID. */
int vm_create(struct launcher *l, const char *name, const char *config_text, uint32_t cid, sd_bus_error *error,
              struct vm **ret);
int vm_start(struct vm *vm, sd_bus_error *error);
int vm_stop(struct vm *vm, sd_bus_error *error);
int vm_kill(struct vm *vm, sd_bus_error *error);
int vm_pause(struct vm *vm, sd_bus_error *error);
int vm_resume(struct vm *vm, sd_bus_error *error);
int vm_open_console(struct vm *vm, int *ret_fd, sd_bus_error *error);
void vm_destroy(struct vm *vm);
/* A running or paused VM ends as failed with reason (its vCPUs joined);
 * any other VM is left as it is. */
void vm_fail(struct vm *vm, const char *reason);
