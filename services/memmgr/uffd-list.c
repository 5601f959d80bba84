/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

#include "uffd-list.h"

static int uffd_list_watch(struct uffd_list *l, int op, int fd, uint32_t index) {
        /* Level-triggered: a readable entry is reported again under the token
         * it has at the next epoll_wait, whatever happened in between. */
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = index };

        if (epoll_ctl(l->epoll_fd, op, fd, &ev) < 0)
                return -errno;
        return 0;
}

static void uffd_entry_done(struct uffd_entry *e) {
        e->exit_source = sd_event_source_disable_unref(e->exit_source);
        e->pidfd = safe_close(e->pidfd);
        e->fd = safe_close(e->fd);
}

int uffd_list_new(int fd, pid_t pid, int pidfd, struct uffd_list **ret) {
        _cleanup_(uffd_list_freep) struct uffd_list *l = NULL;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (l->epoll_fd < 0)
                return -errno;
        r = uffd_list_register(l, fd, pid, pidfd, NULL, NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

struct uffd_list *uffd_list_free(struct uffd_list *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n_entries; i++)
                uffd_entry_done(&l->entries[i]);
        free(l->entries);
        safe_close(l->epoll_fd);
        free(l);
        return NULL;
}

int uffd_list_set_num_static_devices(struct uffd_list *l, uint32_t n) {
        if (l->n_static_set)
                return -EALREADY;
        if (n >= UFFD_LIST_MAX)
                return -ERANGE;
        /* +1 for the main uffd. Entries registered before this call stay
         * static even if there are more of them than n + 1. */
        l->n_static = MAX((size_t) n + 1, l->n_entries);
        l->n_static_set = true;
        return 0;
}

int uffd_list_register(struct uffd_list *l, int fd, pid_t pid, int pidfd, uint32_t *ret_index, bool *ret_static) {
        uint32_t index;
        bool is_static;
        int r;

        if (fd < 0)
                return -EBADF;
        if (l->n_entries >= UFFD_LIST_MAX)
                return -E2BIG;
        if (l->n_entries == l->n_allocated) {
                size_t n = MAX(l->n_allocated * 2, (size_t) 4);
                struct uffd_entry *e = reallocarray(l->entries, n, sizeof(*e));
                if (!e)
                        return -ENOMEM;
                l->entries = e;
                l->n_allocated = n;
        }

        index = (uint32_t) l->n_entries;
        is_static = !l->n_static_set || index < l->n_static;
        r = uffd_list_watch(l, EPOLL_CTL_ADD, fd, index);
        if (r < 0)
                return r;
        l->entries[index] = (struct uffd_entry) {
                .fd = fd,
                .pidfd = pidfd,
                .pid = pid,
                .is_static = is_static,
        };
        l->n_entries++;
        if (ret_index)
                *ret_index = index;
        if (ret_static)
                *ret_static = is_static;
        return 0;
}

int uffd_list_gc(struct uffd_list *l, uffd_dead_check_t is_dead, void *userdata) {
        size_t i = l->n_static_set ? l->n_static : l->n_entries;
        bool moved = false;
        int removed = 0, ret = 0, r;

        while (i < l->n_entries) {
                struct uffd_entry *e = &l->entries[i];

                if (is_dead(e, userdata)) {
                        /* Out of the set before closing: another process may
                         * still hold the same file, which would keep a closed
                         * fd's registration (and its old token) alive. */
                        (void) epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, e->fd, NULL);
                        uffd_entry_done(e);
                        *e = l->entries[l->n_entries - 1];
                        l->n_entries--;
                        moved = i < l->n_entries;
                        removed++;
                        continue; /* look at the moved-in entry at the same index */
                }
                if (moved) {
                        r = uffd_list_watch(l, EPOLL_CTL_MOD, e->fd, (uint32_t) i);
                        if (r < 0 && ret == 0)
                                ret = r;
                        moved = false;
                }
                i++;
        }
        return ret < 0 ? ret : removed;
}

int uffd_list_wait(struct uffd_list *l, int timeout_ms, uint32_t *tokens, size_t max) {
        struct epoll_event events[64];
        int n;

        n = epoll_wait(l->epoll_fd, events, (int) MIN(max, ELEMENTSOF(events)), timeout_ms);
        if (n < 0)
                return -errno;
        for (int i = 0; i < n; i++)
                tokens[i] = (uint32_t) events[i].data.u64;
        return n;
}
