/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <seccomp.h>
#include <unistd.h>

#include "bus-errors.h"
#include "bus-util.h"
#include "device-log.h"
#include "device-report.h"
#include "device-spawn.h"
#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "plugin-check.h"
#include "plugin-spawn.h"

/* Where device uffds go (docs/memmgr.md). */
#define MEMMGR_BUS_NAME "org.polyvm.MemoryManager1"
#define MEMMGR_PATH "/org/polyvm/MemoryManager1"

/* created: the process runs, jailed, waiting for Activate; active: it has
 * reported its first Activate (advisory: the device says so itself). */
enum device_state {
        DEVICE_CREATED,
        DEVICE_ACTIVE,
        DEVICE_EXITED,
        DEVICE_FAILED,
};

static const char *const device_state_names[] = {
        [DEVICE_CREATED] = "created",
        [DEVICE_ACTIVE] = "active",
        [DEVICE_EXITED] = "exited",
        [DEVICE_FAILED] = "failed",
};

static bool device_running(enum device_state s) {
        return s == DEVICE_CREATED || s == DEVICE_ACTIVE;
}

struct managed_device {
        struct manager *manager;
        struct managed_device *next;
        unsigned id;
        char *path;
        char *vm;
        const struct device_kind *kind;
        pid_t pid;
        bool userns;
        char *seccomp_policy; /* path of the policy file */
        enum device_state state;
        char *exit_reason;
        char *violation; /* the system call the seccomp listener reported */
        sd_event_source *child_source;
        struct device_log *log; /* its stderr */
        int report_fd; /* device-report.h */
        sd_event_source *report_source;
        int listener_fd; /* the device's seccomp listener */
        sd_event_source *listener_source;
        sd_bus_track *track; /* the caller that created it */
        int pidfd; /* of the process, opened while it was our unreaped child */
        bool uffd_reported; /* its guest-memory uffd came (once per device) */
        sd_bus_slot *uffd_call; /* RegisterDeviceUffd in flight */
        char *connect_prefix; /* device_kind.connect_prefix, from its config; NULL: none */
        /* A plugin's StopPlugin: the call answered once it is gone, the
         * grace timer, and whether the timer had to kill it. */
        sd_bus_message *stop_call;
        sd_event_source *stop_timer;
        uint64_t stop_grace_usec;
        bool stop_timed_out;
};

static void plugin_stop_done(struct managed_device *d);

static struct managed_device *device_by_path(struct manager *m, const char *path) {
        for (struct managed_device *d = m->devices; d; d = d->next)
                if (strcmp(d->path, path) == 0)
                        return d;
        return NULL;
}

/* The report channel and the listener are of no use once the process is gone. */
static void device_close_channels(struct managed_device *d) {
        d->log = device_log_free(d->log);
        d->report_source = sd_event_source_disable_unref(d->report_source);
        d->report_fd = safe_close(d->report_fd);
        d->listener_source = sd_event_source_disable_unref(d->listener_source);
        d->listener_fd = safe_close(d->listener_fd);
}

/* Kills (if still running) and reaps the process; the object stays. */
static void device_kill(struct managed_device *d) {
        siginfo_t si;

        d->child_source = sd_event_source_unref(d->child_source);
        device_close_channels(d);
        if (!device_running(d->state))
                return;
        if (kill(d->pid, SIGKILL) < 0 && errno != ESRCH)
                log_warning_errno(errno, "Failed to kill device process %d: %m", (int) d->pid);
        /* SIGKILL cannot be caught, so this wait is short. */
        while (waitid(P_PID, (id_t) d->pid, &si, WEXITED) < 0 && errno == EINTR)
                ;
        d->state = DEVICE_EXITED;
}

static void device_free(struct managed_device *d) {
        if (!d)
                return;
        device_kill(d);
        sd_bus_slot_unref(d->uffd_call);
        safe_close(d->pidfd);
        sd_bus_track_unref(d->track);
        free(d->path);
        free(d->vm);
        free(d->exit_reason);
        free(d->violation);
        free(d->seccomp_policy);
        free(d->connect_prefix);
        plugin_stop_done(d);
        free(d);
}

/* Removes the device from the bus and frees it. */
static void device_remove(struct managed_device *d) {
        struct manager *m = d->manager;

        for (struct managed_device **p = &m->devices; *p; p = &(*p)->next)
                if (*p == d) {
                        *p = d->next;
                        break;
                }
        device_kill(d);
        if (m->bus) {
                int r = sd_bus_emit_interfaces_removed(m->bus, d->path, "org.polyvm.Device1", NULL);
                if (r < 0)
                        log_warning_errno(r, "Failed to emit InterfacesRemoved for %s: %m", d->path);
        }
        log_info("Removed %s (%s for %s).", d->path, d->kind->name, d->vm);
        device_free(d);
}

static void device_drain_reports(struct managed_device *d);

static int on_device_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        struct managed_device *d = userdata;
        char *reason = NULL;
        int r;

        /* What the device said before it died (its Activate) comes first. */
        device_drain_reports(d);
        device_close_channels(d);

        if (d->violation) {
                /* devmgr killed it for the call the kernel reported. */
                d->state = DEVICE_FAILED;
                r = asprintf(&reason, "seccomp violation: %s", d->violation);
        } else if (si->si_code == CLD_EXITED) {
                d->state = si->si_status == 0 ? DEVICE_EXITED : DEVICE_FAILED;
                r = asprintf(&reason, "exited with status %d", si->si_status);
        } else {
                d->state = DEVICE_FAILED;
                if (si->si_status == SIGSYS)
                        /* The kernel kills only calls of another architecture
                         * outright; the others are reported first. */
                        r = asprintf(&reason, "killed by signal %d (SIGSYS: seccomp violation, a system call of another architecture)",
                                     si->si_status);
                else
                        r = asprintf(&reason, "killed by signal %d (SIG%s)", si->si_status,
                                     sigabbrev_np(si->si_status) ?: "?");
        }
        if (r >= 0 && d->stop_timed_out) {
                char *t = NULL;

                r = asprintf(&t, "timeout: still running %" PRIu64 " ms after SIGTERM, %s", d->stop_grace_usec / 1000,
                             reason);
                free(reason);
                reason = t;
        }
        if (r >= 0) {
                free(d->exit_reason);
                d->exit_reason = reason;
        }
        if (d->state == DEVICE_FAILED)
                log_warning("Device %s (%s, pid %d) %s.", d->path, d->kind->name, (int) d->pid, d->exit_reason ?: "failed");
        else
                log_info("Device %s (%s, pid %d) %s.", d->path, d->kind->name, (int) d->pid, d->exit_reason ?: "exited");

        r = sd_bus_emit_properties_changed(d->manager->bus, d->path, "org.polyvm.Device1", "State", "ExitReason", NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to emit PropertiesChanged for %s: %m", d->path);
        if (d->state == DEVICE_FAILED) {
                r = sd_bus_emit_signal(d->manager->bus, d->path, "org.polyvm.Device1", "Failed", "s",
                                       d->exit_reason ?: "failed");
                if (r < 0)
                        log_warning_errno(r, "Failed to emit Failed for %s: %m", d->path);
        }
        plugin_stop_done(d);
        /* sd-event reaps the process after this returns; the source is
         * dropped with the device. */
        return 0;
}

/* The device's seccomp filter stopped a call: the kernel says which (the
 * device cannot forge this), and the device dies for it. */
static int on_seccomp_notify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct managed_device *d = userdata;
        struct seccomp_notif *req = NULL;
        struct seccomp_notif_resp *resp = NULL;
        int r;

        if (!(revents & EPOLLIN)) {
                /* EPOLLHUP: no task uses the filter any more. */
                d->listener_source = sd_event_source_disable_unref(d->listener_source);
                return 0;
        }
        r = seccomp_notify_alloc(&req, &resp);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate a seccomp notification: %m");
        r = seccomp_notify_receive(fd, req);
        if (r < 0) {
                /* ENOENT: the caller died meanwhile. */
                seccomp_notify_free(req, resp);
                return 0;
        }
        if (!d->violation) {
                d->violation = seccomp_policy_syscall_name(req->data.arch, req->data.nr);
                log_warning("Device %s (%s, pid %d) called %s, which its policy %s does not allow: killing it.",
                            d->path, d->kind->name, (int) d->pid, d->violation ?: "a system call", d->seccomp_policy);
        }
        seccomp_notify_free(req, resp);
        /* Not yet reaped (we are its parent), so the pid is still its own. */
        if (device_running(d->state) && kill(d->pid, SIGKILL) < 0 && errno != ESRCH)
                log_warning_errno(errno, "Failed to kill device process %d: %m", (int) d->pid);
        return 0;
}

/* Only a seccomp listener is taken as one: anything else a device might
 * pass is refused. */
static bool fd_is_seccomp_listener(int fd) {
        char path[64], target[64];
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return false;
        target[n] = 0;
        return strcmp(target, "anon_inode:seccomp notify") == 0;
}

static bool fd_is_uffd(int fd) {
        char path[64], target[64];
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return false;
        target[n] = 0;
        return strcmp(target, "anon_inode:[userfaultfd]") == 0;
}

static int on_uffd_registered(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct managed_device *d = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint32_t index;
        int is_static;

        d->uffd_call = sd_bus_slot_unref(d->uffd_call);
        if (e) {
                log_warning("memmgr did not take the guest-memory uffd of %s (%s, VM %s), swapping the VM out is "
                            "refused or unsafe for it: %s", d->path, d->kind->name, d->vm, e->message ?: e->name);
                return 0;
        }
        if (sd_bus_message_read(reply, "ub", &index, &is_static) > 0)
                log_info("memmgr guards the guest memory of %s (VM %s) as uffd %" PRIu32 " (%s).", d->path, d->vm,
                         index, is_static ? "static" : "dynamic");
        return 0;
}

/* The device mapped guest memory and sends the uffd guarding it: memmgr
 * gets it with the pidfd we hold, which names the process for good. The
 * device may be compromised: memmgr checks the uffd and the base again. */
static void device_handle_uffd(struct managed_device *d, int fd, uint64_t base, uint64_t size) {
        _cleanup_close_ int uffd = fd;
        uint64_t page = (uint64_t) sysconf(_SC_PAGESIZE);
        int r;

        if (!d->kind->maps_guest_memory || d->uffd_reported || !device_running(d->state) || !fd_is_uffd(uffd) ||
            base == 0 || size == 0 || base % page != 0 || size % page != 0 || base + size < base) {
                log_warning("Device %s sent an unexpected guest-memory uffd (base 0x%" PRIx64 ", %" PRIu64
                            " bytes), ignored.", d->path, base, size);
                return;
        }
        d->uffd_reported = true;
        if (d->pidfd < 0) {
                log_warning("No pidfd for %s: its guest-memory uffd cannot go to memmgr.", d->path);
                return;
        }
        /* Asynchronous: memmgr may be slow or starting; the fds are
         * copied into the message, so ours closes now. */
        r = sd_bus_call_method_async(d->manager->bus, &d->uffd_call, MEMMGR_BUS_NAME, MEMMGR_PATH, MEMMGR_BUS_NAME,
                                     "RegisterDeviceUffd", on_uffd_registered, d, "shht", d->vm, uffd, d->pidfd,
                                     base);
        if (r < 0)
                log_warning_errno(r, "Failed to hand the guest-memory uffd of %s to memmgr: %m", d->path);
        else
                log_debug("Device %s mapped %" PRIu64 " bytes of guest memory at 0x%" PRIx64 ".", d->path, size, base);
}

/* The device asks for a connection to "<prefix>_<port>" (virtio-vsock:
 * its jail has no file system to connect in). The path comes from the
 * config devmgr validated; the device only picks the port, so it reaches
 * nothing its config did not name (docs/threat-model.md). Non-blocking: a
 * listener with a full backlog is EAGAIN, not a wait. */
static void device_handle_connect(struct managed_device *d, uint64_t cookie, uint32_t port) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int error = 0, n, r;

        if (!d->connect_prefix || !device_running(d->state)) {
                log_warning("Device %s asked for a connection, which its kind does not make: refused.", d->path);
                error = EPERM;
        } else {
                n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%" PRIu32, d->connect_prefix, port);
                if (n < 0 || (size_t) n >= sizeof(sa.sun_path))
                        error = ENAMETOOLONG;
                else {
                        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                                error = errno;
                                fd = safe_close(fd);
                        }
                }
                log_debug("Device %s: connect to %s: %s.", d->path, sa.sun_path, error ? strerror(error) : "connected");
        }
        r = device_report_send_connected(d->report_fd, cookie, port, error, fd);
        if (r < 0)
                log_warning_errno(r, "Failed to answer the connect request of %s: %m", d->path);
}

static void device_handle_report(struct managed_device *d, const struct device_report_msg *msg) {
        enum device_report_type type = msg->type;
        int fd = msg->fd, r;

        switch (type) {
        case DEVICE_REPORT_LISTENER:
                /* Sent once, by the jail, before the device read any request. */
                if (d->listener_fd >= 0 || d->state != DEVICE_CREATED || !fd_is_seccomp_listener(fd)) {
                        log_warning("Device %s sent an unexpected listener, ignored.", d->path);
                        safe_close(fd);
                        return;
                }
                d->listener_fd = fd;
                r = sd_event_add_io(d->manager->event, &d->listener_source, fd, EPOLLIN, on_seccomp_notify, d);
                if (r < 0) {
                        /* Without a reader, a violation blocks the device forever
                         * instead of killing it: better kill it now. */
                        log_error_errno(r, "Failed to watch the seccomp listener of %s, killing it: %m", d->path);
                        (void) kill(d->pid, SIGKILL);
                }
                return;
        case DEVICE_REPORT_ACTIVE:
                if (d->state != DEVICE_CREATED)
                        return;
                d->state = DEVICE_ACTIVE;
                log_debug("Device %s is active.", d->path);
                r = sd_bus_emit_properties_changed(d->manager->bus, d->path, "org.polyvm.Device1", "State", NULL);
                if (r < 0)
                        log_warning_errno(r, "Failed to emit PropertiesChanged for %s: %m", d->path);
                return;
        case DEVICE_REPORT_UFFD:
                device_handle_uffd(d, fd, msg->base, msg->size);
                return;
        case DEVICE_REPORT_CONNECT:
                device_handle_connect(d, msg->cookie, msg->port);
                return;
        default:
                safe_close(fd);
                log_warning("Device %s sent an unexpected report %u, ignored.", d->path, (unsigned) type);
                return;
        }
}

static void device_drain_reports(struct managed_device *d) {
        /* Bounded: a device cannot keep devmgr in here. */
        for (unsigned i = 0; d->report_fd >= 0 && i < 16; i++) {
                struct device_report_msg msg;
                int r;

                r = device_report_receive(d->report_fd, &msg);
                if (r == -EAGAIN)
                        return;
                if (r == -EBADMSG) {
                        log_warning("Device %s sent a malformed report, ignored.", d->path);
                        continue;
                }
                if (r < 0) {
                        /* Hung up: the process is gone or going. */
                        d->report_source = sd_event_source_disable_unref(d->report_source);
                        return;
                }
                device_handle_report(d, &msg);
        }
}

static int on_device_report(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        device_drain_reports(userdata);
        return 0;
}

/* The caller that created the device left the bus: nobody can use the
 * endpoint's other end through it any more. */
static int on_owner_gone(sd_bus_track *t, void *userdata) {
        struct managed_device *d = userdata;

        log_info("Owner of %s left the bus, destroying it.", d->path);
        device_remove(d);
        return 0;
}

static int property_get_kinds(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct device_kind *const *kinds;
        size_t n;
        int r;

        kinds = device_kind_list(&n);
        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = sd_bus_message_append(reply, "s", kinds[i]->name);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static bool vm_name_valid(const char *vm) {
        size_t n = strlen(vm);

        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) vm[i] < 0x20 || vm[i] == 0x7f || vm[i] == '/')
                        return false;
        return true;
}

static int kinds_joined(char *buf, size_t len) {
        const struct device_kind *const *kinds;
        size_t n, off = 0;

        kinds = device_kind_list(&n);
        buf[0] = 0;
        for (size_t i = 0; i < n && off < len; i++)
                off += (size_t) snprintf(buf + off, len - off, "%s%s", i ? ", " : "", kinds[i]->name);
        return 0;
}

/* A started process becomes a managed object watched like a device:
 * its exit, its report channel (the listener), its log, its caller. */
static int manager_register_process(struct manager *m, sd_bus_message *msg, const struct device_kind *kind,
                                    const char *vm, const struct device_process *proc, char **policy_path,
                                    struct managed_device **ret, sd_bus_error *error) {
        struct managed_device *d;
        int r;

        if (!proc->userns)
                m->userns_refused = true;
        d = calloc(1, sizeof(*d));
        if (!d) {
                kill(proc->pid, SIGKILL);
                (void) waitpid(proc->pid, NULL, 0);
                safe_close(proc->report);
                safe_close(proc->log);
                return -ENOMEM;
        }
        d->manager = m;
        d->id = m->next_id++;
        d->kind = kind;
        d->pid = proc->pid;
        d->userns = proc->userns;
        d->report_fd = proc->report;
        d->listener_fd = -1;
        d->pidfd = (int) syscall(SYS_pidfd_open, proc->pid, 0);
        if (d->pidfd < 0)
                log_warning_errno(errno, "Failed to open a pidfd for process %d: %m", (int) proc->pid);
        d->state = DEVICE_CREATED;
        d->vm = strdup(vm);
        d->seccomp_policy = TAKE_PTR(*policy_path);
        if (asprintf(&d->path, DEVICE_PATH_PREFIX "/%u", d->id) < 0)
                d->path = NULL;
        if (!d->vm || !d->path) {
                safe_close(proc->log);
                device_free(d);
                return -ENOMEM;
        }
        r = device_log_new(m->event, proc->log, d->path, &d->log);
        if (r < 0)
                log_warning_errno(r, "Failed to read the log of %s, it is lost: %m", d->path);
        d->next = m->devices;
        m->devices = d;

        r = sd_event_add_child(m->event, &d->child_source, d->pid, WEXITED, on_device_exit, d);
        if (r >= 0)
                r = sd_event_add_io(m->event, &d->report_source, d->report_fd, EPOLLIN, on_device_report, d);
        if (r >= 0)
                r = sd_bus_track_new(m->bus, &d->track, on_owner_gone, d);
        if (r >= 0)
                r = sd_bus_track_add_sender(d->track, msg);
        if (r < 0) {
                device_remove(d);
                return bus_error_from_errno(error, r, "Failed to watch the process");
        }
        r = sd_bus_emit_interfaces_added(m->bus, d->path, "org.polyvm.Device1", NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to emit InterfacesAdded for %s: %m", d->path);
        *ret = d;
        return 0;
}

static int method_create_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_(json_object_putp) json_object *config = NULL;
        _cleanup_(seccomp_policy_done) struct seccomp_policy policy = {};
        _cleanup_close_ int endpoint = -1;
        const char *vm, *kind_name, *config_json;
        const struct device_kind *kind;
        struct managed_device *d;
        struct device_process proc;
        struct jail_config jail;
        _cleanup_free_ char *policy_path = NULL, *connect_prefix = NULL;
        void *dev = NULL;
        char err[512], name[64];
        int r;

        r = sd_bus_message_read(msg, "sss", &vm, &kind_name, &config_json);
        if (r < 0)
                return r;

        if (!vm_name_valid(vm))
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS,
                                         "vm: '%s' is not a VM name (1..64 printable characters, no '/')", vm);
        kind = device_kind_find(kind_name);
        if (!kind) {
                kinds_joined(err, sizeof(err));
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS, "kind: unknown device kind '%s' (known: %s)",
                                         kind_name, err);
        }

        /* An empty config means all defaults. */
        r = json_parse_object(config_json[0] ? config_json : "{}", &config, err, sizeof(err));
        if (r < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_CONFIG, "%s", err);
        err[0] = 0;
        r = kind->create(config, &dev, err, sizeof(err));
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_CONFIG, "%s", err[0] ? err : strerror(-r));
        if (kind->connect_prefix && kind->connect_prefix(dev)) {
                connect_prefix = strdup(kind->connect_prefix(dev));
                if (!connect_prefix) {
                        kind->destroy(dev);
                        return -ENOMEM;
                }
        }

        r = seccomp_policy_load(m->seccomp_dir, kind->seccomp_policy, &policy, err, sizeof(err));
        if (r < 0) {
                kind->destroy(dev);
                log_error("Cannot load the seccomp policy of %s: %s", kind->name, err);
                return sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "seccomp policy of %s: %s", kind->name, err);
        }

        policy.uffd_ioctls = kind->maps_guest_memory;
        if (asprintf(&policy_path, "%s/%s.policy", m->seccomp_dir, kind->seccomp_policy) < 0) {
                kind->destroy(dev);
                return -ENOMEM;
        }

        /* Ids of its own on the host, limits of its kind. */
        jail = (struct jail_config) {
                .userns = !m->userns_refused,
                .host_uid = JAIL_HOST_ID_BASE + m->next_id % JAIL_HOST_ID_COUNT,
                .host_gid = JAIL_HOST_ID_BASE + m->next_id % JAIL_HOST_ID_COUNT,
                .rlimit_as = kind->rlimit_as,
                .rlimit_nofile = kind->rlimit_nofile,
                .rlimit_nproc = kind->rlimit_nproc,
        };
        snprintf(name, sizeof(name), "%s#%u", kind->name, m->next_id);
        r = device_spawn(kind, dev, &policy, &jail, name, &proc);
        /* The child has its own copy; ours was only the template. */
        kind->destroy(dev);
        if (r < 0)
                return bus_error_from_errno(error, r, "Failed to start the device process");
        endpoint = proc.endpoint;
        r = manager_register_process(m, msg, kind, vm, &proc, &policy_path, &d, error);
        if (r < 0)
                return r;
        d->connect_prefix = TAKE_PTR(connect_prefix);
        log_info("Created %s: %s for %s, pid %d, uid %u, namespaces %s.", d->path, kind->name, vm, (int) d->pid,
                 (unsigned) jail.host_uid, jail_namespaces_string(d->userns));

        return sd_bus_reply_method_return(msg, "ohu", d->path, endpoint, (uint32_t) d->pid);
}

static int method_destroy_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct managed_device *d;
        const char *path;
        int r;

        r = sd_bus_message_read(msg, "o", &path);
        if (r < 0)
                return r;
        d = device_by_path(m, path);
        if (!d)
                return sd_bus_error_setf(error, POLYVM_ERROR_NO_SUCH_DEVICE, "device: no device %s", path);
        device_remove(d);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_list_devices(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ossu)");
        if (r < 0)
                return r;
        for (struct managed_device *d = m->devices; d; d = d->next) {
                r = sd_bus_message_append(reply, "(ossu)", d->path, d->kind->name, d->vm, (uint32_t) d->pid);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Plugins (plugin-spawn.h): a Device1 of kind "plugin", not one of Kinds
 * (CreateDevice cannot make one), with the same exit reporting as a
 * device and a stop with a grace period. */

static const struct device_kind plugin_kind = {
        .name = "plugin",
        .seccomp_policy = "plugin",
};

#define PLUGIN_STOP_GRACE_DEFAULT_USEC (1000 * 1000ULL)
#define PLUGIN_STOP_GRACE_MAX_USEC (60 * 1000 * 1000ULL)

static void strv_freep(char ***p) {
        if (!*p)
                return;
        for (char **s = *p; *s; s++)
                free(*s);
        free(*p);
}

/* CreatePlugin's "ah files": the fds stay the message's. More than
 * PLUGIN_FILES_MAX is refused here, before anything is looked at. */
static int plugin_read_files(sd_bus_message *msg, int *files, size_t *ret_n, sd_bus_error *error) {
        size_t n = 0;
        int fd, r;

        r = sd_bus_message_enter_container(msg, 'a', "h");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read_basic(msg, 'h', &fd)) > 0) {
                if (n >= PLUGIN_FILES_MAX)
                        return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS,
                                                 "files: more than %d fds (the limit)", PLUGIN_FILES_MAX);
                files[n++] = fd;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        *ret_n = n;
        return 0;
}

static int method_create_plugin(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_(seccomp_policy_done) struct seccomp_policy policy = {};
        _cleanup_(strv_freep) char **args = NULL, **extra = NULL;
        _cleanup_free_ char *policy_path = NULL;
        _cleanup_close_ int exe = -1;
        const char *vm, *path;
        struct managed_device *d = NULL;
        struct device_process proc;
        struct jail_config jail;
        char err[512], name[64];
        int sock, files[PLUGIN_FILES_MAX], r;
        size_t n_files = 0;

        r = sd_bus_message_read(msg, "ss", &vm, &path);
        if (r >= 0)
                r = sd_bus_message_read_strv(msg, &args);
        if (r >= 0)
                r = sd_bus_message_read(msg, "h", &sock);
        if (r >= 0)
                r = sd_bus_message_read_strv(msg, &extra);
        if (r >= 0)
                r = plugin_read_files(msg, files, &n_files, error);
        if (r < 0)
                return r;

        if (!vm_name_valid(vm))
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS,
                                         "vm: '%s' is not a VM name (1..64 printable characters, no '/')", vm);
        if (plugin_check_args(args, err, sizeof(err)) < 0 || plugin_check_socket(sock, err, sizeof(err)) < 0 ||
            plugin_check_files(files, n_files, err, sizeof(err)) < 0 ||
            plugin_open_executable(path, &exe, err, sizeof(err)) < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS, "%s", err);

        r = seccomp_policy_load(m->seccomp_dir, plugin_kind.seccomp_policy, &policy, err, sizeof(err));
        if (r < 0) {
                log_error("Cannot load the seccomp policy of plugins: %s", err);
                return sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "seccomp policy of plugins: %s", err);
        }
        r = plugin_policy_add_extra(&policy, extra, err, sizeof(err));
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, r == -EPERM ? POLYVM_ERROR_NOT_PERMITTED : POLYVM_ERROR_INVALID_ARGS,
                                         "%s", err);
        if (asprintf(&policy_path, "%s/%s.policy", m->seccomp_dir, plugin_kind.seccomp_policy) < 0)
                return -ENOMEM;

        jail = (struct jail_config) {
                .userns = !m->userns_refused,
                .host_uid = JAIL_HOST_ID_BASE + m->next_id % JAIL_HOST_ID_COUNT,
                .host_gid = JAIL_HOST_ID_BASE + m->next_id % JAIL_HOST_ID_COUNT,
                .rlimit_nofile = PLUGIN_NOFILE,
                .rlimit_nproc = PLUGIN_NPROC,
                /* It sizes memfds of its own for guest memory; its root
                 * is read-only, so no other file can grow. */
                .rlimit_fsize = RLIM_INFINITY,
        };
        snprintf(name, sizeof(name), "plugin#%u", m->next_id);
        r = plugin_spawn(exe, path, args, sock, files, n_files, &policy, &jail, name, &proc);
        if (r < 0)
                return bus_error_from_errno(error, r, "Failed to start the plugin process");
        r = manager_register_process(m, msg, &plugin_kind, vm, &proc, &policy_path, &d, error);
        if (r < 0)
                return r;
        log_info("Created %s: plugin %s for %s, pid %d, uid %u, namespaces %s, %zu files.", d->path, path, vm,
                 (int) d->pid, (unsigned) jail.host_uid, jail_namespaces_string(d->userns), n_files);
        return sd_bus_reply_method_return(msg, "ou", d->path, (uint32_t) d->pid);
}

/* The plugin is gone (or removed): answer StopPlugin with how it ended. */
static void plugin_stop_done(struct managed_device *d) {
        d->stop_timer = sd_event_source_disable_unref(d->stop_timer);
        if (!d->stop_call)
                return;
        if (device_running(d->state))
                (void) sd_bus_reply_method_errorf(d->stop_call, POLYVM_ERROR_NO_SUCH_DEVICE,
                                                  "device: %s was removed while stopping", d->path);
        else
                (void) sd_bus_reply_method_return(d->stop_call, "s", d->exit_reason ?: "");
        d->stop_call = sd_bus_message_unref(d->stop_call);
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct managed_device *d = userdata;

        d->stop_timer = sd_event_source_disable_unref(d->stop_timer);
        if (!device_running(d->state))
                return 0;
        log_warning("Plugin %s (pid %d) still runs %" PRIu64 " ms after SIGTERM: killing it.", d->path, (int) d->pid,
                    d->stop_grace_usec / 1000);
        d->stop_timed_out = true;
        if (kill(d->pid, SIGKILL) < 0 && errno != ESRCH)
                log_warning_errno(errno, "Failed to kill plugin process %d: %m", (int) d->pid);
        return 0;
}

static int method_stop_plugin(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct managed_device *d;
        const char *path;
        uint64_t grace;
        int r;

        r = sd_bus_message_read(msg, "ot", &path, &grace);
        if (r < 0)
                return r;
        d = device_by_path(m, path);
        if (!d)
                return sd_bus_error_setf(error, POLYVM_ERROR_NO_SUCH_DEVICE, "device: no device %s", path);
        if (d->kind != &plugin_kind)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS,
                                         "device: %s is a %s device, not a plugin (use DestroyDevice)", path,
                                         d->kind->name);
        if (grace > PLUGIN_STOP_GRACE_MAX_USEC)
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS, "grace_usec: %" PRIu64 " is more than %llu",
                                         grace, PLUGIN_STOP_GRACE_MAX_USEC);
        if (!device_running(d->state))
                return sd_bus_reply_method_return(msg, "s", d->exit_reason ?: "");
        if (d->stop_call)
                return sd_bus_error_setf(error, POLYVM_ERROR_BAD_STATE, "device: %s is already being stopped", path);

        d->stop_grace_usec = grace ?: PLUGIN_STOP_GRACE_DEFAULT_USEC;
        r = sd_event_add_time_relative(m->event, &d->stop_timer, CLOCK_MONOTONIC, d->stop_grace_usec, 0,
                                       on_stop_timeout, d);
        if (r < 0)
                return bus_error_from_errno(error, r, "Failed to arm the stop timer");
        if (kill(d->pid, SIGTERM) < 0 && errno != ESRCH) {
                r = -errno;
                d->stop_timer = sd_event_source_disable_unref(d->stop_timer);
                return bus_error_from_errno(error, r, "Failed to signal the plugin");
        }
        log_info("Stopping plugin %s (pid %d), %" PRIu64 " ms of grace.", d->path, (int) d->pid,
                 d->stop_grace_usec / 1000);
        /* Answered by plugin_stop_done() once the process is reaped. */
        d->stop_call = sd_bus_message_ref(msg);
        return 1;
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Kinds", "as", property_get_kinds, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("CreateDevice",
                                SD_BUS_ARGS("s", vm, "s", kind, "s", config_json),
                                SD_BUS_RESULT("o", device, "h", endpoint, "u", pid),
                                method_create_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DestroyDevice", SD_BUS_ARGS("o", device), SD_BUS_NO_RESULT,
                                method_destroy_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListDevices", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ossu)", devices),
                                method_list_devices, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreatePlugin",
                                SD_BUS_ARGS("s", vm, "s", path, "as", args, "h", socket, "as", extra_syscalls,
                                            "ah", files),
                                SD_BUS_RESULT("o", device, "u", pid),
                                method_create_plugin, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StopPlugin", SD_BUS_ARGS("o", device, "t", grace_usec),
                                SD_BUS_RESULT("s", exit_reason),
                                method_stop_plugin, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int property_get_kind(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct managed_device *d = userdata;
        return sd_bus_message_append(reply, "s", d->kind->name);
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct managed_device *d = userdata;
        return sd_bus_message_append(reply, "s", device_state_names[d->state]);
}

static int property_get_exit_reason(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct managed_device *d = userdata;
        return sd_bus_message_append(reply, "s", d->exit_reason ?: "");
}

static int property_get_pid(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct managed_device *d = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) d->pid);
}

static int property_get_namespaces(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct managed_device *d = userdata;
        return sd_bus_message_append(reply, "s", jail_namespaces_string(d->userns));
}

static const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Kind", "s", property_get_kind, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Vm", "s", NULL, offsetof(struct managed_device, vm), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Pid", "u", property_get_pid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ExitReason", "s", property_get_exit_reason, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SeccompPolicy", "s", NULL, offsetof(struct managed_device, seccomp_policy),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Namespaces", "s", property_get_namespaces, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_SIGNAL_WITH_ARGS("Failed", SD_BUS_ARGS("s", reason), 0),
        SD_BUS_VTABLE_END,
};

static int device_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                       sd_bus_error *error) {
        struct managed_device *d = device_by_path(userdata, path);

        if (!d)
                return 0;
        *found = d;
        return 1;
}

static int device_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        struct manager *m = userdata;
        size_t n = 0, i = 0;
        char **l;

        for (struct managed_device *d = m->devices; d; d = d->next)
                n++;
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (struct managed_device *d = m->devices; d; d = d->next) {
                l[i] = strdup(d->path);
                if (!l[i]) {
                        while (i > 0)
                                free(l[--i]);
                        free(l);
                        return -ENOMEM;
                }
                i++;
        }
        *nodes = l;
        return 0;
}

int manager_setup(sd_bus *bus, sd_event *event, void *userdata) {
        struct manager *m = userdata;
        int r;

        m->bus = bus;
        m->event = event;
        m->next_id = 1;

        r = seccomp_policy_dir(&m->seccomp_dir);
        if (r < 0)
                return log_error_errno(r, "Failed to find the seccomp policy directory: %m");
        log_info("Reading seccomp policies from %s.", m->seccomp_dir);

        r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to watch termination signals: %m");

        r = sd_bus_add_object_vtable(bus, NULL, MANAGER_PATH, "org.polyvm.DeviceManager1", manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the manager object: %m");
        r = sd_bus_add_fallback_vtable(bus, NULL, DEVICE_PATH_PREFIX, "org.polyvm.Device1", device_vtable,
                                       device_find, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add device objects: %m");
        r = sd_bus_add_node_enumerator(bus, NULL, DEVICE_PATH_PREFIX, device_enumerate, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the device enumerator: %m");
        r = sd_bus_add_object_manager(bus, NULL, MANAGER_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to add the object manager: %m");
        return 0;
}

void manager_done(struct manager *m) {
        /* The bus is gone by now: nobody to tell, just kill and reap. */
        m->bus = NULL;
        while (m->devices) {
                struct managed_device *d = m->devices;
                m->devices = d->next;
                device_free(d);
        }
        free(m->seccomp_dir);
        m->seccomp_dir = NULL;
}
