/* SPDX-License-Identifier: MIT */
/*
 * Where each byte of the VM's RAM lives: in the memory file (local), at a
 * sub-host (its home), or nowhere (unmapped: reads as zeros).  The homes
 * come from the config's subhost lines; local-or-not from the file's data
 * map, which changes under us as the VM pages.
 */
#ifndef VMEMFS_HOMES_H
#define VMEMFS_HOMES_H

#include <stdint.h>

#include "../common/config.h"
#include "gpa.h"
#include "memfile.h"

#define VMEM_HOME_NONE (-1)

/*
 * The home of RAM offset @off: an index into vm->subhosts, or
 * VMEM_HOME_NONE.  *ext_end is set to where that answer stops holding
 * (the end of the subhost range, or the start of the next one, or
 * ram_size).
 */
int vmem_home_of(const struct vmem_vm *vm, uint64_t off, uint64_t *ext_end);

/*
 * The `map` file: JSON array of {"start", "end", "where", "gpa_start",
 * "gpa_end"}: start/end are RAM offsets, where is "local", a sub-host URI,
 * or "unmapped"; the extents cover [0, ram_size) in order, adjacent ones
 * with the same answer merged.  With @gpa (may be NULL), extents are also
 * cut where the guest-physical mapping changes and carry the GPAs they
 * appear at (null where that RAM has no GPA).  Once VMEM_MAP_MAX_EXTENTS
 * extents are written the walk stops, and one last extent, where =
 * VMEM_MAP_TRUNCATED, covers the rest of RAM, not looked at.
 * Cost: linear in the runs of the data map it walks.  malloc'd; NULL
 * with errno on error (EIO when the memory file is gone).
 */
#define VMEM_MAP_MAX_EXTENTS 65536
#define VMEM_MAP_TRUNCATED "truncated"

char *vmem_map_json(const struct vmem_vm *vm, const struct vmem_memfile *mf,
		    const struct vmem_gpa_map *gpa);

#endif
