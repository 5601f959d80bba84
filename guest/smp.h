/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* AP bring-up: INIT, SIPI, SIPI to every enabled LAPIC in the MADT. */

extern volatile unsigned cpus_up; /* including the BSP */

void smp_boot(void);
