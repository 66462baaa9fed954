// SPDX-License-Identifier: MIT
/*
 * Chunks, homes and the data map: which sub-host is the home of an
 * offset, which pages of the memory file are resident, and the per-chunk
 * and global residency counts (see "Accounting" in pager_int.h).
 */
#include "pager_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/presence.h"
#include "../common/timeutil.h"

/*
 * page_in/page_out must answer within their timeout even when a fault
 * thread holds the chunk while it waits for a dead sub-host.  The wait
 * ends at the deadline itself, on the monotonic clock: no "time left"
 * computed from two readings (which wrapped to 2^64 ms when the second
 * was past the deadline), no wall clock (a step would stretch the wait).
 */
int vp_lock_until(struct vmem_pager *pg, uint64_t c, uint64_t deadline,
		  char *err, size_t errlen)
{
	struct timespec ts = vmem_timespec(deadline);
	int e;

	e = pthread_mutex_clocklock(vp_chunk_lock(pg, c), CLOCK_MONOTONIC,
				    &ts);
	if (e == 0)
		return 0;
	snprintf(err, errlen, "RAM at %#" PRIx64 " is busy (a sub-host may "
		 "be down): %s", c << pg->cshift, strerror(e));
	errno = e;
	return -1;
}

struct sub *vp_home_of(struct vmem_pager *pg, uint64_t off)
{
	for (size_t i = 0; i < pg->n_subs; i++)
		if (off >= pg->subs[i].start && off < pg->subs[i].end)
			return &pg->subs[i];
	return NULL;
}

/* End of the run of RAM from @off that shares @off's home, <= @limit. */
uint64_t vp_home_run_end(struct vmem_pager *pg, uint64_t off,
			 uint64_t limit)
{
	struct sub *s = vp_home_of(pg, off);
	uint64_t end = limit;

	if (s)
		return s->end < end ? s->end : end;
	for (size_t i = 0; i < pg->n_subs; i++)
		if (pg->subs[i].start > off && pg->subs[i].start < end)
			end = pg->subs[i].start;
	return end;
}

/*
 * Next data run of the memory file in [off, end): true and the run in
 * (*ds, *de), or false when there is none.  SEEK_DATA on shmem is exact to
 * the page, which is what makes the file's data map the resident set.
 */
bool vp_next_data(struct vmem_pager *pg, uint64_t off, uint64_t end,
		  uint64_t *ds, uint64_t *de)
{
	uint64_t pages;
	int64_t n;
	off_t d, h;

	if (off >= end)
		return false;
	/*
	 * The common answers, "all of it" and "none of it", at a cost
	 * bounded by the range (common/presence.h): SEEK_HOLE below walks
	 * the whole data run, which made every page-in of a VM with a large
	 * resident set cost milliseconds.
	 */
	n = vmem_pages_present(pg->fd, off, end, &pages);
	if (n == 0)
		return false;
	if (n > 0 && (uint64_t)n == pages && !(off & 4095) && !(end & 4095)) {
		*ds = off;
		*de = end;
		return true;
	}
	d = lseek(pg->fd, (off_t)off, SEEK_DATA);
	if (d < 0 || (uint64_t)d >= end)
		return false;
	/* [d, end) holds a hole unless all of it is data: then SEEK_HOLE
	 * would run past end, so ask cachestat instead. */
	n = vmem_pages_present(pg->fd, (uint64_t)d, end, &pages);
	if (n > 0 && (uint64_t)n == pages && !(end & 4095)) {
		*ds = (uint64_t)d;
		*de = end;
		return true;
	}
	h = lseek(pg->fd, d, SEEK_HOLE);
	if (h < 0 || (uint64_t)h > end)
		h = (off_t)end;
	*ds = (uint64_t)d;
	*de = (uint64_t)h;
	return true;
}

uint64_t vp_count_data(struct vmem_pager *pg, uint64_t off, uint64_t end)
{
	uint64_t ds, de, n = 0;

	while (vp_next_data(pg, off, end, &ds, &de)) {
		n += de - ds;
		off = de;
	}
	return n;
}

/* Recount chunk @c (its lock held) and move the global count along. */
void vp_recount(struct vmem_pager *pg, uint64_t c)
{
	uint64_t s = c << pg->cshift;
	uint64_t e = s + pg->cs < pg->size ? s + pg->cs : pg->size;
	uint64_t n = vp_count_data(pg, s, e), old = pg->chunk_res[c];

	STORE(pg->chunk_res[c], (uint32_t)n);
	if (n >= old)
		ADD(pg->resident, n - old);
	else
		__atomic_fetch_sub(&pg->resident, old - n, __ATOMIC_RELAXED);
	if (!pg->chunk_homed[c])
		return;
	if (n >= old)
		ADD(pg->homed_res, n - old);
	else
		__atomic_fetch_sub(&pg->homed_res, old - n, __ATOMIC_RELAXED);
	if (!old && n)
		ADD(pg->homed_nres, 1);
	else if (old && !n)
		__atomic_fetch_sub(&pg->homed_nres, 1, __ATOMIC_RELAXED);
}

/* What is resident before we start, in one pass over the data map. */
void vp_count_initial(struct vmem_pager *pg)
{
	uint64_t off = 0, ds, de;

	while (vp_next_data(pg, off, pg->size, &ds, &de)) {
		while (ds < de) {
			uint64_t c = ds >> pg->cshift;
			uint64_t ce = (c + 1) << pg->cshift;
			uint64_t e = ce < de ? ce : de;

			if (pg->chunk_homed[c]) {
				if (!pg->chunk_res[c])
					pg->homed_nres++;
				pg->homed_res += e - ds;
			}
			pg->chunk_res[c] += (uint32_t)(e - ds);
			pg->resident += e - ds;
			ds = e;
		}
		off = de;
	}
}
