/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "bus-errors.h"
#include "early-allowlist.h"
#include "json-util.h"
#include "macro.h"

/* Allowlists are small; anything bigger is not one. */
#define EARLY_ALLOWLIST_MAX_BYTES (1024 * 1024)

static const struct {
        const char *partition;
        const char *file; /* relative to the root */
        uint32_t min, max;
} partitions[] = {
        { "usr", "usr/lib/polyvm/early-vms.json", 100, 199 },
        { "opt", "opt/polyvm/early-vms.json", 200, 299 },
};

void early_vm_done(struct early_vm *vm) {
        if (!vm)
                return;
        free(vm->name);
        free(vm->path);
        *vm = (struct early_vm) {};
}

static int find_partition(const char *partition) {
        for (size_t i = 0; i < ELEMENTSOF(partitions); i++)
                if (strcmp(partitions[i].partition, partition) == 0)
                        return (int) i;
        return -ENOENT;
}

int early_partition_cid_range(const char *partition, uint32_t *min, uint32_t *max) {
        int i = find_partition(partition);

        if (i < 0)
                return i;
        *min = partitions[i].min;
        *max = partitions[i].max;
        return 0;
}

int early_allowlist_path(const char *root, const char *partition, char **ret) {
        int i = find_partition(partition);
        size_t n;
        char *p;

        if (i < 0)
                return i;
        if (!root)
                root = "";
        n = strlen(root);
        while (n > 0 && root[n - 1] == '/')
                n--;
        if (asprintf(&p, "%.*s/%s", (int) n, root, partitions[i].file) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int early_exe_split(const char *root, const char *exe, char **ret_relative, char **ret_partition) {
        _cleanup_free_ char *rel = NULL, *part = NULL;
        const char *r = exe, *slash;
        size_t n = root ? strlen(root) : 0;

        while (n > 0 && root[n - 1] == '/')
                n--;
        if (exe[0] != '/')
                return -EINVAL;
        if (n > 0) {
                /* exe must be root itself followed by '/', not /rootx/... */
                if (strncmp(exe, root, n) != 0 || exe[n] != '/')
                        return -EINVAL;
                r = exe + n;
        }
        while (r[1] == '/')
                r++;
        slash = strchr(r + 1, '/');
        if (!slash || slash == r + 1)
                return -EINVAL;
        rel = strdup(r);
        part = strndup(r + 1, (size_t) (slash - r - 1));
        if (!rel || !part)
                return -ENOMEM;
        *ret_relative = TAKE_PTR(rel);
        *ret_partition = TAKE_PTR(part);
        return 0;
}

static int read_file(const char *file, char **ret, const char **ret_error, char *err, size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        FILE *f;
        size_t n;

        f = fopen(file, "re");
        if (!f) {
                int e = errno;
                *ret_error = e == ENOENT ? POLYVM_ERROR_ALLOWLIST_MISSING : POLYVM_ERROR_ALLOWLIST_INVALID;
                snprintf(err, errlen, "%s: cannot open the allowlist: %s", file, strerror(e));
                return -e;
        }
        buf = malloc(EARLY_ALLOWLIST_MAX_BYTES + 1);
        if (!buf) {
                fclose(f);
                return -ENOMEM;
        }
        n = fread(buf, 1, EARLY_ALLOWLIST_MAX_BYTES + 1, f);
        if (ferror(f) || n > EARLY_ALLOWLIST_MAX_BYTES) {
                *ret_error = POLYVM_ERROR_ALLOWLIST_INVALID;
                snprintf(err, errlen, "%s: %s", file,
                         ferror(f) ? "read error" : "larger than the limit of 1 MiB for an allowlist");
                fclose(f);
                return -EINVAL;
        }
        fclose(f);
        buf[n] = 0;
        if (strlen(buf) != n) {
                *ret_error = POLYVM_ERROR_ALLOWLIST_INVALID;
                snprintf(err, errlen, "%s: contains a NUL byte, not valid JSON", file);
                return -EINVAL;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}

/* A string field of entry i; NULs inside are refused (json-c keeps them). */
static int entry_string(json_object *e, const char *file, size_t i, const char *key, const char **ret, char *err,
                        size_t errlen) {
        json_object *v;

        if (!json_object_object_get_ex(e, key, &v)) {
                snprintf(err, errlen, "%s: vms[%zu].%s: missing required field", file, i, key);
                return -EINVAL;
        }
        if (!json_object_is_type(v, json_type_string) ||
            (size_t) json_object_get_string_len(v) != strlen(json_object_get_string(v)) ||
            json_object_get_string_len(v) == 0) {
                snprintf(err, errlen, "%s: vms[%zu].%s: must be a non-empty string", file, i, key);
                return -EINVAL;
        }
        *ret = json_object_get_string(v);
        return 0;
}

/* Every entry must be well-formed, whichever name is asked for: a broken
 * file is reported as broken rather than half-used. */
static int check_entry(json_object *e, const char *file, size_t i, char *err, size_t errlen) {
        const char *s;
        json_object *cid;
        int r;

        if (!json_object_is_type(e, json_type_object)) {
                snprintf(err, errlen, "%s: vms[%zu]: must be an object with name, cid and path", file, i);
                return -EINVAL;
        }
        json_object_object_foreach(e, key, val) {
                (void) val;
                if (strcmp(key, "name") != 0 && strcmp(key, "cid") != 0 && strcmp(key, "path") != 0) {
                        snprintf(err, errlen, "%s: vms[%zu].%s: unknown field (an entry has name, cid and path)",
                                 file, i, key);
                        return -EINVAL;
                }
        }
        r = entry_string(e, file, i, "name", &s, err, errlen);
        if (r < 0)
                return r;
        r = entry_string(e, file, i, "path", &s, err, errlen);
        if (r < 0)
                return r;
        if (s[0] != '/') {
                snprintf(err, errlen, "%s: vms[%zu].path: \"%s\" must be an absolute path", file, i, s);
                return -EINVAL;
        }
        if (!json_object_object_get_ex(e, "cid", &cid)) {
                snprintf(err, errlen, "%s: vms[%zu].cid: missing required field", file, i);
                return -EINVAL;
        }
        if (!json_object_is_type(cid, json_type_int)) {
                snprintf(err, errlen, "%s: vms[%zu].cid: must be an integer, not %s", file, i,
                         json_type_to_name(json_object_get_type(cid)));
                return -EINVAL;
        }
        return 0;
}

int early_allowlist_find(const char *file, const char *partition, const char *name, struct early_vm *ret,
                         const char **ret_error, char *err, size_t errlen) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_free_ char *text = NULL;
        enum json_tokener_error jerr;
        json_object *vms, *found = NULL;
        size_t found_index = 0, n;
        uint32_t min, max;
        int64_t cid;
        int r;

        *ret_error = POLYVM_ERROR_UNSUPPORTED_PARTITION;
        r = early_partition_cid_range(partition, &min, &max);
        if (r < 0) {
                snprintf(err, errlen, "partition \"%s\": early VMs may only be created from usr or opt", partition);
                return r;
        }

        r = read_file(file, &text, ret_error, err, errlen);
        if (r < 0)
                return r;

        *ret_error = POLYVM_ERROR_ALLOWLIST_INVALID;
        root = json_tokener_parse_verbose(text, &jerr);
        if (jerr != json_tokener_success) {
                snprintf(err, errlen, "%s: not valid JSON (%s)", file, json_tokener_error_desc(jerr));
                return -EINVAL;
        }
        if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "vms", &vms) ||
            !json_object_is_type(vms, json_type_array) || json_object_object_length(root) != 1) {
                snprintf(err, errlen, "%s: must be an object with one key, \"vms\", an array of entries", file);
                return -EINVAL;
        }

        n = json_object_array_length(vms);
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(vms, i), *v;

                r = check_entry(e, file, i, err, errlen);
                if (r < 0)
                        return r;
                json_object_object_get_ex(e, "name", &v);
                if (strcmp(json_object_get_string(v), name) != 0)
                        continue;
                if (found) {
                        *ret_error = POLYVM_ERROR_DUPLICATE_VM;
                        snprintf(err, errlen, "%s: VM \"%s\" is listed more than once (vms[%zu] and vms[%zu]); a name must appear exactly once",
                                 file, name, found_index, i);
                        return -EEXIST;
                }
                found = e;
                found_index = i;
        }
        if (!found) {
                *ret_error = POLYVM_ERROR_NOT_ALLOWLISTED;
                snprintf(err, errlen, "%s: no entry for VM \"%s\"", file, name);
                return -ENOENT;
        }

        {
                json_object *v;
                json_object_object_get_ex(found, "cid", &v);
                errno = 0;
                cid = json_object_get_int64(v);
                if (cid < (int64_t) min || cid > (int64_t) max || errno == EINVAL) {
                        *ret_error = POLYVM_ERROR_CID_OUT_OF_RANGE;
                        snprintf(err, errlen, "%s: vms[%zu] (\"%s\"): cid %s is out of range %" PRIu32 "..%" PRIu32 " of partition %s",
                                 file, found_index, name, json_object_to_json_string(v), min, max, partition);
                        return -ERANGE;
                }
                json_object_object_get_ex(found, "path", &v);
                ret->path = strdup(json_object_get_string(v));
                ret->name = strdup(name);
                ret->cid = (uint32_t) cid;
                if (!ret->path || !ret->name) {
                        early_vm_done(ret);
                        return -ENOMEM;
                }
        }
        *ret_error = NULL;
        return 0;
}

int early_allowlist_check(const char *root, const char *exe, const char *name, struct early_vm *ret,
                          const char **ret_error, char *err, size_t errlen) {
        _cleanup_free_ char *rel = NULL, *partition = NULL, *file = NULL;
        struct early_vm vm = {};
        int r;

        r = early_exe_split(root, exe, &rel, &partition);
        if (r < 0) {
                *ret_error = POLYVM_ERROR_UNSUPPORTED_PARTITION;
                snprintf(err, errlen, "caller executable \"%s\" is not in a partition under \"%s\"", exe,
                         root && *root ? root : "/");
                return r;
        }
        r = early_allowlist_path(root, partition, &file);
        if (r < 0) {
                *ret_error = POLYVM_ERROR_UNSUPPORTED_PARTITION;
                snprintf(err, errlen, "caller executable \"%s\" is in partition \"%s\"; early VMs may only be created from usr or opt",
                         rel, partition);
                return r;
        }
        r = early_allowlist_find(file, partition, name, &vm, ret_error, err, errlen);
        if (r < 0)
                return r;
        if (strcmp(vm.path, rel) != 0) {
                *ret_error = POLYVM_ERROR_WRONG_CALLER;
                snprintf(err, errlen, "%s: VM \"%s\" must be created by \"%s\", not by \"%s\"", file, name, vm.path,
                         rel);
                early_vm_done(&vm);
                return -EPERM;
        }
        *ret = vm;
        return 0;
}
