/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "swap.h"
#include "uffd.h"

/* A chunk with the I/O thread: a SwapOut chunk on its way to disk, or a
 * SwapIn chunk being read. */
struct swap_chunk {
        struct swap_job job;
        struct swap_run runs[SWAP_CHUNK_PAGES];
        uint8_t next[SWAP_CHUNK_PAGES]; /* writing: the pages' states once written */
        uint64_t first, n;
        uint8_t *buf;
        bool busy;
        bool reading;
        uint64_t gen;                   /* reading: the SwapIn pass it was read for (swap->in_gen) */
};

/* A fault that waits for its chunk to leave; the uffd is named by fd, as
 * its index may change when dead uffds are collected meanwhile. */
struct swap_deferred {
        int fd;
        struct uffd_msg msg;
};

/* Faults that can wait for their chunk without allocating. */
#define SWAP_DEFERRED_RESERVE 64

/* PropertiesChanged for Progress at most this often (10/s). */
#define SWAP_EMIT_USEC (100 * 1000)

void swap_histogram_add(struct swap_histogram *h, uint64_t usec) {
        unsigned i = 0;

        while (i < SWAP_HIST_BUCKETS - 1 && usec >= (UINT64_C(1) << i))
                i++;
        h->buckets[i]++;
        h->count++;
}

uint64_t swap_histogram_percentile(const struct swap_histogram *h, double p) {
        uint64_t need, seen = 0;

        if (h->count == 0)
                return 0;
        /* The rank of the p-quantile, at least 1. */
        need = (uint64_t) (p * (double) h->count + 0.999999);
        if (need == 0)
                need = 1;
        for (unsigned i = 0; i < SWAP_HIST_BUCKETS; i++) {
                seen += h->buckets[i];
                if (seen >= need)
                        return UINT64_C(1) << i;
        }
        return UINT64_C(1) << (SWAP_HIST_BUCKETS - 1);
}

bool swap_page_is_zero(const void *p, size_t len) {
        const uint64_t *w = p;

        for (size_t i = 0; i < len / sizeof(uint64_t); i++)
                if (w[i] != 0)
                        return false;
        return true;
}

int swap_offset(uint64_t base, uint64_t size, uint64_t page, uint64_t addr, uint64_t *ret) {
        if (addr < base || addr - base >= size)
                return -ERANGE;
        *ret = (addr - base) & ~(page - 1);
        return 0;
}

int swap_file_path(const char *dir, const char *vm, char **ret) {
        return asprintf(ret, "%s/%s.swap", dir, vm) < 0 ? -ENOMEM : 0;
}

int swap_pwrite_full(int fd, const void *buf, size_t len, uint64_t off) {
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, (off_t) off);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -ENOSPC; /* no progress: as the kernel would say next */
                p += n;
                len -= (size_t) n;
                off += (uint64_t) n;
        }
        return 0;
}

const char *swap_state_to_string(enum swap_state st) {
        static const char *const names[] = {
                [SWAP_READY] = "ready",
                [SWAP_SWAPPING_OUT] = "swapping-out",
                [SWAP_ACTIVE] = "active",
                [SWAP_SWAPPING_IN] = "swapping-in",
                [SWAP_FAILED] = "failed",
        };
        return (unsigned) st < ELEMENTSOF(names) ? names[st] : "unknown";
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void swap_emit(struct swap *s, bool force) {
        uint64_t now = now_usec();
        int r;

        if (!s->bus || (!force && now - s->last_emit_usec < SWAP_EMIT_USEC))
                return;
        s->last_emit_usec = now;
        r = sd_bus_emit_properties_changed(s->bus, s->object_path, MEMORY1_INTERFACE, "SwapState", "Progress",
                                           "LastError", NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to emit PropertiesChanged for %s: %m", s->object_path);
}

static void swap_set_state(struct swap *s, enum swap_state st) {
        s->state = st;
        swap_emit(s, true);
}

static enum swap_page swap_page_where(const struct swap *s, uint64_t i) {
        return (enum swap_page) (s->pages[i] & ~SWAP_PAGE_BACK);
}

static bool swap_page_back(const struct swap *s, uint64_t i) {
        return s->pages[i] & SWAP_PAGE_BACK;
}

/* Sets page i's state (BACK cleared). */
static void swap_set_page(struct swap *s, uint64_t i, enum swap_page p) {
        if (swap_page_where(s, i) == SWAP_PAGE_FILE)
                s->n_file--;
        else if (swap_page_where(s, i) == SWAP_PAGE_ZERO)
                s->n_zero--;
        s->pages[i] = (uint8_t) p;
        if (p == SWAP_PAGE_FILE)
                s->n_file++;
        else if (p == SWAP_PAGE_ZERO)
                s->n_zero++;
}

/* Stops the running operation: state failed, LastError says why. */
_printf_(2, 3) static void swap_fail(struct swap *s, const char *fmt, ...) {
        va_list ap;

        free(s->last_error);
        s->last_error = NULL;
        va_start(ap, fmt);
        if (vasprintf(&s->last_error, fmt, ap) < 0)
                s->last_error = NULL;
        va_end(ap);
        if (s->rollback_error && s->last_error) {
                /* Bringing pages back after a failed SwapOut failed too: say both. */
                char *both = NULL;
                if (asprintf(&both, "%s (while bringing guest memory back after: %s)", s->last_error,
                             s->rollback_error) >= 0) {
                        free(s->last_error);
                        s->last_error = both;
                }
        }
        free(s->rollback_error);
        s->rollback_error = NULL;
        s->rolling_back = false;
        log_error("VM %s: swap failed: %s", s->vm, s->last_error ?: "(out of memory)");
        (void) sd_event_source_set_enabled(s->work, SD_EVENT_OFF);
        swap_set_state(s, SWAP_FAILED);
}

/* SwapOut cannot write (full disk, I/O error): nothing of the failing
 * chunk left memory, and the pages that left before come back from the
 * file (the steps of SwapIn, still in state swapping-out), then every
 * mapping is unregistered and the file emptied; only then is the state
 * failed, with LastError saying why. So a failed SwapOut leaves the VM as
 * before it: all in memory, no faults through memmgr, the disk freed. */
_printf_(2, 3) static void swap_rollback(struct swap *s, const char *fmt, ...) {
        va_list ap;

        free(s->rollback_error);
        s->rollback_error = NULL;
        va_start(ap, fmt);
        if (vasprintf(&s->rollback_error, fmt, ap) < 0)
                s->rollback_error = NULL;
        va_end(ap);
        log_error("VM %s: swap out failed, bringing guest memory back: %s", s->vm,
                  s->rollback_error ?: "(out of memory)");
        s->rolling_back = true;
        s->cursor = 0;
        s->read_cursor = 0;
        s->in_gen++;
}

/* Whether a failed ioctl (r) on e's uffd failed because its process is
 * gone: ESRCH, or ENOMEM/ENOENT from an mm with no mappings left; asks the
 * kernel (uffd_probe_dead()) rather than guessing from r. Marks it dead. */
static bool swap_entry_gone(struct uffd_entry *e, int r) {
        if (r == -ESRCH || uffd_probe_dead(e->fd) == 1)
                e->dead = true;
        return e->dead;
}

/* Write-protects (on) or lets writes through (!on) [off, off + len) in
 * every mapping swap registered, each at its own base: a write through any
 * process's mapping must wait while a chunk leaves. An entry whose mm is
 * gone (ESRCH) writes nothing any more: marked dead and skipped. Returns
 * the first other error, after trying every entry. */
static int swap_wp(struct swap *s, uint64_t off, uint64_t len, bool on) {
        int ret = 0;

        for (size_t i = 0; i < uffd_list_size(s->uffds->list); i++) {
                struct uffd_entry *e = uffd_list_get(s->uffds->list, (uint32_t) i);
                struct uffdio_writeprotect wp = {
                        .range = { .start = e->base + off, .len = len },
                        .mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
                };

                if (!e->registered || e->dead)
                        continue;
                /* Lifting it wakes the threads that wrote meanwhile. */
                if (ioctl(e->fd, UFFDIO_WRITEPROTECT, &wp) < 0) {
                        int r = -errno;
                        if (!swap_entry_gone(e, r) && ret == 0)
                                ret = r;
                }
        }
        return ret;
}

/* The faulting process must not get a wrong page and must not hang: it
 * gets SIGBUS, as for an I/O error on a file mapping. */
static void swap_kill_owner(struct swap *s, uint32_t index) {
        struct uffd_entry *e = uffd_list_get(s->uffds->list, index);

        if (!e)
                return;
        log_error("VM %s: sending SIGBUS to pid %d (uffd %" PRIu32 "): its page cannot be read back.", s->vm,
                  (int) e->pid, index);
        if (e->pidfd >= 0)
                (void) syscall(SYS_pidfd_send_signal, e->pidfd, SIGBUS, NULL, 0);
        else if (e->pid > 0)
                (void) kill(e->pid, SIGBUS);
}

/* Reads len bytes of guest memory at off from the swap file into buf
 * (aligned for O_DIRECT); fails the swap with a clear error on a short
 * read or an I/O error. */
static int swap_read_range(struct swap *s, uint64_t off, uint64_t len, void *buf) {
        uint64_t done = 0;

        while (done < len) {
                ssize_t n = pread(s->fd, (uint8_t *) buf + done, len - done, (off_t) (off + done));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = -errno;
                        swap_fail(s, "swap file %s: cannot read guest memory at offset 0x%" PRIx64 ": %s",
                                  s->file_path, off + done, strerror(-r));
                        return r;
                }
                if (n == 0) {
                        swap_fail(s, "swap file %s: short read of guest memory at offset 0x%" PRIx64 " (%" PRIu64
                                  " of %" PRIu64 " bytes): the file was truncated or corrupted", s->file_path, off,
                                  done, len);
                        return -EIO;
                }
                done += (uint64_t) n;
        }
        return 0;
}

static int swap_copy_in(int fd, uint64_t dst, const void *src, uint64_t len) {
        struct uffdio_copy c = { .dst = dst, .src = (uint64_t) (uintptr_t) src, .len = len };

        return ioctl(fd, UFFDIO_COPY, &c) < 0 ? -errno : 0;
}

/* Runs on_work once more, after the loop has polled for faults and bus
 * messages: a timer due now, not a defer source, which would be dispatched
 * again and again without the loop ever looking at its fds. */
static int swap_schedule(struct swap *s) {
        int r;

        r = sd_event_source_set_time_relative(s->work, 0);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s->work, SD_EVENT_ONESHOT);
}

static bool swap_page_on_its_way(const struct swap *s, uint64_t page) {
        for (unsigned i = 0; s->n_writing > 0 && i < SWAP_DEPTH; i++)
                if (s->chunks[i].busy && !s->chunks[i].reading && page - s->chunks[i].first < s->chunks[i].n)
                        return true;
        return false;
}

/* The faulting thread waits until the chunk has left: serving it now would
 * put a writable page into a chunk about to be punched out. */
static int swap_defer(struct swap *s, int fd, const struct uffd_msg *msg) {
        if (s->n_deferred == s->n_deferred_alloc) {
                size_t n = s->n_deferred_alloc * 2; /* from SWAP_DEFERRED_RESERVE */
                struct swap_deferred *d = reallocarray(s->deferred, n, sizeof(*d));

                if (!d)
                        return -ENOMEM;
                s->deferred = d;
                s->n_deferred_alloc = n;
        }
        s->deferred[s->n_deferred++] = (struct swap_deferred) { .fd = fd, .msg = *msg };
        return 0;
}

/* A fault filled guest page i. */
static void swap_mark_back(struct swap *s, uint64_t i) {
        if (swap_page_where(s, i) != SWAP_PAGE_MEMORY)
                s->pages[i] |= SWAP_PAGE_BACK;
        s->next_data = 0; /* a hole may have filled: ask the memfd again */
}

/* How far past `page` a fault on it reads ahead: when it follows the last
 * file fault closely (sequential touches), the file pages of the next
 * SWAP_FAULT_AROUND_PAGES come back with one read, as the kernel's swap
 * readahead does; a random fault reads its page only. Never while chunks
 * are on their way (a neighbour may be in one, and must not come back
 * before it is punched). Returns the end of the range to read. */
static uint64_t swap_read_ahead(struct swap *s, uint64_t page) {
        uint64_t last = s->last_fault, hi = page + 1;

        s->last_fault = page;
        if (s->n_writing > 0 || last == UINT64_MAX || page <= last || page - last > SWAP_FAULT_AROUND_PAGES)
                return hi;
        for (uint64_t i = page + 1; i < MIN(page + SWAP_FAULT_AROUND_PAGES, s->n_pages); i++)
                if (swap_page_where(s, i) == SWAP_PAGE_FILE && !swap_page_back(s, i))
                        hi = i + 1;
        return hi;
}

/* Copies the file pages among [first, end) in from buf (page first at buf)
 * through fd at base, runs at a time, waking nobody (nobody waits for them;
 * one who faults meanwhile finds them there). A page already there
 * (EEXIST) is newer than the file and stays. */
static void swap_copy_ahead(struct swap *s, int fd, uint64_t base, uint64_t first, uint64_t end, const uint8_t *buf) {
        for (uint64_t i = first; i < end;) {
                struct uffdio_copy c;
                uint64_t j = i;

                while (j < end && swap_page_where(s, j) == SWAP_PAGE_FILE && !swap_page_back(s, j))
                        j++;
                if (j == i) {
                        i++;
                        continue;
                }
                c = (struct uffdio_copy) {
                        .dst = base + i * s->page_size,
                        .src = (uint64_t) (uintptr_t) (buf + (i - first) * s->page_size),
                        .len = (j - i) * s->page_size,
                        .mode = UFFDIO_COPY_MODE_DONTWAKE,
                };
                if (ioctl(fd, UFFDIO_COPY, &c) < 0 && c.copy <= 0)
                        c.copy = (int64_t) s->page_size; /* this one failed (EEXIST): skip it */
                else if (c.copy <= 0)
                        c.copy = (int64_t) c.len;
                for (uint64_t k = i; k < i + (uint64_t) c.copy / s->page_size; k++)
                        swap_mark_back(s, k);
                i += (uint64_t) c.copy / s->page_size;
        }
}

/* A fault on uffd index at address a is guest offset a - base of that
 * uffd's mapping, and is answered through the same uffd. */
static int swap_fault(int fd, uint32_t index, const struct uffd_msg *msg, void *userdata) {
        struct swap *s = userdata;
        struct uffd_entry *e = uffd_list_get(s->uffds->list, index);
        uint64_t start = now_usec(), addr = msg->arg.pagefault.address, off = 0;
        bool guarded = false;
        int r;

        if (!s->registered || !e) /* Not swapped: a device touching a hole. */
                goto zero;
        r = swap_offset(e->base, s->size, s->page_size, addr, &off);
        if (r < 0)
                goto zero;
        if (swap_page_on_its_way(s, off / s->page_size))
                return swap_defer(s, fd, msg);
        guarded = true;
        addr = e->base + off;
        if (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
                /* A write to a page of a finished chunk: lifting the
                 * protection in this mapping lets it through (the page was
                 * punched or is in memory; either way nothing is lost). */
                struct uffdio_writeprotect wp = { .range = { .start = addr, .len = s->page_size } };

                return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
        }

        if (swap_page_where(s, off / s->page_size) == SWAP_PAGE_FILE) {
                uint64_t page = off / s->page_size, end = swap_read_ahead(s, page);

                r = swap_read_range(s, off, (end - page) * s->page_size, s->buf);
                if (r < 0) {
                        swap_kill_owner(s, index);
                        return 0;
                }
                /* The faulting page first: its thread goes on while the
                 * pages read ahead follow. */
                r = swap_copy_in(fd, addr, s->buf, s->page_size);
                if (r == -EEXIST)
                        r = uffd_wake(fd, addr, s->page_size);
                if (r == 0) {
                        swap_mark_back(s, page);
                        swap_histogram_add(&s->latency, now_usec() - start);
                        swap_copy_ahead(s, fd, e->base, page + 1, end, (const uint8_t *) s->buf + s->page_size);
                }
                return r;
        }
zero:
        addr &= ~(s->page_size - 1);
        r = uffd_zeropage(fd, addr, s->page_size);
        if (r == -EEXIST)
                r = uffd_wake(fd, addr, s->page_size);
        if (r == 0 && guarded) {
                swap_mark_back(s, off / s->page_size);
                swap_histogram_add(&s->latency, now_usec() - start);
        }
        return r;
}

/* Serves the deferred faults whose chunk has left, each through the uffd
 * it came on if that one is still there. */
static void swap_replay_deferred(struct swap *s) {
        size_t kept = 0, n = s->n_deferred;

        for (size_t i = 0; i < n; i++) {
                struct swap_deferred d = s->deferred[i];
                uint32_t index = UINT32_MAX;
                uint64_t off;
                int r;

                for (size_t j = 0; j < uffd_list_size(s->uffds->list); j++)
                        if (uffd_list_get(s->uffds->list, (uint32_t) j)->fd == d.fd)
                                index = (uint32_t) j;
                if (index == UINT32_MAX)
                        continue; /* collected: its process is gone */
                if (s->registered &&
                    swap_offset(uffd_list_get(s->uffds->list, index)->base, s->size, s->page_size,
                                d.msg.arg.pagefault.address, &off) == 0 &&
                    swap_page_on_its_way(s, off / s->page_size)) {
                        s->deferred[kept++] = d;
                        continue;
                }
                r = swap_fault(d.fd, index, &d.msg, s);
                if (r < 0 && r != -ESRCH)
                        log_warning_errno(r, "VM %s: failed to serve a fault that waited for its chunk: %m", s->vm);
        }
        s->n_deferred = kept;
}

size_t swap_plan_runs(const uint8_t *next, const bool *read, uint64_t n, uint64_t gap, uint64_t page_size,
                      uint64_t file_off, struct swap_run *runs) {
        size_t n_runs = 0;

        for (uint64_t i = 0; i < n;) {
                uint64_t last, j;

                if (!read[i] || next[i] != SWAP_PAGE_FILE) {
                        i++;
                        continue;
                }
                /* Extend over data pages and short gaps of pages the file
                 * does not need; end before a page it needs from before. */
                for (last = i, j = i + 1; j < n; j++) {
                        if (read[j] && next[j] == SWAP_PAGE_FILE)
                                last = j;
                        else if ((!read[j] && next[j] == SWAP_PAGE_FILE) || j - last > gap)
                                break;
                }
                runs[n_runs++] = (struct swap_run) {
                        .buf_off = i * page_size,
                        .file_off = file_off + i * page_size,
                        .len = (last - i + 1) * page_size,
                };
                i = last + 1;
        }
        return n_runs;
}

/* Whether the memfd holds data in [off, off + len). One SEEK_DATA skips a
 * whole hole, and its answer holds until a fault fills a page (which resets
 * next_data): every mapping is registered for missing pages. */
static bool swap_has_data(struct swap *s, uint64_t off, uint64_t len) {
        if (s->next_data <= off) {
                off_t data = lseek(s->memfd, (off_t) off, SEEK_DATA);

                if (data < 0 && errno == ENXIO)
                        s->next_data = s->size;
                else if (data < 0)
                        return true; /* cannot tell: copy and look */
                else
                        s->next_data = (uint64_t) data;
        }
        return s->next_data < off + len;
}

static struct swap_chunk *swap_free_chunk(struct swap *s) {
        for (unsigned i = 0; i < SWAP_DEPTH; i++)
                if (!s->chunks[i].busy)
                        return &s->chunks[i];
        return NULL;
}

/* A SwapOut started again while the chunks of the last one are still on
 * their way waits for them (they cover pages it is about to look at). */
static bool swap_writes_ahead(const struct swap *s) {
        for (unsigned i = 0; s->n_writing > 0 && i < SWAP_DEPTH; i++)
                if (s->chunks[i].busy && !s->chunks[i].reading && s->chunks[i].first + s->chunks[i].n > s->cursor)
                        return true;
        return false;
}

/* One chunk of SwapOut, into slot c: the pages that may be in memory
 * (never swapped, or brought back by a fault) are copied under write
 * protection in every mapping and handed to the I/O thread. The protection
 * stays until they are on disk and punched out (swap_out_written()), so a
 * write either happened before the copy (and is in it) or waits until the
 * page is gone and then faults it back from the file: none is lost. */
static int swap_out_step(struct swap *s, struct swap_chunk *c) {
        uint64_t first = s->cursor, n = MIN((uint64_t) SWAP_CHUNK_PAGES, s->n_pages - first);
        uint64_t off = first * s->page_size, len = n * s->page_size;
        bool read[SWAP_CHUNK_PAGES], any = false;
        ssize_t got;
        int r;

        for (uint64_t i = 0; i < n; i++) {
                read[i] = swap_page_where(s, first + i) == SWAP_PAGE_MEMORY || swap_page_back(s, first + i);
                any = any || read[i];
        }
        if (any && !swap_has_data(s, off, len)) {
                /* Holes never written: zeros. (A page a fault brought back
                 * is data, so none of those is here.) */
                for (uint64_t i = 0; i < n; i++)
                        if (read[i])
                                swap_set_page(s, first + i, SWAP_PAGE_ZERO);
                any = false;
        }
        s->cursor += n;
        if (!any)
                return 0;

        r = swap_wp(s, off, len, true);
        if (r < 0) {
                swap_fail(s, "cannot write-protect guest memory at 0x%" PRIx64 ": %s", off, strerror(-r));
                return r;
        }
        /* pread of holes gives zeros without allocating pages. */
        got = pread(s->memfd, c->buf, len, (off_t) off);
        if (got != (ssize_t) len) {
                r = got < 0 ? -errno : -EIO;
                (void) swap_wp(s, off, len, false);
                swap_fail(s, "cannot read guest memory at 0x%" PRIx64 ": %s", off, strerror(-r));
                return r;
        }
        for (uint64_t i = 0; i < n; i++)
                c->next[i] = !read[i] ? swap_page_where(s, first + i) :
                             swap_page_is_zero((const uint8_t *) c->buf + i * s->page_size, s->page_size) ?
                             SWAP_PAGE_ZERO : SWAP_PAGE_FILE;
        c->first = first;
        c->n = n;
        c->job = (struct swap_job) {
                .fd = s->fd,
                .buf = c->buf,
                .runs = c->runs,
                /* Buffered writes of single pages are cheap and the file
                 * stays sparse; direct ones are not. */
                .n_runs = swap_plan_runs(c->next, read, n, s->direct_io ? SWAP_WRITE_GAP_PAGES : 0, s->page_size,
                                         off, c->runs),
                .sync = !s->direct_io,
        };
        c->busy = true;
        c->reading = false;
        s->n_inflight++;
        s->n_writing++;
        swap_io_submit(s->io, &c->job);
        return 0;
}

/* The I/O thread wrote a chunk: punch it out and let writes through,
 * or, if it could not be written, keep it and bring back what left
 * before. Runs also when the swap failed or a SwapIn took over meanwhile:
 * the page states must say where each page is. */
static void swap_out_written(struct swap *s, struct swap_chunk *c) {
        struct swap_job *job = &c->job;
        uint64_t off = c->first * s->page_size, len = c->n * s->page_size;
        int r;

        if (job->error < 0) {
                /* Nothing of this chunk is punched: it stays in memory. */
                (void) swap_wp(s, off, len, false);
                if (s->state == SWAP_SWAPPING_OUT && !s->rolling_back)
                        swap_rollback(s, "swap file %s: cannot write guest memory at offset 0x%" PRIx64 " (%" PRIu64
                                      " bytes): %s", s->file_path, job->error_off, job->error_len,
                                      strerror(-job->error));
        } else if (fallocate(s->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) off, (off_t) len) < 0) {
                r = -errno;
                (void) swap_wp(s, off, len, false);
                swap_fail(s, "cannot drop guest memory at 0x%" PRIx64 ": %s", off, strerror(-r));
        } else {
                for (uint64_t i = 0; i < c->n; i++)
                        swap_set_page(s, c->first + i, c->next[i]);
                r = swap_wp(s, off, len, false);
                if (r < 0)
                        swap_fail(s, "cannot lift the write protection of guest memory at 0x%" PRIx64 ": %s", off,
                                  strerror(-r));
        }
        c->busy = false;
        s->n_inflight--;
        s->n_writing--;
        swap_replay_deferred(s);
}

/* Unregisters every mapping swap registered; a dead one has nothing left
 * to unregister. The VM counts as registered until all are done. */
static int swap_unregister(struct swap *s) {
        int ret = 0;

        for (size_t i = 0; s->uffds && i < uffd_list_size(s->uffds->list); i++) {
                struct uffd_entry *e = uffd_list_get(s->uffds->list, (uint32_t) i);
                struct uffdio_range range = { .start = e->base, .len = s->size };

                if (!e->registered)
                        continue;
                /* A dead process's mappings went with it. */
                if (!e->dead && ioctl(e->fd, UFFDIO_UNREGISTER, &range) < 0) {
                        int r = -errno;
                        if (!swap_entry_gone(e, r)) {
                                if (ret == 0)
                                        ret = r;
                                continue;
                        }
                }
                e->registered = false;
        }
        if (ret == 0)
                s->registered = false;
        return ret;
}

/* A live registered uffd to copy pages in through: the page lands in the
 * memfd and so in every mapping. The main one unless its process is gone. */
static struct uffd_entry *swap_copy_entry(struct swap *s) {
        for (size_t i = 0; i < uffd_list_size(s->uffds->list); i++) {
                struct uffd_entry *e = uffd_list_get(s->uffds->list, (uint32_t) i);
                if (e->registered && !e->dead)
                        return e;
        }
        return NULL;
}

/* SwapIn (or a failed SwapOut bringing pages back): hands the I/O thread
 * the next chunks to read, as many as there are free slots; each is one
 * read from its first to its last file page. They come back in order to
 * swap_in_read(). */
static void swap_in_submit(struct swap *s) {
        struct swap_chunk *c;

        while (s->read_cursor < s->n_pages && (c = swap_free_chunk(s))) {
                uint64_t first = s->read_cursor, n = MIN((uint64_t) SWAP_CHUNK_PAGES, s->n_pages - first), lo = n,
                         hi = 0;

                for (uint64_t i = 0; i < n; i++)
                        if (swap_page_where(s, first + i) == SWAP_PAGE_FILE && !swap_page_back(s, first + i)) {
                                lo = MIN(lo, i);
                                hi = i + 1;
                        }
                c->first = first;
                c->n = n;
                c->runs[0] = (struct swap_run) {
                        .buf_off = lo * s->page_size,
                        .file_off = (first + lo) * s->page_size,
                        .len = (hi - lo) * s->page_size,
                };
                c->job = (struct swap_job) { .fd = s->fd, .buf = c->buf, .read = true, .runs = c->runs,
                                             .n_runs = lo < hi };
                /* Buffered: start reading every file page of the range at
                 * once (readahead is off for the faults' sake). */
                if (lo < hi && !s->direct_io)
                        (void) posix_fadvise(s->fd, (off_t) c->runs[0].file_off, (off_t) c->runs[0].len,
                                             POSIX_FADV_WILLNEED);
                c->busy = true;
                c->reading = true;
                c->gen = s->in_gen;
                s->n_inflight++;
                s->read_cursor += n;
                swap_io_submit(s->io, &c->job);
        }
}

/* A SwapIn chunk was read: copies its file pages in, a run of them per
 * UFFDIO_COPY; a page a fault brought back meanwhile (or one that is there
 * anyway: EEXIST) is newer than the file and stays. Returns < 0 when the
 * swap failed; 0 with s->cursor short of the chunk's end when the rest must
 * be read again later (its mappings are changing, or a process went). */
static int swap_in_copy(struct swap *s, struct swap_chunk *c) {
        uint64_t first = c->first, n = c->n;
        int r;

        if (c->job.error == -ENODATA) {
                swap_fail(s, "swap file %s: short read of guest memory at offset 0x%" PRIx64 " (%" PRIu64
                          " bytes): the file was truncated or corrupted", s->file_path, c->job.error_off,
                          c->job.error_len);
                return -EIO;
        }
        if (c->job.error < 0) {
                swap_fail(s, "swap file %s: cannot read guest memory at offset 0x%" PRIx64 ": %s", s->file_path,
                          c->job.error_off, strerror(-c->job.error));
                return c->job.error;
        }
        for (uint64_t i = first; i < first + n;) {
                struct uffd_entry *e;
                struct uffdio_copy cp;
                uint64_t j = i;

                while (j < first + n && swap_page_where(s, j) == SWAP_PAGE_FILE && !swap_page_back(s, j))
                        j++;
                if (j == i) {
                        /* In memory, or a zero page: zero pages come back
                         * as zeros on their first touch. */
                        swap_set_page(s, i, SWAP_PAGE_MEMORY);
                        s->cursor = ++i;
                        continue;
                }
                e = swap_copy_entry(s);
                if (!e) {
                        /* Every process that mapped the memory is gone:
                         * nobody can read it any more. */
                        swap_fail(s, "no live process maps guest memory to bring it back through");
                        return -ESRCH;
                }
                /* The run of file pages [i, j) with one copy. It stops at a
                 * page that is there already (EEXIST), which then stays. */
                cp = (struct uffdio_copy) {
                        .dst = e->base + i * s->page_size,
                        .src = (uint64_t) (uintptr_t) (c->buf + (i - first) * s->page_size),
                        .len = (j - i) * s->page_size,
                };
                r = ioctl(e->fd, UFFDIO_COPY, &cp) < 0 ? -errno : 0;
                s->next_data = 0;
                for (uint64_t done = cp.copy > 0 ? (uint64_t) cp.copy / s->page_size : 0; done > 0; done--) {
                        swap_set_page(s, i, SWAP_PAGE_MEMORY);
                        s->cursor = ++i;
                }
                if (r == 0)
                        continue;
                if (r == -EEXIST) {
                        swap_set_page(s, i, SWAP_PAGE_MEMORY);
                        s->cursor = ++i;
                        continue;
                }
                if (r == -EAGAIN || swap_entry_gone(e, r))
                        return 0; /* later, or through another one */
                swap_fail(s, "cannot bring guest page at offset 0x%" PRIx64 " back: %s", i * s->page_size,
                          strerror(-r));
                return r;
        }
        return 0;
}

/* A read chunk is back. Chunks of an earlier pass (a SwapIn started
 * again, or the rest of a chunk to be read again) are dropped. */
static void swap_in_read(struct swap *s, struct swap_chunk *c) {
        bool bringing_in = s->state == SWAP_SWAPPING_IN || (s->state == SWAP_SWAPPING_OUT && s->rolling_back);

        c->busy = false;
        s->n_inflight--;
        if (!bringing_in || c->gen != s->in_gen)
                return;
        if (c->first != s->cursor) {
                /* Chunks come back in order, so this cannot be; if it were,
                 * read again from where the copying is. */
                s->in_gen++;
                s->read_cursor = s->cursor;
                return;
        }
        if (swap_in_copy(s, c) < 0)
                return;
        if (s->cursor < c->first + c->n) {
                /* Read the rest again, after the chunks read meanwhile. */
                s->in_gen++;
                s->read_cursor = s->cursor;
        }
}

/* The I/O thread hands a chunk back; the work goes on from on_work(). */
static void swap_chunk_done(struct swap_job *job, void *userdata) {
        struct swap *s = userdata;
        struct swap_chunk *c = (struct swap_chunk *) job; /* job is its first member */

        if (c->reading)
                swap_in_read(s, c);
        else
                swap_out_written(s, c);
        if ((s->state == SWAP_SWAPPING_OUT || s->state == SWAP_SWAPPING_IN) && swap_schedule(s) < 0)
                swap_fail(s, "cannot schedule the next step");
}

static int on_work(sd_event_source *source, uint64_t usec, void *userdata) {
        struct swap *s = userdata;
        int r = 0;

        /* Whatever waits for the I/O thread here is scheduled again when the
         * thread hands a chunk back. */
        if (s->state == SWAP_SWAPPING_OUT && !s->rolling_back) {
                if (swap_writes_ahead(s))
                        return 0;
                if (s->cursor < s->n_pages) {
                        struct swap_chunk *c = swap_free_chunk(s);

                        if (!c)
                                return 0;
                        r = swap_out_step(s, c);
                }
        } else if (s->state == SWAP_SWAPPING_IN || s->state == SWAP_SWAPPING_OUT) {
                /* SwapIn, or a failed SwapOut bringing pages back: once
                 * every chunk on its way to disk has landed. */
                if (s->n_writing > 0)
                        return 0;
                swap_in_submit(s);
                if (s->state == SWAP_FAILED)
                        return 0;
                s->progress = s->n_pages ? (double) s->cursor / (double) s->n_pages : 1.0;
                swap_emit(s, false);
                if (s->cursor < s->n_pages || s->n_inflight > 0)
                        return 0; /* each chunk read back schedules this again */
        } else {
                (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
                return 0;
        }
        if (r < 0 && s->state == SWAP_FAILED)
                return 0; /* failed and stopped; a rollback goes on */

        s->progress = s->n_pages ? (double) s->cursor / (double) s->n_pages : 1.0;
        if (s->cursor < s->n_pages) {
                swap_emit(s, false);
                r = swap_schedule(s);
                if (r < 0)
                        swap_fail(s, "cannot schedule the next step: %s", strerror(-r));
                return 0;
        }
        if (s->n_inflight > 0)
                return 0; /* the last chunks are on their way */
        (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
        s->progress = 1.0;
        /* Until the next SwapOut the chunks' buffers need no memory. */
        for (unsigned i = 0; i < SWAP_DEPTH; i++)
                (void) madvise(s->chunks[i].buf, SWAP_CHUNK_PAGES * s->page_size, MADV_DONTNEED);
        if (s->state == SWAP_SWAPPING_OUT && !s->rolling_back) {
                log_info("VM %s swapped out: %" PRIu64 " pages in %s, %" PRIu64 " zero pages skipped.", s->vm,
                         s->n_file, s->file_path, s->n_zero);
                swap_set_state(s, SWAP_ACTIVE);
                return 0;
        }
        /* Every page is in memory: no fault can come any more. */
        r = swap_unregister(s);
        if (r < 0) {
                swap_fail(s, "cannot unregister guest memory from its uffds: %s", strerror(-r));
                return 0;
        }
        if (ftruncate(s->fd, 0) < 0 || ftruncate(s->fd, (off_t) s->size) < 0)
                log_warning_errno(-errno, "Failed to empty swap file %s: %m", s->file_path);
        if (s->rolling_back) {
                log_error("VM %s: guest memory is back in memory after the failed swap out.", s->vm);
                free(s->last_error);
                s->last_error = TAKE_PTR(s->rollback_error);
                s->rolling_back = false;
                swap_set_state(s, SWAP_FAILED);
                return 0;
        }
        log_info("VM %s swapped in.", s->vm);
        swap_set_state(s, SWAP_READY);
        return 0;
}

int swap_new(const char *vm, const char *object_path, sd_bus *bus, sd_event *event, int memfd, uint64_t size,
             const char *dir, struct swap **ret) {
        _cleanup_(swap_freep) struct swap *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->fd = -1;
        s->last_fault = UINT64_MAX;
        s->memfd = memfd;
        s->size = size;
        s->page_size = (uint64_t) sysconf(_SC_PAGESIZE);
        s->n_pages = size / s->page_size;
        s->bus = bus ? sd_bus_ref(bus) : NULL;
        s->event = sd_event_ref(event);
        s->vm = strdup(vm);
        s->object_path = strdup(object_path);
        s->dir = strdup(dir);
        s->pages = calloc(s->n_pages ?: 1, 1);
        if (!s->vm || !s->object_path || !s->dir || !s->pages)
                return -ENOMEM;
        r = swap_file_path(dir, vm, &s->file_path);
        if (r < 0)
                return r;
        r = posix_memalign(&s->buf, (size_t) s->page_size, SWAP_FAULT_AROUND_PAGES * s->page_size);
        if (r != 0) {
                s->buf = NULL;
                return -r;
        }
        s->chunks = calloc(SWAP_DEPTH, sizeof(*s->chunks));
        if (!s->chunks)
                return -ENOMEM;
        for (unsigned i = 0; i < SWAP_DEPTH; i++) {
                void *buf;

                r = posix_memalign(&buf, (size_t) s->page_size, SWAP_CHUNK_PAGES * s->page_size);
                if (r != 0)
                        return -r;
                s->chunks[i].buf = buf;
        }
        /* Room for the faults that wait for a chunk, made now: a fault
         * that cannot be deferred for want of memory could not be answered.
         * One per faulting thread (vCPUs, device threads); it grows past that. */
        s->deferred = calloc(SWAP_DEFERRED_RESERVE, sizeof(*s->deferred));
        if (!s->deferred)
                return -ENOMEM;
        s->n_deferred_alloc = SWAP_DEFERRED_RESERVE;
        r = swap_io_new(event, swap_chunk_done, s, &s->io);
        if (r < 0)
                return r;
        /* Accuracy 1 µs: the default (250 ms) would let each step wait. */
        r = sd_event_add_time_relative(event, &s->work, CLOCK_MONOTONIC, 0, 1, on_work, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(s->work, SD_EVENT_OFF);
        *ret = TAKE_PTR(s);
        return 0;
}

struct swap *swap_free(struct swap *s) {
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->work);
        /* First: the thread may be writing from a chunk's buffer. */
        swap_io_free(s->io);
        for (unsigned i = 0; s->chunks && i < SWAP_DEPTH; i++)
                free(s->chunks[i].buf);
        free(s->chunks);
        free(s->deferred);
        if (s->fd >= 0) {
                /* The VM's memory is going away: so does its swap file. */
                if (unlink(s->file_path) < 0 && errno != ENOENT)
                        log_warning_errno(-errno, "Failed to remove swap file %s: %m", s->file_path);
                safe_close(s->fd);
        }
        if (s->uffds && s->uffds->handler_data == s) {
                s->uffds->handler = NULL;
                s->uffds->handler_data = NULL;
        }
        sd_bus_unref(s->bus);
        sd_event_unref(s->event);
        free(s->buf);
        free(s->pages);
        free(s->last_error);
        free(s->rollback_error);
        free(s->file_path);
        free(s->dir);
        free(s->object_path);
        free(s->vm);
        free(s);
        return NULL;
}

void swap_attach(struct swap *s, struct uffd_service *uffds) {
        s->uffds = uffds;
        uffds->handler = swap_fault;
        uffds->handler_data = s;
}

static int swap_open_file(struct swap *s, char *err, size_t errlen) {
        if (s->fd >= 0)
                return 0;
        if (mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
                snprintf(err, errlen, "state directory %s: %s", s->dir, strerror(errno));
                return -errno;
        }
        /* A leftover from a crashed memmgr is stale: start afresh. */
        s->fd = open(s->file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | (s->direct_io ? O_DIRECT : 0),
                     0600);
        if (s->fd < 0 && errno == EINVAL && s->direct_io) {
                /* The file system has no O_DIRECT: buffered, synced per step. */
                log_warning("Swap file %s: no O_DIRECT on this file system, using buffered I/O.", s->file_path);
                s->direct_io = false;
                s->fd = open(s->file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        }
        /* Faults read single pages at random: no readahead. */
        if (s->fd >= 0 && !s->direct_io)
                (void) posix_fadvise(s->fd, 0, 0, POSIX_FADV_RANDOM);
        if (s->fd < 0 || fchmod(s->fd, 0600) < 0 || ftruncate(s->fd, (off_t) s->size) < 0) {
                int r = -errno;
                snprintf(err, errlen, "swap file %s: %s", s->file_path, strerror(-r));
                if (s->fd >= 0) {
                        (void) unlink(s->file_path);
                        s->fd = safe_close(s->fd);
                }
                return r;
        }
        return 0;
}

/* MISSING + WP over one uffd's mapping; -EOPNOTSUPP (unregistered again)
 * if the kernel cannot copy or write-protect there. */
static int swap_register_range(int fd, uint64_t base, uint64_t size) {
        struct uffdio_register reg = {
                .range = { .start = base, .len = size },
                .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
        };
        uint64_t need = (UINT64_C(1) << _UFFDIO_COPY) | (UINT64_C(1) << _UFFDIO_WRITEPROTECT);

        if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
                return -errno;
        if ((reg.ioctls & need) != need) {
                (void) ioctl(fd, UFFDIO_UNREGISTER, &reg.range);
                return -EOPNOTSUPP;
        }
        return 0;
}

static void swap_register_error(struct swap *s, uint32_t index, const struct uffd_entry *e, int r, char *err,
                                size_t errlen) {
        if (r == -EOPNOTSUPP)
                snprintf(err, errlen, "the kernel offers no UFFDIO_COPY/UFFDIO_WRITEPROTECT on guest memory");
        else
                snprintf(err, errlen, "cannot register guest memory at 0x%" PRIx64 " (%" PRIu64 " bytes) on uffd %"
                         PRIu32 " (pid %d) for missing pages and write protection: %s", e->base, s->size, index,
                         (int) e->pid, strerror(-r));
}

/* Registers every live uffd's mapping. Any live one that cannot be
 * registered fails SwapOut (and undoes the rest): a mapping we do not
 * guard would read a page that left as zeros and fill the memfd with them. */
static int swap_register(struct swap *s, char *err, size_t errlen) {
        for (size_t i = 0; i < uffd_list_size(s->uffds->list); i++) {
                struct uffd_entry *e = uffd_list_get(s->uffds->list, (uint32_t) i);
                int r;

                if (e->registered || e->dead)
                        continue;
                r = swap_register_range(e->fd, e->base, s->size);
                if (r < 0 && swap_entry_gone(e, r))
                        continue; /* its mm is gone: nothing to guard */
                if (r < 0) {
                        swap_register_error(s, (uint32_t) i, e, r, err, errlen);
                        if (!s->registered)
                                (void) swap_unregister(s);
                        return r;
                }
                e->registered = true;
        }
        s->registered = true;
        return 0;
}

int swap_register_device(struct swap *s, int fd, uint64_t base, pid_t pid, bool *ret_registered, char *err,
                         size_t errlen) {
        int r;

        *ret_registered = false;
        if (!s->registered)
                return 0;
        r = swap_register_range(fd, base, s->size);
        if (r < 0) {
                const struct uffd_entry e = { .base = base, .pid = pid };
                swap_register_error(s, (uint32_t) uffd_list_size(s->uffds->list), &e, r, err, errlen);
                return r;
        }
        *ret_registered = true;
        return 0;
}

static int swap_start(struct swap *s, enum swap_state st) {
        int r;

        /* A SwapIn while a failed SwapOut brings pages back takes over. */
        s->rolling_back = false;
        free(s->rollback_error);
        s->rollback_error = NULL;
        s->cursor = 0;
        s->read_cursor = 0;
        s->in_gen++; /* chunks still being read for an earlier pass are dropped */
        s->next_data = 0;
        s->last_fault = UINT64_MAX;
        s->progress = 0;
        free(s->last_error);
        s->last_error = NULL;
        r = swap_schedule(s);
        if (r < 0)
                return r;
        swap_set_state(s, st);
        return 0;
}

static int swap_check_uffds(struct swap *s, char *err, size_t errlen) {
        if (!s->uffds) {
                snprintf(err, errlen, "VM %s has no main uffd: swap needs RegisterUffd", s->vm);
                return -ENODEV;
        }
        return 0;
}

int swap_out(struct swap *s, char *err, size_t errlen) {
        int r;

        if (s->state != SWAP_READY && s->state != SWAP_ACTIVE && s->state != SWAP_FAILED) {
                snprintf(err, errlen, "VM %s is %s", s->vm, swap_state_to_string(s->state));
                return -EBUSY;
        }
        r = swap_check_uffds(s, err, errlen);
        if (r < 0)
                return r;
        r = swap_open_file(s, err, errlen);
        if (r < 0)
                return r;
        r = swap_register(s, err, errlen);
        if (r < 0)
                return r;
        return swap_start(s, SWAP_SWAPPING_OUT);
}

int swap_in(struct swap *s, char *err, size_t errlen) {
        int r;

        if (s->state == SWAP_READY || s->state == SWAP_SWAPPING_IN) {
                snprintf(err, errlen, "VM %s is %s", s->vm, swap_state_to_string(s->state));
                return -EBUSY;
        }
        r = swap_check_uffds(s, err, errlen);
        if (r < 0)
                return r;
        return swap_start(s, SWAP_SWAPPING_IN);
}

/* Whether the file must keep page i: it is out of memory and its data is there. */
static bool swap_file_needs(const struct swap *s, uint64_t i) {
        return swap_page_where(s, i) == SWAP_PAGE_FILE && !swap_page_back(s, i);
}

int swap_trim(struct swap *s, char *err, size_t errlen) {
        int n = 0;

        if (s->state == SWAP_READY)
                return 0;
        if (s->state != SWAP_ACTIVE && s->state != SWAP_FAILED) {
                snprintf(err, errlen, "VM %s is %s", s->vm, swap_state_to_string(s->state));
                return -EBUSY;
        }
        /* The file keeps only what it must: a page in memory again has a
         * stale copy, a zero page a bridged one (swap_plan_runs()). */
        for (uint64_t i = 0; i < s->n_pages;) {
                uint64_t j = i;

                if (swap_file_needs(s, i)) {
                        i++;
                        continue;
                }
                while (j < s->n_pages && !swap_file_needs(s, j))
                        j++;
                if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) (i * s->page_size),
                              (off_t) ((j - i) * s->page_size)) < 0) {
                        snprintf(err, errlen, "swap file %s: %s", s->file_path, strerror(errno));
                        return -errno;
                }
                i = j;
        }
        for (uint64_t i = 0; i < s->n_pages; i++)
                if (swap_page_back(s, i)) {
                        swap_set_page(s, i, SWAP_PAGE_MEMORY);
                        n++;
                }
        return n;
}

uint64_t swap_resident_bytes(const struct swap *s) {
        struct stat st;

        if (fstat(s->memfd, &st) < 0)
                return 0;
        return (uint64_t) st.st_blocks * 512;
}
