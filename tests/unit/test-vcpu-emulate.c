/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The instructions the vCPU engine completes after a KVM emulation failure,
 * the failure message, and guest-physical to mapping-offset translation. */

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "emulate.h"
#include "guest-ram.h"
#include "layout.h"

#define RIP 0xffffffff81000000ULL
#define FLAGS_OTHER 0x246ULL /* IF, ZF, PF, reserved bit 1 */

static int complete(const uint8_t *b, size_t len, struct emulate_state *s, enum emulate_insn *insn) {
        *s = (struct emulate_state) { .rip = RIP, .rflags = FLAGS_OTHER };
        return emulate_complete(b, len, s, insn);
}

static void test_int3_advances_rip_and_injects_bp(void) {
        const uint8_t b[] = { 0xcc };
        struct emulate_state s;
        enum emulate_insn insn;

        g_assert_cmpint(complete(b, sizeof(b), &s, &insn), ==, EMULATE_INT3);
        g_assert_cmpint(insn, ==, EMULATE_INT3);
        g_assert_cmphex(s.rip, ==, RIP + 1);
        g_assert_true(s.inject_bp);
        g_assert_cmphex(s.rflags, ==, FLAGS_OTHER);
}

static void test_int3_ignores_bytes_fetched_after_it(void) {
        /* KVM reports what it fetched, often more than the instruction. */
        const uint8_t b[15] = { 0xcc, 0x0f, 0x0b, 0x90, 0x90 };
        struct emulate_state s;
        size_t len = 0;
        enum emulate_insn insn;

        g_assert_cmpint(emulate_decode(b, sizeof(b), &insn, &len), ==, EMULATE_INT3);
        g_assert_cmpuint(len, ==, 1);
        g_assert_cmpint(complete(b, sizeof(b), &s, NULL), ==, EMULATE_INT3);
        g_assert_cmphex(s.rip, ==, RIP + 1);
}

static void test_clac_clears_ac_only(void) {
        const uint8_t b[] = { 0x0f, 0x01, 0xca };
        struct emulate_state s = { .rip = RIP, .rflags = FLAGS_OTHER | EMULATE_RFLAGS_AC };

        g_assert_cmpint(emulate_complete(b, sizeof(b), &s, NULL), ==, EMULATE_CLAC);
        g_assert_cmphex(s.rip, ==, RIP + 3);
        g_assert_cmphex(s.rflags, ==, FLAGS_OTHER);
        g_assert_false(s.inject_bp);
}

static void test_stac_sets_ac_only(void) {
        const uint8_t b[] = { 0x0f, 0x01, 0xcb, 0xcc };
        struct emulate_state s;

        g_assert_cmpint(complete(b, sizeof(b), &s, NULL), ==, EMULATE_STAC);
        g_assert_cmphex(s.rip, ==, RIP + 3);
        g_assert_cmphex(s.rflags, ==, FLAGS_OTHER | EMULATE_RFLAGS_AC);
        g_assert_false(s.inject_bp);
}

static void test_fwait_is_a_one_byte_noop(void) {
        const uint8_t b[] = { 0x9b };
        struct emulate_state s;

        g_assert_cmpint(complete(b, sizeof(b), &s, NULL), ==, EMULATE_FWAIT);
        g_assert_cmphex(s.rip, ==, RIP + 1);
        g_assert_cmphex(s.rflags, ==, FLAGS_OTHER);
        g_assert_false(s.inject_bp);
}

static void assert_refused(const uint8_t *b, size_t len) {
        struct emulate_state s;
        enum emulate_insn insn = _EMULATE_INSN_MAX;

        g_assert_cmpint(complete(b, len, &s, &insn), ==, -EOPNOTSUPP);
        /* Nothing touched on refusal. */
        g_assert_cmphex(s.rip, ==, RIP);
        g_assert_cmphex(s.rflags, ==, FLAGS_OTHER);
        g_assert_false(s.inject_bp);
        g_assert_cmpint(insn, ==, _EMULATE_INSN_MAX);
}

static void test_unknown_instructions_are_refused(void) {
        const uint8_t cmpxchg16b[] = { 0x48, 0x0f, 0xc7, 0x0e };
        const uint8_t xrstor[] = { 0x48, 0x0f, 0xae, 0x2f };
        const uint8_t monitor[] = { 0x0f, 0x01, 0xc8 };
        const uint8_t near_clac[] = { 0x0f, 0x01, 0xcc };
        const uint8_t int_n[] = { 0xcd, 0x03 };
        const uint8_t ud2[] = { 0x0f, 0x0b };

        assert_refused(cmpxchg16b, sizeof(cmpxchg16b));
        assert_refused(xrstor, sizeof(xrstor));
        assert_refused(monitor, sizeof(monitor));
        assert_refused(near_clac, sizeof(near_clac));
        assert_refused(int_n, sizeof(int_n));
        assert_refused(ud2, sizeof(ud2));
}

static void test_truncated_bytes_are_refused(void) {
        const uint8_t b[] = { 0x0f, 0x01, 0xca };

        assert_refused(b, 1);
        assert_refused(b, 2);
}

static void test_zero_length_and_null_are_refused(void) {
        const uint8_t b[] = { 0xcc };

        assert_refused(b, 0);
        assert_refused(NULL, 0);
        assert_refused(NULL, 3);
        g_assert_cmpint(emulate_decode(NULL, 1, NULL, NULL), ==, -EOPNOTSUPP);
}

static void test_prefixed_forms_are_refused(void) {
        const uint8_t opsize_fwait[] = { 0x66, 0x9b };
        const uint8_t rep_int3[] = { 0xf3, 0xcc };
        const uint8_t cs_clac[] = { 0x2e, 0x0f, 0x01, 0xca };
        const uint8_t rex_stac[] = { 0x48, 0x0f, 0x01, 0xcb };
        const uint8_t lock_fwait[] = { 0xf0, 0x9b };

        assert_refused(opsize_fwait, sizeof(opsize_fwait));
        assert_refused(rep_int3, sizeof(rep_int3));
        assert_refused(cs_clac, sizeof(cs_clac));
        assert_refused(rex_stac, sizeof(rex_stac));
        assert_refused(lock_fwait, sizeof(lock_fwait));
}

static void test_insn_names(void) {
        g_assert_cmpstr(emulate_insn_to_string(EMULATE_INT3), ==, "int3");
        g_assert_cmpstr(emulate_insn_to_string(EMULATE_CLAC), ==, "clac");
        g_assert_cmpstr(emulate_insn_to_string(EMULATE_STAC), ==, "stac");
        g_assert_cmpstr(emulate_insn_to_string(EMULATE_FWAIT), ==, "fwait");
        g_assert_null(emulate_insn_to_string(_EMULATE_INSN_MAX));
        g_assert_null(emulate_insn_to_string((enum emulate_insn) -1));
}

static void test_failure_message_names_rip_and_bytes(void) {
        const uint8_t b[] = { 0x0f, 0xc7, 0x0e };
        char buf[256];

        emulate_format_failure(buf, sizeof(buf), RIP, b, sizeof(b));
        g_assert_cmpstr(buf, ==, "emulation failure at rip 0xffffffff81000000: 0f c7 0e (3 bytes)");

        emulate_format_failure(buf, sizeof(buf), 0x1000, b, 1);
        g_assert_cmpstr(buf, ==, "emulation failure at rip 0x1000: 0f (1 byte)");

        emulate_format_failure(buf, sizeof(buf), 0x1000, NULL, 0);
        g_assert_cmpstr(buf, ==, "emulation failure at rip 0x1000: no instruction bytes");
}

static void test_failure_message_caps_at_15_bytes(void) {
        uint8_t b[20];
        char buf[256];

        memset(b, 0x90, sizeof(b));
        emulate_format_failure(buf, sizeof(buf), 0, b, sizeof(b));
        g_assert_cmpstr(buf, ==, "emulation failure at rip 0x0: 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 (15 bytes)");
}

static void test_failure_message_truncates_within_buffer(void) {
        const uint8_t b[] = { 0x0f, 0xc7, 0x0e };
        char buf[40];

        for (size_t size = 1; size < 30; size++) {
                memset(buf, 'X', sizeof(buf));
                emulate_format_failure(buf, size, RIP, b, sizeof(b));
                g_assert_cmpuint(strlen(buf), ==, size - 1);
                g_assert_cmpint(buf[size], ==, 'X'); /* nothing written past size */
        }
        emulate_format_failure(NULL, 0, RIP, b, sizeof(b)); /* no crash */
}

static void test_gpa_low_ram_maps_one_to_one(void) {
        uint64_t off = 0;

        g_assert_cmpint(guest_ram_offset(0x1000, 15, 256 << 20, &off), ==, 0);
        g_assert_cmphex(off, ==, 0x1000);
        g_assert_cmpint(guest_ram_offset((256 << 20) - 4, 4, 256 << 20, &off), ==, 0);
        g_assert_cmphex(off, ==, (256 << 20) - 4);
}

static void test_gpa_outside_ram_is_refused(void) {
        uint64_t off = 0x1234;

        /* Past the end, straddling the end, in the hole, zero length, wrap. */
        g_assert_cmpint(guest_ram_offset(256 << 20, 1, 256 << 20, &off), ==, -EFAULT);
        g_assert_cmpint(guest_ram_offset((256 << 20) - 2, 4, 256 << 20, &off), ==, -EFAULT);
        g_assert_cmpint(guest_ram_offset(LAYOUT_LAPIC, 4, 8ULL << 30, &off), ==, -EFAULT);
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_START - 2, 4, 8ULL << 30, &off), ==, -EFAULT);
        g_assert_cmpint(guest_ram_offset(0x1000, 0, 256 << 20, &off), ==, -EFAULT);
        g_assert_cmpint(guest_ram_offset(UINT64_MAX - 1, 4, 8ULL << 30, &off), ==, -EFAULT);
        /* Small guest: nothing above 4 GiB. */
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_END, 1, 256 << 20, &off), ==, -EFAULT);
        g_assert_cmphex(off, ==, 0x1234);
}

static void test_gpa_high_ram_follows_the_hole(void) {
        uint64_t mem = 5ULL << 30, off = 0; /* 3 GiB low, 2 GiB high */

        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_END, 15, mem, &off), ==, 0);
        g_assert_cmphex(off, ==, LAYOUT_MMIO_HOLE_START);
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_END + (2ULL << 30) - 1, 1, mem, &off), ==, 0);
        g_assert_cmphex(off, ==, mem - 1);
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_END + (2ULL << 30), 1, mem, &off), ==, -EFAULT);
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_END + (2ULL << 30) - 1, 2, mem, &off), ==, -EFAULT);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/vcpu-emulate/int3-advances-rip-and-injects-bp", test_int3_advances_rip_and_injects_bp);
        g_test_add_func("/vcpu-emulate/int3-ignores-bytes-fetched-after-it", test_int3_ignores_bytes_fetched_after_it);
        g_test_add_func("/vcpu-emulate/clac-clears-ac-only", test_clac_clears_ac_only);
        g_test_add_func("/vcpu-emulate/stac-sets-ac-only", test_stac_sets_ac_only);
        g_test_add_func("/vcpu-emulate/fwait-is-a-one-byte-noop", test_fwait_is_a_one_byte_noop);
        g_test_add_func("/vcpu-emulate/unknown-instructions-are-refused", test_unknown_instructions_are_refused);
        g_test_add_func("/vcpu-emulate/truncated-bytes-are-refused", test_truncated_bytes_are_refused);
        g_test_add_func("/vcpu-emulate/zero-length-and-null-are-refused", test_zero_length_and_null_are_refused);
        g_test_add_func("/vcpu-emulate/prefixed-forms-are-refused", test_prefixed_forms_are_refused);
        g_test_add_func("/vcpu-emulate/insn-names", test_insn_names);
        g_test_add_func("/vcpu-emulate/failure-message-names-rip-and-bytes", test_failure_message_names_rip_and_bytes);
        g_test_add_func("/vcpu-emulate/failure-message-caps-at-15-bytes", test_failure_message_caps_at_15_bytes);
        g_test_add_func("/vcpu-emulate/failure-message-truncates-within-buffer", test_failure_message_truncates_within_buffer);
        g_test_add_func("/vcpu-emulate/gpa-low-ram-maps-one-to-one", test_gpa_low_ram_maps_one_to_one);
        g_test_add_func("/vcpu-emulate/gpa-outside-ram-is-refused", test_gpa_outside_ram_is_refused);
        g_test_add_func("/vcpu-emulate/gpa-high-ram-follows-the-hole", test_gpa_high_ram_follows_the_hole);
        return g_test_run();
}
