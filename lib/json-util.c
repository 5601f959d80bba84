/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"

int json_parse_object(const char *text, json_object **ret, char *err, size_t errlen) {
        _cleanup_(json_object_putp) json_object *obj = NULL;
        json_tokener *tok;
        enum json_tokener_error jerr;
        size_t len = strlen(text);

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        obj = json_tokener_parse_ex(tok, text, (int) len);
        jerr = json_tokener_get_error(tok);
        if (jerr == json_tokener_success && (size_t) json_tokener_get_parse_end(tok) < len) {
                /* Trailing garbage that is not white space. */
                for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                        if (!strchr(" \t\r\n", text[i])) {
                                snprintf(err, errlen, "config: trailing data at offset %zu", i);
                                json_tokener_free(tok);
                                return -EINVAL;
                        }
        }
        if (jerr != json_tokener_success || !obj) {
                snprintf(err, errlen, "config: not valid JSON (%s at offset %zu)",
                         jerr == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(jerr),
                         json_tokener_get_parse_end(tok));
                json_tokener_free(tok);
                return -EINVAL;
        }
        json_tokener_free(tok);
        if (!json_object_is_type(obj, json_type_object)) {
                snprintf(err, errlen, "config: must be a JSON object, not %s",
                         json_type_to_name(json_object_get_type(obj)));
                return -EINVAL;
        }
        *ret = TAKE_PTR(obj);
        return 0;
}

static const char *field_type_name(enum json_field_type t) {
        switch (t) {
        case JSON_FIELD_STRING: return "a string";
        case JSON_FIELD_UINT64: return "an integer";
        case JSON_FIELD_BOOL: return "a boolean";
        case JSON_FIELD_ARRAY: return "an array";
        case JSON_FIELD_OBJECT: return "an object";
        }
        return "?";
}

static int parse_one(json_object *v, const char *where, const struct json_field *f, char *err, size_t errlen) {
        switch (f->type) {
        case JSON_FIELD_STRING: {
                char *s;
                if (!json_object_is_type(v, json_type_string))
                        break;
                s = strdup(json_object_get_string(v));
                if (!s)
                        return -ENOMEM;
                free(*(char **) f->target);
                *(char **) f->target = s;
                return 0;
        }
        case JSON_FIELD_UINT64: {
                int64_t i;
                if (!json_object_is_type(v, json_type_int))
                        break;
                errno = 0;
                i = json_object_get_int64(v);
                /* json-c clamps to INT64_MAX on overflow and sets errno. */
                if (i < 0 || errno == ERANGE || (uint64_t) i < f->min || (uint64_t) i > f->max) {
                        snprintf(err, errlen, "%s.%s: %s is out of range %" PRIu64 "..%" PRIu64, where, f->name,
                                 json_object_to_json_string(v), f->min, f->max);
                        return -EINVAL;
                }
                *(uint64_t *) f->target = (uint64_t) i;
                return 0;
        }
        case JSON_FIELD_BOOL:
                if (!json_object_is_type(v, json_type_boolean))
                        break;
                *(bool *) f->target = json_object_get_boolean(v);
                return 0;
        case JSON_FIELD_ARRAY:
        case JSON_FIELD_OBJECT:
                if (!json_object_is_type(v, f->type == JSON_FIELD_ARRAY ? json_type_array : json_type_object))
                        break;
                *(json_object **) f->target = json_object_get(v);
                return 0;
        }
        snprintf(err, errlen, "%s.%s: must be %s, not %s", where, f->name, field_type_name(f->type),
                 json_type_to_name(json_object_get_type(v)));
        return -EINVAL;
}

int json_parse_fields(json_object *obj, const char *where, const struct json_field *fields, size_t n,
                      char *err, size_t errlen) {
        int r;

        json_object_object_foreach(obj, key, val) {
                bool known = false;
                (void) val;
                for (size_t i = 0; i < n; i++)
                        if (strcmp(fields[i].name, key) == 0)
                                known = true;
                if (!known) {
                        snprintf(err, errlen, "%s.%s: unknown field", where, key);
                        return -EINVAL;
                }
        }

        for (size_t i = 0; i < n; i++) {
                json_object *v;

                if (!json_object_object_get_ex(obj, fields[i].name, &v)) {
                        if (fields[i].required) {
                                snprintf(err, errlen, "%s.%s: missing required field", where, fields[i].name);
                                return -EINVAL;
                        }
                        continue;
                }
                r = parse_one(v, where, &fields[i], err, errlen);
                if (r < 0)
                        return r;
        }
        return 0;
}
