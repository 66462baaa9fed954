/* SPDX-License-Identifier: MIT */
/*
 * How much of a range of a tmpfs file is present, at a cost bounded by the
 * range.  cachestat(2) (Linux 6.5) counts a file's pages in the page cache
 * over a range; for tmpfs (no swap) that is exactly its data map.
 * lseek(SEEK_HOLE) answers a different question ("where is the next
 * hole?") by walking from the offset until it finds one: from the start of
 * a 512 MiB run of data it walks all 512 MiB (~2 ms), on every call.
 * Used by vmemfs (memfile.c) and the pager alike.
 */
#ifndef VMEM_PRESENCE_H
#define VMEM_PRESENCE_H

#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

struct vmem_cs_range {
	uint64_t off;
	uint64_t len;
};

struct vmem_cs_result {
	uint64_t nr_cache;
	uint64_t nr_dirty;
	uint64_t nr_writeback;
	uint64_t nr_evicted;
	uint64_t nr_recently_evicted;
};

/*
 * Pages of @fd present in the 4 KiB pages covering [off, end), and their
 * number in *pages; -1 when the kernel cannot tell (no cachestat).
 */
static inline int64_t vmem_pages_present(int fd, uint64_t off, uint64_t end,
					 uint64_t *pages)
{
	struct vmem_cs_range r;
	struct vmem_cs_result cs;

	r.off = off & ~(uint64_t)4095;
	r.len = ((end + 4095) & ~(uint64_t)4095) - r.off;
	*pages = r.len / 4096;
	if (syscall(SYS_cachestat, fd, &r, &cs, 0) < 0)
		return -1;
	return (int64_t)cs.nr_cache;
}

#endif
