/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <string.h>

#include "device.h"

#define DEVICE_KINDS_MAX 32

static const struct device_kind *kinds[DEVICE_KINDS_MAX];
static size_t n_kinds;

void device_kind_register(const struct device_kind *kind) {
        size_t i;

        /* Called from constructors: a programmer error, not input. */
        assert(n_kinds < DEVICE_KINDS_MAX);
        assert(!device_kind_find(kind->name));

        /* Keep them sorted so that Kinds is stable whatever the link order. */
        for (i = n_kinds; i > 0 && strcmp(kinds[i - 1]->name, kind->name) > 0; i--)
                kinds[i] = kinds[i - 1];
        kinds[i] = kind;
        n_kinds++;
}

const struct device_kind *device_kind_find(const char *name) {
        for (size_t i = 0; i < n_kinds; i++)
                if (strcmp(kinds[i]->name, name) == 0)
                        return kinds[i];
        return NULL;
}

const struct device_kind *const *device_kind_list(size_t *n) {
        *n = n_kinds;
        return kinds;
}
