/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Guest RAM of one VM: a sealed memfd, who holds it and the uffds that
 * guard it. Kept apart from the bus code so that swap can hang off struct
 * vm_memory too. */

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "macro.h"
#include "swap.h"
#include "uffd-service.h"

#define MEMORY_VM_NAME_MAX 64
#define MEMORY_MEMFD_PREFIX "polyvm-guest:"
#define MEMORY_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

struct vm_memory {
        char *vm;           /* VM name, validated */
        char *path;         /* object path of its Memory1 object */
        uint64_t size;      /* bytes */
        int memfd;          /* sealed against grow/shrink; ours, callers get dups */
        sd_bus_track *track; /* the bus peers that own it; empty -> freed */
        struct uffd_service *uffds; /* NULL until the main uffd is registered */
        struct swap *swap;  /* swap state; NULL only while being set up */
};

/* A VM name is 1..MEMORY_VM_NAME_MAX characters of [A-Za-z0-9_.-], not
 * starting with '.'. On error returns -EINVAL and says why in err. */
int memory_check_vm_name(const char *name, char *err, size_t errlen);

/* size must be > 0, a whole number of host pages (the unit of mmap and of
 * KVM memory slots; the launcher's whole-MiB sizes always are) and <= limit
 * (limit 0: no bound). On error returns -EINVAL and says why in err. */
int memory_check_size(uint64_t size, uint64_t limit, char *err, size_t errlen);

/* MemTotal in bytes from the text of /proc/meminfo. */
int memory_parse_meminfo(const char *text, uint64_t *ret);
/* MemTotal of this host in bytes. */
int memory_host_total(uint64_t *ret);

/* A memfd named "polyvm-guest:<vm>" of size bytes with MEMORY_SEALS. */
int memory_memfd_new(const char *vm, uint64_t size, int *ret_fd);

/* Allocates the memfd and the object path; the track is the caller's. */
int vm_memory_new(const char *vm, uint64_t size, const char *path_prefix, struct vm_memory **ret);
struct vm_memory *vm_memory_free(struct vm_memory *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vm_memory *, vm_memory_free);
