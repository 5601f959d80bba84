/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Writes SwapOut's chunks to the swap file on a thread of its own, so that
 * the event loop reads and classifies the next chunks (and serves faults)
 * while one goes to disk: SwapOut then runs at the disk's speed instead of
 * the disk's plus the CPU's. Jobs are written in the order they were
 * submitted and handed back, in that order, on the event loop's thread. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* len bytes at buf + buf_off go to the file at file_off. */
struct swap_run {
        uint64_t buf_off, file_off, len;
};

struct swap_job {
        int fd;
        const uint8_t *buf;
        const struct swap_run *runs;
        size_t n_runs;
        bool sync;             /* buffered file: wait for writeback of the runs (sync_file_range) */

        /* The result, valid in the done callback: 0 or -errno, and the
         * range that failed. */
        int error;
        uint64_t error_off, error_len;

        struct swap_job *next; /* the writer's queues */
};

struct swap_writer;
typedef void (*swap_job_done_t)(struct swap_job *job, void *userdata);

int swap_writer_new(sd_event *event, swap_job_done_t done, void *userdata, struct swap_writer **ret);
/* Stops the thread after the job it is writing; jobs not handed back are
 * dropped without a callback. */
struct swap_writer *swap_writer_free(struct swap_writer *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct swap_writer *, swap_writer_free);

/* Queues job (the caller keeps it and its buffers alive until done). */
void swap_writer_submit(struct swap_writer *w, struct swap_job *job);

/* Writes job's runs and syncs them now, on the calling thread: what the
 * thread does with each job. Sets job->error and its range. */
void swap_job_run(struct swap_job *job);
