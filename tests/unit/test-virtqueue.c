/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The split virtqueue against rings a hostile guest could build, in a
 * malloc'd "guest RAM": good chains come out as the guest described them,
 * every malformed one breaks the queue with a reason instead of reading
 * outside RAM or looping, and the used ring and notification decision are
 * what the spec says. */
#include <endian.h>
#include <errno.h>
#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "guest-ram.h"
#include "virtqueue.h"

#define RAM_SIZE   (1U << 20)
#define DESC_GPA   0x1000ULL
#define AVAIL_GPA  0x2000ULL
#define USED_GPA   0x3000ULL
#define TABLE_GPA  0x8000ULL  /* indirect tables */
#define BUF_GPA    0x10000ULL /* data buffers */

struct fix {
        uint8_t *ram;
        struct virtqueue vq;
        struct vq_chain *chain;
        uint32_t size;
        uint16_t avail_idx;
};

static void fix_init(struct fix *f, uint32_t size, uint64_t features) {
        f->ram = g_malloc0(RAM_SIZE);
        f->chain = g_new0(struct vq_chain, 1);
        f->size = size;
        f->avail_idx = 0;
        g_assert_cmpint(vq_init(&f->vq, f->ram, RAM_SIZE, size, DESC_GPA, AVAIL_GPA, USED_GPA, features), ==, 0);
        g_assert_cmpstr(vq_error(&f->vq), ==, "");
}

static void fix_done(struct fix *f) {
        g_free(f->ram);
        g_free(f->chain);
}

static void desc_set(struct fix *f, uint64_t table, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        uint8_t *p = f->ram + table + 16ULL * i;
        uint64_t a = htole64(addr);
        uint32_t l = htole32(len);
        uint16_t fl = htole16(flags), n = htole16(next);

        memcpy(p, &a, 8);
        memcpy(p + 8, &l, 4);
        memcpy(p + 12, &fl, 2);
        memcpy(p + 14, &n, 2);
}

static void u16_set(struct fix *f, uint64_t gpa, uint16_t v) {
        v = htole16(v);
        memcpy(f->ram + gpa, &v, 2);
}

static uint16_t u16_get(struct fix *f, uint64_t gpa) {
        uint16_t v;
        memcpy(&v, f->ram + gpa, 2);
        return le16toh(v);
}

static uint32_t u32_get(struct fix *f, uint64_t gpa) {
        uint32_t v;
        memcpy(&v, f->ram + gpa, 4);
        return le32toh(v);
}

static void avail_add(struct fix *f, uint16_t head) {
        u16_set(f, AVAIL_GPA + 4 + 2 * (f->avail_idx % f->size), head);
        f->avail_idx++;
        u16_set(f, AVAIL_GPA + 2, f->avail_idx);
}

/* Pops expecting a malformed ring whose reason contains what. */
static void assert_broken(struct fix *f, const char *what) {
        g_assert_cmpint(vq_pop(&f->vq, f->chain), ==, -EINVAL);
        g_assert_true(vq_is_broken(&f->vq));
        if (!strstr(vq_error(&f->vq), what))
                g_error("error \"%s\" does not mention \"%s\"", vq_error(&f->vq), what);
        /* Broken stays broken, and pushing is refused too. */
        g_assert_cmpint(vq_pop(&f->vq, f->chain), ==, -EINVAL);
        g_assert_cmpint(vq_push(&f->vq, 0, 0), ==, -EINVAL);
}

static void test_empty_ring_pops_nothing(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 0);
        g_assert_false(vq_is_broken(&f.vq));
        fix_done(&f);
}

static void test_single_descriptor_chain(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        desc_set(&f, DESC_GPA, 5, BUF_GPA, 100, 0, 0);
        avail_add(&f, 5);
        g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 1);
        g_assert_cmpuint(f.chain->head, ==, 5);
        g_assert_cmpuint(f.chain->n_segs, ==, 1);
        g_assert_true(f.chain->segs[0].ptr == f.ram + BUF_GPA);
        g_assert_cmpuint(f.chain->segs[0].len, ==, 100);
        g_assert_false(f.chain->segs[0].writable);
        g_assert_cmpuint(f.chain->readable_bytes, ==, 100);
        g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 0);
        fix_done(&f);
}

static void test_read_then_write_chain(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        desc_set(&f, DESC_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 3);
        desc_set(&f, DESC_GPA, 3, BUF_GPA + 0x100, 512, VIRTQ_DESC_F_NEXT, 7);
        desc_set(&f, DESC_GPA, 7, BUF_GPA + 0x1000, 1, VIRTQ_DESC_F_WRITE, 0);
        avail_add(&f, 0);
        g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 1);
        g_assert_cmpuint(f.chain->n_segs, ==, 3);
        g_assert_cmpuint(f.chain->n_readable, ==, 2);
        g_assert_cmpuint(f.chain->readable_bytes, ==, 528);
        g_assert_cmpuint(f.chain->writable_bytes, ==, 1);
        g_assert_true(f.chain->segs[1].ptr == f.ram + BUF_GPA + 0x100);
        g_assert_true(f.chain->segs[2].ptr == f.ram + BUF_GPA + 0x1000);
        g_assert_true(f.chain->segs[2].writable);
        fix_done(&f);
}

static void test_zero_length_descriptor_is_skipped(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        /* Address nonsense, but nothing to access. */
        desc_set(&f, DESC_GPA, 0, UINT64_MAX, 0, VIRTQ_DESC_F_NEXT, 1);
        desc_set(&f, DESC_GPA, 1, BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
        avail_add(&f, 0);
        g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 1);
        g_assert_cmpuint(f.chain->n_segs, ==, 1);
        g_assert_cmpuint(f.chain->writable_bytes, ==, 8);
        fix_done(&f);
}

static void test_indirect_chain(void) {
        struct fix f;

        fix_init(&f, 8, 1ULL << VIRTIO_F_INDIRECT_DESC);
        /* One direct readable descriptor, then the table (its WRITE flag is
         * ignored); the table's chain starts at its entry 0: 0 -> 2 -> 1. */
        desc_set(&f, DESC_GPA, 1, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 6);
        desc_set(&f, DESC_GPA, 6, TABLE_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
        desc_set(&f, TABLE_GPA, 0, BUF_GPA + 0x10, 8, VIRTQ_DESC_F_NEXT, 2);
        desc_set(&f, TABLE_GPA, 2, BUF_GPA + 0x20, 32, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
        desc_set(&f, TABLE_GPA, 1, BUF_GPA + 0x40, 64, VIRTQ_DESC_F_WRITE, 0);
        avail_add(&f, 1);
        g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 1);
        g_assert_cmpuint(f.chain->head, ==, 1);
        g_assert_cmpuint(f.chain->n_segs, ==, 4);
        g_assert_cmpuint(f.chain->n_readable, ==, 2);
        g_assert_true(f.chain->segs[1].ptr == f.ram + BUF_GPA + 0x10);
        g_assert_true(f.chain->segs[3].ptr == f.ram + BUF_GPA + 0x40);
        g_assert_cmpuint(f.chain->readable_bytes, ==, 12);
        g_assert_cmpuint(f.chain->writable_bytes, ==, 96);
        fix_done(&f);
}

static void test_head_index_out_of_range(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        avail_add(&f, 8);
        assert_broken(&f, "index 8 out of range");
        fix_done(&f);
}

static void test_next_index_out_of_range(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        desc_set(&f, DESC_GPA, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 0xffff);
        avail_add(&f, 0);
        assert_broken(&f, "index 65535 out of range");
        fix_done(&f);
}

static void test_buffer_past_end_of_ram(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        desc_set(&f, DESC_GPA, 0, RAM_SIZE - 4, 5, VIRTQ_DESC_F_WRITE, 0);
        avail_add(&f, 0);
        assert_broken(&f, "not in guest RAM");
        fix_done(&f);
}

static void test_buffer_in_mmio_hole(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        desc_set(&f, DESC_GPA, 0, LAYOUT_IOAPIC, 4, 0, 0);
        avail_add(&f, 0);
        assert_broken(&f, "not in guest RAM");
        fix_done(&f);
}

static void test_buffer_address_overflow(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        desc_set(&f, DESC_GPA, 0, UINT64_MAX - 10, 100, 0, 0);
        avail_add(&f, 0);
        assert_broken(&f, "not in guest RAM");
        fix_done(&f);
}

static void test_self_loop(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        desc_set(&f, DESC_GPA, 2, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 2);
        avail_add(&f, 2);
        assert_broken(&f, "longer than the queue size");
        fix_done(&f);
}

static void test_chain_longer_than_size(void) {
        struct fix f;

        fix_init(&f, 4, 0);
        for (uint16_t i = 0; i < 4; i++)
                desc_set(&f, DESC_GPA, i, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, (i + 1) % 4);
        avail_add(&f, 0);
        assert_broken(&f, "longer than the queue size 4");
        fix_done(&f);
}

static void test_full_length_chain_is_accepted(void) {
        struct fix f;

        fix_init(&f, 4, 0);
        for (uint16_t i = 0; i < 4; i++)
                desc_set(&f, DESC_GPA, i, BUF_GPA, 4, i < 3 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
        avail_add(&f, 0);
        g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 1);
        g_assert_cmpuint(f.chain->n_segs, ==, 4);
        fix_done(&f);
}

static void test_write_before_read(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        desc_set(&f, DESC_GPA, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
        desc_set(&f, DESC_GPA, 1, BUF_GPA, 4, 0, 0);
        avail_add(&f, 0);
        assert_broken(&f, "readable descriptor after a writable one");
        fix_done(&f);
}

static void test_write_before_read_across_indirect(void) {
        struct fix f;

        fix_init(&f, 8, 1ULL << VIRTIO_F_INDIRECT_DESC);
        desc_set(&f, DESC_GPA, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
        desc_set(&f, DESC_GPA, 1, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
        desc_set(&f, TABLE_GPA, 0, BUF_GPA, 4, 0, 0);
        avail_add(&f, 0);
        assert_broken(&f, "readable descriptor after a writable one");
        fix_done(&f);
}

static void test_indirect_without_feature(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        desc_set(&f, DESC_GPA, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
        desc_set(&f, TABLE_GPA, 0, BUF_GPA, 4, 0, 0);
        avail_add(&f, 0);
        assert_broken(&f, "without VIRTIO_F_INDIRECT_DESC");
        fix_done(&f);
}

static void test_indirect_with_next(void) {
        struct fix f;

        fix_init(&f, 8, 1ULL << VIRTIO_F_INDIRECT_DESC);
        desc_set(&f, DESC_GPA, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
        desc_set(&f, DESC_GPA, 1, BUF_GPA, 4, 0, 0);
        desc_set(&f, TABLE_GPA, 0, BUF_GPA, 4, 0, 0);
        avail_add(&f, 0);
        assert_broken(&f, "indirect descriptor with NEXT");
        fix_done(&f);
}

static void test_nested_indirect(void) {
        struct fix f;

        fix_init(&f, 8, 1ULL << VIRTIO_F_INDIRECT_DESC);
        desc_set(&f, DESC_GPA, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
        desc_set(&f, TABLE_GPA, 0, TABLE_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
        desc_set(&f, TABLE_GPA + 0x100, 0, BUF_GPA, 4, 0, 0);
        avail_add(&f, 0);
        assert_broken(&f, "nested indirect");
        fix_done(&f);
}

static void test_indirect_length_not_multiple_of_16(void) {
        struct fix f;

        fix_init(&f, 8, 1ULL << VIRTIO_F_INDIRECT_DESC);
        desc_set(&f, DESC_GPA, 0, TABLE_GPA, 24, VIRTQ_DESC_F_INDIRECT, 0);
        avail_add(&f, 0);
        assert_broken(&f, "not a non-zero multiple of 16");
        fix_done(&f);
}

static void test_indirect_zero_length(void) {
        struct fix f;

        fix_init(&f, 8, 1ULL << VIRTIO_F_INDIRECT_DESC);
        desc_set(&f, DESC_GPA, 0, TABLE_GPA, 0, VIRTQ_DESC_F_INDIRECT, 0);
        avail_add(&f, 0);
        assert_broken(&f, "not a non-zero multiple of 16");
        fix_done(&f);
}

static void test_indirect_table_past_ram(void) {
        struct fix f;

        fix_init(&f, 8, 1ULL << VIRTIO_F_INDIRECT_DESC);
        desc_set(&f, DESC_GPA, 0, RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
        avail_add(&f, 0);
        assert_broken(&f, "indirect table");
        g_assert_nonnull(strstr(vq_error(&f.vq), "not in guest RAM"));
        fix_done(&f);
}

static void test_indirect_table_too_large(void) {
        struct fix f;

        fix_init(&f, 8, 1ULL << VIRTIO_F_INDIRECT_DESC);
        desc_set(&f, DESC_GPA, 0, TABLE_GPA, (VQ_CHAIN_MAX_SEGS + 1) * 16, VIRTQ_DESC_F_INDIRECT, 0);
        avail_add(&f, 0);
        assert_broken(&f, "at most 1024");
        fix_done(&f);
}

static void test_indirect_loop(void) {
        struct fix f;

        fix_init(&f, 8, 1ULL << VIRTIO_F_INDIRECT_DESC);
        desc_set(&f, DESC_GPA, 0, TABLE_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
        desc_set(&f, TABLE_GPA, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
        desc_set(&f, TABLE_GPA, 1, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 0);
        avail_add(&f, 0);
        assert_broken(&f, "longer than its table");
        fix_done(&f);
}

static void test_indirect_next_outside_table(void) {
        struct fix f;

        fix_init(&f, 8, 1ULL << VIRTIO_F_INDIRECT_DESC);
        desc_set(&f, DESC_GPA, 0, TABLE_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
        desc_set(&f, TABLE_GPA, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 2);
        avail_add(&f, 0);
        assert_broken(&f, "outside a table of 2");
        fix_done(&f);
}

static void test_avail_idx_jump_beyond_size(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        desc_set(&f, DESC_GPA, 0, BUF_GPA, 4, 0, 0);
        u16_set(&f, AVAIL_GPA + 2, 9);
        assert_broken(&f, "more than 8 ahead");
        fix_done(&f);
}

static void test_avail_idx_full_ring_and_wrap(void) {
        struct fix f;

        fix_init(&f, 4, 0);
        desc_set(&f, DESC_GPA, 0, BUF_GPA, 4, 0, 0);
        /* Near the u16 wrap: 4 entries from 65534 to 1 are exactly a full ring. */
        f.vq.last_avail = f.vq.avail_shadow = 65534;
        f.avail_idx = 65534;
        for (int i = 0; i < 4; i++)
                avail_add(&f, 0);
        g_assert_cmpuint(u16_get(&f, AVAIL_GPA + 2), ==, 2);
        for (int i = 0; i < 4; i++)
                g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 1);
        g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 0);
        fix_done(&f);
}

static void test_used_ring_layout(void) {
        struct fix f;

        fix_init(&f, 4, 0);
        g_assert_cmpint(vq_push(&f.vq, 3, 77), ==, 0);
        g_assert_cmpuint(u16_get(&f, USED_GPA + 2), ==, 1);
        g_assert_cmpuint(u32_get(&f, USED_GPA + 4), ==, 3);
        g_assert_cmpuint(u32_get(&f, USED_GPA + 8), ==, 77);
        for (uint16_t i = 1; i < 5; i++)
                g_assert_cmpint(vq_push(&f.vq, i % 4, 100 + i), ==, 0);
        /* The fifth entry wrapped to ring[0]; avail_event after ring[4] untouched. */
        g_assert_cmpuint(u16_get(&f, USED_GPA + 2), ==, 5);
        g_assert_cmpuint(u32_get(&f, USED_GPA + 4), ==, 0);
        g_assert_cmpuint(u32_get(&f, USED_GPA + 8), ==, 104);
        g_assert_cmpuint(u32_get(&f, USED_GPA + 4 + 8 * 3), ==, 3);
        g_assert_cmpuint(u16_get(&f, USED_GPA + 4 + 8 * 4), ==, 0);
        g_assert_cmpint(vq_push(&f.vq, 4, 0), ==, -EINVAL);
        fix_done(&f);
}

static void test_notify_without_event_idx(void) {
        struct fix f;

        fix_init(&f, 8, 0);
        g_assert_false(vq_needs_notify(&f.vq)); /* nothing pushed */
        vq_push(&f.vq, 0, 0);
        g_assert_true(vq_needs_notify(&f.vq));
        u16_set(&f, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
        vq_push(&f.vq, 0, 0);
        g_assert_false(vq_needs_notify(&f.vq));
        fix_done(&f);
}

static void test_notify_with_event_idx(void) {
        struct fix f;
        const uint64_t used_event = AVAIL_GPA + 4 + 2 * 8;

        fix_init(&f, 8, 1ULL << VIRTIO_F_EVENT_IDX);
        /* used_event 0: interrupt when entry 0 is used, not for entry 1. */
        vq_push(&f.vq, 0, 0);
        g_assert_true(vq_needs_notify(&f.vq));
        vq_push(&f.vq, 0, 0);
        g_assert_false(vq_needs_notify(&f.vq));
        /* used_event 3: entries 2 and 3 pushed together cross it. */
        u16_set(&f, used_event, 3);
        vq_push(&f.vq, 0, 0);
        g_assert_false(vq_needs_notify(&f.vq));
        vq_push(&f.vq, 0, 0);
        g_assert_true(vq_needs_notify(&f.vq));
        /* NO_INTERRUPT is ignored under EVENT_IDX; used_event 4 is crossed. */
        u16_set(&f, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
        u16_set(&f, used_event, 4);
        vq_push(&f.vq, 0, 0);
        g_assert_true(vq_needs_notify(&f.vq));
        fix_done(&f);
}

static void test_event_idx_publishes_avail_event(void) {
        struct fix f;
        const uint64_t avail_event = USED_GPA + 4 + 8 * 8;

        fix_init(&f, 8, 1ULL << VIRTIO_F_EVENT_IDX);
        u16_set(&f, avail_event, 0xbeef);
        desc_set(&f, DESC_GPA, 0, BUF_GPA, 4, 0, 0);
        avail_add(&f, 0);
        avail_add(&f, 0);
        g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 1);
        g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 1);
        g_assert_cmpint(vq_pop(&f.vq, f.chain), ==, 0);
        /* Empty: the device asks for a kick when entry 2 is made available. */
        g_assert_cmpuint(u16_get(&f, avail_event), ==, 2);
        fix_done(&f);
}

static void test_init_rejects_bad_rings(void) {
        uint8_t *ram = g_malloc0(RAM_SIZE);
        struct virtqueue vq;
        static const uint32_t bad_sizes[] = { 0, 3, 6, 65536, 32769 };

        for (size_t i = 0; i < G_N_ELEMENTS(bad_sizes); i++) {
                g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, bad_sizes[i], DESC_GPA, AVAIL_GPA, USED_GPA, 0), ==, -EINVAL);
                g_assert_nonnull(strstr(vq_error(&vq), "power of 2"));
        }
        g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, 1, DESC_GPA, AVAIL_GPA, USED_GPA, 0), ==, 0);
        g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, 8, DESC_GPA + 8, AVAIL_GPA, USED_GPA, 0), ==, -EINVAL);
        g_assert_nonnull(strstr(vq_error(&vq), "16-byte aligned"));
        g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, 8, DESC_GPA, AVAIL_GPA + 1, USED_GPA, 0), ==, -EINVAL);
        g_assert_nonnull(strstr(vq_error(&vq), "2-byte aligned"));
        g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, 8, DESC_GPA, AVAIL_GPA, USED_GPA + 2, 0), ==, -EINVAL);
        g_assert_nonnull(strstr(vq_error(&vq), "4-byte aligned"));
        /* Each area must fit in RAM, up to its last byte. */
        g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, 8, RAM_SIZE - 16 * 8, AVAIL_GPA, USED_GPA, 0), ==, 0);
        g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, 8, RAM_SIZE - 16 * 7, AVAIL_GPA, USED_GPA, 0), ==, -EINVAL);
        g_assert_nonnull(strstr(vq_error(&vq), "descriptor table"));
        g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, 8, DESC_GPA, RAM_SIZE - 22, USED_GPA, 0), ==, 0);
        g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, 8, DESC_GPA, RAM_SIZE - 20, USED_GPA, 0), ==, -EINVAL);
        g_assert_nonnull(strstr(vq_error(&vq), "available ring"));
        g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, 8, DESC_GPA, AVAIL_GPA, RAM_SIZE - 72, 0), ==, 0);
        g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, 8, DESC_GPA, AVAIL_GPA, RAM_SIZE - 68, 0), ==, -EINVAL);
        g_assert_nonnull(strstr(vq_error(&vq), "used ring"));
        g_assert_cmpint(vq_init(&vq, ram, RAM_SIZE, 8, UINT64_MAX - 15, AVAIL_GPA, USED_GPA, 0), ==, -EINVAL);
        g_free(ram);
}

static void test_guest_ram_offset_above_hole(void) {
        const uint64_t mem = 8ULL << 30; /* 3 GiB low, 5 GiB above 4 GiB */
        uint64_t off = 0;

        g_assert_cmpint(guest_ram_offset(0, 1, mem, &off), ==, 0);
        g_assert_cmphex(off, ==, 0);
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_START - 4, 4, mem, &off), ==, 0);
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_START - 2, 4, mem, &off), ==, -EFAULT);
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_START, 1, mem, &off), ==, -EFAULT);
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_END, 16, mem, &off), ==, 0);
        g_assert_cmphex(off, ==, LAYOUT_MMIO_HOLE_START);
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_END + (5ULL << 30) - 8, 8, mem, &off), ==, 0);
        g_assert_cmphex(off, ==, mem - 8);
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_END + (5ULL << 30) - 8, 9, mem, &off), ==, -EFAULT);
        g_assert_cmpint(guest_ram_offset(UINT64_MAX, 2, mem, &off), ==, -EFAULT);
        g_assert_cmpint(guest_ram_offset(0, 0, mem, &off), ==, -EFAULT);
        /* 2 GiB guest: nothing above the hole. */
        g_assert_cmpint(guest_ram_offset(LAYOUT_MMIO_HOLE_END, 1, 2ULL << 30, &off), ==, -EFAULT);
        g_assert_cmpint(guest_ram_offset((2ULL << 30) - 1, 1, 2ULL << 30, &off), ==, 0);
        g_assert_cmpint(guest_ram_offset(2ULL << 30, 1, 2ULL << 30, &off), ==, -EFAULT);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/virtqueue/empty-ring-pops-nothing", test_empty_ring_pops_nothing);
        g_test_add_func("/virtqueue/single-descriptor-chain", test_single_descriptor_chain);
        g_test_add_func("/virtqueue/read-then-write-chain", test_read_then_write_chain);
        g_test_add_func("/virtqueue/zero-length-descriptor-is-skipped", test_zero_length_descriptor_is_skipped);
        g_test_add_func("/virtqueue/indirect-chain", test_indirect_chain);
        g_test_add_func("/virtqueue/full-length-chain-is-accepted", test_full_length_chain_is_accepted);
        g_test_add_func("/virtqueue/hostile/head-index-out-of-range", test_head_index_out_of_range);
        g_test_add_func("/virtqueue/hostile/next-index-out-of-range", test_next_index_out_of_range);
        g_test_add_func("/virtqueue/hostile/buffer-past-end-of-ram", test_buffer_past_end_of_ram);
        g_test_add_func("/virtqueue/hostile/buffer-in-mmio-hole", test_buffer_in_mmio_hole);
        g_test_add_func("/virtqueue/hostile/buffer-address-overflow", test_buffer_address_overflow);
        g_test_add_func("/virtqueue/hostile/self-loop", test_self_loop);
        g_test_add_func("/virtqueue/hostile/chain-longer-than-size", test_chain_longer_than_size);
        g_test_add_func("/virtqueue/hostile/write-before-read", test_write_before_read);
        g_test_add_func("/virtqueue/hostile/write-before-read-across-indirect", test_write_before_read_across_indirect);
        g_test_add_func("/virtqueue/hostile/indirect-without-feature", test_indirect_without_feature);
        g_test_add_func("/virtqueue/hostile/indirect-with-next", test_indirect_with_next);
        g_test_add_func("/virtqueue/hostile/nested-indirect", test_nested_indirect);
        g_test_add_func("/virtqueue/hostile/indirect-length-not-multiple-of-16", test_indirect_length_not_multiple_of_16);
        g_test_add_func("/virtqueue/hostile/indirect-zero-length", test_indirect_zero_length);
        g_test_add_func("/virtqueue/hostile/indirect-table-past-ram", test_indirect_table_past_ram);
        g_test_add_func("/virtqueue/hostile/indirect-table-too-large", test_indirect_table_too_large);
        g_test_add_func("/virtqueue/hostile/indirect-loop", test_indirect_loop);
        g_test_add_func("/virtqueue/hostile/indirect-next-outside-table", test_indirect_next_outside_table);
        g_test_add_func("/virtqueue/hostile/avail-idx-jump-beyond-size", test_avail_idx_jump_beyond_size);
        g_test_add_func("/virtqueue/avail-idx-full-ring-and-wrap", test_avail_idx_full_ring_and_wrap);
        g_test_add_func("/virtqueue/used-ring-layout", test_used_ring_layout);
        g_test_add_func("/virtqueue/notify-without-event-idx", test_notify_without_event_idx);
        g_test_add_func("/virtqueue/notify-with-event-idx", test_notify_with_event_idx);
        g_test_add_func("/virtqueue/event-idx-publishes-avail-event", test_event_idx_publishes_avail_event);
        g_test_add_func("/virtqueue/init-rejects-bad-rings", test_init_rejects_bad_rings);
        g_test_add_func("/virtqueue/guest-ram-offset-above-hole", test_guest_ram_offset_above_hole);
        return g_test_run();
}
