/* SPDX-License-Identifier: MIT */
/*
 * x86-64 address translation over guest-physical memory: 4- and 5-level
 * page tables, 1 GiB and 2 MiB pages.  The walk reads one entry per level
 * (at most five reads), so it cannot loop; every table address comes from
 * an entry and is checked against the RAM ranges by vmi_phys_read().
 */
#ifndef VMI_PGTABLE_H
#define VMI_PGTABLE_H

#include <stdint.h>

#include "phys.h"

#define VMI_PTE_PRESENT	(1ULL << 0)
#define VMI_PTE_RW	(1ULL << 1)
#define VMI_PTE_USER	(1ULL << 2)
#define VMI_PTE_PS	(1ULL << 7)	/* large page at PDPT / PD level */
#define VMI_PTE_NX	(1ULL << 63)
/* Physical address bits of an entry (bits 12..51). */
#define VMI_PTE_ADDR	0x000ffffffffff000ULL

struct vmi_xlate {
	uint64_t pa;		/* guest-physical address of va */
	uint64_t page_size;	/* 4 KiB, 2 MiB or 1 GiB */
	uint64_t pte;		/* the final entry */
	/* Effective permissions: AND of RW/USER, OR of NX over the walk. */
	bool writable, user, nx;
};

/*
 * Translate @va through the table whose top level is at guest-physical
 * @root (CR3 without its low flag bits, init_top_pgt, or an mm's pgd)
 * with @levels 4 or 5.  Returns 0, -EINVAL for a bad @levels or a
 * non-canonical @va, -ENOENT when an entry is not present, -EFAULT when
 * an entry points outside RAM, or the reader's -errno.
 */
int vmi_pgtable_walk(const struct vmi_phys *p, uint64_t root, int levels,
		     uint64_t va, struct vmi_xlate *out);

#endif
