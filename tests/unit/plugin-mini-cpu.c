/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <glib.h>

#include "plugin-mini-cpu.h"

static void vcpu_stop(struct mini_cpu *c, const struct plugin_event *ev, unsigned *resumes) {
        g_assert_cmpint(plugin_server_vcpu_event(c->s, 0, ev), ==, 0);
        *resumes = fake_vm_wait_resume(c->fake, *resumes);
        g_assert_cmpuint(*resumes, >, 0);
}

void *mini_cpu_run(void *arg) {
        struct mini_cpu *c = arg;
        struct plugin_event init = { .kind = PLUGIN_EVENT_INIT };
        const uint8_t *mem;
        size_t mem_size;
        unsigned resumes = 0;
        uint16_t ip, dx = 0, si = 0;
        uint8_t al = 0;
        bool zf = false;
        uint64_t cs;

        vcpu_stop(c, &init, &resumes);
        /* The plugin has set the registers and created memory by now. */
        g_assert_cmpuint(c->fake->n_memory, ==, 1);
        mem = c->fake->memory[0].map;
        mem_size = c->fake->memory[0].m.size;
        cs = c->fake->sregs.cs.base;
        ip = (uint16_t) c->fake->regs.rip;
        g_assert_cmphex(cs, ==, 0);
        for (c->steps = 0; c->steps < 100000; c->steps++) {
                const uint8_t *op = mem + cs + ip;
                struct plugin_event ev = {};

                g_assert_cmpuint(cs + ip + 3, <, mem_size);
                switch (op[0]) {
                case 0xBA: dx = (uint16_t) (op[1] | op[2] << 8); ip += 3; break;
                case 0xBE: si = (uint16_t) (op[1] | op[2] << 8); ip += 3; break;
                case 0xAC: al = mem[si++]; ip += 1; break;
                case 0x84: g_assert_cmphex(op[1], ==, 0xC0); zf = al == 0; ip += 2; break;
                case 0x74: ip += 2; if (zf) ip = (uint16_t) (ip + (int8_t) op[1]); break;
                case 0xEB: ip = (uint16_t) (ip + 2 + (int8_t) op[1]); break;
                case 0xEE:
                        ip += 1;
                        ev = (struct plugin_event) { .kind = PLUGIN_EVENT_IO, .is_write = 1, .address = dx, .size = 1,
                                                     .data = { al } };
                        vcpu_stop(c, &ev, &resumes);
                        break;
                case 0xF4:
                        ev = (struct plugin_event) { .kind = PLUGIN_EVENT_HLT };
                        /* The plugin ends its loop on HLT without resuming. */
                        g_assert_cmpint(plugin_server_vcpu_event(c->s, 0, &ev), ==, 0);
                        return NULL;
                default:
                        c->failed = true;
                        return NULL;
                }
        }
        c->failed = true;
        return NULL;
}
