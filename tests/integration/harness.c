/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>

#include "bus-util.h"
#include "harness.h"

char *harness_build_path(const char *relative) {
        const char *root = g_getenv("POLYVM_BUILD_ROOT");

        g_assert_nonnull(root);
        return g_build_filename(root, relative, NULL);
}

/* A test that fails aborts without harness_stop(): the daemon (and with it
 * the services it activated) must not outlive it. */
static void die_with_parent(gpointer userdata) {
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
}

void harness_start(struct harness *h) {
        g_autofree char *conf = harness_build_path("dbus/polyvm-bus.conf");
        g_autoptr(GError) error = NULL;
        char *argv[] = { "dbus-daemon", "--nofork", "--print-address", "--config-file", conf, NULL };
        int out_fd;
        char buf[512];
        size_t n = 0;
        int r;

        memset(h, 0, sizeof(*h));
        g_assert_true(g_file_test(conf, G_FILE_TEST_EXISTS));
        if (!g_getenv("STATE_DIRECTORY")) {
                h->state_dir = g_dir_make_tmp("polyvm-state-XXXXXX", &error);
                g_assert_no_error(error);
                g_setenv("STATE_DIRECTORY", h->state_dir, TRUE);
        }
        g_assert_true(g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD,
                                               die_with_parent, NULL, &h->daemon_pid, NULL, &out_fd, NULL, &error));
        g_assert_no_error(error);

        /* The daemon prints its address once it listens. */
        while (n < sizeof(buf) - 1) {
                ssize_t k = read(out_fd, buf + n, 1);
                g_assert_cmpint(k, ==, 1);
                if (buf[n] == '\n')
                        break;
                n++;
        }
        buf[n] = 0;
        close(out_fd);
        h->address = g_strdup(buf);
        g_assert_cmpuint(strlen(h->address), >, 0);

        r = bus_open(h->address, &h->bus);
        g_assert_cmpint(r, >=, 0);
}

void harness_stop(struct harness *h) {
        int status;

        if (h->bus)
                h->bus = sd_bus_flush_close_unref(h->bus);
        if (h->daemon_pid > 0) {
                kill(h->daemon_pid, SIGTERM);
                (void) waitpid(h->daemon_pid, &status, 0);
                g_spawn_close_pid(h->daemon_pid);
                h->daemon_pid = 0;
        }
        g_clear_pointer(&h->address, g_free);
        if (h->state_dir) {
                g_autoptr(GDir) dir = g_dir_open(h->state_dir, 0, NULL);
                const char *name;

                /* Swap files a killed memmgr could not remove. */
                while (dir && (name = g_dir_read_name(dir))) {
                        g_autofree char *path = g_build_filename(h->state_dir, name, NULL);
                        (void) unlink(path);
                }
                (void) rmdir(h->state_dir);
                g_unsetenv("STATE_DIRECTORY");
                g_clear_pointer(&h->state_dir, g_free);
        }
}

pid_t harness_name_pid(struct harness *h, const char *name) {
        sd_bus_creds *creds = NULL;
        pid_t pid = 0;

        if (sd_bus_get_name_creds(h->bus, name, SD_BUS_CREDS_PID, &creds) < 0)
                return 0;
        if (sd_bus_creds_get_pid(creds, &pid) < 0)
                pid = 0;
        sd_bus_creds_unref(creds);
        return pid;
}

gboolean harness_pid_alive(pid_t pid) {
        g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int) pid);
        g_autofree char *stat = NULL;
        const char *p;

        if (!g_file_get_contents(path, &stat, NULL, NULL))
                return FALSE;
        p = strrchr(stat, ')');
        return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

gboolean harness_wait_pid_gone(pid_t pid, int timeout_ms) {
        for (int waited = 0; waited < timeout_ms; waited += 20) {
                if (!harness_pid_alive(pid))
                        return TRUE;
                g_usleep(20 * 1000);
        }
        return !harness_pid_alive(pid);
}

gboolean harness_expect(int fd, GString *log, size_t *pos, const char *needle, int timeout_ms) {
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;

        for (;;) {
                const char *hit = strstr(log->str + *pos, needle);
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                gint64 left;
                char buf[4096];
                ssize_t n;

                if (hit) {
                        *pos = (size_t) (hit - log->str) + strlen(needle);
                        return TRUE;
                }
                left = (deadline - g_get_monotonic_time()) / 1000;
                if (left <= 0)
                        return FALSE;
                if (poll(&pfd, 1, (int) left) <= 0)
                        continue;
                n = read(fd, buf, sizeof(buf));
                if (n <= 0)
                        return strstr(log->str + *pos, needle) != NULL;
                g_string_append_len(log, buf, n);
        }
}

char *harness_call_error(struct harness *h, const char *dest, const char *path, const char *iface,
                         const char *member, char **message, const char *types, ...) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        char *name = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(h->bus, &m, dest, path, iface, member);
        g_assert_cmpint(r, >=, 0);
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                g_assert_cmpint(r, >=, 0);
        }
        r = sd_bus_call(h->bus, m, 60 * 1000 * 1000, &error, &reply);
        if (r < 0) {
                name = g_strdup(error.name ?: "(none)");
                if (message)
                        *message = g_strdup(error.message ?: "");
        } else if (message)
                *message = NULL;
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        return name;
}

char *harness_get_string(struct harness *h, const char *dest, const char *path, const char *iface,
                         const char *property) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *value = NULL, *copy;
        int r;

        r = sd_bus_get_property_string(h->bus, dest, path, iface, property, &error, &value);
        sd_bus_error_free(&error);
        if (r < 0)
                return NULL;
        copy = g_strdup(value);
        free(value);
        return copy;
}

gboolean harness_wait_property(struct harness *h, const char *dest, const char *path, const char *iface,
                               const char *property, const char *value, int timeout_ms) {
        for (int waited = 0;; waited += 50) {
                g_autofree char *v = harness_get_string(h, dest, path, iface, property);
                if (v && strcmp(v, value) == 0)
                        return TRUE;
                if (waited >= timeout_ms)
                        return FALSE;
                g_usleep(50 * 1000);
        }
}

void harness_compare_interface(struct harness *h, const char *dest, const char *path, const char *iface) {
        g_autofree char *xml_path = NULL, *xml = NULL, *live = NULL;
        g_autoptr(GDBusNodeInfo) want = NULL, got = NULL;
        g_autoptr(GError) gerror = NULL;
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *text;
        GDBusInterfaceInfo *wi, *gi;

        xml_path = g_strdup_printf("%s/dbus/%s.xml", g_getenv("POLYVM_SOURCE_ROOT"), iface);
        g_assert_true(g_file_get_contents(xml_path, &xml, NULL, NULL));
        want = g_dbus_node_info_new_for_xml(xml, &gerror);
        g_assert_no_error(gerror);

        g_assert_cmpint(sd_bus_call_method(h->bus, dest, path, "org.freedesktop.DBus.Introspectable", "Introspect",
                                           &error, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "s", &text), >=, 0);
        got = g_dbus_node_info_new_for_xml(text, &gerror);
        g_assert_no_error(gerror);
        sd_bus_message_unref(reply);

        wi = g_dbus_node_info_lookup_interface(want, iface);
        gi = g_dbus_node_info_lookup_interface(got, iface);
        g_assert_nonnull(wi);
        g_assert_nonnull(gi);

        for (GDBusMethodInfo **m = wi->methods; m && *m; m++) {
                GDBusMethodInfo *gm = g_dbus_interface_info_lookup_method(gi, (*m)->name);
                g_test_message("%s.%s", iface, (*m)->name);
                g_assert_nonnull(gm);
                for (int dir = 0; dir < 2; dir++) {
                        GDBusArgInfo **wa = dir ? (*m)->out_args : (*m)->in_args;
                        GDBusArgInfo **ga = dir ? gm->out_args : gm->in_args;
                        size_t i = 0;
                        for (; wa && wa[i]; i++) {
                                g_assert_nonnull(ga);
                                g_assert_nonnull(ga[i]);
                                g_assert_cmpstr(wa[i]->signature, ==, ga[i]->signature);
                        }
                        g_assert_true(!ga || !ga[i]);
                }
        }
        for (GDBusMethodInfo **m = gi->methods; m && *m; m++)
                g_assert_nonnull(g_dbus_interface_info_lookup_method(wi, (*m)->name));
        for (GDBusPropertyInfo **p = wi->properties; p && *p; p++) {
                GDBusPropertyInfo *gp = g_dbus_interface_info_lookup_property(gi, (*p)->name);
                g_test_message("%s.%s", iface, (*p)->name);
                g_assert_nonnull(gp);
                g_assert_cmpstr((*p)->signature, ==, gp->signature);
                g_assert_cmpint((*p)->flags, ==, gp->flags);
        }
        for (GDBusPropertyInfo **p = gi->properties; p && *p; p++)
                g_assert_nonnull(g_dbus_interface_info_lookup_property(wi, (*p)->name));
        for (GDBusSignalInfo **s = wi->signals; s && *s; s++)
                g_assert_nonnull(g_dbus_interface_info_lookup_signal(gi, (*s)->name));
        for (GDBusSignalInfo **s = gi->signals; s && *s; s++)
                g_assert_nonnull(g_dbus_interface_info_lookup_signal(wi, (*s)->name));
        sd_bus_error_free(&error);
}

int harness_allocate_memory(struct harness *h, const char *vm, uint64_t size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        int fd;

        if (sd_bus_call_method(h->bus, "org.polyvm.MemoryManager1", "/org/polyvm/MemoryManager1",
                               "org.polyvm.MemoryManager1", "AllocateMemory", &error, &reply, "st", vm, size) < 0)
                g_error("AllocateMemory(%s, %" G_GUINT64_FORMAT "): %s: %s", vm, size, error.name, error.message);
        g_assert_cmpint(sd_bus_message_read(reply, "oh", &path, &fd), >, 0);
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        g_assert_cmpint(fd, >=, 0);
        sd_bus_message_unref(reply);
        return fd;
}

void *harness_map_guarded_memory(struct harness *h, const char *vm, uint64_t size, int *ret_memfd) {
        struct uffdio_api api = { .api = UFFD_API };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int memfd = harness_allocate_memory(h, vm, size), uffd;
        void *mem;

        mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        g_assert_true(mem != MAP_FAILED);
        /* A uffd with no range: memmgr registers it when it swaps. */
        uffd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        g_assert_cmpint(uffd, >=, 0);
        g_assert_cmpint(ioctl(uffd, UFFDIO_API, &api), ==, 0);
        if (sd_bus_call_method(h->bus, "org.polyvm.MemoryManager1", "/org/polyvm/MemoryManager1",
                               "org.polyvm.MemoryManager1", "RegisterUffd", &error, NULL, "sht", vm, uffd,
                               (uint64_t) (uintptr_t) mem) < 0)
                g_error("RegisterUffd(%s): %s: %s", vm, error.name, error.message);
        close(uffd);
        *ret_memfd = memfd;
        return mem;
}

char *harness_memory_path(const char *vm) {
        char *p = NULL;

        g_assert_cmpint(sd_bus_path_encode("/org/polyvm/MemoryManager1/vm", vm, &p), >=, 0);
        return p;
}

uint64_t harness_memory_u64(struct harness *h, const char *path, const char *property) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t v = 0;

        if (sd_bus_get_property_trivial(h->bus, "org.polyvm.MemoryManager1", path, "org.polyvm.Memory1", property,
                                        &error, 't', &v) < 0)
                g_error("%s %s: %s: %s", path, property, error.name, error.message);
        return v;
}

void harness_wait_swap_state(struct harness *h, const char *path, const char *state) {
        if (!harness_wait_property(h, "org.polyvm.MemoryManager1", path, "org.polyvm.Memory1", "SwapState", state,
                                   60000)) {
                g_autofree char *now = harness_get_string(h, "org.polyvm.MemoryManager1", path, "org.polyvm.Memory1",
                                                          "SwapState");
                g_autofree char *err = harness_get_string(h, "org.polyvm.MemoryManager1", path, "org.polyvm.Memory1",
                                                          "LastError");
                g_error("%s: SwapState is %s, not %s (LastError: %s)", path, now, state, err);
        }
}

void harness_devmgr_start(struct harness *h, struct harness_devmgr *d) {
        g_autofree char *exe = harness_build_path("services/devmgr/polyvm-devmgr");
        g_autofree char *bus = g_strdup_printf("--bus=%s", h->address);
        char *argv[] = { exe, bus, NULL };
        g_autoptr(GError) error = NULL;

        *d = (struct harness_devmgr) { .log_fd = -1 };
        g_assert_true(g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &d->pid,
                                               NULL, NULL, &d->log_fd, &error));
        g_assert_no_error(error);
        d->log = g_string_new(NULL);
        g_assert_true(harness_expect(d->log_fd, d->log, &d->pos, "Reading seccomp policies", 10000));
        for (int i = 0; i < 500 && harness_name_pid(h, "org.polyvm.DeviceManager1") != d->pid; i++)
                g_usleep(10 * 1000);
        g_assert_cmpint(harness_name_pid(h, "org.polyvm.DeviceManager1"), ==, d->pid);
}

void harness_devmgr_stop(struct harness_devmgr *d) {
        int status;

        kill(d->pid, SIGTERM);
        g_assert_cmpint(waitpid(d->pid, &status, 0), ==, d->pid);
        g_assert_true(WIFEXITED(status));
        close(d->log_fd);
        g_string_free(d->log, TRUE);
        *d = (struct harness_devmgr) { .log_fd = -1 };
}
