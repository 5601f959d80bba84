/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "acpi.h"
#include "apic.h"
#include "bootinfo.h"
#include "console.h"
#include "cpu.h"
#include "io.h"
#include "lib.h"
#include "mem.h"
#include "pci.h"
#include "pm.h"
#include "shell.h"
#include "smp.h"
#include "user.h"
#include "virtio.h"

#define LINE_MAX 128
#define PROMPT "tg> "
#define MAX_ARGS 32
/* A VMM acts on a power or reset write asynchronously (QEMU finishes the
 * vCPU's time slice first); give it this long before calling it failed. */
#define VMM_GRACE_NS 2000000000ULL

static void cmd_help(void) {
        console_puts("commands:\n"
                     "  help      this list\n"
                     "  cpus      CPUs that came up (BSP + started APs)\n"
                     "  mem       usable RAM in the e820 map, in bytes\n"
                     "  e820      the e820 map\n"
                     "  acpi      ACPI tables found\n"
                     "  user      run a loop at CPL 3 and come back\n"
                     "  pm        PM1a_STS, PM1a_EN and PM1a_CNT\n"
                     "  poweroff  ACPI S5 (PM1a_CNT, or SLEEP_CONTROL_REG)\n"
                     "  reboot    FADT reset register, else the 8042\n"
                     "  pci       PCI functions on bus 0 with their BARs\n"
                     "  rng N     N bytes from virtio-rng\n"
                     "  blk       virtio-blk: blk [DISK] [info|read|write|verify|flush|bench] ...\n"
                     "  net       virtio-net: net [info|addr|ping|udp send|udp recv] ...\n"
                     "  vcon      virtio-console: vcon [info|write TEXT|read [N] [TIMEOUT_MS]]\n"
                     "  vsock     virtio-vsock: vsock [info|listen|connect|send|recv|close] ...\n"
                     "  memfill SEED MIB             fill RAM above the image with a pattern (at CPL 3)\n"
                     "  memcheck SEED MIB [ROUNDS]   check it (and ROUNDS memwrite rounds)\n"
                     "  memwrite SEED MIB ROUNDS     add 1 to word 0 of every page, ROUNDS times\n"
                     "  memtouch seq|rand MIB COUNT  read COUNT pages, timed: pages/s, p50, p99\n");
}

static void cmd_e820(void) {
        for (unsigned i = 0; i < bootinfo.n_e820; i++) {
                const struct e820_entry *e = &bootinfo.e820[i];
                kprintf("e820: [mem 0x%016lx-0x%016lx] %s\n", e->addr, e->addr + e->size - 1,
                        e820_type_name(e->type));
        }
}

static void cmd_acpi(void) {
        if (!acpi.rsdp) {
                console_puts("acpi: no RSDP\n");
                return;
        }
        kprintf("acpi: RSDP 0x%016lx rev %u (%s)\n", acpi.rsdp, acpi.revision, acpi.rsdp_source);
        for (unsigned i = 0; i < acpi.n_tables; i++) {
                const struct acpi_table *t = &acpi.tables[i];
                kprintf("acpi: %s 0x%016lx len %u%s\n", t->sig, t->addr, t->len,
                        t->checksum_ok ? "" : " BAD CHECKSUM");
        }
}

void shell_poweroff(void) {
        if (acpi.hw_reduced)
                kprintf("poweroff: SLEEP_CONTROL_REG space %u addr 0x%lx SLP_TYPa %u\n", acpi.sleep_control.space_id,
                        acpi.sleep_control.address, acpi.s5_slp_typa);
        else
                kprintf("poweroff: PM1a_CNT 0x%x SLP_TYPa %u\n", acpi.pm1a_cnt, acpi.s5_slp_typa);
        acpi_poweroff();
        sleep_ns(VMM_GRACE_NS);
        /* Still here: the VMM ignored it or the tables lacked _S5. */
        kprintf("poweroff: failed (%s)\n", !acpi.have_fadt ? "no FADT" : !acpi.have_s5 ? "no _S5 in DSDT" : "ignored");
}

static void cmd_reboot(void) {
        if (acpi.reset_supported) {
                kprintf("reboot: FADT RESET_REG space %u address 0x%lx value 0x%x\n", acpi.reset_reg.space_id,
                        acpi.reset_reg.address, acpi.reset_value);
                acpi_reset();
                sleep_ns(VMM_GRACE_NS);
        }
        console_puts("reboot: 8042 pulse reset\n");
        outb(0x64, 0xfe);
        sleep_ns(VMM_GRACE_NS);
        console_puts("reboot: failed\n");
}

/* Splits line in place at spaces; returns the number of words, or max + 1
 * if there are more than max. */
static int split_words(char *line, char **argv, int max) {
        int argc = 0;
        for (;;) {
                while (*line == ' ')
                        line++;
                if (!*line)
                        return argc;
                if (argc == max)
                        return max + 1;
                argv[argc++] = line;
                while (*line && *line != ' ')
                        line++;
                if (*line)
                        *line++ = 0;
        }
}

static void run_command(char *line) {
        while (*line == ' ')
                line++;
        char cmd[LINE_MAX];
        size_t n = 0;
        while (line[n] && line[n] != ' ' && n + 1 < sizeof(cmd)) {
                cmd[n] = line[n];
                n++;
        }
        cmd[n] = 0;

        if (n == 0)
                return;
        if (strcmp(cmd, "help") == 0)
                cmd_help();
        else if (strcmp(cmd, "cpus") == 0)
                kprintf("cpus: %u\n", cpus_up);
        else if (strcmp(cmd, "mem") == 0)
                kprintf("mem: %lu\n", e820_ram_bytes());
        else if (strcmp(cmd, "e820") == 0)
                cmd_e820();
        else if (strcmp(cmd, "acpi") == 0)
                cmd_acpi();
        else if (strcmp(cmd, "user") == 0)
                user_selftest();
        else if (strcmp(cmd, "pm") == 0)
                pm_dump();
        else if (strcmp(cmd, "poweroff") == 0)
                shell_poweroff();
        else if (strcmp(cmd, "reboot") == 0)
                cmd_reboot();
        else if (strcmp(cmd, "pci") == 0)
                pci_dump();
        else if (strcmp(cmd, "rng") == 0 || strcmp(cmd, "blk") == 0 || strcmp(cmd, "net") == 0 ||
                 strcmp(cmd, "vcon") == 0 || strcmp(cmd, "vsock") == 0 || strcmp(cmd, "memfill") == 0 ||
                 strcmp(cmd, "memcheck") == 0 || strcmp(cmd, "memwrite") == 0 || strcmp(cmd, "memtouch") == 0) {
                char *argv[MAX_ARGS];
                int argc = split_words(line, argv, MAX_ARGS);
                if (argc > MAX_ARGS)
                        console_puts("too many arguments\n");
                else if (strcmp(cmd, "rng") == 0)
                        virtio_rng_cmd(argc, argv);
                else if (strcmp(cmd, "blk") == 0)
                        virtio_blk_cmd(argc, argv);
                else if (strcmp(cmd, "net") == 0)
                        virtio_net_cmd(argc, argv);
                else if (strcmp(cmd, "vsock") == 0)
                        virtio_vsock_cmd(argc, argv);
                else if (strncmp(cmd, "mem", 3) == 0)
                        mem_cmd(argc, argv);
                else
                        virtio_console_cmd(argc, argv);
        }
        else
                kprintf("unknown command: %s\n", cmd);
}

void shell_run(void) {
        char line[LINE_MAX];
        size_t len = 0;
        char prev = 0;

        console_puts(PROMPT);
        for (;;) {
                uint32_t snap = irq_count;
                char c;
                /* The network answers ARP and pings, vsock accepts and
                 * echoes, while the shell waits: queue interrupts wake this
                 * loop. */
                virtio_net_poll();
                virtio_vsock_poll();
                if (pm_take_button_press()) {
                        console_puts("\npower button pressed\n");
                        shell_poweroff();
                        console_puts(PROMPT);
                        continue;
                }
                if (!console_getc(&c)) {
                        cpu_wait(snap);
                        continue;
                }
                if (c == '\n' && prev == '\r') { /* CR LF is one line end */
                        prev = c;
                        continue;
                }
                prev = c;
                if (c == '\r' || c == '\n') {
                        console_putc('\n');
                        line[len] = 0;
                        run_command(line);
                        len = 0;
                        console_puts(PROMPT);
                } else if (c == '\b' || c == 0x7f) {
                        if (len > 0) {
                                len--;
                                console_puts("\b \b");
                        }
                } else if (c >= ' ' && c < 0x7f && len + 1 < sizeof(line)) {
                        line[len++] = c;
                        console_putc(c);
                }
        }
}
