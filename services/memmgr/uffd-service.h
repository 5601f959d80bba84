/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One VM's uffd list at work in memmgr's event loop: its epoll set is one
 * io source that serves faults, each registered process's pidfd is one io
 * source that triggers a collection, and the Memory1 object hears of every
 * change of the list (docs/memmgr.md). */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "uffd-list.h"
#include "uffd.h"

#define MEMORY1_INTERFACE "org.polyvm.Memory1"

struct uffd_service {
        struct uffd_list *list;
        sd_event *event;
        sd_bus *bus;                 /* may be NULL: no signals */
        char *path;                  /* the Memory1 object */
        sd_event_source *fault_source;
        sd_event_source *retry_source; /* re-collects while an exited process's mm lingers */
        uint64_t faults_served;      /* also through uffds collected since */
        uffd_fault_handler_t handler; /* NULL: answer with zeros; swap sets it */
        void *handler_data;
};

/* Starts serving with the main uffd fd of process pid, whose creator mapped
 * guest offset 0 at base. Owns fd on success. */
int uffd_service_new(sd_event *event, sd_bus *bus, const char *path, int fd, pid_t pid, uint64_t base,
                     struct uffd_service **ret);
struct uffd_service *uffd_service_free(struct uffd_service *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct uffd_service *, uffd_service_free);

/* Registers a device's uffd (its mapping of offset 0 at base; registered:
 * swap registered that range on it already) and watches pidfd (owned on
 * success, both). */
int uffd_service_add(struct uffd_service *s, int fd, int pidfd, pid_t pid, uint64_t base, bool registered,
                     uint32_t *ret_index, bool *ret_static);

/* uffd_list_set_num_static_devices(). */
int uffd_service_set_num_static_devices(struct uffd_service *s, uint32_t n);

/* Collects dead dynamic uffds now; returns how many went. */
int uffd_service_collect(struct uffd_service *s);
