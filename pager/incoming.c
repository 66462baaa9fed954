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
#include <sys/stat.h>
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
			 uint64_t *touched, char *err, size_t errlen)
{
	const struct vmem_plan_window *first = NULL;
	uint64_t fs = 0, fe = 0;
	struct stat st;

	*touched = 0;
	if (fstat(mem_fd, &st) < 0) {
		snprintf(err, errlen, "the memory file: fstat: %s",
			 strerror(errno));
		return -1;
	}
	if ((uint64_t)st.st_size < p->size) {
		snprintf(err, errlen, "the memory file has %" PRIu64 " bytes, "
			 "less than RAM's %" PRIu64, (uint64_t)st.st_size,
			 p->size);
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct vmem_plan_window *w = &p->w[i];
		uint64_t pos = w->start, ds, de;

		if (w->main)
			continue;
		while (next_data(mem_fd, pos, w->end, &ds, &de)) {
			if (!first) {
				first = w;
				fs = ds;
				fe = de;
			}
			*touched += de - ds;
			pos = de;
		}
	}
	if (!first)
		return 0;
	snprintf(err, errlen, "%" PRIu64 " bytes of cold windows were "
		 "touched before the commit, first [%#" PRIx64 ", %#" PRIx64
		 ") of window [%#" PRIx64 ", %#" PRIx64 ") homed on sub-host "
		 "%ld: a fault on memory the plan left on a sub-host",
		 *touched, fs, fe, first->start, first->end, first->home);
	errno = EIO;
	return -1;
}
