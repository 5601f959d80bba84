/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memmgr's swap under a real guest: polyvm-testguest booted through the
 * real launcher, devmgr and memmgr on a private bus fills 200 MiB at CPL 3
 * (memfill), the VM swaps out through Vm1.SwapOut while the guest keeps
 * running, and the guest checks every word (memcheck) — also with a write
 * loop running during SwapOut and with SwapIn while the guest reads; the
 * guest-driven fault benchmark (memtouch) runs while swapped out. The guest
 * commands are in docs/testguest.md, "Memory". Needs /dev/kvm: on a host
 * without it this fails loudly, it never passes by skipping. */

#include <fcntl.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define LAUNCHER "org.polyvm.Launcher1"
#define LAUNCHER_PATH "/org/polyvm/Launcher1"
#define VM1 "org.polyvm.Vm1"
#define MEMMGR "org.polyvm.MemoryManager1"
#define MEMORY1 "org.polyvm.Memory1"
#define GUEST_MIB 512u
#define FILL_MIB 200u
#define SEED 7u
#define BOOT_TIMEOUT_MS (120 * 1000)
#define COMMAND_TIMEOUT_MS (300 * 1000) /* 200 MiB of faults at tens of µs each, with margin */
#define SWAP_TIMEOUT_MS (300 * 1000)
/* memwrite rounds over 51200 pages: long enough (seconds natively, more
 * with faults) to still run when SwapOut has gone through all of memory. */
#define WRITE_ROUNDS 5000u

static struct harness h;

struct guest {
        char *name;
        char *path;        /* the launcher's Vm1 */
        char *memory_path; /* memmgr's Memory1 */
        int console;
        GString *log;
        size_t pos;
};

static void guest_boot(struct guest *g, const char *name) {
        g_autofree char *kernel = harness_build_path("guest/polyvm-testguest.elf");
        g_autofree char *config = NULL, *err = NULL, *message = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int fd;

        memset(g, 0, sizeof(*g));
        g->name = g_strdup(name);
        g->log = g_string_new(NULL);
        g->memory_path = harness_memory_path(name);
        g_assert_cmpint(sd_bus_path_encode(LAUNCHER_PATH "/vm", name, &g->path), >=, 0);

        config = g_strdup_printf("{\"kernel\": \"%s\", \"vcpus\": 2, \"memory_mib\": %u, \"cmdline\": \"console=ttyS0\"}",
                                 kernel, GUEST_MIB);
        err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "CreateVm", &message, "ss", name, config);
        if (err)
                g_error("CreateVm %s: %s: %s", name, err, message);

        g_assert_cmpint(sd_bus_call_method(h.bus, LAUNCHER, g->path, VM1, "OpenConsole", &error, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "h", &fd), >=, 0);
        g->console = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        g_assert_cmpint(g->console, >=, 0);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);

        g_clear_pointer(&err, g_free);
        g_clear_pointer(&message, g_free);
        err = harness_call_error(&h, LAUNCHER, g->path, VM1, "Start", &message, NULL);
        if (err)
                g_error("Start %s: %s: %s", name, err, message);
}

static void guest_fail(struct guest *g, const char *what) {
        g_autofree char *reason = harness_get_string(&h, LAUNCHER, g->path, VM1, "StopReason");
        g_autofree char *state = harness_get_string(&h, LAUNCHER, g->path, VM1, "State");
        g_autofree char *swap = harness_get_string(&h, MEMMGR, g->memory_path, MEMORY1, "SwapState");
        g_autofree char *last = harness_get_string(&h, MEMMGR, g->memory_path, MEMORY1, "LastError");

        g_error("VM %s: %s (state %s, reason \"%s\", swap %s, last error \"%s\"); console:\n%s", g->name, what, state,
                reason, swap, last, g->log->str);
}

static void guest_expect(struct guest *g, const char *needle, int timeout_ms) {
        if (!harness_expect(g->console, g->log, &g->pos, needle, timeout_ms)) {
                g_autofree char *what = g_strdup_printf("\"%s\" did not appear within %d ms", needle, timeout_ms);
                guest_fail(g, what);
        }
}

/* Waits for prefix, then returns the rest of that line (the serial port
 * ends lines with CR LF). */
static char *guest_expect_rest(struct guest *g, const char *prefix, int timeout_ms) {
        size_t start, end;

        guest_expect(g, prefix, timeout_ms);
        start = g->pos;
        guest_expect(g, "\n", timeout_ms);
        end = g->pos - 1;
        if (end > start && g->log->str[end - 1] == '\r')
                end--;
        return g_strndup(g->log->str + start, end - start);
}

/* Whether needle is in what the guest printed after the current position
 * (reading what arrives within 200 ms), without moving past it. */
static gboolean guest_has_printed(struct guest *g, const char *needle) {
        size_t pos = g->pos;
        return harness_expect(g->console, g->log, &pos, needle, 200);
}

static void guest_command(struct guest *g, const char *command) {
        g_autofree char *line = g_strdup_printf("%s\n", command);

        guest_expect(g, "tg> ", COMMAND_TIMEOUT_MS);
        g_assert_cmpint(send(g->console, line, strlen(line), MSG_NOSIGNAL), ==, (ssize_t) strlen(line));
}

static void guest_destroy(struct guest *g) {
        g_autofree char *err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "DestroyVm", NULL, "s",
                                                  g->name);
        g_assert_null(err);
        close(g->console);
        g_string_free(g->log, TRUE);
        free(g->path);
        g_free(g->memory_path);
        g_free(g->name);
}

/* memfill SEED FILL_MIB; returns the sum it printed ("0x" and 16 digits). */
static char *guest_memfill(struct guest *g) {
        g_autofree char *cmd = g_strdup_printf("memfill %u %u", SEED, FILL_MIB);
        g_autofree char *prefix = g_strdup_printf("memfill: %u %u sum ", SEED, FILL_MIB);
        char *sum;

        guest_command(g, cmd);
        sum = guest_expect_rest(g, prefix, COMMAND_TIMEOUT_MS);
        g_assert_cmpuint(strlen(sum), ==, 18);
        g_assert_true(g_str_has_prefix(sum, "0x"));
        return sum;
}

/* Sends memcheck; the caller waits for its answer with guest_memcheck_ok(). */
static void guest_memcheck_start(struct guest *g, unsigned rounds) {
        g_autofree char *cmd = g_strdup_printf("memcheck %u %u %u", SEED, FILL_MIB, rounds);
        guest_command(g, cmd);
}

/* The answer must be ok (with sum, if given). */
static void guest_memcheck_ok(struct guest *g, const char *sum) {
        g_autofree char *rest = guest_expect_rest(g, "memcheck: ", COMMAND_TIMEOUT_MS);

        /* The region line comes first. */
        if (g_str_has_prefix(rest, "region")) {
                g_clear_pointer(&rest, g_free);
                rest = guest_expect_rest(g, "memcheck: ", COMMAND_TIMEOUT_MS);
        }
        if (!g_str_has_prefix(rest, "ok sum ")) {
                g_autofree char *what = g_strdup_printf("memcheck answered \"%s\", not ok", rest);
                guest_fail(g, what);
        }
        if (sum)
                g_assert_cmpstr(rest + strlen("ok sum "), ==, sum);
}

static void vm_call(struct guest *g, const char *member) {
        g_autofree char *message = NULL;
        g_autofree char *err = harness_call_error(&h, LAUNCHER, g->path, VM1, member, &message, NULL);

        if (err) {
                g_autofree char *what = g_strdup_printf("Vm1.%s: %s: %s", member, err, message);
                guest_fail(g, what);
        }
}

static void wait_swap_state(struct guest *g, const char *state) {
        if (!harness_wait_property(&h, LAUNCHER, g->path, VM1, "SwapState", state, SWAP_TIMEOUT_MS)) {
                g_autofree char *what = g_strdup_printf("SwapState did not become %s", state);
                guest_fail(g, what);
        }
}

/* Vm1.SwapOut until active; resident memory must be under 5% of guest RAM.
 * as_filled: memory is as memfill left it (every other page of the region
 * written with zeros, so resident but zero): half the region must have
 * gone to the file, the rest skipped. */
static void swap_out(struct guest *g, bool as_filled) {
        uint64_t resident;

        vm_call(g, "SwapOut");
        wait_swap_state(g, "active");
        resident = harness_memory_u64(&h, g->memory_path, "ResidentBytes");
        g_test_message("%s: swapped out: resident %" PRIu64 " KiB, in the file %" PRIu64 " KiB, zero pages skipped %" PRIu64,
                       g->name, resident >> 10, harness_memory_u64(&h, g->memory_path, "SwappedBytes") >> 10,
                       harness_memory_u64(&h, g->memory_path, "ZeroPagesSkipped"));
        g_assert_cmpuint(resident, <, (uint64_t) GUEST_MIB * 1024 * 1024 / 20);
        if (as_filled) {
                /* The pattern half of the region, the guest's image and a
                 * little more; not the zero half. */
                uint64_t swapped = harness_memory_u64(&h, g->memory_path, "SwappedBytes");
                g_assert_cmpuint(swapped, >=, (uint64_t) FILL_MIB / 2 << 20);
                g_assert_cmpuint(swapped, <, (uint64_t) (FILL_MIB / 2 + 16) << 20);
                g_assert_cmpuint(harness_memory_u64(&h, g->memory_path, "ZeroPagesSkipped"), >=,
                                 (uint64_t) FILL_MIB * 256 / 2);
        }
}

static void print_fault_latency(struct guest *g, const char *what) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint64_t p50 = 0, p99 = 0;

        g_assert_cmpint(sd_bus_get_property(h.bus, MEMMGR, g->memory_path, MEMORY1, "FaultLatencyUs", &error, &reply,
                                            "(tt)"),
                        >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "(tt)", &p50, &p99), >=, 0);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        g_test_message("%s: %s: memmgr FaultsServed %" PRIu64 ", FaultLatencyUs p50 <= %" PRIu64 " p99 <= %" PRIu64,
                       g->name, what, harness_memory_u64(&h, g->memory_path, "FaultsServed"), p50, p99);
}

/* Fill, swap out, check every word: ok, and the checksum memfill printed. */
static void test_fill_swap_out_check(void) {
        g_autofree char *sum = NULL;
        struct guest g;

        guest_boot(&g, "swap-check");
        guest_expect(&g, "POLYVM-GUEST-READY", BOOT_TIMEOUT_MS);
        sum = guest_memfill(&g);
        swap_out(&g, true);
        guest_memcheck_start(&g, 0);
        guest_memcheck_ok(&g, sum);
        print_fault_latency(&g, "memcheck after SwapOut");
        /* The pages are back in memory now and still in the file: a second
         * SwapOut from active, and the check again. */
        swap_out(&g, true);
        guest_memcheck_start(&g, 0);
        guest_memcheck_ok(&g, sum);
        guest_destroy(&g);
}

/* memwrite runs (a read-modify-write of every page, round after round)
 * while SwapOut goes through memory: not one increment may be lost. */
static void test_write_loop_during_swap_out(void) {
        g_autofree char *sum = NULL, *cmd = g_strdup_printf("memwrite %u %u %u", SEED, FILL_MIB, WRITE_ROUNDS);
        struct guest g;

        guest_boot(&g, "swap-write");
        guest_expect(&g, "POLYVM-GUEST-READY", BOOT_TIMEOUT_MS);
        sum = guest_memfill(&g);
        guest_command(&g, cmd);
        guest_expect(&g, "memwrite: running", COMMAND_TIMEOUT_MS);
        vm_call(&g, "SwapOut");
        wait_swap_state(&g, "active");
        /* Otherwise the race this test is about was not run: raise WRITE_ROUNDS. */
        g_assert_false(guest_has_printed(&g, "memwrite: done"));
        g_test_message("swap-write: SwapOut completed while memwrite ran; resident %" PRIu64 " KiB",
                       harness_memory_u64(&h, g.memory_path, "ResidentBytes") >> 10);
        guest_expect(&g, "memwrite: done", COMMAND_TIMEOUT_MS);
        print_fault_latency(&g, "memwrite during SwapOut");
        guest_memcheck_start(&g, WRITE_ROUNDS);
        guest_memcheck_ok(&g, NULL);
        /* And swapped out again with the final values. */
        swap_out(&g, false);
        guest_memcheck_start(&g, WRITE_ROUNDS);
        guest_memcheck_ok(&g, NULL);
        guest_destroy(&g);
}

/* SwapIn brings pages back while memcheck reads them (faults and the
 * background copy race for the same pages). */
static void test_swap_in_while_checking(void) {
        g_autofree char *sum = NULL;
        struct guest g;

        guest_boot(&g, "swap-in");
        guest_expect(&g, "POLYVM-GUEST-READY", BOOT_TIMEOUT_MS);
        sum = guest_memfill(&g);
        swap_out(&g, true);
        guest_memcheck_start(&g, 0);
        vm_call(&g, "SwapIn");
        wait_swap_state(&g, "ready");
        guest_memcheck_ok(&g, sum);
        g_assert_cmpuint(harness_memory_u64(&h, g.memory_path, "SwappedBytes"), ==, 0);
        /* Ready again: no uffd registered, the guest reads memory directly. */
        guest_memcheck_start(&g, 0);
        guest_memcheck_ok(&g, sum);
        guest_destroy(&g);
}

/* The guest-driven fault benchmark: memtouch with every page swapped out,
 * in order and in a random permutation. The figures go to the test log
 * (bench/README.md, "bench/swap", takes them from there). */
static void test_memtouch_while_swapped_out(void) {
        static const char *const orders[] = { "seq", "rand" };
        g_autofree char *sum = NULL;
        struct guest g;

        guest_boot(&g, "swap-touch");
        guest_expect(&g, "POLYVM-GUEST-READY", BOOT_TIMEOUT_MS);
        sum = guest_memfill(&g);
        for (size_t i = 0; i < G_N_ELEMENTS(orders); i++) {
                g_autofree char *cmd = g_strdup_printf("memtouch %s %u %u", orders[i], FILL_MIB, FILL_MIB * 256);
                g_autofree char *info = NULL, *figures = NULL;
                unsigned long long pages = 0, rate = 0;

                swap_out(&g, true);
                guest_command(&g, cmd);
                info = guest_expect_rest(&g, "memtouch: ", COMMAND_TIMEOUT_MS);
                figures = guest_expect_rest(&g, "memtouch: ", COMMAND_TIMEOUT_MS);
                g_test_message("swap-touch: %s (%s): %s", cmd, info, figures);
                print_fault_latency(&g, cmd);
                g_assert_cmpint(sscanf(figures, "%llu pages, %llu pages/s, p50 ", &pages, &rate), ==, 2);
                g_assert_cmpuint(pages, ==, FILL_MIB * 256);
                g_assert_cmpuint(rate, >, 0);
        }
        /* Touching never changed anything. */
        guest_memcheck_start(&g, 0);
        guest_memcheck_ok(&g, sum);
        guest_destroy(&g);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        if (access("/dev/kvm", R_OK | W_OK) < 0) {
                fprintf(stderr, "\n*** FAIL: the guest swap tests need /dev/kvm, which this host does not have (%m).\n"
                                "*** No guest was booted; this is a failure, not a skip.\n\n");
                printf("Bail out! /dev/kvm missing\n");
                return 1;
        }
        g_test_add_func("/guest-swap/fill-swap-out-check", test_fill_swap_out_check);
        g_test_add_func("/guest-swap/write-loop-during-swap-out", test_write_loop_during_swap_out);
        g_test_add_func("/guest-swap/swap-in-while-checking", test_swap_in_while_checking);
        g_test_add_func("/guest-swap/memtouch-while-swapped-out", test_memtouch_while_swapped_out);

        harness_start(&h);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
