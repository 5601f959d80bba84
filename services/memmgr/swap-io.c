/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "swap-io.h"
#include "swap.h"

struct swap_io {
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool quit;
        struct swap_job *queue, **queue_tail; /* to write */
        struct swap_job *done, **done_tail;   /* written, not yet handed back */
        int efd;                              /* says "done has jobs" to the event loop */
        sd_event_source *source;
        swap_job_done_t callback;
        void *userdata;
};

/* pread of all len bytes at off, retrying partial reads and EINTR: 0,
 * -errno, or -ENODATA at the file's end. */
static int swap_pread_full(int fd, uint8_t *buf, size_t len, uint64_t off) {
        size_t done = 0;

        while (done < len) {
                ssize_t n = pread(fd, buf + done, len - done, (off_t) (off + done));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ENODATA;
                done += (size_t) n;
        }
        return 0;
}

void swap_job_run(struct swap_job *job) {
        uint64_t lo = UINT64_MAX, hi = 0;
        int r;

        job->error = 0;
        for (size_t i = 0; i < job->n_runs; i++) {
                const struct swap_run *run = &job->runs[i];

                if (job->read)
                        r = swap_pread_full(job->fd, job->buf + run->buf_off, (size_t) run->len, run->file_off);
                else
                        r = swap_pwrite_full(job->fd, job->buf + run->buf_off, (size_t) run->len, run->file_off);
                if (r < 0) {
                        job->error = r;
                        job->error_off = run->file_off;
                        job->error_len = run->len;
                        return;
                }
                lo = MIN(lo, run->file_off);
                hi = MAX(hi, run->file_off + run->len);
        }
        /* Buffered: an I/O error could still come at writeback, after the
         * caller punched the pages out of memory. Wait for it here. */
        if (!job->read && job->sync && lo < hi &&
            sync_file_range(job->fd, (off_t) lo, (off_t) (hi - lo), SYNC_FILE_RANGE_WAIT_BEFORE |
                            SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) < 0) {
                job->error = -errno;
                job->error_off = lo;
                job->error_len = hi - lo;
        }
}

static void *io_thread(void *userdata) {
        struct swap_io *w = userdata;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                struct swap_job *job;
                uint64_t one = 1;

                while (!w->queue && !w->quit)
                        pthread_cond_wait(&w->wake, &w->lock);
                if (w->quit)
                        break;
                job = w->queue;
                w->queue = job->next;
                if (!w->queue)
                        w->queue_tail = &w->queue;
                pthread_mutex_unlock(&w->lock);

                swap_job_run(job);

                pthread_mutex_lock(&w->lock);
                job->next = NULL;
                *w->done_tail = job;
                w->done_tail = &job->next;
                /* Cannot fail short of a bug: the counter never nears its max. */
                (void) !write(w->efd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

static int on_done(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct swap_io *w = userdata;
        struct swap_job *jobs;
        uint64_t n;

        (void) !read(w->efd, &n, sizeof(n));
        pthread_mutex_lock(&w->lock);
        jobs = w->done;
        w->done = NULL;
        w->done_tail = &w->done;
        pthread_mutex_unlock(&w->lock);
        while (jobs) {
                struct swap_job *job = jobs;

                jobs = job->next;
                job->next = NULL;
                w->callback(job, w->userdata);
        }
        return 0;
}

int swap_io_new(sd_event *event, swap_job_done_t done, void *userdata, struct swap_io **ret) {
        _cleanup_(swap_io_freep) struct swap_io *w = NULL;
        sigset_t all, old;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->efd = -1;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        w->queue_tail = &w->queue;
        w->done_tail = &w->done;
        w->callback = done;
        w->userdata = userdata;
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0)
                return -errno;
        r = sd_event_add_io(event, &w->source, w->efd, EPOLLIN, on_done, w);
        if (r < 0)
                return r;
        /* Signals stay with the event loop's thread. */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        r = -pthread_create(&w->thread, NULL, io_thread, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0)
                return r;
        w->started = true;
        *ret = TAKE_PTR(w);
        return 0;
}

struct swap_io *swap_io_free(struct swap_io *w) {
        if (!w)
                return NULL;
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->quit = true;
                pthread_cond_signal(&w->wake);
                pthread_mutex_unlock(&w->lock);
                pthread_join(w->thread, NULL);
        }
        sd_event_source_disable_unref(w->source);
        safe_close(w->efd);
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

void swap_io_submit(struct swap_io *w, struct swap_job *job) {
        job->next = NULL;
        pthread_mutex_lock(&w->lock);
        *w->queue_tail = job;
        w->queue_tail = &job->next;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
}
