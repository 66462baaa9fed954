/* SPDX-License-Identifier: MIT */
/*
 * What vmemfs learns from the VM's QEMU over QMP: which memory backend is
 * our memory file, where QEMU maps its RAM in guest-physical space, and
 * (query-vmem, from our QEMU patches) the sub-hosts and their ranges.
 */
#ifndef VMEMFS_QEMU_INFO_H
#define VMEMFS_QEMU_INFO_H

#include <stddef.h>

#include "../common/config.h"
#include "gpa.h"
#include "qmp.h"

/*
 * The id of the memory-backend-file object whose mem-path is @memory_file
 * (compared after resolving both paths).  malloc'd; NULL with a message.
 */
char *vmem_qemu_memdev(struct vmem_qmp *q, const char *memory_file,
		       char *err, size_t errlen);

/* The guest-physical map of @memdev's RAM, from HMP `info mtree -f`. */
int vmem_qemu_gpa_map(struct vmem_qmp *q, const char *memdev,
		      uint64_t ram_size, struct vmem_gpa_map *m,
		      char *err, size_t errlen);

/*
 * Merge the sub-hosts QEMU reports (query-vmem) into @vm: a subhost line
 * of the config wins over any learned range it overlaps; learned ranges
 * get line 0.  Also checks that QEMU's ram-size is @vm's.  Returns the
 * number of sub-hosts learned, or -1 with a message.
 */
int vmem_qemu_learn_subhosts(struct vmem_qmp *q, struct vmem_vm *vm,
			     char *err, size_t errlen);

#endif
