/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PVH example plugin (polyvm-plugin-pvh) without KVM: run jailed by the
 * real devmgr (CreatePlugin) on one end of a socketpair that this test
 * serves with the launcher's plugin server and the fake ops
 * (tests/unit/plugin-fake.h). The test plays the vCPU: it reports INIT,
 * checks the guest RAM the plugin created (the test guest ELF's segments,
 * start_info, memory map, command line) and the registers it set (PVH
 * entry), then does the port accesses a guest would (THR, LSR, PM1a_CNT)
 * and reads the serial output from devmgr's log. Broken ELFs end the plugin
 * with status 1 and a message saying why.
 *
 * The jail sees only /usr, /lib and /lib64 of the host; the ELFs are in a
 * directory under /tmp that it cannot see, and reach it as CreatePlugin's
 * files (its fd 4, "fd:4"), as a VM config's "plugin.files" does. A path
 * the jail cannot open is refused by the plugin itself. The ELF as an
 * inherited fd is also tested with the plugin started by the test. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "plugin-fake.h"
#include "plugin-server.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define DEVICE_IFACE "org.polyvm.Device1"
#define MEMORY_MIB 16

/* What the plugin writes (plugins/examples/pvh-boot.h), as the guest reads it. */
#define START_INFO 0x6000
#define START_MAGIC 0x336ec578u
#define COM1 0x3f8
#define PM1A_CNT 0x604

static struct harness h;
static struct harness_devmgr dm;
static char *elf_dir;
static GBytes *guest_elf;

/* ELF_DIR/NAME, which only the test (and, through an fd, the plugin) reads. */
static void elf_file(const char *name, const void *data, size_t len) {
        g_autofree char *path = g_build_filename(elf_dir, name, NULL);
        g_autoptr(GError) error = NULL;

        g_assert_true(g_file_set_contents(path, data, (gssize) len, &error));
        g_assert_no_error(error);
}

/* The ELF's first program header of type; NULL if none. */
static Elf64_Phdr *elf_phdr(uint8_t *elf, uint32_t type) {
        Elf64_Ehdr *eh = (Elf64_Ehdr *) elf;
        for (unsigned i = 0; i < eh->e_phnum; i++) {
                Elf64_Phdr *p = (Elf64_Phdr *) (elf + eh->e_phoff + i * sizeof(Elf64_Phdr));
                if (p->p_type == type)
                        return p;
        }
        return NULL;
}

static void elf_files_setup(void) {
        g_autofree char *elf_path = harness_build_path("guest/polyvm-testguest.elf");
        g_autoptr(GError) error = NULL;
        gsize len;
        char *data;
        uint8_t *copy, *note;
        static const uint8_t xen_note[] = { 4, 0, 0, 0, 8, 0, 0, 0, 18, 0, 0, 0, 'X', 'e', 'n', 0 };
        const char text[] = "#!/bin/sh\necho this is not an ELF\n";

        g_assert_true(g_file_get_contents(elf_path, &data, &len, &error));
        g_assert_no_error(error);
        guest_elf = g_bytes_new_take(data, len);
        elf_dir = g_dir_make_tmp("polyvm-pvh-XXXXXX", &error); /* mode 0700: the jail's uid could not open it */
        g_assert_no_error(error);

        elf_file("guest.elf", data, len);
        elf_file("not-an-elf", text, sizeof(text) - 1);

        /* The same ELF with its PVH note's type changed: no entry. */
        copy = g_memdup2(data, len);
        note = memmem(copy, len, xen_note, sizeof(xen_note));
        g_assert_nonnull(note);
        note[8] = 99;
        elf_file("no-pvh-note.elf", copy, len);
        g_free(copy);

        /* Its first PT_LOAD grown to 1 GiB: beyond the VM's memory. */
        copy = g_memdup2(data, len);
        g_assert_nonnull(elf_phdr(copy, PT_LOAD));
        elf_phdr(copy, PT_LOAD)->p_memsz = 1ull << 30;
        elf_file("too-big.elf", copy, len);
        g_free(copy);
}

static void elf_files_teardown(void) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", elf_dir);

        g_assert_cmpint(system(cmd), ==, 0);
        g_free(elf_dir);
        g_bytes_unref(guest_elf);
}

/* NAME in ELF_DIR, opened read-only for CreatePlugin's files; -1 for none. */
static int elf_open(const char *name) {
        g_autofree char *path = NULL;
        int fd;

        if (!name)
                return -1;
        path = g_build_filename(elf_dir, name, NULL);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
        return fd;
}

/* The plugin with args; file (in ELF_DIR, or NULL) as its fd 4. */
static char *create_plugin(const char *const *args, const char *file, int sock, pid_t *ret_pid) {
        g_autofree char *exe = harness_build_path("plugins/polyvm-plugin-pvh");
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const char *none[] = { NULL }, *p;
        int fd = elf_open(file);
        char *result;
        uint32_t pid;

        g_assert_cmpint(sd_bus_message_new_method_call(h.bus, &m, DEVMGR, DEVMGR_PATH, DEVMGR, "CreatePlugin"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "ss", "vm1", exe), >=, 0);
        g_assert_cmpint(sd_bus_message_append_strv(m, (char **) args), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "h", sock), >=, 0);
        g_assert_cmpint(sd_bus_message_append_strv(m, (char **) none), >=, 0);
        if (fd >= 0)
                g_assert_cmpint(sd_bus_message_append(m, "ah", 1, fd), >=, 0);
        else
                g_assert_cmpint(sd_bus_message_append(m, "ah", 0), >=, 0);
        if (sd_bus_call(h.bus, m, 10 * 1000 * 1000, &error, &reply) < 0)
                g_error("CreatePlugin: %s: %s", error.name, error.message);
        g_assert_cmpint(sd_bus_message_read(reply, "ou", &p, &pid), >, 0);
        result = g_strdup(p);
        *ret_pid = (pid_t) pid;
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        if (fd >= 0)
                close(fd); /* the plugin has its own */
        return result;
}

static void wait_ended(const char *path, const char *state, const char *reason_prefix, pid_t pid) {
        g_autofree char *reason = NULL;

        g_assert_true(harness_wait_property(&h, DEVMGR, path, DEVICE_IFACE, "State", state, 10000));
        reason = harness_get_string(&h, DEVMGR, path, DEVICE_IFACE, "ExitReason");
        if (!g_str_has_prefix(reason, reason_prefix))
                g_error("ExitReason of %s is '%s', expected '%s...'", path, reason, reason_prefix);
        g_assert_true(harness_wait_pid_gone(pid, 5000));
        g_assert_null(harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", NULL, "o", path));
}

/* One stop of the vCPU for the plugin; for a read, returns the byte it answered. */
static uint8_t vcpu_io(struct fake_server *sv, unsigned *resumes, bool is_write, uint16_t port, uint32_t size,
                       uint64_t value) {
        struct plugin_event ev = { .kind = PLUGIN_EVENT_IO, .is_write = is_write, .address = port, .size = size };

        if (is_write)
                memcpy(ev.data, &value, size);
        g_assert_cmpint(plugin_server_vcpu_event(sv->s, 0, &ev), ==, 0);
        *resumes = fake_vm_wait_resume(&sv->fake, *resumes);
        g_assert_cmpuint(*resumes, >, 0);
        g_assert_cmpuint(sv->fake.resume_len, ==, is_write ? 0 : size);
        return is_write ? 0 : sv->fake.resume_data[0];
}

/* The vCPU's part of a boot: INIT, the checks of memory and registers,
 * serial output, LSR, and ACPI S5. */
static void play_vcpu(struct fake_server *sv, const char *cmdline) {
        struct plugin_event init = { .kind = PLUGIN_EVENT_INIT };
        struct plugin_event off = { .kind = PLUGIN_EVENT_IO, .is_write = 1, .address = PM1A_CNT, .size = 2 };
        const uint8_t *elf = g_bytes_get_data(guest_elf, NULL);
        const Elf64_Ehdr *eh = (const Elf64_Ehdr *) elf;
        const uint8_t *mem;
        uint32_t magic, n_map;
        uint64_t cmdline_paddr, map_paddr, last_end = 0, entry = 0;
        unsigned resumes = 0;

        g_assert_cmpint(plugin_server_vcpu_event(sv->s, 0, &init), ==, 0);
        resumes = fake_vm_wait_resume(&sv->fake, resumes);
        g_assert_cmpuint(resumes, >, 0);

        /* One region of guest RAM at 0, and the ports reserved. */
        g_assert_cmpuint(sv->fake.n_memory, ==, 1);
        g_assert_cmphex(sv->fake.memory[0].m.guest_address, ==, 0);
        g_assert_cmphex(sv->fake.memory[0].m.size, ==, MEMORY_MIB << 20);
        g_assert_true(fake_vm_called(&sv->fake, "reserve_range space=0 start=0x3f8 length=0x8"));
        g_assert_true(fake_vm_called(&sv->fake, "reserve_range space=0 start=0x600 length=0x6"));
        mem = sv->fake.memory[0].map;

        /* Each PT_LOAD at its physical address, bss zeroed. */
        for (unsigned i = 0; i < eh->e_phnum; i++) {
                const Elf64_Phdr *p = (const Elf64_Phdr *) (elf + eh->e_phoff + i * sizeof(Elf64_Phdr));
                if (p->p_type != PT_LOAD)
                        continue;
                g_assert_cmpmem(mem + p->p_paddr, p->p_filesz, elf + p->p_offset, p->p_filesz);
                for (uint64_t j = p->p_filesz; j < p->p_memsz; j++)
                        g_assert_cmphex(mem[p->p_paddr + j], ==, 0);
        }
        /* start_info: magic, command line, a memory map ending at the VM's size. */
        memcpy(&magic, mem + START_INFO, 4);
        memcpy(&cmdline_paddr, mem + START_INFO + 24, 8);
        memcpy(&map_paddr, mem + START_INFO + 40, 8);
        memcpy(&n_map, mem + START_INFO + 48, 4);
        g_assert_cmphex(magic, ==, START_MAGIC);
        g_assert_cmpstr((const char *) mem + cmdline_paddr, ==, cmdline);
        g_assert_cmpuint(n_map, >=, 2);
        for (uint32_t i = 0; i < n_map; i++) {
                uint64_t addr, size;
                memcpy(&addr, mem + map_paddr + i * 24, 8);
                memcpy(&size, mem + map_paddr + i * 24 + 8, 8);
                g_assert_cmphex(addr, >=, last_end);
                last_end = addr + size;
        }
        g_assert_cmphex(last_end, ==, MEMORY_MIB << 20);

        /* PVH entry: RIP from the note, EBX = start_info, protected mode without paging. */
        g_assert_nonnull(memmem(elf, g_bytes_get_size(guest_elf), "Xen", 4));
        for (unsigned i = 0; i < eh->e_phnum; i++) {
                const Elf64_Phdr *p = (const Elf64_Phdr *) (elf + eh->e_phoff + i * sizeof(Elf64_Phdr));
                const uint8_t *n = elf + p->p_offset;
                if (p->p_type == PT_NOTE && memcmp(n + 12, "Xen", 4) == 0 && n[8] == 18)
                        memcpy(&entry, n + 16, 4);
        }
        g_assert_cmphex(entry, !=, 0);
        g_assert_cmphex(sv->fake.regs.rip, ==, entry);
        g_assert_cmphex(sv->fake.regs.rbx, ==, START_INFO);
        g_assert_cmphex(sv->fake.sregs.cr0 & 1, ==, 1);
        g_assert_cmphex(sv->fake.sregs.cr0 & 0x80000000u, ==, 0);
        g_assert_cmpuint(sv->fake.sregs.cs.db, ==, 1);
        g_assert_cmphex(sv->fake.sregs.cs.base, ==, 0);

        /* The guest's console driver: LSR says THR empty, THR writes go out. */
        g_assert_cmphex(vcpu_io(sv, &resumes, false, COM1 + 5, 1, 0) & 0x60, ==, 0x60);
        for (const char *c = "hello from the PVH vCPU\n"; *c; c++)
                vcpu_io(sv, &resumes, true, COM1, 1, (uint8_t) *c);
        g_assert_cmphex(vcpu_io(sv, &resumes, false, COM1 + 5, 1, 0) & 0x01, ==, 0); /* nothing received */
        g_assert_cmphex(vcpu_io(sv, &resumes, false, PM1A_CNT, 2, 0) & 1, ==, 1);      /* SCI_EN */

        /* ACPI S5: SLP_TYP 5, SLP_EN. The plugin ends without resuming. */
        memcpy(off.data, &(uint16_t) { 5 << 10 | 1 << 13 }, 2);
        g_assert_cmpint(plugin_server_vcpu_event(sv->s, 0, &off), ==, 0);
}

static void test_boots_the_test_guest_jailed(void) {
        const char *args[] = { "fd:4", G_STRINGIFY(MEMORY_MIB), "--cmdline=console=ttyS0 tg.x=1", NULL };
        g_autofree char *path = NULL;
        struct fake_server sv = {};
        pid_t pid;
        int fd;

        fd = fake_server_new(&sv);
        g_assert_cmpint(fd, >=, 0);
        path = create_plugin(args, "guest.elf", fd, &pid);
        close(fd);
        g_assert_cmpint(fake_server_start(&sv), ==, 0);
        play_vcpu(&sv, "console=ttyS0 tg.x=1");
        g_assert_true(harness_expect(dm.log_fd, dm.log, &dm.pos, "hello from the PVH vCPU", 5000));
        wait_ended(path, "exited", "exited with status 0", pid);
        g_assert_cmpint(fake_server_finish(&sv), ==, -ECONNRESET); /* the plugin's end hung up */
}

/* file in ELF_DIR as fd:4, or NULL: the plugin opens arg itself. */
static void expect_refused(const char *file, const char *arg, const char *message) {
        const char *args[] = { arg, G_STRINGIFY(MEMORY_MIB), NULL };
        g_autofree char *path = NULL;
        struct fake_server sv = {};
        pid_t pid;
        int fd;

        fd = fake_server_new(&sv);
        g_assert_cmpint(fd, >=, 0);
        path = create_plugin(args, file, fd, &pid);
        close(fd);
        g_assert_cmpint(fake_server_start(&sv), ==, 0);
        wait_ended(path, "failed", "exited with status 1", pid);
        if (!harness_expect(dm.log_fd, dm.log, &dm.pos, message, 5000))
                g_error("devmgr's log does not say '%s':\n%s", message, dm.log->str);
        g_assert_cmpint(fake_server_finish(&sv), ==, -ECONNRESET); /* the plugin's end hung up */
        /* Nothing of the VM was made. */
        g_assert_cmpuint(sv.fake.n_memory, ==, 0);
}

static void test_non_elf_is_refused(void) {
        expect_refused("not-an-elf", "fd:4", "fd:4: not an ELF file");
}

static void test_elf_without_pvh_note_is_refused(void) {
        expect_refused("no-pvh-note.elf", "fd:4", "fd:4: no PVH entry (Xen PHYS32_ENTRY note)");
}

static void test_segment_beyond_memory_is_refused(void) {
        expect_refused("too-big.elf", "fd:4", "is beyond guest memory");
}

static void test_missing_file_is_refused(void) {
        expect_refused(NULL, "/usr/polyvm-pvh-test/nonexistent.elf",
                       "Failed to read /usr/polyvm-pvh-test/nonexistent.elf: No such file");
}

/* The jail cannot open the test's ELF by its path (its directory is not
 * in the jail's root); only the fd reaches it. */
static void test_elf_by_path_outside_the_jail_is_refused(void) {
        g_autofree char *elf = g_build_filename(elf_dir, "guest.elf", NULL);
        g_autofree char *message = g_strdup_printf("Failed to read %s: No such file", elf);

        expect_refused(NULL, elf, message);
}

/* Not jailed: the ELF as an inherited memfd (fd:4), output on a pipe. */
static void test_elf_from_an_inherited_fd(void) {
        g_autofree char *exe = harness_build_path("plugins/polyvm-plugin-pvh");
        g_autoptr(GString) out = g_string_new(NULL);
        struct fake_server sv = {};
        size_t pos = 0;
        int fd, memfd, pipefd[2], status;
        pid_t pid;

        memfd = memfd_create("guest.elf", MFD_CLOEXEC);
        g_assert_cmpint(memfd, >=, 0);
        g_assert_cmpint(write(memfd, g_bytes_get_data(guest_elf, NULL), g_bytes_get_size(guest_elf)), ==,
                        (ssize_t) g_bytes_get_size(guest_elf));
        g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
        fd = fake_server_new(&sv);
        g_assert_cmpint(fd, >=, 0);
        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                /* dup2 clears close-on-exec on the copies. */
                if (dup2(pipefd[1], STDOUT_FILENO) < 0 || dup2(fd, 3) < 0 || dup2(memfd, 4) < 0)
                        _exit(126);
                execle(exe, exe, "fd:4", G_STRINGIFY(MEMORY_MIB), "--cmdline=console=ttyS0", NULL,
                       (char *[]) { (char *) "POLYVM_PLUGIN_FD=3", NULL });
                _exit(127);
        }
        close(fd);
        close(memfd);
        close(pipefd[1]);
        g_assert_cmpint(fake_server_start(&sv), ==, 0);
        play_vcpu(&sv, "console=ttyS0");
        g_assert_true(harness_expect(pipefd[0], out, &pos, "hello from the PVH vCPU\n", 5000));
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
        close(pipefd[0]);
        g_assert_cmpint(fake_server_finish(&sv), ==, -ECONNRESET); /* the plugin's end hung up */
}

int main(int argc, char *argv[]) {
        int r;

        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/plugin-pvh/boots-the-test-guest-jailed", test_boots_the_test_guest_jailed);
        g_test_add_func("/plugin-pvh/non-elf-is-refused", test_non_elf_is_refused);
        g_test_add_func("/plugin-pvh/elf-without-pvh-note-is-refused", test_elf_without_pvh_note_is_refused);
        g_test_add_func("/plugin-pvh/segment-beyond-memory-is-refused", test_segment_beyond_memory_is_refused);
        g_test_add_func("/plugin-pvh/missing-file-is-refused", test_missing_file_is_refused);
        g_test_add_func("/plugin-pvh/elf-by-path-outside-the-jail-is-refused",
                        test_elf_by_path_outside_the_jail_is_refused);
        g_test_add_func("/plugin-pvh/elf-from-an-inherited-fd", test_elf_from_an_inherited_fd);
        elf_files_setup();
        harness_start(&h);
        harness_devmgr_start(&h, &dm);
        r = g_test_run();
        harness_devmgr_stop(&dm);
        harness_stop(&h);
        elf_files_teardown();
        return r;
}
