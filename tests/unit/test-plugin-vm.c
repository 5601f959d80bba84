/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The launcher's KVM side of a plugin VM without KVM: the pure parts
 * (range lookup, events, features, how a plugin's end ends the VM), and
 * the vCPU threads' stops for the plugin through the real plugin server,
 * with this test playing the plugin on the main socket. */
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "plugin-proto.h"
#include "plugin-server.h"
#include "plugin-vm.h"
#include "vcpu-internal.h"

static void test_ranges_hit_overlaps_only_in_their_space(void) {
        const struct plugin_range r[] = {
                { .space = PLUGIN_SPACE_PIO, .start = 0x3f8, .length = 8 },
                { .space = PLUGIN_SPACE_MMIO, .start = 0xfee00000, .length = 0x1000 },
        };

        g_assert_true(plugin_ranges_hit(r, 2, PLUGIN_SPACE_PIO, 0x3f8, 1));
        g_assert_true(plugin_ranges_hit(r, 2, PLUGIN_SPACE_PIO, 0x3ff, 1));
        g_assert_true(plugin_ranges_hit(r, 2, PLUGIN_SPACE_PIO, 0x3f6, 4)); /* straddles the start */
        g_assert_false(plugin_ranges_hit(r, 2, PLUGIN_SPACE_PIO, 0x400, 1));
        g_assert_false(plugin_ranges_hit(r, 2, PLUGIN_SPACE_PIO, 0x3f4, 4)); /* ends right before */
        g_assert_false(plugin_ranges_hit(r, 2, PLUGIN_SPACE_MMIO, 0x3f8, 1)); /* other space */
        g_assert_true(plugin_ranges_hit(r, 2, PLUGIN_SPACE_MMIO, 0xfee00ffc, 4));
        g_assert_false(plugin_ranges_hit(r, 2, PLUGIN_SPACE_MMIO, 0xfee01000, 4));
        g_assert_false(plugin_ranges_hit(r, 2, PLUGIN_SPACE_PIO, 0x3f8, 0));
        g_assert_false(plugin_ranges_hit(r, 2, PLUGIN_SPACE_MMIO, UINT64_MAX - 1, 8)); /* wraps */
        g_assert_false(plugin_ranges_hit(r, 0, PLUGIN_SPACE_PIO, 0x3f8, 1));
}

static void test_events_carry_writes_and_refuse_bad_sizes(void) {
        const uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
        struct plugin_event e;

        g_assert_true(plugin_event_for_access(PLUGIN_SPACE_PIO, 0xe9, data, 2, true, &e));
        g_assert_cmpuint(e.kind, ==, PLUGIN_EVENT_IO);
        g_assert_cmpuint(e.is_write, ==, 1);
        g_assert_cmphex(e.address, ==, 0xe9);
        g_assert_cmpuint(e.size, ==, 2);
        g_assert_cmpuint(e.data[0], ==, 1);
        g_assert_cmpuint(e.data[1], ==, 2);
        g_assert_cmpuint(e.data[2], ==, 0);

        /* A read carries no data, whatever the buffer holds. */
        g_assert_true(plugin_event_for_access(PLUGIN_SPACE_MMIO, 0xd0000000, data, 8, false, &e));
        g_assert_cmpuint(e.kind, ==, PLUGIN_EVENT_MMIO);
        g_assert_cmpuint(e.is_write, ==, 0);
        for (unsigned i = 0; i < 8; i++)
                g_assert_cmpuint(e.data[i], ==, 0);

        g_assert_false(plugin_event_for_access(PLUGIN_SPACE_PIO, 0xe9, data, 0, true, &e));
        g_assert_false(plugin_event_for_access(PLUGIN_SPACE_MMIO, 0x1000, data, 9, true, &e));
        g_assert_false(plugin_event_for_access(PLUGIN_SPACE_PIO, 0xe9, data, 8, true, &e)); /* no 8-byte port I/O */
        g_assert_false(plugin_event_for_access(PLUGIN_SPACE_PIO, 0xffff, data, 2, true, &e)); /* past 0xFFFF */
}

static void test_features_follow_irqchip_and_caps(void) {
        uint64_t f = plugin_vm_features_for(true, true, true);

        g_assert_true(f & PLUGIN_FEATURE_IRQ_EVENT);
        g_assert_true(f & PLUGIN_FEATURE_IRQ_RESAMPLE);
        g_assert_true(f & PLUGIN_FEATURE_READ_ONLY_MEMORY);
        g_assert_true(f & PLUGIN_FEATURE_IMMEDIATE_EXIT);
        g_assert_true(f & PLUGIN_FEATURE_MEMORY);
        g_assert_true(f & PLUGIN_FEATURE_MMIO_RESERVE);

        f = plugin_vm_features_for(false, false, false);
        g_assert_false(f & PLUGIN_FEATURE_IRQ_EVENT);
        g_assert_false(f & PLUGIN_FEATURE_IRQ_RESAMPLE);
        g_assert_false(f & PLUGIN_FEATURE_READ_ONLY_MEMORY);
        g_assert_false(f & PLUGIN_FEATURE_IMMEDIATE_EXIT);
        g_assert_true(f & PLUGIN_FEATURE_IO_EVENT);
        g_assert_cmphex(f >> 9, ==, 0); /* reserved bits stay 0 */
}

static void assert_end(const char *exit_reason, const char *asked, enum plugin_end want, const char *want_reason) {
        char reason[256] = "";

        g_assert_cmpint(plugin_end_from_exit_reason(exit_reason, asked, reason, sizeof(reason)), ==, want);
        g_assert_cmpstr(reason, ==, want_reason);
}

static void test_plugin_exit_maps_to_vm_state_and_reason(void) {
        assert_end("exited with status 0", NULL, PLUGIN_END_STOPPED, "plugin exited");
        assert_end("exited with status 3", NULL, PLUGIN_END_FAILED, "plugin exited with error 3");
        assert_end("exited with status 255", NULL, PLUGIN_END_FAILED, "plugin exited with error 255");
        assert_end("killed by signal 9 (SIGKILL)", NULL, PLUGIN_END_FAILED, "plugin killed by signal 9");
        assert_end("killed by signal 11 (SIGSEGV)", NULL, PLUGIN_END_FAILED, "plugin killed by signal 11");
        assert_end("seccomp violation: ptrace (system call 101)", NULL, PLUGIN_END_FAILED,
                   "plugin seccomp violation: ptrace (system call 101)");
        /* Not the shape devmgr writes: failed, and said as it came. */
        assert_end("exited with status 3x", NULL, PLUGIN_END_FAILED, "plugin exited with status 3x");
        assert_end("exited with status ", NULL, PLUGIN_END_FAILED, "plugin exited with status ");
        assert_end("exited with status 99999999999", NULL, PLUGIN_END_FAILED, "plugin exited with status 99999999999");
        assert_end("", NULL, PLUGIN_END_FAILED, "plugin ended for an unknown reason");
        assert_end(NULL, NULL, PLUGIN_END_FAILED, "plugin ended for an unknown reason");

        /* Stop/Kill: stopped whatever the plugin did, the timeout said. */
        assert_end("exited with status 0", "stopped", PLUGIN_END_STOPPED, "stopped");
        assert_end("killed by signal 15 (SIGTERM)", "killed", PLUGIN_END_STOPPED, "killed");
        assert_end("timeout: still running 1000 ms after SIGTERM, killed by signal 9 (SIGKILL)", "stopped",
                   PLUGIN_END_STOPPED,
                   "stopped; plugin timeout: still running 1000 ms after SIGTERM, killed by signal 9 (SIGKILL)");
}

/* ---- the vCPU side through the real server ---- */

struct rig {
        struct kvm_vm kvm;
        struct plugin_vm *pvm;
        struct plugin_server *server;
        int plugin_fd, vcpu_fd;
        pthread_t server_thread;
        atomic_bool done;
};

static void *serve(void *arg) {
        struct rig *r = arg;

        while (!atomic_load(&r->done))
                (void) plugin_server_process(r->server, 20);
        return NULL;
}

static void rig_up(struct rig *r, bool want_vcpu_socket) {
        struct plugin_msg reply;
        struct plugin_vcpu_index idx = { .index = 0 };

        *r = (struct rig) { .kvm = { .kvm_fd = -1, .vm_fd = -1 }, .vcpu_fd = -1 };
        g_assert_cmpint(plugin_vm_new(&r->kvm, 1, &r->pvm), ==, 0);
        g_assert_cmpint(plugin_server_new(&plugin_vm_kvm_ops, r->pvm, 1, &r->server, &r->plugin_fd), ==, 0);
        plugin_vm_set_server(r->pvm, r->server);
        g_assert_cmpint(pthread_create(&r->server_thread, NULL, serve, r), ==, 0);
        if (want_vcpu_socket) {
                g_assert_cmpint(plugin_proto_call(r->plugin_fd, PLUGIN_GET_VCPU_SOCKET, &idx, sizeof(idx), NULL, 0,
                                                  &reply, 2000), ==, 0);
                g_assert_cmpuint(reply.n_fds, ==, 1);
                r->vcpu_fd = reply.fds[0];
                reply.fds[0] = -1;
                plugin_msg_done(&reply);
        }
}

static void rig_down(struct rig *r) {
        plugin_vm_stop(r->pvm);
        atomic_store(&r->done, true);
        g_assert_cmpint(pthread_join(r->server_thread, NULL), ==, 0);
        r->server = plugin_server_free(r->server);
        r->pvm = plugin_vm_free(r->pvm);
        close(r->plugin_fd);
        if (r->vcpu_fd >= 0)
                close(r->vcpu_fd);
}

static int call(int fd, uint16_t type, const void *body, size_t len) {
        struct plugin_msg reply;
        int r = plugin_proto_call(fd, type, body, len, NULL, 0, &reply, 2000);

        if (r >= 0)
                plugin_msg_done(&reply);
        return r;
}

static void wait_event(struct rig *r, struct plugin_event *ret) {
        struct plugin_msg reply;

        g_assert_cmpint(plugin_proto_call(r->vcpu_fd, PLUGIN_VCPU_WAIT, NULL, 0, NULL, 0, &reply, 2000), ==, 0);
        g_assert_cmpuint(reply.hdr.type, ==, PLUGIN_REPLY_EVENT);
        *ret = reply.body.event;
        plugin_msg_done(&reply);
}

static void resume(struct rig *r, const uint8_t *data, uint32_t len) {
        struct plugin_resume res = { .length = len };

        if (len)
                memcpy(res.data, data, len);
        g_assert_cmpint(call(r->vcpu_fd, PLUGIN_VCPU_RESUME, &res, sizeof(res)), ==, 0);
}

/* What a vCPU thread does in a plugin VM, in order; results kept. */
struct guest {
        struct rig *rig;
        int init, read, unreserved, write, halt;
        uint8_t read_data[4];
};

static void *guest_run(void *arg) {
        struct guest *g = arg;
        uint8_t out = 'A';

        g->init = plugin_vm_user_stop(g->rig->pvm, 0, true);
        memset(g->read_data, 0xff, sizeof(g->read_data));
        g->read = plugin_vm_io(g->rig->pvm, 0, PLUGIN_SPACE_PIO, 0xe9, g->read_data, 2, false);
        g->unreserved = plugin_vm_io(g->rig->pvm, 0, PLUGIN_SPACE_PIO, 0x80, &out, 1, true);
        g->write = plugin_vm_io(g->rig->pvm, 0, PLUGIN_SPACE_PIO, 0xe9, &out, 1, true);
        g->halt = plugin_vm_halt(g->rig->pvm, 0, false);
        return NULL;
}

static void test_vcpu_stops_reach_the_plugin_and_resume_with_its_data(void) {
        struct plugin_range range = { .space = PLUGIN_SPACE_PIO, .start = 0xe9, .length = 1 };
        const uint8_t answer[2] = { 0x5a, 0xa5 };
        struct guest g = {};
        struct plugin_event ev;
        struct rig r;
        pthread_t t;

        rig_up(&r, true);
        g.rig = &r;
        g_assert_cmpint(call(r.plugin_fd, PLUGIN_RESERVE_RANGE, &range, sizeof(range)), ==, 0);
        g_assert_cmpint(pthread_create(&t, NULL, guest_run, &g), ==, 0);

        wait_event(&r, &ev);
        g_assert_cmpuint(ev.kind, ==, PLUGIN_EVENT_INIT);
        resume(&r, NULL, 0);

        wait_event(&r, &ev);
        g_assert_cmpuint(ev.kind, ==, PLUGIN_EVENT_IO);
        g_assert_cmpuint(ev.is_write, ==, 0);
        g_assert_cmphex(ev.address, ==, 0xe9);
        g_assert_cmpuint(ev.size, ==, 2);
        resume(&r, answer, 2);

        /* 0x80 is not reserved: it never reaches the plugin. */
        wait_event(&r, &ev);
        g_assert_cmpuint(ev.kind, ==, PLUGIN_EVENT_IO);
        g_assert_cmpuint(ev.is_write, ==, 1);
        g_assert_cmphex(ev.address, ==, 0xe9);
        g_assert_cmpuint(ev.data[0], ==, 'A');
        resume(&r, NULL, 0);

        wait_event(&r, &ev);
        g_assert_cmpuint(ev.kind, ==, PLUGIN_EVENT_HLT);
        resume(&r, NULL, 0);
        g_assert_cmpint(pthread_join(t, NULL), ==, 0);

        g_assert_cmpint(g.init, ==, -1);
        g_assert_cmpint(g.read, ==, -1);
        g_assert_cmphex(g.read_data[0], ==, 0x5a);
        g_assert_cmphex(g.read_data[1], ==, 0xa5);
        g_assert_cmphex(g.read_data[2], ==, 0xff); /* only the access's bytes */
        g_assert_cmpint(g.unreserved, ==, -2);
        g_assert_cmpint(g.write, ==, -1);
        /* Resuming after HLT ends the vCPU's run, not the VM. */
        g_assert_cmpint(g.halt, ==, VCPU_EXIT_HALTED);

        /* Unreserved: the port is no longer the plugin's. */
        g_assert_cmpint(call(r.plugin_fd, PLUGIN_UNRESERVE_RANGE, &range, sizeof(range)), ==, 0);
        g_assert_cmpint(plugin_vm_io(r.pvm, 0, PLUGIN_SPACE_PIO, 0xe9, g.read_data, 1, false), ==, -2);
        rig_down(&r);
}

struct waiter {
        struct rig *rig;
        atomic_int result;
};

static void *wait_forever(void *arg) {
        struct waiter *w = arg;
        uint8_t b = 0;

        atomic_store(&w->result, plugin_vm_io(w->rig->pvm, 0, PLUGIN_SPACE_MMIO, 0xd0000000, &b, 1, true));
        return NULL;
}

static void test_stop_wakes_a_vcpu_waiting_for_the_plugin(void) {
        struct plugin_range range = { .space = PLUGIN_SPACE_MMIO, .start = 0xd0000000, .length = 0x1000 };
        struct waiter w = { .result = 1000 };
        struct plugin_event ev;
        struct rig r;
        pthread_t t;

        rig_up(&r, true);
        w.rig = &r;
        g_assert_cmpint(call(r.plugin_fd, PLUGIN_RESERVE_RANGE, &range, sizeof(range)), ==, 0);
        g_assert_cmpint(pthread_create(&t, NULL, wait_forever, &w), ==, 0);
        wait_event(&r, &ev);
        g_assert_cmpuint(ev.kind, ==, PLUGIN_EVENT_MMIO);
        /* The plugin never answers; the VM stops. */
        g_usleep(20 * 1000);
        g_assert_cmpint(atomic_load(&w.result), ==, 1000);
        plugin_vm_stop(r.pvm);
        g_assert_cmpint(pthread_join(t, NULL), ==, 0);
        g_assert_cmpint(atomic_load(&w.result), ==, VCPU_EXIT_HALTED);
        /* And no vCPU stops for the plugin any more. */
        g_assert_cmpint(plugin_vm_user_stop(r.pvm, 0, false), ==, VCPU_EXIT_HALTED);
        rig_down(&r);
}

static void test_ops_refuse_what_this_vm_cannot_do(void) {
        const struct plugin_vm_ops *ops = &plugin_vm_kvm_ops;
        struct plugin_range a = { .space = PLUGIN_SPACE_PIO, .start = 0x60, .length = 1 };
        uint8_t data[1] = { 0 };
        struct rig r;

        rig_up(&r, false);
        /* No irqchip: no irq events, no irq lines. */
        g_assert_cmpint(ops->add_irq_event(r.pvm, 1, 4, 0, -1), ==, -EOPNOTSUPP);
        g_assert_cmpint(ops->set_irq_line(r.pvm, 4, true), ==, -EOPNOTSUPP);
        /* A resume with no stop outstanding, a vCPU that does not exist. */
        g_assert_cmpint(ops->vcpu_resume(r.pvm, 0, data, 0), ==, -EBUSY);
        g_assert_cmpint(ops->vcpu_resume(r.pvm, 1, data, 0), ==, -EINVAL);
        g_assert_cmpint(ops->vcpu_request_exit(r.pvm, 0), ==, -EINVAL); /* no vCPU object yet */
        g_assert_cmpint(ops->vcpu_pause(r.pvm, 5, 7), ==, -EINVAL);
        g_assert_cmpint(ops->vcpu_get_regs(r.pvm, 0, &(struct kvm_regs) {}), ==, -EINVAL);
        /* No irqchip: KVM keeps no LAPIC, whatever the vCPU. */
        g_assert_cmpint(ops->vcpu_get_lapic(r.pvm, 0, &(struct kvm_lapic_state) {}), ==, -EOPNOTSUPP);
        g_assert_cmpint(ops->vcpu_set_lapic(r.pvm, 0, &(struct kvm_lapic_state) {}), ==, -EOPNOTSUPP);
        /* Ranges: exactly what was reserved comes off. */
        g_assert_cmpint(ops->unreserve_range(r.pvm, &a), ==, -ENOENT);
        g_assert_cmpint(ops->reserve_range(r.pvm, &a), ==, 0);
        g_assert_true(plugin_vm_io(r.pvm, 0, PLUGIN_SPACE_PIO, 0x61, data, 1, true) == -2);
        g_assert_cmpint(ops->unreserve_range(r.pvm, &a), ==, 0);
        g_assert_cmpint(ops->unreserve_range(r.pvm, &a), ==, -ENOENT);
        /* Unknown regions. */
        g_assert_cmpint(ops->remove_memory(r.pvm, 9, &(struct plugin_memory) { .size = 4096 }), ==, -ENOENT);
        g_assert_cmpint(ops->get_dirty_log(r.pvm, 9, &(struct plugin_memory) { .size = 4096 }, data, 8), ==, -EINVAL);
        /* Pausing vCPUs that do not run returns at once. */
        g_assert_cmpint(plugin_vm_pause(r.pvm, 1, 10), ==, 0);
        rig_down(&r);
}

/* ---- the vCPU engine's hooks for plugin VMs (services/vcpu) ---- */

struct hooks {
        int verdict;
        int calls;
        bool last_shutdown;
};

static int hook_halt(void *userdata, unsigned vcpu, bool shutdown) {
        struct hooks *k = userdata;

        k->calls++;
        k->last_shutdown = shutdown;
        return k->verdict;
}

static struct vcpu *hooked_vcpu(const struct vcpu_ops *ops, void *userdata) {
        struct vcpu *v = NULL;
        void *run;

        g_assert_cmpint(vcpu_alloc(0, 1, NULL, 0, ops, userdata, &v), ==, 0);
        run = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        g_assert_true(run != MAP_FAILED);
        v->run = run;
        v->run_size = 4096;
        return v;
}

static void test_engine_hands_hlt_and_shutdown_to_the_halt_hook(void) {
        static const struct vcpu_ops with_hook = { .halt = hook_halt };
        static const struct vcpu_ops without = {};
        struct hooks k = { .verdict = VCPU_EXIT_HALTED };
        struct vcpu *v = hooked_vcpu(&with_hook, &k);
        struct exit_result res = {};
        bool pending = true;

        v->run->exit_reason = KVM_EXIT_HLT;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpint(res.kind, ==, VCPU_EXIT_HALTED);
        g_assert_false(k.last_shutdown);
        g_assert_false(pending);

        v->run->exit_reason = KVM_EXIT_SHUTDOWN;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpint(res.kind, ==, VCPU_EXIT_HALTED);
        g_assert_true(k.last_shutdown);
        g_assert_cmpint(k.calls, ==, 2);

        /* -1 runs on; a verdict past the enum is a failure, not a crash. */
        k.verdict = -1;
        v->run->exit_reason = KVM_EXIT_HLT;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 0);
        k.verdict = 99;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpint(res.kind, ==, VCPU_EXIT_FAILED);
        vcpu_free(v);

        /* Without the hook: hlt runs on, a triple fault stops the VM. */
        v = hooked_vcpu(&without, NULL);
        v->run->exit_reason = KVM_EXIT_HLT;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 0);
        v->run->exit_reason = KVM_EXIT_SHUTDOWN;
        g_assert_cmpint(vcpu_handle_exit(v, &res, &pending), ==, 1);
        g_assert_cmpint(res.kind, ==, VCPU_EXIT_SHUTDOWN);
        vcpu_free(v);
}

static void test_engine_exit_request_and_async_pause_before_start(void) {
        static const struct vcpu_ops none = {};
        struct vcpu *v = hooked_vcpu(&none, NULL);

        /* Not started: nothing to kick, the requests stay for its first loop. */
        g_assert_true(vcpu_is_parked(v));
        vcpu_request_exit(v);
        g_assert_true(atomic_load(&v->exit_requested));
        vcpu_pause_async(v);
        g_assert_true(atomic_load(&v->pause_requested));
        vcpu_resume(v);
        g_assert_false(atomic_load(&v->pause_requested));
        g_assert_cmpint(vcpu_fd(v), ==, -1);
        vcpu_free(v);
}

static void test_irq_resample_needs_its_kvm_capability(void) {
        struct rig r;
        uint64_t f;

        rig_up(&r, false);
        /* An irqchip, but a VM fd that confirms no capability. */
        r.kvm.irqchip = true;
        f = plugin_vm_kvm_ops.get_features(r.pvm);
        g_assert_true(f & PLUGIN_FEATURE_IRQ_EVENT);
        g_assert_false(f & PLUGIN_FEATURE_IRQ_RESAMPLE);
        g_assert_false(f & PLUGIN_FEATURE_READ_ONLY_MEMORY);
        g_assert_false(f & PLUGIN_FEATURE_IMMEDIATE_EXIT);
        r.kvm.irqchip = false;
        rig_down(&r);
}

static void test_owner_and_plugin_pauses_are_released_apart(void) {
        static const struct vcpu_ops none = {};
        const struct plugin_vm_ops *ops = &plugin_vm_kvm_ops;
        struct vcpu *v = hooked_vcpu(&none, NULL);
        struct rig r;

        rig_up(&r, false);
        plugin_vm_set_vcpu(r.pvm, 0, v);

        /* The owner's Pause outlives the plugin's PAUSE_VCPUS/RESUME_VCPUS. */
        g_assert_cmpint(plugin_vm_pause(r.pvm, 1, 100), ==, 0);
        g_assert_cmpint(ops->pause_vcpus(r.pvm, 1), ==, 0);
        g_assert_cmpint(ops->resume_vcpus(r.pvm, 1), ==, 0);
        g_assert_true(atomic_load(&v->pause_requested));
        plugin_vm_resume(r.pvm, 1);
        g_assert_false(atomic_load(&v->pause_requested));

        /* And the plugin's hold outlives the owner's Pause/Resume. */
        g_assert_cmpint(ops->pause_vcpus(r.pvm, 1), ==, 0);
        g_assert_cmpint(plugin_vm_pause(r.pvm, 1, 100), ==, 0);
        plugin_vm_resume(r.pvm, 1);
        g_assert_true(atomic_load(&v->pause_requested));
        g_assert_cmpint(ops->resume_vcpus(r.pvm, 1), ==, 0);
        g_assert_false(atomic_load(&v->pause_requested));

        rig_down(&r);
        vcpu_free(v);
}

static void test_pause_that_times_out_takes_its_hold_back(void) {
        static const struct vcpu_ops none = {};
        const struct plugin_vm_ops *ops = &plugin_vm_kvm_ops;
        struct vcpu *v = hooked_vcpu(&none, NULL);
        struct rig r;

        rig_up(&r, false);
        plugin_vm_set_vcpu(r.pvm, 0, v);
        /* A started vCPU that never parks: this thread poses as its
         * thread, so that nothing kicks it. */
        v->thread = pthread_self();
        v->thread_started = true;

        g_assert_cmpint(plugin_vm_pause(r.pvm, 1, 10), ==, -ETIMEDOUT);
        g_assert_false(atomic_load(&v->pause_requested)); /* not left half paused */
        g_assert_cmpint(ops->pause_vcpus(r.pvm, 1), ==, -ETIMEDOUT);
        g_assert_false(atomic_load(&v->pause_requested));

        /* A failed pause leaves a hold that was there before. */
        v->thread_started = false;
        g_assert_cmpint(ops->pause_vcpus(r.pvm, 1), ==, 0);
        v->thread_started = true;
        g_assert_cmpint(plugin_vm_pause(r.pvm, 1, 10), ==, -ETIMEDOUT);
        g_assert_true(atomic_load(&v->pause_requested));

        v->thread_started = false;
        rig_down(&r);
        vcpu_free(v);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/plugin-vm/ranges-hit-overlaps-only-in-their-space", test_ranges_hit_overlaps_only_in_their_space);
        g_test_add_func("/plugin-vm/events-carry-writes-and-refuse-bad-sizes", test_events_carry_writes_and_refuse_bad_sizes);
        g_test_add_func("/plugin-vm/features-follow-irqchip-and-caps", test_features_follow_irqchip_and_caps);
        g_test_add_func("/plugin-vm/plugin-exit-maps-to-vm-state-and-reason", test_plugin_exit_maps_to_vm_state_and_reason);
        g_test_add_func("/plugin-vm/vcpu-stops-reach-the-plugin-and-resume-with-its-data",
                        test_vcpu_stops_reach_the_plugin_and_resume_with_its_data);
        g_test_add_func("/plugin-vm/stop-wakes-a-vcpu-waiting-for-the-plugin", test_stop_wakes_a_vcpu_waiting_for_the_plugin);
        g_test_add_func("/plugin-vm/ops-refuse-what-this-vm-cannot-do", test_ops_refuse_what_this_vm_cannot_do);
        g_test_add_func("/plugin-vm/engine-hands-hlt-and-shutdown-to-the-halt-hook",
                        test_engine_hands_hlt_and_shutdown_to_the_halt_hook);
        g_test_add_func("/plugin-vm/engine-exit-request-and-async-pause-before-start",
                        test_engine_exit_request_and_async_pause_before_start);
        g_test_add_func("/plugin-vm/irq-resample-needs-its-kvm-capability", test_irq_resample_needs_its_kvm_capability);
        g_test_add_func("/plugin-vm/owner-and-plugin-pauses-are-released-apart",
                        test_owner_and_plugin_pauses_are_released_apart);
        g_test_add_func("/plugin-vm/pause-that-times-out-takes-its-hold-back",
                        test_pause_that_times_out_takes_its_hold_back);
        return g_test_run();
}
