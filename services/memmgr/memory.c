/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "memory.h"

int memory_check_vm_name(const char *name, char *err, size_t errlen) {
        size_t n;

        if (!name || !name[0]) {
                snprintf(err, errlen, "vm: name must not be empty");
                return -EINVAL;
        }
        n = strlen(name);
        if (n > MEMORY_VM_NAME_MAX) {
                snprintf(err, errlen, "vm: name is %zu characters long, the limit is %d", n, MEMORY_VM_NAME_MAX);
                return -EINVAL;
        }
        if (name[0] == '.') {
                snprintf(err, errlen, "vm: name \"%s\" must not start with '.'", name);
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                unsigned char c = name[i];
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-')
                        continue;
                if (c >= 0x20 && c < 0x7f)
                        snprintf(err, errlen, "vm: name \"%s\" has '%c' at offset %zu; allowed are A-Z a-z 0-9 _ . -",
                                 name, c, i);
                else
                        snprintf(err, errlen, "vm: name has byte 0x%02x at offset %zu; allowed are A-Z a-z 0-9 _ . -",
                                 c, i);
                return -EINVAL;
        }
        return 0;
}

int memory_check_size(uint64_t size, uint64_t limit, char *err, size_t errlen) {
        uint64_t page = (uint64_t) sysconf(_SC_PAGESIZE);

        if (size == 0) {
                snprintf(err, errlen, "size: must not be 0; guest memory is at least one page (%" PRIu64 " bytes)",
                         page);
                return -EINVAL;
        }
        if (size % page != 0) {
                snprintf(err, errlen, "size: %" PRIu64 " bytes is not a multiple of the page size (%" PRIu64 " bytes)",
                         size, page);
                return -EINVAL;
        }
        if (limit > 0 && size > limit) {
                snprintf(err, errlen, "size: %" PRIu64 " bytes is larger than the host's memory (%" PRIu64 " bytes)",
                         size, limit);
                return -EINVAL;
        }
        return 0;
}

int memory_parse_meminfo(const char *text, uint64_t *ret) {
        const char *p = text;

        while (p && *p) {
                unsigned long long kib;
                char unit[8];

                if (strncmp(p, "MemTotal:", 9) == 0) {
                        if (sscanf(p + 9, " %llu %7s", &kib, unit) != 2 || strcmp(unit, "kB") != 0)
                                return -EBADMSG;
                        if (kib > UINT64_MAX / 1024)
                                return -ERANGE;
                        *ret = (uint64_t) kib * 1024;
                        return 0;
                }
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        return -ENOENT;
}

int memory_host_total(uint64_t *ret) {
        _cleanup_close_ int fd = -1;
        char buf[8192];
        ssize_t n;

        fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        return memory_parse_meminfo(buf, ret);
}

int memory_memfd_new(const char *vm, uint64_t size, int *ret_fd) {
        _cleanup_close_ int fd = -1;
        char name[sizeof(MEMORY_MEMFD_PREFIX) + MEMORY_VM_NAME_MAX];

        if ((uint64_t) (off_t) size != size || (off_t) size < 0)
                return -EFBIG;
        snprintf(name, sizeof(name), MEMORY_MEMFD_PREFIX "%s", vm);
        fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) size) < 0)
                return -errno;
        /* Every mapping of guest RAM assumes this size for the VM's life. */
        if (fcntl(fd, F_ADD_SEALS, MEMORY_SEALS) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int vm_memory_new(const char *vm, uint64_t size, const char *path_prefix, struct vm_memory **ret) {
        _cleanup_(vm_memory_freep) struct vm_memory *m = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->memfd = -1;
        m->size = size;
        m->vm = strdup(vm);
        if (!m->vm)
                return -ENOMEM;
        r = sd_bus_path_encode(path_prefix, vm, &m->path);
        if (r < 0)
                return r;
        r = memory_memfd_new(vm, size, &m->memfd);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

struct vm_memory *vm_memory_free(struct vm_memory *m) {
        if (!m)
                return NULL;
        sd_bus_track_unref(m->track);
        /* Closing the uffds releases them: faulting threads are woken and
         * the memory behaves as if never registered. */
        swap_free(m->swap); /* removes the swap file */
        uffd_service_free(m->uffds);
        safe_close(m->memfd);
        free(m->path);
        free(m->vm);
        free(m);
        return NULL;
}
