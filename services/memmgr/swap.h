/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Swap of one VM's guest RAM to a file (docs/memmgr.md, "Swap"). SwapOut
 * registers every live uffd's mapping (MISSING + WP, each at its own base),
 * then page by page in chunks: write-protect the chunk in every mapping,
 * copy it, hand its non-zero pages to the I/O thread (swap-io.h), and
 * once they are on disk punch the chunk out of the memfd and lift the
 * write protection; up to SWAP_DEPTH chunks are on their way at once.
 * Faults on any uffd are served from the file through that uffd (a fault
 * on a chunk on its way waits until it has left). SwapIn has the I/O
 * thread read up to SWAP_DEPTH chunks ahead, copies every page back and
 * unregisters all. The work runs in memmgr's event loop between fault
 * batches. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "swap-io.h"
#include "uffd-service.h"

enum swap_state {
        SWAP_READY,
        SWAP_SWAPPING_OUT,
        SWAP_ACTIVE,
        SWAP_SWAPPING_IN,
        SWAP_FAILED,
};

/* Where each guest page is while swap is on. */
enum swap_page {
        SWAP_PAGE_MEMORY = 0, /* in the memfd, or a hole never written */
        SWAP_PAGE_FILE,       /* punched out; its data is in the swap file */
        SWAP_PAGE_ZERO,       /* punched out (or a hole); it was all zeros */
};
/* Or'ed into a FILE or ZERO page once a fault has brought it back: it is
 * in memory again (and the file's copy, if any, is stale once written). As
 * every mapping is registered for missing pages while swap is on, a hole
 * fills only through memmgr, so the page states say exactly what is in
 * memory without asking the memfd. */
#define SWAP_PAGE_BACK 0x80

/* Pages per step of SwapOut/SwapIn: a fault waits at most one step. */
#define SWAP_CHUNK_PAGES 256
/* A fault on a page in the file that follows the last one closely brings
 * back the file pages of the next this many pages with one read (the
 * kernel's swap reads ahead too): sequential touches then take one disk
 * read per window, not per page; random ones read their page only. */
#define SWAP_FAULT_AROUND_PAGES 16
/* Chunks with the I/O thread at once (SwapOut: on their way to disk;
 * SwapIn: being read). */
#define SWAP_DEPTH 4
/* With O_DIRECT, a run of pages written with one write may bridge this
 * many pages the file does not need (zeros): scattered zero pages would
 * otherwise split a chunk into many small direct writes, the slowest way to
 * use a disk. Buffered writes never bridge: the file stays sparse. */
#define SWAP_WRITE_GAP_PAGES 8

/* The writes of a chunk of n pages at file offset file_off: next[i] is page
 * i's state after the chunk (SWAP_PAGE_*), read[i] whether it was copied
 * from memory now (else it is a hole whose state stays). Pages read now
 * and FILE are written; a run bridges up to gap other pages, except a page
 * whose data is in the file from before and was not read now (writing
 * over it would destroy it). Fills runs (room for n) and returns their
 * number. */
size_t swap_plan_runs(const uint8_t *next, const bool *read, uint64_t n, uint64_t gap, uint64_t page_size,
                      uint64_t file_off, struct swap_run *runs);

/* Fault latency in µs: bucket i counts latencies below 2^i µs (the last
 * one everything above). Percentiles report the bucket's upper bound. */
#define SWAP_HIST_BUCKETS 24
struct swap_histogram {
        uint64_t buckets[SWAP_HIST_BUCKETS];
        uint64_t count;
};

void swap_histogram_add(struct swap_histogram *h, uint64_t usec);
/* The smallest bound below which at least p (0 < p <= 1) of the samples
 * lie; 0 without samples. */
uint64_t swap_histogram_percentile(const struct swap_histogram *h, double p);

/* Whether len bytes at p are all zero (len a multiple of 8). */
bool swap_page_is_zero(const void *p, size_t len);

/* The guest offset of faulting address addr in a mapping of size bytes at
 * base, rounded down to page (a power of two). -ERANGE outside. */
int swap_offset(uint64_t base, uint64_t size, uint64_t page, uint64_t addr, uint64_t *ret);

/* "<dir>/<vm>.swap". */
int swap_file_path(const char *dir, const char *vm, char **ret);

const char *swap_state_to_string(enum swap_state s);

/* pwrite of all len bytes at off, retrying partial writes and EINTR: 0, or
 * -errno of the write that failed (-ENOSPC if one wrote nothing). */
int swap_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

struct swap {
        char *vm;
        char *object_path;
        sd_bus *bus;              /* may be NULL */
        sd_event *event;
        int memfd;                /* not ours */
        uint64_t size, page_size, n_pages;
        struct uffd_service *uffds; /* not ours; index 0 is the main uffd; each entry has its base */
        bool registered;          /* MISSING|WP registered on every live uffd (entry->registered) */

        enum swap_state state;
        char *dir, *file_path;
        int fd;                   /* the swap file, -1 until the first SwapOut */
        uint8_t *pages;           /* enum swap_page per guest page */
        uint64_t n_file, n_zero;  /* pages in each state */
        uint64_t cursor;          /* next page of the running operation */
        double progress;
        uint64_t last_emit_usec;
        char *last_error;
        bool rolling_back;        /* a failed SwapOut brings pages back (state swapping-out) */
        char *rollback_error;     /* why it failed: LastError once they are back */
        bool direct_io;           /* the swap file is O_DIRECT (else buffered, synced per step) */
        struct swap_histogram latency;
        void *buf;                /* faults: SWAP_FAULT_AROUND_PAGES pages, page-aligned */
        sd_event_source *work;

        struct swap_io *io;
        struct swap_chunk *chunks; /* SWAP_DEPTH slots for chunks with the I/O thread */
        unsigned n_inflight;      /* chunks with the I/O thread */
        unsigned n_writing;       /* of them SwapOut chunks on their way to disk */
        uint64_t read_cursor;     /* SwapIn: the next page to hand the I/O thread */
        uint64_t in_gen;          /* SwapIn pass; chunks read for an older one are dropped */
        struct swap_deferred *deferred; /* faults on chunks on their way */
        size_t n_deferred, n_deferred_alloc;
        uint64_t next_data;       /* first memfd offset with data at or after the last lookup; 0: ask */
        uint64_t last_fault;      /* page of the last fault served from the file (read ahead); UINT64_MAX: none */
};

int swap_new(const char *vm, const char *object_path, sd_bus *bus, sd_event *event, int memfd, uint64_t size,
             const char *dir, struct swap **ret);
struct swap *swap_free(struct swap *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct swap *, swap_free);

/* Attaches the VM's uffds (entry 0 the main one) and installs the fault
 * handler. */
void swap_attach(struct swap *s, struct uffd_service *uffds);

/* For a device uffd about to join the list (fd, its mapping of offset 0 at
 * base, process pid): while the VM is swapped out (registered), registers
 * MISSING + WP over its mapping now, so that it can never read a page that
 * left as zeros, and says so in *ret_registered; otherwise does nothing.
 * Errors say why in err. */
int swap_register_device(struct swap *s, int fd, uint64_t base, pid_t pid, bool *ret_registered, char *err,
                         size_t errlen);

/* Start the operations; errors say why in err (-EBUSY: wrong state,
 * -ENODEV: no main uffd; others: the file, or a live uffd's mapping that
 * cannot be registered, which fails SwapOut). */
int swap_out(struct swap *s, char *err, size_t errlen);
int swap_in(struct swap *s, char *err, size_t errlen);
/* Drops from the file the pages that are back in memory; returns how many. */
int swap_trim(struct swap *s, char *err, size_t errlen);

/* Bytes the memfd holds in memory now. */
uint64_t swap_resident_bytes(const struct swap *s);
