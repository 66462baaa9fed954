/* SPDX-License-Identifier: MIT */
/*
 * The guest-physical view that `mem` shows: reads at a GPA are turned into
 * reads of RAM offsets (reader.c) through the current GPA map; gaps (the
 * PCI hole, MMIO) read as zeros.  With layout = flat the map is the
 * identity.  With layout = auto it is QEMU's, fetched at mount and again
 * after QEMU reports an event that can change it.
 */
#ifndef VMEMFS_PHYSMEM_H
#define VMEMFS_PHYSMEM_H

#include <pthread.h>
#include <stdbool.h>

#include "gpa.h"
#include "reader.h"

struct vmem_physmem {
	struct vmem_reader *r;
	pthread_rwlock_t lock;		/* guards map */
	struct vmem_gpa_map map;
	char *memdev;			/* auto: QEMU's id of our backend */
	bool stale;			/* auto: QEMU said the map may change */
	uint64_t resets;		/* QMP RESET events seen (atomic) */
};

/* Build the view; for layout auto this asks QEMU (and fails if it can't). */
int vmem_physmem_init(struct vmem_physmem *pm, struct vmem_reader *r,
		      char *err, size_t errlen);
void vmem_physmem_fini(struct vmem_physmem *pm);

/* Re-read QEMU's map if an event made it stale; keeps the old on failure. */
void vmem_physmem_refresh(struct vmem_physmem *pm);

uint64_t vmem_physmem_size(struct vmem_physmem *pm);

/* Read [off, off+len) of guest-physical memory; bytes read or -errno. */
ssize_t vmem_physmem_read(struct vmem_physmem *pm, void *buf, size_t len,
			  uint64_t off);

/* A copy of the current map (for `map`); caller frees with vmem_gpa_free. */
int vmem_physmem_snapshot(struct vmem_physmem *pm, struct vmem_gpa_map *out);

#endif
