/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The minimal example plugin's logic, apart from main() so that the
 * client library's test runs it against a fake launcher: a flat real-mode
 * guest that writes a string to one port and halts, loaded into memory the
 * plugin creates, and a vCPU loop that prints what the guest writes. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <polyvm/plugin.h>

#define MINIMAL_PORT 0xE9           /* the "debug console" port other VMMs use too */
#define MINIMAL_MEMORY_SIZE 0x10000 /* 64 KiB at guest address 0 */
#define MINIMAL_ENTRY 0x1000        /* where the guest is loaded and starts, CS base 0 */

/* Writes the guest (code, then msg NUL-terminated) into buf; its size, or
 * 0 if it does not fit or msg would reach past the 64 KiB real-mode segment. */
size_t minimal_guest_build(uint8_t *buf, size_t size, uint16_t port, const char *msg);

/* Answers one vCPU event: a write to port prints its bytes to out, a read
 * of port reads 0xff bytes. Returns 1 when the vCPU has ended its run (HLT,
 * SHUTDOWN), 0 to go on, or -errno. */
int minimal_handle_event(struct polyvm_vcpu *v, const struct polyvm_vcpu_event *ev, uint16_t port, FILE *out);

/* Sets vCPU registers for a real-mode start at entry (CS base 0). */
int minimal_setup_vcpu(struct polyvm_vcpu *v, uint64_t entry);

/* The whole plugin on connection p: memory, the guest, the port
 * reservation, and vCPU 0's loop until the guest halts. */
int minimal_plugin_run(struct polyvm_plugin *p, const char *msg, FILE *out);
