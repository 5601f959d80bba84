/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bus-errors.h"
#include "bus-util.h"
#include "early-allowlist.h"
#include "early-config.h"
#include "early.h"
#include "log.h"
#include "macro.h"

void launcher_memlock_setup(struct launcher *l) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0) {
                log_warning_errno(-errno, "Cannot read RLIMIT_MEMLOCK: %m");
                return;
        }
        if (l->early) {
                /* Like early_virtmgr: no unlimited-memlock service to ask
                 * this early, so raise it ourselves. The hard limit needs
                 * CAP_SYS_RESOURCE; without it, the soft one goes up to it. */
                struct rlimit want = { RLIM_INFINITY, RLIM_INFINITY };

                if (setrlimit(RLIMIT_MEMLOCK, &want) == 0)
                        rl = want;
                else {
                        log_info_errno(-errno, "Cannot lift RLIMIT_MEMLOCK to unlimited (%m); raising the soft limit to the hard limit.");
                        rl.rlim_cur = rl.rlim_max;
                        if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
                                log_warning_errno(-errno, "Cannot raise RLIMIT_MEMLOCK: %m");
                        (void) getrlimit(RLIMIT_MEMLOCK, &rl);
                }
        }
        l->memlock_limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t) rl.rlim_cur;
        if (rl.rlim_cur == RLIM_INFINITY)
                log_info("RLIMIT_MEMLOCK: unlimited.");
        else
                log_info("RLIMIT_MEMLOCK: %" PRIu64 " bytes (hard limit %" PRIu64 ").", (uint64_t) rl.rlim_cur,
                         (uint64_t) rl.rlim_max);
}

int early_vm_dir(const char *root, uint32_t cid, char **ret) {
        size_t n = root ? strlen(root) : 0;

        while (n > 0 && root[n - 1] == '/')
                n--;
        return asprintf(ret, "%.*s/run/polyvm/early/%" PRIu32, (int) n, root ?: "", cid) < 0 ? -ENOMEM : 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
                log_warning_errno(-errno, "Cannot remove %s: %m", path);
        return 0;
}

static void remove_tree(const char *path) {
        (void) nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        if (mkdir(p, mode) < 0 && errno != EEXIST)
                                return -errno;
                        *s = '/';
                }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* Early VMs have fixed CIDs and their clients are trusted not to run one
 * twice at once, so whatever a previous run left is stale: wipe it. */
static int prepare_dir(const char *dir) {
        remove_tree(dir);
        return mkdir_parents(dir, 0750);
}

void early_vm_removed(struct launcher *l, uint32_t cid) {
        _cleanup_free_ char *dir = NULL;

        if (early_vm_dir(l->root, cid, &dir) >= 0)
                remove_tree(dir);
}

/* The caller's executable, race-free: libsystemd 252 has no
 * SD_BUS_CREDS_PIDFD, so we open a pidfd on the sender's pid right away,
 * read /proc/<pid>/exe, and then check through the pidfd that the process
 * is still alive: then the pid was not reused while we read the link. */
static int sender_exe(sd_bus_message *m, char **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        _cleanup_close_ int pidfd = -1;
        char link[64], exe[PATH_MAX];
        pid_t pid;
        ssize_t n;
        int r;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_PID, &creds);
        if (r < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_NOT_PERMITTED, "Cannot read the caller's credentials: %s",
                                         strerror(-r));
        r = sd_bus_creds_get_pid(creds, &pid);
        if (r < 0 || pid <= 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_NOT_PERMITTED, "The bus does not tell the caller's pid");
        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_NOT_PERMITTED, "Cannot open the caller (pid %d): %s",
                                         (int) pid, strerror(errno));
        snprintf(link, sizeof(link), "/proc/%d/exe", (int) pid);
        n = readlink(link, exe, sizeof(exe) - 1);
        if (n < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_NOT_PERMITTED, "Cannot read %s: %s", link,
                                         strerror(errno));
        exe[n] = 0;
        if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
                return sd_bus_error_setf(error, POLYVM_ERROR_NOT_PERMITTED,
                                         "The caller (pid %d) went away while it was checked", (int) pid);
        *ret = strdup(exe);
        return *ret ? 0 : sd_bus_error_set_errno(error, -ENOMEM);
}

static struct vm *vm_find_cid(struct launcher *l, uint32_t cid) {
        for (struct vm *vm = l->vms; vm; vm = vm->next)
                if (vm->cid == cid)
                        return vm;
        return NULL;
}

static void write_state(const char *dir, const char *name, const char *caller, uint32_t cid) {
        _cleanup_free_ char *path = NULL;
        FILE *f;

        if (asprintf(&path, "%s/vm.json", dir) < 0)
                return;
        f = fopen(path, "we");
        if (!f) {
                log_warning_errno(-errno, "Cannot write %s: %m", path);
                return;
        }
        fprintf(f, "{\"name\": \"%s\", \"cid\": %" PRIu32 ", \"caller\": \"%s\"}\n", name, cid, caller);
        fclose(f);
}

int early_create_vm(struct launcher *l, sd_bus_message *m, const char *name, const char *config_text,
                    sd_bus_error *error, struct vm **ret) {
        _cleanup_(vm_config_done) struct vm_config c = {};
        _cleanup_free_ char *exe = NULL, *dir = NULL;
        struct early_vm allowed = {};
        const char *error_name = NULL;
        char err[768];
        int r;

        r = sender_exe(m, &exe, error);
        if (r < 0)
                return r;
        if (!vm_name_is_valid(name))
                return sd_bus_error_setf(error, POLYVM_ERROR_INVALID_ARGS, "name: \"%.64s\" is not a valid VM name",
                                         name);
        if (vm_find(l, name))
                return sd_bus_error_setf(error, POLYVM_ERROR_VM_EXISTS, "A VM named %s exists already", name);
        r = early_allowlist_check(l->root, exe, name, &allowed, &error_name, err, sizeof(err));
        if (r < 0) {
                log_warning("Refused early VM %s for %s: %s", name, exe, err);
                return sd_bus_error_setf(error, error_name ?: POLYVM_ERROR_FAILED, "%s", err);
        }

        r = vm_config_parse(config_text, l->host_memory_bytes, &c, err, sizeof(err));
        if (r >= 0)
                r = early_config_check(config_text, &c, err, sizeof(err));
        if (r < 0) {
                early_vm_done(&allowed);
                return sd_bus_error_setf(error, r == -EINVAL ? POLYVM_ERROR_NOT_EARLY_SAFE : POLYVM_ERROR_FAILED,
                                         "%s", err);
        }

        r = early_vm_dir(l->root, allowed.cid, &dir);
        if (r >= 0 && vm_find_cid(l, allowed.cid))
                r = -EBUSY;
        if (r >= 0)
                r = prepare_dir(dir);
        if (r < 0) {
                early_vm_done(&allowed);
                if (r == -EBUSY)
                        return sd_bus_error_setf(error, POLYVM_ERROR_CID_IN_USE, "CID %" PRIu32 " of VM %s is in use by VM %s",
                                                 allowed.cid, name, vm_find_cid(l, allowed.cid)->name);
                return sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "Cannot create %s: %s", dir ?: "state dir",
                                         strerror(-r));
        }

        r = vm_create(l, name, config_text, allowed.cid, error, ret);
        if (r < 0) {
                remove_tree(dir);
                early_vm_done(&allowed);
                return r;
        }
        write_state(dir, name, allowed.path, allowed.cid);
        log_info("Early VM %s (CID %" PRIu32 ") created for %s; state in %s.", name, allowed.cid, exe, dir);
        early_vm_done(&allowed);
        return 0;
}
