// SPDX-License-Identifier: MIT
/*
 * The checked reader and the plain-file implementation (see phys.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"
#include "phys.h"

bool vmi_phys_contains(const struct vmi_phys *p, uint64_t gpa, uint64_t len)
{
	uint64_t end;
	size_t lo = 0, hi = p->nranges;

	if (!vmi_add_ok(gpa, len, &end))
		return false;
	/* Ranges are sorted: binary search for the one holding gpa. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct vmi_phys_range *r = &p->ranges[mid];

		if (gpa < r->start)
			hi = mid;
		else if (gpa >= r->end)
			lo = mid + 1;
		else
			return end <= r->end;
	}
	return false;
}

int vmi_phys_read(const struct vmi_phys *p, uint64_t gpa, void *buf,
		  size_t len)
{
	if (!len)
		return 0;
	if (!vmi_phys_contains(p, gpa, len))
		return -EFAULT;
	return p->read(p->ctx, gpa, buf, len);
}

int vmi_phys_is_local(const struct vmi_phys *p, uint64_t gpa, uint64_t len)
{
	if (!p->is_local)
		return 1;
	return p->is_local(p->ctx, gpa, len) > 0;
}

struct file_ctx {
	int fd;
	struct vmi_phys_range *ranges;
};

static int file_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	struct file_ctx *f = ctx;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(f->fd, (char *)buf + done, len - done,
				  (off_t)(gpa + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;	/* the file shrank: not RAM */
		done += (size_t)n;
	}
	return 0;
}

int vmi_phys_file_open(struct vmi_phys *p, const char *path,
		       const struct vmi_phys_range *ranges, size_t nranges,
		       char *err, size_t errlen)
{
	struct file_ctx *f;
	struct stat st;
	int e;

	memset(p, 0, sizeof(*p));
	f = calloc(1, sizeof(*f));
	if (!f)
		return vmi_err(err, errlen, ENOMEM, "%s: out of memory", path);
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		e = errno;
		free(f);
		return vmi_err(err, errlen, e, "%s: %s", path, strerror(e));
	}
	if (fstat(f->fd, &st) < 0 || st.st_size <= 0) {
		e = st.st_size <= 0 ? EINVAL : errno;
		close(f->fd);
		free(f);
		return vmi_err(err, errlen, e, "%s: %s", path,
			       e == EINVAL ? "empty or not a regular file" :
			       strerror(e));
	}
	if (!ranges || !nranges) {
		static const struct vmi_phys_range all = { 0, 0 };

		ranges = &all;
		nranges = 1;
	}
	f->ranges = calloc(nranges, sizeof(*f->ranges));
	if (!f->ranges) {
		close(f->fd);
		free(f);
		return vmi_err(err, errlen, ENOMEM, "%s: out of memory", path);
	}
	memcpy(f->ranges, ranges, nranges * sizeof(*ranges));
	if (nranges == 1 && !f->ranges[0].end)
		f->ranges[0].end = (uint64_t)st.st_size;
	for (size_t i = 0; i < nranges; i++) {
		if (f->ranges[i].start >= f->ranges[i].end ||
		    (i && f->ranges[i].start < f->ranges[i - 1].end) ||
		    f->ranges[i].end > (uint64_t)st.st_size) {
			close(f->fd);
			free(f->ranges);
			free(f);
			return vmi_err(err, errlen, EINVAL,
				       "%s: range %zu [%#llx, %#llx) is "
				       "unsorted or beyond the file's end",
				       path, i,
				       (unsigned long long)ranges[i].start,
				       (unsigned long long)ranges[i].end);
		}
	}
	p->read = file_read;
	p->is_local = NULL;
	p->ctx = f;
	p->ranges = f->ranges;
	p->nranges = nranges;
	return 0;
}

void vmi_phys_file_close(struct vmi_phys *p)
{
	struct file_ctx *f = p->ctx;

	if (p->read != file_read || !f)
		return;
	close(f->fd);
	free(f->ranges);
	free(f);
	memset(p, 0, sizeof(*p));
}
