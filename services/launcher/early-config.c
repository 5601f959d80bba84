/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "early-config.h"
#include "json-util.h"
#include "macro.h"

const char *const early_device_kinds[] = { "serial", "virtio-vsock", NULL };

/* /var is not mounted before local-fs.target. Lexical, then through
 * symlinks when the path resolves (a link into /var is just as absent). */
static bool path_is_under_var(const char *p) {
        char resolved[PATH_MAX];

        if (strcmp(p, "/var") == 0 || strncmp(p, "/var/", 5) == 0)
                return true;
        if (realpath(p, resolved) && (strcmp(resolved, "/var") == 0 || strncmp(resolved, "/var/", 5) == 0))
                return true;
        return false;
}

static bool kind_is_early(const char *kind) {
        for (size_t i = 0; early_device_kinds[i]; i++)
                if (strcmp(kind, early_device_kinds[i]) == 0)
                        return true;
        return false;
}

/* Any string anywhere in a device's fields that names a path under /var. */
static const char *find_var_string(json_object *o) {
        switch (json_object_get_type(o)) {
        case json_type_string:
                return path_is_under_var(json_object_get_string(o)) ? json_object_get_string(o) : NULL;
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(o); i++) {
                        const char *s = find_var_string(json_object_array_get_idx(o, i));
                        if (s)
                                return s;
                }
                return NULL;
        case json_type_object: {
                json_object_object_foreach(o, key, val) {
                        const char *s;
                        (void) key;
                        s = find_var_string(val);
                        if (s)
                                return s;
                }
                return NULL;
        }
        default:
                return NULL;
        }
}

int early_config_check(const char *text, const struct vm_config *c, char *err, size_t errlen) {
        _cleanup_(json_object_putp) json_object *root = NULL, *devices = NULL;
        int r;

        r = json_parse_object(text, &root, err, errlen);
        if (r < 0)
                return r;
        /* A plugin is an external program in /usr that devmgr spawns:
         * neither is there before file systems are mounted. */
        if (json_object_object_get_ex(root, "plugin", NULL)) {
                snprintf(err, errlen, "config.plugin: an early VM cannot be a plugin VM (its plugin lives in /usr, "
                         "which is not mounted yet); give it a kernel and devices instead");
                return -EINVAL;
        }
        if (json_object_object_get_ex(root, "cid", NULL)) {
                snprintf(err, errlen, "config.cid: an early VM takes its CID from the allowlist; remove the field");
                return -EINVAL;
        }
        if (!json_object_object_get_ex(root, "devices", &devices)) {
                snprintf(err, errlen, "config.devices: an early VM must list its devices (the default set includes rtc); use [{\"kind\": \"serial\"}]");
                return -EINVAL;
        }
        json_object_get(devices);
        for (size_t i = 0; i < c->n_devices; i++)
                if (!kind_is_early(c->devices[i].kind)) {
                        snprintf(err, errlen, "config.devices[%zu].kind: \"%s\" is not allowed in an early VM (only the serial console and virtio-vsock)",
                                 i, c->devices[i].kind);
                        return -EINVAL;
                }
        for (size_t i = 0; i < json_object_array_length(devices); i++) {
                const char *s = find_var_string(json_object_array_get_idx(devices, i));
                if (s) {
                        snprintf(err, errlen, "config.devices[%zu]: \"%s\" is under /var, which an early VM cannot use", i, s);
                        return -EINVAL;
                }
        }
        if (c->kernel && path_is_under_var(c->kernel)) {
                snprintf(err, errlen, "config.kernel: \"%s\" is under /var, which an early VM cannot use", c->kernel);
                return -EINVAL;
        }
        if (c->initrd && path_is_under_var(c->initrd)) {
                snprintf(err, errlen, "config.initrd: \"%s\" is under /var, which an early VM cannot use", c->initrd);
                return -EINVAL;
        }
        return 0;
}
