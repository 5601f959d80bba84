/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* polyvmctl's command line, parsed without side effects so that tests can
 * drive it: every usage error names the argument that is wrong. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_MAX_ARGS 2
#define CTL_MAX_DEVICES 16
#define CTL_MAX_CPUS 16
#define CTL_MAX_MEMORY_MIB (UINT64_C(1) << 24) /* 16 TiB: beyond any host */

enum ctl_verb {
        CTL_VERB_NONE,
        CTL_VERB_LIST,
        CTL_VERB_CREATE,
        CTL_VERB_START,
        CTL_VERB_STATUS,
        CTL_VERB_CONSOLE,
        CTL_VERB_STOP,
        CTL_VERB_KILL,
        CTL_VERB_PAUSE,
        CTL_VERB_RESUME,
        CTL_VERB_DESTROY,
        CTL_VERB_RUN,
        CTL_VERB_SWAP,
};

/* polyvmctl swap ACTION NAME */
enum ctl_swap_action {
        CTL_SWAP_OUT,
        CTL_SWAP_IN,
        CTL_SWAP_TRIM,
        CTL_SWAP_STATUS,
};

struct ctl_run_options {
        const char *name;      /* NULL: a default made from the pid */
        const char *kernel;    /* required */
        const char *initrd;
        const char *append;    /* kernel command line */
        unsigned cpus;         /* 0: the launcher's default */
        uint64_t memory_mib;   /* 0: the launcher's default */
        const char *devices[CTL_MAX_DEVICES]; /* "KIND[,KEY=VALUE...]" */
        size_t n_devices;
        bool keep;             /* do not destroy the VM at the end */
};

struct ctl_args {
        const char *bus;       /* --bus=: NULL means $POLYVM_BUS_ADDRESS, else system */
        bool help;
        bool version;
        bool json;             /* status --json */
        enum ctl_verb verb;
        const char *verb_name;
        const char *args[CTL_MAX_ARGS]; /* positional arguments after the verb */
        size_t n_args;
        struct ctl_run_options run;
        enum ctl_swap_action swap; /* swap: args[0] parsed, args[1] the VM */
};

/* Parses argv (argv[0] is the program). Returns 0, or -EINVAL with a message
 * for the user in err. argv must outlive ret (strings are not copied). */
int ctl_parse_args(int argc, char **argv, struct ctl_args *ret, char *err, size_t errlen);

const char *ctl_verb_to_string(enum ctl_verb verb);
