/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The VM configuration (docs/config.md), parsed and validated up front. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_VCPUS 16
#define CONFIG_MAX_DEVICES 16
#define CONFIG_DEFAULT_MEMORY_MIB 256
#define CONFIG_NAME_MAX 64
#define CONFIG_DEFAULT_DEVICE_TIMEOUT_MS 1000
#define CONFIG_MIN_DEVICE_TIMEOUT_MS 10
#define CONFIG_MAX_DEVICE_TIMEOUT_MS 60000
/* vsock CIDs of regular VMs: 0..2 are reserved, 100..299 belong to early
 * VMs (docs/early-vms.md), 0xffffffff is VMADDR_CID_ANY. */
#define CONFIG_MIN_CID 300U
#define CONFIG_MAX_CID 0xfffffffeU

enum on_reboot {
        ON_REBOOT_STOP,
        ON_REBOOT_RESTART,
};

/* What a running VM does when one of its device processes dies. */
enum on_device_failure {
        ON_DEVICE_FAILURE_CONTINUE, /* the device reads all ones, the VM goes on */
        ON_DEVICE_FAILURE_STOP,     /* the VM stops: "device-failed: <device> (<kind>)" */
};

/* The devices of a VM whose config has no "devices" field: what a Linux
 * guest expects of a PC. */
#define CONFIG_N_DEFAULT_DEVICES 2
extern const char *const vm_config_default_devices[CONFIG_N_DEFAULT_DEVICES];

/* A plugin VM (docs/plugins.md): an external process emulates its devices. */
#define CONFIG_PLUGIN_MAX_ARGS 64
#define CONFIG_PLUGIN_MAX_ARG_BYTES 4096
#define CONFIG_PLUGIN_MAX_EXTRA_SYSCALLS 64
/* Files the launcher opens for the plugin (its fds 4, 5, ...): devmgr's
 * CreatePlugin takes at most 15, with the socket the 16 fds dbus-daemon
 * lets one message carry. */
#define CONFIG_PLUGIN_MAX_FILES 15
#define CONFIG_PLUGIN_MAX_FILE_BYTES 4095 /* PATH_MAX - 1 */

struct plugin_config {
        char *path;            /* absolute; NULL: not a plugin VM */
        char **args;           /* n_args strings and a NULL */
        size_t n_args;
        char **extra_syscalls; /* n_extra_syscalls names and a NULL, for devmgr's CreatePlugin */
        size_t n_extra_syscalls;
        /* Absolute paths, distinct, n_files and a NULL: opened read-only by
         * the launcher at CreateVm (checked) and Start (passed to the plugin
         * as fds 4, 5, ... in this order). */
        char **files;
        size_t n_files;
        /* KVM's in-kernel irqchip (LAPIC, IOAPIC, PIC, PIT), default true:
         * needed for irq events. Without it a guest hlt reaches the plugin
         * as a HLT event (with it, hlt waits in KVM for an interrupt). */
        bool irqchip;
};

struct device_config {
        char *kind;
        char *config_json; /* the device object without "kind", as JSON, passed to devmgr */
};

struct vm_config {
        unsigned vcpus;            /* 1..CONFIG_MAX_VCPUS, default 1 */
        uint64_t memory_bytes;     /* from memory_mib, default 256 MiB; plugin VMs: 0 (no launcher RAM) unless given */
        char *kernel;              /* required but for plugin VMs: absolute path */
        char *initrd;              /* optional */
        char *cmdline;             /* optional, < LAYOUT_CMDLINE_MAX */
        struct device_config devices[CONFIG_MAX_DEVICES];
        size_t n_devices;
        enum on_reboot on_reboot;
        enum on_device_failure on_device_failure;
        unsigned device_timeout_ms; /* per device request, 10..60000, default 1000 */
        uint32_t cid;              /* CONFIG_MIN_CID..CONFIG_MAX_CID; 0: the launcher allocates one */
        /* The kind of the device that gets the VM's console (the first
         * device of that kind in devices, or in the default set); NULL: the
         * first device that takes one. */
        char *console;
        struct plugin_config plugin; /* plugin.path set: a plugin VM, with no kernel, devices or console */
};

/* Parses and validates text. On error returns -EINVAL (or -ENOMEM) and
 * writes a message naming the field, the value and the rule to err.
 * host_memory_bytes bounds memory_mib (0: no bound). File checks (kernel
 * exists, is a regular file, is a bzImage or PVH ELF; initrd fits) are the
 * loader's: see loader_check(). */
int vm_config_parse(const char *text, uint64_t host_memory_bytes, struct vm_config *ret, char *err, size_t errlen);
void vm_config_done(struct vm_config *c);

static inline bool vm_config_is_plugin(const struct vm_config *c) {
        return c->plugin.path != NULL;
}

/* A VM name is 1..CONFIG_NAME_MAX characters of [A-Za-z0-9_.-], not starting with '.'. */
bool vm_name_is_valid(const char *name);
