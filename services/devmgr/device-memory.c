/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device-memory.h"
#include "device-report.h"
#include "layout.h"
#include "log.h"
#include "macro.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

static int userfaultfd_dev = -1;
static int report_fd = -1;
static bool mapped;

void device_memory_setup(int dev, int report) {
        safe_close(userfaultfd_dev);
        userfaultfd_dev = dev;
        report_fd = report;
}

/* The uffd guarding [mem, mem + size): what memmgr's main uffd is (no
 * extra features; memmgr adds write protection by registering), with
 * missing pages registered at once. */
static int uffd_new(void *mem, uint64_t size, int *ret) {
        struct uffdio_api api = { .api = UFFD_API };
        struct uffdio_register reg = {
                .range = { .start = (uint64_t) (uintptr_t) mem, .len = size },
                .mode = UFFDIO_REGISTER_MODE_MISSING,
        };
        _cleanup_close_ int fd = -1;

        if (userfaultfd_dev < 0)
                return -ENODEV;
        /* Not user-mode-only: KVM and the kernel touch this memory too
         * (e.g. a read() into a guest buffer). */
        fd = ioctl(userfaultfd_dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
                return -errno;
        *ret = TAKE_FD(fd);
        return 0;
}

/* Hands the process's uffd to devmgr; a failure costs swap, not the device. */
static void device_memory_guard(void *mem, uint64_t size) {
        _cleanup_close_ int uffd = -1;
        int r;

        r = uffd_new(mem, size, &uffd);
        /* One uffd per process: nothing may make another one. */
        userfaultfd_dev = safe_close(userfaultfd_dev);
        if (r == -ENODEV) {
                log_warning("No /dev/userfaultfd from devmgr: guest memory is not guarded, swapping this VM out "
                            "is unsafe for this device.");
                return;
        }
        if (r < 0) {
                log_warning_errno(r, "Failed to create the userfaultfd for guest memory, swapping this VM out is "
                                  "unsafe for this device: %m");
                return;
        }
        r = device_report_send_uffd(report_fd, uffd, (uint64_t) (uintptr_t) mem, size);
        if (r < 0)
                log_warning_errno(r, "Failed to hand the userfaultfd of guest memory to devmgr: %m");
        /* Closing ours leaves memmgr the only holder: if it (or the
         * handover) goes, the kernel drops the registration, no hang. */
}

int device_memory_map(int memfd, void **ret_mem, uint64_t *ret_size) {
        long page = sysconf(_SC_PAGESIZE);
        struct stat st;
        void *mem;

        if (mapped)
                return -EALREADY;
        if (fstat(memfd, &st) < 0)
                return -errno;
        if (st.st_size <= 0 || (uint64_t) st.st_size > LAYOUT_MAX_MEMORY || st.st_size % page != 0)
                return -EINVAL;
        mem = mmap(NULL, (size_t) st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        if (mem == MAP_FAILED)
                return -errno;
        mapped = true;
        device_memory_guard(mem, (uint64_t) st.st_size);
        *ret_mem = mem;
        *ret_size = (uint64_t) st.st_size;
        return 0;
}
