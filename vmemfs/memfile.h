/* SPDX-License-Identifier: MIT */
/*
 * The VM's memory file on the main host: a sparse file in which a hole is
 * memory that is not on this host.  This module only ever reads it with
 * pread() and asks for its data map with lseek(SEEK_DATA/SEEK_HOLE):
 * it never maps it (a mapped read of a hole would allocate a page in the
 * file and the VM would silently lose the remote page) and never writes it.
 */
#ifndef VMEMFS_MEMFILE_H
#define VMEMFS_MEMFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/evictseq.h"

struct vmem_memfile {
	int fd;
	uint64_t size;			/* file size at open */
	struct vmem_seq_map *seq;	/* NULL when no seq file */
	int seq_fd;
	char *path;
	char *seq_path;
};

/*
 * Open @path read-only.  The seq file @seq_path (may be NULL for the
 * default PATH.seq) is used when it exists; its absence is not an error.
 */
int vmem_memfile_open(struct vmem_memfile *mf, const char *path,
		      const char *seq_path, char *err, size_t errlen);
void vmem_memfile_close(struct vmem_memfile *mf);

/*
 * Classify the run that starts at @off: sets *present and returns the end
 * of the run, clipped to @end.  Past the end of the file is a hole.
 * Returns 0 on success or -errno.
 */
int vmem_memfile_run(const struct vmem_memfile *mf, uint64_t off,
		     uint64_t end, bool *present, uint64_t *run_end);

/* True when every byte of [off, end) is still data. */
bool vmem_memfile_all_present(const struct vmem_memfile *mf, uint64_t off,
			      uint64_t end);

/* pread the whole range (short reads looped); 0 or -errno. */
int vmem_memfile_pread(const struct vmem_memfile *mf, void *buf, size_t len,
		       uint64_t off);

/* Seqlock helpers; with no seq file every read validates. */
static inline uint64_t vmem_memfile_seq_begin(const struct vmem_memfile *mf,
					      uint64_t off, uint64_t len,
					      bool *quiet)
{
	if (!mf->seq) {
		*quiet = true;
		return 0;
	}
	return vmem_seq_read_begin(mf->seq, off, len, quiet);
}

static inline bool vmem_memfile_seq_valid(const struct vmem_memfile *mf,
					  uint64_t off, uint64_t len,
					  uint64_t token)
{
	return !mf->seq || vmem_seq_read_valid(mf->seq, off, len, token);
}

/* Count of allocated bytes (st_blocks * 512), for tests and map. */
int64_t vmem_memfile_allocated(const struct vmem_memfile *mf);

#endif
