/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-util.h"
#include "log.h"
#include "manager.h"
#include "uffd.h"

int manager_new(const char *state_dir, struct manager **ret) {
        _cleanup_(manager_freep) struct manager *m = NULL;
        const char *e = getenv("STATE_DIRECTORY");
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        /* systemd's StateDirectory= may list several, colon-separated: ours is the first. */
        if (state_dir)
                m->state_dir = strdup(state_dir);
        else if (e && e[0])
                m->state_dir = strndup(e, strcspn(e, ":"));
        else
                m->state_dir = strdup(MEMMGR_STATE_DIR_DEFAULT);
        if (!m->state_dir)
                return -ENOMEM;
        m->swap_direct_io = true; /* faster in every row here (bench/README.md) */
        r = memory_host_total(&m->host_memory);
        if (r < 0)
                return log_error_errno(r, "Failed to read MemTotal from /proc/meminfo: %m");
        *ret = TAKE_PTR(m);
        return 0;
}

struct manager *manager_free(struct manager *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_vms; i++)
                vm_memory_free(m->vms[i]);
        free(m->vms);
        free(m->state_dir);
        free(m);
        return NULL;
}

struct vm_memory *manager_find(struct manager *m, const char *vm) {
        for (size_t i = 0; i < m->n_vms; i++)
                if (strcmp(m->vms[i]->vm, vm) == 0)
                        return m->vms[i];
        return NULL;
}

static int manager_add(struct manager *m, struct vm_memory *vm) {
        struct vm_memory **v;

        v = reallocarray(m->vms, m->n_vms + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        m->vms = v;
        m->vms[m->n_vms++] = vm;
        return 0;
}

/* Removes vm from the bus and the list and frees it. */
static void manager_release(struct manager *m, struct vm_memory *vm) {
        int r;

        /* Must go out while the object can still be found. */
        r = sd_bus_emit_object_removed(m->bus, vm->path);
        if (r < 0)
                log_warning_errno(r, "Failed to emit InterfacesRemoved for %s: %m", vm->path);

        for (size_t i = 0; i < m->n_vms; i++)
                if (m->vms[i] == vm) {
                        memmove(m->vms + i, m->vms + i + 1, (m->n_vms - i - 1) * sizeof(*m->vms));
                        m->n_vms--;
                        break;
                }
        log_info("Freed memory of VM %s (%" PRIu64 " bytes).", vm->vm, vm->size);
        vm_memory_free(vm);
}

/* The last peer holding this VM's memory left the bus. */
static int on_track_empty(sd_bus_track *track, void *userdata) {
        struct manager *m = userdata;

        for (size_t i = 0; i < m->n_vms; i++)
                if (m->vms[i]->track == track) {
                        log_info("Owner of VM %s left the bus.", m->vms[i]->vm);
                        manager_release(m, m->vms[i]);
                        break;
                }
        return 0;
}

static int method_allocate_memory(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_(vm_memory_freep) struct vm_memory *vm = NULL;
        struct vm_memory *added;
        char err[256];
        const char *name;
        uint64_t size;
        int r;

        r = sd_bus_message_read(msg, "st", &name, &size);
        if (r < 0)
                return r;

        if (memory_check_vm_name(name, err, sizeof(err)) < 0 ||
            memory_check_size(size, m->host_memory, err, sizeof(err)) < 0)
                return sd_bus_error_set(error, POLYVM_ERROR_INVALID_ARGS, err);
        if (manager_find(m, name))
                return sd_bus_error_setf(error, POLYVM_ERROR_VM_EXISTS, "vm: memory for VM \"%s\" already exists", name);

        r = vm_memory_new(name, size, MEMMGR_VM_PATH_PREFIX, &vm);
        if (r == -ENOMEM || r == -ENOSPC || r == -EFBIG)
                return sd_bus_error_setf(error, POLYVM_ERROR_NO_MEMORY, "Cannot allocate %" PRIu64 " bytes for VM %s: %s",
                                         size, name, strerror(-r));
        if (r < 0) {
                log_error_errno(r, "Failed to allocate memory for VM %s: %m", name);
                return bus_error_from_errno(error, r, "Failed to allocate guest memory");
        }

        r = swap_new(vm->vm, vm->path, m->bus, m->event, vm->memfd, vm->size, m->state_dir, &vm->swap);
        if (r < 0)
                return bus_error_from_errno(error, r, "Failed to set up swap");
        vm->swap->direct_io = m->swap_direct_io;

        r = sd_bus_track_new(m->bus, &vm->track, on_track_empty, m);
        if (r < 0)
                return r;
        r = sd_bus_track_add_sender(vm->track, msg);
        if (r < 0)
                return r;

        r = manager_add(m, vm);
        if (r < 0)
                return r;
        added = TAKE_PTR(vm); /* owned by the list now */

        r = sd_bus_emit_object_added(m->bus, added->path);
        if (r < 0)
                log_warning_errno(r, "Failed to emit InterfacesAdded for %s: %m", added->path);
        log_info("Allocated %" PRIu64 " bytes for VM %s for %s.", size, name, sd_bus_message_get_sender(msg));
        r = sd_bus_reply_method_return(msg, "oh", added->path, added->memfd);
        if (r < 0) {
                /* E.g. a caller that cannot receive fds: nobody holds it. */
                log_warning_errno(r, "Failed to hand memory of VM %s to %s: %m", name, sd_bus_message_get_sender(msg));
                manager_release(m, added);
        }
        return r;
}

static int method_free_memory(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct vm_memory *vm;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        vm = manager_find(m, name);
        if (!vm)
                return sd_bus_error_setf(error, POLYVM_ERROR_NO_SUCH_VM, "vm: no memory is allocated for VM \"%s\"", name);
        manager_release(m, vm);
        return sd_bus_reply_method_return(msg, NULL);
}

/* ---- the uffd list (docs/memmgr.md, "The uffd list") ---- */

static int find_vm_or_error(struct manager *m, const char *name, sd_bus_error *error, struct vm_memory **ret) {
        *ret = manager_find(m, name);
        if (!*ret)
                return sd_bus_error_setf(error, POLYVM_ERROR_NO_SUCH_VM, "vm: no memory is allocated for VM \"%s\"",
                                         name);
        return 0;
}

/* The peer that allocated the VM's memory (the launcher). */
static bool sender_owns(struct vm_memory *vm, sd_bus_message *msg) {
        return sd_bus_track_count_sender(vm->track, msg) > 0;
}

/* The current owner of org.polyvm.DeviceManager1. */
static bool sender_is_devmgr(struct manager *m, sd_bus_message *msg) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *unique = NULL, *sender = sd_bus_message_get_sender(msg);

        if (!sender || sd_bus_get_name_creds(m->bus, DEVMGR_BUS_NAME, SD_BUS_CREDS_UNIQUE_NAME, &creds) < 0 ||
            sd_bus_creds_get_unique_name(creds, &unique) < 0)
                return false;
        return strcmp(unique, sender) == 0;
}

/* A copy of the uffd received in msg, checked to be a ready userfaultfd. */
static int take_uffd(int fd, sd_bus_error *error, int *ret) {
        int r, copy;

        r = uffd_check(fd);
        if (r == -ENOTTY || r == -EBADF)
                return sd_bus_error_set(error, POLYVM_ERROR_INVALID_ARGS, "uffd: the fd is not a userfaultfd");
        if (r == -EBADFD)
                return sd_bus_error_set(error, POLYVM_ERROR_INVALID_ARGS,
                                        "uffd: the userfaultfd is not initialised (UFFDIO_API was not done)");
        if (r < 0)
                return bus_error_from_errno(error, r, "Failed to check the userfaultfd");
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return bus_error_from_errno(error, -errno, "Failed to keep the userfaultfd");
        *ret = copy;
        return 0;
}

/* base is where the uffd's creator mapped guest offset 0. */
static int check_base(struct vm_memory *vm, uint64_t base, sd_bus_error *error) {
        if (base == 0 || base % vm->swap->page_size != 0 || base + vm->size < base)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS,
                                         "base: 0x%" PRIx64 " is not the page-aligned address of a mapping of %" PRIu64
                                         " bytes", base, vm->size);
        return 0;
}

static int reply_registered(sd_bus_message *msg, struct vm_memory *vm, uint32_t index, bool is_static) {
        struct uffd_entry *e = uffd_list_get(vm->uffds->list, index);

        log_info("Registered uffd %" PRIu32 " (%s, pid %d) of VM %s for %s.", index, is_static ? "static" : "dynamic",
                 (int) e->pid, vm->vm, sd_bus_message_get_sender(msg));
        return sd_bus_reply_method_return(msg, "ub", index, is_static);
}

static int method_register_uffd(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        _cleanup_close_ int uffd = -1;
        struct manager *m = userdata;
        struct vm_memory *vm;
        const char *name;
        uint64_t base;
        pid_t pid = 0;
        int fd, r;

        r = sd_bus_message_read(msg, "sht", &name, &fd, &base);
        if (r < 0)
                return r;
        r = find_vm_or_error(m, name, error, &vm);
        if (r < 0)
                return r;
        if (!sender_owns(vm, msg))
                return sd_bus_error_setf(error, POLYVM_ERROR_NOT_PERMITTED,
                                         "Only the owner of VM %s's memory may register its main uffd", name);
        if (vm->uffds)
                return sd_bus_error_setf(error, POLYVM_ERROR_BAD_STATE, "VM %s has its main uffd (index 0) already",
                                         name);
        r = check_base(vm, base, error);
        if (r < 0)
                return r;
        r = take_uffd(fd, error, &uffd);
        if (r < 0)
                return r;
        /* For display only: the main uffd is static and its owner's exit
         * ends the VM's memory through the bus track anyway. */
        if (sd_bus_query_sender_creds(msg, SD_BUS_CREDS_PID, &creds) >= 0)
                (void) sd_bus_creds_get_pid(creds, &pid);

        r = uffd_service_new(m->event, m->bus, vm->path, uffd, pid, base, &vm->uffds);
        if (r < 0)
                return bus_error_from_errno(error, r, "Failed to watch the main uffd");
        TAKE_FD(uffd);
        swap_attach(vm->swap, vm->uffds);
        (void) sd_bus_emit_properties_changed(m->bus, vm->path, MEMORY1_INTERFACE, "UffdCount", "Uffds", NULL);
        return reply_registered(msg, vm, 0, true);
}

static int method_register_device_uffd(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_close_ int uffd = -1, pidfd = -1;
        struct manager *m = userdata;
        struct vm_memory *vm;
        const char *name;
        uint64_t base;
        uint32_t index;
        bool is_static, registered;
        char err[512] = "";
        pid_t pid;
        int fd, pfd, r;

        r = sd_bus_message_read(msg, "shht", &name, &fd, &pfd, &base);
        if (r < 0)
                return r;
        r = find_vm_or_error(m, name, error, &vm);
        if (r < 0)
                return r;
        if (!sender_owns(vm, msg) && !sender_is_devmgr(m, msg))
                return sd_bus_error_setf(error, POLYVM_ERROR_NOT_PERMITTED,
                                         "Only %s or the owner of VM %s's memory may register a device's uffd",
                                         DEVMGR_BUS_NAME, name);
        if (!vm->uffds)
                return sd_bus_error_setf(error, POLYVM_ERROR_BAD_STATE,
                                         "VM %s has no main uffd yet: RegisterUffd comes first", name);
        r = check_base(vm, base, error);
        if (r < 0)
                return r;
        /* The pid comes from the pidfd, which names the process for good:
         * no pid that could be reused between sending and receiving. */
        r = pidfd_get_pid(pfd, &pid);
        if (r == -EBADF)
                return sd_bus_error_set(error, POLYVM_ERROR_INVALID_ARGS, "pidfd: the fd is not a pidfd");
        if (r == -ESRCH)
                return sd_bus_error_set(error, POLYVM_ERROR_INVALID_ARGS,
                                        "pidfd: its process has exited and been reaped");
        if (r < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS, "pidfd: cannot read its pid: %s",
                                         strerror(-r));
        r = take_uffd(fd, error, &uffd);
        if (r < 0)
                return r;
        pidfd = fcntl(pfd, F_DUPFD_CLOEXEC, 3);
        if (pidfd < 0)
                return bus_error_from_errno(error, -errno, "Failed to keep the pidfd");
        /* Swapped out: its mapping is guarded before it joins the list
         * (the device registered missing pages itself, so whatever it
         * touched meanwhile waits in its uffd for us). */
        r = swap_register_device(vm->swap, uffd, base, pid, &registered, err, sizeof(err));
        if (r == -EINVAL || r == -ENOMEM || r == -EBUSY)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS, "base: %s", err);
        if (r < 0)
                return sd_bus_error_set(error, POLYVM_ERROR_FAILED, err);

        r = uffd_service_add(vm->uffds, uffd, pidfd, pid, base, registered, &index, &is_static);
        if (r == -E2BIG)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS, "VM %s has %d uffds, the limit", name,
                                         UFFD_LIST_MAX);
        if (r < 0)
                return bus_error_from_errno(error, r, "Failed to register the uffd");
        TAKE_FD(uffd);
        TAKE_FD(pidfd);
        return reply_registered(msg, vm, index, is_static);
}

static int method_set_num_static_devices(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct vm_memory *vm;
        const char *name;
        uint32_t n;
        int r;

        r = sd_bus_message_read(msg, "su", &name, &n);
        if (r < 0)
                return r;
        r = find_vm_or_error(m, name, error, &vm);
        if (r < 0)
                return r;
        if (!sender_owns(vm, msg))
                return sd_bus_error_setf(error, POLYVM_ERROR_NOT_PERMITTED,
                                         "Only the owner of VM %s's memory may set its static devices", name);
        if (!vm->uffds)
                return sd_bus_error_setf(error, POLYVM_ERROR_BAD_STATE,
                                         "VM %s has no main uffd yet: RegisterUffd comes first", name);
        r = uffd_service_set_num_static_devices(vm->uffds, n);
        if (r == -EALREADY)
                return sd_bus_error_setf(error, POLYVM_ERROR_BAD_STATE,
                                         "The static devices of VM %s are set already (%zu uffds are static)", name,
                                         vm->uffds->list->n_static);
        if (r == -ERANGE)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS, "n: %" PRIu32 " devices, the limit is %d", n,
                                         UFFD_LIST_MAX - 1);
        if (r < 0)
                return bus_error_from_errno(error, r, "Failed to set the static devices");
        log_info("VM %s has %" PRIu32 " static devices.", name, n);
        return sd_bus_reply_method_return(msg, NULL);
}

static int property_get_uffd_count(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm_memory *vm = userdata;

        return sd_bus_message_append(reply, "u", vm->uffds ? (uint32_t) uffd_list_size(vm->uffds->list) : 0);
}

static int property_get_uffds(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm_memory *vm = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(ubu)");
        if (r < 0)
                return r;
        for (uint32_t i = 0; vm->uffds && i < uffd_list_size(vm->uffds->list); i++) {
                struct uffd_entry *e = uffd_list_get(vm->uffds->list, i);
                r = sd_bus_message_append(reply, "(ubu)", i, e->is_static, (uint32_t) e->pid);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_uffd_faults(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm_memory *vm = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "t");
        if (r < 0)
                return r;
        for (uint32_t i = 0; vm->uffds && i < uffd_list_size(vm->uffds->list); i++) {
                r = sd_bus_message_append(reply, "t", uffd_list_get(vm->uffds->list, i)->faults);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_faults_served(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm_memory *vm = userdata;

        return sd_bus_message_append(reply, "t", vm->uffds ? vm->uffds->faults_served : UINT64_C(0));
}

/* ---- swap (docs/memmgr.md, "Swap") ---- */

static int swap_reply(sd_bus_message *msg, int r, const char *err, sd_bus_error *error) {
        if (r == -EBUSY || r == -ENODEV)
                return sd_bus_error_set(error, POLYVM_ERROR_BAD_STATE, err);
        if (r < 0)
                return sd_bus_error_set(error, POLYVM_ERROR_FAILED, err);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_swap_out(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct vm_memory *vm = userdata;
        char err[512] = "";

        return swap_reply(msg, swap_out(vm->swap, err, sizeof(err)), err, error);
}

static int method_swap_in(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct vm_memory *vm = userdata;
        char err[512] = "";

        return swap_reply(msg, swap_in(vm->swap, err, sizeof(err)), err, error);
}

static int method_trim(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct vm_memory *vm = userdata;
        char err[512] = "";
        int r;

        r = swap_trim(vm->swap, err, sizeof(err));
        if (r > 0)
                log_info("VM %s: trimmed %d pages from the swap file.", vm->vm, r);
        return swap_reply(msg, MIN(r, 0), err, error);
}

static int property_get_swap(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct swap *s = ((struct vm_memory *) userdata)->swap;

        if (strcmp(property, "SwapState") == 0)
                return sd_bus_message_append(reply, "s", swap_state_to_string(s->state));
        if (strcmp(property, "ResidentBytes") == 0)
                return sd_bus_message_append(reply, "t", swap_resident_bytes(s));
        if (strcmp(property, "SwappedBytes") == 0)
                return sd_bus_message_append(reply, "t", s->n_file * s->page_size);
        if (strcmp(property, "ZeroPagesSkipped") == 0)
                return sd_bus_message_append(reply, "t", s->n_zero);
        if (strcmp(property, "FaultLatencyUs") == 0)
                return sd_bus_message_append(reply, "(tt)", swap_histogram_percentile(&s->latency, 0.5),
                                             swap_histogram_percentile(&s->latency, 0.99));
        if (strcmp(property, "Progress") == 0)
                return sd_bus_message_append(reply, "d", s->progress);
        if (strcmp(property, "LastError") == 0)
                return sd_bus_message_append(reply, "s", s->last_error ?: "");
        return -ENOENT;
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_NAMES("AllocateMemory", "st", SD_BUS_PARAM(vm) SD_BUS_PARAM(size),
                                 "oh", SD_BUS_PARAM(memory) SD_BUS_PARAM(memfd),
                                 method_allocate_memory, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("FreeMemory", "s", SD_BUS_PARAM(vm), "", ,
                                 method_free_memory, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("RegisterUffd", "sht", SD_BUS_PARAM(vm) SD_BUS_PARAM(uffd) SD_BUS_PARAM(base),
                                 "ub", SD_BUS_PARAM(index) SD_BUS_PARAM(is_static),
                                 method_register_uffd, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("RegisterDeviceUffd", "shht",
                                 SD_BUS_PARAM(vm) SD_BUS_PARAM(uffd) SD_BUS_PARAM(pidfd) SD_BUS_PARAM(base),
                                 "ub", SD_BUS_PARAM(index) SD_BUS_PARAM(is_static),
                                 method_register_device_uffd, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("SetNumStaticDevices", "su", SD_BUS_PARAM(vm) SD_BUS_PARAM(n), "", ,
                                 method_set_num_static_devices, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable memory_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Vm", "s", NULL, offsetof(struct vm_memory, vm), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Size", "t", NULL, offsetof(struct vm_memory, size), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UffdCount", "u", property_get_uffd_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Uffds", "a(ubu)", property_get_uffds, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* Counters change with every fault: read them, no signal. */
        SD_BUS_PROPERTY("FaultsServed", "t", property_get_faults_served, 0, 0),
        SD_BUS_PROPERTY("UffdFaults", "at", property_get_uffd_faults, 0, 0),
        SD_BUS_PROPERTY("SwapState", "s", property_get_swap, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Progress", "d", property_get_swap, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", property_get_swap, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ResidentBytes", "t", property_get_swap, 0, 0),
        SD_BUS_PROPERTY("SwappedBytes", "t", property_get_swap, 0, 0),
        SD_BUS_PROPERTY("ZeroPagesSkipped", "t", property_get_swap, 0, 0),
        SD_BUS_PROPERTY("FaultLatencyUs", "(tt)", property_get_swap, 0, 0),
        /* Privileged (same uid or CAP_SYS_ADMIN): the launcher or an admin. */
        SD_BUS_METHOD("SwapOut", "", "", method_swap_out, 0),
        SD_BUS_METHOD("SwapIn", "", "", method_swap_in, 0),
        SD_BUS_METHOD("Trim", "", "", method_trim, 0),
        SD_BUS_VTABLE_END,
};

static int memory_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                              void **found, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_free_ char *name = NULL;
        struct vm_memory *vm;
        int r;

        r = sd_bus_path_decode(path, MEMMGR_VM_PATH_PREFIX, &name);
        if (r <= 0)
                return r;
        vm = manager_find(m, name);
        if (!vm)
                return 0;
        *found = vm;
        return 1;
}

static int memory_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                                  sd_bus_error *error) {
        struct manager *m = userdata;
        char **l;

        l = calloc(m->n_vms + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_vms; i++) {
                l[i] = strdup(m->vms[i]->path);
                if (!l[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(l[j]);
                        free(l);
                        return -ENOMEM;
                }
        }
        *nodes = l;
        return 1;
}

int manager_setup_bus(sd_bus *bus, sd_event *event, void *userdata) {
        struct manager *m = userdata;
        int r;

        m->bus = bus;
        m->event = event;
        r = sd_bus_add_object_vtable(bus, NULL, MEMMGR_OBJECT_PATH, MEMMGR_BUS_NAME, manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add %s object: %m", MEMMGR_OBJECT_PATH);
        r = sd_bus_add_fallback_vtable(bus, NULL, MEMMGR_VM_PATH_PREFIX, "org.polyvm.Memory1", memory_vtable,
                                       memory_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add Memory1 objects: %m");
        r = sd_bus_add_node_enumerator(bus, NULL, MEMMGR_VM_PATH_PREFIX, memory_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add Memory1 enumerator: %m");
        r = sd_bus_add_object_manager(bus, NULL, MEMMGR_OBJECT_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to add object manager: %m");
        return 0;
}
