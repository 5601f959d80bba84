/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "guest-ram.h"
#include "macro.h"
#include "virtqueue.h"

/* Split ring layout (virtio 1.2, 2.7): 16-byte descriptors; the available
 * ring is flags, idx, ring[size], used_event (u16 each); the used ring is
 * flags, idx, ring[size] of {id, len} (u32 each), avail_event. */
#define DESC_SIZE 16U
#define AVAIL_SIZE(n) (4ULL + 2ULL * (n) + 2ULL)
#define USED_SIZE(n) (4ULL + 8ULL * (n) + 2ULL)

struct desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags, next;
};

_printf_(2, 3)
static int vq_fail(struct virtqueue *vq, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(vq->error, sizeof(vq->error), fmt, ap);
        va_end(ap);
        vq->broken = true;
        return -EINVAL;
}

/* Guest-shared u16s are read with one atomic load: a racing guest cannot
 * make us see two values of the same field. */
static uint16_t load16(const uint8_t *p, int order) {
        return le16toh(__atomic_load_n((const uint16_t *) p, order));
}

static void store16(uint8_t *p, uint16_t v, int order) {
        __atomic_store_n((uint16_t *) p, htole16(v), order);
}

/* One copy of a descriptor; the compiler barrier keeps later uses on the
 * copy instead of re-reading guest memory (which may be unaligned for
 * indirect tables, so no atomics here). */
static struct desc desc_read(const uint8_t *p) {
        uint8_t raw[DESC_SIZE];
        struct desc d;

        memcpy(raw, p, sizeof(raw));
        __asm__ __volatile__("" ::: "memory");
        memcpy(&d.addr, raw, 8);
        memcpy(&d.len, raw + 8, 4);
        memcpy(&d.flags, raw + 12, 2);
        memcpy(&d.next, raw + 14, 2);
        d.addr = le64toh(d.addr);
        d.len = le32toh(d.len);
        d.flags = le16toh(d.flags);
        d.next = le16toh(d.next);
        return d;
}

static uint8_t *area(struct virtqueue *vq, uint64_t gpa, uint64_t len) {
        return guest_ram_ptr(vq->mem, vq->mem_size, gpa, len);
}

int vq_init(struct virtqueue *vq, void *mem, uint64_t mem_size, uint32_t size,
            uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa, uint64_t features) {
        assert(vq);
        assert(mem);

        *vq = (struct virtqueue) {
                .mem = mem,
                .mem_size = mem_size,
                .size = size,
                .indirect = features & (1ULL << VIRTIO_F_INDIRECT_DESC),
                .event_idx = features & (1ULL << VIRTIO_F_EVENT_IDX),
        };

        if (size == 0 || size > VQ_MAX_SIZE || (size & (size - 1)) != 0)
                return vq_fail(vq, "queue size %u is not a power of 2 up to %u", size, VQ_MAX_SIZE);
        if (desc_gpa % 16 != 0)
                return vq_fail(vq, "descriptor table at 0x%llx is not 16-byte aligned", (unsigned long long) desc_gpa);
        if (avail_gpa % 2 != 0)
                return vq_fail(vq, "available ring at 0x%llx is not 2-byte aligned", (unsigned long long) avail_gpa);
        if (used_gpa % 4 != 0)
                return vq_fail(vq, "used ring at 0x%llx is not 4-byte aligned", (unsigned long long) used_gpa);

        vq->desc = area(vq, desc_gpa, (uint64_t) DESC_SIZE * size);
        if (!vq->desc)
                return vq_fail(vq, "descriptor table at 0x%llx is not in guest RAM", (unsigned long long) desc_gpa);
        vq->avail = area(vq, avail_gpa, AVAIL_SIZE(size));
        if (!vq->avail)
                return vq_fail(vq, "available ring at 0x%llx is not in guest RAM", (unsigned long long) avail_gpa);
        vq->used = area(vq, used_gpa, USED_SIZE(size));
        if (!vq->used)
                return vq_fail(vq, "used ring at 0x%llx is not in guest RAM", (unsigned long long) used_gpa);

        /* The host mapping is page-aligned, so the gpa alignments carry over;
         * a misaligned test buffer would be a programmer error. */
        assert(((uintptr_t) vq->avail & 1) == 0 && ((uintptr_t) vq->used & 3) == 0);
        return 0;
}

/* Appends one descriptor's buffer to the chain, enforcing the per-chain
 * rules: in RAM, readable before writable, bounded count and bytes. */
static int chain_add(struct virtqueue *vq, struct vq_chain *c, const struct desc *d, bool *saw_writable) {
        bool writable = d->flags & VIRTQ_DESC_F_WRITE;
        void *p;

        if (writable)
                *saw_writable = true;
        else if (*saw_writable)
                return vq_fail(vq, "chain %u: readable descriptor after a writable one", c->head);
        if (d->len == 0)
                return 0; /* nothing to read or write; no address to trust */
        if (c->n_segs >= VQ_CHAIN_MAX_SEGS)
                return vq_fail(vq, "chain %u: more than %u segments", c->head, VQ_CHAIN_MAX_SEGS);
        if (c->readable_bytes + c->writable_bytes + d->len > VQ_CHAIN_MAX_BYTES)
                return vq_fail(vq, "chain %u: more than %u bytes", c->head, VQ_CHAIN_MAX_BYTES);

        p = area(vq, d->addr, d->len);
        if (!p)
                return vq_fail(vq, "chain %u: buffer 0x%llx+%u is not in guest RAM",
                               c->head, (unsigned long long) d->addr, d->len);

        c->segs[c->n_segs++] = (struct vq_seg) { .ptr = p, .len = d->len, .writable = writable };
        if (writable)
                c->writable_bytes += d->len;
        else {
                c->n_readable++;
                c->readable_bytes += d->len;
        }
        return 0;
}

/* Walks an indirect table: its own indices, at most n entries visited (so
 * no loop), no table inside a table. */
static int chain_add_indirect(struct virtqueue *vq, struct vq_chain *c, const struct desc *ind, bool *saw_writable) {
        const uint8_t *table;
        uint32_t n, i = 0;
        int r;

        if (!vq->indirect)
                return vq_fail(vq, "chain %u: indirect descriptor without VIRTIO_F_INDIRECT_DESC", c->head);
        if (ind->flags & VIRTQ_DESC_F_NEXT)
                return vq_fail(vq, "chain %u: indirect descriptor with NEXT", c->head);
        if (ind->len == 0 || ind->len % DESC_SIZE != 0)
                return vq_fail(vq, "chain %u: indirect table length %u is not a non-zero multiple of 16",
                               c->head, ind->len);
        n = ind->len / DESC_SIZE;
        if (n > VQ_CHAIN_MAX_SEGS)
                return vq_fail(vq, "chain %u: indirect table of %u entries, at most %u", c->head, n, VQ_CHAIN_MAX_SEGS);
        table = area(vq, ind->addr, ind->len);
        if (!table)
                return vq_fail(vq, "chain %u: indirect table 0x%llx+%u is not in guest RAM",
                               c->head, (unsigned long long) ind->addr, ind->len);

        for (uint32_t visited = 0;; visited++) {
                struct desc d;

                if (visited >= n)
                        return vq_fail(vq, "chain %u: indirect chain longer than its table (loop?)", c->head);
                d = desc_read(table + (size_t) i * DESC_SIZE);
                if (d.flags & VIRTQ_DESC_F_INDIRECT)
                        return vq_fail(vq, "chain %u: nested indirect table", c->head);
                r = chain_add(vq, c, &d, saw_writable);
                if (r < 0)
                        return r;
                if (!(d.flags & VIRTQ_DESC_F_NEXT))
                        return 0;
                if (d.next >= n)
                        return vq_fail(vq, "chain %u: indirect next %u outside a table of %u", c->head, d.next, n);
                i = d.next;
        }
}

static int chain_walk(struct virtqueue *vq, struct vq_chain *c, uint16_t head) {
        uint32_t i = head;
        bool saw_writable = false;
        int r;

        *c = (struct vq_chain) { .head = head };
        /* Zero or more direct descriptors, optionally ending in one indirect
         * one; at most size of them, so a cycle ends as an error. */
        for (uint32_t visited = 0;; visited++) {
                struct desc d;

                if (i >= vq->size)
                        return vq_fail(vq, "chain %u: descriptor index %u out of range (size %u)", head, i, vq->size);
                if (visited >= vq->size)
                        return vq_fail(vq, "chain %u: longer than the queue size %u (loop?)", head, vq->size);
                d = desc_read(vq->desc + (size_t) i * DESC_SIZE);
                if (d.flags & VIRTQ_DESC_F_INDIRECT)
                        return chain_add_indirect(vq, c, &d, &saw_writable);
                r = chain_add(vq, c, &d, &saw_writable);
                if (r < 0)
                        return r;
                if (!(d.flags & VIRTQ_DESC_F_NEXT))
                        return 0;
                i = d.next;
        }
}

/* Reads the guest's avail idx once; a jump past what the ring can hold is
 * malformed. Acquire: ring entries and descriptors are read after it. */
static int avail_refresh(struct virtqueue *vq) {
        uint16_t idx = load16(vq->avail + 2, __ATOMIC_ACQUIRE);

        if ((uint16_t) (idx - vq->last_avail) > vq->size)
                return vq_fail(vq, "available idx %u is more than %u ahead of %u", idx, vq->size, vq->last_avail);
        vq->avail_shadow = idx;
        return 0;
}

int vq_pop(struct virtqueue *vq, struct vq_chain *chain) {
        uint16_t head;
        int r;

        assert(vq);
        assert(chain);

        if (vq->broken)
                return -EINVAL;

        if (vq->last_avail == vq->avail_shadow) {
                r = avail_refresh(vq);
                if (r < 0)
                        return r;
        }
        if (vq->last_avail == vq->avail_shadow && vq->event_idx) {
                /* Ask for a kick at the next entry, then look again: a buffer
                 * made available before the guest saw avail_event would
                 * otherwise wait for a kick that never comes. */
                store16(vq->used + 4 + 8 * (size_t) vq->size, vq->last_avail, __ATOMIC_RELAXED);
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
                r = avail_refresh(vq);
                if (r < 0)
                        return r;
        }
        if (vq->last_avail == vq->avail_shadow)
                return 0;

        head = load16(vq->avail + 4 + 2 * (size_t) (vq->last_avail & (vq->size - 1)), __ATOMIC_RELAXED);
        r = chain_walk(vq, chain, head);
        if (r < 0)
                return r;
        vq->last_avail++;
        return 1;
}

int vq_push(struct virtqueue *vq, uint16_t head, uint32_t written) {
        uint8_t *e;
        uint32_t v;

        assert(vq);

        if (vq->broken)
                return -EINVAL;
        if (head >= vq->size)
                return -EINVAL;

        e = vq->used + 4 + 8 * (size_t) (vq->used_idx & (vq->size - 1));
        v = htole32(head);
        __atomic_store_n((uint32_t *) e, v, __ATOMIC_RELAXED);
        v = htole32(written);
        __atomic_store_n((uint32_t *) (e + 4), v, __ATOMIC_RELAXED);
        vq->used_idx++;
        /* Release: the entry is visible before the index that publishes it. */
        store16(vq->used + 2, vq->used_idx, __ATOMIC_RELEASE);
        return 0;
}

bool vq_needs_notify(struct virtqueue *vq) {
        uint16_t old, now = vq->used_idx;

        assert(vq);

        /* Our used idx store must be ordered before reading what the guest
         * asked for, or both sides may wait for each other. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        old = vq->signalled_used;
        vq->signalled_used = now;
        if (vq->event_idx) {
                uint16_t event = load16(vq->avail + 4 + 2 * (size_t) vq->size, __ATOMIC_RELAXED);

                /* Notify if used_event lies in [old, now): entries old..now-1
                 * were added since the last interrupt. */
                return (uint16_t) (now - event - 1) < (uint16_t) (now - old);
        }
        return now != old && !(load16(vq->avail, __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}
