/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The per-VM uffd list with fake uffds (eventfds): static and dynamic
 * entries, the one-time static count, tokens equal to indexes, and garbage
 * collection by swap-remove with the moved entry's token rewritten. */
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "uffd-list.h" /* before glib.h, whose MIN/MAX win */
#include <glib.h>

/* Which fake uffds the fake checker calls dead, by fd number. */
static bool dead_fds[4096];

static int fake_uffd(void) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(fd, <, (int) G_N_ELEMENTS(dead_fds));
        dead_fds[fd] = false;
        return fd;
}

static void make_readable(int fd) {
        g_assert_cmpint(eventfd_write(fd, 1), ==, 0);
}

static void mark_dead(int fd) {
        dead_fds[fd] = true;
}

static bool fake_is_dead(const struct uffd_entry *e, void *userdata) {
        unsigned *calls = userdata;
        if (calls)
                (*calls)++;
        return dead_fds[e->fd];
}

static struct uffd_list *new_list(int *ret_main) {
        struct uffd_list *l = NULL;
        int fd = fake_uffd();

        g_assert_cmpint(uffd_list_new(fd, 100, -1, &l), ==, 0);
        if (ret_main)
                *ret_main = fd;
        return l;
}

/* Registers a fresh fake uffd; returns its fd, asserts index and kind. */
static int register_fake(struct uffd_list *l, uint32_t want_index, bool want_static) {
        int fd = fake_uffd();
        uint32_t index = UINT32_MAX;
        bool is_static = !want_static;

        g_assert_cmpint(uffd_list_register(l, fd, 200 + (pid_t) want_index, -1, &index, &is_static), ==, 0);
        g_assert_cmpuint(index, ==, want_index);
        g_assert_cmpint(is_static, ==, want_static);
        return fd;
}

/* Waits briefly and returns the single event's token (fails on 0 or >1). */
static uint32_t single_event(struct uffd_list *l) {
        uint32_t tokens[8];
        int n = uffd_list_wait(l, 10, tokens, G_N_ELEMENTS(tokens));
        g_assert_cmpint(n, ==, 1);
        return tokens[0];
}

static int fd_of_event(struct uffd_list *l) {
        struct uffd_entry *e = uffd_list_get(l, single_event(l));
        g_assert_nonnull(e);
        return e->fd;
}

static void test_new_puts_main_uffd_at_index_0(void) {
        int main_fd;
        struct uffd_list *l = new_list(&main_fd);

        g_assert_cmpuint(uffd_list_size(l), ==, 1);
        g_assert_cmpint(uffd_list_get(l, 0)->fd, ==, main_fd);
        g_assert_cmpint(uffd_list_get(l, 0)->pid, ==, 100);
        g_assert_true(uffd_list_get(l, 0)->is_static);
        g_assert_null(uffd_list_get(l, 1));
        uffd_list_free(l);
}

static void test_new_rejects_bad_fd_and_keeps_nothing(void) {
        struct uffd_list *l = NULL;
        g_assert_cmpint(uffd_list_new(-1, 1, -1, &l), ==, -EBADF);
        g_assert_null(l);
}

static void test_register_before_static_count_is_static(void) {
        struct uffd_list *l = new_list(NULL);

        register_fake(l, 1, true);
        register_fake(l, 2, true);
        uffd_list_free(l);
}

static void test_register_after_static_count_is_dynamic_past_n_plus_1(void) {
        struct uffd_list *l = new_list(NULL);

        register_fake(l, 1, true);
        g_assert_cmpint(uffd_list_set_num_static_devices(l, 2), ==, 0);
        register_fake(l, 2, true);  /* within the first 2 + 1 */
        register_fake(l, 3, false); /* hot-plugged */
        register_fake(l, 4, false);
        uffd_list_free(l);
}

static void test_set_num_static_devices_twice_fails_and_changes_nothing(void) {
        struct uffd_list *l = new_list(NULL);

        g_assert_cmpint(uffd_list_set_num_static_devices(l, 2), ==, 0);
        g_assert_cmpint(uffd_list_set_num_static_devices(l, 2), ==, -EALREADY);
        g_assert_cmpint(uffd_list_set_num_static_devices(l, 5), ==, -EALREADY);
        /* Still 2 + 1 static. */
        register_fake(l, 1, true);
        register_fake(l, 2, true);
        register_fake(l, 3, false);
        uffd_list_free(l);
}

static void test_set_num_static_devices_rejects_huge_n_and_stays_settable(void) {
        struct uffd_list *l = new_list(NULL);

        g_assert_cmpint(uffd_list_set_num_static_devices(l, UINT32_MAX), ==, -ERANGE);
        g_assert_cmpint(uffd_list_set_num_static_devices(l, UFFD_LIST_MAX), ==, -ERANGE);
        g_assert_false(l->n_static_set);
        g_assert_cmpint(uffd_list_set_num_static_devices(l, 0), ==, 0);
        register_fake(l, 1, false);
        uffd_list_free(l);
}

static void test_entries_registered_before_count_stay_static_beyond_it(void) {
        struct uffd_list *l = new_list(NULL);
        int fds[3];

        for (uint32_t i = 0; i < 3; i++)
                fds[i] = register_fake(l, i + 1, true);
        g_assert_cmpint(uffd_list_set_num_static_devices(l, 0), ==, 0);
        register_fake(l, 4, false);
        for (int i = 0; i < 3; i++)
                mark_dead(fds[i]);
        g_assert_cmpint(uffd_list_gc(l, fake_is_dead, NULL), ==, 0);
        g_assert_cmpuint(uffd_list_size(l), ==, 5);
        uffd_list_free(l);
}

static void test_register_rejects_bad_fd_and_too_many(void) {
        struct uffd_list *l = new_list(NULL);
        uint32_t index = 7;
        int fd;

        g_assert_cmpint(uffd_list_register(l, -1, 1, -1, &index, NULL), ==, -EBADF);
        g_assert_cmpuint(index, ==, 7);
        /* A closed fd: epoll refuses it, the list is unchanged. */
        fd = fake_uffd();
        close(fd);
        g_assert_cmpint(uffd_list_register(l, fd, 1, -1, NULL, NULL), ==, -EBADF);
        g_assert_cmpuint(uffd_list_size(l), ==, 1);

        for (uint32_t i = 1; i < UFFD_LIST_MAX; i++)
                register_fake(l, i, true);
        fd = fake_uffd();
        g_assert_cmpint(uffd_list_register(l, fd, 1, -1, NULL, NULL), ==, -E2BIG);
        g_assert_cmpuint(uffd_list_size(l), ==, UFFD_LIST_MAX);
        close(fd);
        uffd_list_free(l);
}

static void test_event_token_is_the_index_of_the_readable_uffd(void) {
        struct uffd_list *l = new_list(NULL);
        uint32_t tokens[8];
        int rd2;

        register_fake(l, 1, true);
        rd2 = register_fake(l, 2, true);
        register_fake(l, 3, true);
        g_assert_cmpint(uffd_list_wait(l, 0, tokens, G_N_ELEMENTS(tokens)), ==, 0);

        make_readable(rd2);
        g_assert_cmpuint(single_event(l), ==, 2);
        make_readable(uffd_list_get(l, 0)->fd);
        make_readable(uffd_list_get(l, 3)->fd);
        g_assert_cmpint(uffd_list_wait(l, 10, tokens, G_N_ELEMENTS(tokens)), ==, 3);
        uffd_list_free(l);
}

static void test_gc_with_all_alive_keeps_everything(void) {
        struct uffd_list *l = new_list(NULL);
        unsigned calls = 0;

        g_assert_cmpint(uffd_list_set_num_static_devices(l, 1), ==, 0);
        register_fake(l, 1, true);
        register_fake(l, 2, false);
        register_fake(l, 3, false);
        g_assert_cmpint(uffd_list_gc(l, fake_is_dead, &calls), ==, 0);
        g_assert_cmpuint(uffd_list_size(l), ==, 4);
        /* Only the dynamic entries are looked at. */
        g_assert_cmpuint(calls, ==, 2);
        uffd_list_free(l);
}

static void test_gc_never_collects_a_dead_static_uffd(void) {
        struct uffd_list *l = new_list(NULL);
        int rd2;

        g_assert_cmpint(uffd_list_set_num_static_devices(l, 2), ==, 0);
        register_fake(l, 1, true);
        rd2 = register_fake(l, 2, true);
        register_fake(l, 3, false);
        mark_dead(rd2);
        mark_dead(uffd_list_get(l, 0)->fd);
        g_assert_cmpint(uffd_list_gc(l, fake_is_dead, NULL), ==, 0);
        g_assert_cmpuint(uffd_list_size(l), ==, 4);
        g_assert_cmpint(uffd_list_get(l, 2)->fd, ==, rd2);
        uffd_list_free(l);
}

static void test_gc_before_static_count_collects_nothing(void) {
        struct uffd_list *l = new_list(NULL);

        mark_dead(register_fake(l, 1, true));
        g_assert_cmpint(uffd_list_gc(l, fake_is_dead, NULL), ==, 0);
        g_assert_cmpuint(uffd_list_size(l), ==, 2);
        uffd_list_free(l);
}

static void test_gc_swap_removes_dead_dynamic_uffd_and_renumbers(void) {
        struct uffd_list *l = new_list(NULL);
        int rd2, rd3;

        g_assert_cmpint(uffd_list_set_num_static_devices(l, 1), ==, 0);
        register_fake(l, 1, true);
        rd2 = register_fake(l, 2, false);
        rd3 = register_fake(l, 3, false);
        mark_dead(rd2);

        g_assert_cmpint(uffd_list_gc(l, fake_is_dead, NULL), ==, 1);
        g_assert_cmpuint(uffd_list_size(l), ==, 3);
        /* The last entry moved into the hole, with its pid. */
        g_assert_cmpint(uffd_list_get(l, 2)->fd, ==, rd3);
        g_assert_cmpint(uffd_list_get(l, 2)->pid, ==, 203);
        g_assert_false(uffd_list_get(l, 2)->is_static);
        /* The collected fd is closed. */
        g_assert_cmpint(fcntl(rd2, F_GETFD), ==, -1);
        g_assert_cmpint(errno, ==, EBADF);

        make_readable(rd3);
        g_assert_cmpint(fd_of_event(l), ==, rd3);
        uffd_list_free(l);
}

static void test_gc_moved_uffd_readable_before_gc_reports_new_index(void) {
        struct uffd_list *l = new_list(NULL);
        int rd2, rd3;

        g_assert_cmpint(uffd_list_set_num_static_devices(l, 1), ==, 0);
        register_fake(l, 1, true);
        rd2 = register_fake(l, 2, false);
        rd3 = register_fake(l, 3, false);
        mark_dead(rd2);
        /* Readable under token 3 before the collection moves it to 2. */
        make_readable(rd3);

        g_assert_cmpint(uffd_list_gc(l, fake_is_dead, NULL), ==, 1);
        g_assert_cmpuint(uffd_list_size(l), ==, 3);
        g_assert_cmpuint(single_event(l), ==, 2);
        g_assert_cmpint(uffd_list_get(l, 2)->fd, ==, rd3);
        uffd_list_free(l);
}

static void test_gc_dead_uffd_readable_before_gc_leaves_no_event(void) {
        struct uffd_list *l = new_list(NULL);
        uint32_t tokens[8];
        int rd2;

        g_assert_cmpint(uffd_list_set_num_static_devices(l, 1), ==, 0);
        register_fake(l, 1, true);
        rd2 = register_fake(l, 2, false);
        register_fake(l, 3, false);
        make_readable(rd2);
        mark_dead(rd2);

        g_assert_cmpint(uffd_list_gc(l, fake_is_dead, NULL), ==, 1);
        g_assert_cmpint(uffd_list_wait(l, 10, tokens, G_N_ELEMENTS(tokens)), ==, 0);
        uffd_list_free(l);
}

static void test_gc_many_dead_dynamic_uffds(void) {
        struct uffd_list *l = new_list(NULL);
        int rd[6];

        g_assert_cmpint(uffd_list_set_num_static_devices(l, 0), ==, 0);
        for (uint32_t i = 1; i <= 5; i++)
                rd[i] = register_fake(l, i, false);
        mark_dead(rd[2]);
        mark_dead(rd[3]);
        mark_dead(rd[5]);

        g_assert_cmpint(uffd_list_gc(l, fake_is_dead, NULL), ==, 3);
        g_assert_cmpuint(uffd_list_size(l), ==, 3);
        /* Every survivor answers to its own index. */
        for (uint32_t i = 0; i < uffd_list_size(l); i++) {
                int fd = uffd_list_get(l, i)->fd;
                g_assert_true(fd == uffd_list_get(l, 0)->fd || fd == rd[1] || fd == rd[4]);
                make_readable(fd);
                g_assert_cmpuint(single_event(l), ==, i);
                eventfd_t v;
                g_assert_cmpint(eventfd_read(fd, &v), ==, 0);
        }
        make_readable(rd[4]);
        g_assert_cmpint(fd_of_event(l), ==, rd[4]);
        uffd_list_free(l);
}

static void test_gc_all_dynamic_dead_including_last(void) {
        struct uffd_list *l = new_list(NULL);

        g_assert_cmpint(uffd_list_set_num_static_devices(l, 0), ==, 0);
        for (uint32_t i = 1; i <= 4; i++)
                mark_dead(register_fake(l, i, false));
        g_assert_cmpint(uffd_list_gc(l, fake_is_dead, NULL), ==, 4);
        g_assert_cmpuint(uffd_list_size(l), ==, 1);
        /* Indexes are reused from where the list ends. */
        register_fake(l, 1, false);
        uffd_list_free(l);
}

/* Swap addresses each mapping by its own entry's base: the base (and
 * whether swap registered it) moves with the entry in a collection. */
static void test_moved_entry_keeps_its_base(void) {
        struct uffd_list *l = new_list(NULL);
        int a, b, c;

        g_assert_cmpint(uffd_list_set_num_static_devices(l, 0), ==, 0);
        a = register_fake(l, 1, false);
        b = register_fake(l, 2, false);
        c = register_fake(l, 3, false);
        uffd_list_get(l, 0)->base = 0x100000;
        uffd_list_get(l, 1)->base = 0x200000;
        uffd_list_get(l, 2)->base = 0x300000;
        uffd_list_get(l, 3)->base = 0x400000;
        uffd_list_get(l, 3)->registered = true;
        dead_fds[a] = true;
        g_assert_cmpint(uffd_list_gc(l, fake_is_dead, NULL), ==, 1);
        g_assert_cmpuint(uffd_list_size(l), ==, 3);
        g_assert_cmphex(uffd_list_get(l, 0)->base, ==, 0x100000);
        g_assert_cmpint(uffd_list_get(l, 1)->fd, ==, c);
        g_assert_cmphex(uffd_list_get(l, 1)->base, ==, 0x400000);
        g_assert_true(uffd_list_get(l, 1)->registered);
        g_assert_cmpint(uffd_list_get(l, 2)->fd, ==, b);
        g_assert_cmphex(uffd_list_get(l, 2)->base, ==, 0x300000);
        g_assert_false(uffd_list_get(l, 2)->registered);
        dead_fds[a] = false;
        uffd_list_free(l);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/uffd-list/moved-entry-keeps-its-base", test_moved_entry_keeps_its_base);
        g_test_add_func("/uffd-list/new-puts-main-uffd-at-index-0", test_new_puts_main_uffd_at_index_0);
        g_test_add_func("/uffd-list/new-rejects-bad-fd-and-keeps-nothing", test_new_rejects_bad_fd_and_keeps_nothing);
        g_test_add_func("/uffd-list/register-before-static-count-is-static", test_register_before_static_count_is_static);
        g_test_add_func("/uffd-list/register-after-static-count-is-dynamic-past-n-plus-1",
                        test_register_after_static_count_is_dynamic_past_n_plus_1);
        g_test_add_func("/uffd-list/set-num-static-devices-twice-fails-and-changes-nothing",
                        test_set_num_static_devices_twice_fails_and_changes_nothing);
        g_test_add_func("/uffd-list/set-num-static-devices-rejects-huge-n-and-stays-settable",
                        test_set_num_static_devices_rejects_huge_n_and_stays_settable);
        g_test_add_func("/uffd-list/entries-registered-before-count-stay-static-beyond-it",
                        test_entries_registered_before_count_stay_static_beyond_it);
        g_test_add_func("/uffd-list/register-rejects-bad-fd-and-too-many", test_register_rejects_bad_fd_and_too_many);
        g_test_add_func("/uffd-list/event-token-is-the-index-of-the-readable-uffd",
                        test_event_token_is_the_index_of_the_readable_uffd);
        g_test_add_func("/uffd-list/gc-with-all-alive-keeps-everything", test_gc_with_all_alive_keeps_everything);
        g_test_add_func("/uffd-list/gc-never-collects-a-dead-static-uffd", test_gc_never_collects_a_dead_static_uffd);
        g_test_add_func("/uffd-list/gc-before-static-count-collects-nothing",
                        test_gc_before_static_count_collects_nothing);
        g_test_add_func("/uffd-list/gc-swap-removes-dead-dynamic-uffd-and-renumbers",
                        test_gc_swap_removes_dead_dynamic_uffd_and_renumbers);
        g_test_add_func("/uffd-list/gc-moved-uffd-readable-before-gc-reports-new-index",
                        test_gc_moved_uffd_readable_before_gc_reports_new_index);
        g_test_add_func("/uffd-list/gc-dead-uffd-readable-before-gc-leaves-no-event",
                        test_gc_dead_uffd_readable_before_gc_leaves_no_event);
        g_test_add_func("/uffd-list/gc-many-dead-dynamic-uffds", test_gc_many_dead_dynamic_uffds);
        g_test_add_func("/uffd-list/gc-all-dynamic-dead-including-last", test_gc_all_dynamic_dead_including_last);
        return g_test_run();
}
