/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "bus-errors.h"
#include "vm-swap.h"
#include "vm.h"

int vm_swap_forward(struct vm *vm, const char *member, sd_bus_error *error) {
        int r;

        if (!vm->memory_object)
                return sd_bus_error_setf(error, POLYVM_ERROR_BAD_STATE, "VM %s has no guest memory", vm->name);
        /* memmgr answers at once: the work runs in its loop. */
        r = sd_bus_call_method(vm->launcher->bus, "org.polyvm.MemoryManager1", vm->memory_object,
                               "org.polyvm.Memory1", member, error, NULL, "");
        return r < 0 ? r : 0;
}
