/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Exit dispatch and the pause/stop handshake of the vCPU thread, without
 * KVM: the vCPU fd is /dev/null (every KVM ioctl fails with ENOTTY) and
 * kvm_run is an anonymous page the test fills in like KVM would. */

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <string.h>
#include <sys/mman.h>

#include "vcpu-internal.h"

#define RUN_SIZE 4096

struct recorder {
        struct vcpu *v;
        unsigned n_io;
        uint16_t port;
        uint32_t values[8];
        bool is_write;
        int verdict_at;  /* call number (1-based) that returns verdict */
        int verdict;
        uint8_t fill;    /* written into read data */
        uint64_t mmio_addr;
        atomic_int n_stop;
        _Atomic int stop_kind;
        char stop_detail[256];
        bool stop_pauses_self;
        atomic_int n_user_stop;
        atomic_bool user_stop_first[4];
};

static int rec_pio(void *userdata, unsigned vcpu, uint16_t port, uint8_t *data, uint32_t size, bool is_write) {
        struct recorder *r = userdata;
        uint32_t v = 0;

        if (!is_write)
                memset(data, r->fill, size);
        memcpy(&v, data, size);
        if (r->n_io < G_N_ELEMENTS(r->values))
                r->values[r->n_io] = v;
        r->n_io++;
        r->port = port;
        r->is_write = is_write;
        return (int) r->n_io == r->verdict_at ? r->verdict : -1;
}

static int rec_mmio(void *userdata, unsigned vcpu, uint64_t addr, uint8_t *data, uint32_t len, bool is_write) {
        struct recorder *r = userdata;
        uint32_t v = 0;

        if (!is_write)
                memset(data, r->fill, len);
        memcpy(&v, data, MIN(len, 4U));
        r->values[0] = v;
        r->n_io++;
        r->mmio_addr = addr;
        r->is_write = is_write;
        return (int) r->n_io == r->verdict_at ? r->verdict : -1;
}

static void rec_stop(void *userdata, unsigned vcpu, enum vcpu_exit_kind kind, const char *detail) {
        struct recorder *r = userdata;

        /* Allowed from here: pause and stop of the calling vCPU. */
        if (r->stop_pauses_self) {
                vcpu_pause(r->v);
                vcpu_stop(r->v);
        }
        snprintf(r->stop_detail, sizeof(r->stop_detail), "%s", detail);
        atomic_store(&r->stop_kind, (int) kind);
        atomic_fetch_add(&r->n_stop, 1);
}

static int rec_user_stop(void *userdata, unsigned vcpu, bool first) {
        struct recorder *r = userdata;
        int i = atomic_fetch_add(&r->n_user_stop, 1);

        if (i < (int) G_N_ELEMENTS(r->user_stop_first))
                atomic_store(&r->user_stop_first[i], first);
        return -1;
}

static const struct vcpu_ops rec_ops = { .pio = rec_pio, .mmio = rec_mmio, .stop = rec_stop };

static struct vcpu *fake_vcpu(const struct vcpu_ops *ops, struct recorder *r) {
        struct vcpu *v = NULL;
        void *run;

        g_assert_cmpint(vcpu_alloc(0, 1, NULL, 0, ops, r, &v), ==, 0);
        v->fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        g_assert_cmpint(v->fd, >=, 0);
        run = mmap(NULL, RUN_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        g_assert_true(run != MAP_FAILED);
        v->run = run;
        v->run_size = RUN_SIZE;
        if (r)
                r->v = v;
        return v;
}

static void set_io(struct vcpu *v, uint8_t dir, uint16_t port, uint8_t size, uint32_t count, uint64_t off) {
        v->run->exit_reason = KVM_EXIT_IO;
        v->run->io.direction = dir;
        v->run->io.port = port;
        v->run->io.size = size;
        v->run->io.count = count;
        v->run->io.data_offset = off;
}

static uint64_t count_of(struct vcpu *v, unsigned slot) {
        return atomic_load(&v->exit_counts[slot]);
}

static void test_io_out_dispatches_each_string_item(void) {
        struct recorder r = {};
        struct vcpu *v = fake_vcpu(&rec_ops, &r);
        const uint8_t data[] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66 };
        struct exit_result res = {};
        bool pending = false;

        set_io(v, KVM_EXIT_IO_OUT, 0x3f8, 2, 3, 1024);
        memcpy((uint8_t *) v->run + 1024, data, sizeof(data));
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 0);
        g_assert_cmpuint(r.n_io, ==, 3);
        g_assert_cmphex(r.values[0], ==, 0x2211);
        g_assert_cmphex(r.values[1], ==, 0x4433);
        g_assert_cmphex(r.values[2], ==, 0x6655);
        g_assert_cmphex(r.port, ==, 0x3f8);
        g_assert_true(r.is_write);
        g_assert_true(pending);
        g_assert_cmpuint(count_of(v, KVM_EXIT_IO), ==, 1);
        vcpu_free(v);
}

static void test_io_in_data_reaches_kvm_run(void) {
        struct recorder r = { .fill = 0x5a };
        struct vcpu *v = fake_vcpu(&rec_ops, &r);
        struct exit_result res = {};
        bool pending = false;

        set_io(v, KVM_EXIT_IO_IN, 0x3fd, 1, 1, 512);
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 0);
        g_assert_false(r.is_write);
        g_assert_cmphex(((uint8_t *) v->run)[512], ==, 0x5a);
        vcpu_free(v);
}

static void test_io_in_without_handler_reads_all_ones(void) {
        struct vcpu *v = fake_vcpu(NULL, NULL);
        struct exit_result res = {};
        bool pending = false;
        uint32_t got;

        set_io(v, KVM_EXIT_IO_IN, 0xcfc, 4, 1, 256);
        memset((uint8_t *) v->run + 256, 0, 4);
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 0);
        memcpy(&got, (uint8_t *) v->run + 256, 4);
        g_assert_cmphex(got, ==, 0xffffffff);
        vcpu_free(v);
}

static void test_io_verdict_stops_before_the_next_item(void) {
        struct recorder r = { .verdict_at = 2, .verdict = VCPU_EXIT_POWEROFF };
        struct vcpu *v = fake_vcpu(&rec_ops, &r);
        struct exit_result res = {};
        bool pending = false;

        set_io(v, KVM_EXIT_IO_OUT, 0x604, 2, 4, 1024);
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpint(res.kind, ==, VCPU_EXIT_POWEROFF);
        g_assert_cmpuint(r.n_io, ==, 2);
        g_assert_nonnull(strstr(res.detail, "0x604"));
        vcpu_free(v);
}

static void test_io_invalid_verdict_fails(void) {
        struct recorder r = { .verdict_at = 1, .verdict = 42 };
        struct vcpu *v = fake_vcpu(&rec_ops, &r);
        struct exit_result res = {};
        bool pending = false;

        set_io(v, KVM_EXIT_IO_OUT, 0x80, 1, 1, 1024);
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpint(res.kind, ==, VCPU_EXIT_FAILED);
        g_assert_nonnull(strstr(res.detail, "invalid verdict 42"));
        vcpu_free(v);
}

static void test_io_bad_size_or_offset_fails_without_dispatch(void) {
        static const struct { uint8_t size; uint32_t count; uint64_t off; } cases[] = {
                { 3, 1, 1024 }, { 0, 1, 1024 }, { 8, 1, 1024 },
                { 4, 2, RUN_SIZE - 4 }, { 1, 1, RUN_SIZE }, { 1, 1, UINT64_MAX },
                { 4, UINT32_MAX, 1024 },
        };

        for (size_t k = 0; k < G_N_ELEMENTS(cases); k++) {
                struct recorder r = {};
                struct vcpu *v = fake_vcpu(&rec_ops, &r);
                struct exit_result res = {};
                bool pending = false;

                set_io(v, KVM_EXIT_IO_IN, 0x70, cases[k].size, cases[k].count, cases[k].off);
                g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
                g_assert_cmpint(res.kind, ==, VCPU_EXIT_FAILED);
                g_assert_nonnull(strstr(res.detail, "port 0x70"));
                g_assert_cmpuint(r.n_io, ==, 0);
                vcpu_free(v);
        }
}

static void test_mmio_read_and_write_dispatch(void) {
        struct recorder r = { .fill = 0xab };
        struct vcpu *v = fake_vcpu(&rec_ops, &r);
        struct exit_result res = {};
        bool pending = false;

        v->run->exit_reason = KVM_EXIT_MMIO;
        v->run->mmio.phys_addr = 0xfed00000;
        v->run->mmio.len = 4;
        v->run->mmio.is_write = 0;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 0);
        g_assert_cmphex(r.mmio_addr, ==, 0xfed00000);
        g_assert_cmphex(v->run->mmio.data[3], ==, 0xab);
        g_assert_true(pending);

        v->run->mmio.is_write = 1;
        memcpy(v->run->mmio.data, "\x01\x02\x03\x04", 4);
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 0);
        g_assert_true(r.is_write);
        g_assert_cmphex(r.values[0], ==, 0x04030201);
        g_assert_cmpuint(count_of(v, KVM_EXIT_MMIO), ==, 2);
        vcpu_free(v);
}

static void test_mmio_bad_length_fails(void) {
        for (uint32_t len = 0; len <= 16; len += 9) {
                struct recorder r = {};
                struct vcpu *v = fake_vcpu(&rec_ops, &r);
                struct exit_result res = {};
                bool pending = false;

                v->run->exit_reason = KVM_EXIT_MMIO;
                v->run->mmio.len = len;
                g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
                g_assert_cmpint(res.kind, ==, VCPU_EXIT_FAILED);
                g_assert_cmpuint(r.n_io, ==, 0);
                vcpu_free(v);
        }
}

static void test_shutdown_is_a_triple_fault(void) {
        struct vcpu *v = fake_vcpu(NULL, NULL);
        struct exit_result res = {};
        bool pending = true;

        v->run->exit_reason = KVM_EXIT_SHUTDOWN;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpint(res.kind, ==, VCPU_EXIT_SHUTDOWN);
        g_assert_nonnull(strstr(res.detail, "triple fault"));
        g_assert_false(pending);
        g_assert_cmpuint(count_of(v, KVM_EXIT_SHUTDOWN), ==, 1);
        vcpu_free(v);
}

static void test_hlt_is_counted_and_runs_on(void) {
        struct vcpu *v = fake_vcpu(NULL, NULL);
        struct exit_result res = {};
        bool pending = false;

        v->run->exit_reason = KVM_EXIT_HLT;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 0);
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 0);
        g_assert_cmpuint(count_of(v, KVM_EXIT_HLT), ==, 2);
        vcpu_free(v);
}

static void test_fail_entry_names_the_reason(void) {
        struct vcpu *v = fake_vcpu(NULL, NULL);
        struct exit_result res = {};
        bool pending = false;

        v->run->exit_reason = KVM_EXIT_FAIL_ENTRY;
        v->run->fail_entry.hardware_entry_failure_reason = 0x80000021;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpint(res.kind, ==, VCPU_EXIT_FAILED);
        g_assert_nonnull(strstr(res.detail, "KVM_EXIT_FAIL_ENTRY"));
        g_assert_nonnull(strstr(res.detail, "0x80000021"));
        vcpu_free(v);
}

static void test_unexpected_exits_fail_and_are_counted(void) {
        struct vcpu *v = fake_vcpu(NULL, NULL);
        struct exit_result res = {};
        bool pending = false;

        v->run->exit_reason = KVM_EXIT_DEBUG;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpint(res.kind, ==, VCPU_EXIT_FAILED);
        g_assert_cmpstr(res.detail, ==, "unexpected KVM exit debug (4)");

        v->run->exit_reason = 1000;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpstr(res.detail, ==, "unexpected KVM exit unknown (1000)");
        g_assert_cmpuint(count_of(v, VCPU_COUNT_OTHER), ==, 1);
        g_assert_cmpuint(count_of(v, KVM_EXIT_DEBUG), ==, 1);
        vcpu_free(v);
}

static void test_internal_error_names_the_suberror(void) {
        struct vcpu *v = fake_vcpu(NULL, NULL);
        struct exit_result res = {};
        bool pending = false;

        v->run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
        v->run->internal.suberror = KVM_INTERNAL_ERROR_SIMUL_EX;
        v->run->internal.ndata = 2;
        v->run->internal.data[0] = 0x80000b0d;
        v->run->internal.data[1] = 0x31;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpint(res.kind, ==, VCPU_EXIT_INTERNAL_ERROR);
        g_assert_nonnull(strstr(res.detail, "simultaneous exceptions (suberror 2)"));
        g_assert_nonnull(strstr(res.detail, "data 0x80000b0d 0x31"));

        /* ndata beyond the array is clamped, not trusted. */
        v->run->internal.suberror = 77;
        v->run->internal.ndata = 1000;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_nonnull(strstr(res.detail, "unknown suberror (suberror 77)"));
        g_assert_cmpuint(count_of(v, KVM_EXIT_INTERNAL_ERROR), ==, 2);
        vcpu_free(v);
}

static void test_emulation_failure_never_completes_blind(void) {
        /* KVM_GET_REGS fails here: nothing may be completed or counted. */
        struct vcpu *v = fake_vcpu(NULL, NULL);
        struct exit_result res = {};
        bool pending = false;

        v->run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
        v->run->emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
        v->run->emulation_failure.ndata = 3;
        v->run->emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
        v->run->emulation_failure.insn_size = 1;
        v->run->emulation_failure.insn_bytes[0] = 0xcc;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpint(res.kind, ==, VCPU_EXIT_FAILED);
        g_assert_cmpuint(atomic_load(&v->emulated[EMULATE_INT3]), ==, 0);
        vcpu_free(v);
}

static void test_system_events_map_to_poweroff_and_reboot(void) {
        static const struct { uint32_t type; enum vcpu_exit_kind kind; } cases[] = {
                { KVM_SYSTEM_EVENT_SHUTDOWN, VCPU_EXIT_POWEROFF },
                { KVM_SYSTEM_EVENT_RESET, VCPU_EXIT_REBOOT },
                { KVM_SYSTEM_EVENT_CRASH, VCPU_EXIT_FAILED },
        };

        for (size_t k = 0; k < G_N_ELEMENTS(cases); k++) {
                struct vcpu *v = fake_vcpu(NULL, NULL);
                struct exit_result res = {};
                bool pending = false;

                v->run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
                v->run->system_event.type = cases[k].type;
                g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
                g_assert_cmpint(res.kind, ==, cases[k].kind);
                vcpu_free(v);
        }
}

static void test_counter_and_state_names(void) {
        g_assert_cmpstr(vcpu_exit_count_name(KVM_EXIT_IO), ==, "io");
        g_assert_cmpstr(vcpu_exit_count_name(KVM_EXIT_MMIO), ==, "mmio");
        g_assert_cmpstr(vcpu_exit_count_name(KVM_EXIT_HLT), ==, "hlt");
        g_assert_cmpstr(vcpu_exit_count_name(KVM_EXIT_SHUTDOWN), ==, "shutdown");
        g_assert_cmpstr(vcpu_exit_count_name(KVM_EXIT_INTERNAL_ERROR), ==, "internal-error");
        g_assert_cmpstr(vcpu_exit_count_name(VCPU_COUNT_EAGAIN), ==, "eagain");
        g_assert_cmpstr(vcpu_exit_count_name(VCPU_COUNT_OTHER), ==, "other");
        g_assert_null(vcpu_exit_count_name(KVM_EXIT_S390_SIEIC));
        g_assert_null(vcpu_exit_count_name(_VCPU_COUNT_MAX));
        g_assert_cmpstr(vcpu_state_to_string(VCPU_STATE_CREATED), ==, "created");
        g_assert_cmpstr(vcpu_state_to_string(VCPU_STATE_RUNNING), ==, "running");
        g_assert_cmpstr(vcpu_state_to_string(VCPU_STATE_PAUSED), ==, "paused");
        g_assert_cmpstr(vcpu_state_to_string(VCPU_STATE_STOPPED), ==, "stopped");
        g_assert_null(vcpu_state_to_string(_VCPU_STATE_MAX));
}

static bool wait_for(bool (*cond)(struct recorder *r, struct vcpu *v), struct recorder *r, struct vcpu *v) {
        for (int i = 0; i < 5000; i++) {
                if (cond(r, v))
                        return true;
                g_usleep(1000);
        }
        return false;
}

static bool stop_called(struct recorder *r, struct vcpu *v) {
        return atomic_load(&r->n_stop) > 0;
}

static bool is_paused(struct recorder *r, struct vcpu *v) {
        return atomic_load(&v->state) == VCPU_STATE_PAUSED;
}

static void test_failing_kvm_run_stops_the_vm_once(void) {
        struct recorder r = {};
        struct vcpu *v = fake_vcpu(&rec_ops, &r);

        g_assert_cmpint(vcpu_start(v), ==, 0);
        g_assert_true(wait_for(stop_called, &r, v));
        g_assert_cmpint(atomic_load(&r.stop_kind), ==, VCPU_EXIT_FAILED);
        g_assert_nonnull(strstr(r.stop_detail, "KVM_RUN failed"));
        g_assert_cmpint(atomic_load(&v->state), ==, VCPU_STATE_STOPPED);
        vcpu_pause(v); /* returns at once on a stopped vCPU */
        g_assert_cmpint(vcpu_start(v), ==, -EALREADY);
        vcpu_free(v);
        g_assert_cmpint(atomic_load(&r.n_stop), ==, 1);
}

static void test_exit_request_before_first_run_follows_the_first_stop(void) {
        static const struct vcpu_ops ops = { .stop = rec_stop, .user_stop = rec_user_stop };
        struct recorder r = {};
        struct vcpu *v = fake_vcpu(&ops, &r);

        /* A plugin's REQUEST_EXIT/PAUSE before the INIT stop is reported
         * right after it, before the guest runs (KVM_RUN on /dev/null
         * then fails, which ends the run). */
        vcpu_request_exit(v);
        g_assert_cmpint(vcpu_start(v), ==, 0);
        g_assert_true(wait_for(stop_called, &r, v));
        g_assert_nonnull(strstr(r.stop_detail, "KVM_RUN failed"));
        g_assert_cmpint(atomic_load(&r.n_user_stop), ==, 2);
        g_assert_true(atomic_load(&r.user_stop_first[0]));
        g_assert_false(atomic_load(&r.user_stop_first[1]));
        g_assert_false(atomic_load(&v->exit_requested));
        vcpu_free(v);
}

static void test_paused_before_start_parks_and_stop_skips_callback(void) {
        struct recorder r = {};
        struct vcpu *v = fake_vcpu(&rec_ops, &r);

        vcpu_pause(v);
        g_assert_cmpint(vcpu_start(v), ==, 0);
        g_assert_true(wait_for(is_paused, &r, v));
        vcpu_pause(v); /* already parked: returns */
        g_usleep(20000);
        g_assert_cmpint(atomic_load(&r.n_stop), ==, 0); /* never entered KVM_RUN */
        vcpu_stop(v);
        g_assert_cmpint(atomic_load(&v->state), ==, VCPU_STATE_STOPPED);
        vcpu_free(v);
        g_assert_cmpint(atomic_load(&r.n_stop), ==, 0);
}

static void test_resume_runs_the_guest_again(void) {
        struct recorder r = {};
        struct vcpu *v = fake_vcpu(&rec_ops, &r);

        vcpu_pause(v);
        g_assert_cmpint(vcpu_start(v), ==, 0);
        g_assert_true(wait_for(is_paused, &r, v));
        vcpu_resume(v);
        g_assert_true(wait_for(stop_called, &r, v)); /* KVM_RUN reached and failed */
        vcpu_free(v);
}

static void test_stop_callback_may_pause_and_stop_itself(void) {
        struct recorder r = { .stop_pauses_self = true };
        struct vcpu *v = fake_vcpu(&rec_ops, &r);

        g_assert_cmpint(vcpu_start(v), ==, 0);
        g_assert_true(wait_for(stop_called, &r, v));
        vcpu_free(v);
        g_assert_cmpint(atomic_load(&r.n_stop), ==, 1);
}

static void test_pause_right_after_start_waits_for_the_thread(void) {
        for (int i = 0; i < 1000; i++) {
                struct recorder r = {};
                struct vcpu *v = fake_vcpu(&rec_ops, &r);
                int s;

                g_assert_cmpint(vcpu_start(v), ==, 0);
                vcpu_pause(v);
                /* Parked, or already stopped by the failing KVM_RUN; never
                 * still starting or running. */
                s = atomic_load(&v->state);
                g_assert_true(s == VCPU_STATE_PAUSED || s == VCPU_STATE_STOPPED);
                vcpu_free(v);
        }
}

static void test_stop_before_start_refuses_start(void) {
        struct recorder r = {};
        struct vcpu *v = fake_vcpu(&rec_ops, &r);

        vcpu_stop(v);
        g_assert_cmpint(atomic_load(&v->state), ==, VCPU_STATE_STOPPED);
        g_assert_cmpint(vcpu_start(v), ==, -EALREADY);
        vcpu_free(v);
        g_assert_cmpint(atomic_load(&r.n_stop), ==, 0);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/vcpu-run/io-out-dispatches-each-string-item", test_io_out_dispatches_each_string_item);
        g_test_add_func("/vcpu-run/io-in-data-reaches-kvm-run", test_io_in_data_reaches_kvm_run);
        g_test_add_func("/vcpu-run/io-in-without-handler-reads-all-ones", test_io_in_without_handler_reads_all_ones);
        g_test_add_func("/vcpu-run/io-verdict-stops-before-the-next-item", test_io_verdict_stops_before_the_next_item);
        g_test_add_func("/vcpu-run/io-invalid-verdict-fails", test_io_invalid_verdict_fails);
        g_test_add_func("/vcpu-run/io-bad-size-or-offset-fails-without-dispatch", test_io_bad_size_or_offset_fails_without_dispatch);
        g_test_add_func("/vcpu-run/mmio-read-and-write-dispatch", test_mmio_read_and_write_dispatch);
        g_test_add_func("/vcpu-run/mmio-bad-length-fails", test_mmio_bad_length_fails);
        g_test_add_func("/vcpu-run/shutdown-is-a-triple-fault", test_shutdown_is_a_triple_fault);
        g_test_add_func("/vcpu-run/hlt-is-counted-and-runs-on", test_hlt_is_counted_and_runs_on);
        g_test_add_func("/vcpu-run/fail-entry-names-the-reason", test_fail_entry_names_the_reason);
        g_test_add_func("/vcpu-run/unexpected-exits-fail-and-are-counted", test_unexpected_exits_fail_and_are_counted);
        g_test_add_func("/vcpu-run/internal-error-names-the-suberror", test_internal_error_names_the_suberror);
        g_test_add_func("/vcpu-run/emulation-failure-never-completes-blind", test_emulation_failure_never_completes_blind);
        g_test_add_func("/vcpu-run/system-events-map-to-poweroff-and-reboot", test_system_events_map_to_poweroff_and_reboot);
        g_test_add_func("/vcpu-run/counter-and-state-names", test_counter_and_state_names);
        g_test_add_func("/vcpu-run/failing-kvm-run-stops-the-vm-once", test_failing_kvm_run_stops_the_vm_once);
        g_test_add_func("/vcpu-run/exit-request-before-first-run-follows-the-first-stop",
                        test_exit_request_before_first_run_follows_the_first_stop);
        g_test_add_func("/vcpu-run/paused-before-start-parks-and-stop-skips-callback", test_paused_before_start_parks_and_stop_skips_callback);
        g_test_add_func("/vcpu-run/resume-runs-the-guest-again", test_resume_runs_the_guest_again);
        g_test_add_func("/vcpu-run/stop-callback-may-pause-and-stop-itself", test_stop_callback_may_pause_and_stop_itself);
        g_test_add_func("/vcpu-run/pause-right-after-start-waits-for-the-thread", test_pause_right_after_start_waits_for_the_thread);
        g_test_add_func("/vcpu-run/stop-before-start-refuses-start", test_stop_before_start_refuses_start);
        return g_test_run();
}
