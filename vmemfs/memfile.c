// SPDX-License-Identifier: MIT
/*
 * The memory file, read-only.  See memfile.h for why we never map it.
 * The seq file beside it is a different matter: it is small, always
 * written by its owner before we look, and mapping it lets a reader check
 * it with two loads instead of two syscalls per read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/presence.h"
#include "memfile.h"

static int open_seq(struct vmem_memfile *mf, const char *seq_path,
		    char *err, size_t errlen)
{
	struct stat st;
	void *p;

	if (seq_path)
		mf->seq_path = strdup(seq_path);
	else if (asprintf(&mf->seq_path, "%s%s", mf->path, VMEM_SEQ_SUFFIX) < 0)
		mf->seq_path = NULL;
	if (!mf->seq_path) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}

	mf->seq_fd = open(mf->seq_path, O_RDONLY | O_CLOEXEC);
	if (mf->seq_fd < 0) {
		/* No mover publishes a sequence: we rely on re-checking the
		 * data map alone.  Only an explicitly named file must exist. */
		if (errno == ENOENT && !seq_path)
			return 0;
		snprintf(err, errlen, "%s: %s", mf->seq_path, strerror(errno));
		return -1;
	}
	if (fstat(mf->seq_fd, &st) < 0 || st.st_size < VMEM_SEQ_FILE_SIZE) {
		snprintf(err, errlen, "%s: eviction sequence file is smaller than %d bytes",
			 mf->seq_path, VMEM_SEQ_FILE_SIZE);
		return -1;
	}
	p = mmap(NULL, VMEM_SEQ_FILE_SIZE, PROT_READ, MAP_SHARED, mf->seq_fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "%s: mmap: %s", mf->seq_path, strerror(errno));
		return -1;
	}
	mf->seq = p;
	return 0;
}

int vmem_memfile_open(struct vmem_memfile *mf, const char *path,
		      const char *seq_path, char *err, size_t errlen)
{
	struct stat st;

	memset(mf, 0, sizeof(*mf));
	mf->fd = -1;
	mf->seq_fd = -1;
	mf->path = strdup(path);
	if (!mf->path) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	mf->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (mf->fd < 0 && errno == EPERM)
		mf->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (mf->fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(mf->fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	mf->size = st.st_size;
	if (open_seq(mf, seq_path, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	vmem_memfile_close(mf);
	return -1;
}

void vmem_memfile_close(struct vmem_memfile *mf)
{
	if (mf->seq)
		munmap(mf->seq, VMEM_SEQ_FILE_SIZE);
	if (mf->seq_fd >= 0)
		close(mf->seq_fd);
	if (mf->fd >= 0)
		close(mf->fd);
	free(mf->path);
	free(mf->seq_path);
	memset(mf, 0, sizeof(*mf));
	mf->fd = -1;
	mf->seq_fd = -1;
}

static bool no_cachestat;

/* 1: every page of [off, end) is present; 0: not; -1: cannot tell. */
static int range_all_present(const struct vmem_memfile *mf, uint64_t off,
			     uint64_t end)
{
	uint64_t pages;
	int64_t n;

	if (__atomic_load_n(&no_cachestat, __ATOMIC_RELAXED))
		return -1;
	n = vmem_pages_present(mf->fd, off, end, &pages);
	if (n < 0) {
		if (errno == ENOSYS || errno == EOPNOTSUPP)
			__atomic_store_n(&no_cachestat, true, __ATOMIC_RELAXED);
		return -1;
	}
	return (uint64_t)n == pages;
}

int vmem_memfile_run(const struct vmem_memfile *mf, uint64_t off,
		     uint64_t end, bool *present, uint64_t *run_end)
{
	off_t next;

	if (end <= mf->size && range_all_present(mf, off, end) == 1) {
		*present = true;
		*run_end = end;
		return 0;
	}

	/* SEEK_HOLE first: for the common case of a present page, one
	 * call answers both "is it data" and "until where". */
	next = lseek(mf->fd, off, SEEK_HOLE);
	if (next < 0) {
		if (errno != ENXIO)
			return -errno;
		/* At or past the end of the file: the rest is a hole (ram-size
		 * may be larger than the file). */
		*present = false;
		*run_end = end;
		return 0;
	}
	if ((uint64_t)next > off) {
		*present = true;
		*run_end = (uint64_t)next < end ? (uint64_t)next : end;
		return 0;
	}
	next = lseek(mf->fd, off, SEEK_DATA);
	*present = false;
	if (next < 0) {
		if (errno != ENXIO)
			return -errno;
		*run_end = end;	/* no data after off */
		return 0;
	}
	*run_end = (uint64_t)next < end ? (uint64_t)next : end;
	return 0;
}

bool vmem_memfile_all_present(const struct vmem_memfile *mf, uint64_t off,
			      uint64_t end)
{
	int all = range_all_present(mf, off, end);
	off_t hole;

	if (all >= 0)
		return all;
	hole = lseek(mf->fd, off, SEEK_HOLE);
	return hole >= 0 && (uint64_t)hole >= end;
}

int vmem_memfile_pread(const struct vmem_memfile *mf, void *buf, size_t len,
		       uint64_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = pread(mf->fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			/* Truncated under us: what is gone is not ours to
			 * invent.  The caller re-checks the data map. */
			return -ENODATA;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

int64_t vmem_memfile_allocated(const struct vmem_memfile *mf)
{
	struct stat st;

	if (fstat(mf->fd, &st) < 0)
		return -errno;
	return (int64_t)st.st_blocks * 512;
}
