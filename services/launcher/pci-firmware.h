/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What firmware does to PCI before the OS runs, done by the launcher at each
 * start: size every BAR of every device on the host bridge, place it
 * naturally aligned in the windows the DSDT's PCI0._CRS gives (memory from
 * the bottom of the 32-bit MMIO hole, I/O from 0xC000), and enable decoding.
 * Linux keeps assignments that fit the bridge's windows, so the guest finds
 * its devices where the launcher has already mapped them. */

#include <stddef.h>

#include "pci-host.h"

#define PCI_FIRMWARE_MMIO_START 0xc0000000ULL
#define PCI_FIRMWARE_MMIO_END   0xfec00000ULL /* the IOAPIC, end of PCI0's memory window */
#define PCI_FIRMWARE_IO_START   0xc000U
#define PCI_FIRMWARE_IO_END     0x10000U

/* -ENOSPC (with err naming the device and BAR) if a window is full; a
 * device that answers nonsense to sizing gets that BAR left unassigned. */
int pci_firmware_assign(struct pci_host *h, char *err, size_t errlen);
