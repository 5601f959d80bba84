/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The line-based shell on the serial console that tests type into. */

__attribute__((noreturn)) void shell_run(void);
void shell_poweroff(void);
