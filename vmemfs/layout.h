/* SPDX-License-Identifier: MIT */
/*
 * Where each byte of the VM's RAM lives: in the memory file (local), at a
 * sub-host (its home), or nowhere (unmapped: reads as zeros).  The homes
 * come from the config's subhost lines; local-or-not from the file's data
 * map, which changes under us as the VM pages.
 */
#ifndef VMEMFS_LAYOUT_H
#define VMEMFS_LAYOUT_H

#include <stdint.h>

#include "../common/config.h"
#include "memfile.h"

#define VMEM_HOME_NONE (-1)

/*
 * The home of RAM offset @off: an index into vm->subhosts, or
 * VMEM_HOME_NONE.  *ext_end is set to where that answer stops holding
 * (the end of the subhost range, or the start of the next one, or
 * ram_size).
 */
int vmem_layout_home(const struct vmem_vm *vm, uint64_t off,
		     uint64_t *ext_end);

/*
 * The `map` file: JSON array of {"start", "end", "where"} with where
 * "local", a sub-host URI, or "unmapped", covering [0, ram_size) in order,
 * adjacent extents with the same answer merged.  malloc'd; NULL on error.
 */
char *vmem_map_json(const struct vmem_vm *vm, const struct vmem_memfile *mf);

#endif
