/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The PVH example plugin's machine and run loop, apart from main() so that
 * tests drive it: guest RAM from a memfd with the ELF and the boot data in
 * it, every vCPU's state at INIT (the boot CPU at the PVH entry, the others
 * parked for the guest's INIT/SIPI), COM1 and the ACPI PM1 registers on
 * reserved ports. The guest's serial output goes to a FILE; its input is a
 * script typed one line at each shell prompt (a jailed plugin's stdin is
 * /dev/null). Writing SLP_EN to PM1a_CNT (ACPI S5) ends the run. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <polyvm/plugin.h>

#include "pvh-serial.h"

#define PVH_PROMPT "tg> "
#define PVH_PM_PORTS_BYTES 6

struct pvh_config {
        const uint8_t *elf;
        size_t elf_size;
        uint64_t memory_size;
        const char *cmdline;
        const char *input; /* lines to type, '\n'-separated; may be NULL */
        FILE *out;
};

/* The devices, without the library: what tests check byte by byte. */
struct pvh_machine {
        struct pvh_serial serial;
        uint8_t pm[PVH_PM_PORTS_BYTES];
        const char *input; /* what is left to type */
        char tail[sizeof(PVH_PROMPT)]; /* the last output bytes, to see the prompt */
        bool poweroff;
        FILE *out;
};

void pvh_machine_init(struct pvh_machine *m, const char *input, FILE *out);
/* A port access of size bytes (1, 2, 4) at port: a write takes data, a read
 * fills it. 0 if the port is the machine's, -ENOENT if not (reads then give
 * all ones). */
int pvh_machine_io(struct pvh_machine *m, bool is_write, uint16_t port, uint32_t size, uint8_t data[8]);

/* The whole plugin on connection p until the guest powers off (0) or
 * something fails (-errno; err says what for a person). */
int pvh_plugin_run(struct polyvm_plugin *p, const struct pvh_config *c, char *err, size_t errlen);
