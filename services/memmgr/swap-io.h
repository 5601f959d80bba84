/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The swap file's I/O on a thread of its own: SwapOut's chunks are written
 * (and SwapIn's read) there, so that the event loop copies and classifies
 * the next chunks (and serves faults) while one is on the disk: swap then
 * runs at the disk's speed instead of the disk's plus the CPU's. Jobs run
 * in the order they were submitted and are handed back, in that order, on
 * the event loop's thread. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* len bytes at buf + buf_off go to the file at file_off (or come from
 * there, for a read). */
struct swap_run {
        uint64_t buf_off, file_off, len;
};

struct swap_job {
        int fd;
        uint8_t *buf;
        bool read;             /* read the runs into buf, else write them from it */
        const struct swap_run *runs;
        size_t n_runs;
        bool sync;             /* buffered file: wait for writeback of the runs (sync_file_range) */

        /* The result, valid in the done callback: 0 or -errno (-ENODATA: a
         * read hit the file's end), and the range that failed. */
        int error;
        uint64_t error_off, error_len;

        struct swap_job *next; /* the I/O thread's queues */
};

struct swap_io;
typedef void (*swap_job_done_t)(struct swap_job *job, void *userdata);

int swap_io_new(sd_event *event, swap_job_done_t done, void *userdata, struct swap_io **ret);
/* Stops the thread after the job it is writing; jobs not handed back are
 * dropped without a callback. */
struct swap_io *swap_io_free(struct swap_io *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct swap_io *, swap_io_free);

/* Queues job (the caller keeps it and its buffers alive until done). */
void swap_io_submit(struct swap_io *w, struct swap_job *job);

/* Does job now, on the calling thread (what the thread does with each
 * job): writes its runs and, if sync, waits for their writeback; or reads
 * them. Sets job->error and its range. */
void swap_job_run(struct swap_job *job);
