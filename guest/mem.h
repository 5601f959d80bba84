/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* memfill, memcheck, memwrite, memtouch: the test guest's commands for
 * memmgr's swap tests and benchmark (docs/testguest.md, "Memory"). The
 * loops run at CPL 3 over a region of guest RAM above the guest's image;
 * kernel mode only parses, sets up and prints. */

/* argv[0] is the command name. */
void mem_cmd(int argc, char **argv);
