/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pvh-boot.h"
#include "pvh-elf.h"
#include "pvh-plugin.h"

#define PM1_SCI_EN (1u << 0)
#define PM1_SLP_EN (1u << 13)

_Static_assert(PVH_PM_PORTS_BYTES == PVH_PM_PORTS, "PM register file covers the reserved ports");

void pvh_machine_init(struct pvh_machine *m, const char *input, FILE *out) {
        memset(m, 0, sizeof(*m));
        pvh_serial_init(&m->serial);
        m->pm[PVH_PM1A_CNT - PVH_PM1A_EVT] = PM1_SCI_EN; /* in ACPI mode from the start */
        m->input = input;
        m->out = out;
}

/* Types the next script line once the shell shows its prompt. */
static void type_at_prompt(struct pvh_machine *m, uint8_t c) {
        const char *nl;
        size_t n = strlen(m->tail), len;

        if (n + 1 >= sizeof(m->tail)) {
                memmove(m->tail, m->tail + 1, n);
                n--;
        }
        m->tail[n] = (char) c;
        m->tail[n + 1] = 0;
        if (strcmp(m->tail, PVH_PROMPT) != 0 || !m->input || !*m->input)
                return;
        nl = strchr(m->input, '\n');
        len = nl ? (size_t) (nl - m->input) : strlen(m->input);
        (void) pvh_serial_receive(&m->serial, m->input, len);
        (void) pvh_serial_receive(&m->serial, "\r", 1); /* the Enter key */
        m->input += len + (nl ? 1 : 0);
        m->tail[0] = 0;
}

static void pm_write(struct pvh_machine *m, unsigned offset, uint8_t v) {
        uint16_t cnt;

        if (offset < 2)
                return; /* PM1_STS: write one to clear, and nothing is ever set */
        m->pm[offset] = v;
        m->pm[PVH_PM1A_CNT - PVH_PM1A_EVT] |= PM1_SCI_EN;
        cnt = (uint16_t) (m->pm[4] | m->pm[5] << 8);
        if ((cnt & PM1_SLP_EN) && ((cnt >> 10) & 7) == PVH_SLP_TYP_S5)
                m->poweroff = true;
        m->pm[5] &= (uint8_t) ~(PM1_SLP_EN >> 8); /* SLP_EN reads as 0 */
}

int pvh_machine_io(struct pvh_machine *m, bool is_write, uint16_t port, uint32_t size, uint8_t data[8]) {
        bool serial = port >= PVH_SERIAL_PORT && port < PVH_SERIAL_PORT + PVH_SERIAL_PORTS;
        bool pm = port >= PVH_PM1A_EVT && port < PVH_PM1A_EVT + PVH_PM_PORTS;

        if (!serial && !pm) {
                if (!is_write)
                        memset(data, 0xff, size);
                return -ENOENT;
        }
        /* Wider accesses are byte accesses to consecutive registers. */
        for (uint32_t i = 0; i < size && i < 8; i++) {
                unsigned p = port + i;

                if (serial && p < PVH_SERIAL_PORT + PVH_SERIAL_PORTS) {
                        if (is_write) {
                                int c = pvh_serial_write(&m->serial, p - PVH_SERIAL_PORT, data[i]);
                                if (c >= 0) {
                                        (void) fputc(c, m->out);
                                        type_at_prompt(m, (uint8_t) c);
                                }
                        } else
                                data[i] = pvh_serial_read(&m->serial, p - PVH_SERIAL_PORT);
                } else if (pm && p < PVH_PM1A_EVT + PVH_PM_PORTS) {
                        if (is_write)
                                pm_write(m, p - PVH_PM1A_EVT, data[i]);
                        else
                                data[i] = m->pm[p - PVH_PM1A_EVT];
                } else if (!is_write)
                        data[i] = 0xff;
        }
        return 0;
}

static int failf(char *err, size_t errlen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int failf(char *err, size_t errlen, int r, const char *fmt, ...) {
        va_list ap;
        size_t n;

        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        n = strlen(err);
        if (r < 0 && n < errlen)
                snprintf(err + n, errlen - n, ": %s", strerror(-r));
        return r < 0 ? r : -EINVAL;
}

/* Guest RAM: a memfd with the ELF and the boot data, handed to the launcher. */
static int create_memory(struct polyvm_plugin *p, const struct pvh_config *c, unsigned n_cpus, uint64_t *ret_entry,
                         char *err, size_t errlen) {
        uint8_t *mem;
        uint32_t id;
        int fd, r;

        if (c->memory_size < PVH_MEMORY_MIN || c->memory_size > PVH_MEMORY_MAX || c->memory_size % 4096 != 0)
                return failf(err, errlen, -EINVAL, "memory size %llu is not a multiple of 4 KiB in 2 MiB..3 GiB",
                             (unsigned long long) c->memory_size);
        fd = memfd_create("pvh-guest-ram", MFD_CLOEXEC);
        if (fd < 0)
                return failf(err, errlen, -errno, "Failed to create guest memory");
        if (ftruncate(fd, (off_t) c->memory_size) < 0) {
                r = failf(err, errlen, -errno, "Failed to size guest memory");
                close(fd);
                return r;
        }
        mem = mmap(NULL, c->memory_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (mem == MAP_FAILED) {
                r = failf(err, errlen, -errno, "Failed to map guest memory");
                close(fd);
                return r;
        }
        r = pvh_elf_load(c->elf, c->elf_size, mem, c->memory_size, PVH_HIGH_RAM, ret_entry, err, errlen);
        if (r >= 0) {
                r = pvh_boot_write(mem, c->memory_size, c->cmdline, n_cpus);
                if (r < 0)
                        failf(err, errlen, r, "Failed to write the boot data (command line of %zu bytes)",
                              c->cmdline ? strlen(c->cmdline) : 0);
        }
        munmap(mem, c->memory_size);
        if (r >= 0) {
                r = polyvm_plugin_create_memory(p, fd, 0, 0, c->memory_size, 0, &id);
                if (r < 0)
                        failf(err, errlen, r, "Failed to create the guest memory region");
        }
        close(fd); /* the launcher has its own reference now */
        return r;
}

static int setup_vcpu(struct polyvm_vcpu *v, bool bsp, uint64_t entry) {
        struct polyvm_vcpu_event ev;
        struct kvm_sregs sregs;
        struct kvm_regs regs;
        int r;

        r = polyvm_vcpu_wait(v, &ev);
        if (r < 0)
                return r;
        if (ev.kind != POLYVM_VCPU_EVENT_INIT)
                return -EPROTO;
        r = polyvm_vcpu_get_sregs(v, &sregs);
        if (r < 0)
                return r;
        if (bsp)
                pvh_boot_bsp_state(entry, &regs, &sregs);
        else
                pvh_boot_ap_state(&regs, &sregs);
        r = polyvm_vcpu_set_sregs(v, &sregs);
        if (r < 0)
                return r;
        r = polyvm_vcpu_set_regs(v, &regs);
        if (r < 0)
                return r;
        return polyvm_vcpu_resume(v, NULL, 0);
}

/* Serves the boot CPU's stops until poweroff. APs that touch the ports wait:
 * the test guest talks to its devices from the boot CPU only. */
static int serve(struct polyvm_plugin *p, struct polyvm_vcpu *v, struct pvh_machine *m, char *err, size_t errlen) {
        bool irq = false;

        for (;;) {
                struct polyvm_vcpu_event ev;
                uint8_t data[8] = {};
                int r;

                r = polyvm_vcpu_wait(v, &ev);
                if (r < 0)
                        return failf(err, errlen, r, "Failed to wait for vCPU 0");
                switch (ev.kind) {
                case POLYVM_VCPU_EVENT_IO:
                        if (ev.is_write)
                                memcpy(data, ev.data, sizeof(data));
                        (void) pvh_machine_io(m, ev.is_write, (uint16_t) ev.address, ev.size, data);
                        if (m->poweroff) {
                                (void) fflush(m->out);
                                return 0; /* ACPI S5: the VM ends with us */
                        }
                        if (pvh_serial_irq(&m->serial) != irq) {
                                irq = !irq;
                                r = polyvm_plugin_set_irq_line(p, PVH_SERIAL_IRQ, irq);
                                if (r < 0)
                                        return failf(err, errlen, r, "Failed to set irq %d", PVH_SERIAL_IRQ);
                        }
                        r = polyvm_vcpu_resume(v, ev.is_write ? NULL : data, ev.is_write ? 0 : ev.size);
                        break;
                case POLYVM_VCPU_EVENT_MMIO:
                        memset(data, 0xff, sizeof(data));
                        r = polyvm_vcpu_resume(v, ev.is_write ? NULL : data, ev.is_write ? 0 : ev.size);
                        break;
                case POLYVM_VCPU_EVENT_HLT:
                        return failf(err, errlen, -EINVAL, "the guest halted with nothing to wake it (no irqchip?)");
                case POLYVM_VCPU_EVENT_SHUTDOWN:
                        return failf(err, errlen, -EINVAL, "the guest shut down (triple fault)");
                default:
                        r = polyvm_vcpu_resume(v, NULL, 0);
                        break;
                }
                if (r < 0)
                        return failf(err, errlen, r, "Failed to resume vCPU 0");
        }
}

int pvh_plugin_run(struct polyvm_plugin *p, const struct pvh_config *c, char *err, size_t errlen) {
        struct polyvm_vcpu *vcpus[PVH_MAX_CPUS] = {};
        struct pvh_machine m;
        unsigned n = 0;
        uint64_t entry;
        int r;

        /* As many vCPUs as the launcher gives: an index past them is EINVAL. */
        for (; n < PVH_MAX_CPUS; n++) {
                r = polyvm_plugin_get_vcpu(p, n, &vcpus[n]);
                if (r == -EINVAL && n > 0)
                        break;
                if (r < 0) {
                        failf(err, errlen, r, "Failed to get vCPU %u's socket", n);
                        goto finish;
                }
        }
        r = create_memory(p, c, n, &entry, err, errlen);
        if (r < 0)
                goto finish;
        r = polyvm_plugin_reserve_range(p, POLYVM_SPACE_PIO, PVH_SERIAL_PORT, PVH_SERIAL_PORTS);
        if (r >= 0)
                r = polyvm_plugin_reserve_range(p, POLYVM_SPACE_PIO, PVH_PM1A_EVT, PVH_PM_PORTS);
        if (r < 0) {
                failf(err, errlen, r, "Failed to reserve the serial and PM ports");
                goto finish;
        }
        /* The APs first, so that they are parked before the guest can IPI them. */
        for (unsigned i = n; i-- > 0;) {
                r = setup_vcpu(vcpus[i], i == 0, entry);
                if (r < 0) {
                        failf(err, errlen, r, "Failed to set up vCPU %u", i);
                        goto finish;
                }
        }
        pvh_machine_init(&m, c->input, c->out);
        r = serve(p, vcpus[0], &m, err, errlen);
finish:
        for (unsigned i = 0; i < n; i++)
                polyvm_vcpu_free(vcpus[i]);
        return r;
}
