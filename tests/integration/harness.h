/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A private bus for one integration test: a real dbus-daemon started from
 * build/dbus/polyvm-bus.conf, on which the real services are activated. */

#include <glib.h>
#include <systemd/sd-bus.h>

struct harness {
        GPid daemon_pid;
        char *address; /* give it to clients as --bus=ADDRESS */
        sd_bus *bus;
        char *state_dir; /* made for this run if $STATE_DIRECTORY was unset; removed at stop */
};

/* Starts the daemon and connects h->bus; fails the test on any error.
 * Services it activates inherit the environment: unless the test set
 * $STATE_DIRECTORY, it points at a fresh temporary directory, so that no
 * test writes to /var/lib/polyvm. */
void harness_start(struct harness *h);

/* Disconnects and stops the daemon; activated services exit with their bus. */
void harness_stop(struct harness *h);

/* Path of a file in the build tree (POLYVM_BUILD_ROOT), e.g. "guest/polyvm-testguest". */
char *harness_build_path(const char *relative);

/* pid of the process owning name on h's bus, or 0 if none. */
pid_t harness_name_pid(struct harness *h, const char *name);

/* Whether /proc/<pid> exists and is not a zombie. */
gboolean harness_pid_alive(pid_t pid);

/* Waits up to timeout_ms for pid to be gone; returns whether it is. */
gboolean harness_wait_pid_gone(pid_t pid, int timeout_ms);

/* Reads from fd (appending to *log) until needle appears after position
 * *pos of the log or timeout_ms passes; returns whether it appeared and
 * moves *pos past it. */
gboolean harness_expect(int fd, GString *log, size_t *pos, const char *needle, int timeout_ms);

/* Calls a method returning nothing; returns the D-Bus error name or NULL.
 * The caller frees *message if non-NULL. */
char *harness_call_error(struct harness *h, const char *dest, const char *path, const char *iface,
                         const char *member, char **message, const char *types, ...);

/* Property of a polyvm object as a newly allocated string ("s" properties). */
char *harness_get_string(struct harness *h, const char *dest, const char *path, const char *iface,
                         const char *property);

/* Waits until the string property equals value; returns whether it did. */
gboolean harness_wait_property(struct harness *h, const char *dest, const char *path, const char *iface,
                               const char *property, const char *value, int timeout_ms);

/* Fails the test unless what dest serves at path for iface has the methods,
 * arguments, properties (type and access) and signals of dbus/<iface>.xml. */
void harness_compare_interface(struct harness *h, const char *dest, const char *path, const char *iface);

/* AllocateMemory(vm, size) on memmgr; fails the test on error. Returns our
 * own copy of the memfd. */
int harness_allocate_memory(struct harness *h, const char *vm, uint64_t size);

/* As the launcher does: AllocateMemory(vm, size), maps the memfd and
 * registers a main uffd for that mapping (RegisterUffd). Returns the
 * mapping; *ret_memfd is our own copy of the memfd. */
void *harness_map_guarded_memory(struct harness *h, const char *vm, uint64_t size, int *ret_memfd);

/* /org/polyvm/MemoryManager1/vm/<escaped vm>, newly allocated. */
char *harness_memory_path(const char *vm);

/* A `t` property of memmgr's Memory1 object at path; fails the test on error. */
uint64_t harness_memory_u64(struct harness *h, const char *path, const char *property);

/* Waits up to 60 s for Memory1.SwapState at path to be state; fails the
 * test otherwise, saying the state it is in and LastError. */
void harness_wait_swap_state(struct harness *h, const char *path, const char *state);

/* devmgr started by the test itself rather than by bus activation, so that
 * the test reads its log (stderr: what it says about its device and plugin
 * processes, and what they print). */
struct harness_devmgr {
        GPid pid;
        int log_fd;
        GString *log;
        size_t pos; /* for harness_expect() */
};

/* Starts it on h's bus and waits until it owns its name. */
void harness_devmgr_start(struct harness *h, struct harness_devmgr *d);
/* SIGTERM; fails the test unless it exits by itself. */
void harness_devmgr_stop(struct harness_devmgr *d);
