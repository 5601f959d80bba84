/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The private bus activates each service on first call, and every service
 * leaves when its bus goes away (PID 1 here reaps nothing, so a service
 * that lingered would stay forever). */

#include <string.h>

#include "harness.h"

static const char *const services[][2] = {
        { "org.polyvm.Launcher1", "/org/polyvm/Launcher1" },
        { "org.polyvm.DeviceManager1", "/org/polyvm/DeviceManager1" },
        { "org.polyvm.MemoryManager1", "/org/polyvm/MemoryManager1" },
};

static void test_services_activate_and_exit_with_their_bus(void) {
        struct harness h;
        pid_t pids[G_N_ELEMENTS(services)];

        harness_start(&h);
        for (size_t i = 0; i < G_N_ELEMENTS(services); i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;

                g_assert_cmpint(harness_name_pid(&h, services[i][0]), ==, 0);
                /* Any call activates the service. */
                g_assert_cmpint(sd_bus_call_method(h.bus, services[i][0], services[i][1],
                                                   "org.freedesktop.DBus.Peer", "Ping", &error, &reply, ""), >=, 0);
                sd_bus_message_unref(reply);
                pids[i] = harness_name_pid(&h, services[i][0]);
                g_assert_cmpint(pids[i], >, 0);
                g_assert_true(harness_pid_alive(pids[i]));
        }
        harness_stop(&h);
        for (size_t i = 0; i < G_N_ELEMENTS(services); i++) {
                g_test_message("%s (pid %d)", services[i][0], (int) pids[i]);
                g_assert_true(harness_wait_pid_gone(pids[i], 5000));
        }
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/bus/services-activate-and-exit-with-their-bus", test_services_activate_and_exit_with_their_bus);
        return g_test_run();
}
