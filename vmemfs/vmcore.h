/* SPDX-License-Identifier: MIT */
/*
 * `vmcore`: the guest's memory as an ELF64 ET_CORE file in the shape kdump
 * gives /proc/vmcore, built on the fly and never copied.  The file is
 *
 *   ELF header | program headers | VMCOREINFO note | zeros to 4 KiB |
 *   the bytes of every guest-physical RAM range, in GPA order
 *
 * with one PT_NOTE (the guest's own VMCOREINFO note, byte for byte; none
 * while the kernel is not known), one PT_LOAD per run of contiguous RAM
 * (p_paddr = GPA, p_vaddr = page_offset_base + GPA, the direct map, or the
 * GPA itself while the kernel is not known), and one more PT_LOAD whose
 * p_vaddr is the kernel image's mapping and whose file bytes are the same
 * as those of the RAM it lives in (drgn reads swapper_pg_dir through it).
 *
 * Building the header is a pure function of its inputs (vmem_vmcore_build),
 * so it is tested without FUSE or a guest; vmem_vmcore_read() serves any
 * range of the file, taking the data part from a guest-physical reader
 * (in vmemfs: vmem_physmem_read, the path `mem` uses).
 */
#ifndef VMEMFS_VMCORE_H
#define VMEMFS_VMCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gpa.h"

/* The data part starts at a multiple of this. */
#define VMEM_VMCORE_ALIGN 4096
/* Largest note we carry (the kernel's VMCOREINFO note is one page). */
#define VMEM_VMCORE_NOTE_MAX (128 * 1024)
/* At most this many program headers: e_phnum stays below PN_XNUM. */
#define VMEM_VMCORE_MAX_PHDRS 4096

/* What the file shows; everything is copied by vmem_vmcore_build(). */
struct vmem_vmcore_info {
	const struct vmem_gpa_map *map;	/* RAM by GPA (physmem's map) */
	const void *note;		/* VMCOREINFO note or NULL */
	size_t note_len;
	bool kernel_known;		/* the fields below are meaningful */
	uint64_t page_offset;		/* page_offset_base: the direct map */
	uint64_t image_vaddr;		/* the kernel image's mapping ... */
	uint64_t image_paddr;		/* ... of these guest-physical bytes */
	uint64_t image_len;		/* 0: no image PT_LOAD */
};

/* One run of contiguous guest-physical RAM and where the file has it. */
struct vmem_vmcore_seg {
	uint64_t gpa;
	uint64_t len;
	uint64_t off;			/* file offset of its first byte */
};

struct vmem_vmcore {
	unsigned char *hdr;		/* bytes [0, hdr_len) of the file */
	size_t hdr_len;			/* = offset of the data part */
	struct vmem_vmcore_seg *seg;	/* sorted by gpa and by off */
	size_t nseg;
	size_t nphdr;
	uint64_t size;			/* of the whole file */
};

/*
 * Build the header and the segment table for @in.  Adjacent extents of
 * the map merge into one segment.  The image PT_LOAD is left out when its
 * physical range is not inside one segment (clipped to the segment that
 * holds its start).  Returns 0, or -1 with a message (no RAM, too many
 * ranges, a note too large, out of memory); @vc then needs no free.
 */
int vmem_vmcore_build(struct vmem_vmcore *vc,
		      const struct vmem_vmcore_info *in,
		      char *err, size_t errlen);
void vmem_vmcore_free(struct vmem_vmcore *vc);

/* The size the file built from @in would have (for stat), or 0. */
uint64_t vmem_vmcore_size(const struct vmem_vmcore_info *in);

/* Reads @len bytes of guest-physical memory at @gpa: bytes or -errno. */
typedef ssize_t vmem_vmcore_read_fn(void *ctx, void *buf, size_t len,
				    uint64_t gpa);

/*
 * Read [@off, @off + @len) of the file (clipped at its end): header bytes
 * from vc->hdr, data bytes through @read at their GPA.  Returns the bytes
 * read (0 at or past the end) or the first error of @read; a short read
 * of the data part is -EIO, never a short count that looks like EOF.
 */
ssize_t vmem_vmcore_read(const struct vmem_vmcore *vc,
			 vmem_vmcore_read_fn *read, void *ctx,
			 void *buf, size_t len, uint64_t off);

#endif
