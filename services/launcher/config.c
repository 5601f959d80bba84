/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "json-util.h"
#include "layout.h"
#include "macro.h"

/* Smallest guest we accept: room for the boot area, a kernel and its
 * decompression buffer. Any whole MiB from here up is fine. */
#define CONFIG_MIN_MEMORY_MIB 16

const char *const vm_config_default_devices[CONFIG_N_DEFAULT_DEVICES] = { "serial", "rtc" };

static void strv_free(char **l) {
        for (char **i = l; i && *i; i++)
                free(*i);
        free(l);
}

void vm_config_done(struct vm_config *c) {
        if (!c)
                return;
        free(c->plugin.path);
        strv_free(c->plugin.args);
        strv_free(c->plugin.extra_syscalls);
        strv_free(c->plugin.files);
        free(c->console);
        free(c->kernel);
        free(c->initrd);
        free(c->cmdline);
        for (size_t i = 0; i < c->n_devices; i++) {
                free(c->devices[i].kind);
                free(c->devices[i].config_json);
        }
        *c = (struct vm_config) {};
}

bool vm_name_is_valid(const char *name) {
        size_t n;

        if (!name || name[0] == '\0' || name[0] == '.')
                return false;
        n = strlen(name);
        if (n > CONFIG_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '.' || c == '-'))
                        return false;
        }
        return true;
}

/* json-c keeps embedded NULs; a C string would silently cut them off. */
static int check_string(json_object *obj, const char *field, const char *value, bool absolute_path, char *err,
                        size_t errlen) {
        json_object *v;

        if (!value)
                return 0;
        if (json_object_object_get_ex(obj, field, &v) && (size_t) json_object_get_string_len(v) != strlen(value)) {
                snprintf(err, errlen, "config.%s: must not contain a NUL character", field);
                return -EINVAL;
        }
        if (absolute_path && value[0] != '/') {
                snprintf(err, errlen, "config.%s: \"%s\" must be an absolute path", field, value);
                return -EINVAL;
        }
        return 0;
}

static int parse_devices(json_object *array, struct vm_config *c, char *err, size_t errlen) {
        size_t n = json_object_array_length(array);

        if (n > CONFIG_MAX_DEVICES) {
                snprintf(err, errlen, "config.devices: %zu devices is more than the limit of %d", n,
                         CONFIG_MAX_DEVICES);
                return -EINVAL;
        }

        for (size_t i = 0; i < n; i++) {
                json_object *d = json_object_array_get_idx(array, i), *kind, *own = NULL;
                const char *json;
                char *k, *j;

                if (!json_object_is_type(d, json_type_object)) {
                        snprintf(err, errlen, "config.devices[%zu]: must be an object, not %s", i,
                                 json_type_to_name(json_object_get_type(d)));
                        return -EINVAL;
                }
                if (!json_object_object_get_ex(d, "kind", &kind)) {
                        snprintf(err, errlen, "config.devices[%zu].kind: missing required field", i);
                        return -EINVAL;
                }
                if (!json_object_is_type(kind, json_type_string)) {
                        snprintf(err, errlen, "config.devices[%zu].kind: must be a string, not %s", i,
                                 json_type_to_name(json_object_get_type(kind)));
                        return -EINVAL;
                }
                if (json_object_get_string_len(kind) == 0 ||
                    (size_t) json_object_get_string_len(kind) != strlen(json_object_get_string(kind))) {
                        snprintf(err, errlen, "config.devices[%zu].kind: %s must be a non-empty name", i,
                                 json_object_to_json_string(kind));
                        return -EINVAL;
                }

                /* The other fields belong to the device model: devmgr validates them. */
                if (json_object_deep_copy(d, &own, NULL) < 0)
                        return -ENOMEM;
                json_object_object_del(own, "kind");
                json = json_object_to_json_string_ext(own, JSON_C_TO_STRING_PLAIN);
                k = strdup(json_object_get_string(kind));
                j = json ? strdup(json) : NULL;
                json_object_put(own);
                if (!k || !j) {
                        free(k);
                        free(j);
                        return -ENOMEM;
                }
                c->devices[i] = (struct device_config) { .kind = k, .config_json = j };
                c->n_devices = i + 1;
        }
        return 0;
}

/* An array of strings (no NULs, each at most max_bytes) as a
 * NULL-terminated list; where is e.g. "config.plugin.args". */
static int parse_strv(json_object *array, const char *where, size_t max, size_t max_bytes, char ***ret,
                      size_t *ret_n, char *err, size_t errlen) {
        size_t n = array ? json_object_array_length(array) : 0;
        char **l;

        if (n > max) {
                snprintf(err, errlen, "%s: %zu entries is more than the limit of %zu", where, n, max);
                return -EINVAL;
        }
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(array, i);
                size_t len;

                if (!json_object_is_type(e, json_type_string)) {
                        snprintf(err, errlen, "%s[%zu]: must be a string, not %s", where, i,
                                 json_type_to_name(json_object_get_type(e)));
                        strv_free(l);
                        return -EINVAL;
                }
                len = (size_t) json_object_get_string_len(e);
                if (len != strlen(json_object_get_string(e))) {
                        snprintf(err, errlen, "%s[%zu]: must not contain a NUL character", where, i);
                        strv_free(l);
                        return -EINVAL;
                }
                if (len > max_bytes) {
                        snprintf(err, errlen, "%s[%zu]: %zu bytes is longer than the limit of %zu bytes", where, i,
                                 len, max_bytes);
                        strv_free(l);
                        return -EINVAL;
                }
                l[i] = strdup(json_object_get_string(e));
                if (!l[i]) {
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

/* "plugin.files": absolute, distinct paths. Whether each is a readable
 * regular file is checked when the launcher opens it (CreateVm, Start). */
static int check_plugin_files(const struct plugin_config *p, char *err, size_t errlen) {
        for (size_t i = 0; i < p->n_files; i++) {
                if (p->files[i][0] != '/') {
                        snprintf(err, errlen, "config.plugin.files[%zu]: \"%s\" must be an absolute path", i,
                                 p->files[i]);
                        return -EINVAL;
                }
                for (size_t j = 0; j < i; j++)
                        if (strcmp(p->files[i], p->files[j]) == 0) {
                                snprintf(err, errlen,
                                         "config.plugin.files[%zu]: \"%s\" is already files[%zu] (each file once)",
                                         i, p->files[i], j);
                                return -EINVAL;
                        }
        }
        return 0;
}

/* "plugin": {"path", "args", "extra_syscalls", "files", "irqchip"}. */
static int parse_plugin(json_object *obj, struct plugin_config *p, char *err, size_t errlen) {
        _cleanup_(json_object_putp) json_object *args = NULL, *extra = NULL, *files = NULL;
        json_object *path_obj;
        bool irqchip = true;
        int r;

        const struct json_field fields[] = {
                { "path", JSON_FIELD_STRING, true, &p->path },
                { "args", JSON_FIELD_ARRAY, false, &args },
                { "extra_syscalls", JSON_FIELD_ARRAY, false, &extra },
                { "files", JSON_FIELD_ARRAY, false, &files },
                { "irqchip", JSON_FIELD_BOOL, false, &irqchip },
        };

        r = json_parse_fields(obj, "config.plugin", fields, ELEMENTSOF(fields), err, errlen);
        if (r < 0)
                return r;
        if (json_object_object_get_ex(obj, "path", &path_obj) &&
            (size_t) json_object_get_string_len(path_obj) != strlen(p->path)) {
                snprintf(err, errlen, "config.plugin.path: must not contain a NUL character");
                return -EINVAL;
        }
        if (p->path[0] != '/') {
                snprintf(err, errlen, "config.plugin.path: \"%s\" must be an absolute path", p->path);
                return -EINVAL;
        }
        r = parse_strv(args, "config.plugin.args", CONFIG_PLUGIN_MAX_ARGS, CONFIG_PLUGIN_MAX_ARG_BYTES, &p->args,
                       &p->n_args, err, errlen);
        if (r < 0)
                return r;
        /* Whether libseccomp knows a name, and the deny list, are devmgr's
         * checks (CreatePlugin): its named error reaches the caller. */
        r = parse_strv(extra, "config.plugin.extra_syscalls", CONFIG_PLUGIN_MAX_EXTRA_SYSCALLS, 64,
                       &p->extra_syscalls, &p->n_extra_syscalls, err, errlen);
        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n_extra_syscalls; i++)
                if (p->extra_syscalls[i][0] == '\0') {
                        snprintf(err, errlen, "config.plugin.extra_syscalls[%zu]: must be a system call name, not \"\"", i);
                        return -EINVAL;
                }
        r = parse_strv(files, "config.plugin.files", CONFIG_PLUGIN_MAX_FILES, CONFIG_PLUGIN_MAX_FILE_BYTES, &p->files,
                       &p->n_files, err, errlen);
        if (r < 0)
                return r;
        r = check_plugin_files(p, err, errlen);
        if (r < 0)
                return r;
        p->irqchip = irqchip;
        return 0;
}

/* A plugin VM's devices are the plugin's, and it loads its own guest. */
static int check_plugin_conflicts(json_object *obj, char *err, size_t errlen) {
        static const char *const conflicting[] = { "kernel", "initrd", "cmdline", "devices", "console" };

        for (size_t i = 0; i < ELEMENTSOF(conflicting); i++)
                if (json_object_object_get_ex(obj, conflicting[i], NULL)) {
                        snprintf(err, errlen,
                                 "config.plugin: conflicts with config.%s: a plugin VM has no kernel, devices or console of polyvm's (the plugin provides them)",
                                 conflicting[i]);
                        return -EINVAL;
                }
        return 0;
}

/* "console" names the kind of a device the VM has: one of devices, or of
 * the default set when there is no "devices". Whether that kind takes a
 * console only devmgr's model knows; the launcher checks that at CreateVm. */
static int check_console(const struct vm_config *c, bool has_devices, char *err, size_t errlen) {
        size_t n = has_devices ? c->n_devices : CONFIG_N_DEFAULT_DEVICES;

        if (c->console[0] == '\0') {
                snprintf(err, errlen, "config.console: must be a device kind, not \"\"");
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++)
                if (strcmp(has_devices ? c->devices[i].kind : vm_config_default_devices[i], c->console) == 0)
                        return 0;
        if (!has_devices)
                snprintf(err, errlen,
                         "config.console: \"%s\" is not the kind of any device: without \"devices\" the VM has %s, %s",
                         c->console, vm_config_default_devices[0], vm_config_default_devices[1]);
        else if (c->n_devices == 0)
                snprintf(err, errlen, "config.console: \"%s\" is not the kind of any device: \"devices\" is empty",
                         c->console);
        else
                snprintf(err, errlen, "config.console: \"%s\" is not the kind of any entry in \"devices\"",
                         c->console);
        return -EINVAL;
}

int vm_config_parse(const char *text, uint64_t host_memory_bytes, struct vm_config *ret, char *err,
                    size_t errlen) {
        _cleanup_(json_object_putp) json_object *obj = NULL, *devices = NULL, *plugin = NULL;
        _cleanup_(vm_config_done) struct vm_config c = {};
        _cleanup_free_ char *on_reboot = NULL, *on_device_failure = NULL;
        uint64_t cid = 0;
        uint64_t vcpus = 1, memory_mib = CONFIG_DEFAULT_MEMORY_MIB, device_timeout_ms = CONFIG_DEFAULT_DEVICE_TIMEOUT_MS;
        int r;

        assert(text);
        assert(ret);

        const struct json_field fields[] = {
                { "vcpus", JSON_FIELD_UINT64, false, &vcpus, 1, CONFIG_MAX_VCPUS },
                { "memory_mib", JSON_FIELD_UINT64, false, &memory_mib, CONFIG_MIN_MEMORY_MIB,
                  LAYOUT_MAX_MEMORY >> 20 },
                { "kernel", JSON_FIELD_STRING, false, &c.kernel },
                { "initrd", JSON_FIELD_STRING, false, &c.initrd },
                { "cmdline", JSON_FIELD_STRING, false, &c.cmdline },
                { "devices", JSON_FIELD_ARRAY, false, &devices },
                { "on_reboot", JSON_FIELD_STRING, false, &on_reboot },
                { "on_device_failure", JSON_FIELD_STRING, false, &on_device_failure },
                { "device_timeout_ms", JSON_FIELD_UINT64, false, &device_timeout_ms, CONFIG_MIN_DEVICE_TIMEOUT_MS,
                  CONFIG_MAX_DEVICE_TIMEOUT_MS },
                { "cid", JSON_FIELD_UINT64, false, &cid, CONFIG_MIN_CID, CONFIG_MAX_CID },
                { "console", JSON_FIELD_STRING, false, &c.console },
                { "plugin", JSON_FIELD_OBJECT, false, &plugin },
        };

        r = json_parse_object(text, &obj, err, errlen);
        if (r < 0)
                return r;
        r = json_parse_fields(obj, "config", fields, ELEMENTSOF(fields), err, errlen);
        if (r < 0)
                return r;

        if (plugin) {
                r = check_plugin_conflicts(obj, err, errlen);
                if (r < 0)
                        return r;
                r = parse_plugin(plugin, &c.plugin, err, errlen);
                if (r < 0)
                        return r;
                /* Without memory_mib the plugin brings all guest memory. */
                if (!json_object_object_get_ex(obj, "memory_mib", NULL))
                        memory_mib = 0;
        } else if (!c.kernel) {
                snprintf(err, errlen, "config.kernel: missing required field (or \"plugin\" for a plugin VM)");
                return -EINVAL;
        }

        if (host_memory_bytes > 0 && memory_mib > (host_memory_bytes >> 20)) {
                snprintf(err, errlen, "config.memory_mib: %" PRIu64 " is more than the host's RAM (%" PRIu64 " MiB)",
                         memory_mib, host_memory_bytes >> 20);
                return -EINVAL;
        }

        r = check_string(obj, "kernel", c.kernel, true, err, errlen);
        if (r < 0)
                return r;
        r = check_string(obj, "initrd", c.initrd, true, err, errlen);
        if (r < 0)
                return r;
        r = check_string(obj, "cmdline", c.cmdline, false, err, errlen);
        if (r < 0)
                return r;
        if (c.cmdline && strlen(c.cmdline) >= LAYOUT_CMDLINE_MAX) {
                snprintf(err, errlen, "config.cmdline: %zu bytes is longer than the limit of %llu bytes",
                         strlen(c.cmdline), LAYOUT_CMDLINE_MAX - 1);
                return -EINVAL;
        }

        r = check_string(obj, "on_reboot", on_reboot, false, err, errlen);
        if (r < 0)
                return r;
        if (!on_reboot || strcmp(on_reboot, "stop") == 0)
                c.on_reboot = ON_REBOOT_STOP;
        else if (strcmp(on_reboot, "restart") == 0)
                c.on_reboot = ON_REBOOT_RESTART;
        else {
                snprintf(err, errlen, "config.on_reboot: \"%s\" is not one of \"stop\", \"restart\"", on_reboot);
                return -EINVAL;
        }

        r = check_string(obj, "on_device_failure", on_device_failure, false, err, errlen);
        if (r < 0)
                return r;
        if (!on_device_failure || strcmp(on_device_failure, "continue") == 0)
                c.on_device_failure = ON_DEVICE_FAILURE_CONTINUE;
        else if (strcmp(on_device_failure, "stop") == 0)
                c.on_device_failure = ON_DEVICE_FAILURE_STOP;
        else {
                snprintf(err, errlen, "config.on_device_failure: \"%s\" is not one of \"continue\", \"stop\"",
                         on_device_failure);
                return -EINVAL;
        }

        if (devices) {
                r = parse_devices(devices, &c, err, errlen);
                if (r < 0)
                        return r;
        }
        if (c.console) {
                r = check_string(obj, "console", c.console, false, err, errlen);
                if (r < 0)
                        return r;
                r = check_console(&c, devices != NULL, err, errlen);
                if (r < 0)
                        return r;
        }

        c.vcpus = (unsigned) vcpus;
        c.device_timeout_ms = (unsigned) device_timeout_ms;
        c.cid = (uint32_t) cid;
        c.memory_bytes = memory_mib << 20;
        *ret = c;
        c = (struct vm_config) {};
        return 0;
}
