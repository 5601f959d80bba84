/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The userfaultfds that guard one VM's memory (docs/memmgr.md, "The uffd
 * list"). Index 0 is the main (launcher's) uffd. The first entries are
 * static (the launcher and the devices the VM was built with) and stay for
 * the VM's life; later ones are dynamic (hot-plugged devices) and are
 * garbage-collected by swap-remove when their process has died.
 *
 * Every entry is in the list's own epoll set with data.u64 equal to its
 * index, and a collection rewrites the moved entry's token. Because the set
 * is level-triggered and a caller handles a whole uffd_list_wait() batch
 * before the next collection, an event always names the right entry, also
 * for an entry that was readable before it moved. The logic does not care
 * what the fds are, so tests drive it with eventfds. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* Bounds what callers on the bus can make us hold. */
#define UFFD_LIST_MAX 1024

struct uffd_entry {
        int fd;                     /* the userfaultfd; owned */
        int pidfd;                  /* its process, or -1; owned */
        pid_t pid;                  /* its process for display, 0 if unknown */
        bool is_static;
        bool dead;                  /* an ioctl on it said ESRCH: its mm is gone */
        bool exited;                /* its pidfd said the process exited */
        uint64_t base;              /* where its creator mapped guest offset 0 */
        bool registered;            /* swap registered [base, base + size) on it */
        uint64_t faults;            /* faults served through it */
        sd_event_source *exit_source; /* watches pidfd; owned, may be NULL */
};

struct uffd_list {
        int epoll_fd;
        struct uffd_entry *entries;
        size_t n_entries;
        size_t n_allocated;
        size_t n_static; /* number of static entries once set, else 0 */
        bool n_static_set;
};

/* Whether an entry's process is gone; the real one is uffd_entry_is_dead(). */
typedef bool (*uffd_dead_check_t)(const struct uffd_entry *e, void *userdata);

/* Creates the list with the main uffd at index 0. On success the list owns
 * fd and pidfd (which may be -1); on failure the caller still does. */
int uffd_list_new(int fd, pid_t pid, int pidfd, struct uffd_list **ret);
struct uffd_list *uffd_list_free(struct uffd_list *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct uffd_list *, uffd_list_free);

/* Makes the first n + 1 entries (the main uffd and n devices) static.
 * Returns -EALREADY, changing nothing, if it was set before, and -ERANGE
 * for n >= UFFD_LIST_MAX. */
int uffd_list_set_num_static_devices(struct uffd_list *l, uint32_t n);

/* Appends fd with token = its index. ret_static says whether it is static:
 * true before uffd_list_set_num_static_devices() and within the first
 * n + 1 entries, false after. Ownership as for uffd_list_new(). -E2BIG when
 * the list holds UFFD_LIST_MAX entries. */
int uffd_list_register(struct uffd_list *l, int fd, pid_t pid, int pidfd, uint32_t *ret_index, bool *ret_static);

/* Removes every dynamic entry for which is_dead() says so: out of the epoll
 * set, closed, replaced by the last entry, whose token is rewritten. Static
 * entries are never removed. Returns how many were removed, or -errno if a
 * token could not be rewritten (the collection still completes). */
int uffd_list_gc(struct uffd_list *l, uffd_dead_check_t is_dead, void *userdata);

/* Waits up to timeout_ms (0: no wait) for readable entries and stores up to
 * max of their tokens (= indexes). Returns how many, or -errno. */
int uffd_list_wait(struct uffd_list *l, int timeout_ms, uint32_t *tokens, size_t max);

static inline size_t uffd_list_size(const struct uffd_list *l) {
        return l->n_entries;
}

/* NULL for an index past the end. */
static inline struct uffd_entry *uffd_list_get(struct uffd_list *l, uint32_t index) {
        return index < l->n_entries ? &l->entries[index] : NULL;
}

/* The epoll fd to put into an event loop (readable when an entry is). */
static inline int uffd_list_epoll_fd(const struct uffd_list *l) {
        return l->epoll_fd;
}
