/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.polyvm.Vcpu1: read on the bus thread while the vCPU thread runs, so
 * every value comes from an atomic. */

#include <stddef.h>

#include "log.h"
#include "vcpu-internal.h"

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vcpu *v = userdata;

        return sd_bus_message_append(reply, "s", vcpu_state_to_string((enum vcpu_state) atomic_load(&v->state)));
}

static int append_counters(sd_bus_message *reply, _Atomic uint64_t *counters, size_t n,
                           const char *(*name_of)(unsigned)) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{st}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                const char *name = name_of((unsigned) i);

                if (!name)
                        continue;
                r = sd_bus_message_append(reply, "{st}", name,
                                          atomic_load_explicit(&counters[i], memory_order_relaxed));
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_exit_counts(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vcpu *v = userdata;

        return append_counters(reply, v->exit_counts, _VCPU_COUNT_MAX, vcpu_exit_count_name);
}

static const char *emulated_name(unsigned i) {
        return emulate_insn_to_string((enum emulate_insn) i);
}

static int property_get_emulated(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vcpu *v = userdata;

        return append_counters(reply, v->emulated, _EMULATE_INSN_MAX, emulated_name);
}

static const sd_bus_vtable vcpu_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Index", "u", NULL, offsetof(struct vcpu, index), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, 0),
        SD_BUS_PROPERTY("ExitCounts", "a{st}", property_get_exit_counts, 0, 0),
        SD_BUS_PROPERTY("EmulatedInstructions", "a{st}", property_get_emulated, 0, 0),
        SD_BUS_VTABLE_END,
};

int vcpu_bus_add(struct vcpu *v, sd_bus *bus, const char *path) {
        int r;

        if (v->slot)
                return log_error_errno(EEXIST, "vCPU %u is already on the bus", v->index);

        r = sd_bus_add_object_vtable(bus, &v->slot, path, "org.polyvm.Vcpu1", vcpu_vtable, v);
        if (r < 0)
                return log_error_errno(r, "Failed to publish vCPU %u at %s: %m", v->index, path);
        return 0;
}
