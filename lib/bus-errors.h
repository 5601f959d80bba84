/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The named D-Bus errors every polyvm service returns (docs/dbus.md). */

#define POLYVM_ERROR_INVALID_CONFIG   "org.polyvm.Error.InvalidConfig"
#define POLYVM_ERROR_INVALID_ARGS     "org.polyvm.Error.InvalidArguments"
#define POLYVM_ERROR_NO_SUCH_VM       "org.polyvm.Error.NoSuchVm"
#define POLYVM_ERROR_NO_SUCH_DEVICE   "org.polyvm.Error.NoSuchDevice"
#define POLYVM_ERROR_VM_EXISTS        "org.polyvm.Error.VmExists"
#define POLYVM_ERROR_ALREADY_ACTIVE   "org.polyvm.Error.AlreadyActive"
#define POLYVM_ERROR_NOT_RUNNING      "org.polyvm.Error.NotRunning"
#define POLYVM_ERROR_BAD_STATE        "org.polyvm.Error.BadState"
#define POLYVM_ERROR_NO_MEMORY        "org.polyvm.Error.NoMemory"
#define POLYVM_ERROR_DEVICE_FAILED    "org.polyvm.Error.DeviceFailed"
#define POLYVM_ERROR_KVM_UNAVAILABLE  "org.polyvm.Error.KvmUnavailable"
#define POLYVM_ERROR_NOT_PERMITTED    "org.polyvm.Error.NotPermitted"
#define POLYVM_ERROR_FAILED           "org.polyvm.Error.Failed"
#define POLYVM_ERROR_CID_IN_USE       "org.polyvm.Error.CidInUse"

/* The early launcher's allowlist and config checks (docs/early-vms.md). */
#define POLYVM_ERROR_UNSUPPORTED_PARTITION "org.polyvm.Error.UnsupportedPartition"
#define POLYVM_ERROR_ALLOWLIST_MISSING     "org.polyvm.Error.AllowlistMissing"
#define POLYVM_ERROR_ALLOWLIST_INVALID     "org.polyvm.Error.AllowlistInvalid"
#define POLYVM_ERROR_NOT_ALLOWLISTED       "org.polyvm.Error.NotAllowlisted"
#define POLYVM_ERROR_DUPLICATE_VM          "org.polyvm.Error.DuplicateVm"
#define POLYVM_ERROR_CID_OUT_OF_RANGE      "org.polyvm.Error.CidOutOfRange"
#define POLYVM_ERROR_WRONG_CALLER          "org.polyvm.Error.WrongCaller"
#define POLYVM_ERROR_NOT_EARLY_SAFE        "org.polyvm.Error.NotEarlySafe"
