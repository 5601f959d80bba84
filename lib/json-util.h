/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One way to read a config object: each field through a table entry, so
 * that every error names the field, the value and the rule it broke. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

/* Parses text as one JSON object; on failure writes "config: ..." to err. */
int json_parse_object(const char *text, json_object **ret, char *err, size_t errlen);

enum json_field_type {
        JSON_FIELD_STRING,  /* char ** (malloc'd) */
        JSON_FIELD_UINT64,  /* uint64_t *, within [min, max] */
        JSON_FIELD_BOOL,    /* bool * */
        JSON_FIELD_ARRAY,   /* json_object ** (a new reference) */
        JSON_FIELD_OBJECT,  /* json_object ** (a new reference) */
};

struct json_field {
        const char *name;
        enum json_field_type type;
        bool required;
        void *target;
        uint64_t min, max; /* UINT64 only */
};

/* Applies the table to obj: unknown keys, missing required fields, wrong
 * types and out-of-range numbers fail with -EINVAL and a message like
 * "<where>.vcpus: 1000 is out of range 1..16". */
int json_parse_fields(json_object *obj, const char *where, const struct json_field *fields, size_t n,
                      char *err, size_t errlen);
