/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "vm.h"

/* org.polyvm.Launcher1 at /org/polyvm/Launcher1, org.polyvm.Vm1 below it,
 * and the object manager. */
int launcher_bus_register(struct launcher *l);
