// SPDX-License-Identifier: MIT
/*
 * Split migration's destination: the plan's checks on incoming pages and
 * the commit (incoming.h).
 */
#include "incoming.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int vmem_incoming_check_page(const struct vmem_plan *p, uint64_t off,
			     char *err, size_t errlen)
{
	const struct vmem_plan_window *w;

	if (off >= p->size) {
		snprintf(err, errlen, "RAM offset %#" PRIx64 " is past the "
			 "end of RAM (%#" PRIx64 ")", off, p->size);
		errno = EINVAL;
		return -1;
	}
	w = &p->w[vmem_plan_find(p, off)];
	if (w->main)
		return 0;
	snprintf(err, errlen, "the stream carries a page at %#" PRIx64
		 " of window [%#" PRIx64 ", %#" PRIx64 "), which the plan "
		 "sends to sub-host %ld", off, w->start, w->end, w->home);
	errno = EINVAL;
	return -1;
}

/* The next data run in [off, end): true and (*ds, *de). */
static bool next_data(int fd, uint64_t off, uint64_t end, uint64_t *ds,
		      uint64_t *de)
{
	off_t d, h;

	if (off >= end)
		return false;
	d = lseek(fd, (off_t)off, SEEK_DATA);
	if (d < 0 || (uint64_t)d >= end)
		return false;
	h = lseek(fd, d, SEEK_HOLE);
	if (h < 0 || (uint64_t)h > end)
		h = (off_t)end;
	*ds = (uint64_t)d;
	*de = (uint64_t)h;
	return true;
}

uint64_t vmem_incoming_data_in(int mem_fd, uint64_t s, uint64_t e)
{
	uint64_t n = 0, ds, de;

	while (next_data(mem_fd, s, e, &ds, &de)) {
		n += de - ds;
		s = de;
	}
	return n;
}

int vmem_incoming_commit(const struct vmem_plan *p, int mem_fd,
			 uint64_t *punched, char *err, size_t errlen)
{
	*punched = 0;
	for (size_t i = 0; i < p->n; i++) {
		const struct vmem_plan_window *w = &p->w[i];
		uint64_t pos = w->start, ds, de;

		if (w->main)
			continue;
		while (next_data(mem_fd, pos, w->end, &ds, &de)) {
			if (fallocate(mem_fd, FALLOC_FL_PUNCH_HOLE |
				      FALLOC_FL_KEEP_SIZE, (off_t)ds,
				      (off_t)(de - ds)) < 0) {
				snprintf(err, errlen, "punching [%#" PRIx64
					 ", %#" PRIx64 ") of a cold window "
					 "from the memory file: %s", ds, de,
					 strerror(errno));
				return -1;
			}
			*punched += de - ds;
			pos = de;
		}
	}
	return 0;
}
