/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memmgr's swap over a real private bus, without KVM. A child process
 * plays the launcher: it allocates a VM's memory, maps it, hands memmgr a
 * main uffd with its mapping's address and no range registered, and then
 * fills, reads and writes guest memory on command while this test drives
 * SwapOut, SwapIn and Trim on the Memory1 object and checks what memmgr
 * reports against what the "guest" sees. */

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus-util.h"
#include "harness.h"

#define MEMMGR "org.polyvm.MemoryManager1"
#define MEMMGR_PATH "/org/polyvm/MemoryManager1"
#define MEMORY1 "org.polyvm.Memory1"
#define MIB (UINT64_C(1) << 20)
#define VM_SIZE (64 * MIB)
/* Big enough that SwapOut outlasts a few bus round trips. */
#define WRITER_VM_SIZE (128 * MIB)
#define SEED UINT64_C(0x5eed5eed)

static struct harness h;
static size_t page_size;
static char *state_dir;

/* ---- the child: the launcher's side ---- */

enum { CMD_FILL = 'F', CMD_SUM = 'C', CMD_WRITE = 'W', CMD_STOP = 'S', CMD_LOST = 'L', CMD_MARK = 'M' };

struct cmd {
        char op;
        uint64_t arg;
};

static volatile uint64_t *guest;
static uint64_t n_pages;
static atomic_bool writer_stop;
static uint64_t *last_written; /* the writer's own record, outside guest memory */
static uint64_t writes;
static _Atomic uint64_t written; /* the writer's counter, for CMD_MARK */

static uint64_t mix(uint64_t x) {
        x ^= x >> 33;
        x *= UINT64_C(0xff51afd7ed558ccd);
        x ^= x >> 33;
        return x | 1; /* never zero: a pattern page is never a zero page */
}

/* Pages 4k+1 are never touched (holes), 4k+3 are written with zeros, the
 * others hold a seeded pattern: half the pages are zero pages. */
static bool page_is_zero(uint64_t i) {
        return i % 2 == 1;
}

static uint64_t checksum(void) {
        uint64_t sum = 0, words = page_size / 8;

        for (uint64_t i = 0; i < n_pages; i++)
                for (uint64_t w = 0; w < words; w++)
                        sum = sum * 31 + guest[i * words + w];
        return sum;
}

static uint64_t fill(uint64_t seed) {
        uint64_t words = page_size / 8;

        for (uint64_t i = 0; i < n_pages; i++) {
                if (i % 4 == 1)
                        continue;
                for (uint64_t w = 0; w < words; w++)
                        guest[i * words + w] = page_is_zero(i) ? 0 : mix(seed ^ (i * words + w));
        }
        return checksum();
}

/* Writes an ever-growing counter into word 1 of pages in random order and
 * remembers the last value each page got. Random, not sequential: a
 * sequential writer soon crawls behind SwapOut's cursor through punched
 * pages and rarely writes where pages are leaving; a random one keeps
 * hitting the chunk in flight. */
static void *writer(void *arg) {
        uint64_t words = page_size / 8, counter = 1, x = UINT64_C(0x9e3779b97f4a7c15);

        while (!atomic_load(&writer_stop)) {
                uint64_t i;

                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                i = x % n_pages;
                guest[i * words + 1] = counter;
                last_written[i] = counter++;
                atomic_store_explicit(&written, counter, memory_order_relaxed);
        }
        writes = counter - 1;
        return NULL;
}

/* Pages whose word 1 does not hold the last value written there. */
static uint64_t lost_writes(void) {
        uint64_t words = page_size / 8, lost = 0;

        for (uint64_t i = 0; i < n_pages; i++)
                if (last_written[i] != 0 && guest[i * words + 1] != last_written[i])
                        lost++;
        return lost;
}

static _Noreturn void child_main(int sock, const char *vm, uint64_t size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        struct uffdio_api api = { .api = UFFD_API };
        sd_bus *bus = NULL;
        pthread_t thread;
        const char *path;
        struct cmd c;
        int memfd, uffd;

        if (bus_open(h.address, &bus) < 0 ||
            sd_bus_call_method(bus, MEMMGR, MEMMGR_PATH, MEMMGR, "AllocateMemory", &error, &reply, "st", vm, size) < 0 ||
            sd_bus_message_read(reply, "oh", &path, &memfd) <= 0)
                _exit(10);
        guest = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        if (guest == MAP_FAILED)
                _exit(11);
        n_pages = size / page_size;
        last_written = calloc(n_pages, sizeof(uint64_t));
        /* As the launcher: a uffd with no range; memmgr registers it. */
        uffd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0)
                _exit(12);
        if (sd_bus_call_method(bus, MEMMGR, MEMMGR_PATH, MEMMGR, "RegisterUffd", &error, NULL, "sht", vm, uffd,
                               (uint64_t) (uintptr_t) guest) < 0)
                _exit(13);
        close(uffd);

        while (recv(sock, &c, sizeof(c), 0) == sizeof(c)) {
                uint64_t answer = 0;

                switch (c.op) {
                case CMD_FILL:
                        answer = fill(c.arg);
                        break;
                case CMD_SUM:
                        answer = checksum();
                        break;
                case CMD_WRITE:
                        atomic_store(&writer_stop, false);
                        if (pthread_create(&thread, NULL, writer, NULL) != 0)
                                _exit(14);
                        break;
                case CMD_MARK:
                        answer = atomic_load(&written);
                        break;
                case CMD_LOST:
                        answer = lost_writes();
                        break;
                case CMD_STOP:
                        atomic_store(&writer_stop, true);
                        pthread_join(thread, NULL);
                        answer = lost_writes();
                        if (send(sock, &writes, sizeof(writes), 0) != sizeof(writes))
                                _exit(15);
                        break;
                default:
                        _exit(16);
                }
                if (send(sock, &answer, sizeof(answer), 0) != sizeof(answer))
                        _exit(15);
        }
        _exit(0);
}

struct launcher {
        pid_t pid;
        int sock;
        char *path; /* its Memory1 object */
};

static void launcher_start(struct launcher *l, const char *vm, uint64_t size) {
        int sv[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        l->pid = fork();
        g_assert_cmpint(l->pid, >=, 0);
        if (l->pid == 0) {
                /* The kernel's SIGBUS is what the tests check for: not a
                 * sanitizer's report of it, which would end in SIGABRT. */
                struct sigaction dfl = { .sa_handler = SIG_DFL };
                (void) sigaction(SIGBUS, &dfl, NULL);
                close(sv[0]);
                child_main(sv[1], vm, size);
        }
        close(sv[1]);
        l->sock = sv[0];
        g_assert_cmpint(sd_bus_path_encode(MEMMGR_PATH "/vm", vm, &l->path), >=, 0);
}

/* Sends a command and waits up to timeout_ms for its answer; FALSE if none. */
static gboolean launcher_cmd(struct launcher *l, char op, uint64_t arg, uint64_t *answer, int timeout_ms) {
        struct cmd c = { .op = op, .arg = arg };
        struct pollfd pfd = { .fd = l->sock, .events = POLLIN };

        g_assert_cmpint(send(l->sock, &c, sizeof(c), 0), ==, sizeof(c));
        if (poll(&pfd, 1, timeout_ms) != 1 || !(pfd.revents & POLLIN))
                return FALSE;
        return recv(l->sock, answer, sizeof(*answer), 0) == sizeof(*answer);
}

static void launcher_stop(struct launcher *l) {
        int status;

        close(l->sock);
        g_assert_cmpint(waitpid(l->pid, &status, 0), ==, l->pid);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
        free(l->path);
}

/* ---- the test's side ---- */

static char *call(const char *path, const char *method, char **message) {
        return harness_call_error(&h, MEMMGR, path, MEMORY1, method, message, "");
}

static char *swap_file(const char *vm) {
        return g_strdup_printf("%s/%s.swap", state_dir, vm);
}

static void wait_launcher_ready(struct launcher *l) {
        /* Its memory object appears once it allocated and registered. */
        for (int i = 0; i < 500; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                uint32_t n = 0;

                if (sd_bus_get_property_trivial(h.bus, MEMMGR, l->path, MEMORY1, "UffdCount", &error, 'u', &n) >= 0 &&
                    n == 1)
                        return;
                sd_bus_error_free(&error);
                g_usleep(10000);
        }
        g_error("the launcher child did not register its uffd");
}

static void test_swap_out_in_keeps_data(void) {
        g_autofree char *file = swap_file("swap-vm");
        g_autofree char *err = NULL, *msg = NULL, *state = NULL;
        uint64_t sum0, sum, n_pages = VM_SIZE / page_size, resident, latency[2];
        sd_bus_error error = SD_BUS_ERROR_NULL;
        struct launcher l;
        struct stat st;

        launcher_start(&l, "swap-vm", VM_SIZE);
        wait_launcher_ready(&l);
        state = harness_get_string(&h, MEMMGR, l.path, MEMORY1, "SwapState");
        g_assert_cmpstr(state, ==, "ready");
        /* Not swapped: nothing to bring in; no file yet. */
        err = call(l.path, "SwapIn", &msg);
        g_assert_cmpstr(err, ==, "org.polyvm.Error.BadState");
        g_clear_pointer(&err, g_free);
        g_clear_pointer(&msg, g_free);
        g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));

        g_assert_true(launcher_cmd(&l, CMD_FILL, SEED, &sum0, 30000));
        resident = harness_memory_u64(&h, l.path, "ResidentBytes");
        g_assert_cmpuint(resident, >=, VM_SIZE * 3 / 4); /* pattern and written zeros */

        g_assert_null(call(l.path, "SwapOut", NULL));
        harness_wait_swap_state(&h, l.path, "active");
        /* Every non-zero page is in the file, zero pages are skipped, and
         * the memfd holds (almost) nothing. */
        g_assert_cmpuint(harness_memory_u64(&h, l.path, "SwappedBytes"), ==, n_pages / 2 * page_size);
        g_assert_cmpuint(harness_memory_u64(&h, l.path, "ZeroPagesSkipped"), ==, n_pages / 2);
        g_assert_cmpuint(harness_memory_u64(&h, l.path, "ResidentBytes"), <, VM_SIZE / 50);
        g_assert_cmpint(stat(file, &st), ==, 0);
        g_assert_cmpuint(st.st_mode & 07777, ==, 0600);
        g_assert_cmpuint((uint64_t) st.st_size, ==, VM_SIZE);
        /* Never more room than guest RAM. (This pattern alternates zero
         * and data pages: O_DIRECT writes bridge the zero pages, so the
         * file is not sparse here; test-swap's unit tests check which
         * pages are written.) */
        g_assert_cmpuint((uint64_t) st.st_blocks * 512, <=, VM_SIZE + MIB);
        g_assert_cmpuint(sd_bus_get_property_trivial(h.bus, MEMMGR, l.path, MEMORY1, "Progress", &error, 'd',
                                                     &(double) { 0 }), >=, 0);

        /* The guest reads everything back through faults served from the file. */
        g_assert_true(launcher_cmd(&l, CMD_SUM, 0, &sum, 60000));
        g_assert_cmpuint(sum, ==, sum0);
        /* A fault per zero page; the data pages, read in order, come back
         * up to 16 per fault (read ahead). */
        g_assert_cmpuint(harness_memory_u64(&h, l.path, "FaultsServed"), >=, n_pages / 2 + n_pages / 2 / 16);
        g_assert_cmpuint(harness_memory_u64(&h, l.path, "FaultsServed"), <, n_pages * 3 / 4); /* it did read ahead */
        {
                sd_bus_message *reply = NULL;
                g_assert_cmpint(sd_bus_get_property(h.bus, MEMMGR, l.path, MEMORY1, "FaultLatencyUs", &error, &reply,
                                                    "(tt)"), >=, 0);
                g_assert_cmpint(sd_bus_message_read(reply, "(tt)", &latency[0], &latency[1]), >, 0);
                sd_bus_message_unref(reply);
        }
        g_assert_cmpuint(latency[0], >, 0);
        g_assert_cmpuint(latency[0], <=, latency[1]);
        g_test_message("fault latency p50 < %" G_GUINT64_FORMAT " us, p99 < %" G_GUINT64_FORMAT " us", latency[0],
                       latency[1]);

        /* Trim: the pages are in memory again, so the file lets them go. */
        g_assert_null(call(l.path, "Trim", NULL));
        g_assert_cmpuint(harness_memory_u64(&h, l.path, "SwappedBytes"), ==, 0);
        g_assert_cmpint(stat(file, &st), ==, 0);
        g_assert_cmpuint((uint64_t) st.st_blocks * 512, <, MIB);

        /* Out again, then in: ready, resident, intact. */
        g_assert_null(call(l.path, "SwapOut", NULL));
        harness_wait_swap_state(&h, l.path, "active");
        g_assert_cmpuint(harness_memory_u64(&h, l.path, "ResidentBytes"), <, VM_SIZE / 50);
        err = call(l.path, "SwapOut", &msg); /* from active: again, harmless */
        g_assert_null(err);
        harness_wait_swap_state(&h, l.path, "active");
        g_assert_null(call(l.path, "SwapIn", NULL));
        harness_wait_swap_state(&h, l.path, "ready");
        g_assert_cmpuint(harness_memory_u64(&h, l.path, "ResidentBytes"), >=, n_pages / 2 * page_size);
        g_assert_cmpuint(harness_memory_u64(&h, l.path, "SwappedBytes"), ==, 0);
        g_assert_true(launcher_cmd(&l, CMD_SUM, 0, &sum, 60000));
        g_assert_cmpuint(sum, ==, sum0);

        launcher_stop(&l);
        /* Its memory is freed with its bus connection, and the file with it. */
        for (int i = 0; i < 500 && g_file_test(file, G_FILE_TEST_EXISTS); i++)
                g_usleep(10000);
        g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));
}

static void test_writer_during_swap_out_loses_nothing(void) {
        uint64_t sum, lost, writes_total, overlap = 0;
        struct launcher l;

        launcher_start(&l, "swap-writer", WRITER_VM_SIZE);
        wait_launcher_ready(&l);
        g_assert_true(launcher_cmd(&l, CMD_FILL, SEED + 1, &sum, 30000));

        for (int round = 0; round < 3; round++) {
                g_assert_true(launcher_cmd(&l, CMD_WRITE, 0, &sum, 5000));
                g_usleep(20000);
                g_assert_null(call(l.path, "SwapOut", NULL));
                /* Evidence that the writer got writes in while pages were
                 * leaving: its counter moved between two looks that both
                 * saw swapping-out. */
                for (uint64_t prev = UINT64_MAX;;) {
                        g_autofree char *before = harness_get_string(&h, MEMMGR, l.path, MEMORY1, "SwapState");
                        g_autofree char *after = NULL;
                        uint64_t mark;

                        g_assert_true(launcher_cmd(&l, CMD_MARK, 0, &mark, 60000));
                        after = harness_get_string(&h, MEMMGR, l.path, MEMORY1, "SwapState");
                        if (strcmp(before, "swapping-out") != 0 || strcmp(after, "swapping-out") != 0)
                                break;
                        if (prev != UINT64_MAX && mark > prev)
                                overlap++;
                        prev = mark;
                }
                harness_wait_swap_state(&h, l.path, "active");
                g_usleep(20000);
                /* The answer to STOP is the number of writes, then the lost ones. */
                g_assert_true(launcher_cmd(&l, CMD_STOP, 0, &writes_total, 60000));
                g_assert_cmpint(recv(l.sock, &lost, sizeof(lost), 0), ==, sizeof(lost));
                g_test_message("round %d: %" G_GUINT64_FORMAT " writes, %" G_GUINT64_FORMAT " lost", round,
                               writes_total, lost);
                g_assert_cmpuint(writes_total, >, 0);
                g_assert_cmpuint(lost, ==, 0);
                /* And they are still there after a round trip through the
                 * file, read through faults, and after SwapIn. */
                g_assert_null(call(l.path, "SwapOut", NULL));
                harness_wait_swap_state(&h, l.path, "active");
                g_assert_true(launcher_cmd(&l, CMD_LOST, 0, &lost, 60000));
                g_assert_cmpuint(lost, ==, 0);
                g_assert_null(call(l.path, "SwapOut", NULL));
                harness_wait_swap_state(&h, l.path, "active");
                g_assert_null(call(l.path, "SwapIn", NULL));
                harness_wait_swap_state(&h, l.path, "ready");
                g_assert_true(launcher_cmd(&l, CMD_LOST, 0, &lost, 60000));
                g_assert_cmpuint(lost, ==, 0);
        }
        g_test_message("writes seen landing during swapping-out: %" G_GUINT64_FORMAT " times", overlap);
        g_assert_cmpuint(overlap, >, 0);
        launcher_stop(&l);
}

struct watch {
        char *state;
        char *last_error;
};

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct watch *w = userdata;
        const char *iface, *name, *value;

        if (sd_bus_message_read(m, "s", &iface) < 0 || strcmp(iface, MEMORY1) != 0)
                return 0;
        if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                return 0;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                if (sd_bus_message_read(m, "s", &name) < 0)
                        return 0;
                if ((strcmp(name, "SwapState") == 0 || strcmp(name, "LastError") == 0) &&
                    sd_bus_message_read(m, "v", "s", &value) > 0) {
                        char **slot = name[0] == 'S' ? &w->state : &w->last_error;
                        free(*slot);
                        *slot = strdup(value);
                } else if (sd_bus_message_skip(m, "v") < 0)
                        return 0;
                sd_bus_message_exit_container(m);
        }
        return 0;
}

static void test_truncated_swap_file_fails_and_sigbus(void) {
        g_autofree char *file = swap_file("swap-broken");
        struct watch w = { 0 };
        sd_bus_slot *slot = NULL;
        struct launcher l;
        uint64_t sum;
        int status;

        launcher_start(&l, "swap-broken", VM_SIZE);
        wait_launcher_ready(&l);
        g_assert_cmpint(sd_bus_match_signal(h.bus, &slot, MEMMGR, l.path, "org.freedesktop.DBus.Properties",
                                            "PropertiesChanged", on_properties_changed, &w), >=, 0);
        g_assert_true(launcher_cmd(&l, CMD_FILL, SEED + 2, &sum, 30000));
        g_assert_null(call(l.path, "SwapOut", NULL));
        harness_wait_swap_state(&h, l.path, "active");

        /* The file loses its data: the guest must not get a wrong page, nor hang. */
        g_assert_cmpint(truncate(file, 0), ==, 0);
        g_assert_false(launcher_cmd(&l, CMD_SUM, 0, &sum, 10000));
        g_assert_cmpint(waitpid(l.pid, &status, 0), ==, l.pid);
        g_assert_true(WIFSIGNALED(status));
        g_assert_cmpint(WTERMSIG(status), ==, SIGBUS);

        /* memmgr said so before its owner's exit freed the memory. */
        for (int i = 0; i < 200 && !(w.state && strcmp(w.state, "failed") == 0); i++) {
                int r = sd_bus_process(h.bus, NULL);
                g_assert_cmpint(r, >=, 0);
                if (r == 0)
                        (void) sd_bus_wait(h.bus, 50000);
        }
        g_assert_cmpstr(w.state, ==, "failed");
        g_assert_nonnull(w.last_error);
        g_test_message("LastError: %s", w.last_error);
        g_assert_nonnull(strstr(w.last_error, "short read"));
        g_assert_nonnull(strstr(w.last_error, file));

        for (int i = 0; i < 500 && g_file_test(file, G_FILE_TEST_EXISTS); i++)
                g_usleep(10000);
        g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));
        close(l.sock);
        free(l.path);
        free(w.state);
        free(w.last_error);
        sd_bus_slot_unref(slot);
}

static void test_interface_matches_xml(void) {
        struct launcher l;

        launcher_start(&l, "swap-iface", VM_SIZE);
        wait_launcher_ready(&l);
        harness_compare_interface(&h, MEMMGR, l.path, MEMORY1);
        launcher_stop(&l);
}

/* Runs polyvmctl on our bus; returns its exit status, output in *out. */
static int polyvmctl(char **out, const char *a1, const char *a2, const char *a3) {
        g_autofree char *ctl = harness_build_path("tools/polyvmctl");
        g_autofree char *bus = g_strdup_printf("--bus=%s", h.address);
        char *argv[] = { ctl, bus, (char *) a1, (char *) a2, (char *) a3, NULL };
        g_autofree char *err = NULL;
        int status = -1;

        g_assert_true(g_spawn_sync(NULL, argv, NULL, 0, NULL, NULL, out, &err, &status, NULL));
        if (err && err[0])
                g_test_message("polyvmctl stderr: %s", err);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The launcher's Vm1 verbs reach memmgr: a created VM (no KVM needed) has
 * memory and a main uffd with its mapping's address. */
static void test_launcher_vm1_forwards(void) {
        g_autofree char *kernel = harness_build_path("guest/polyvm-testguest.elf");
        g_autofree char *config = g_strdup_printf("{\"kernel\": \"%s\", \"vcpus\": 1, \"memory_mib\": 64}", kernel);
        g_autofree char *vm_path = NULL, *mem_path = NULL, *err = NULL, *msg = NULL, *file = swap_file("swap-fwd");

        g_assert_cmpint(sd_bus_path_encode("/org/polyvm/Launcher1/vm", "swap-fwd", &vm_path), >=, 0);
        g_assert_cmpint(sd_bus_path_encode(MEMMGR_PATH "/vm", "swap-fwd", &mem_path), >=, 0);
        err = harness_call_error(&h, "org.polyvm.Launcher1", "/org/polyvm/Launcher1", "org.polyvm.Launcher1",
                                 "CreateVm", &msg, "ss", "swap-fwd", config);
        g_assert_null(err);
        harness_compare_interface(&h, "org.polyvm.Launcher1", vm_path, "org.polyvm.Vm1");

        /* Not swapped: memmgr's BadState comes through by name. */
        err = harness_call_error(&h, "org.polyvm.Launcher1", vm_path, "org.polyvm.Vm1", "SwapIn", &msg, NULL);
        g_assert_cmpstr(err, ==, "org.polyvm.Error.BadState");
        g_clear_pointer(&err, g_free);
        g_clear_pointer(&msg, g_free);

        g_assert_null(harness_call_error(&h, "org.polyvm.Launcher1", vm_path, "org.polyvm.Vm1", "SwapOut", NULL, NULL));
        harness_wait_swap_state(&h, mem_path, "active");
        g_assert_true(g_file_test(file, G_FILE_TEST_EXISTS));
        g_assert_cmpuint(harness_memory_u64(&h, mem_path, "ResidentBytes"), <, 64 * MIB / 50);
        g_assert_null(harness_call_error(&h, "org.polyvm.Launcher1", vm_path, "org.polyvm.Vm1", "Trim", NULL, NULL));
        g_assert_null(harness_call_error(&h, "org.polyvm.Launcher1", vm_path, "org.polyvm.Vm1", "SwapIn", NULL, NULL));
        harness_wait_swap_state(&h, mem_path, "ready");

        /* The same through polyvmctl, which waits for the end. */
        {
                g_autofree char *o1 = NULL, *o2 = NULL, *o3 = NULL, *o4 = NULL, *o5 = NULL, *state = NULL;

                g_assert_cmpint(polyvmctl(&o1, "swap", "out", "swap-fwd"), ==, 0);
                state = harness_get_string(&h, MEMMGR, mem_path, MEMORY1, "SwapState");
                g_assert_cmpstr(state, ==, "active");
                g_assert_cmpint(polyvmctl(&o2, "swap", "status", "swap-fwd"), ==, 0);
                g_assert_nonnull(strstr(o2, "State:              active"));
                g_assert_nonnull(strstr(o2, "Zero pages skipped: 16384"));
                g_assert_cmpint(polyvmctl(&o3, "swap", "trim", "swap-fwd"), ==, 0);
                g_assert_cmpint(polyvmctl(&o4, "swap", "in", "swap-fwd"), ==, 0);
                g_free(state);
                state = harness_get_string(&h, MEMMGR, mem_path, MEMORY1, "SwapState");
                g_assert_cmpstr(state, ==, "ready");
                g_assert_cmpint(polyvmctl(&o5, "swap", "in", "nope"), ==, 1);
        }

        g_assert_null(harness_call_error(&h, "org.polyvm.Launcher1", "/org/polyvm/Launcher1", "org.polyvm.Launcher1",
                                         "DestroyVm", NULL, "s", "swap-fwd"));
        for (int i = 0; i < 500 && g_file_test(file, G_FILE_TEST_EXISTS); i++)
                g_usleep(10000);
        g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));
}

int main(int argc, char **argv) {
        g_autofree char *dir = NULL;
        int r;

        g_test_init(&argc, &argv, NULL);
        page_size = (size_t) sysconf(_SC_PAGESIZE);
        dir = g_dir_make_tmp("polyvm-swap-XXXXXX", NULL);
        g_assert_nonnull(dir);
        state_dir = dir;
        /* Activated services inherit the daemon's environment: memmgr's state dir. */
        g_setenv("STATE_DIRECTORY", dir, TRUE);
        harness_start(&h);
        g_test_add_func("/swap/interface-matches-xml", test_interface_matches_xml);
        g_test_add_func("/swap/out-and-in-keep-data", test_swap_out_in_keeps_data);
        g_test_add_func("/swap/writer-during-swap-out-loses-nothing", test_writer_during_swap_out_loses_nothing);
        g_test_add_func("/swap/truncated-swap-file-fails-and-sigbus", test_truncated_swap_file_fails_and_sigbus);
        g_test_add_func("/swap/launcher-vm1-forwards", test_launcher_vm1_forwards);
        r = g_test_run();
        harness_stop(&h);
        (void) rmdir(dir);
        return r;
}
