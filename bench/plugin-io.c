/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/plugin-io: the round trip of a guest port read served by a plugin
 * against the same read served by a jailed device process, in one run, with
 * a SOCK_SEQPACKET ping-pong as the floor (see bench/README.md). Built and
 * run by bench/plugin-io, with the launcher's own plugin-vm.c,
 * plugin-server.c, kvm-vm.c, device-proxy.c and vCPU engine compiled in.
 *
 * No KVM here, so there is no guest exit: the bench's vCPU thread does
 * what the launcher's vCPU thread does after KVM_RUN returns KVM_EXIT_IO
 * for a read, with the launcher's own code:
 *   plugin  plugin_vm_io(PIO read of the plugin's port), as vm.c's pio
 *           callback calls it; the plugin (devmgr's jailed
 *           polyvm-plugin-minimal) answers on its vCPU socket, the
 *           server's loop thread (an sd_event loop calling
 *           plugin_server_process() as vm.c's on_plugin_io does) receives
 *           it and calls plugin_vm_kvm_ops' vcpu_resume, which hands the
 *           byte back to the waiting vCPU thread;
 *   device  device_proxy_read() on a serial device devmgr created and
 *           jailed (CreateDevice), the request the launcher's pio callback
 *           sends.
 * The server runs with plugin_vm_kvm_ops except for the ops that need a
 * real KVM fd (see nokvm_ops below). */

/* _GNU_SOURCE comes from the command line, as in the meson build. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "device-proxy.h"
#include "log.h"
#include "plugin-server.h"
#include "plugin-vm.h"
#include "vcpu.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define DEVICE1 "org.polyvm.Device1"
#define PLUGIN_PORT 0xE9    /* the port polyvm-plugin-minimal reserves */
#define SERIAL_LSR 0x3fd    /* COM1's line status register: a read without side effects */
#define WARMUP 200
#define PING_SIZE 48        /* a device-protocol Read request: 16-byte header + 32-byte body */

static const char *build = "build";
static unsigned n_reads = 10000;
static sd_bus *bus;
static char devmgr_log[] = "/tmp/polyvm-bench-plugin-io-devmgr.XXXXXX";

#define die(...) do { fprintf(stderr, "bench/plugin-io: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* ---- placement ---- */

static void pin_tid(pid_t tid, int cpu) {
        cpu_set_t set;

        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(tid, sizeof(set), &set) < 0)
                die("sched_setaffinity(%d, cpu %d): %s", (int) tid, cpu, strerror(errno));
}

/* Every thread of a process (a device process may run workers). */
static void pin_process(pid_t pid, int cpu) {
        char path[64];
        struct dirent *de;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/task", (int) pid);
        d = opendir(path);
        if (!d)
                die("%s: %s", path, strerror(errno));
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        pin_tid((pid_t) atoi(de->d_name), cpu);
        closedir(d);
}

static void pin_thread(pthread_t t, int cpu) {
        cpu_set_t set;
        int r;

        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        r = pthread_setaffinity_np(t, sizeof(set), &set);
        if (r != 0)
                die("pthread_setaffinity_np(cpu %d): %s", cpu, strerror(r));
}

/* ---- what else the CPUs did ---- */

/* Idle and total jiffies of CPUs 0 and 1 from /proc/stat: a cross-CPU wakeup
 * costs very different amounts when the target CPU is idle (halted: on this
 * host a PVM vCPU the hypervisor must wake) or busy with other work. */
struct cpu_times {
        unsigned long long idle[2], total[2];
};

static void cpu_times_read(struct cpu_times *t) {
        char line[512];
        FILE *f = fopen("/proc/stat", "re");

        *t = (struct cpu_times) {};
        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                unsigned long long v[8] = {};
                int cpu;

                if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2], &v[3],
                           &v[4], &v[5], &v[6], &v[7]) != 9 || cpu < 0 || cpu > 1)
                        continue;
                t->idle[cpu] = v[3] + v[4];
                for (int i = 0; i < 8; i++)
                        t->total[cpu] += v[i];
        }
        fclose(f);
}

static struct cpu_times series_start;

/* ---- results ---- */

struct series {
        const char *path, *placement;
        double min, p50, p99, mean, per_s;
        double idle[2]; /* CPU 0 and 1 idle share during the series, % */
        double handback_p50, handback_p99; /* plugin: from the vcpu_resume op to the vCPU thread running */
        bool skipped, has_handback;
};

static struct series results[16];
static size_t n_results;

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* ns[] holds n round trips; wall is the whole loop's time. */
static void record(const char *path, const char *placement, uint64_t *ns, size_t n, uint64_t wall) {
        struct series *s = &results[n_results++];
        struct cpu_times end;
        double sum = 0;

        cpu_times_read(&end);

        qsort(ns, n, sizeof(*ns), cmp_u64);
        for (size_t i = 0; i < n; i++)
                sum += (double) ns[i];
        *s = (struct series) {
                .path = path,
                .placement = placement,
                .min = (double) ns[0] / 1e3,
                .p50 = (double) ns[n / 2] / 1e3,
                .p99 = (double) ns[(size_t) ((double) n * 0.99)] / 1e3,
                .mean = sum / (double) n / 1e3,
                .per_s = (double) n / ((double) wall / 1e9),
        };
        for (int c = 0; c < 2; c++) {
                unsigned long long total = end.total[c] - series_start.total[c];
                s->idle[c] = total ? 100.0 * (double) (end.idle[c] - series_start.idle[c]) / (double) total : 0;
        }
        fprintf(stderr, "  %-34s %-46s p50 %8.1f µs\n", path, placement, s->p50);
}

static void skip(const char *path, const char *placement) {
        results[n_results++] = (struct series) { .path = path, .placement = placement, .skipped = true };
}

/* ---- floor: SOCK_SEQPACKET ping-pong ---- */

static void echo_loop(int fd) {
        uint8_t buf[PING_SIZE];
        ssize_t n;

        while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
                if (send(fd, buf, (size_t) n, MSG_NOSIGNAL) != n)
                        break;
}

struct echo_thread {
        int fd, cpu;
};

static void *echo_thread_main(void *arg) {
        struct echo_thread *e = arg;

        pin_tid(0, e->cpu);
        echo_loop(e->fd);
        return NULL;
}

static void ping(int fd, uint64_t *ns, unsigned n, uint64_t *wall) {
        uint8_t buf[PING_SIZE] = { 1 };
        uint64_t start = now_ns();

        for (unsigned i = 0; i < n; i++) {
                uint64_t t0 = now_ns();

                if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) != sizeof(buf) || recv(fd, buf, sizeof(buf), 0) != sizeof(buf))
                        die("ping-pong: %s", strerror(errno));
                ns[i] = now_ns() - t0;
        }
        *wall = now_ns() - start;
}

static void bench_floor(int peer_cpu, const char *placement_threads, const char *placement_procs, uint64_t *ns) {
        struct echo_thread e = { .cpu = peer_cpu };
        uint64_t wall;
        pthread_t t;
        pid_t pid;
        int sv[2];

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                die("socketpair: %s", strerror(errno));
        e.fd = sv[1];
        if (pthread_create(&t, NULL, echo_thread_main, &e) != 0)
                die("pthread_create");
        ping(sv[0], ns, WARMUP, &wall);
        cpu_times_read(&series_start);
        ping(sv[0], ns, n_reads, &wall);
        record("floor: SEQPACKET ping-pong, 2 threads", placement_threads, ns, n_reads, wall);
        shutdown(sv[0], SHUT_RDWR);
        pthread_join(t, NULL);
        close(sv[0]);
        close(sv[1]);

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                die("socketpair: %s", strerror(errno));
        pid = fork();
        if (pid < 0)
                die("fork: %s", strerror(errno));
        if (pid == 0) {
                close(sv[0]);
                pin_tid(0, peer_cpu);
                echo_loop(sv[1]);
                _exit(0);
        }
        close(sv[1]);
        ping(sv[0], ns, WARMUP, &wall);
        cpu_times_read(&series_start);
        ping(sv[0], ns, n_reads, &wall);
        record("floor: SEQPACKET ping-pong, 2 processes", placement_procs, ns, n_reads, wall);
        close(sv[0]);
        waitpid(pid, NULL, 0);
}

/* ---- devmgr on a private bus ---- */

static pid_t spawn(char **argv, int out_fd, int err_fd) {
        pid_t pid = fork();

        if (pid < 0)
                die("fork: %s", strerror(errno));
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM); /* no leftovers if we die */
                if (out_fd >= 0)
                        dup2(out_fd, 1);
                if (err_fd >= 0)
                        dup2(err_fd, 2);
                execvp(argv[0], argv);
                _exit(127);
        }
        return pid;
}

static void stop(pid_t pid) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
}

static pid_t devmgr_start(void) {
        char exe[4096], busarg[600];
        char *argv[] = { exe, busarg, NULL };
        const char *address;
        pid_t pid;
        int log_fd;

        snprintf(exe, sizeof(exe), "%s/services/devmgr/polyvm-devmgr", build);
        sd_bus_get_address(bus, &address);
        snprintf(busarg, sizeof(busarg), "--bus=%s", address);
        log_fd = mkstemp(devmgr_log);
        if (log_fd < 0)
                die("mkstemp: %s", strerror(errno));
        pid = spawn(argv, -1, log_fd);
        close(log_fd);
        /* Wait for its name; a call to devmgr before would activate another. */
        for (int i = 0;; i++) {
                sd_bus_message *reply = NULL;
                int has = 0;

                if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "NameHasOwner", NULL, &reply, "s", DEVMGR) >= 0)
                        (void) sd_bus_message_read(reply, "b", &has);
                sd_bus_message_unref(reply);
                if (has)
                        return pid;
                if (i > 1000 || waitpid(pid, NULL, WNOHANG) == pid)
                        die("devmgr did not come up (log: %s)", devmgr_log);
                usleep(10000);
        }
}

static void destroy_device(const char *object) {
        sd_bus_error error = SD_BUS_ERROR_NULL;

        if (sd_bus_call_method(bus, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", &error, NULL, "o", object) < 0)
                die("DestroyDevice(%s): %s", object, error.message);
}

static char *device_string(const char *object, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;

        if (sd_bus_get_property_string(bus, DEVMGR, object, DEVICE1, name, &error, &s) < 0)
                die("%s of %s: %s", name, object, error.message);
        return s;
}

/* ---- (b) a jailed device process through the launcher's device proxy ---- */

struct device_bench {
        struct device_proxy *proxy;
        char *object;
        pid_t pid;
        unsigned range;
};

static void device_bench_start(struct device_bench *b) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *object;
        char err[512];
        uint32_t pid;
        int fd, r;

        r = sd_bus_call_method(bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &error, &reply, "sss", "bench",
                               "serial", "{}");
        if (r < 0)
                die("CreateDevice(serial): %s", error.message);
        if (sd_bus_message_read(reply, "ohu", &object, &fd, &pid) < 0)
                die("CreateDevice: bad reply");
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                die("dup: %s", strerror(errno));
        b->object = strdup(object);
        b->pid = (pid_t) pid;
        sd_bus_message_unref(reply);
        if (device_proxy_new("serial", b->object, b->pid, fd, &b->proxy) < 0)
                die("device_proxy_new");
        if (device_proxy_activate(b->proxy, err, sizeof(err)) < 0)
                die("%s", err);
        for (b->range = 0; b->range < b->proxy->ranges.count; b->range++) {
                const struct proto_range *g = &b->proxy->ranges.ranges[b->range];
                if (g->bus == PROTO_BUS_PIO && g->base <= SERIAL_LSR && SERIAL_LSR < g->base + g->len)
                        return;
        }
        die("the serial device serves no range with port 0x%x", SERIAL_LSR);
}

static void device_reads(struct device_bench *b, uint64_t *ns, unsigned n, uint64_t *wall) {
        uint64_t start = now_ns();

        for (unsigned i = 0; i < n; i++) {
                uint64_t t0 = now_ns();
                uint8_t lsr;

                device_proxy_read(b->proxy, b->range, SERIAL_LSR, &lsr, 1);
                ns[i] = now_ns() - t0;
                /* THR empty, transmitter idle: what an idle 16550A says; all
                 * ones would mean the proxy gave up on the device. */
                if (lsr == 0xff || device_proxy_is_failed(b->proxy))
                        die("serial LSR read 0x%02x (device %s)", lsr,
                            device_proxy_is_failed(b->proxy) ? b->proxy->reason : "alive");
        }
        *wall = now_ns() - start;
}

static void bench_device(struct device_bench *b, int peer_cpu, const char *placement, uint64_t *ns) {
        uint64_t wall;

        pin_process(b->pid, peer_cpu);
        device_reads(b, ns, WARMUP, &wall);
        cpu_times_read(&series_start);
        device_reads(b, ns, n_reads, &wall);
        record("device process (serial, jailed), device-proxy", placement, ns, n_reads, wall);
}

static void device_bench_stop(struct device_bench *b) {
        device_proxy_free(b->proxy); /* sends DestroyDevice on the endpoint */
        destroy_device(b->object);
        free(b->object);
}

/* ---- (a) the plugin through the launcher's plugin VM code ---- */

/* The launcher's plugin_vm_kvm_ops, but with the ops the minimal example
 * reaches at its start that need a real KVM fd returning 0 and doing
 * nothing (there is no VM fd and no vCPU fd here):
 *   add_memory      its CREATE_MEMORY (mmap + KVM_SET_USER_MEMORY_REGION),
 *   remove_memory   the same region removed by plugin_server_free() (the
 *                   real op would not know it: add_memory kept nothing),
 *   vcpu_get_sregs, vcpu_set_sregs, vcpu_set_regs
 *                   its INIT handler (KVM_GET_SREGS, KVM_SET_SREGS,
 *                   KVM_SET_REGS on the vCPU fd).
 * Everything else is the launcher's as is, reserve_range and vcpu_resume
 * included; get_features too (CREATE_MEMORY asks it; its two
 * KVM_CHECK_EXTENSION ioctls on VM fd -1 fail with EBADF and count as
 * absent). vcpu_resume is wrapped only to take one timestamp. */
static int nokvm_add_memory(void *ud, uint32_t id, const struct plugin_memory *m, int memfd) {
        return 0;
}

static int nokvm_remove_memory(void *ud, uint32_t id, const struct plugin_memory *m) {
        return 0;
}

static int nokvm_get_sregs(void *ud, unsigned cpu, struct kvm_sregs *ret) {
        return 0; /* the server has zeroed *ret */
}

static int nokvm_set_sregs(void *ud, unsigned cpu, const struct kvm_sregs *sregs) {
        return 0;
}

static int nokvm_set_regs(void *ud, unsigned cpu, const struct kvm_regs *regs) {
        return 0;
}

/* When the server's loop thread called vcpu_resume; read by the vCPU thread
 * once plugin_vm_io returns (ordered by the op's own mutex). */
static _Atomic uint64_t t_resume_op;

static int timed_vcpu_resume(void *ud, unsigned cpu, const uint8_t *data, uint32_t len) {
        atomic_store_explicit(&t_resume_op, now_ns(), memory_order_relaxed);
        return plugin_vm_kvm_ops.vcpu_resume(ud, cpu, data, len);
}

static struct plugin_vm_ops nokvm_ops(void) {
        struct plugin_vm_ops o = plugin_vm_kvm_ops;

        o.add_memory = nokvm_add_memory;
        o.remove_memory = nokvm_remove_memory;
        o.vcpu_get_sregs = nokvm_get_sregs;
        o.vcpu_set_sregs = nokvm_set_sregs;
        o.vcpu_set_regs = nokvm_set_regs;
        o.vcpu_resume = timed_vcpu_resume;
        return o;
}

struct plugin_bench {
        struct kvm_vm kvm; /* no KVM: both fds -1, no irqchip (as the example's config asks) */
        struct plugin_vm_ops ops;
        struct plugin_vm *pvm;
        struct plugin_server *server;
        char *object;
        pid_t pid;
        pthread_t loop, watchdog;
        atomic_int loop_result;
        /* The vCPU thread's stop for the plugin began then (ns), 0: none.
         * plugin_vm_io waits without a timeout, as in the launcher; the
         * watchdog gives up after 5 s instead. */
        _Atomic uint64_t waiting_since;
        uint64_t *handback;
};

/* The launcher's main loop as far as the plugin is concerned: vm.c's
 * on_plugin_io; a hang-up (or any error here) stops the plugin VM, which
 * wakes a vCPU thread waiting for the plugin, as vm_release_plugin does. */
static int on_plugin_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct plugin_bench *b = userdata;
        int r = plugin_server_process(b->server, 0);

        if (r < 0) {
                atomic_store(&b->loop_result, r);
                plugin_vm_stop(b->pvm);
                return sd_event_exit(sd_event_source_get_event(s), 0);
        }
        return 0;
}

static void *plugin_loop(void *arg) {
        struct plugin_bench *b = arg;
        sd_event *e = NULL;
        int r;

        r = sd_event_new(&e);
        if (r >= 0)
                r = sd_event_add_io(e, NULL, plugin_server_fd(b->server), EPOLLIN, on_plugin_io, b);
        if (r >= 0)
                r = sd_event_loop(e);
        if (r < 0)
                die("the plugin server's loop: %s", strerror(-r));
        sd_event_unref(e);
        return NULL;
}

static void *plugin_watchdog(void *arg) {
        struct plugin_bench *b = arg;

        for (;;) {
                uint64_t since = atomic_load(&b->waiting_since);

                if (since != 0 && now_ns() - since > 5000000000ull)
                        die("the plugin did not resume the vCPU within 5 s (devmgr log: %s)", devmgr_log);
                usleep(500 * 1000);
        }
        return NULL;
}

static void plugin_bench_start(struct plugin_bench *b) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        char rel[4096], exe[PATH_MAX];
        const char *object;
        char *none[] = { NULL };
        uint32_t pid;
        int fd, r, v;

        b->kvm = (struct kvm_vm) { .kvm_fd = -1, .vm_fd = -1 };
        b->ops = nokvm_ops();
        r = plugin_vm_new(&b->kvm, 1, &b->pvm);
        if (r < 0)
                die("plugin_vm_new: %s", strerror(-r));
        r = plugin_server_new(&b->ops, b->pvm, 1, &b->server, &fd);
        if (r < 0)
                die("plugin_server_new: %s", strerror(-r));
        plugin_vm_set_server(b->pvm, b->server);

        /* devmgr wants an absolute path. */
        snprintf(rel, sizeof(rel), "%s/plugins/polyvm-plugin-minimal", build);
        if (!realpath(rel, exe))
                die("%s: %s", rel, strerror(errno));
        if (sd_bus_message_new_method_call(bus, &m, DEVMGR, DEVMGR_PATH, DEVMGR, "CreatePlugin") < 0 ||
            sd_bus_message_append(m, "ss", "bench", exe) < 0 || sd_bus_message_append_strv(m, none) < 0 ||
            sd_bus_message_append(m, "h", fd) < 0 || sd_bus_message_append_strv(m, none) < 0 ||
            sd_bus_message_append(m, "ah", 0) < 0)
                die("CreatePlugin: cannot build the call");
        r = sd_bus_call(bus, m, 10 * 1000 * 1000, &error, &reply);
        if (r < 0)
                die("CreatePlugin(%s): %s", exe, error.message);
        if (sd_bus_message_read(reply, "ou", &object, &pid) < 0)
                die("CreatePlugin: bad reply");
        b->object = strdup(object);
        b->pid = (pid_t) pid;
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        close(fd); /* devmgr and the plugin have theirs */

        if (pthread_create(&b->loop, NULL, plugin_loop, b) != 0 ||
            pthread_create(&b->watchdog, NULL, plugin_watchdog, b) != 0)
                die("pthread_create");
        /* As the launcher's vCPU thread before its first KVM_RUN: INIT. The
         * example asks for it (WAIT) once its memory and port are set up,
         * sets the registers and resumes. */
        atomic_store(&b->waiting_since, now_ns());
        v = plugin_vm_user_stop(b->pvm, 0, true);
        atomic_store(&b->waiting_since, 0);
        if (v != -1)
                die("plugin_vm_user_stop(INIT): verdict %d, not -1 (run on; devmgr log: %s)", v, devmgr_log);
}

static void plugin_reads(struct plugin_bench *b, uint64_t *ns, unsigned n, uint64_t *wall) {
        uint64_t start = now_ns();

        for (unsigned i = 0; i < n; i++) {
                uint8_t data = 0;
                uint64_t t0 = now_ns(), t1;
                int v;

                atomic_store_explicit(&b->waiting_since, t0, memory_order_relaxed);
                v = plugin_vm_io(b->pvm, 0, PLUGIN_SPACE_PIO, PLUGIN_PORT, &data, 1, false);
                t1 = now_ns();
                ns[i] = t1 - t0;
                b->handback[i] = t1 - atomic_load_explicit(&t_resume_op, memory_order_relaxed);
                atomic_store_explicit(&b->waiting_since, 0, memory_order_relaxed);
                /* -1: run on. The example answers reads of its port with all ones. */
                if (v != -1 || data != 0xff)
                        die("plugin_vm_io(PIO read 0x%x): verdict %d, byte 0x%02x (expected -1, 0xff)", PLUGIN_PORT, v,
                            data);
        }
        *wall = now_ns() - start;
}

static void bench_plugin(struct plugin_bench *b, int vcpu_cpu, int loop_cpu, int peer_cpu, const char *placement,
                         uint64_t *ns) {
        uint64_t wall;

        pin_tid(0, vcpu_cpu);
        pin_thread(b->loop, loop_cpu);
        pin_process(b->pid, peer_cpu);
        plugin_reads(b, ns, WARMUP, &wall);
        cpu_times_read(&series_start);
        plugin_reads(b, ns, n_reads, &wall);
        record("plugin (minimal example, jailed), plugin-vm", placement, ns, n_reads, wall);
        qsort(b->handback, n_reads, sizeof(*b->handback), cmp_u64);
        results[n_results - 1].has_handback = true;
        results[n_results - 1].handback_p50 = (double) b->handback[n_reads / 2] / 1e3;
        results[n_results - 1].handback_p99 = (double) b->handback[(size_t) ((double) n_reads * 0.99)] / 1e3;
}

static void plugin_bench_stop(struct plugin_bench *b) {
        char *state = NULL, *reason = NULL;
        int v;

        /* A guest hlt without irqchip, as the launcher's vCPU thread reports
         * it: the example ends its loop and exits 0 without resuming, its
         * main socket hangs up, the loop thread stops the plugin VM and this
         * stop ends the vCPU's run. */
        atomic_store(&b->waiting_since, now_ns());
        v = plugin_vm_halt(b->pvm, 0, false);
        atomic_store(&b->waiting_since, 0);
        if (v != VCPU_EXIT_HALTED)
                die("plugin_vm_halt: verdict %d, not VCPU_EXIT_HALTED", v);
        pthread_join(b->loop, NULL);
        if (atomic_load(&b->loop_result) != -ECONNRESET)
                die("the plugin's main socket did not hang up (%d)", atomic_load(&b->loop_result));
        for (int i = 0;; i++) {
                free(state);
                state = device_string(b->object, "State");
                if (strcmp(state, "exited") == 0 || strcmp(state, "failed") == 0)
                        break;
                if (i > 500)
                        die("the plugin is still %s 5 s after HLT", state);
                usleep(10000);
        }
        reason = device_string(b->object, "ExitReason");
        if (strcmp(state, "exited") != 0)
                die("the plugin ended %s: %s", state, reason);
        fprintf(stderr, "  plugin %s: %s\n", state, reason);
        /* As vm_release_kvm: the server removes what the plugin made, then the plugin VM goes. */
        b->server = plugin_server_free(b->server);
        b->pvm = plugin_vm_free(b->pvm);
        destroy_device(b->object);
        free(b->object);
        free(state);
        free(reason);
}

/* ---- main ---- */

static void print_loadavg(const char *when) {
        char buf[128] = "";
        FILE *f = fopen("/proc/loadavg", "re");

        if (f) {
                if (!fgets(buf, sizeof(buf), f))
                        buf[0] = 0;
                fclose(f);
        }
        buf[strcspn(buf, "\n")] = 0;
        printf("load average %s: %s\n", when, buf);
}

int main(int argc, char **argv) {
        char conf[4096], address[512] = "", *daemon_argv[] = { "dbus-daemon", "--nofork", "--print-address",
                                                              "--config-file", conf, NULL };
        struct device_bench dev = {};
        struct plugin_bench plug = {};
        bool two_cpus;
        struct utsname u;
        uint64_t *ns;
        pid_t daemon, devmgr;
        ssize_t n;
        int p[2];

        for (int i = 1; i < argc; i++) {
                if (strncmp(argv[i], "--build=", 8) == 0)
                        build = argv[i] + 8;
                else if (strncmp(argv[i], "--reads=", 8) == 0)
                        n_reads = (unsigned) strtoul(argv[i] + 8, NULL, 10);
                else
                        die("usage: plugin-io [--build=DIR] [--reads=N]");
        }
        if (n_reads < 100 || n_reads > 10000000)
                die("--reads must be 100..10000000");
        ns = calloc(n_reads > WARMUP ? n_reads : WARMUP, sizeof(*ns));
        plug.handback = calloc(n_reads > WARMUP ? n_reads : WARMUP, sizeof(*ns));
        if (!ns || !plug.handback)
                die("out of memory");
        log_set_max_level(LOG_WARNING);
        print_loadavg("before the run");
        two_cpus = sysconf(_SC_NPROCESSORS_ONLN) >= 2;

        snprintf(conf, sizeof(conf), "%s/dbus/polyvm-bus.conf", build);
        if (pipe2(p, O_CLOEXEC) < 0)
                die("pipe: %s", strerror(errno));
        daemon = spawn(daemon_argv, p[1], -1);
        close(p[1]);
        n = read(p[0], address, sizeof(address) - 1);
        if (n <= 0)
                die("dbus-daemon gave no address");
        address[strcspn(address, "\n")] = 0;
        close(p[0]);
        if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, address) < 0 || sd_bus_set_bus_client(bus, 1) < 0 ||
            sd_bus_start(bus) < 0)
                die("cannot connect to %s", address);
        devmgr = devmgr_start();
        device_bench_start(&dev);
        plugin_bench_start(&plug);

        fprintf(stderr, "%u reads per series (after %u warm-up)\n", n_reads, WARMUP);
        /* Same CPU: everything on CPU 0. */
        pin_tid(0, 0);
        bench_floor(0, "both on CPU 0", "both on CPU 0", ns);
        bench_device(&dev, 0, "vCPU thread and device on CPU 0", ns);
        bench_plugin(&plug, 0, 0, 0, "vCPU thread, server loop, plugin on CPU 0", ns);
        /* Cross-CPU: the peer (and, once, the server loop) on CPU 1. */
        if (two_cpus) {
                pin_tid(0, 0);
                bench_floor(1, "CPU 0 / CPU 1", "CPU 0 / CPU 1", ns);
                bench_device(&dev, 1, "vCPU thread CPU 0, device CPU 1", ns);
                bench_plugin(&plug, 0, 0, 1, "vCPU thread + server loop CPU 0, plugin CPU 1", ns);
                bench_plugin(&plug, 0, 1, 1, "vCPU thread CPU 0, server loop + plugin CPU 1", ns);
        } else {
                skip("floor: SEQPACKET ping-pong, 2 threads", "cross-CPU (1 CPU online)");
                skip("device process (serial, jailed), device-proxy", "cross-CPU (1 CPU online)");
                skip("plugin (minimal example, jailed), plugin-vm", "cross-CPU (1 CPU online)");
        }

        pin_tid(0, 0);
        plugin_bench_stop(&plug);
        device_bench_stop(&dev);
        stop(devmgr);
        sd_bus_flush_close_unref(bus);
        stop(daemon);
        unlink(devmgr_log);

        uname(&u);
        printf("host: %s, kernel %s, %ld CPUs online; %u reads per series after %u warm-up; build %s\n", u.nodename,
               u.release, sysconf(_SC_NPROCESSORS_ONLN), n_reads, WARMUP, build);
        print_loadavg("after the run");
        printf("\n| path | placement | min µs | p50 µs | p99 µs | mean µs | reads/s | CPU 0 / 1 idle |\n"
               "|---|---|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < n_results; i++) {
                const struct series *s = &results[i];
                if (s->skipped)
                        printf("| %s | %s | – | – | – | – | – | – |\n", s->path, s->placement);
                else
                        printf("| %s | %s | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f%% / %.0f%% |\n", s->path,
                               s->placement, s->min, s->p50, s->p99, s->mean, s->per_s, s->idle[0], s->idle[1]);
        }
        printf("\nOf a plugin read, the last step: from the server's vcpu_resume op (on the server loop's thread) to "
               "the vCPU thread running again:\n\n| placement | p50 µs | p99 µs |\n|---|---|---|\n");
        for (size_t i = 0; i < n_results; i++)
                if (results[i].has_handback)
                        printf("| %s | %.1f | %.1f |\n", results[i].placement, results[i].handback_p50,
                               results[i].handback_p99);
        free(plug.handback);
        free(ns);
        return 0;
}
