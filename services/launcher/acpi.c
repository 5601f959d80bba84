/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ACPI tables for a PC-like guest without firmware: what Linux needs to
 * find the CPUs and IOAPIC (MADT; Debian's kernel has no MP-table parser),
 * power off (FADT PM1a + DSDT \_S5), reset (FADT RESET_REG), the COM1
 * port and the PCI root bridge (DSDT). Layout inside LAYOUT_ACPI_START..END, each table 64-byte
 * aligned: RSDP, XSDT, FADT, FACS, DSDT, MADT. */

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "acpi-aml.h"
#include "acpi.h"
#include "config.h"
#include "layout.h"
#include "macro.h"

#define ACPI_OEM_ID "POLYVM"
#define ACPI_OEM_REVISION 1
#define ACPI_CREATOR_ID "PLVM"
#define ACPI_CREATOR_REVISION 1

struct acpi_header {
        char signature[4];
        uint32_t length;
        uint8_t revision;
        uint8_t checksum;
        char oem_id[6];
        char oem_table_id[8];
        uint32_t oem_revision;
        char creator_id[4];
        uint32_t creator_revision;
} __attribute__((packed));

struct acpi_rsdp {
        char signature[8];
        uint8_t checksum;        /* of the first 20 bytes (ACPI 1.0 part) */
        char oem_id[6];
        uint8_t revision;
        uint32_t rsdt_address;
        uint32_t length;
        uint64_t xsdt_address;
        uint8_t extended_checksum; /* of all 36 bytes */
        uint8_t reserved[3];
} __attribute__((packed));

/* Generic Address Structure. */
struct acpi_gas {
        uint8_t space_id;
        uint8_t bit_width;
        uint8_t bit_offset;
        uint8_t access_size;
        uint64_t address;
} __attribute__((packed));

#define ACPI_GAS_SYSTEM_IO 1
#define ACPI_GAS_ACCESS_BYTE 1
#define ACPI_GAS_ACCESS_WORD 2
#define ACPI_GAS_ACCESS_DWORD 3

struct acpi_fadt {
        struct acpi_header h;
        uint32_t firmware_ctrl;
        uint32_t dsdt;
        uint8_t reserved0;
        uint8_t preferred_pm_profile;
        uint16_t sci_int;
        uint32_t smi_cmd;
        uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
        uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
        uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
        uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
        uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
        uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
        uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
        uint16_t iapc_boot_arch;
        uint8_t reserved1;
        uint32_t flags;
        struct acpi_gas reset_reg;
        uint8_t reset_value;
        uint16_t arm_boot_arch;
        uint8_t minor_version;
        uint64_t x_firmware_ctrl;
        uint64_t x_dsdt;
        struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
        struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
        struct acpi_gas sleep_control_reg, sleep_status_reg;
        uint64_t hypervisor_vendor_id;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_header) == 36, "ACPI table header");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");
_Static_assert(offsetof(struct acpi_fadt, sci_int) == 46, "FADT SCI_INT");
_Static_assert(offsetof(struct acpi_fadt, pm1a_evt_blk) == 56, "FADT PM1a_EVT_BLK");
_Static_assert(offsetof(struct acpi_fadt, pm1_evt_len) == 88, "FADT PM1_EVT_LEN");
_Static_assert(offsetof(struct acpi_fadt, iapc_boot_arch) == 109, "FADT IAPC_BOOT_ARCH");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT Flags");
_Static_assert(offsetof(struct acpi_fadt, reset_reg) == 116, "FADT RESET_REG");
_Static_assert(offsetof(struct acpi_fadt, minor_version) == 131, "FADT minor version");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT X_DSDT");
_Static_assert(offsetof(struct acpi_fadt, x_pm1a_evt_blk) == 148, "FADT X_PM1a_EVT_BLK");
_Static_assert(offsetof(struct acpi_fadt, sleep_control_reg) == 244, "FADT SLEEP_CONTROL_REG");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT revision 6");

#define FADT_WBINVD (1u << 0)
#define FADT_PROC_C1 (1u << 2)
#define FADT_PWR_BUTTON (1u << 4) /* set: power button is a control-method device, not PM1's PWRBTN */
#define FADT_SLP_BUTTON (1u << 5) /* set: no fixed-feature sleep button */
#define FADT_RESET_REG_SUP (1u << 10)

#define IAPC_LEGACY_DEVICES (1u << 0)
#define IAPC_8042 (1u << 1)
#define IAPC_VGA_NOT_PRESENT (1u << 2)

struct acpi_facs {
        char signature[4];
        uint32_t length;
        uint32_t hardware_signature;
        uint32_t firmware_waking_vector;
        uint32_t global_lock;
        uint32_t flags;
        uint64_t x_firmware_waking_vector;
        uint8_t version;
        uint8_t reserved[3];
        uint32_t ospm_flags;
        uint8_t reserved2[24];
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_facs) == 64, "FACS");

struct madt_header {
        struct acpi_header h;
        uint32_t lapic_address;
        uint32_t flags;
} __attribute__((packed));

struct madt_lapic {
        uint8_t type, length, processor_uid, apic_id;
        uint32_t flags;
} __attribute__((packed));

struct madt_ioapic {
        uint8_t type, length, ioapic_id, reserved;
        uint32_t address;
        uint32_t gsi_base;
} __attribute__((packed));

struct madt_iso {
        uint8_t type, length, bus, source;
        uint32_t gsi;
        uint16_t flags;
} __attribute__((packed));

struct madt_lapic_nmi {
        uint8_t type, length, processor_uid;
        uint16_t flags;
        uint8_t lint;
} __attribute__((packed));

_Static_assert(sizeof(struct madt_lapic) == 8, "MADT LAPIC");
_Static_assert(sizeof(struct madt_ioapic) == 12, "MADT IOAPIC");
_Static_assert(sizeof(struct madt_iso) == 10, "MADT ISO");
_Static_assert(sizeof(struct madt_lapic_nmi) == 6, "MADT LAPIC NMI");

#define MADT_PCAT_COMPAT 1u
#define MADT_LAPIC_ENABLED 1u
#define MADT_ISO_ACTIVE_HIGH 0x1
#define MADT_ISO_LEVEL 0xc

/* Offsets from LAYOUT_ACPI_START. The MADT goes last: it grows with vCPUs. */
#define ACPI_RSDP_OFF 0x000
#define ACPI_XSDT_OFF 0x040
#define ACPI_FADT_OFF 0x080
#define ACPI_FACS_OFF 0x1c0
#define ACPI_DSDT_OFF 0x200
#define ACPI_DSDT_MAX 0x800
#define ACPI_MADT_OFF (ACPI_DSDT_OFF + ACPI_DSDT_MAX)

static uint8_t acpi_checksum(const void *p, size_t n) {
        const uint8_t *b = p;
        uint8_t sum = 0;

        for (size_t i = 0; i < n; i++)
                sum += b[i];
        return (uint8_t) -sum;
}

static void header_init(struct acpi_header *h, const char *sig, uint32_t length, uint8_t revision) {
        char table_id[9];

        memcpy(h->signature, sig, 4);
        h->length = length;
        h->revision = revision;
        h->checksum = 0;
        memcpy(h->oem_id, ACPI_OEM_ID, 6);
        /* "POLYVM" + the signature's first two letters, so each table's id differs. */
        memcpy(table_id, ACPI_OEM_ID, 6);
        memcpy(table_id + 6, sig, 2);
        memcpy(h->oem_table_id, table_id, 8);
        h->oem_revision = ACPI_OEM_REVISION;
        memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
        h->creator_revision = ACPI_CREATOR_REVISION;
}

static void header_finish(struct acpi_header *h) {
        h->checksum = 0;
        h->checksum = acpi_checksum(h, h->length);
}

static struct acpi_gas gas_io(uint16_t port, uint8_t bytes) {
        return (struct acpi_gas) {
                .space_id = ACPI_GAS_SYSTEM_IO,
                .bit_width = (uint8_t) (bytes * 8),
                .access_size = bytes == 1 ? ACPI_GAS_ACCESS_BYTE :
                               bytes == 2 ? ACPI_GAS_ACCESS_WORD : ACPI_GAS_ACCESS_DWORD,
                .address = port,
        };
}

/* PM1a registers are 16-bit: the event block holds STS then EN. */
static void build_fadt(uint8_t *base, uint64_t facs, uint64_t dsdt) {
        struct acpi_fadt *f = (struct acpi_fadt *) base;

        memset(f, 0, sizeof(*f));
        header_init(&f->h, "FACP", sizeof(*f), 6);
        f->firmware_ctrl = (uint32_t) facs;
        f->dsdt = (uint32_t) dsdt;
        f->preferred_pm_profile = 0; /* unspecified */
        f->sci_int = LAYOUT_SCI_IRQ;
        /* SMI_CMD 0: no SMM, the platform is always in ACPI mode. */
        f->pm1a_evt_blk = LAYOUT_PM1A_EVT_PORT;
        f->pm1a_cnt_blk = LAYOUT_PM1A_CNT_PORT;
        f->pm1_evt_len = 4;
        f->pm1_cnt_len = 2;
        /* No C2/C3: latencies above the limits (101, 1001) say "not supported". */
        f->p_lvl2_lat = 101;
        f->p_lvl3_lat = 1001;
        f->century = 0x32; /* CMOS RTC century register, as on PCs */
        /* Legacy devices (COM1) yes, no i8042 (not emulated: Linux would spend
         * emulated port I/O probing it, and reboots through RESET_REG first),
         * no VGA. The CMOS RTC is a device kind, so its flag stays clear. */
        f->iapc_boot_arch = IAPC_LEGACY_DEVICES | IAPC_VGA_NOT_PRESENT;
        /* PWR_BUTTON clear: the power button is the fixed feature in PM1
         * (pm.c, Stop()); Linux only creates LNXPWRBN and enables PWRBTN_EN
         * then. No sleep button at all. */
        f->flags = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_RESET_REG_SUP;
        f->reset_reg = gas_io(LAYOUT_RESET_PORT, 1);
        f->reset_value = LAYOUT_RESET_VALUE;
        f->minor_version = 0;
        f->x_firmware_ctrl = facs;
        f->x_dsdt = dsdt;
        f->x_pm1a_evt_blk = gas_io(LAYOUT_PM1A_EVT_PORT, 4);
        f->x_pm1a_evt_blk.access_size = ACPI_GAS_ACCESS_WORD;
        f->x_pm1a_cnt_blk = gas_io(LAYOUT_PM1A_CNT_PORT, 2);
        header_finish(&f->h);
}

static void build_facs(uint8_t *base) {
        struct acpi_facs *f = (struct acpi_facs *) base;

        *f = (struct acpi_facs) { .length = sizeof(*f), .version = 2 };
        memcpy(f->signature, "FACS", 4);
}

/* The Package for \_S5_: SLP_TYPa, SLP_TYPb, two reserved. */
static void dsdt_sleep_state(struct aml *a) {
        size_t pkg;

        aml_byte(a, AML_NAME_OP);
        aml_name_string(a, "_S5_");
        aml_byte(a, AML_PACKAGE_OP);
        pkg = aml_pkg_begin(a);
        aml_byte(a, 4); /* NumElements */
        /* BytePrefix even for small values, as ASL compilers emit it. */
        aml_byte(a, AML_BYTE_PREFIX);
        aml_byte(a, LAYOUT_SLP_TYP_S5);
        aml_byte(a, AML_BYTE_PREFIX);
        aml_byte(a, LAYOUT_SLP_TYP_S5);
        aml_byte(a, AML_ZERO_OP);
        aml_byte(a, AML_ZERO_OP);
        aml_pkg_end(a, pkg);
}

/* Name (name, EisaId (id)) */
static void dsdt_name_eisa(struct aml *a, const char *name, const char *id) {
        uint32_t v = aml_eisa_id(id);

        aml_byte(a, AML_NAME_OP);
        aml_name_string(a, name);
        aml_byte(a, AML_DWORD_PREFIX);
        aml_bytes(a, &v, 4);
}

/* Name (name, value) */
static void dsdt_name_integer(struct aml *a, const char *name, uint64_t value) {
        aml_byte(a, AML_NAME_OP);
        aml_name_string(a, name);
        aml_integer(a, value);
}

/* Name (name, Buffer () { bytes }): a _CRS resource template. */
static void dsdt_name_buffer(struct aml *a, const char *name, const uint8_t *bytes, size_t len) {
        size_t buf;

        aml_byte(a, AML_NAME_OP);
        aml_name_string(a, name);
        aml_byte(a, AML_BUFFER_OP);
        buf = aml_pkg_begin(a);
        aml_integer(a, len);
        aml_bytes(a, bytes, len);
        aml_pkg_end(a, buf);
}

/* Device (COM1) { _HID PNP0501, _UID 1, _CRS { IO 0x3F8/8, IRQNoFlags 4 } }:
 * what lets Linux's 8250_pnp claim ttyS0 from ACPI. */
static void dsdt_com1(struct aml *a) {
        static const uint8_t crs[] = {
                0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, /* IO (Decode16, 0x3F8, 0x3F8, 1, 8) */
                0x22, 0x10, 0x00,                               /* IRQNoFlags () {4} */
                0x79, 0x00,                                     /* EndTag */
        };
        size_t dev;

        aml_byte(a, AML_EXT_OP_PREFIX);
        aml_byte(a, AML_DEVICE_OP);
        dev = aml_pkg_begin(a);
        aml_name_string(a, "COM1");
        dsdt_name_eisa(a, "_HID", "PNP0501");
        dsdt_name_integer(a, "_UID", 1);
        dsdt_name_buffer(a, "_CRS", crs, sizeof(crs));
        aml_pkg_end(a, dev);
}

/* Device (PCI0): the root bridge of pci-host.c, so that Linux's
 * acpi_pci_root finds bus 0 and knows what it decodes: conventional PCI
 * (PNP0A03; no MMCONFIG), segment 0, bus 0 only, the config ports
 * 0xCF8-0xCFF consumed, every other port, and the 32-bit MMIO hole up to
 * the IOAPIC for BARs. */
static void dsdt_pci0(struct aml *a) {
        static const uint8_t crs[] = {
                /* WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0, 0, 1) */
                0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
                /* IO (Decode16, 0x0CF8, 0x0CF8, 1, 8) */
                0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08,
                /* WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, 0x0000, 0x0CF7, 0, 0x0CF8) */
                0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0xf7, 0x0c, 0x00, 0x00, 0xf8, 0x0c,
                /* WordIO (..., 0x0D00, 0xFFFF, 0, 0xF300) */
                0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3,
                /* DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
                 *              0, 0xC0000000, 0xFEBFFFFF, 0, 0x3EC00000) */
                0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0,
                0xff, 0xff, 0xbf, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x3e,
                0x79, 0x00, /* EndTag */
        };
        size_t dev;

        _Static_assert(LAYOUT_MMIO_HOLE_START == 0xc0000000ULL && LAYOUT_IOAPIC == 0xfec00000ULL,
                       "PCI0 _CRS MMIO window matches layout.h");
        aml_byte(a, AML_EXT_OP_PREFIX);
        aml_byte(a, AML_DEVICE_OP);
        dev = aml_pkg_begin(a);
        aml_name_string(a, "PCI0");
        dsdt_name_eisa(a, "_HID", "PNP0A03");
        dsdt_name_integer(a, "_SEG", 0);
        dsdt_name_integer(a, "_BBN", 0);
        dsdt_name_integer(a, "_UID", 0);
        dsdt_name_buffer(a, "_CRS", crs, sizeof(crs));
        aml_pkg_end(a, dev);
}

static int build_dsdt(uint8_t *base, size_t max, size_t *ret_len) {
        struct acpi_header *h = (struct acpi_header *) base;
        struct aml a;
        size_t scope, len;
        int r;

        aml_init(&a, base + sizeof(*h), max - sizeof(*h));
        dsdt_sleep_state(&a);
        aml_byte(&a, AML_SCOPE_OP);
        scope = aml_pkg_begin(&a);
        aml_name_string(&a, "\\_SB_");
        dsdt_com1(&a);
        dsdt_pci0(&a);
        aml_pkg_end(&a, scope);
        r = aml_finish(&a, &len);
        if (r < 0)
                return r;

        /* Revision 2: integers are 64-bit. */
        header_init(h, "DSDT", (uint32_t) (sizeof(*h) + len), 2);
        header_finish(h);
        *ret_len = ALIGN_UP(sizeof(*h) + len, 64);
        return 0;
}

static size_t build_madt(uint8_t *base, unsigned n_vcpus) {
        struct madt_header *m = (struct madt_header *) base;
        size_t off = sizeof(*m);

        m->lapic_address = (uint32_t) LAYOUT_LAPIC;
        m->flags = MADT_PCAT_COMPAT;
        for (unsigned i = 0; i < n_vcpus; i++) {
                *(struct madt_lapic *) (base + off) = (struct madt_lapic) {
                        .type = 0,
                        .length = sizeof(struct madt_lapic),
                        .processor_uid = (uint8_t) i,
                        .apic_id = (uint8_t) i,
                        .flags = MADT_LAPIC_ENABLED,
                };
                off += sizeof(struct madt_lapic);
        }
        *(struct madt_ioapic *) (base + off) = (struct madt_ioapic) {
                .type = 1,
                .length = sizeof(struct madt_ioapic),
                .ioapic_id = (uint8_t) n_vcpus,
                .address = (uint32_t) LAYOUT_IOAPIC,
                .gsi_base = 0,
        };
        off += sizeof(struct madt_ioapic);
        /* The SCI is level-triggered, active high on GSI 9. No override for
         * IRQ0: KVM's default routing sends the PIT to IOAPIC pin 0, which is
         * the identity mapping ACPI assumes without an override. */
        *(struct madt_iso *) (base + off) = (struct madt_iso) {
                .type = 2,
                .length = sizeof(struct madt_iso),
                .bus = 0,
                .source = LAYOUT_SCI_IRQ,
                .gsi = LAYOUT_SCI_IRQ,
                .flags = MADT_ISO_ACTIVE_HIGH | MADT_ISO_LEVEL,
        };
        off += sizeof(struct madt_iso);
        /* LINT1 of every LAPIC is NMI (the vCPU engine programs it so). */
        *(struct madt_lapic_nmi *) (base + off) = (struct madt_lapic_nmi) {
                .type = 4,
                .length = sizeof(struct madt_lapic_nmi),
                .processor_uid = 0xff,
                .flags = 0,
                .lint = 1,
        };
        off += sizeof(struct madt_lapic_nmi);

        header_init(&m->h, "APIC", (uint32_t) off, 5);
        header_finish(&m->h);
        return off;
}

static void build_xsdt(uint8_t *base, const uint64_t *tables, size_t n) {
        struct acpi_header *h = (struct acpi_header *) base;

        header_init(h, "XSDT", (uint32_t) (sizeof(*h) + n * sizeof(uint64_t)), 1);
        memcpy(base + sizeof(*h), tables, n * sizeof(uint64_t));
        header_finish(h);
}

static void build_rsdp(uint8_t *base, uint64_t xsdt) {
        struct acpi_rsdp *r = (struct acpi_rsdp *) base;

        *r = (struct acpi_rsdp) {
                .revision = 2,
                .length = sizeof(*r),
                .xsdt_address = xsdt,
        };
        memcpy(r->signature, "RSD PTR ", 8);
        memcpy(r->oem_id, ACPI_OEM_ID, 6);
        r->checksum = acpi_checksum(r, 20);
        r->extended_checksum = acpi_checksum(r, sizeof(*r));
}

int acpi_build(void *mem, uint64_t memory_bytes, unsigned n_vcpus, uint64_t *ret_rsdp) {
        uint8_t *area = (uint8_t *) mem + LAYOUT_ACPI_START;
        const uint64_t start = LAYOUT_ACPI_START;
        uint64_t tables[2];
        size_t dsdt_len;
        int r;

        /* MADT CPU entries use 8-bit ids and the IOAPIC takes id n_vcpus. */
        if (n_vcpus == 0 || n_vcpus > CONFIG_MAX_VCPUS)
                return -EINVAL;
        if (memory_bytes < LAYOUT_ACPI_END)
                return -EINVAL;
        _Static_assert(ACPI_MADT_OFF + sizeof(struct madt_header) +
                               CONFIG_MAX_VCPUS * sizeof(struct madt_lapic) + sizeof(struct madt_ioapic) +
                               sizeof(struct madt_iso) + sizeof(struct madt_lapic_nmi) <=
                       LAYOUT_ACPI_END - LAYOUT_ACPI_START, "ACPI tables fit their area");

        memset(area, 0, LAYOUT_ACPI_END - LAYOUT_ACPI_START);
        r = build_dsdt(area + ACPI_DSDT_OFF, ACPI_DSDT_MAX, &dsdt_len);
        if (r < 0)
                return r;
        build_facs(area + ACPI_FACS_OFF);
        build_fadt(area + ACPI_FADT_OFF, start + ACPI_FACS_OFF, start + ACPI_DSDT_OFF);
        build_madt(area + ACPI_MADT_OFF, n_vcpus);
        tables[0] = start + ACPI_FADT_OFF;
        tables[1] = start + ACPI_MADT_OFF;
        build_xsdt(area + ACPI_XSDT_OFF, tables, ELEMENTSOF(tables));
        build_rsdp(area + ACPI_RSDP_OFF, start + ACPI_XSDT_OFF);

        if (ret_rsdp)
                *ret_rsdp = start + ACPI_RSDP_OFF;
        return 0;
}
