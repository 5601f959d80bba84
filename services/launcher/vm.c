/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "acpi.h"
#include "bus-errors.h"
#include "bus-util.h"
#include "json-util.h"
#include "layout.h"
#include "loader-x86.h"
#include "log.h"
#include "managers.h"
#include "pci-firmware.h"
#include "early.h"
#include "vm.h"
#include "vsock-config.h"

#define VM_PATH_PREFIX "/org/polyvm/Launcher1/vm"
#define LAUNCHER_PATH "/org/polyvm/Launcher1"

static const char *const state_names[] = {
        [VM_CREATED] = "created",
        [VM_RUNNING] = "running",
        [VM_PAUSED] = "paused",
        [VM_STOPPED] = "stopped",
        [VM_FAILED] = "failed",
};

const char *vm_state_to_string(enum vm_state s) {
        return s < ELEMENTSOF(state_names) ? state_names[s] : "unknown";
}

struct vm *vm_find(struct launcher *l, const char *name) {
        for (struct vm *vm = l->vms; vm; vm = vm->next)
                if (strcmp(vm->name, name) == 0)
                        return vm;
        return NULL;
}

static void vm_set_state(struct vm *vm, enum vm_state state, const char *reason) {
        vm->state = state;
        if (reason) {
                char *s = strdup(reason);
                if (s) {
                        free(vm->stop_reason);
                        vm->stop_reason = s;
                }
        }
        log_info("VM %s is %s%s%s.", vm->name, vm_state_to_string(state), reason && *reason ? ": " : "",
                 reason ?: "");
        (void) sd_bus_emit_properties_changed(vm->launcher->bus, vm->path, "org.polyvm.Vm1", "State", "StopReason",
                                              NULL);
}

/* ---- callbacks from vCPU threads ---- */

static void vm_set_sci(void *userdata, bool level) {
        struct vm *vm = userdata;

        if (vm->kvm.vm_fd >= 0)
                (void) kvm_vm_irq_line(&vm->kvm, LAYOUT_SCI_IRQ, level);
}

/* A trapped write may have programmed the device's MSI-X table. */
static void vm_device_write(const struct address_map_entry *e, uint64_t addr, const uint8_t *data, uint32_t len) {
        device_proxy_write(e->device, e->range, addr, data, len);
        if (e->device->datapath)
                device_datapath_refresh(e->device->datapath, false);
}

static int vm_pio(void *userdata, unsigned vcpu, uint16_t port, uint8_t *data, uint32_t size, bool is_write) {
        struct vm *vm = userdata;
        struct address_map_entry e;

        if (pm_access_is_ours(port, size)) {
                switch (pm_io(&vm->pm, port, data, size, is_write)) {
                case PM_POWEROFF:
                        return VCPU_EXIT_POWEROFF;
                case PM_REBOOT:
                        return VCPU_EXIT_REBOOT;
                case PM_NONE:
                        return -1;
                }
        }

        if (pci_host_access_is_ours(port, size)) {
                pci_host_io(&vm->pci, port, data, size, is_write);
                return -1;
        }

        if (!address_map_lookup(&vm->map, PROTO_BUS_PIO, port, size, &e)) {
                /* Nothing decodes this port: reads float high, writes vanish. */
                if (!is_write)
                        memset(data, 0xff, size);
                return -1;
        }
        if (is_write)
                vm_device_write(&e, port, data, size);
        else
                device_proxy_read(e.device, e.range, port, data, size);
        return -1;
}

static int vm_mmio(void *userdata, unsigned vcpu, uint64_t addr, uint8_t *data, uint32_t len, bool is_write) {
        struct vm *vm = userdata;
        struct address_map_entry e;

        if (!address_map_lookup(&vm->map, PROTO_BUS_MMIO, addr, len, &e)) {
                if (!is_write)
                        memset(data, 0xff, len);
                return -1;
        }
        if (is_write)
                vm_device_write(&e, addr, data, len);
        else
                device_proxy_read(e.device, e.range, addr, data, len);
        return -1;
}

static void vm_vcpu_stop(void *userdata, unsigned vcpu, enum vcpu_exit_kind kind, const char *detail) {
        struct vm *vm = userdata;

        /* One plugin vCPU's run ended: the plugin's exit ends the VM. */
        if (kind == VCPU_EXIT_HALTED)
                return;

        pthread_mutex_lock(&vm->stop_lock);
        if (!vm->stop_pending) {
                vm->stop_pending = true;
                vm->stop_kind = kind;
                snprintf(vm->stop_detail, sizeof(vm->stop_detail), "%s", detail ?: "");
                (void) eventfd_write(vm->stop_efd, 1);
        }
        pthread_mutex_unlock(&vm->stop_lock);
}

static const struct vcpu_ops vm_vcpu_ops = {
        .pio = vm_pio,
        .mmio = vm_mmio,
        .stop = vm_vcpu_stop,
};

/* A plugin VM: the plugin's reserved ranges, nothing else (reads of
 * anything else float high, as the engine preset them; writes vanish). */
static int vm_plugin_pio(void *userdata, unsigned vcpu, uint16_t port, uint8_t *data, uint32_t size, bool is_write) {
        struct vm *vm = userdata;
        int r = plugin_vm_io(vm->plugin_vm, vcpu, PLUGIN_SPACE_PIO, port, data, size, is_write);
        return r == -2 ? -1 : r;
}

static int vm_plugin_mmio(void *userdata, unsigned vcpu, uint64_t addr, uint8_t *data, uint32_t len, bool is_write) {
        struct vm *vm = userdata;
        int r = plugin_vm_io(vm->plugin_vm, vcpu, PLUGIN_SPACE_MMIO, addr, data, len, is_write);
        return r == -2 ? -1 : r;
}

static int vm_plugin_user_stop(void *userdata, unsigned vcpu, bool first) {
        struct vm *vm = userdata;
        return plugin_vm_user_stop(vm->plugin_vm, vcpu, first);
}

static int vm_plugin_halt(void *userdata, unsigned vcpu, bool shutdown) {
        struct vm *vm = userdata;
        return plugin_vm_halt(vm->plugin_vm, vcpu, shutdown);
}

static const struct vcpu_ops vm_plugin_vcpu_ops = {
        .pio = vm_plugin_pio,
        .mmio = vm_plugin_mmio,
        .stop = vm_vcpu_stop,
        .user_stop = vm_plugin_user_stop,
        .halt = vm_plugin_halt,
};

static int vm_kvm_ioeventfd(void *kvm, int fd, enum proto_bus bus, uint64_t address, uint32_t len, bool assign) {
        return kvm_vm_ioeventfd(kvm, fd, bus, address, len, assign);
}

static int vm_kvm_irqfd(void *kvm, int fd, uint32_t gsi) {
        return kvm_vm_irqfd(kvm, fd, gsi);
}

static int vm_kvm_commit_routes(void *kvm, const struct irq_route_msi *routes, size_t n) {
        return kvm_vm_set_msi_routes(kvm, routes, n);
}

static const struct datapath_kvm_ops vm_datapath_kvm_ops = {
        .ioeventfd = vm_kvm_ioeventfd,
        .irqfd = vm_kvm_irqfd,
};

/* ---- main thread ---- */

static void vcpu_path(struct vm *vm, unsigned index, char *buf, size_t len) {
        snprintf(buf, len, "%s/vcpu/%u", vm->path, index);
}

static void vm_emit_plugin_changed(struct vm *vm) {
        if (vm->announced)
                (void) sd_bus_emit_properties_changed(vm->launcher->bus, vm->path, "org.polyvm.Vm1", "Plugin",
                                                      "PluginExitReason", NULL);
}

/* Ends the plugin process if it still runs (StopPlugin: SIGTERM, the
 * grace period, SIGKILL; answered once devmgr reaped it), keeps its
 * ExitReason and removes its Device1. Nothing of it runs afterwards. */
static void vm_plugin_reap(struct vm *vm) {
        _cleanup_free_ char *reason = NULL;

        if (!vm->plugin_object)
                return;
        vm->plugin_match = sd_bus_slot_unref(vm->plugin_match);
        vm->plugin_gone = sd_event_source_disable_unref(vm->plugin_gone);
        if (devmgr_stop_plugin(vm->launcher->bus, vm->plugin_object, VM_PLUGIN_GRACE_USEC, &reason) >= 0) {
                free(vm->plugin_exit_reason);
                vm->plugin_exit_reason = TAKE_PTR(reason);
                log_info("VM %s: plugin %s (pid %" PRIu32 ") ended: %s.", vm->name, vm->plugin_object, vm->plugin_pid,
                         vm->plugin_exit_reason);
        }
        (void) devmgr_destroy_device(vm->launcher->bus, vm->plugin_object);
        free(vm->plugin_object);
        vm->plugin_object = NULL;
        vm->plugin_pid = 0;
        vm_emit_plugin_changed(vm);
}

/* vCPU threads waiting for the plugin wake and end their run first (they
 * never enter the guest again); the server removes what the plugin
 * created while KVM is still there. */
static void vm_release_plugin(struct vm *vm) {
        plugin_vm_stop(vm->plugin_vm);
        vm_plugin_reap(vm);
}

static void vm_release_kvm(struct vm *vm) {
        vm_release_plugin(vm);
        for (unsigned i = 0; i < CONFIG_MAX_VCPUS; i++)
                if (vm->vcpus[i]) {
                        char path[512];

                        vcpu_path(vm, i, path, sizeof(path));
                        (void) sd_bus_emit_object_removed(vm->launcher->bus, path);
                        vcpu_free(vm->vcpus[i]);
                        vm->vcpus[i] = NULL;
                }
        for (size_t i = 0; i < vm->n_devices; i++)
                if (vm->datapaths[i])
                        device_datapath_unbind(vm->datapaths[i]);
        irq_routes_unbind(&vm->irq_routes);
        vm->plugin_source = sd_event_source_disable_unref(vm->plugin_source);
        vm->plugin_server = plugin_server_free(vm->plugin_server);
        vm->plugin_vm = plugin_vm_free(vm->plugin_vm);
        kvm_vm_destroy(&vm->kvm);
        vm->stop_timer = sd_event_source_disable_unref(vm->stop_timer);
        pthread_mutex_lock(&vm->stop_lock);
        vm->stop_pending = false;
        pthread_mutex_unlock(&vm->stop_lock);
}

/* Ends the running VM: every vCPU leaves the guest and is joined before the
 * new state is published, so "stopped" means nothing runs any more. */
static void vm_finish(struct vm *vm, enum vm_state state, const char *reason) {
        vm_release_kvm(vm);
        vm_set_state(vm, state, reason);
}

/* vCPU threads must not touch sd-bus: a device that fails under one (or
 * whose endpoint hangs up) pokes stop_efd, and its DeviceFailed signal goes
 * out here. config.on_device_failure says whether a running VM goes on
 * without it (its reads return all ones) or stops. */
static void vm_report_failed_devices(struct vm *vm) {
        for (size_t i = 0; i < vm->n_devices; i++) {
                const char *reason;
                char stop_reason[512];

                if (!device_proxy_take_failure(vm->devices[i], &reason))
                        continue;
                log_warning("VM %s: device %s (%s) failed: %s.", vm->name, vm->devices[i]->object,
                            vm->devices[i]->kind, reason);
                (void) sd_bus_emit_signal(vm->launcher->bus, vm->path, "org.polyvm.Vm1", "DeviceFailed", "os",
                                          vm->devices[i]->object, reason);
                if (vm->config.on_device_failure != ON_DEVICE_FAILURE_STOP ||
                    (vm->state != VM_RUNNING && vm->state != VM_PAUSED))
                        continue;
                snprintf(stop_reason, sizeof(stop_reason), "device-failed: %s (%s)", vm->devices[i]->object,
                         vm->devices[i]->kind);
                vm_finish(vm, VM_STOPPED, stop_reason);
        }
}

static int on_stop_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        struct vm *vm = userdata;
        enum vcpu_exit_kind kind;
        char detail[sizeof(vm->stop_detail)];
        eventfd_t value;
        bool pending;

        (void) eventfd_read(fd, &value);
        vm_report_failed_devices(vm);
        pthread_mutex_lock(&vm->stop_lock);
        pending = vm->stop_pending;
        kind = vm->stop_kind;
        memcpy(detail, vm->stop_detail, sizeof(detail));
        pthread_mutex_unlock(&vm->stop_lock);
        if (!pending || (vm->state != VM_RUNNING && vm->state != VM_PAUSED))
                return 0;

        switch (kind) {
        case VCPU_EXIT_POWEROFF:
                vm_finish(vm, VM_STOPPED, "poweroff");
                break;
        case VCPU_EXIT_REBOOT:
                vm_finish(vm, VM_STOPPED, "reboot");
                if (vm->config.on_reboot == ON_REBOOT_RESTART && vm_start(vm, &error) < 0)
                        vm_set_state(vm, VM_FAILED, error.message);
                break;
        case VCPU_EXIT_SHUTDOWN:
                vm_finish(vm, VM_FAILED, "triple-fault");
                break;
        case VCPU_EXIT_INTERNAL_ERROR:
        case VCPU_EXIT_FAILED:
                vm_finish(vm, VM_FAILED, detail[0] ? detail : "vcpu-failed");
                break;
        case VCPU_EXIT_HALTED:
                break; /* never posted: vm_vcpu_stop() drops it */
        }
        return 0;
}

static int vm_attach_devices(struct vm *vm, sd_bus_error *error) {
        int console_fd = -1, r;
        bool console_taken = false;
        char err[512];

        r = console_new(vm->launcher->event, vm->name, &vm->console, &console_fd);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to create the console: %s", strerror(-r));

        for (size_t i = 0; i < vm->n_devices; i++) {
                struct device_proxy *d = vm->devices[i];

                r = device_proxy_activate(d, err, sizeof(err));
                if (r < 0)
                        break;
                r = address_map_add_device(&vm->map, d, err, sizeof(err));
                if (r < 0)
                        break;
                r = pci_host_probe_device(&vm->pci, d);
                if (r < 0) {
                        snprintf(err, sizeof(err), "device %s (%s): no PCI slot left", d->object, d->kind);
                        break;
                }
                if (r > 0 && device_datapath_new(d, vm->memfd, &vm->map, &vm->irq_routes, &vm->datapaths[i]) < 0 &&
                    device_proxy_is_failed(d)) {
                        snprintf(err, sizeof(err), "device %s (%s) failed while taking guest memory", d->object,
                                 d->kind);
                        r = -EIO;
                        break;
                }
                if (d->ranges.irq != 0) {
                        if (d->ranges.irq >= 24) {
                                snprintf(err, sizeof(err), "device %s (%s): IRQ %u is not an IOAPIC pin", d->object,
                                         d->kind, d->ranges.irq);
                                r = -EINVAL;
                                break;
                        }
                        vm->irq_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                        if (vm->irq_fds[i] < 0) {
                                r = -errno;
                                snprintf(err, sizeof(err), "eventfd: %s", strerror(errno));
                                break;
                        }
                        r = device_proxy_attach_fd(d, PROTO_FD_IRQ, 0, vm->irq_fds[i]);
                        if (r < 0) {
                                snprintf(err, sizeof(err), "device %s (%s) refused its IRQ fd", d->object, d->kind);
                                break;
                        }
                }
                /* The console goes to the first device of the kind the
                 * config names, or else to the first device that takes one. */
                if (console_taken)
                        continue;
                if (!vm->config.console) {
                        if (device_proxy_attach_fd(d, PROTO_FD_CONSOLE, 0, console_fd) >= 0)
                                console_taken = true;
                } else if (strcmp(d->kind, vm->config.console) == 0) {
                        r = device_proxy_attach_fd(d, PROTO_FD_CONSOLE, 0, console_fd);
                        if (r < 0) {
                                safe_close(console_fd);
                                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_CONFIG,
                                                         "config.console: devices[%zu] (%s) takes no console: %s", i,
                                                         d->kind, strerror(-r));
                        }
                        console_taken = true;
                }
        }
        safe_close(console_fd);
        if (r < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_DEVICE_FAILED, "%s", err);
        return 0;
}

/* A device's endpoint hung up: its process is gone (killed, a seccomp
 * violation, devmgr died with it). It fails like a device that stopped
 * answering; vm_report_failed_devices() takes it from there. */
static int on_device_hangup(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct vm *vm = userdata;

        /* A hang-up stays readable: once is enough. */
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        for (size_t i = 0; i < vm->n_devices; i++)
                if (vm->device_hangup[i] == s)
                        device_proxy_fail(vm->devices[i], -ECONNRESET, "endpoint hung up");
        return 0;
}

/* Watches device i's endpoint for nothing but a hang-up (no EPOLLIN: the
 * replies stay for the vCPU threads). vm_destroy() drops the watch before
 * the endpoint is closed. */
static void vm_watch_device(struct vm *vm, size_t i) {
        int r = sd_event_add_io(vm->launcher->event, &vm->device_hangup[i], vm->devices[i]->endpoint, 0,
                                on_device_hangup, vm);
        if (r < 0)
                log_warning_errno(r, "VM %s: cannot watch device %s for hang-ups: %m", vm->name,
                                  vm->devices[i]->object);
}

/* The VM's CID into its virtio-vsock device, and for an early VM the
 * socket in its state directory (docs/early-vms.md). */
static int vm_vsock_config(struct vm *vm, size_t i, const char *config_json, char **ret, sd_bus_error *error) {
        _cleanup_free_ char *dir = NULL, *uds = NULL;
        char where[64], err[512];
        int r;

        if (vm->launcher->early) {
                if (early_vm_dir(vm->launcher->root, vm->cid, &dir) < 0 ||
                    asprintf(&uds, "%s/" VSOCK_EARLY_SOCKET, dir) < 0)
                        return sd_bus_error_set_errno(error, -ENOMEM);
        }
        snprintf(where, sizeof(where), "config.devices[%zu]", i);
        r = vsock_device_config(config_json, vm->cid, uds, where, ret, err, sizeof(err));
        if (r == -ENOMEM)
                return sd_bus_error_set_errno(error, r);
        if (r < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_CONFIG, "%s", err);
        return 0;
}

static int vm_create_devices(struct vm *vm, sd_bus_error *error) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        char err[256];
        int r;

        /* The parser has validated the text; this only tells a missing
         * "devices" (defaults) from an empty list (none). */
        r = json_parse_object(vm->config_text, &root, err, sizeof(err));
        if (r < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_CONFIG, "%s", err);
        if (!json_object_object_get_ex(root, "devices", NULL)) {
                for (size_t i = 0; i < CONFIG_N_DEFAULT_DEVICES; i++) {
                        vm->config.devices[i].kind = strdup(vm_config_default_devices[i]);
                        vm->config.devices[i].config_json = strdup("{}");
                        if (!vm->config.devices[i].kind || !vm->config.devices[i].config_json)
                                return sd_bus_error_set_errno(error, -ENOMEM);
                        vm->config.n_devices++;
                }
        }

        for (size_t i = 0; i < vm->config.n_devices; i++) {
                const struct device_config *dc = &vm->config.devices[i];
                _cleanup_free_ char *object = NULL, *vsock_json = NULL;
                _cleanup_close_ int fd = -1;
                pid_t pid;

                if (strcmp(dc->kind, VSOCK_DEVICE_KIND) == 0) {
                        r = vm_vsock_config(vm, i, dc->config_json, &vsock_json, error);
                        if (r < 0)
                                return r;
                }
                r = devmgr_create_device(vm->launcher->bus, vm->name, dc->kind, vsock_json ?: dc->config_json, &object,
                                         &fd, &pid, error);
                if (r < 0)
                        return r;
                r = device_proxy_new(dc->kind, object, pid, fd, &vm->devices[i]);
                if (r < 0) {
                        devmgr_destroy_device(vm->launcher->bus, object);
                        return sd_bus_error_set_errno(error, r);
                }
                (void) device_proxy_set_timeout(vm->devices[i], (int) vm->config.device_timeout_ms);
                /* A failure seen on a vCPU thread is reported from here. */
                device_proxy_set_notify(vm->devices[i], vm->stop_efd);
                TAKE_FD(fd);
                vm_watch_device(vm, i);
                vm->n_devices++;
        }
        return vm_attach_devices(vm, error);
}

/* The VM's main uffd (docs/memmgr.md): guards our mapping of guest RAM
 * against missing pages and hands it to memmgr, which answers every fault
 * there (zeros today, swapped pages later). We keep no copy: if memmgr goes
 * away, the kernel releases the uffd and the mapping is plain shared memory
 * again rather than a hang. Failing is not fatal: the VM runs unguarded. */
/* The main uffd goes to memmgr, which owns every uffd guarding guest memory.
 * It is created here (a uffd acts on its creator's address space) but no
 * range is registered: registering MISSING now would send every first touch
 * of every guest page through memmgr. memmgr registers the guest mapping on
 * this uffd only while it swaps pages out. */
static void vm_register_uffd(struct vm *vm) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_close_ int uffd = -1, dev = -1;
        struct uffdio_api api = { .api = UFFD_API };
        int r;

        /* Not user-mode-only: KVM touches this memory from the kernel. */
        uffd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        if (uffd < 0 && errno == EPERM) {
                dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
                if (dev >= 0)
                        uffd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        }
        if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) {
                log_warning_errno(-errno, "VM %s: cannot create a userfaultfd for guest memory, swap will be unavailable: %m",
                                  vm->name);
                return;
        }
        r = sd_bus_call_method(vm->launcher->bus, "org.polyvm.MemoryManager1", "/org/polyvm/MemoryManager1",
                               "org.polyvm.MemoryManager1", "RegisterUffd", &error, NULL, "sht", vm->name, uffd,
                               (uint64_t) (uintptr_t) vm->mem);
        if (r < 0)
                log_warning_errno(r, "VM %s: memmgr did not take the main uffd, swap will be unavailable: %s", vm->name,
                                  error.message ?: strerror(-r));
}

static int vm_allocate_memory(struct vm *vm, sd_bus_error *error) {
        int r;

        r = memmgr_allocate(vm->launcher->bus, vm->name, vm->config.memory_bytes, &vm->memory_object, &vm->memfd,
                            error);
        if (r < 0)
                return r;
        vm->mem = mmap(NULL, vm->config.memory_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vm->memfd, 0);
        if (vm->mem == MAP_FAILED) {
                vm->mem = NULL;
                return sd_bus_error_setf(error, POLYVM_ERROR_NO_MEMORY, "Failed to map %" PRIu64 " bytes of guest memory: %s",
                                         vm->config.memory_bytes, strerror(errno));
        }
        vm_register_uffd(vm);
        return 0;
}

/* A CID is unique among this launcher's VMs; with early VMs in 100..299 and
 * regular ones from CONFIG_MIN_CID, the two launchers never collide. */
static int vm_pick_cid(struct launcher *l, uint32_t wanted, uint32_t *ret, sd_bus_error *error) {
        uint32_t cid = wanted ?: CONFIG_MIN_CID;

        for (;;) {
                struct vm *taken = NULL;

                for (struct vm *v = l->vms; v; v = v->next)
                        if (v->cid == cid)
                                taken = v;
                if (!taken)
                        break;
                if (wanted)
                        return sd_bus_error_setf(error, POLYVM_ERROR_CID_IN_USE, "config.cid: %" PRIu32 " is the CID of VM %s already",
                                                 cid, taken->name);
                if (cid == CONFIG_MAX_CID)
                        return sd_bus_error_setf(error, POLYVM_ERROR_CID_IN_USE, "No free CID left");
                cid++;
        }
        *ret = cid;
        return 0;
}

/* config.plugin.files, opened for the plugin as the kernel is for other
 * VMs: read-only, not through a symbolic link in the last component, and
 * checked through the fd to be a regular file (O_NONBLOCK until then, so a
 * FIFO cannot hang us). fds[] gets pc->n_files fds; on failure none are
 * left open and err names config.plugin.files[i]. */
static void plugin_files_close(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

static int plugin_files_open(const struct plugin_config *pc, int *fds, char *err, size_t errlen) {
        for (size_t i = 0; i < pc->n_files; i++)
                fds[i] = -1;
        for (size_t i = 0; i < pc->n_files; i++) {
                const char *path = pc->files[i];
                struct stat st;
                int r;

                fds[i] = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
                if (fds[i] < 0 || fstat(fds[i], &st) < 0) {
                        r = negative_errno();
                        snprintf(err, errlen, "config.plugin.files[%zu]: %s: %s%s", i, path, strerror(-r),
                                 r == -ELOOP ? " (a symbolic link: name the file itself)" : "");
                        plugin_files_close(fds, i + 1);
                        return r;
                }
                if (!S_ISREG(st.st_mode)) {
                        snprintf(err, errlen, "config.plugin.files[%zu]: %s is %s, not a regular file", i, path,
                                 S_ISDIR(st.st_mode) ? "a directory" : "a special file");
                        plugin_files_close(fds, i + 1);
                        return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
                }
                if (fcntl(fds[i], F_SETFL, 0) < 0) {
                        r = negative_errno();
                        snprintf(err, errlen, "config.plugin.files[%zu]: %s: %s", i, path, strerror(-r));
                        plugin_files_close(fds, i + 1);
                        return r;
                }
        }
        return 0;
}

int vm_create(struct launcher *l, const char *name, const char *config_text, uint32_t cid, sd_bus_error *error,
              struct vm **ret) {
        struct vm *vm;
        enum kernel_format format;
        char err[512];
        int r;

        if (!vm_name_is_valid(name))
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS,
                                         "name: \"%.64s%s\" is not a valid VM name (1..%d characters of A-Z a-z 0-9 _ . -, not starting with '.')",
                                         name, strlen(name) > 64 ? "..." : "", CONFIG_NAME_MAX);
        if (vm_find(l, name))
                return sd_bus_error_setf(error, POLYVM_ERROR_VM_EXISTS, "A VM named %s exists already", name);

        vm = calloc(1, sizeof(*vm));
        if (!vm)
                return sd_bus_error_set_errno(error, -ENOMEM);
        vm->launcher = l;
        vm->memfd = -1;
        vm->stop_efd = -1;
        vm->kvm.kvm_fd = vm->kvm.vm_fd = -1;
        for (size_t i = 0; i < CONFIG_MAX_DEVICES; i++)
                vm->irq_fds[i] = -1;
        pthread_mutex_init(&vm->stop_lock, NULL);
        pm_init(&vm->pm, vm_set_sci, vm);
        address_map_init(&vm->map);
        pci_host_init(&vm->pci, &vm->map);
        irq_routes_init(&vm->irq_routes);
        vm->stop_reason = strdup("");
        vm->plugin_exit_reason = strdup("");
        vm->name = strdup(name);
        vm->config_text = strdup(config_text);
        if (!vm->stop_reason || !vm->plugin_exit_reason || !vm->name || !vm->config_text ||
            sd_bus_path_encode(VM_PATH_PREFIX, name, &vm->path) < 0) {
                r = sd_bus_error_set_errno(error, -ENOMEM);
                goto fail;
        }

        r = vm_config_parse(config_text, l->host_memory_bytes, &vm->config, err, sizeof(err));
        if (r < 0) {
                r = sd_bus_error_setf(error, POLYVM_ERROR_INVALID_CONFIG, "%s", err);
                goto fail;
        }
        if (vm_config_is_plugin(&vm->config)) {
                /* Start opens them again: this only says early what is wrong. */
                int files[CONFIG_PLUGIN_MAX_FILES];

                r = plugin_files_open(&vm->config.plugin, files, err, sizeof(err));
                if (r >= 0)
                        plugin_files_close(files, vm->config.plugin.n_files);
        } else
                r = loader_check(&vm->config, &format, err, sizeof(err));
        if (r < 0) {
                r = sd_bus_error_setf(error, POLYVM_ERROR_INVALID_CONFIG, "%s", err);
                goto fail;
        }
        r = vm_pick_cid(l, cid ?: vm->config.cid, &vm->cid, error);
        if (r < 0)
                goto fail;

        vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (vm->stop_efd < 0) {
                r = sd_bus_error_set_errno(error, -errno);
                goto fail;
        }
        r = sd_event_add_io(l->event, &vm->stop_source, vm->stop_efd, EPOLLIN, on_stop_event, vm);
        if (r < 0) {
                r = sd_bus_error_set_errno(error, r);
                goto fail;
        }

        /* A plugin VM without memory_mib has no RAM of ours, and never devices. */
        if (vm->config.memory_bytes > 0) {
                r = vm_allocate_memory(vm, error);
                if (r < 0)
                        goto fail;
        }
        if (!vm_config_is_plugin(&vm->config)) {
                r = vm_create_devices(vm, error);
                if (r < 0)
                        goto fail;
                (void) memmgr_set_static_devices(l->bus, vm->name, (uint32_t) vm->n_devices);
        }

        vm->next = l->vms;
        l->vms = vm;
        vm->announced = true;
        (void) sd_bus_emit_object_added(l->bus, vm->path);
        if (vm_config_is_plugin(&vm->config))
                log_info("Created plugin VM %s (CID %" PRIu32 ", %u vCPUs, %" PRIu64 " MiB of ours, plugin %s).", name,
                         vm->cid, vm->config.vcpus, vm->config.memory_bytes >> 20, vm->config.plugin.path);
        else
                log_info("Created VM %s (CID %" PRIu32 ", %u vCPUs, %" PRIu64 " MiB, %s kernel %s, %zu devices).", name,
                         vm->cid, vm->config.vcpus, vm->config.memory_bytes >> 20,
                         format == KERNEL_BZIMAGE ? "bzImage" : "PVH ELF", vm->config.kernel, vm->n_devices);
        *ret = vm;
        return 0;

fail:
        vm_destroy(vm);
        return r;
}

/* How the VM ends when its plugin did (exit_reason from devmgr, or NULL:
 * ask devmgr, after its main socket hung up). */
static void vm_plugin_ended(struct vm *vm, const char *exit_reason) {
        char reason[512];
        enum plugin_end end;

        if (vm->state != VM_RUNNING && vm->state != VM_PAUSED)
                return;
        if (exit_reason) {
                char *copy = strdup(exit_reason);
                if (copy) {
                        free(vm->plugin_exit_reason);
                        vm->plugin_exit_reason = copy;
                }
        }
        vm_plugin_reap(vm);
        end = plugin_end_from_exit_reason(vm->plugin_exit_reason, NULL, reason, sizeof(reason));
        vm_finish(vm, end == PLUGIN_END_STOPPED ? VM_STOPPED : VM_FAILED, reason);
}

static int on_plugin_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct vm *vm = userdata;
        int r;

        r = plugin_server_process(vm->plugin_server, 0);
        if (r == -ECONNRESET) {
                log_info("VM %s: the plugin's main socket hung up.", vm->name);
                vm_plugin_ended(vm, NULL);
        } else if (r < 0)
                log_warning_errno(r, "VM %s: serving the plugin failed: %m", vm->name);
        return 0;
}

static int on_plugin_gone(sd_event_source *s, void *userdata) {
        struct vm *vm = userdata;

        vm->plugin_gone = sd_event_source_disable_unref(vm->plugin_gone);
        vm_plugin_ended(vm, vm->plugin_exit_reason);
        return 0;
}

/* devmgr's PropertiesChanged of the plugin's Device1: a non-empty
 * ExitReason means it is gone. The VM ends from a deferred event, not
 * inside this match callback (which removes this very match). */
static int on_plugin_properties(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct vm *vm = userdata;
        const char *iface, *key, *reason = NULL;
        char *copy;
        int r;

        r = sd_bus_message_read(m, "s", &iface);
        if (r < 0 || strcmp(iface, "org.polyvm.Device1") != 0)
                return 0;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return 0;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                if (sd_bus_message_read(m, "s", &key) < 0)
                        return 0;
                if (strcmp(key, "ExitReason") == 0)
                        r = sd_bus_message_read(m, "v", "s", &reason);
                else
                        r = sd_bus_message_skip(m, "v");
                if (r < 0 || sd_bus_message_exit_container(m) < 0)
                        return 0;
        }
        if (!reason || !reason[0] || vm->plugin_gone)
                return 0;
        copy = strdup(reason);
        if (!copy)
                return 0;
        free(vm->plugin_exit_reason);
        vm->plugin_exit_reason = copy;
        (void) sd_event_add_defer(vm->launcher->event, &vm->plugin_gone, on_plugin_gone, vm);
        return 0;
}

/* Start of a plugin VM: KVM (with or without irqchip, our RAM if any),
 * the server, the vCPUs (reset state; each reports INIT before it runs),
 * then the plugin through devmgr on the other end of the main socket. */
/* The VM is set up: it runs, and its vCPU threads start. */
static int vm_run_vcpus(struct vm *vm, sd_bus_error *error) {
        vm->starts++;
        vm_set_state(vm, VM_RUNNING, "");
        for (unsigned i = 0; i < vm->config.vcpus; i++) {
                int r = vcpu_start(vm->vcpus[i]);
                if (r < 0) {
                        vm_finish(vm, VM_FAILED, "failed to start a vCPU thread");
                        return sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "Failed to start vCPU %u: %s", i,
                                                 strerror(-r));
                }
        }
        return 0;
}

static int vm_start_plugin_with(struct vm *vm, const int *files, sd_bus_error *error) {
        const struct plugin_config *pc = &vm->config.plugin;
        _cleanup_close_ int plugin_fd = -1;
        char err[512];
        pid_t pid = 0;
        int r;

        r = kvm_vm_create_with(vm->mem, vm->config.memory_bytes, pc->irqchip, &vm->kvm, err, sizeof(err));
        if (r < 0)
                return sd_bus_error_setf(error,
                                         r == -ENOENT || r == -EACCES || r == -ENOTSUP ? POLYVM_ERROR_KVM_UNAVAILABLE
                                                                                       : POLYVM_ERROR_FAILED,
                                         "%s", err);
        r = plugin_vm_new(&vm->kvm, vm->config.vcpus, &vm->plugin_vm);
        if (r >= 0)
                r = plugin_server_new(&plugin_vm_kvm_ops, vm->plugin_vm, vm->config.vcpus, &vm->plugin_server,
                                      &plugin_fd);
        if (r < 0) {
                r = sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "Failed to set up the plugin server: %s", strerror(-r));
                goto fail;
        }
        plugin_vm_set_server(vm->plugin_vm, vm->plugin_server);

        for (unsigned i = 0; i < vm->config.vcpus; i++) {
                char path[512];

                r = vcpu_new(vm->kvm.kvm_fd, vm->kvm.vm_fd, i, vm->config.vcpus, NULL, vm->mem,
                             vm->config.memory_bytes, &vm_plugin_vcpu_ops, vm, &vm->vcpus[i]);
                if (r < 0) {
                        r = sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "Failed to create vCPU %u: %s", i,
                                              strerror(-r));
                        goto fail;
                }
                plugin_vm_set_vcpu(vm->plugin_vm, i, vm->vcpus[i]);
                vcpu_path(vm, i, path, sizeof(path));
                r = vcpu_bus_add(vm->vcpus[i], vm->launcher->bus, path);
                if (r < 0) {
                        r = sd_bus_error_set_errno(error, r);
                        goto fail;
                }
                (void) sd_bus_emit_object_added(vm->launcher->bus, path);
        }

        r = sd_event_add_io(vm->launcher->event, &vm->plugin_source, plugin_server_fd(vm->plugin_server), EPOLLIN,
                            on_plugin_io, vm);
        if (r < 0) {
                r = sd_bus_error_set_errno(error, r);
                goto fail;
        }
        r = devmgr_create_plugin(vm->launcher->bus, vm->name, pc->path, pc->args, plugin_fd, pc->extra_syscalls,
                                 files, pc->n_files, &vm->plugin_object, &pid, error);
        if (r < 0)
                goto fail;
        plugin_fd = safe_close(plugin_fd); /* the plugin's now */
        r = sd_bus_match_signal(vm->launcher->bus, &vm->plugin_match, "org.polyvm.DeviceManager1", vm->plugin_object,
                                "org.freedesktop.DBus.Properties", "PropertiesChanged", on_plugin_properties, vm);
        if (r < 0) {
                r = sd_bus_error_set_errnof(error, r, "Failed to watch the plugin: %s", strerror(-r));
                goto fail;
        }
        vm->plugin_pid = (uint32_t) pid;
        free(vm->plugin_exit_reason);
        vm->plugin_exit_reason = strdup("");
        vm_emit_plugin_changed(vm);
        log_info("VM %s: plugin %s runs as %s (pid %" PRIu32 ").", vm->name, pc->path, vm->plugin_object,
                 vm->plugin_pid);

        return vm_run_vcpus(vm, error);

fail:
        vm_release_kvm(vm);
        return r;
}

static int vm_start_plugin(struct vm *vm, sd_bus_error *error) {
        const struct plugin_config *pc = &vm->config.plugin;
        int files[CONFIG_PLUGIN_MAX_FILES];
        char err[512];
        int r;

        /* Before KVM: a file gone since CreateVm is the config's fault.
         * devmgr's plugin gets copies; ours are closed here in every case. */
        r = plugin_files_open(pc, files, err, sizeof(err));
        if (r < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_CONFIG, "%s", err);
        r = vm_start_plugin_with(vm, files, error);
        plugin_files_close(files, pc->n_files);
        return r;
}

int vm_start(struct vm *vm, sd_bus_error *error) {
        struct boot_entry entry;
        uint64_t rsdp;
        char err[512];
        int r;

        if (vm->state == VM_RUNNING || vm->state == VM_PAUSED)
                return sd_bus_error_setf(error, POLYVM_ERROR_ALREADY_ACTIVE, "VM %s is %s already", vm->name,
                                         vm_state_to_string(vm->state));

        /* A restart boots from clean memory, like a real machine's reset. */
        if (vm->starts > 0 && vm->memfd >= 0 &&
            fallocate(vm->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t) vm->config.memory_bytes) < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "Failed to clear guest memory: %s", strerror(errno));

        if (vm_config_is_plugin(&vm->config))
                return vm_start_plugin(vm, error);

        pm_reset(&vm->pm);
        r = kvm_vm_create(vm->mem, vm->config.memory_bytes, &vm->kvm, err, sizeof(err));
        if (r < 0)
                return sd_bus_error_setf(error,
                                         r == -ENOENT || r == -EACCES || r == -ENOTSUP ? POLYVM_ERROR_KVM_UNAVAILABLE
                                                                                       : POLYVM_ERROR_FAILED,
                                         "%s", err);

        r = acpi_build(vm->mem, vm->config.memory_bytes, vm->config.vcpus, &rsdp);
        if (r < 0) {
                r = sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "Failed to build ACPI tables: %s", strerror(-r));
                goto fail;
        }
        r = loader_load(&vm->config, vm->mem, rsdp, &entry, err, sizeof(err));
        if (r < 0) {
                r = sd_bus_error_setf(error, POLYVM_ERROR_INVALID_CONFIG, "%s", err);
                goto fail;
        }

        for (size_t i = 0; i < vm->n_devices; i++) {
                if (vm->irq_fds[i] < 0)
                        continue;
                r = kvm_vm_irqfd(&vm->kvm, vm->irq_fds[i], vm->devices[i]->ranges.irq);
                if (r < 0) {
                        r = sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "KVM_IRQFD for device %s: %s",
                                              vm->devices[i]->object, strerror(-r));
                        goto fail;
                }
        }

        r = irq_routes_bind(&vm->irq_routes, vm_kvm_commit_routes, &vm->kvm);
        if (r < 0) {
                r = sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "KVM_SET_GSI_ROUTING: %s", strerror(-r));
                goto fail;
        }
        r = pci_firmware_assign(&vm->pci, err, sizeof(err));
        if (r < 0) {
                r = sd_bus_error_setf(error, POLYVM_ERROR_INVALID_CONFIG, "%s", err);
                goto fail;
        }
        for (size_t i = 0; i < vm->n_devices; i++) {
                if (!vm->datapaths[i])
                        continue;
                r = device_datapath_bind(vm->datapaths[i], &vm_datapath_kvm_ops, &vm->kvm);
                if (r < 0) {
                        r = sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "Data path of device %s: %s",
                                              vm->devices[i]->object, strerror(-r));
                        goto fail;
                }
        }

        for (unsigned i = 0; i < vm->config.vcpus; i++) {
                char path[512];

                r = vcpu_new(vm->kvm.kvm_fd, vm->kvm.vm_fd, i, vm->config.vcpus, &entry, vm->mem,
                             vm->config.memory_bytes, &vm_vcpu_ops, vm, &vm->vcpus[i]);
                if (r < 0) {
                        r = sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "Failed to create vCPU %u: %s", i,
                                              strerror(-r));
                        goto fail;
                }
                vcpu_path(vm, i, path, sizeof(path));
                r = vcpu_bus_add(vm->vcpus[i], vm->launcher->bus, path);
                if (r < 0) {
                        r = sd_bus_error_set_errno(error, r);
                        goto fail;
                }
                (void) sd_bus_emit_object_added(vm->launcher->bus, path);
        }

        return vm_run_vcpus(vm, error);

fail:
        vm_release_kvm(vm);
        return r;
}

static int vm_require_active(struct vm *vm, sd_bus_error *error) {
        if (vm->state != VM_RUNNING && vm->state != VM_PAUSED)
                return sd_bus_error_setf(error, POLYVM_ERROR_NOT_RUNNING, "VM %s is %s, not running", vm->name,
                                         vm_state_to_string(vm->state));
        return 0;
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct vm *vm = userdata;

        log_warning("VM %s did not power off within %llu s of Stop(), killing it.", vm->name,
                    VM_STOP_TIMEOUT_USEC / 1000000ULL);
        vm_finish(vm, VM_STOPPED, "stop-timeout");
        return 0;
}

/* Stop/Kill of a plugin VM: the plugin gets SIGTERM and the grace period;
 * the stop reason says if it had to be killed. */
static void vm_plugin_stop_asked(struct vm *vm, const char *verb) {
        char reason[512];

        plugin_vm_stop(vm->plugin_vm);
        vm_plugin_reap(vm);
        (void) plugin_end_from_exit_reason(vm->plugin_exit_reason, verb, reason, sizeof(reason));
        vm_finish(vm, VM_STOPPED, reason);
}

int vm_stop(struct vm *vm, sd_bus_error *error) {
        int r;

        r = vm_require_active(vm, error);
        if (r < 0)
                return r;
        if (vm_config_is_plugin(&vm->config)) {
                vm_plugin_stop_asked(vm, "stopped");
                return 0;
        }
        if (vm->state == VM_PAUSED) {
                vm_finish(vm, VM_STOPPED, "stopped-while-paused");
                return 0;
        }
        if (!pm_press_power_button(&vm->pm))
                log_info("VM %s has not enabled the ACPI power button; it will be killed after the timeout.",
                         vm->name);
        if (!vm->stop_timer) {
                r = sd_event_add_time_relative(vm->launcher->event, &vm->stop_timer, CLOCK_MONOTONIC,
                                               VM_STOP_TIMEOUT_USEC, 0, on_stop_timeout, vm);
                if (r < 0)
                        return sd_bus_error_set_errno(error, r);
        }
        return 0;
}

void vm_fail(struct vm *vm, const char *reason) {
        if (vm->state == VM_RUNNING || vm->state == VM_PAUSED)
                vm_finish(vm, VM_FAILED, reason);
}

int vm_kill(struct vm *vm, sd_bus_error *error) {
        int r;

        r = vm_require_active(vm, error);
        if (r < 0)
                return r;
        if (vm_config_is_plugin(&vm->config)) {
                vm_plugin_stop_asked(vm, "killed");
                return 0;
        }
        vm_finish(vm, VM_STOPPED, "killed");
        return 0;
}

int vm_pause(struct vm *vm, sd_bus_error *error) {
        if (vm->state != VM_RUNNING)
                return sd_bus_error_setf(error, POLYVM_ERROR_BAD_STATE, "VM %s is %s; only a running VM can be paused",
                                         vm->name, vm_state_to_string(vm->state));
        /* A plugin VM's vCPU may wait for the plugin, which this thread serves. */
        if (vm->plugin_vm) {
                int r = plugin_vm_pause(vm->plugin_vm, vm->config.vcpus >= 64 ? UINT64_MAX : (1ULL << vm->config.vcpus) - 1,
                                        1000);
                if (r < 0)
                        return sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "VM %s: vCPUs did not pause: %s", vm->name,
                                                 strerror(-r));
        } else
                for (unsigned i = 0; i < vm->config.vcpus; i++)
                        vcpu_pause(vm->vcpus[i]);
        vm_set_state(vm, VM_PAUSED, NULL);
        return 0;
}

int vm_resume(struct vm *vm, sd_bus_error *error) {
        if (vm->state != VM_PAUSED)
                return sd_bus_error_setf(error, POLYVM_ERROR_BAD_STATE, "VM %s is %s; only a paused VM can be resumed",
                                         vm->name, vm_state_to_string(vm->state));
        /* A plugin VM's vCPUs that the plugin holds (PAUSE_VCPUS) stay held. */
        if (vm->plugin_vm)
                plugin_vm_resume(vm->plugin_vm, vm->config.vcpus >= 64 ? UINT64_MAX : (1ULL << vm->config.vcpus) - 1);
        else
                for (unsigned i = 0; i < vm->config.vcpus; i++)
                        vcpu_resume(vm->vcpus[i]);
        vm_set_state(vm, VM_RUNNING, NULL);
        return 0;
}

int vm_open_console(struct vm *vm, int *ret_fd, sd_bus_error *error) {
        int r;

        if (!vm->console)
                return sd_bus_error_setf(error, POLYVM_ERROR_BAD_STATE,
                                         "VM %s is a plugin VM: it has no console of polyvm's (the plugin's output is in devmgr's log)",
                                         vm->name);
        r = console_open_client(vm->console, ret_fd);
        if (r < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "Failed to open the console of %s: %s", vm->name,
                                         strerror(-r));
        return 0;
}

void vm_destroy(struct vm *vm) {
        struct launcher *l = vm->launcher;

        vm_release_kvm(vm);
        if (vm->announced)
                (void) sd_bus_emit_object_removed(l->bus, vm->path);

        for (struct vm **p = &l->vms; *p; p = &(*p)->next)
                if (*p == vm) {
                        *p = vm->next;
                        break;
                }

        for (size_t i = 0; i < vm->n_devices; i++) {
                char *object = strdup(vm->devices[i]->object);
                vm->device_hangup[i] = sd_event_source_disable_unref(vm->device_hangup[i]);
                /* The data path points at its device: free it first. */
                vm->datapaths[i] = device_datapath_free(vm->datapaths[i]);
                device_proxy_free(vm->devices[i]);
                if (object)
                        devmgr_destroy_device(l->bus, object);
                free(object);
                safe_close(vm->irq_fds[i]);
        }
        irq_routes_done(&vm->irq_routes);
        console_free(vm->console);
        if (vm->mem)
                munmap(vm->mem, vm->config.memory_bytes);
        safe_close(vm->memfd);
        if (vm->memory_object)
                memmgr_free(l->bus, vm->name);

        sd_event_source_disable_unref(vm->stop_source);
        safe_close(vm->stop_efd);
        pm_done(&vm->pm);
        address_map_done(&vm->map);
        pthread_mutex_destroy(&vm->stop_lock);
        vm_config_done(&vm->config);
        if (vm->announced)
                log_info("Destroyed VM %s.", vm->name);
        free(vm->memory_object);
        free(vm->path);
        free(vm->name);
        free(vm->config_text);
        free(vm->stop_reason);
        free(vm->plugin_exit_reason);
        free(vm);
}
