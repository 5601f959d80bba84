/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "device.h"

/* Serves the device protocol on sock for one device until hang-up, Shutdown
 * or DestroyDevice: Activate first and exactly once, then the requests.
 * Nothing a peer sends ends it but those; returns 0, or -errno if the
 * socket itself fails. */
int device_loop_run(int sock, const struct device_kind *kind, void *dev);
