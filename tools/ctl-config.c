/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-config.h"
#include "json-util.h"

void ctl_run_default_name(unsigned long pid, char *buf, size_t size) {
        snprintf(buf, size, "run-%lu", pid);
}

static int add_string(json_object *obj, const char *key, const char *value) {
        json_object *v = json_object_new_string(value);

        if (!v)
                return -ENOMEM;
        if (json_object_object_add(obj, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_object(json_object *obj, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(obj, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* The launcher wants absolute paths: it does not run in our directory. */
static int add_path(json_object *obj, const char *key, const char *path, const char *cwd) {
        _cleanup_free_ char *abs = NULL;

        if (path[0] == '/' || !cwd)
                return add_string(obj, key, path);
        if (asprintf(&abs, "%s%s%s", cwd, cwd[strlen(cwd) - 1] == '/' ? "" : "/", path) < 0)
                return -ENOMEM;
        return add_string(obj, key, abs);
}

static bool all_digits(const char *s) {
        if (!*s || strlen(s) > 18) /* stays within int64 */
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

static json_object *device_value(const char *v) {
        if (all_digits(v))
                return json_object_new_int64(strtoll(v, NULL, 10));
        if (strcmp(v, "true") == 0)
                return json_object_new_boolean(1);
        if (strcmp(v, "false") == 0)
                return json_object_new_boolean(0);
        return json_object_new_string(v);
}

static int build_device(const char *spec, const char *cwd, json_object **ret, char *err, size_t errlen) {
        _cleanup_(json_object_putp) json_object *d = NULL;
        _cleanup_free_ char *copy = NULL;
        char *save = NULL, *tok;
        int r;

        copy = strdup(spec);
        d = json_object_new_object();
        if (!copy || !d)
                return -ENOMEM;

        tok = strtok_r(copy, ",", &save);
        if (!tok || strchr(tok, '=')) {
                snprintf(err, errlen, "--device: '%s' does not start with a device kind", spec);
                return -EINVAL;
        }
        r = add_string(d, "kind", tok);
        if (r < 0)
                return r;

        while ((tok = strtok_r(NULL, ",", &save))) {
                char *eq = strchr(tok, '=');

                if (!eq || eq == tok) {
                        snprintf(err, errlen, "--device: '%s' in '%s' is not KEY=VALUE", tok, spec);
                        return -EINVAL;
                }
                *eq = 0;
                if (strcmp(tok, "kind") == 0 || json_object_object_get_ex(d, tok, NULL)) {
                        snprintf(err, errlen, "--device: key '%s' given twice in '%s'", tok, spec);
                        return -EINVAL;
                }
                /* "path" names a host file (a disk image): absolute, as kernel's. */
                if (strcmp(tok, "path") == 0)
                        r = add_path(d, tok, eq + 1, cwd);
                else
                        r = add_object(d, tok, device_value(eq + 1));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(d);
        return 0;
}

int ctl_run_config_build(const struct ctl_run_options *o, const char *cwd, char **ret, char *err, size_t errlen) {
        _cleanup_(json_object_putp) json_object *config = NULL;
        const char *text;
        char *s;
        int r;

        config = json_object_new_object();
        if (!config)
                return -ENOMEM;

        if (!o->kernel) {
                snprintf(err, errlen, "run: missing option --kernel PATH");
                return -EINVAL;
        }
        r = add_path(config, "kernel", o->kernel, cwd);
        if (r < 0)
                return r;
        if (o->initrd) {
                r = add_path(config, "initrd", o->initrd, cwd);
                if (r < 0)
                        return r;
        }
        if (o->append) {
                r = add_string(config, "cmdline", o->append);
                if (r < 0)
                        return r;
        }
        if (o->cpus > 0) {
                r = add_object(config, "vcpus", json_object_new_int64(o->cpus));
                if (r < 0)
                        return r;
        }
        if (o->memory_mib > 0) {
                r = add_object(config, "memory_mib", json_object_new_int64((int64_t) o->memory_mib));
                if (r < 0)
                        return r;
        }
        if (o->n_devices > 0) {
                json_object *devices = json_object_new_array();

                r = add_object(config, "devices", devices);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < o->n_devices; i++) {
                        json_object *d;

                        r = build_device(o->devices[i], cwd, &d, err, errlen);
                        if (r < 0)
                                return r;
                        if (json_object_array_add(devices, d) < 0) {
                                json_object_put(d);
                                return -ENOMEM;
                        }
                }
        }

        text = json_object_to_json_string_ext(config, JSON_C_TO_STRING_PLAIN);
        if (!text)
                return -ENOMEM;
        s = strdup(text);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
