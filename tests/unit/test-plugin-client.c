/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libpolyvm-plugin against the launcher's plugin server (fake ops, no KVM)
 * over a real socketpair: the server runs in its own thread as the
 * launcher's main loop would; a second thread plays a vCPU where the test
 * needs one. The minimal example plugin runs end to end: its guest image is
 * executed by a tiny real-mode interpreter standing in for KVM, and each
 * port write travels as an IO event to the plugin, which prints it. */
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <polyvm/plugin.h>

#include "minimal-plugin.h"
#include "plugin-fake.h"
#include "plugin-mini-cpu.h"
#include "plugin-server.h"

struct env {
        struct fake_vm fake;
        struct plugin_server *s;
        struct polyvm_plugin *p;
        pthread_t thread;
        atomic_bool stop;
        atomic_int main_result;
};

static void *serve(void *arg) {
        struct env *e = arg;
        while (!atomic_load(&e->stop)) {
                int r = plugin_server_process(e->s, 20);
                if (r < 0) {
                        atomic_store(&e->main_result, r);
                        break;
                }
        }
        return NULL;
}

static void env_open(struct env *e, unsigned n_vcpus) {
        int fd;

        fake_vm_init(&e->fake);
        atomic_store(&e->stop, false);
        atomic_store(&e->main_result, 0);
        g_assert_cmpint(plugin_server_new(&fake_ops, &e->fake, n_vcpus, &e->s, &fd), ==, 0);
        g_assert_cmpint(polyvm_plugin_connect_fd(fd, &e->p), ==, 0);
        g_assert_cmpint(pthread_create(&e->thread, NULL, serve, e), ==, 0);
}

static void env_close(struct env *e) {
        polyvm_plugin_free(e->p);
        atomic_store(&e->stop, true);
        g_assert_cmpint(pthread_join(e->thread, NULL), ==, 0);
        plugin_server_free(e->s);
        fake_vm_done(&e->fake);
}

static void test_connect_from_environment(void) {
        struct polyvm_plugin *p;
        struct plugin_server *s;
        struct fake_vm f;
        char buf[16];
        int fd;

        unsetenv(POLYVM_PLUGIN_FD_ENV);
        g_assert_cmpint(polyvm_plugin_connect(&p), ==, -ENXIO);
        setenv(POLYVM_PLUGIN_FD_ENV, "12x", 1);
        g_assert_cmpint(polyvm_plugin_connect(&p), ==, -EBADF);
        /* An fd that is no SEQPACKET socket. */
        setenv(POLYVM_PLUGIN_FD_ENV, "0", 1);
        g_assert_cmpint(polyvm_plugin_connect(&p), ==, -EBADF);
        g_assert_null(getenv(POLYVM_PLUGIN_FD_ENV));

        fake_vm_init(&f);
        g_assert_cmpint(plugin_server_new(&fake_ops, &f, 1, &s, &fd), ==, 0);
        snprintf(buf, sizeof(buf), "%d", fd);
        setenv(POLYVM_PLUGIN_FD_ENV, buf, 1);
        g_assert_cmpint(polyvm_plugin_connect(&p), ==, 0);
        g_assert_null(getenv(POLYVM_PLUGIN_FD_ENV)); /* claimed: children do not inherit it */
        polyvm_plugin_free(p);
        g_assert_cmpint(plugin_server_process(s, 1000), ==, -ECONNRESET);
        plugin_server_free(s);
        fake_vm_done(&f);
}

static void test_objects_round_trip(void) {
        struct env e;
        uint32_t io_id, mem_id, irq_id;
        int efd, rfd, memfd;
        uint64_t features, one = 1;
        uint8_t bitmap[64];
        size_t len;

        env_open(&e, 1);
        g_assert_cmpint(polyvm_plugin_get_features(e.p, &features), ==, 0);
        g_assert_cmphex(features & POLYVM_FEATURE_DIRTY_LOG, ==, POLYVM_FEATURE_DIRTY_LOG);

        g_assert_cmpint(polyvm_plugin_create_io_event(e.p, POLYVM_SPACE_PIO, 0x60, 1, true, 0x12, &io_id, &efd), ==, 0);
        g_assert_cmpint(write(efd, &one, sizeof(one)), ==, sizeof(one));
        close(efd);
        /* What the protocol cannot carry never leaves the plugin. */
        g_assert_cmpint(polyvm_plugin_create_io_event(e.p, POLYVM_SPACE_PIO, 0x60, 3, false, 0, &io_id, &efd), ==,
                        -EINVAL);
        g_assert_cmpint(polyvm_plugin_create_io_event(e.p, POLYVM_SPACE_PIO, 0x60, 1, true, 0x100, &io_id, &efd), ==,
                        -EINVAL);

        g_assert_cmpint(polyvm_plugin_create_irq_event(e.p, 4, POLYVM_IRQ_RESAMPLE, &irq_id, &efd, &rfd), ==, 0);
        g_assert_cmpint(efd, >=, 0);
        g_assert_cmpint(rfd, >=, 0);
        close(efd);
        close(rfd);

        memfd = memfd_create("guest", MFD_CLOEXEC);
        g_assert_cmpint(ftruncate(memfd, 0x10000), ==, 0);
        g_assert_cmpint(polyvm_plugin_create_memory(e.p, memfd, 0, 0x200000, 0x10000, POLYVM_MEMORY_DIRTY_LOG,
                                                    &mem_id), ==, 0);
        g_assert_cmpint(polyvm_plugin_create_memory(e.p, memfd, 0, 0x201000, 0x1000, 0, &mem_id), ==, -EEXIST);
        g_assert_cmpint(polyvm_plugin_create_memory(e.p, memfd, 0, 0x300000, 0x800, 0, &mem_id), ==, -EINVAL);
        close(memfd);
        g_assert_cmpuint(mem_id, ==, 3);
        g_assert_cmpint(polyvm_plugin_get_dirty_log(e.p, mem_id, bitmap, 4, &len), ==, -ENOBUFS);
        g_assert_cmpint(polyvm_plugin_get_dirty_log(e.p, mem_id, bitmap, sizeof(bitmap), &len), ==, 0);
        g_assert_cmpuint(len, ==, 8); /* 16 pages, one 64-bit word */
        g_assert_cmphex(bitmap[0], ==, 0x01);
        g_assert_cmphex(bitmap[1], ==, 0x80); /* page 15 */

        g_assert_cmpint(polyvm_plugin_destroy(e.p, io_id), ==, 0);
        g_assert_cmpint(polyvm_plugin_destroy(e.p, io_id), ==, -ENOENT);
        g_assert_cmpint(polyvm_plugin_destroy(e.p, irq_id), ==, 0);
        g_assert_cmpint(polyvm_plugin_destroy(e.p, mem_id), ==, 0);
        g_assert_cmpint(e.fake.live_io_events + e.fake.live_irq_events + (int) e.fake.n_memory, ==, 0);
        env_close(&e);
}

static void test_vm_calls_round_trip(void) {
        struct polyvm_plugin *second;
        struct env e;
        uint64_t clock;
        uint32_t flags;

        env_open(&e, 2);
        g_assert_cmpint(polyvm_plugin_set_irq_line(e.p, 12, true), ==, 0);
        g_assert_cmpuint(e.fake.irq_level[12], ==, 1);
        g_assert_cmpint(polyvm_plugin_set_irq_line(e.p, PLUGIN_MAX_IRQ, true), ==, -EINVAL);
        g_assert_cmpint(polyvm_plugin_set_clock(e.p, 5000), ==, 0);
        g_assert_cmpint(polyvm_plugin_get_clock(e.p, &clock, &flags), ==, 0);
        g_assert_cmpuint(clock, ==, 5000);
        g_assert_cmpuint(flags, ==, POLYVM_CLOCK_STABLE);
        g_assert_cmpint(polyvm_plugin_pause_vcpus(e.p, 0x3), ==, 0);
        g_assert_cmphex(e.fake.paused_mask, ==, 0x3);
        g_assert_cmpint(polyvm_plugin_resume_vcpus(e.p, 0x3), ==, 0);
        g_assert_cmpint(polyvm_plugin_pause_vcpus(e.p, 0x8), ==, -EINVAL);
        g_assert_cmpint(polyvm_plugin_pause_vcpus(e.p, 0), ==, -EINVAL);
        g_assert_cmpint(polyvm_plugin_reserve_range(e.p, POLYVM_SPACE_PIO, 0x3f8, 8), ==, 0);
        g_assert_cmpint(polyvm_plugin_reserve_range(e.p, POLYVM_SPACE_PIO, 0x3fc, 1), ==, -EEXIST);
        g_assert_cmpint(polyvm_plugin_reserve_range(e.p, POLYVM_SPACE_PIO, 0xfff0, 0x20), ==, -EINVAL);
        /* A second connection serves the same calls, and closing it leaves the first. */
        g_assert_cmpint(polyvm_plugin_open_connection(e.p, &second), ==, 0);
        g_assert_cmpint(polyvm_plugin_unreserve_range(second, POLYVM_SPACE_PIO, 0x3f8, 8), ==, 0);
        polyvm_plugin_free(second);
        g_assert_cmpint(polyvm_plugin_unreserve_range(e.p, POLYVM_SPACE_PIO, 0x3f8, 8), ==, -ENOENT);
        g_assert_cmpint(atomic_load(&e.main_result), ==, 0);
        env_close(&e);
}

static void test_vcpu_io_exit_round_trip(void) {
        struct plugin_event init = { .kind = PLUGIN_EVENT_INIT };
        struct plugin_event out = { .kind = PLUGIN_EVENT_IO, .is_write = 1, .address = 0x80, .size = 4,
                                    .data = { 1, 2, 3, 4 } };
        struct plugin_event in = { .kind = PLUGIN_EVENT_IO, .address = 0x81, .size = 2 };
        struct kvm_msr_entry msrs[2] = { { .index = 0x174 }, { .index = 0x175 } };
        struct kvm_cpuid_entry2 cpuid[2] = { { .function = 1, .ecx = 0x80000000 } }, back[4];
        struct kvm_regs regs;
        struct polyvm_vcpu *v, *busy;
        struct polyvm_vcpu_event ev;
        struct env e;
        uint16_t answer = 0xbeef;
        uint32_t n;

        env_open(&e, 1);
        e.fake.msr_value = 0xff;
        g_assert_cmpint(polyvm_plugin_get_vcpu(e.p, 1, &v), ==, -EINVAL);
        g_assert_cmpint(polyvm_plugin_get_vcpu(e.p, 0, &v), ==, 0);
        g_assert_cmpint(polyvm_plugin_get_vcpu(e.p, 0, &busy), ==, -EBUSY);
        g_assert_cmpint(polyvm_vcpu_get_regs(v, &regs), ==, -EBUSY);

        /* The launcher's vCPU thread reports INIT before its first run. */
        g_assert_cmpint(plugin_server_vcpu_event(e.s, 0, &init), ==, 0);
        g_assert_cmpint(polyvm_vcpu_wait(v, &ev), ==, 0);
        g_assert_cmpint(ev.kind, ==, POLYVM_VCPU_EVENT_INIT);
        g_assert_cmpint(polyvm_vcpu_get_regs(v, &regs), ==, 0);
        g_assert_cmphex(regs.rip, ==, 0xfff0);
        regs.rip = 0x7c00;
        g_assert_cmpint(polyvm_vcpu_set_regs(v, &regs), ==, 0);
        g_assert_cmphex(e.fake.regs.rip, ==, 0x7c00);
        g_assert_cmpint(polyvm_vcpu_get_msrs(v, msrs, 2), ==, 0);
        g_assert_cmphex(msrs[1].data, ==, 0x175 ^ 0xff);
        g_assert_cmpint(polyvm_vcpu_set_msrs(v, msrs, 2), ==, 0);
        g_assert_cmpint(polyvm_vcpu_get_msrs(v, msrs, 0), ==, -EINVAL);
        g_assert_cmpint(polyvm_vcpu_set_cpuid(v, cpuid, 2), ==, 0);
        g_assert_cmpint(polyvm_vcpu_get_cpuid(v, back, 1, &n), ==, -ENOBUFS);
        g_assert_cmpint(polyvm_vcpu_get_cpuid(v, back, 4, &n), ==, 0);
        g_assert_cmpuint(n, ==, 2);
        g_assert_cmphex(back[0].ecx, ==, 0x80000000);
        g_assert_cmpint(polyvm_vcpu_resume(v, &answer, 2), ==, -EINVAL); /* INIT takes no data */
        g_assert_cmpint(polyvm_vcpu_resume(v, NULL, 0), ==, 0);

        /* A port write: the plugin sees the bytes, resumes with nothing. */
        g_assert_cmpint(plugin_server_vcpu_event(e.s, 0, &out), ==, 0);
        g_assert_cmpint(polyvm_vcpu_wait(v, &ev), ==, 0);
        g_assert_cmpint(ev.kind, ==, POLYVM_VCPU_EVENT_IO);
        g_assert_true(ev.is_write);
        g_assert_cmphex(ev.address, ==, 0x80);
        g_assert_cmpuint(ev.size, ==, 4);
        g_assert_cmpmem(ev.data, 4, out.data, 4);
        g_assert_cmpint(polyvm_vcpu_resume(v, NULL, 0), ==, 0);

        /* A port read: the plugin's answer reaches the launcher. */
        g_assert_cmpint(plugin_server_vcpu_event(e.s, 0, &in), ==, 0);
        g_assert_cmpint(polyvm_vcpu_wait(v, &ev), ==, 0);
        g_assert_false(ev.is_write);
        g_assert_cmpint(polyvm_vcpu_resume(v, &answer, 2), ==, 0);
        g_assert_cmpuint(e.fake.resume_len, ==, 2);
        g_assert_cmpmem(e.fake.resume_data, 2, &answer, 2);
        g_assert_cmpint(polyvm_vcpu_resume(v, NULL, 0), ==, -EBUSY); /* running again */

        g_assert_cmpint(polyvm_vcpu_request_exit(v), ==, 0);
        g_assert_cmpuint(e.fake.exit_requests, ==, 1);
        g_assert_cmpint(polyvm_vcpu_pause(v, 77), ==, 0);
        g_assert_cmpuint(e.fake.pause_user, ==, 77);
        polyvm_vcpu_free(v);
        env_close(&e);
}

static void test_minimal_example_prints_what_its_guest_writes(void) {
        struct mini_cpu c = {};
        pthread_t vcpu;
        struct env e;
        char *text = NULL;
        size_t size = 0;
        FILE *out = open_memstream(&text, &size);

        env_open(&e, 1);
        c.s = e.s;
        c.fake = &e.fake;
        g_assert_cmpint(pthread_create(&vcpu, NULL, mini_cpu_run, &c), ==, 0);
        g_assert_cmpint(minimal_plugin_run(e.p, "Hi, plugin!\n", out), ==, 0);
        g_assert_cmpint(pthread_join(vcpu, NULL), ==, 0);
        g_assert_false(c.failed);
        fclose(out);
        g_assert_cmpstr(text, ==, "Hi, plugin!\n");
        free(text);
        /* It reserved its port and made its memory, as a plugin must. */
        g_assert_true(fake_vm_called(&e.fake, "reserve_range space=0 start=0xe9 length=0x1"));
        g_assert_true(fake_vm_called(&e.fake, "add_memory id=1 offset=0x0 guest=0x0 size=0x10000 flags=0"));
        env_close(&e);
}

static void test_minimal_guest_image(void) {
        uint8_t buf[64];
        size_t n = minimal_guest_build(buf, sizeof(buf), 0x3f8, "ok");

        g_assert_cmpuint(n, ==, 15 + 3);
        /* mov dx, 0x3f8; mov si, <the string right after the code> */
        g_assert_cmphex(buf[0], ==, 0xBA);
        g_assert_cmphex(buf[1] | buf[2] << 8, ==, 0x3f8);
        g_assert_cmphex(buf[3], ==, 0xBE);
        g_assert_cmphex(buf[4] | buf[5] << 8, ==, MINIMAL_ENTRY + 15);
        g_assert_cmphex(buf[14], ==, 0xF4);
        g_assert_cmpstr((char *) buf + 15, ==, "ok");
        g_assert_cmpuint(minimal_guest_build(buf, 10, 0x3f8, "ok"), ==, 0);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/plugin-client/connect-from-environment", test_connect_from_environment);
        g_test_add_func("/plugin-client/objects-round-trip", test_objects_round_trip);
        g_test_add_func("/plugin-client/vm-calls-round-trip", test_vm_calls_round_trip);
        g_test_add_func("/plugin-client/vcpu-io-exit-round-trip", test_vcpu_io_exit_round_trip);
        g_test_add_func("/plugin-client/minimal-guest-image", test_minimal_guest_image);
        g_test_add_func("/plugin-client/minimal-example-prints-what-its-guest-writes",
                        test_minimal_example_prints_what_its_guest_writes);
        return g_test_run();
}
