/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/epoll.h>

#include "log.h"
#include "uffd-service.h"
#include "uffd.h"

/* How often to look again when a process has exited but its mm is still
 * held (e.g. by a CLONE_VM sibling or a transient reader). */
#define UFFD_RETRY_USEC (200 * 1000)

static void uffd_service_changed(struct uffd_service *s) {
        int r;

        if (!s->bus)
                return;
        r = sd_bus_emit_properties_changed(s->bus, s->path, MEMORY1_INTERFACE, "UffdCount", "Uffds", NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to emit PropertiesChanged for %s: %m", s->path);
}

/* All readable uffds of one epoll batch are served before returning, and
 * collections only run outside this callback, so no token can go stale
 * between being read and being used. */
static int on_uffd_events(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct uffd_service *s = userdata;
        uint32_t tokens[64];
        bool any_dead = false;
        int n, r;

        n = uffd_list_wait(s->list, 0, tokens, ELEMENTSOF(tokens));
        if (n < 0)
                return log_error_errno(n, "Failed to read the uffd events of %s: %m", s->path);
        for (int i = 0; i < n; i++) {
                struct uffd_entry *e = uffd_list_get(s->list, tokens[i]);
                uint64_t before;

                if (!e)
                        continue;
                before = e->faults;
                r = uffd_serve_with(e->fd, tokens[i], &e->faults, s->handler, s->handler_data);
                s->faults_served += e->faults - before;
                if (r == -ESRCH) {
                        e->dead = true;
                        any_dead = true;
                } else if (r < 0)
                        log_warning_errno(r, "Failed to serve uffd %" PRIu32 " of %s: %m", tokens[i], s->path);
        }
        if (any_dead)
                (void) uffd_service_collect(s);
        return 0;
}

static int on_retry(sd_event_source *source, uint64_t usec, void *userdata) {
        (void) uffd_service_collect(userdata);
        return 0;
}

static int on_process_exit(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct uffd_service *s = userdata;

        /* A pidfd stays readable once its process exited: once is enough. */
        (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
        for (size_t i = 0; i < uffd_list_size(s->list); i++) {
                struct uffd_entry *e = uffd_list_get(s->list, (uint32_t) i);
                if (e->pidfd == fd) {
                        e->exited = true;
                        log_debug("Process %d of uffd %zu of %s exited.", (int) e->pid, i, s->path);
                }
        }
        (void) uffd_service_collect(s);
        return 0;
}

int uffd_service_collect(struct uffd_service *s) {
        bool lingering = false;
        int r;

        r = uffd_list_gc(s->list, uffd_entry_is_dead, NULL);
        if (r < 0)
                log_error_errno(r, "Failed to renumber the uffds of %s: %m", s->path);
        else if (r > 0) {
                log_info("Collected %d uffd%s of dead processes of %s; %zu left.", r, r == 1 ? "" : "s", s->path,
                         uffd_list_size(s->list));
                uffd_service_changed(s);
        }

        for (size_t i = 0; i < uffd_list_size(s->list); i++) {
                struct uffd_entry *e = uffd_list_get(s->list, (uint32_t) i);
                if (!e->is_static && e->exited)
                        lingering = true;
        }
        if (lingering) {
                if (s->retry_source) {
                        (void) sd_event_source_set_time_relative(s->retry_source, UFFD_RETRY_USEC);
                        (void) sd_event_source_set_enabled(s->retry_source, SD_EVENT_ONESHOT);
                } else
                        (void) sd_event_add_time_relative(s->event, &s->retry_source, CLOCK_MONOTONIC,
                                                          UFFD_RETRY_USEC, 0, on_retry, s);
        }
        return r;
}

int uffd_service_new(sd_event *event, sd_bus *bus, const char *path, int fd, pid_t pid, uint64_t base,
                     struct uffd_service **ret) {
        _cleanup_(uffd_service_freep) struct uffd_service *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->bus = bus ? sd_bus_ref(bus) : NULL;
        s->path = strdup(path);
        if (!s->path)
                return -ENOMEM;
        r = uffd_list_new(fd, pid, -1, &s->list);
        if (r < 0)
                return r;
        s->list->entries[0].base = base;
        r = sd_event_add_io(event, &s->fault_source, uffd_list_epoll_fd(s->list), EPOLLIN, on_uffd_events, s);
        if (r < 0) {
                /* The caller keeps fd on failure. */
                s->list->entries[0].fd = -1;
                return r;
        }
        /* A faulting vCPU waits for us: before bus requests. */
        (void) sd_event_source_set_priority(s->fault_source, SD_EVENT_PRIORITY_IMPORTANT);
        *ret = TAKE_PTR(s);
        return 0;
}

struct uffd_service *uffd_service_free(struct uffd_service *s) {
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->fault_source);
        sd_event_source_disable_unref(s->retry_source);
        uffd_list_free(s->list);
        sd_bus_unref(s->bus);
        sd_event_unref(s->event);
        free(s->path);
        free(s);
        return NULL;
}

int uffd_service_add(struct uffd_service *s, int fd, int pidfd, pid_t pid, uint64_t base, bool registered,
                     uint32_t *ret_index, bool *ret_static) {
        _cleanup_(sd_event_source_disable_unrefp) sd_event_source *exit_source = NULL;
        struct uffd_entry *e;
        uint32_t index;
        bool is_static;
        int r;

        if (pidfd >= 0) {
                r = sd_event_add_io(s->event, &exit_source, pidfd, EPOLLIN, on_process_exit, s);
                if (r < 0)
                        return r;
        }
        r = uffd_list_register(s->list, fd, pid, pidfd, &index, &is_static);
        if (r < 0)
                return r;
        e = uffd_list_get(s->list, index);
        e->exit_source = TAKE_PTR(exit_source);
        e->base = base;
        e->registered = registered;
        uffd_service_changed(s);
        if (ret_index)
                *ret_index = index;
        if (ret_static)
                *ret_static = is_static;
        return 0;
}

int uffd_service_set_num_static_devices(struct uffd_service *s, uint32_t n) {
        /* Every entry registered so far stays static: Uffds is unchanged. */
        return uffd_list_set_num_static_devices(s->list, n);
}
