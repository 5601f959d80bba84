/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "log.h"
#include "macro.h"
#include "plugin-server.h"

enum object_kind {
        OBJECT_IO_EVENT,
        OBJECT_MEMORY,
        OBJECT_IRQ_EVENT,
};

struct plugin_object {
        uint32_t id;
        enum object_kind kind;
        int fd;          /* io and irq events: the eventfd */
        int resample_fd; /* irq events with PLUGIN_IRQ_RESAMPLE */
        union {
                struct plugin_io_event io_event;
                struct plugin_memory memory;
                struct plugin_irq_event irq_event;
        };
};

struct plugin_conn {
        int fd;
        int vcpu;     /* -1: main-type connection */
        bool is_main; /* the socket the plugin started with: its loss ends the VM */
};

/* Under lock: shared between the main thread and the vCPU's thread. */
struct plugin_vcpu {
        pthread_mutex_t lock;
        struct plugin_conn *conn;
        bool wait_pending; /* a WAIT is unanswered; the socket is not read meanwhile */
        bool has_event;    /* the vCPU is stopped for the plugin until resumed */
        bool delivered;    /* ... and the plugin has received the event */
        struct plugin_event event;
};

/* What a handler answers; the caller sends it. */
struct reply {
        uint16_t type;
        const void *body;
        size_t len;
        int fds[PLUGIN_MAX_FDS];
        size_t n_fds;
        int close_fd; /* an fd of ours to close once sent (the far end of a new socket) */
        bool deferred; /* WAIT: the answer comes later */
};

struct plugin_server {
        const struct plugin_vm_ops *ops;
        void *userdata;
        unsigned n_vcpus;
        int epoll_fd;
        struct plugin_conn **conns;
        size_t n_conns;
        struct plugin_object *objects;
        size_t n_objects;
        struct plugin_range ranges[PLUGIN_SERVER_MAX_RANGES];
        size_t n_ranges;
        uint32_t next_id;
        bool main_gone;
        /* Reply bodies (main thread only). */
        union {
                struct plugin_id id;
                struct plugin_clock clock;
                struct plugin_features features;
                struct plugin_dirty_log dirty_log;
                struct plugin_msrs msrs;
                struct plugin_cpuid cpuid;
                struct kvm_regs regs;
                struct kvm_sregs sregs;
                struct kvm_fpu fpu;
                struct kvm_lapic_state lapic;
        } out;
        struct plugin_vcpu vcpus[PLUGIN_MAX_VCPUS];
};

#define KNOWN_FEATURES                                                                                        \
        (PLUGIN_FEATURE_IO_EVENT | PLUGIN_FEATURE_MEMORY | PLUGIN_FEATURE_IRQ_EVENT |                          \
         PLUGIN_FEATURE_IRQ_RESAMPLE | PLUGIN_FEATURE_DIRTY_LOG | PLUGIN_FEATURE_READ_ONLY_MEMORY |             \
         PLUGIN_FEATURE_CLOCK | PLUGIN_FEATURE_IMMEDIATE_EXIT | PLUGIN_FEATURE_MMIO_RESERVE)

static uint64_t server_features(struct plugin_server *s) {
        return s->ops->get_features ? s->ops->get_features(s->userdata) & KNOWN_FEATURES : 0;
}

static int conn_add(struct plugin_server *s, int fd, int vcpu, bool is_main, struct plugin_conn **ret) {
        struct plugin_conn **a, *c;
        struct epoll_event ev = { .events = EPOLLIN };

        a = realloc(s->conns, (s->n_conns + 1) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        s->conns = a;
        c = malloc(sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (struct plugin_conn) { .fd = fd, .vcpu = vcpu, .is_main = is_main };
        ev.data.ptr = c;
        if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int r = negative_errno();
                free(c);
                return r;
        }
        s->conns[s->n_conns++] = c;
        if (ret)
                *ret = c;
        return 0;
}

static void conn_drop(struct plugin_server *s, struct plugin_conn *c) {
        if (c->vcpu >= 0) {
                struct plugin_vcpu *v = &s->vcpus[c->vcpu];

                pthread_mutex_lock(&v->lock);
                v->conn = NULL;
                v->wait_pending = false;
                /* The next socket for this vCPU gets the event again. */
                v->delivered = false;
                pthread_mutex_unlock(&v->lock);
        }
        if (c->is_main)
                s->main_gone = true;
        (void) epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
        safe_close(c->fd);
        for (size_t i = 0; i < s->n_conns; i++)
                if (s->conns[i] == c) {
                        s->conns[i] = s->conns[--s->n_conns];
                        break;
                }
        free(c);
}

static void conn_arm(struct plugin_server *s, struct plugin_conn *c, bool readable) {
        struct epoll_event ev = { .events = readable ? EPOLLIN : 0, .data.ptr = c };
        /* Hang-ups are reported either way, so a dead socket is still seen. */
        (void) epoll_ctl(s->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

int plugin_server_new(const struct plugin_vm_ops *ops, void *userdata, unsigned n_vcpus,
                      struct plugin_server **ret, int *ret_plugin_fd) {
        struct plugin_server *s;
        int sv[2], r;

        assert(ops && ret && ret_plugin_fd);
        if (n_vcpus < 1 || n_vcpus > PLUGIN_MAX_VCPUS)
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->ops = ops;
        s->userdata = userdata;
        s->n_vcpus = n_vcpus;
        s->next_id = 1;
        for (unsigned i = 0; i < PLUGIN_MAX_VCPUS; i++)
                pthread_mutex_init(&s->vcpus[i].lock, NULL);
        s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (s->epoll_fd < 0) {
                r = negative_errno();
                plugin_server_free(s);
                return r;
        }
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                r = negative_errno();
                plugin_server_free(s);
                return r;
        }
        r = conn_add(s, sv[0], -1, true, NULL);
        if (r < 0) {
                safe_close(sv[0]);
                safe_close(sv[1]);
                plugin_server_free(s);
                return r;
        }
        *ret = s;
        *ret_plugin_fd = sv[1];
        return 0;
}

static int object_remove_ops(struct plugin_server *s, const struct plugin_object *o) {
        switch (o->kind) {
        case OBJECT_IO_EVENT:
                return s->ops->remove_io_event(s->userdata, o->id, &o->io_event, o->fd);
        case OBJECT_MEMORY:
                return s->ops->remove_memory(s->userdata, o->id, &o->memory);
        case OBJECT_IRQ_EVENT:
                return s->ops->remove_irq_event(s->userdata, o->id, o->irq_event.irq, o->fd, o->resample_fd);
        }
        return -EINVAL;
}

static void object_release(struct plugin_object *o) {
        o->fd = safe_close(o->fd);
        o->resample_fd = safe_close(o->resample_fd);
}

struct plugin_server *plugin_server_free(struct plugin_server *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_objects; i++) {
                int r = object_remove_ops(s, &s->objects[i]);
                if (r < 0)
                        log_warning_errno(r, "Failed to remove plugin object %u: %m", s->objects[i].id);
                object_release(&s->objects[i]);
        }
        free(s->objects);
        for (size_t i = 0; i < s->n_ranges; i++)
                (void) s->ops->unreserve_range(s->userdata, &s->ranges[i]);
        while (s->n_conns > 0)
                conn_drop(s, s->conns[s->n_conns - 1]);
        free(s->conns);
        safe_close(s->epoll_fd);
        for (unsigned i = 0; i < PLUGIN_MAX_VCPUS; i++)
                pthread_mutex_destroy(&s->vcpus[i].lock);
        free(s);
        return NULL;
}

int plugin_server_fd(const struct plugin_server *s) {
        return s->epoll_fd;
}

size_t plugin_server_n_objects(const struct plugin_server *s) {
        return s->n_objects;
}

size_t plugin_server_n_connections(const struct plugin_server *s) {
        return s->n_conns;
}

bool plugin_server_main_connected(const struct plugin_server *s) {
        return !s->main_gone;
}

static struct plugin_object *object_find(struct plugin_server *s, uint32_t id) {
        for (size_t i = 0; i < s->n_objects; i++)
                if (s->objects[i].id == id)
                        return &s->objects[i];
        return NULL;
}

/* Room for one more object, and its id. */
static int object_reserve(struct plugin_server *s, uint32_t *ret_id) {
        struct plugin_object *a;

        if (s->n_objects >= PLUGIN_SERVER_MAX_OBJECTS || s->next_id == 0) /* 0: the ids ran out */
                return -ENOSPC;
        a = realloc(s->objects, (s->n_objects + 1) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        s->objects = a;
        *ret_id = s->next_id;
        return 0;
}

static struct plugin_object *object_commit(struct plugin_server *s, uint32_t id, enum object_kind kind) {
        struct plugin_object *o = &s->objects[s->n_objects++];

        *o = (struct plugin_object) { .id = id, .kind = kind, .fd = -1, .resample_fd = -1 };
        s->next_id++;
        return o;
}

static void reply_id(struct plugin_server *s, struct reply *rep, const struct plugin_object *o) {
        s->out.id = (struct plugin_id) { .id = o->id };
        rep->type = PLUGIN_REPLY_ID;
        rep->body = &s->out.id;
        rep->len = sizeof(s->out.id);
        if (o->fd >= 0)
                rep->fds[rep->n_fds++] = o->fd;
        if (o->resample_fd >= 0)
                rep->fds[rep->n_fds++] = o->resample_fd;
}

static int create_io_event(struct plugin_server *s, const struct plugin_msg *m, struct reply *rep) {
        _cleanup_close_ int efd = -1;
        struct plugin_object *o;
        uint32_t id;
        int r;

        if (!s->ops->add_io_event || !s->ops->remove_io_event)
                return -EOPNOTSUPP;
        r = object_reserve(s, &id);
        if (r < 0)
                return r;
        efd = eventfd(0, EFD_CLOEXEC);
        if (efd < 0)
                return negative_errno();
        r = s->ops->add_io_event(s->userdata, id, &m->body.io_event, efd);
        if (r < 0)
                return r;
        o = object_commit(s, id, OBJECT_IO_EVENT);
        o->io_event = m->body.io_event;
        o->fd = TAKE_FD(efd);
        reply_id(s, rep, o);
        return 0;
}

static bool memory_overlaps(struct plugin_server *s, const struct plugin_memory *m) {
        for (size_t i = 0; i < s->n_objects; i++) {
                const struct plugin_memory *o = &s->objects[i].memory;
                if (s->objects[i].kind == OBJECT_MEMORY && m->guest_address < o->guest_address + o->size &&
                    o->guest_address < m->guest_address + m->size)
                        return true;
        }
        return false;
}

static int create_memory(struct plugin_server *s, const struct plugin_msg *m, struct reply *rep) {
        const struct plugin_memory *mem = &m->body.memory;
        uint64_t features = server_features(s);
        struct plugin_object *o;
        struct stat st;
        uint32_t id;
        int r;

        if (!s->ops->add_memory || !s->ops->remove_memory)
                return -EOPNOTSUPP;
        if (((mem->flags & PLUGIN_MEMORY_READ_ONLY) && !(features & PLUGIN_FEATURE_READ_ONLY_MEMORY)) ||
            ((mem->flags & PLUGIN_MEMORY_DIRTY_LOG) && !(features & PLUGIN_FEATURE_DIRTY_LOG)))
                return -EOPNOTSUPP;
        /* The region must lie within the file, or the guest's first touch
         * past its end would be a SIGBUS in the launcher. */
        if (fstat(m->fds[0], &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t) st.st_size < mem->offset + mem->size)
                return -EINVAL;
        if (memory_overlaps(s, mem))
                return -EEXIST;
        r = object_reserve(s, &id);
        if (r < 0)
                return r;
        r = s->ops->add_memory(s->userdata, id, mem, m->fds[0]);
        if (r < 0)
                return r;
        o = object_commit(s, id, OBJECT_MEMORY);
        o->memory = *mem;
        reply_id(s, rep, o);
        return 0;
}

static int create_irq_event(struct plugin_server *s, const struct plugin_msg *m, struct reply *rep) {
        const struct plugin_irq_event *e = &m->body.irq_event;
        _cleanup_close_ int efd = -1, rfd = -1;
        struct plugin_object *o;
        uint32_t id;
        int r;

        if (!s->ops->add_irq_event || !s->ops->remove_irq_event)
                return -EOPNOTSUPP;
        if ((e->flags & PLUGIN_IRQ_RESAMPLE) && !(server_features(s) & PLUGIN_FEATURE_IRQ_RESAMPLE))
                return -EOPNOTSUPP;
        r = object_reserve(s, &id);
        if (r < 0)
                return r;
        efd = eventfd(0, EFD_CLOEXEC);
        if (efd < 0)
                return negative_errno();
        if (e->flags & PLUGIN_IRQ_RESAMPLE) {
                rfd = eventfd(0, EFD_CLOEXEC);
                if (rfd < 0)
                        return negative_errno();
        }
        r = s->ops->add_irq_event(s->userdata, id, e->irq, efd, rfd);
        if (r < 0)
                return r;
        o = object_commit(s, id, OBJECT_IRQ_EVENT);
        o->irq_event = *e;
        o->fd = TAKE_FD(efd);
        o->resample_fd = TAKE_FD(rfd);
        reply_id(s, rep, o);
        return 0;
}

static int destroy(struct plugin_server *s, const struct plugin_msg *m) {
        struct plugin_object *o = object_find(s, m->body.id.id);
        int r;

        if (!o)
                return -ENOENT;
        /* If KVM refuses, the object stays, so that the plugin may retry. */
        r = object_remove_ops(s, o);
        if (r < 0)
                return r;
        object_release(o);
        *o = s->objects[--s->n_objects];
        return 0;
}

static int get_dirty_log(struct plugin_server *s, const struct plugin_msg *m, struct reply *rep) {
        struct plugin_object *o = object_find(s, m->body.id.id);
        uint64_t pages;
        size_t len;
        int r;

        if (!o)
                return -ENOENT;
        if (o->kind != OBJECT_MEMORY || !(o->memory.flags & PLUGIN_MEMORY_DIRTY_LOG))
                return -EINVAL;
        if (!s->ops->get_dirty_log)
                return -EOPNOTSUPP;
        pages = o->memory.size / PLUGIN_PAGE_SIZE;
        len = ALIGN_UP(pages, 64) / 8; /* at most PLUGIN_DIRTY_LOG_MAX: the parser bounds the size */
        s->out.dirty_log.id = o->id;
        s->out.dirty_log.length = (uint32_t) len;
        memset(s->out.dirty_log.bitmap, 0, len);
        r = s->ops->get_dirty_log(s->userdata, o->id, &o->memory, s->out.dirty_log.bitmap, len);
        if (r < 0)
                return r;
        rep->type = PLUGIN_REPLY_DIRTY_LOG;
        rep->body = &s->out.dirty_log;
        rep->len = 8 + len;
        return 0;
}

static bool mask_valid(struct plugin_server *s, uint64_t mask) {
        return s->n_vcpus >= 64 || (mask >> s->n_vcpus) == 0;
}

static bool range_overlaps(const struct plugin_range *a, const struct plugin_range *b) {
        return a->space == b->space && a->start < b->start + b->length && b->start < a->start + a->length;
}

static int reserve_range(struct plugin_server *s, const struct plugin_range *r) {
        int k;

        if (!s->ops->reserve_range || !s->ops->unreserve_range)
                return -EOPNOTSUPP;
        if (r->space == PLUGIN_SPACE_MMIO && !(server_features(s) & PLUGIN_FEATURE_MMIO_RESERVE))
                return -EOPNOTSUPP;
        for (size_t i = 0; i < s->n_ranges; i++)
                if (range_overlaps(r, &s->ranges[i]))
                        return -EEXIST;
        if (s->n_ranges >= PLUGIN_SERVER_MAX_RANGES)
                return -ENOSPC;
        k = s->ops->reserve_range(s->userdata, r);
        if (k < 0)
                return k;
        s->ranges[s->n_ranges++] = *r;
        return 0;
}

static int unreserve_range(struct plugin_server *s, const struct plugin_range *r) {
        for (size_t i = 0; i < s->n_ranges; i++) {
                const struct plugin_range *o = &s->ranges[i];
                int k;

                if (o->space != r->space || o->start != r->start || o->length != r->length)
                        continue;
                if (!s->ops->unreserve_range)
                        return -EOPNOTSUPP;
                k = s->ops->unreserve_range(s->userdata, r);
                if (k < 0)
                        return k;
                s->ranges[i] = s->ranges[--s->n_ranges];
                return 0;
        }
        return -ENOENT;
}

/* A new socketpair: our end becomes a connection, the other is sent. */
static int new_socket(struct plugin_server *s, int vcpu, struct reply *rep, struct plugin_conn **ret) {
        int sv[2], r;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return negative_errno();
        r = conn_add(s, sv[0], vcpu, false, ret);
        if (r < 0) {
                safe_close(sv[0]);
                safe_close(sv[1]);
                return r;
        }
        rep->type = PLUGIN_REPLY_FD;
        rep->fds[rep->n_fds++] = sv[1];
        rep->close_fd = sv[1];
        return 0;
}

static size_t n_extra_connections(struct plugin_server *s) {
        size_t n = 0;
        for (size_t i = 0; i < s->n_conns; i++)
                if (s->conns[i]->vcpu < 0 && !s->conns[i]->is_main)
                        n++;
        return n;
}

static int get_vcpu_socket(struct plugin_server *s, uint32_t index, struct reply *rep) {
        struct plugin_vcpu *v;
        struct plugin_conn *c;
        int r = 0;

        if (index >= s->n_vcpus)
                return -EINVAL;
        v = &s->vcpus[index];
        pthread_mutex_lock(&v->lock);
        if (v->conn)
                r = -EBUSY;
        else {
                r = new_socket(s, (int) index, rep, &c);
                if (r >= 0)
                        v->conn = c;
        }
        pthread_mutex_unlock(&v->lock);
        return r;
}

static int main_request(struct plugin_server *s, const struct plugin_msg *m, struct reply *rep) {
        const typeof(m->body) *b = &m->body;
        int r;

        rep->type = PLUGIN_REPLY_OK;
        switch (m->hdr.type) {
        case PLUGIN_CREATE_IO_EVENT:
                return create_io_event(s, m, rep);
        case PLUGIN_CREATE_MEMORY:
                return create_memory(s, m, rep);
        case PLUGIN_CREATE_IRQ_EVENT:
                return create_irq_event(s, m, rep);
        case PLUGIN_DESTROY:
                return destroy(s, m);
        case PLUGIN_GET_DIRTY_LOG:
                return get_dirty_log(s, m, rep);
        case PLUGIN_SET_IRQ_LINE:
                if (!s->ops->set_irq_line)
                        return -EOPNOTSUPP;
                return s->ops->set_irq_line(s->userdata, b->irq_line.irq, b->irq_line.level);
        case PLUGIN_GET_CLOCK: {
                uint64_t clock = 0;
                uint32_t flags = 0;
                if (!s->ops->get_clock)
                        return -EOPNOTSUPP;
                r = s->ops->get_clock(s->userdata, &clock, &flags);
                if (r < 0)
                        return r;
                s->out.clock = (struct plugin_clock) { .clock = clock, .flags = flags & PLUGIN_CLOCK_STABLE };
                rep->type = PLUGIN_REPLY_CLOCK;
                rep->body = &s->out.clock;
                rep->len = sizeof(s->out.clock);
                return 0;
        }
        case PLUGIN_SET_CLOCK:
                if (!s->ops->set_clock)
                        return -EOPNOTSUPP;
                return s->ops->set_clock(s->userdata, b->clock.clock);
        case PLUGIN_PAUSE_VCPUS:
        case PLUGIN_RESUME_VCPUS: {
                int (*op)(void *, uint64_t) =
                        m->hdr.type == PLUGIN_PAUSE_VCPUS ? s->ops->pause_vcpus : s->ops->resume_vcpus;
                if (!mask_valid(s, b->vcpu_mask.mask))
                        return -EINVAL;
                if (!op)
                        return -EOPNOTSUPP;
                return op(s->userdata, b->vcpu_mask.mask);
        }
        case PLUGIN_GET_FEATURES:
                s->out.features.features = server_features(s);
                rep->type = PLUGIN_REPLY_FEATURES;
                rep->body = &s->out.features;
                rep->len = sizeof(s->out.features);
                return 0;
        case PLUGIN_RESERVE_RANGE:
                return reserve_range(s, &b->range);
        case PLUGIN_UNRESERVE_RANGE:
                return unreserve_range(s, &b->range);
        case PLUGIN_OPEN_CONNECTION:
                if (n_extra_connections(s) >= PLUGIN_SERVER_MAX_EXTRA_CONNECTIONS)
                        return -EMFILE;
                return new_socket(s, -1, rep, NULL);
        case PLUGIN_GET_VCPU_SOCKET:
                return get_vcpu_socket(s, b->vcpu_index.index, rep);
        }
        return -EOPNOTSUPP;
}

static bool vcpu_stopped(const struct plugin_vcpu *v) {
        return v->has_event && v->delivered;
}

static void reply_event(struct plugin_vcpu *v, struct reply *rep) {
        rep->type = PLUGIN_REPLY_EVENT;
        rep->body = &v->event;
        rep->len = sizeof(v->event);
        v->delivered = true;
}

static int vcpu_resume(struct plugin_server *s, unsigned cpu, struct plugin_vcpu *v, const struct plugin_resume *res) {
        const struct plugin_event *e = &v->event;
        bool is_read = (e->kind == PLUGIN_EVENT_IO || e->kind == PLUGIN_EVENT_MMIO) && !e->is_write;
        int r;

        if (!vcpu_stopped(v))
                return -EBUSY;
        /* Exactly the bytes the guest reads; nothing for anything else. */
        if (res->length != (is_read ? e->size : 0))
                return -EINVAL;
        if (!s->ops->vcpu_resume)
                return -EOPNOTSUPP;
        r = s->ops->vcpu_resume(s->userdata, cpu, res->data, res->length);
        if (r < 0)
                return r;
        v->has_event = v->delivered = false;
        return 0;
}

/* The state requests: a get fills s->out, a set passes the body on. */
#define STATE_GET(op, field, rtype)                                     \
        do {                                                            \
                if (!s->ops->op)                                        \
                        return -EOPNOTSUPP;                             \
                memset(&s->out.field, 0, sizeof(s->out.field));         \
                r = s->ops->op(s->userdata, cpu, &s->out.field);        \
                if (r < 0)                                              \
                        return r;                                       \
                rep->type = rtype;                                      \
                rep->body = &s->out.field;                              \
                rep->len = sizeof(s->out.field);                        \
                return 0;                                               \
        } while (0)
#define STATE_SET(op, field)                                            \
        do {                                                            \
                if (!s->ops->op)                                        \
                        return -EOPNOTSUPP;                             \
                return s->ops->op(s->userdata, cpu, &b->field);         \
        } while (0)

static int vcpu_request(struct plugin_server *s, struct plugin_conn *c, struct plugin_vcpu *v,
                        const struct plugin_msg *m, struct reply *rep) {
        const typeof(m->body) *b = &m->body;
        unsigned cpu = (unsigned) c->vcpu;
        uint32_t n;
        int r;

        rep->type = PLUGIN_REPLY_OK;
        switch (m->hdr.type) {
        case PLUGIN_VCPU_WAIT:
                if (vcpu_stopped(v))
                        return -EBUSY;
                if (v->has_event) {
                        reply_event(v, rep);
                        return 0;
                }
                /* Answered by plugin_server_vcpu_event(); until then this
                 * socket is not read, so that replies stay in order. */
                v->wait_pending = true;
                rep->deferred = true;
                conn_arm(s, c, false);
                return 0;
        case PLUGIN_VCPU_RESUME:
                return vcpu_resume(s, cpu, v, &b->resume);
        case PLUGIN_VCPU_REQUEST_EXIT:
                if (!s->ops->vcpu_request_exit)
                        return -EOPNOTSUPP;
                return s->ops->vcpu_request_exit(s->userdata, cpu);
        case PLUGIN_VCPU_PAUSE:
                if (!s->ops->vcpu_pause)
                        return -EOPNOTSUPP;
                return s->ops->vcpu_pause(s->userdata, cpu, b->pause.user);
        }

        /* Everything else reads or writes the state of a stopped vCPU. */
        if (!vcpu_stopped(v))
                return -EBUSY;
        switch (m->hdr.type) {
        case PLUGIN_VCPU_GET_REGS:
                STATE_GET(vcpu_get_regs, regs, PLUGIN_REPLY_REGS);
        case PLUGIN_VCPU_SET_REGS:
                STATE_SET(vcpu_set_regs, regs);
        case PLUGIN_VCPU_GET_SREGS:
                STATE_GET(vcpu_get_sregs, sregs, PLUGIN_REPLY_SREGS);
        case PLUGIN_VCPU_SET_SREGS:
                STATE_SET(vcpu_set_sregs, sregs);
        case PLUGIN_VCPU_GET_FPU:
                STATE_GET(vcpu_get_fpu, fpu, PLUGIN_REPLY_FPU);
        case PLUGIN_VCPU_SET_FPU:
                STATE_SET(vcpu_set_fpu, fpu);
        case PLUGIN_VCPU_GET_LAPIC:
                STATE_GET(vcpu_get_lapic, lapic, PLUGIN_REPLY_LAPIC);
        case PLUGIN_VCPU_SET_LAPIC:
                STATE_SET(vcpu_set_lapic, lapic);
        case PLUGIN_VCPU_GET_MSRS:
                if (!s->ops->vcpu_get_msrs)
                        return -EOPNOTSUPP;
                n = b->msrs.count;
                s->out.msrs.count = n;
                s->out.msrs.reserved = 0;
                memcpy(s->out.msrs.entries, b->msrs.entries, n * sizeof(struct plugin_msr));
                r = s->ops->vcpu_get_msrs(s->userdata, cpu, s->out.msrs.entries, n);
                if (r < 0)
                        return r;
                for (uint32_t i = 0; i < n; i++)
                        s->out.msrs.entries[i].reserved = 0;
                rep->type = PLUGIN_REPLY_MSRS;
                rep->body = &s->out.msrs;
                rep->len = 8 + n * sizeof(struct plugin_msr);
                return 0;
        case PLUGIN_VCPU_SET_MSRS:
                if (!s->ops->vcpu_set_msrs)
                        return -EOPNOTSUPP;
                return s->ops->vcpu_set_msrs(s->userdata, cpu, b->msrs.entries, b->msrs.count);
        case PLUGIN_VCPU_GET_CPUID:
                if (!s->ops->vcpu_get_cpuid)
                        return -EOPNOTSUPP;
                n = 0;
                r = s->ops->vcpu_get_cpuid(s->userdata, cpu, s->out.cpuid.entries, PLUGIN_MAX_CPUID, &n);
                if (r < 0)
                        return r;
                if (n > PLUGIN_MAX_CPUID)
                        return -E2BIG;
                s->out.cpuid.count = n;
                s->out.cpuid.reserved = 0;
                rep->type = PLUGIN_REPLY_CPUID;
                rep->body = &s->out.cpuid;
                rep->len = 8 + n * sizeof(struct kvm_cpuid_entry2);
                return 0;
        case PLUGIN_VCPU_SET_CPUID:
                if (!s->ops->vcpu_set_cpuid)
                        return -EOPNOTSUPP;
                return s->ops->vcpu_set_cpuid(s->userdata, cpu, b->cpuid.entries, b->cpuid.count);
        }
        return -EOPNOTSUPP;
}

/* One request: dispatched by the socket's kind, answered in order. Returns
 * < 0 only when the connection must go. */
static int conn_handle(struct plugin_server *s, struct plugin_conn *c, const struct plugin_msg *m) {
        struct reply rep = { .close_fd = -1 };
        struct plugin_vcpu *v = NULL;
        int r;

        if (!plugin_proto_is_main_request(m->hdr.type) && !plugin_proto_is_vcpu_request(m->hdr.type))
                r = -EBADMSG; /* a reply where a request belongs */
        else if (c->vcpu < 0)
                r = plugin_proto_is_main_request(m->hdr.type) ? main_request(s, m, &rep) : -EOPNOTSUPP;
        else if (!plugin_proto_is_vcpu_request(m->hdr.type))
                r = -EOPNOTSUPP;
        else {
                v = &s->vcpus[c->vcpu];
                pthread_mutex_lock(&v->lock);
                r = vcpu_request(s, c, v, m, &rep);
        }

        if (r < 0)
                r = plugin_proto_send_error(c->fd, r);
        else if (!rep.deferred)
                r = plugin_proto_send(c->fd, rep.type, rep.body, rep.len, rep.fds, rep.n_fds);
        if (v)
                pthread_mutex_unlock(&v->lock);
        safe_close(rep.close_fd);
        if (r < 0)
                log_debug_errno(r, "Failed to answer plugin %s: %m", plugin_proto_type_to_string(m->hdr.type));
        return r;
}

static int conn_serve(struct plugin_server *s, struct plugin_conn *c, uint32_t events) {
        struct plugin_msg m;
        int r;

        if (!(events & EPOLLIN))
                return -ECONNRESET; /* hang-up or error, nothing left to read */
        r = plugin_proto_recv(c->fd, &m, 0);
        if (r == -ETIMEDOUT)
                return 0;
        if (r == -EBADMSG) {
                log_debug("Malformed packet from the plugin, answered with EBADMSG");
                return plugin_proto_send_error(c->fd, EBADMSG);
        }
        if (r < 0)
                return r;
        r = conn_handle(s, c, &m);
        plugin_msg_done(&m);
        return r;
}

int plugin_server_process(struct plugin_server *s, int timeout_ms) {
        struct epoll_event ev[16];
        int n;

        n = epoll_wait(s->epoll_fd, ev, ELEMENTSOF(ev), timeout_ms);
        if (n < 0)
                return errno == EINTR ? 0 : negative_errno();
        for (int i = 0; i < n; i++) {
                struct plugin_conn *c = ev[i].data.ptr;
                int r = conn_serve(s, c, ev[i].events);

                if (r < 0) {
                        if (r == -ECONNRESET)
                                log_debug("Plugin connection %s hung up",
                                          c->is_main ? "main" : c->vcpu >= 0 ? "vcpu" : "extra");
                        else
                                log_warning_errno(r, "Dropping plugin connection after an error: %m");
                        conn_drop(s, c);
                }
        }
        return s->main_gone ? -ECONNRESET : 0;
}

int plugin_server_vcpu_event(struct plugin_server *s, unsigned cpu, const struct plugin_event *ev) {
        struct plugin_vcpu *v;
        int r = 0;

        if (cpu >= s->n_vcpus || !plugin_proto_event_valid(ev))
                return -EINVAL;
        v = &s->vcpus[cpu];
        pthread_mutex_lock(&v->lock);
        if (v->has_event) {
                r = -EBUSY;
                goto out;
        }
        v->event = *ev;
        v->has_event = true;
        v->delivered = false;
        if (v->conn && v->wait_pending) {
                v->wait_pending = false;
                /* If this fails, the main thread sees the hang-up and a new
                 * socket gets the event. */
                if (plugin_proto_send(v->conn->fd, PLUGIN_REPLY_EVENT, &v->event, sizeof(v->event), NULL, 0) >= 0)
                        v->delivered = true;
                conn_arm(s, v->conn, true);
        }
out:
        pthread_mutex_unlock(&v->lock);
        return r;
}
