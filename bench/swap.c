/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/swap: memmgr's SwapOut/SwapIn throughput and fault latency against
 * what the disk and the kernel do with the same bytes, in one run (see
 * bench/README.md). Built and run by bench/swap; standalone, libsystemd
 * only. This process plays the launcher: it allocates the VM's memory,
 * maps it, registers a main uffd, fills it and touches it. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#define MEMMGR "org.polyvm.MemoryManager1"
#define MEMMGR_PATH "/org/polyvm/MemoryManager1"
#define MEMORY1 "org.polyvm.Memory1"
#define MIB (UINT64_C(1) << 20)
#define CHUNK MIB /* memmgr's step: 256 pages */
#define PAGE 4096

static uint64_t size = 1024 * MIB, touches = 2000;
static const char *build = "build", *dir_parent = "/var/tmp";
static char dir[4096];
static sd_bus *bus;

#define die(...) do { fprintf(stderr, "bench/swap: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static uint64_t xs(uint64_t *x) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        return *x;
}

static uint64_t fnv1a(const void *p, size_t len) {
        const uint64_t *w = p;
        uint64_t x = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < len / 8; i++) /* word-wise: enough to compare */
                x = (x ^ w[i]) * UINT64_C(0x100000001b3);
        return x;
}

static void pin(pid_t pid, int cpu) {
        cpu_set_t set;

        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(pid, sizeof(set), &set) < 0)
                die("sched_setaffinity(%d, cpu %d): %s", (int) pid, cpu, strerror(errno));
}

/* ---- percentiles ---- */

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static void percentiles(double *v, size_t n, double *p50, double *p99) {
        qsort(v, n, sizeof(*v), cmp_double);
        *p50 = v[n / 2];
        *p99 = v[(size_t) ((double) n * 0.99)];
}

/* ---- processes ---- */

static pid_t spawn(char **argv, int *out) {
        int p[2];
        pid_t pid;

        if (out && pipe2(p, O_CLOEXEC) < 0)
                die("pipe: %s", strerror(errno));
        pid = fork();
        if (pid < 0)
                die("fork: %s", strerror(errno));
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM); /* no leftovers if we die */
                if (out)
                        dup2(p[1], 1);
                execvp(argv[0], argv);
                _exit(127);
        }
        if (out) {
                close(p[1]);
                *out = p[0];
        }
        return pid;
}

static void stop(pid_t pid) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
}

/* ---- memmgr ---- */

static char state[64];

static int on_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *iface, *name, *value;

        if (sd_bus_message_read(m, "s", &iface) < 0 || sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                return 0;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                if (sd_bus_message_read(m, "s", &name) < 0)
                        return 0;
                if (strcmp(name, "SwapState") == 0 && sd_bus_message_read(m, "v", "s", &value) > 0)
                        snprintf(state, sizeof(state), "%s", value);
                else if (sd_bus_message_skip(m, "v") < 0)
                        return 0;
                sd_bus_message_exit_container(m);
        }
        return 0;
}

static void call(const char *path, const char *method) {
        sd_bus_error error = SD_BUS_ERROR_NULL;

        if (sd_bus_call_method(bus, MEMMGR, path, MEMORY1, method, &error, NULL, "") < 0)
                die("%s: %s", method, error.message);
}

/* Calls method and returns the seconds until SwapState is want. */
static double run_until(const char *path, const char *method, const char *want) {
        double t0 = now();

        state[0] = 0;
        call(path, method);
        while (strcmp(state, want) != 0) {
                if (strcmp(state, "failed") == 0)
                        die("%s failed", method);
                if (sd_bus_process(bus, NULL) == 0)
                        sd_bus_wait(bus, 1000000);
        }
        return now() - t0;
}

static uint64_t prop_u64(const char *path, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t v = 0;

        if (sd_bus_get_property_trivial(bus, MEMMGR, path, MEMORY1, name, &error, 't', &v) < 0)
                die("%s: %s", name, error.message);
        return v;
}

static void prop_latency(const char *path, uint64_t *p50, uint64_t *p99) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;

        if (sd_bus_get_property(bus, MEMMGR, path, MEMORY1, "FaultLatencyUs", &error, &reply, "(tt)") < 0 ||
            sd_bus_message_read(reply, "(tt)", p50, p99) <= 0)
                die("FaultLatencyUs: %s", error.message);
        sd_bus_message_unref(reply);
}

static void drop_cache(const char *file) {
        int fd = open(file, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                die("%s: %s", file, strerror(errno));
        (void) fdatasync(fd);
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
}

/* Fills guest memory: random non-zero words, or each page zero with
 * probability 1/2 (a coin per page). Returns the pages left zero. */
static uint64_t fill(uint8_t *g, bool half_zero, uint64_t seed) {
        uint64_t x = seed, zero = 0;

        for (uint64_t p = 0; p < size / PAGE; p++) {
                uint64_t *w = (uint64_t *) (g + p * PAGE);

                if (half_zero && (xs(&x) & 1)) {
                        memset(w, 0, PAGE);
                        zero++;
                        continue;
                }
                for (int i = 0; i < PAGE / 8; i++)
                        w[i] = xs(&x) | 1;
        }
        return zero;
}

/* Reads one byte of each of n random pages, timing each touch (µs). */
/* Reads one byte of each page in order (NULL: n pages from first on),
 * timing each; returns pages per second. */
static double touch(const volatile uint8_t *g, const uint64_t *order, uint64_t first, size_t n, double *lat) {
        double t = now();

        for (size_t i = 0; i < n; i++) {
                double t0 = now();
                (void) g[(order ? order[i] : first + i) * PAGE + 123];
                lat[i] = (now() - t0) * 1e6;
        }
        return (double) n / (now() - t);
}

struct result {
        double out_s, in_s, out_zero_s, in_zero_s;
        uint64_t resident_out; /* ResidentBytes once swapped out (random data) */
        uint64_t zero_skipped, zero_filled;
        double lat_same[2], lat_cross[2], lat_seq[2]; /* p50, p99 seen by the toucher, µs */
        double rate_same, rate_cross, rate_seq;       /* pages/s */
        uint64_t mm_lat[2];               /* memmgr's FaultLatencyUs */
};

static void bench_memmgr(const char *mode, struct result *res, uint64_t *order) {
        char memmgr[4096], busarg[600], dirarg[4200], ioarg[64];
        char *argv[] = { memmgr, busarg, dirarg, ioarg, NULL };
        const char *address;
        pid_t pid;

        snprintf(memmgr, sizeof(memmgr), "%s/services/memmgr/polyvm-memmgr", build);
        sd_bus_get_address(bus, &address);
        snprintf(busarg, sizeof(busarg), "--bus=%s", address);
        snprintf(dirarg, sizeof(dirarg), "--state-dir=%s", dir);
        snprintf(ioarg, sizeof(ioarg), "--swap-io=%s", mode);
        pid = spawn(argv, NULL);
        /* Wait for its name; a call to memmgr now would bus-activate another. */
        for (int i = 0;; i++) {
                sd_bus_message *reply = NULL;
                int has = 0;

                if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "NameHasOwner", NULL, &reply, "s", MEMMGR) >= 0)
                        (void) sd_bus_message_read(reply, "b", &has);
                sd_bus_message_unref(reply);
                if (has)
                        break;
                if (i > 500)
                        die("memmgr did not come up");
                usleep(10000);
        }
        pin(pid, 0);
        pin(0, 1);

        for (int half = 0; half < 2; half++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                struct uffdio_api api = { .api = UFFD_API };
                char vm[64], path[256], file[4200];
                const char *obj;
                uint64_t fnv0, zero;
                sd_bus_slot *slot = NULL;
                int memfd, uffd;
                uint8_t *g;

                snprintf(vm, sizeof(vm), "bench-%s-%d", mode, half);
                if (sd_bus_call_method(bus, MEMMGR, MEMMGR_PATH, MEMMGR, "AllocateMemory", &error, &reply, "st", vm,
                                       size) < 0 ||
                    sd_bus_message_read(reply, "oh", &obj, &memfd) <= 0)
                        die("AllocateMemory: %s", error.message);
                snprintf(path, sizeof(path), "%s", obj);
                snprintf(file, sizeof(file), "%s/%s.swap", dir, vm);
                g = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
                sd_bus_message_unref(reply);
                if (g == MAP_FAILED)
                        die("mmap: %s", strerror(errno));
                uffd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
                if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0)
                        die("userfaultfd: %s", strerror(errno));
                if (sd_bus_call_method(bus, MEMMGR, MEMMGR_PATH, MEMMGR, "RegisterUffd", &error, NULL, "sht", vm,
                                       uffd, (uint64_t) (uintptr_t) g) < 0)
                        die("RegisterUffd: %s", error.message);
                close(uffd);
                sd_bus_match_signal(bus, &slot, MEMMGR, path, "org.freedesktop.DBus.Properties",
                                    "PropertiesChanged", on_changed, NULL);

                zero = fill(g, half, 42 + (uint64_t) half);
                fnv0 = fnv1a(g, size);
                if (half) {
                        res->out_zero_s = run_until(path, "SwapOut", "active");
                        res->zero_skipped = prop_u64(path, "ZeroPagesSkipped");
                        res->zero_filled = zero;
                        drop_cache(file);
                        res->in_zero_s = run_until(path, "SwapIn", "ready");
                } else {
                        double *lat = calloc(touches, sizeof(double));

                        res->out_s = run_until(path, "SwapOut", "active");
                        res->resident_out = prop_u64(path, "ResidentBytes");
                        drop_cache(file);
                        /* Random single-page touches: on memmgr's CPU, then on
                         * the other; then sequential ones (the last pages,
                         * which no random series touches) on the other. */
                        pin(0, 0);
                        res->rate_same = touch(g, order, 0, touches, lat);
                        percentiles(lat, touches, &res->lat_same[0], &res->lat_same[1]);
                        pin(0, 1);
                        res->rate_cross = touch(g, order + touches, 0, touches, lat);
                        percentiles(lat, touches, &res->lat_cross[0], &res->lat_cross[1]);
                        res->rate_seq = touch(g, NULL, size / PAGE - touches, touches, lat);
                        percentiles(lat, touches, &res->lat_seq[0], &res->lat_seq[1]);
                        prop_latency(path, &res->mm_lat[0], &res->mm_lat[1]);
                        free(lat);
                        drop_cache(file);
                        res->in_s = run_until(path, "SwapIn", "ready");
                }
                if (fnv1a(g, size) != fnv0)
                        die("%s: guest memory differs after SwapOut/SwapIn", vm);
                sd_bus_slot_unref(slot);
                munmap(g, size);
                close(memfd);
                if (sd_bus_call_method(bus, MEMMGR, MEMMGR_PATH, MEMMGR, "FreeMemory", &error, NULL, "s", vm) < 0)
                        die("FreeMemory: %s", error.message);
        }
        stop(pid);
}

/* ---- peers: the same bytes through the file system and the page cache ---- */

struct peers {
        double write_buf_s, write_direct_s, read_buf_s, read_direct_s;
        double lat_same[2], rate;
};

static double peer_write(const char *file, const uint8_t *data, bool direct) {
        int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0), 0600);
        double t0 = now();

        if (fd < 0)
                die("%s: %s", file, strerror(errno));
        for (uint64_t off = 0; off < size; off += CHUNK)
                if (pwrite(fd, data + off, CHUNK, (off_t) off) != (ssize_t) CHUNK)
                        die("write %s: %s", file, strerror(errno));
        if (fdatasync(fd) < 0) /* dd conv=fdatasync: the bytes are on the disk */
                die("fdatasync: %s", strerror(errno));
        close(fd);
        return now() - t0;
}

static double peer_read(const char *file, uint8_t *buf, bool direct) {
        int fd;
        double t0;

        drop_cache(file);
        fd = open(file, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
        if (fd < 0)
                die("%s: %s", file, strerror(errno));
        t0 = now();
        for (uint64_t off = 0; off < size; off += CHUNK)
                if (pread(fd, buf, CHUNK, (off_t) off) != (ssize_t) CHUNK)
                        die("read %s: %s", file, strerror(errno));
        close(fd);
        return now() - t0;
}

static void bench_peers(struct peers *p, uint64_t *order) {
        char file[4200];
        uint8_t *data, *buf;
        const volatile uint8_t *map;
        double *lat = calloc(touches, sizeof(double));
        int fd;

        snprintf(file, sizeof(file), "%s/peer.dat", dir);
        data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (data == MAP_FAILED || posix_memalign((void **) &buf, PAGE, CHUNK) != 0)
                die("out of memory");
        fill(data, false, 42);
        pin(0, 0);
        p->write_buf_s = peer_write(file, data, false);
        p->read_buf_s = peer_read(file, buf, false);
        p->write_direct_s = peer_write(file, data, true);
        p->read_direct_s = peer_read(file, buf, true);

        /* Page faults on a file mapping with an empty page cache. MADV_RANDOM:
         * one page per fault, no readahead, as memmgr does. */
        drop_cache(file);
        fd = open(file, O_RDONLY | O_CLOEXEC);
        map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
                die("mmap %s: %s", file, strerror(errno));
        madvise((void *) map, size, MADV_RANDOM);
        p->rate = touch(map, order, 0, touches, lat);
        percentiles(lat, touches, &p->lat_same[0], &p->lat_same[1]);
        munmap((void *) map, size);
        close(fd);
        unlink(file);
        munmap(data, size);
        free(buf);
        free(lat);
}

static const char *fs_name(const char *path, char *dev, size_t len) {
        struct statfs sf;
        char line[4096], best[4096] = "";
        size_t best_len = 0;
        FILE *f = fopen("/proc/self/mounts", "re");

        snprintf(dev, len, "?");
        while (f && fgets(line, sizeof(line), f)) {
                char d[1024], mnt[1024], type[64];
                if (sscanf(line, "%1023s %1023s %63s", d, mnt, type) == 3 && strncmp(path, mnt, strlen(mnt)) == 0 &&
                    strlen(mnt) >= best_len) {
                        best_len = strlen(mnt);
                        snprintf(best, sizeof(best), "%s", type);
                        snprintf(dev, len, "%s", d);
                }
        }
        if (f)
                fclose(f);
        if (best[0])
                return strdup(best);
        return statfs(path, &sf) == 0 && sf.f_type == TMPFS_MAGIC ? "tmpfs" : "?";
}

static double gibs(double s) {
        return (double) size / (double) (1 << 30) / s;
}

int main(int argc, char **argv) {
        char conf[4096], dev[1024], *daemon_argv[] = { "dbus-daemon", "--nofork", "--print-address", "--config-file",
                                                      conf, NULL };
        char address[512] = "";
        struct result r[2] = { 0 };
        struct peers p = { 0 };
        struct utsname u;
        uint64_t *order, x = 7;
        const char *fs;
        pid_t daemon;
        ssize_t n;
        int out;

        for (int i = 1; i < argc; i++) {
                if (strncmp(argv[i], "--build=", 8) == 0)
                        build = argv[i] + 8;
                else if (strncmp(argv[i], "--dir=", 6) == 0)
                        dir_parent = argv[i] + 6;
                else if (strncmp(argv[i], "--size-mib=", 11) == 0)
                        size = strtoull(argv[i] + 11, NULL, 10) * MIB;
                else if (strncmp(argv[i], "--touches=", 10) == 0)
                        touches = strtoull(argv[i] + 10, NULL, 10);
                else
                        die("usage: swap [--build=DIR] [--dir=DIR] [--size-mib=N] [--touches=N]");
        }
        if (size == 0 || size % CHUNK || touches < 100 || touches * 3 > size / PAGE)
                die("--size-mib must be whole and hold 3 × --touches pages (touches >= 100)");
        snprintf(dir, sizeof(dir), "%s/polyvm-swap-bench-XXXXXX", dir_parent);
        if (!mkdtemp(dir))
                die("mkdtemp %s: %s", dir, strerror(errno));

        /* Distinct random pages for every touch series. */
        order = calloc(size / PAGE, sizeof(uint64_t));
        for (uint64_t i = 0; i < size / PAGE - touches; i++)
                order[i] = i;
        for (uint64_t i = size / PAGE - touches - 1; i > 0; i--) {
                uint64_t j = xs(&x) % (i + 1), t = order[i];
                order[i] = order[j];
                order[j] = t;
        }

        snprintf(conf, sizeof(conf), "%s/dbus/polyvm-bus.conf", build);
        daemon = spawn(daemon_argv, &out);
        n = read(out, address, sizeof(address) - 1);
        if (n <= 0)
                die("dbus-daemon gave no address");
        address[strcspn(address, "\n")] = 0;
        close(out);
        if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, address) < 0 || sd_bus_set_bus_client(bus, 1) < 0 ||
            sd_bus_start(bus) < 0)
                die("cannot connect to %s", address);

        bench_memmgr("direct", &r[0], order);
        bench_memmgr("buffered", &r[1], order);
        bench_peers(&p, order + 2 * touches);
        sd_bus_flush_close_unref(bus);
        stop(daemon);
        rmdir(dir);

        uname(&u);
        fs = fs_name(dir_parent, dev, sizeof(dev));
        printf("host: %s, kernel %s, %ld CPUs; dir %s (%s on %s); %" PRIu64 " MiB, %" PRIu64
               " random touches per series\n", u.nodename, u.release, sysconf(_SC_NPROCESSORS_ONLN), dir_parent, fs,
               dev, size / MIB, touches);
        printf("placement: memmgr pinned to CPU 0; bench waits on CPU 1; touches on CPU 0 (same) or CPU 1 (cross)\n\n");
        printf("| what | direct (O_DIRECT, the default) | buffered + sync per step |\n|---|---|---|\n");
        printf("| SwapOut, random data | %.2f GiB/s (%.2f s) | %.2f GiB/s (%.2f s) |\n", gibs(r[0].out_s), r[0].out_s,
               gibs(r[1].out_s), r[1].out_s);
        printf("| SwapIn, random data | %.2f GiB/s (%.2f s) | %.2f GiB/s (%.2f s) |\n", gibs(r[0].in_s), r[0].in_s,
               gibs(r[1].in_s), r[1].in_s);
        printf("| guest RAM still resident once swapped out (ResidentBytes) | %.2f%% | %.2f%% |\n",
               100.0 * (double) r[0].resident_out / (double) size, 100.0 * (double) r[1].resident_out / (double) size);
        printf("| SwapOut, 50%% zero pages (%" PRIu64 " skipped of %" PRIu64 ") | %.2f GiB/s (%.2f s) | %.2f GiB/s "
               "(%.2f s) |\n", r[0].zero_skipped, r[0].zero_filled, gibs(r[0].out_zero_s), r[0].out_zero_s,
               gibs(r[1].out_zero_s), r[1].out_zero_s);
        printf("| SwapIn, 50%% zero pages | %.2f GiB/s (%.2f s) | %.2f GiB/s (%.2f s) |\n", gibs(r[0].in_zero_s),
               r[0].in_zero_s, gibs(r[1].in_zero_s), r[1].in_zero_s);
        printf("| fault, random, toucher on memmgr's CPU: pages/s, p50 / p99 | %.0f/s, %.0f / %.0f µs | %.0f/s, "
               "%.0f / %.0f µs |\n", r[0].rate_same, r[0].lat_same[0], r[0].lat_same[1], r[1].rate_same,
               r[1].lat_same[0], r[1].lat_same[1]);
        printf("| fault, random, toucher on the other CPU: pages/s, p50 / p99 | %.0f/s, %.0f / %.0f µs | %.0f/s, "
               "%.0f / %.0f µs |\n", r[0].rate_cross, r[0].lat_cross[0], r[0].lat_cross[1], r[1].rate_cross,
               r[1].lat_cross[0], r[1].lat_cross[1]);
        printf("| fault, sequential, toucher on the other CPU: pages/s, p50 / p99 | %.0f/s, %.0f / %.0f µs | %.0f/s, "
               "%.0f / %.0f µs |\n", r[0].rate_seq, r[0].lat_seq[0], r[0].lat_seq[1], r[1].rate_seq,
               r[1].lat_seq[0], r[1].lat_seq[1]);
        printf("| memmgr's FaultLatencyUs (both series) p50 / p99 | < %" PRIu64 " / < %" PRIu64 " µs | < %" PRIu64
               " / < %" PRIu64 " µs |\n\n", r[0].mm_lat[0], r[0].mm_lat[1], r[1].mm_lat[0], r[1].mm_lat[1]);
        printf("| peer, same bytes, 1 MiB chunks, CPU 0 | O_DIRECT | buffered |\n|---|---|---|\n");
        printf("| sequential write + fdatasync | %.2f GiB/s | %.2f GiB/s |\n", gibs(p.write_direct_s),
               gibs(p.write_buf_s));
        printf("| sequential read, cache dropped | %.2f GiB/s | %.2f GiB/s |\n", gibs(p.read_direct_s),
               gibs(p.read_buf_s));
        printf("| random page faults on a MAP_SHARED file mapping, cache dropped, MADV_RANDOM: pages/s, p50 / p99 | | "
               "%.0f/s, %.0f / %.0f µs |\n", p.rate, p.lat_same[0], p.lat_same[1]);
        return 0;
}
