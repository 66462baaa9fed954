/* SPDX-License-Identifier: MIT */
/*
 * A file's data map as the kernel reports it (SEEK_DATA / SEEK_HOLE) and
 * its allocation (st_blocks): the tests' own, independent view of which
 * pages of a memory file are present, to compare with what vmemfs, the
 * pager or QEMU claim.  The one SEEK_DATA walker of the tests.
 *
 * Like hosts.h, nothing here calls Check's assertions: errors come back
 * as -1 and a message.
 */
#ifndef VMEM_TESTS_DATAMAP_H
#define VMEM_TESTS_DATAMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vt_extent {
	uint64_t start, end;		/* [start, end) holds data */
};

struct vt_datamap {
	uint64_t blocks;		/* st_blocks of the file (512 bytes) */
	uint64_t bytes;			/* sum of the extents' lengths */
	size_t n;
	struct vt_extent *ext;		/* ascending, disjoint; malloc'd */
};

/*
 * The data extents of @path that lie in [@start, @end), clipped to it
 * (@end UINT64_MAX: to the end of the file), and the file's st_blocks.
 * Returns 0, or -1 with a message naming the file (a SEEK_HOLE that does
 * not move past its SEEK_DATA is an error too); @m then holds nothing.
 */
int vt_datamap_get(const char *path, uint64_t start, uint64_t end,
		   struct vt_datamap *m, char *err, size_t errlen);
void vt_datamap_free(struct vt_datamap *m);
/* Whether byte @off lies in one of the extents. */
bool vt_datamap_has(const struct vt_datamap *m, uint64_t off);
/*
 * 0 when @a and @b have the same st_blocks and the same extents, else -1
 * with a message naming the first difference.
 */
int vt_datamap_cmp(const struct vt_datamap *a, const struct vt_datamap *b,
		   char *err, size_t errlen);

#endif
