/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-args.h"
#include "macro.h"

/* Which options a verb takes. */
#define OPT_JSON (1u << 0)
#define OPT_RUN (1u << 1)

struct verb_info {
        enum ctl_verb verb;
        const char *name;
        const char *usage; /* its positional arguments, for messages */
        unsigned n_args;
        unsigned options;
};

static const struct verb_info verbs[] = {
        { CTL_VERB_LIST, "list", "", 0, 0 },
        { CTL_VERB_CREATE, "create", "NAME CONFIG", 2, 0 },
        { CTL_VERB_START, "start", "NAME", 1, 0 },
        { CTL_VERB_STATUS, "status", "NAME", 1, OPT_JSON },
        { CTL_VERB_CONSOLE, "console", "NAME", 1, 0 },
        { CTL_VERB_STOP, "stop", "NAME", 1, 0 },
        { CTL_VERB_KILL, "kill", "NAME", 1, 0 },
        { CTL_VERB_PAUSE, "pause", "NAME", 1, 0 },
        { CTL_VERB_RESUME, "resume", "NAME", 1, 0 },
        { CTL_VERB_DESTROY, "destroy", "NAME", 1, 0 },
        { CTL_VERB_RUN, "run", "", 0, OPT_RUN },
        { CTL_VERB_SWAP, "swap", "out|in|trim|status NAME", 2, 0 },
};

const char *ctl_verb_to_string(enum ctl_verb verb) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (verbs[i].verb == verb)
                        return verbs[i].name;
        return NULL;
}

static const struct verb_info *verb_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

/* A decimal number in [min, max], nothing else. */
static int parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (!s[0] || s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0' || v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

/* Options that take a value. */
static const char *const value_options[] = {
        "--bus", "--name", "--kernel", "--initrd", "--append", "--cpus", "--memory", "--device",
};

static const char *const run_options[] = {
        "--name", "--kernel", "--initrd", "--append", "--cpus", "--memory", "--device", "--keep",
};

static bool is_run_option(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(run_options); i++)
                if (strcmp(run_options[i], name) == 0)
                        return true;
        return false;
}

static bool option_takes_value(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(value_options); i++)
                if (strcmp(value_options[i], name) == 0)
                        return true;
        return false;
}

int ctl_parse_args(int argc, char **argv, struct ctl_args *ret, char *err, size_t errlen) {
        struct ctl_args a = {};
        const struct verb_info *verb = NULL;
        unsigned used = 0;   /* option classes seen, checked against the verb */
        const char *first_json = NULL, *first_run = NULL;
        bool options_done = false;

        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i], *value = NULL;
                char name[32];

                if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
                        if (!verb && !a.verb_name) {
                                verb = verb_find(arg);
                                if (!verb) {
                                        snprintf(err, errlen, "unknown command '%s' (see --help)", arg);
                                        return -EINVAL;
                                }
                                a.verb_name = verb->name;
                                continue;
                        }
                        if (a.n_args >= verb->n_args) {
                                snprintf(err, errlen, "%s: unexpected argument '%s'%s%s", verb->name, arg,
                                         verb->n_args ? " after " : "", verb->usage);
                                return -EINVAL;
                        }
                        a.args[a.n_args++] = arg;
                        continue;
                }
                if (strcmp(arg, "--") == 0) {
                        options_done = true;
                        continue;
                }

                /* --opt=value, --opt value */
                {
                        const char *eq = strchr(arg, '=');
                        size_t n = eq ? (size_t) (eq - arg) : strlen(arg);

                        if (n >= sizeof(name)) {
                                snprintf(err, errlen, "unknown option '%s' (see --help)", arg);
                                return -EINVAL;
                        }
                        memcpy(name, arg, n);
                        name[n] = 0;
                        if (option_takes_value(name)) {
                                if (eq)
                                        value = eq + 1;
                                else if (i + 1 < argc)
                                        value = argv[++i];
                                else {
                                        snprintf(err, errlen, "option '%s' needs a value", name);
                                        return -EINVAL;
                                }
                        } else if (eq) {
                                snprintf(err, errlen, "option '%s' takes no value", name);
                                return -EINVAL;
                        }
                }

                if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
                        a.help = true;
                else if (strcmp(name, "--version") == 0)
                        a.version = true;
                else if (strcmp(name, "--bus") == 0) {
                        if (!value[0]) {
                                snprintf(err, errlen, "--bus: needs system, user or a D-Bus address");
                                return -EINVAL;
                        }
                        a.bus = value;
                } else if (strcmp(name, "--json") == 0) {
                        a.json = true;
                        used |= OPT_JSON;
                        first_json = first_json ?: arg;
                } else {
                        struct ctl_run_options *r = &a.run;
                        uint64_t v;

                        if (!is_run_option(name)) {
                                snprintf(err, errlen, "unknown option '%s' (see --help)", arg);
                                return -EINVAL;
                        }
                        used |= OPT_RUN;
                        first_run = first_run ?: arg;
                        if (strcmp(name, "--keep") == 0)
                                r->keep = true;
                        else if (strcmp(name, "--name") == 0)
                                r->name = value;
                        else if (strcmp(name, "--kernel") == 0)
                                r->kernel = value;
                        else if (strcmp(name, "--initrd") == 0)
                                r->initrd = value;
                        else if (strcmp(name, "--append") == 0)
                                r->append = value;
                        else if (strcmp(name, "--cpus") == 0) {
                                if (parse_number(value, 1, CTL_MAX_CPUS, &v) < 0) {
                                        snprintf(err, errlen, "--cpus: '%s' is not a number in 1..%d", value,
                                                 CTL_MAX_CPUS);
                                        return -EINVAL;
                                }
                                r->cpus = (unsigned) v;
                        } else if (strcmp(name, "--memory") == 0) {
                                if (parse_number(value, 1, CTL_MAX_MEMORY_MIB, &v) < 0) {
                                        snprintf(err, errlen, "--memory: '%s' is not a size in MiB (1..%" PRIu64 ")",
                                                 value, CTL_MAX_MEMORY_MIB);
                                        return -EINVAL;
                                }
                                r->memory_mib = v;
                        } else if (strcmp(name, "--device") == 0) {
                                if (r->n_devices >= CTL_MAX_DEVICES) {
                                        snprintf(err, errlen, "--device: more than %d devices", CTL_MAX_DEVICES);
                                        return -EINVAL;
                                }
                                if (!value[0] || value[0] == ',') {
                                        snprintf(err, errlen, "--device: '%s' does not start with a device kind",
                                                 value);
                                        return -EINVAL;
                                }
                                r->devices[r->n_devices++] = value;
                        }
                }
        }

        /* --help and --version win over whatever else is wrong. */
        if (a.help || a.version) {
                *ret = a;
                return 0;
        }
        if (!verb) {
                snprintf(err, errlen, "missing command (see --help)");
                return -EINVAL;
        }
        a.verb = verb->verb;
        if ((used & OPT_JSON) && !(verb->options & OPT_JSON)) {
                snprintf(err, errlen, "%s: option '%s' is only valid with status", verb->name, first_json);
                return -EINVAL;
        }
        if ((used & OPT_RUN) && !(verb->options & OPT_RUN)) {
                snprintf(err, errlen, "%s: option '%s' is only valid with run", verb->name, first_run);
                return -EINVAL;
        }
        if (a.n_args < verb->n_args) {
                static const char *const missing[][2] = { { "NAME", "CONFIG" }, { "ACTION", "NAME" } };
                snprintf(err, errlen, "%s: missing argument %s (usage: %s %s)", verb->name,
                         missing[verb->verb == CTL_VERB_SWAP][a.n_args == 0 ? 0 : 1], verb->name, verb->usage);
                return -EINVAL;
        }
        if (verb->verb == CTL_VERB_SWAP) {
                static const char *const actions[] = {
                        [CTL_SWAP_OUT] = "out", [CTL_SWAP_IN] = "in", [CTL_SWAP_TRIM] = "trim",
                        [CTL_SWAP_STATUS] = "status",
                };
                size_t i;

                for (i = 0; i < ELEMENTSOF(actions); i++)
                        if (strcmp(a.args[0], actions[i]) == 0)
                                break;
                if (i == ELEMENTSOF(actions)) {
                        snprintf(err, errlen, "swap: unknown action '%s' (out, in, trim or status)", a.args[0]);
                        return -EINVAL;
                }
                a.swap = (enum ctl_swap_action) i;
        }
        if (verb->verb == CTL_VERB_RUN && !a.run.kernel) {
                snprintf(err, errlen, "run: missing option --kernel PATH");
                return -EINVAL;
        }
        *ret = a;
        return 0;
}
