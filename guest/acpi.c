/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "acpi.h"
#include "io.h"
#include "lib.h"

#define LOW_4G (1ULL << 32)
#define SDT_HEADER_LEN 36
#define SDT_MAX_LEN (16u << 20) /* sanity bound on a table's length */

/* FADT field offsets (ACPI 6.x, table 5.9). */
#define FADT_DSDT 40
#define FADT_SCI_INT 46
#define FADT_SMI_CMD 48
#define FADT_ACPI_ENABLE 52
#define FADT_PM1A_EVT_BLK 56
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM1_EVT_LEN 88
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_X_DSDT 140
#define FADT_X_PM1A_EVT_BLK 148
#define FADT_X_PM1A_CNT_BLK 172
#define FADT_SLEEP_CONTROL_REG 244
#define FADT_SLEEP_STATUS_REG 256
#define FADT_FLAG_RESET_REG_SUP (1u << 10)
#define FADT_FLAG_HW_REDUCED_ACPI (1u << 20)

#define MADT_LAPIC 0
#define MADT_IOAPIC 1
#define MADT_ISO 2
#define MADT_LAPIC_OVERRIDE 5
#define MADT_X2APIC 9
#define MADT_ENABLED 1

#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_PACKAGE_OP 0x12
#define AML_ROOT_CHAR '\\'

#define SLP_TYP_SHIFT 10
#define SLP_TYP_MASK (7u << SLP_TYP_SHIFT)
#define SLP_EN (1u << 13)
/* Hardware-reduced ACPI (ACPI 6.x, 4.8.3.7): the sleep control register. */
#define SLEEP_CTL_TYP_SHIFT 2
#define SLEEP_CTL_TYP_MASK (7u << SLEEP_CTL_TYP_SHIFT)
#define SLEEP_CTL_EN (1u << 5)
#define SLEEP_STS_WAK (1u << 7)

/* MPS INTI flags */
#define INTI_POLARITY_MASK 3u
#define INTI_POLARITY_LOW 3u
#define INTI_TRIGGER_MASK (3u << 2)
#define INTI_TRIGGER_LEVEL (3u << 2)

struct acpi_info acpi;

static bool checksum_ok(const uint8_t *p, uint32_t len) {
        uint8_t sum = 0;
        for (uint32_t i = 0; i < len; i++)
                sum += p[i];
        return sum == 0;
}

static bool in_low_4g(uint64_t addr, uint64_t len) {
        return addr != 0 && addr < LOW_4G && len <= LOW_4G - addr;
}

static const uint8_t *rsdp_at(uint64_t addr) {
        const uint8_t *p = (const uint8_t *) (uintptr_t) addr;
        if (!in_low_4g(addr, 36) || memcmp(p, "RSD PTR ", 8) != 0 || !checksum_ok(p, 20))
                return NULL;
        if (p[15] >= 2 && (get32(p + 20) < 36 || !checksum_ok(p, 36)))
                return NULL;
        return p;
}

/* Linux's acpi_find_root_pointer(): the first KiB of the EBDA, then the
 * BIOS area 0xE0000-0xFFFFF, on 16-byte boundaries. */
static uint64_t rsdp_scan(void) {
        uint64_t ebda = (uint64_t) get16(phys_ptr(0x40e)) << 4;
        if (ebda >= 0x80000 && ebda < 0xa0000)
                for (uint64_t a = ebda; a < ebda + 1024; a += 16)
                        if (rsdp_at(a))
                                return a;
        for (uint64_t a = 0xe0000; a < 0x100000; a += 16)
                if (rsdp_at(a))
                        return a;
        return 0;
}

/* Records a table; returns its header if it is mapped and sane. */
static const uint8_t *add_table(uint64_t addr, bool has_checksum) {
        if (!in_low_4g(addr, SDT_HEADER_LEN) || acpi.n_tables >= ACPI_MAX_TABLES)
                return NULL;
        const uint8_t *p = (const uint8_t *) (uintptr_t) addr;
        uint32_t len = get32(p + 4);
        if (len < SDT_HEADER_LEN || len > SDT_MAX_LEN || !in_low_4g(addr, len))
                return NULL;
        struct acpi_table *t = &acpi.tables[acpi.n_tables++];
        memcpy(t->sig, p, 4);
        t->sig[4] = 0;
        t->addr = addr;
        t->len = len;
        t->checksum_ok = !has_checksum || checksum_ok(p, len);
        return t->checksum_ok ? p : NULL;
}

static void parse_madt(const uint8_t *t) {
        uint32_t len = get32(t + 4);
        acpi.have_madt = true;
        acpi.lapic_addr = get32(t + 36);
        for (uint32_t off = 44; off + 2 <= len;) {
                const uint8_t *e = t + off;
                uint8_t type = e[0], elen = e[1];
                if (elen < 2 || off + elen > len)
                        break;
                switch (type) {
                case MADT_LAPIC:
                        if (elen >= 8 && (get32(e + 4) & MADT_ENABLED) && acpi.n_cpus < ACPI_MAX_CPUS)
                                acpi.cpu_apic_ids[acpi.n_cpus++] = e[3];
                        break;
                case MADT_X2APIC:
                        if (elen >= 16 && (get32(e + 8) & MADT_ENABLED) && acpi.n_cpus < ACPI_MAX_CPUS)
                                acpi.cpu_apic_ids[acpi.n_cpus++] = get32(e + 4);
                        break;
                case MADT_IOAPIC:
                        /* The first IOAPIC is the one with the ISA IRQs. */
                        if (elen >= 12 && !acpi.have_ioapic) {
                                acpi.have_ioapic = true;
                                acpi.ioapic_addr = get32(e + 4);
                                acpi.ioapic_gsi_base = get32(e + 8);
                        }
                        break;
                case MADT_ISO:
                        if (elen >= 10 && acpi.n_isos < ACPI_MAX_ISOS)
                                acpi.isos[acpi.n_isos++] = (struct acpi_iso) {
                                        .source = e[3], .gsi = get32(e + 4), .flags = get16(e + 8) };
                        break;
                case MADT_LAPIC_OVERRIDE:
                        if (elen >= 12)
                                acpi.lapic_addr = get64(e + 4);
                        break;
                }
                off += elen;
        }
}

/* An AML integer constant as it appears in a package element. */
static bool aml_integer(const uint8_t *p, const uint8_t *end, uint64_t *ret) {
        if (p >= end)
                return false;
        switch (p[0]) {
        case AML_ZERO_OP:
                *ret = 0;
                return true;
        case AML_ONE_OP:
                *ret = 1;
                return true;
        case AML_BYTE_PREFIX:
                if (p + 2 > end)
                        return false;
                *ret = p[1];
                return true;
        case AML_WORD_PREFIX:
                if (p + 3 > end)
                        return false;
                *ret = get16(p + 1);
                return true;
        case AML_DWORD_PREFIX:
                if (p + 5 > end)
                        return false;
                *ret = get32(p + 1);
                return true;
        default:
                return false;
        }
}

/* Finds `Name (_S5, Package () { SLP_TYPa, ... })` in the DSDT's AML:
 * NameOp [RootChar] "_S5_" PackageOp PkgLength NumElements elements. */
static void parse_s5(const uint8_t *t) {
        uint32_t len = get32(t + 4);
        const uint8_t *end = t + len;
        for (const uint8_t *p = t + SDT_HEADER_LEN + 1; p + 4 < end; p++) {
                if (memcmp(p, "_S5_", 4) != 0)
                        continue;
                if (!(p[-1] == AML_NAME_OP || (p[-1] == AML_ROOT_CHAR && p - 2 >= t && p[-2] == AML_NAME_OP)))
                        continue;
                const uint8_t *q = p + 4;
                if (q + 3 > end || q[0] != AML_PACKAGE_OP)
                        continue;
                q += 1 + 1 + (q[1] >> 6); /* PkgLength: lead byte + bits 7-6 more bytes */
                q++;                      /* NumElements */
                uint64_t v;
                if (!aml_integer(q, end, &v))
                        continue;
                acpi.have_s5 = true;
                acpi.s5_slp_typa = v & 7;
                return;
        }
}

static struct acpi_gas gas_at(const uint8_t *g) {
        return (struct acpi_gas) { g[0], g[1], g[2], g[3], get64(g + 4) };
}

static void parse_fadt(const uint8_t *t) {
        uint32_t len = get32(t + 4);
        acpi.have_fadt = true;
        if (len >= FADT_SCI_INT + 2)
                acpi.sci_irq = get16(t + FADT_SCI_INT);
        if (len >= FADT_ACPI_ENABLE + 1) {
                acpi.smi_cmd = get32(t + FADT_SMI_CMD);
                acpi.acpi_enable = t[FADT_ACPI_ENABLE];
        }
        if (len >= FADT_PM1A_EVT_BLK + 4)
                acpi.pm1a_evt = get32(t + FADT_PM1A_EVT_BLK);
        if (len >= FADT_PM1A_CNT_BLK + 4)
                acpi.pm1a_cnt = get32(t + FADT_PM1A_CNT_BLK);
        if (len >= FADT_PM1_EVT_LEN + 1)
                acpi.pm1_evt_len = t[FADT_PM1_EVT_LEN];
        if (len >= FADT_FLAGS + 4)
                acpi.fadt_flags = get32(t + FADT_FLAGS);
        /* The 64-bit X_ blocks win when they are I/O and set, as in Linux. */
        if (len >= FADT_X_PM1A_EVT_BLK + 12 && t[FADT_X_PM1A_EVT_BLK] == 1 && get64(t + FADT_X_PM1A_EVT_BLK + 4)) {
                acpi.pm1a_evt = get64(t + FADT_X_PM1A_EVT_BLK + 4);
                if (!acpi.pm1_evt_len)
                        acpi.pm1_evt_len = t[FADT_X_PM1A_EVT_BLK + 1] / 8;
        }
        if (len >= FADT_X_PM1A_CNT_BLK + 12 && t[FADT_X_PM1A_CNT_BLK] == 1 && get64(t + FADT_X_PM1A_CNT_BLK + 4))
                acpi.pm1a_cnt = get64(t + FADT_X_PM1A_CNT_BLK + 4);
        if (len >= FADT_RESET_VALUE + 1 && (acpi.fadt_flags & FADT_FLAG_RESET_REG_SUP)) {
                acpi.reset_reg = gas_at(t + FADT_RESET_REG);
                acpi.reset_value = t[FADT_RESET_VALUE];
                acpi.reset_supported = acpi.reset_reg.address != 0;
        }
        /* Hardware-reduced platforms (e.g. QEMU microvm) have no PM1 blocks;
         * sleep goes through SLEEP_CONTROL_REG (FADT revision 5+). */
        acpi.hw_reduced = acpi.fadt_flags & FADT_FLAG_HW_REDUCED_ACPI;
        if (acpi.hw_reduced && len >= FADT_SLEEP_STATUS_REG + 12) {
                acpi.sleep_control = gas_at(t + FADT_SLEEP_CONTROL_REG);
                acpi.sleep_status = gas_at(t + FADT_SLEEP_STATUS_REG);
        }
        acpi.dsdt = get32(t + FADT_DSDT);
        if (len >= FADT_X_DSDT + 8 && get64(t + FADT_X_DSDT))
                acpi.dsdt = get64(t + FADT_X_DSDT);
}

bool acpi_init(uint64_t rsdp_hint) {
        const uint8_t *rsdp = rsdp_hint ? rsdp_at(rsdp_hint) : NULL;
        acpi.rsdp_source = "boot info";
        if (!rsdp) {
                uint64_t a = rsdp_scan();
                rsdp = a ? rsdp_at(a) : NULL;
                acpi.rsdp_source = "BIOS area scan";
        }
        if (!rsdp)
                return false;
        acpi.rsdp = (uintptr_t) rsdp;
        acpi.revision = rsdp[15];

        /* XSDT when the RSDP is version 2+ and has one, else the RSDT. */
        uint64_t xsdt = acpi.revision >= 2 ? get64(rsdp + 24) : 0;
        const uint8_t *root = xsdt ? add_table(xsdt, true) : NULL;
        unsigned entry_size = 8;
        if (!root) {
                root = add_table(get32(rsdp + 16), true);
                entry_size = 4;
        }
        if (!root)
                return true;

        uint32_t root_len = get32(root + 4);
        for (uint32_t off = SDT_HEADER_LEN; off + entry_size <= root_len; off += entry_size) {
                uint64_t addr = entry_size == 8 ? get64(root + off) : get32(root + off);
                const uint8_t *t = add_table(addr, true);
                if (!t)
                        continue;
                if (memcmp(t, "APIC", 4) == 0 && !acpi.have_madt)
                        parse_madt(t);
                else if (memcmp(t, "FACP", 4) == 0 && !acpi.have_fadt)
                        parse_fadt(t);
        }
        if (acpi.dsdt) {
                const uint8_t *d = add_table(acpi.dsdt, true);
                if (d && memcmp(d, "DSDT", 4) == 0)
                        parse_s5(d);
        }
        return true;
}

uint32_t acpi_isa_irq_gsi(uint8_t irq, uint16_t *ret_flags) {
        for (unsigned i = 0; i < acpi.n_isos; i++)
                if (acpi.isos[i].source == irq) {
                        *ret_flags = acpi.isos[i].flags;
                        return acpi.isos[i].gsi;
                }
        *ret_flags = 0; /* conforms to the bus: ISA is edge, active high */
        return irq;
}

uint32_t acpi_sci_gsi(uint16_t *ret_flags) {
        uint16_t flags = 0;
        uint32_t gsi = acpi.sci_irq;
        for (unsigned i = 0; i < acpi.n_isos; i++)
                if (acpi.isos[i].source == acpi.sci_irq) {
                        flags = acpi.isos[i].flags;
                        gsi = acpi.isos[i].gsi;
                        break;
                }
        if (!(flags & INTI_TRIGGER_MASK))
                flags |= INTI_TRIGGER_LEVEL;
        if (!(flags & INTI_POLARITY_MASK))
                flags |= INTI_POLARITY_LOW;
        *ret_flags = flags;
        return gsi;
}

/* Writes one byte to a generic address; false if the space is unknown or
 * the address out of reach. */
static bool gas_write8(const struct acpi_gas *g, uint8_t v) {
        switch (g->space_id) {
        case 0:
                if (!g->address || g->address >= LOW_4G)
                        return false;
                mmio_write8(g->address, v);
                return true;
        case 1:
                if (!g->address || g->address > 0xffff)
                        return false;
                outb((uint16_t) g->address, v);
                return true;
        case 2: {
                /* PCI config space of bus 0: device, function, offset. */
                uint32_t dev = (g->address >> 32) & 0x1f, fn = (g->address >> 16) & 7, reg = g->address & 0xff;
                outl(0xcf8, 0x80000000u | dev << 11 | fn << 8 | (reg & 0xfc));
                outb((uint16_t) (0xcfc + (reg & 3)), v);
                return true;
        }
        default:
                return false;
        }
}

void acpi_poweroff(void) {
        if (!acpi.have_s5)
                return;
        if (acpi.hw_reduced) {
                /* As ACPICA's acpi_hw_extended_sleep(): clear WAK_STS, then
                 * SLP_TYP and SLP_EN in one write. */
                if (acpi.sleep_status.address)
                        (void) gas_write8(&acpi.sleep_status, SLEEP_STS_WAK);
                (void) gas_write8(&acpi.sleep_control,
                                  (uint8_t) (((acpi.s5_slp_typa << SLEEP_CTL_TYP_SHIFT) & SLEEP_CTL_TYP_MASK) |
                                             SLEEP_CTL_EN));
                return;
        }
        if (!acpi.pm1a_cnt || acpi.pm1a_cnt > 0xffff)
                return;
        /* As Linux's acpi_hw_legacy_sleep(): set SLP_TYP, then SLP_EN. */
        uint16_t port = (uint16_t) acpi.pm1a_cnt;
        uint16_t v = inw(port) & ~(SLP_TYP_MASK | SLP_EN);
        v |= (uint16_t) (acpi.s5_slp_typa << SLP_TYP_SHIFT);
        outw(port, v);
        outw(port, v | SLP_EN);
}

void acpi_reset(void) {
        if (acpi.reset_supported)
                (void) gas_write8(&acpi.reset_reg, acpi.reset_value);
}
