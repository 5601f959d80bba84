/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The launcher's plugin server over real socketpairs, against a fake ops
 * table that records what KVM would have been asked: every request type,
 * bad input of every kind, destroy undoing create, and connections that go
 * away without taking the others along. */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plugin-fake.h"
#include "plugin-server.h"

struct env {
        struct fake_vm fake;
        struct plugin_server *s;
        int sock; /* the plugin's main socket */
};

static void env_open(struct env *e, unsigned n_vcpus) {
        fake_vm_init(&e->fake);
        g_assert_cmpint(plugin_server_new(&fake_ops, &e->fake, n_vcpus, &e->s, &e->sock), ==, 0);
}

static void env_close(struct env *e) {
        if (e->sock >= 0)
                close(e->sock);
        plugin_server_free(e->s);
        fake_vm_done(&e->fake);
}

/* One request through the server; the reply's errno as -errno. */
static int rpc(struct env *e, int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds,
               struct plugin_msg *reply) {
        struct plugin_msg local;
        int r;

        if (!reply)
                reply = &local;
        g_assert_cmpint(plugin_proto_send(sock, type, body, len, fds, n_fds), ==, 0);
        g_assert_cmpint(plugin_server_process(e->s, 1000), ==, 0);
        g_assert_cmpint(plugin_proto_recv(sock, reply, 1000), ==, 0);
        r = reply->hdr.type == PLUGIN_REPLY_ERROR ? -reply->body.error.error : 0;
        if (r < 0 || reply == &local)
                plugin_msg_done(reply);
        return r;
}

/* A raw packet (header fields as given) through the server. */
static int rpc_raw(struct env *e, const void *buf, size_t len, int fd) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        struct plugin_msg reply;

        if (fd >= 0) {
                struct cmsghdr *c;
                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        g_assert_cmpint(sendmsg(e->sock, &mh, 0), ==, (ssize_t) len);
        g_assert_cmpint(plugin_server_process(e->s, 1000), ==, 0);
        g_assert_cmpint(plugin_proto_recv(e->sock, &reply, 1000), ==, 0);
        g_assert_cmpuint(reply.hdr.type, ==, PLUGIN_REPLY_ERROR);
        return -reply.body.error.error;
}

static int features_ok(struct env *e) {
        struct plugin_msg reply;
        int r = rpc(e, e->sock, PLUGIN_GET_FEATURES, NULL, 0, NULL, 0, &reply);
        if (r == 0)
                plugin_msg_done(&reply);
        return r;
}

static int create_io_event(struct env *e, uint32_t space, uint64_t address, uint32_t length, uint32_t *id,
                           int *fd) {
        struct plugin_io_event b = { .space = space, .address = address, .length = length };
        struct plugin_msg reply;
        int r = rpc(e, e->sock, PLUGIN_CREATE_IO_EVENT, &b, sizeof(b), NULL, 0, &reply);
        if (r < 0)
                return r;
        g_assert_cmpuint(reply.hdr.type, ==, PLUGIN_REPLY_ID);
        g_assert_cmpuint(reply.n_fds, ==, 1);
        *id = reply.body.id.id;
        *fd = reply.fds[0];
        reply.fds[0] = -1;
        plugin_msg_done(&reply);
        return 0;
}

static int memfd_of(size_t size) {
        int fd = memfd_create("test", MFD_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(ftruncate(fd, (off_t) size), ==, 0);
        return fd;
}

static int create_memory(struct env *e, int memfd, uint64_t guest, uint64_t size, uint32_t flags, uint32_t *id) {
        struct plugin_memory b = { .guest_address = guest, .size = size, .flags = flags };
        struct plugin_msg reply;
        int r = rpc(e, e->sock, PLUGIN_CREATE_MEMORY, &b, sizeof(b), &memfd, 1, &reply);
        if (r < 0)
                return r;
        g_assert_cmpuint(reply.n_fds, ==, 0);
        *id = reply.body.id.id;
        plugin_msg_done(&reply);
        return 0;
}

static int destroy(struct env *e, uint32_t id) {
        struct plugin_id b = { .id = id };
        return rpc(e, e->sock, PLUGIN_DESTROY, &b, sizeof(b), NULL, 0, NULL);
}

static int get_socket(struct env *e, uint16_t type, uint32_t index, int *ret) {
        struct plugin_vcpu_index b = { .index = index };
        struct plugin_msg reply;
        int r = rpc(e, e->sock, type, &b, type == PLUGIN_GET_VCPU_SOCKET ? sizeof(b) : 0, NULL, 0, &reply);
        if (r < 0)
                return r;
        g_assert_cmpuint(reply.hdr.type, ==, PLUGIN_REPLY_FD);
        *ret = reply.fds[0];
        reply.fds[0] = -1;
        plugin_msg_done(&reply);
        return 0;
}

static void test_io_event_create_gives_id_and_working_eventfd(void) {
        struct env e;
        uint32_t id;
        uint64_t one = 1;
        int fd;

        env_open(&e, 1);
        g_assert_cmpint(create_io_event(&e, PLUGIN_SPACE_PIO, 0x3f8, 1, &id, &fd), ==, 0);
        g_assert_cmpuint(id, ==, 1);
        g_assert_true(fake_vm_called(&e.fake, "add_io_event id=1 space=0 address=0x3f8 length=1 datamatch=0"));
        /* The fd is an eventfd, the same one the launcher handed to KVM. */
        g_assert_cmpint(write(fd, &one, sizeof(one)), ==, sizeof(one));
        g_assert_cmpuint(plugin_server_n_objects(e.s), ==, 1);
        close(fd);
        env_close(&e);
}

static void test_destroy_undoes_each_create_exactly(void) {
        struct plugin_io_event io = { .space = PLUGIN_SPACE_MMIO, .address = 0xd0000000, .length = 4, .datamatch = 1,
                                      .value = 0xabcd };
        struct plugin_irq_event irq = { .irq = 5, .flags = PLUGIN_IRQ_RESAMPLE };
        struct plugin_msg reply;
        struct env e;
        uint32_t mem_id;
        int memfd;

        env_open(&e, 1);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_CREATE_IO_EVENT, &io, sizeof(io), NULL, 0, &reply), ==, 0);
        g_assert_cmpuint(reply.body.id.id, ==, 1);
        plugin_msg_done(&reply);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_CREATE_IRQ_EVENT, &irq, sizeof(irq), NULL, 0, &reply), ==, 0);
        g_assert_cmpuint(reply.body.id.id, ==, 2);
        g_assert_cmpuint(reply.n_fds, ==, 2); /* eventfd and resample fd */
        plugin_msg_done(&reply);
        memfd = memfd_of(0x4000);
        g_assert_cmpint(create_memory(&e, memfd, 0x100000, 0x4000, 0, &mem_id), ==, 0);
        g_assert_cmpuint(mem_id, ==, 3);
        close(memfd);
        g_assert_cmpint(e.fake.live_io_events + e.fake.live_irq_events + (int) e.fake.n_memory, ==, 3);

        g_assert_cmpint(destroy(&e, 1), ==, 0);
        g_assert_true(fake_vm_called(&e.fake,
                                     "remove_io_event id=1 space=1 address=0xd0000000 length=4 datamatch=1 value=0xabcd"));
        g_assert_cmpint(destroy(&e, 2), ==, 0);
        g_assert_true(fake_vm_called(&e.fake, "remove_irq_event id=2 irq=5 resample=1"));
        g_assert_cmpint(destroy(&e, 3), ==, 0);
        g_assert_true(fake_vm_called(&e.fake, "remove_memory id=3 guest=0x100000 size=0x4000"));
        g_assert_cmpint(e.fake.live_io_events + e.fake.live_irq_events + (int) e.fake.n_memory, ==, 0);
        g_assert_cmpuint(plugin_server_n_objects(e.s), ==, 0);
        /* Gone is gone. */
        g_assert_cmpint(destroy(&e, 1), ==, -ENOENT);
        env_close(&e);
}

static void test_ids_are_not_reused(void) {
        struct env e;
        uint32_t id;
        int fd;

        env_open(&e, 1);
        g_assert_cmpint(create_io_event(&e, PLUGIN_SPACE_PIO, 0x60, 1, &id, &fd), ==, 0);
        close(fd);
        g_assert_cmpint(destroy(&e, id), ==, 0);
        g_assert_cmpint(create_io_event(&e, PLUGIN_SPACE_PIO, 0x60, 1, &id, &fd), ==, 0);
        close(fd);
        g_assert_cmpuint(id, ==, 2);
        env_close(&e);
}

static void test_unknown_ids_get_enoent(void) {
        struct plugin_id b = { .id = 42 };
        struct env e;

        env_open(&e, 1);
        g_assert_cmpint(destroy(&e, 42), ==, -ENOENT);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_GET_DIRTY_LOG, &b, sizeof(b), NULL, 0, NULL), ==, -ENOENT);
        env_close(&e);
}

static void test_failed_op_creates_nothing(void) {
        struct env e;
        uint32_t id;
        int fd;

        env_open(&e, 1);
        e.fake.fail_next = EEXIST;
        g_assert_cmpint(create_io_event(&e, PLUGIN_SPACE_PIO, 0x60, 1, &id, &fd), ==, -EEXIST);
        g_assert_cmpuint(plugin_server_n_objects(e.s), ==, 0);
        /* A failed destroy keeps the object, so that the plugin can retry. */
        g_assert_cmpint(create_io_event(&e, PLUGIN_SPACE_PIO, 0x60, 1, &id, &fd), ==, 0);
        close(fd);
        e.fake.fail_next = EIO;
        g_assert_cmpint(destroy(&e, id), ==, -EIO);
        g_assert_cmpuint(plugin_server_n_objects(e.s), ==, 1);
        g_assert_cmpint(destroy(&e, id), ==, 0);
        env_close(&e);
}

static void test_memory_checks_file_size_overlap_and_features(void) {
        struct env e;
        uint32_t id;
        int memfd = memfd_of(0x2000), pipefd[2];

        env_open(&e, 1);
        /* Past the end of the memfd. */
        g_assert_cmpint(create_memory(&e, memfd, 0, 0x3000, 0, &id), ==, -EINVAL);
        /* Not a file at all. */
        g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
        g_assert_cmpint(create_memory(&e, pipefd[0], 0, 0x1000, 0, &id), ==, -EINVAL);
        close(pipefd[0]);
        close(pipefd[1]);
        g_assert_cmpint(create_memory(&e, memfd, 0x10000, 0x2000, 0, &id), ==, 0);
        g_assert_cmpint(create_memory(&e, memfd, 0x11000, 0x1000, 0, &id), ==, -EEXIST);
        g_assert_cmpint(create_memory(&e, memfd, 0xf000, 0x2000, 0, &id), ==, -EEXIST);
        g_assert_cmpint(create_memory(&e, memfd, 0x12000, 0x1000, 0, &id), ==, 0);
        /* Flags the launcher does not support here. */
        e.fake.features = PLUGIN_FEATURE_MEMORY;
        g_assert_cmpint(create_memory(&e, memfd, 0x20000, 0x1000, PLUGIN_MEMORY_READ_ONLY, &id), ==, -EOPNOTSUPP);
        g_assert_cmpint(create_memory(&e, memfd, 0x20000, 0x1000, PLUGIN_MEMORY_DIRTY_LOG, &id), ==, -EOPNOTSUPP);
        g_assert_cmpuint(plugin_server_n_objects(e.s), ==, 2);
        close(memfd);
        env_close(&e);
}

static void test_dirty_log_of_region(void) {
        struct plugin_msg reply;
        struct plugin_id b;
        struct env e;
        uint32_t plain, logged;
        int memfd = memfd_of(0x100000);

        env_open(&e, 1);
        g_assert_cmpint(create_memory(&e, memfd, 0, 0x1000, 0, &plain), ==, 0);
        /* 0x41000 bytes: 65 pages, a bitmap of two 64-bit words. */
        g_assert_cmpint(create_memory(&e, memfd, 0x100000, 0x41000, PLUGIN_MEMORY_DIRTY_LOG, &logged), ==, 0);
        b = (struct plugin_id) { .id = logged };
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_GET_DIRTY_LOG, &b, sizeof(b), NULL, 0, &reply), ==, 0);
        g_assert_cmpuint(reply.hdr.type, ==, PLUGIN_REPLY_DIRTY_LOG);
        g_assert_cmpuint(reply.body.dirty_log.length, ==, 16);
        g_assert_cmphex(reply.body.dirty_log.bitmap[0], ==, 0x01);
        g_assert_cmphex(reply.body.dirty_log.bitmap[8], ==, 0x01); /* page 64 */
        plugin_msg_done(&reply);
        /* A region without dirty logging has no log. */
        b = (struct plugin_id) { .id = plain };
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_GET_DIRTY_LOG, &b, sizeof(b), NULL, 0, NULL), ==, -EINVAL);
        close(memfd);
        env_close(&e);
}

static void test_irq_line_clock_features_and_pause(void) {
        struct plugin_irq_line line = { .irq = 9, .level = 1 };
        struct plugin_clock clock = { .clock = 123456789 };
        struct plugin_vcpu_mask mask = { .mask = 0x3 };
        struct plugin_msg reply;
        struct env e;

        env_open(&e, 2);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_SET_IRQ_LINE, &line, sizeof(line), NULL, 0, NULL), ==, 0);
        g_assert_cmpuint(e.fake.irq_level[9], ==, 1);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_SET_CLOCK, &clock, sizeof(clock), NULL, 0, NULL), ==, 0);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_GET_CLOCK, NULL, 0, NULL, 0, &reply), ==, 0);
        g_assert_cmpuint(reply.body.clock.clock, ==, 123456789);
        g_assert_cmpuint(reply.body.clock.flags, ==, PLUGIN_CLOCK_STABLE); /* unknown bits dropped */
        e.fake.features = PLUGIN_FEATURE_MEMORY | (1ull << 40);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_GET_FEATURES, NULL, 0, NULL, 0, &reply), ==, 0);
        g_assert_cmphex(reply.body.features.features, ==, PLUGIN_FEATURE_MEMORY);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_PAUSE_VCPUS, &mask, sizeof(mask), NULL, 0, NULL), ==, 0);
        g_assert_cmphex(e.fake.paused_mask, ==, 0x3);
        mask.mask = 0x1;
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_RESUME_VCPUS, &mask, sizeof(mask), NULL, 0, NULL), ==, 0);
        g_assert_cmphex(e.fake.paused_mask, ==, 0x2);
        /* vCPU 2 does not exist. */
        mask.mask = 0x4;
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_PAUSE_VCPUS, &mask, sizeof(mask), NULL, 0, NULL), ==, -EINVAL);
        env_close(&e);
}

static void test_reserve_rejects_overlap_and_unreserve_needs_exact_range(void) {
        struct plugin_range r = { .space = PLUGIN_SPACE_PIO, .start = 0x3f8, .length = 8 };
        struct plugin_range same_in_mmio = { .space = PLUGIN_SPACE_MMIO, .start = 0x3f8, .length = 8 };
        struct plugin_range overlap = { .space = PLUGIN_SPACE_PIO, .start = 0x3ff, .length = 2 };
        struct plugin_range inside = { .space = PLUGIN_SPACE_PIO, .start = 0x3f8, .length = 4 };
        struct env e;

        env_open(&e, 1);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_RESERVE_RANGE, &r, sizeof(r), NULL, 0, NULL), ==, 0);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_RESERVE_RANGE, &overlap, sizeof(overlap), NULL, 0, NULL), ==, -EEXIST);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_RESERVE_RANGE, &same_in_mmio, sizeof(r), NULL, 0, NULL), ==, 0);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_UNRESERVE_RANGE, &inside, sizeof(inside), NULL, 0, NULL), ==, -ENOENT);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_UNRESERVE_RANGE, &r, sizeof(r), NULL, 0, NULL), ==, 0);
        g_assert_cmpint(e.fake.live_ranges, ==, 1);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_UNRESERVE_RANGE, &r, sizeof(r), NULL, 0, NULL), ==, -ENOENT);
        /* MMIO reservations need the launcher's support. */
        e.fake.features = 0;
        same_in_mmio.start = 0x10000;
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_RESERVE_RANGE, &same_in_mmio, sizeof(r), NULL, 0, NULL), ==,
                        -EOPNOTSUPP);
        env_close(&e);
}

static void test_free_undoes_live_objects_and_ranges(void) {
        struct plugin_range r = { .space = PLUGIN_SPACE_PIO, .start = 0x70, .length = 2 };
        struct fake_vm *f;
        struct env e;
        uint32_t id;
        int fd, memfd = memfd_of(0x1000);

        env_open(&e, 1);
        g_assert_cmpint(create_io_event(&e, PLUGIN_SPACE_PIO, 0x60, 1, &id, &fd), ==, 0);
        close(fd);
        g_assert_cmpint(create_memory(&e, memfd, 0, 0x1000, 0, &id), ==, 0);
        close(memfd);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_RESERVE_RANGE, &r, sizeof(r), NULL, 0, NULL), ==, 0);
        f = &e.fake;
        close(e.sock);
        e.sock = -1;
        e.s = plugin_server_free(e.s);
        g_assert_cmpint(f->live_io_events, ==, 0);
        g_assert_cmpuint(f->n_memory, ==, 0);
        g_assert_cmpint(f->live_ranges, ==, 0);
        env_close(&e);
}

static void header(uint8_t *buf, uint32_t magic, uint16_t version, uint16_t type, uint32_t length) {
        struct proto_header h = { .magic = magic, .version = version, .type = type, .length = length };
        memcpy(buf, &h, sizeof(h));
}

static void test_malformed_packets_get_ebadmsg_and_connection_survives(void) {
        struct plugin_irq_line line = { .irq = 1, .level = 1 };
        uint8_t buf[64] = {};
        struct env e;
        int pipefd[2];

        env_open(&e, 1);
        header(buf, 0x12345678, PLUGIN_PROTO_VERSION, PLUGIN_GET_FEATURES, 0);
        g_assert_cmpint(rpc_raw(&e, buf, 16, -1), ==, -EBADMSG);
        header(buf, PLUGIN_PROTO_MAGIC, 2, PLUGIN_GET_FEATURES, 0);
        g_assert_cmpint(rpc_raw(&e, buf, 16, -1), ==, -EBADMSG);
        header(buf, PLUGIN_PROTO_MAGIC, PLUGIN_PROTO_VERSION, 0x7777, 0);
        g_assert_cmpint(rpc_raw(&e, buf, 16, -1), ==, -EBADMSG);
        g_assert_cmpint(rpc_raw(&e, buf, 10, -1), ==, -EBADMSG); /* shorter than a header */
        header(buf, PLUGIN_PROTO_MAGIC, PLUGIN_PROTO_VERSION, PLUGIN_SET_IRQ_LINE, 9); /* length lies */
        g_assert_cmpint(rpc_raw(&e, buf, 16 + 8, -1), ==, -EBADMSG);
        header(buf, PLUGIN_PROTO_MAGIC, PLUGIN_PROTO_VERSION, PLUGIN_SET_IRQ_LINE, 4); /* body too short */
        g_assert_cmpint(rpc_raw(&e, buf, 16 + 4, -1), ==, -EBADMSG);
        header(buf, PLUGIN_PROTO_MAGIC, PLUGIN_PROTO_VERSION, PLUGIN_SET_IRQ_LINE, 8);
        line.level = 2; /* not a level */
        memcpy(buf + 16, &line, sizeof(line));
        g_assert_cmpint(rpc_raw(&e, buf, 16 + 8, -1), ==, -EBADMSG);
        /* An fd where none belongs, and it is closed. */
        line.level = 1;
        memcpy(buf + 16, &line, sizeof(line));
        g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
        g_assert_cmpint(rpc_raw(&e, buf, 16 + 8, pipefd[1]), ==, -EBADMSG);
        close(pipefd[1]);
        {
                char c;
                g_assert_cmpint(read(pipefd[0], &c, 1), ==, 0);
        }
        close(pipefd[0]);
        /* A reply sent as if it were a request. */
        header(buf, PLUGIN_PROTO_MAGIC, PLUGIN_PROTO_VERSION, PLUGIN_REPLY_OK, 0);
        g_assert_cmpint(rpc_raw(&e, buf, 16, -1), ==, -EBADMSG);
        g_assert_false(fake_vm_called(&e.fake, "set_irq_line"));
        /* Still serving. */
        g_assert_cmpint(features_ok(&e), ==, 0);
        env_close(&e);
}

static void test_requests_on_the_wrong_socket_get_eopnotsupp(void) {
        struct env e;
        int vs;

        env_open(&e, 1);
        g_assert_cmpint(rpc(&e, e.sock, PLUGIN_VCPU_GET_REGS, NULL, 0, NULL, 0, NULL), ==, -EOPNOTSUPP);
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 0, &vs), ==, 0);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_GET_FEATURES, NULL, 0, NULL, 0, NULL), ==, -EOPNOTSUPP);
        close(vs);
        env_close(&e);
}

static void test_vcpu_sockets_one_per_vcpu(void) {
        struct env e;
        int a, b;

        env_open(&e, 2);
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 2, &a), ==, -EINVAL);
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 1, &a), ==, 0);
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 1, &b), ==, -EBUSY);
        close(a);
        g_assert_cmpint(plugin_server_process(e.s, 1000), ==, 0); /* sees the hang-up */
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 1, &b), ==, 0);
        close(b);
        env_close(&e);
}

static void test_vcpu_state_only_while_stopped(void) {
        struct plugin_event init = { .kind = PLUGIN_EVENT_INIT };
        struct plugin_resume none = {};
        struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
        struct plugin_msg reply;
        struct env e;
        int vs;

        env_open(&e, 1);
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 0, &vs), ==, 0);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_GET_REGS, NULL, 0, NULL, 0, NULL), ==, -EBUSY);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_RESUME, &none, sizeof(none), NULL, 0, NULL), ==, -EBUSY);
        g_assert_cmpint(plugin_server_vcpu_event(e.s, 0, &init), ==, 0);
        g_assert_cmpint(plugin_server_vcpu_event(e.s, 0, &init), ==, -EBUSY);
        /* Queued before WAIT: answered at once. */
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_WAIT, NULL, 0, NULL, 0, &reply), ==, 0);
        g_assert_cmpuint(reply.body.event.kind, ==, PLUGIN_EVENT_INIT);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_WAIT, NULL, 0, NULL, 0, NULL), ==, -EBUSY);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_SET_REGS, &regs, sizeof(regs), NULL, 0, NULL), ==, 0);
        g_assert_cmpuint(e.fake.regs.rip, ==, 0x1000);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_GET_REGS, NULL, 0, NULL, 0, &reply), ==, 0);
        g_assert_cmpuint(reply.hdr.type, ==, PLUGIN_REPLY_REGS);
        g_assert_cmpuint(reply.body.regs.rip, ==, 0x1000);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_RESUME, &none, sizeof(none), NULL, 0, NULL), ==, 0);
        g_assert_cmpuint(e.fake.resumes, ==, 1);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_GET_REGS, NULL, 0, NULL, 0, NULL), ==, -EBUSY);
        close(vs);
        env_close(&e);
}

static void test_vcpu_state_requests_round_trip(void) {
        struct plugin_event init = { .kind = PLUGIN_EVENT_INIT };
        struct plugin_msrs msrs = { .count = 2, .entries = { { .index = 0x10 }, { .index = 0xc0000080 } } };
        struct plugin_cpuid cpuid = { .count = 1, .entries = { { .function = 0x40000000, .eax = 7 } } };
        struct kvm_sregs sregs = { .cr0 = 0x11 };
        struct kvm_fpu fpu = { .fcw = 0x37f };
        struct kvm_lapic_state lapic = { .regs = { [0x20] = 1 } };
        struct plugin_msg reply;
        struct env e;
        int vs;

        env_open(&e, 1);
        e.fake.msr_value = 0x1000;
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 0, &vs), ==, 0);
        g_assert_cmpint(plugin_server_vcpu_event(e.s, 0, &init), ==, 0);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_WAIT, NULL, 0, NULL, 0, NULL), ==, 0);

        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_SET_SREGS, &sregs, sizeof(sregs), NULL, 0, NULL), ==, 0);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_GET_SREGS, NULL, 0, NULL, 0, &reply), ==, 0);
        g_assert_cmphex(reply.body.sregs.cr0, ==, 0x11);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_SET_FPU, &fpu, sizeof(fpu), NULL, 0, NULL), ==, 0);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_GET_FPU, NULL, 0, NULL, 0, &reply), ==, 0);
        g_assert_cmphex(reply.body.fpu.fcw, ==, 0x37f);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_SET_LAPIC, &lapic, sizeof(lapic), NULL, 0, NULL), ==, 0);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_GET_LAPIC, NULL, 0, NULL, 0, &reply), ==, 0);
        g_assert_cmpint(reply.body.lapic.regs[0x20], ==, 1);

        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_GET_MSRS, &msrs, 8 + 2 * sizeof(struct plugin_msr), NULL, 0, &reply),
                        ==, 0);
        g_assert_cmpuint(reply.body.msrs.count, ==, 2);
        g_assert_cmphex(reply.body.msrs.entries[1].data, ==, 0xc0000080 ^ 0x1000);
        msrs.entries[0].data = 5;
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_SET_MSRS, &msrs, 8 + 2 * sizeof(struct plugin_msr), NULL, 0, NULL),
                        ==, 0);
        g_assert_cmpuint(e.fake.n_last_msrs, ==, 2);
        g_assert_cmpuint(e.fake.last_msrs[0].data, ==, 5);

        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_SET_CPUID, &cpuid, 8 + sizeof(struct kvm_cpuid_entry2), NULL, 0, NULL),
                        ==, 0);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_GET_CPUID, NULL, 0, NULL, 0, &reply), ==, 0);
        g_assert_cmpuint(reply.body.cpuid.count, ==, 1);
        g_assert_cmphex(reply.body.cpuid.entries[0].function, ==, 0x40000000);
        g_assert_cmpuint(reply.body.cpuid.entries[0].eax, ==, 7);
        close(vs);
        env_close(&e);
}

static void test_io_read_resume_carries_exactly_its_size(void) {
        struct plugin_event rd = { .kind = PLUGIN_EVENT_IO, .address = 0x71, .size = 2 };
        struct plugin_resume res = { .length = 1, .data = { 0xaa } };
        struct plugin_msg reply;
        struct env e;
        int vs;

        env_open(&e, 1);
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 0, &vs), ==, 0);
        /* WAIT first: it is answered when the vCPU stops. */
        g_assert_cmpint(plugin_proto_send(vs, PLUGIN_VCPU_WAIT, NULL, 0, NULL, 0), ==, 0);
        g_assert_cmpint(plugin_server_process(e.s, 1000), ==, 0);
        g_assert_cmpint(plugin_proto_recv(vs, &reply, 0), ==, -ETIMEDOUT);
        g_assert_cmpint(plugin_server_vcpu_event(e.s, 0, &rd), ==, 0);
        g_assert_cmpint(plugin_proto_recv(vs, &reply, 1000), ==, 0);
        g_assert_cmpuint(reply.body.event.kind, ==, PLUGIN_EVENT_IO);
        g_assert_cmphex(reply.body.event.address, ==, 0x71);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_RESUME, &res, sizeof(res), NULL, 0, NULL), ==, -EINVAL);
        res = (struct plugin_resume) { .length = 2, .data = { 0xaa, 0xbb } };
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_RESUME, &res, sizeof(res), NULL, 0, NULL), ==, 0);
        g_assert_cmpuint(e.fake.resume_len, ==, 2);
        g_assert_cmphex(e.fake.resume_data[1], ==, 0xbb);
        /* A write's resume carries nothing. */
        rd = (struct plugin_event) { .kind = PLUGIN_EVENT_MMIO, .is_write = 1, .address = 0xd0000000, .size = 1,
                                     .data = { 7 } };
        g_assert_cmpint(plugin_server_vcpu_event(e.s, 0, &rd), ==, 0);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_WAIT, NULL, 0, NULL, 0, NULL), ==, 0);
        res = (struct plugin_resume) { .length = 1 };
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_RESUME, &res, sizeof(res), NULL, 0, NULL), ==, -EINVAL);
        res.length = 0;
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_RESUME, &res, sizeof(res), NULL, 0, NULL), ==, 0);
        /* Events the protocol cannot carry are refused. */
        rd = (struct plugin_event) { .kind = PLUGIN_EVENT_IO, .address = 0xffff, .size = 4 };
        g_assert_cmpint(plugin_server_vcpu_event(e.s, 0, &rd), ==, -EINVAL);
        g_assert_cmpint(plugin_server_vcpu_event(e.s, 1, &rd), ==, -EINVAL);
        close(vs);
        env_close(&e);
}

static void test_request_exit_and_pause_reach_the_launcher(void) {
        struct plugin_pause p = { .user = 0xfeed };
        struct env e;
        int vs;

        env_open(&e, 1);
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 0, &vs), ==, 0);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_REQUEST_EXIT, NULL, 0, NULL, 0, NULL), ==, 0);
        g_assert_cmpuint(e.fake.exit_requests, ==, 1);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_PAUSE, &p, sizeof(p), NULL, 0, NULL), ==, 0);
        g_assert_cmphex(e.fake.pause_user, ==, 0xfeed);
        close(vs);
        env_close(&e);
}

static void test_vcpu_socket_hangup_keeps_event_for_next_socket(void) {
        struct plugin_event ev = { .kind = PLUGIN_EVENT_IO, .is_write = 1, .address = 0xe9, .size = 1, .data = { 'x' } };
        struct plugin_msg reply;
        struct env e;
        int vs;

        env_open(&e, 1);
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 0, &vs), ==, 0);
        g_assert_cmpint(plugin_server_vcpu_event(e.s, 0, &ev), ==, 0);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_WAIT, NULL, 0, NULL, 0, NULL), ==, 0);
        close(vs);
        g_assert_cmpint(plugin_server_process(e.s, 1000), ==, 0);
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 0, &vs), ==, 0);
        g_assert_cmpint(rpc(&e, vs, PLUGIN_VCPU_WAIT, NULL, 0, NULL, 0, &reply), ==, 0);
        g_assert_cmpuint(reply.body.event.data[0], ==, 'x');
        close(vs);
        env_close(&e);
}

static void test_hung_up_connection_is_dropped_alone(void) {
        struct env e;
        int extra, vs;

        env_open(&e, 1);
        g_assert_cmpint(get_socket(&e, PLUGIN_OPEN_CONNECTION, 0, &extra), ==, 0);
        g_assert_cmpint(get_socket(&e, PLUGIN_GET_VCPU_SOCKET, 0, &vs), ==, 0);
        g_assert_cmpuint(plugin_server_n_connections(e.s), ==, 3);
        /* The extra connection serves main requests. */
        g_assert_cmpint(rpc(&e, extra, PLUGIN_GET_FEATURES, NULL, 0, NULL, 0, NULL), ==, 0);
        close(extra);
        g_assert_cmpint(plugin_server_process(e.s, 1000), ==, 0);
        g_assert_cmpuint(plugin_server_n_connections(e.s), ==, 2);
        g_assert_true(plugin_server_main_connected(e.s));
        g_assert_cmpint(features_ok(&e), ==, 0);
        /* A vCPU socket with an unanswered WAIT, too. */
        g_assert_cmpint(plugin_proto_send(vs, PLUGIN_VCPU_WAIT, NULL, 0, NULL, 0), ==, 0);
        g_assert_cmpint(plugin_server_process(e.s, 1000), ==, 0);
        close(vs);
        g_assert_cmpint(plugin_server_process(e.s, 1000), ==, 0);
        g_assert_cmpuint(plugin_server_n_connections(e.s), ==, 1);
        g_assert_cmpint(features_ok(&e), ==, 0);
        env_close(&e);
}

static void test_main_socket_hangup_is_reported(void) {
        struct env e;
        int extra;

        env_open(&e, 1);
        g_assert_cmpint(get_socket(&e, PLUGIN_OPEN_CONNECTION, 0, &extra), ==, 0);
        close(e.sock);
        e.sock = -1;
        g_assert_cmpint(plugin_server_process(e.s, 1000), ==, -ECONNRESET);
        g_assert_false(plugin_server_main_connected(e.s));
        close(extra);
        env_close(&e);
}

static void test_extra_connections_are_bounded(void) {
        int fds[PLUGIN_SERVER_MAX_EXTRA_CONNECTIONS], extra;
        struct env e;

        env_open(&e, 1);
        for (unsigned i = 0; i < PLUGIN_SERVER_MAX_EXTRA_CONNECTIONS; i++)
                g_assert_cmpint(get_socket(&e, PLUGIN_OPEN_CONNECTION, 0, &fds[i]), ==, 0);
        g_assert_cmpint(get_socket(&e, PLUGIN_OPEN_CONNECTION, 0, &extra), ==, -EMFILE);
        for (unsigned i = 0; i < PLUGIN_SERVER_MAX_EXTRA_CONNECTIONS; i++)
                close(fds[i]);
        env_close(&e);
}

static void test_missing_ops_get_eopnotsupp(void) {
        static const struct plugin_vm_ops none = {};
        struct plugin_server *s;
        struct plugin_msg reply;
        struct plugin_irq_line line = { .irq = 1 };
        int sock;

        g_assert_cmpint(plugin_server_new(&none, NULL, 0, &s, &sock), ==, -EINVAL);
        g_assert_cmpint(plugin_server_new(&none, NULL, 1, &s, &sock), ==, 0);
        g_assert_cmpint(plugin_proto_send(sock, PLUGIN_SET_IRQ_LINE, &line, sizeof(line), NULL, 0), ==, 0);
        g_assert_cmpint(plugin_server_process(s, 1000), ==, 0);
        g_assert_cmpint(plugin_proto_recv(sock, &reply, 1000), ==, 0);
        g_assert_cmpuint(reply.hdr.type, ==, PLUGIN_REPLY_ERROR);
        g_assert_cmpint(reply.body.error.error, ==, EOPNOTSUPP);
        close(sock);
        plugin_server_free(s);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/plugin-server/io-event-create-gives-id-and-working-eventfd",
                        test_io_event_create_gives_id_and_working_eventfd);
        g_test_add_func("/plugin-server/destroy-undoes-each-create-exactly", test_destroy_undoes_each_create_exactly);
        g_test_add_func("/plugin-server/ids-are-not-reused", test_ids_are_not_reused);
        g_test_add_func("/plugin-server/unknown-ids-get-enoent", test_unknown_ids_get_enoent);
        g_test_add_func("/plugin-server/failed-op-creates-nothing", test_failed_op_creates_nothing);
        g_test_add_func("/plugin-server/memory-checks-file-size-overlap-and-features",
                        test_memory_checks_file_size_overlap_and_features);
        g_test_add_func("/plugin-server/dirty-log-of-region", test_dirty_log_of_region);
        g_test_add_func("/plugin-server/irq-line-clock-features-and-pause", test_irq_line_clock_features_and_pause);
        g_test_add_func("/plugin-server/reserve-rejects-overlap-and-unreserve-needs-exact-range",
                        test_reserve_rejects_overlap_and_unreserve_needs_exact_range);
        g_test_add_func("/plugin-server/free-undoes-live-objects-and-ranges", test_free_undoes_live_objects_and_ranges);
        g_test_add_func("/plugin-server/malformed-packets-get-ebadmsg-and-connection-survives",
                        test_malformed_packets_get_ebadmsg_and_connection_survives);
        g_test_add_func("/plugin-server/requests-on-the-wrong-socket-get-eopnotsupp",
                        test_requests_on_the_wrong_socket_get_eopnotsupp);
        g_test_add_func("/plugin-server/vcpu-sockets-one-per-vcpu", test_vcpu_sockets_one_per_vcpu);
        g_test_add_func("/plugin-server/vcpu-state-only-while-stopped", test_vcpu_state_only_while_stopped);
        g_test_add_func("/plugin-server/vcpu-state-requests-round-trip", test_vcpu_state_requests_round_trip);
        g_test_add_func("/plugin-server/io-read-resume-carries-exactly-its-size",
                        test_io_read_resume_carries_exactly_its_size);
        g_test_add_func("/plugin-server/request-exit-and-pause-reach-the-launcher",
                        test_request_exit_and_pause_reach_the_launcher);
        g_test_add_func("/plugin-server/vcpu-socket-hangup-keeps-event-for-next-socket",
                        test_vcpu_socket_hangup_keeps_event_for_next_socket);
        g_test_add_func("/plugin-server/hung-up-connection-is-dropped-alone", test_hung_up_connection_is_dropped_alone);
        g_test_add_func("/plugin-server/main-socket-hangup-is-reported", test_main_socket_hangup_is_reported);
        g_test_add_func("/plugin-server/extra-connections-are-bounded", test_extra_connections_are_bounded);
        g_test_add_func("/plugin-server/missing-ops-get-eopnotsupp", test_missing_ops_get_eopnotsupp);
        return g_test_run();
}
