/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "minimal-plugin.h"

size_t minimal_guest_build(uint8_t *buf, size_t size, uint16_t port, const char *msg) {
        /* Real mode, DS = CS = 0, loaded at MINIMAL_ENTRY:
         *        mov dx, port
         *        mov si, msg
         * next:  lodsb
         *        test al, al
         *        jz done
         *        out dx, al
         *        jmp next
         * done:  hlt
         * msg:   db "...", 0 */
        const uint8_t code_len = 15;
        size_t msg_len = strlen(msg) + 1;
        uint16_t msg_at = (uint16_t) (MINIMAL_ENTRY + code_len);
        uint8_t code[] = {
                0xBA, (uint8_t) port, (uint8_t) (port >> 8),
                0xBE, (uint8_t) msg_at, (uint8_t) (msg_at >> 8),
                0xAC,
                0x84, 0xC0,
                0x74, 0x03,
                0xEE,
                0xEB, 0xF8,
                0xF4,
        };

        if (sizeof(code) != code_len || size < code_len + msg_len ||
            MINIMAL_ENTRY + code_len + msg_len > 0x10000)
                return 0;
        memcpy(buf, code, code_len);
        memcpy(buf + code_len, msg, msg_len);
        return code_len + msg_len;
}

int minimal_handle_event(struct polyvm_vcpu *v, const struct polyvm_vcpu_event *ev, uint16_t port, FILE *out) {
        uint8_t ones[8];

        switch (ev->kind) {
        case POLYVM_VCPU_EVENT_HLT:
        case POLYVM_VCPU_EVENT_SHUTDOWN:
                return 1;
        case POLYVM_VCPU_EVENT_IO:
                if (!ev->is_write) {
                        /* Nothing decodes a read here: all ones, as on a real bus. */
                        memset(ones, 0xff, sizeof(ones));
                        return polyvm_vcpu_resume(v, ones, ev->size);
                }
                if (ev->address == port)
                        (void) fwrite(ev->data, 1, ev->size, out), fflush(out);
                return polyvm_vcpu_resume(v, NULL, 0);
        case POLYVM_VCPU_EVENT_MMIO:
                if (!ev->is_write) {
                        memset(ones, 0xff, sizeof(ones));
                        return polyvm_vcpu_resume(v, ones, ev->size);
                }
                return polyvm_vcpu_resume(v, NULL, 0);
        default:
                return polyvm_vcpu_resume(v, NULL, 0);
        }
}

int minimal_setup_vcpu(struct polyvm_vcpu *v, uint64_t entry) {
        struct kvm_sregs sregs;
        struct kvm_regs regs = {
                .rip = entry,
                .rflags = 0x2, /* bit 1 is always set */
                .rsp = MINIMAL_ENTRY,
        };
        int r;

        /* From the reset state, only CS moves: its base is 0xFFFF0000 after
         * reset; the guest runs in segment 0. */
        r = polyvm_vcpu_get_sregs(v, &sregs);
        if (r < 0)
                return r;
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        sregs.ds.base = sregs.es.base = sregs.ss.base = 0;
        sregs.ds.selector = sregs.es.selector = sregs.ss.selector = 0;
        r = polyvm_vcpu_set_sregs(v, &sregs);
        if (r < 0)
                return r;
        return polyvm_vcpu_set_regs(v, &regs);
}

int minimal_plugin_run(struct polyvm_plugin *p, const char *msg, FILE *out) {
        struct polyvm_vcpu *v = NULL;
        struct polyvm_vcpu_event ev;
        uint8_t *mem;
        uint32_t id;
        int memfd, r;

        memfd = memfd_create("minimal-guest", MFD_CLOEXEC);
        if (memfd < 0)
                return -errno;
        if (ftruncate(memfd, MINIMAL_MEMORY_SIZE) < 0) {
                r = -errno;
                close(memfd);
                return r;
        }
        mem = mmap(NULL, MINIMAL_MEMORY_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        if (mem == MAP_FAILED) {
                r = -errno;
                close(memfd);
                return r;
        }
        r = minimal_guest_build(mem + MINIMAL_ENTRY, MINIMAL_MEMORY_SIZE - MINIMAL_ENTRY, MINIMAL_PORT, msg) > 0
                    ? 0 : -E2BIG;
        munmap(mem, MINIMAL_MEMORY_SIZE);
        if (r >= 0)
                r = polyvm_plugin_create_memory(p, memfd, 0, 0, MINIMAL_MEMORY_SIZE, 0, &id);
        close(memfd); /* the launcher has its own reference now */
        if (r < 0)
                return r;
        r = polyvm_plugin_reserve_range(p, POLYVM_SPACE_PIO, MINIMAL_PORT, 1);
        if (r < 0)
                return r;
        r = polyvm_plugin_get_vcpu(p, 0, &v);
        if (r < 0)
                return r;

        for (;;) {
                r = polyvm_vcpu_wait(v, &ev);
                if (r < 0)
                        break;
                if (ev.kind == POLYVM_VCPU_EVENT_INIT) {
                        r = minimal_setup_vcpu(v, MINIMAL_ENTRY);
                        if (r >= 0)
                                r = polyvm_vcpu_resume(v, NULL, 0);
                } else
                        r = minimal_handle_event(v, &ev, MINIMAL_PORT, out);
                if (r != 0)
                        break;
        }
        polyvm_vcpu_free(v);
        return r < 0 ? r : 0;
}
