/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The virtio device drivers and their shell commands. */

#include "virtio-pci.h"

extern const struct virtio_driver virtio_rng_driver;
extern const struct virtio_driver virtio_blk_driver;

/* `rng N`: N (1..4096) bytes from the entropy device. */
void virtio_rng_cmd(int argc, char **argv);
/* `blk [DISK] [info|read|write|verify|flush] ...`, see docs/testguest.md. */
void virtio_blk_cmd(int argc, char **argv);
