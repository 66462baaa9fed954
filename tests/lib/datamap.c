// SPDX-License-Identifier: MIT
/* A file's data map from SEEK_DATA / SEEK_HOLE (see datamap.h). */
#include "datamap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hosts.h"

int vt_datamap_get(const char *path, uint64_t start, uint64_t end,
		   struct vt_datamap *m, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY);
	size_t cap = 1024;
	uint64_t pos = start;
	struct stat st;

	memset(m, 0, sizeof(*m));
	if (fd < 0) {
		vt_set_err(err, errlen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		vt_set_err(err, errlen, "fstat %s: %s", path, strerror(errno));
		goto fail;
	}
	m->blocks = (uint64_t)st.st_blocks;
	m->ext = malloc(cap * sizeof(*m->ext));
	if (!m->ext) {
		vt_set_err(err, errlen, "out of memory");
		goto fail;
	}
	while (pos < end) {
		/* ENXIO: no data at or after pos. */
		off_t d = lseek(fd, (off_t)pos, SEEK_DATA), h;

		if (d < 0 || (uint64_t)d >= end)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		if (h <= d) {
			vt_set_err(err, errlen, "%s: SEEK_HOLE from data at "
				   "0x%jx gave %jd", path, (intmax_t)d,
				   (intmax_t)h);
			goto fail;
		}
		if (m->n == cap) {
			struct vt_extent *x;

			cap *= 2;
			x = realloc(m->ext, cap * sizeof(*x));
			if (!x) {
				vt_set_err(err, errlen, "out of memory");
				goto fail;
			}
			m->ext = x;
		}
		m->ext[m->n].start = (uint64_t)d;
		m->ext[m->n].end = (uint64_t)h < end ? (uint64_t)h : end;
		m->bytes += m->ext[m->n].end - m->ext[m->n].start;
		pos = m->ext[m->n].end;
		m->n++;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	vt_datamap_free(m);
	return -1;
}

void vt_datamap_free(struct vt_datamap *m)
{
	free(m->ext);
	memset(m, 0, sizeof(*m));
}

bool vt_datamap_has(const struct vt_datamap *m, uint64_t off)
{
	for (size_t i = 0; i < m->n; i++)
		if (off >= m->ext[i].start && off < m->ext[i].end)
			return true;
	return false;
}

int vt_datamap_cmp(const struct vt_datamap *a, const struct vt_datamap *b,
		   char *err, size_t errlen)
{
	if (a->blocks != b->blocks) {
		vt_set_err(err, errlen, "memory file st_blocks changed: %"
			   PRIu64 " -> %" PRIu64, a->blocks, b->blocks);
		return -1;
	}
	if (a->n != b->n) {
		vt_set_err(err, errlen, "data extents changed: %zu -> %zu",
			   a->n, b->n);
		return -1;
	}
	for (size_t i = 0; i < a->n; i++)
		if (a->ext[i].start != b->ext[i].start ||
		    a->ext[i].end != b->ext[i].end) {
			vt_set_err(err, errlen, "data extent %zu changed", i);
			return -1;
		}
	return 0;
}
