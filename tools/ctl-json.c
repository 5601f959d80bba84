/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl-json.h"
#include "json-util.h"

static int read_basic(sd_bus_message *m, char type, json_object **ret) {
        union {
                uint8_t y;
                int b;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                const char *s;
                int h;
        } v;
        json_object *o;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case 'y': o = json_object_new_int(v.y); break;
        case 'b': o = json_object_new_boolean(v.b); break;
        case 'n': o = json_object_new_int(v.n); break;
        case 'q': o = json_object_new_int(v.q); break;
        case 'i': o = json_object_new_int(v.i); break;
        case 'u': o = json_object_new_int64(v.u); break;
        case 'x': o = json_object_new_int64(v.x); break;
        case 't': o = json_object_new_uint64(v.t); break;
        case 'd': o = json_object_new_double(v.d); break;
        case 'h': o = json_object_new_int(v.h); break;
        case 's': case 'o': case 'g': o = json_object_new_string(v.s); break;
        default: return -EBADMSG;
        }
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

static int read_dict(sd_bus_message *m, const char *contents, json_object **ret) {
        _cleanup_(json_object_putp) json_object *obj = NULL;
        char entry[256];
        size_t n = strlen(contents);
        int r;

        /* contents is "{KV}"; the entry container wants "KV". */
        if (n < 4 || n - 2 >= sizeof(entry))
                return -EBADMSG;
        memcpy(entry, contents + 1, n - 2);
        entry[n - 2] = 0;

        obj = json_object_new_object();
        if (!obj)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', contents);
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', entry)) > 0) {
                _cleanup_(json_object_putp) json_object *key = NULL, *value = NULL;

                r = ctl_json_read_value(m, &key);
                if (r < 0)
                        return r;
                r = ctl_json_read_value(m, &value);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                if (json_object_object_add(obj, json_object_get_string(key), value) < 0)
                        return -ENOMEM;
                value = NULL;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(obj);
        return 0;
}

static int read_list(sd_bus_message *m, char type, const char *contents, json_object **ret) {
        _cleanup_(json_object_putp) json_object *arr = NULL;
        int r;

        arr = json_object_new_array();
        if (!arr)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        for (;;) {
                json_object *v;

                r = sd_bus_message_at_end(m, false);
                if (r < 0)
                        return r;
                if (r > 0)
                        break;
                r = ctl_json_read_value(m, &v);
                if (r < 0)
                        return r;
                if (json_object_array_add(arr, v) < 0) {
                        json_object_put(v);
                        return -ENOMEM;
                }
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(arr);
        return 0;
}

int ctl_json_read_value(sd_bus_message *m, json_object **ret) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;

        switch (type) {
        case 'v':
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;
                r = ctl_json_read_value(m, ret);
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(m);
        case 'a':
                if (contents[0] == '{')
                        return read_dict(m, contents, ret);
                return read_list(m, 'a', contents, ret);
        case 'r':
                return read_list(m, 'r', contents, ret);
        default:
                return read_basic(m, type, ret);
        }
}
