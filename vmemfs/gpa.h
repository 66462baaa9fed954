/* SPDX-License-Identifier: MIT */
/*
 * Guest-physical layout: which guest-physical addresses (GPAs) are backed
 * by which RAM offsets.  Forensics tools address memory by GPA; the memory
 * file is in RAM-offset order, and on x86 the two part ways at the PCI
 * hole (pc: RAM above 3 GiB moves to 4 GiB; q35: above 2 GiB).
 *
 * The map comes from QEMU's own view (the flat view of the "memory"
 * address space in `info mtree -f`: where the CPU sees RAM of our memory
 * backend, ROM, VGA and PAM overlays already resolved), never from a table
 * of machine types we would have to keep in step with QEMU.
 */
#ifndef VMEMFS_GPA_H
#define VMEMFS_GPA_H

#include <stddef.h>
#include <stdint.h>

struct vmem_gpa_ext {
	uint64_t gpa;		/* first guest-physical address */
	uint64_t len;
	uint64_t ram;		/* RAM offset of gpa */
};

struct vmem_gpa_map {
	struct vmem_gpa_ext *ext;	/* sorted by gpa, disjoint */
	size_t n;
	uint64_t size;			/* highest RAM GPA end */
};

/* The identity: GPA = RAM offset over [0, ram_size). */
int vmem_gpa_flat(struct vmem_gpa_map *m, uint64_t ram_size);

/*
 * Parse the text of HMP `info mtree -f`: the extents of @memdev's RAM in
 * the flat view of address space "memory" (shadowed BIOS "rom" pieces of
 * it included).  Each must lie inside [0, ram_size).  On error returns -1
 * with a message naming the offending line.
 */
int vmem_gpa_parse_mtree(struct vmem_gpa_map *m, const char *text,
			 const char *memdev, uint64_t ram_size,
			 char *err, size_t errlen);

void vmem_gpa_free(struct vmem_gpa_map *m);

/*
 * The extent holding @gpa, or NULL if @gpa is in a gap; then *next is the
 * start of the next extent (or m->size).
 */
const struct vmem_gpa_ext *vmem_gpa_lookup(const struct vmem_gpa_map *m,
					   uint64_t gpa, uint64_t *next);

#endif
