/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "macro.h"
#include "vsock-config.h"

int vsock_device_config(const char *config_json, uint32_t cid, const char *fixed_uds_path, const char *where,
                        char **ret, char *err, size_t errlen) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *v;
        const char *text;
        int r;

        r = json_parse_object(config_json && config_json[0] ? config_json : "{}", &o, err, errlen);
        if (r < 0)
                return r;
        if (json_object_object_get_ex(o, "cid", &v)) {
                /* A device CID other than the VM's would let two VMs claim
                 * one address, or the guest talk under a CID not its own. */
                if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != (int64_t) cid) {
                        snprintf(err, errlen, "%s.cid: %s is not the VM's CID %" PRIu32 " (leave it out: the launcher fills it)",
                                 where, json_object_to_json_string(v), cid);
                        return -EINVAL;
                }
        }
        if (fixed_uds_path && json_object_object_get_ex(o, "uds_path", &v) &&
            (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), fixed_uds_path) != 0)) {
                snprintf(err, errlen, "%s.uds_path: an early VM's socket is %s (leave it out: the launcher fills it)",
                         where, fixed_uds_path);
                return -EINVAL;
        }
        if (json_object_object_add(o, "cid", json_object_new_int64(cid)) < 0)
                return -ENOMEM;
        if (fixed_uds_path && json_object_object_add(o, "uds_path", json_object_new_string(fixed_uds_path)) < 0)
                return -ENOMEM;
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        *ret = text ? strdup(text) : NULL;
        return *ret ? 0 : -ENOMEM;
}
