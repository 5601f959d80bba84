/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The virtio device drivers and their shell commands. */

#include "virtio-pci.h"

extern const struct virtio_driver virtio_rng_driver;
extern const struct virtio_driver virtio_blk_driver;
extern const struct virtio_driver virtio_net_driver;
extern const struct virtio_driver virtio_console_driver;
extern const struct virtio_driver virtio_vsock_driver;

/* `rng N`: N (1..4096) bytes from the entropy device. */
void virtio_rng_cmd(int argc, char **argv);
/* `blk [DISK] [info|read|write|verify|flush] ...`, see docs/testguest.md. */
void virtio_blk_cmd(int argc, char **argv);
/* `net ...`: address, ping, UDP; see docs/testguest.md. */
void virtio_net_cmd(int argc, char **argv);
/* Drains received frames (answering ARP and pings); called from the
 * shell's idle loop and from the net commands' waits, never from an
 * interrupt handler. */
void virtio_net_poll(void);
/* `vcon [info|write TEXT|read [N] [TIMEOUT_MS]]`: the virtio console port. */
void virtio_console_cmd(int argc, char **argv);
/* `vsock [info|listen|connect|send|recv|close] ...`, see docs/testguest.md. */
void virtio_vsock_cmd(int argc, char **argv);
/* Handles received packets (accepts, echoes, credit updates); from the
 * shell's idle loop and the vsock commands' waits, never from an interrupt
 * handler. */
void virtio_vsock_poll(void);
