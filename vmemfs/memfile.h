/* SPDX-License-Identifier: MIT */
/*
 * The VM's memory file on the main host: a sparse file in which a hole is
 * memory that is not on this host.  This module only ever reads it with
 * pread() and asks for its data map (common/presence.h: cachestat on tmpfs,
 * lseek(SEEK_DATA/SEEK_HOLE) elsewhere):
 * it never maps it (a mapped read of a hole would allocate a page in the
 * file and the VM would silently lose the remote page) and never writes it.
 */
#ifndef VMEMFS_MEMFILE_H
#define VMEMFS_MEMFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#include "../common/evictseq.h"

struct vmem_memfile {
	int fd;
	uint64_t size;			/* file size at open */
	struct vmem_seq_map *seq;	/* NULL when no seq file */
	int seq_fd;
	char *path;
	char *seq_path;
	int kind;			/* enum vmem_datamap_kind */
	dev_t dev;			/* identity of the file at open */
	ino_t ino;
	/*
	 * Atomic.  seq_lost: the seq file was truncated under us, its
	 * mapping now reads zeros, and reads go on as without one.  dead:
	 * the memory file was deleted or replaced; every read fails.
	 */
	bool seq_lost, seq_lost_logged, dead;
	uint64_t checked_ns;		/* atomic: last look at the path */
	uint64_t dead_ns;		/* when it was marked dead */
	struct vmem_memfile_retired *retired;	/* old paths, see revive */
	pthread_mutex_t check_mu;	/* one checker at a time */
};

/*
 * Open @path read-only.  The eviction sequence file PATH.seq is used
 * when it exists; its absence is not an error.
 * A memory file on a file system whose data map vmemfs cannot read
 * exactly is refused (common/presence.h).  An open memfile must stay
 * where it is (the SIGBUS handler of its seq mapping points to it).
 */
int vmem_memfile_open(struct vmem_memfile *mf, const char *path,
		      char *err, size_t errlen);
void vmem_memfile_close(struct vmem_memfile *mf);

/*
 * Is the file we read still the one at the path?  Cheap enough for every
 * read: an fstat (a deleted file has no links); the path itself is looked
 * at when @force or at most every VMEM_MEMFILE_CHECK_MS.  The first time
 * it is gone or replaced, this logs it, releases the old file (its tmpfs
 * memory) and marks the memfile dead: from then on every read fails, since
 * serving a dead VM's memory as the live one's is worse than no answer.
 * Also notices a truncated seq file.  0, or -EIO when dead.
 */
#define VMEM_MEMFILE_CHECK_MS 10
int vmem_memfile_check(struct vmem_memfile *mf, bool force);

/*
 * Bring a dead memfile back on the file at @path, which must be as large
 * as the old one: a VM that was stopped and started again under a new
 * memory file (a libvirt domain).  Readers go on with the same mf->fd
 * (now the new file, dup3) and the same seq mapping address (mapped over,
 * MAP_FIXED), so nothing they hold changes under them; they see dead
 * until everything is in place.  Refused until @quiet_ms (the cache TTL:
 * no cache entry of the old VM is served after it) has passed since the
 * memfile died.  0, or -1 with a message.  One caller at a time.
 */
int vmem_memfile_revive(struct vmem_memfile *mf, const char *path,
			uint64_t quiet_ms, char *err, size_t errlen);

static inline bool vmem_memfile_dead(const struct vmem_memfile *mf)
{
	return __atomic_load_n(&mf->dead, __ATOMIC_ACQUIRE);
}

/*
 * Classify the run that starts at @off: sets *present and returns the end
 * of the run, clipped to @end.  Past the end of the file is a hole.
 * Returns 0 on success or -errno.
 */
int vmem_memfile_run(const struct vmem_memfile *mf, uint64_t off,
		     uint64_t end, bool *present, uint64_t *run_end);

/*
 * The same as vmem_memfile_run(), at a cost proportional to the run it
 * reports (SEEK_HOLE/SEEK_DATA only): for walking the whole map.
 */
int vmem_memfile_seek_run(const struct vmem_memfile *mf, uint64_t off,
			  uint64_t end, bool *present, uint64_t *run_end);

/* True when every byte of [off, end) is still data. */
bool vmem_memfile_all_present(const struct vmem_memfile *mf, uint64_t off,
			      uint64_t end);

/* pread the whole range (short reads looped); 0 or -errno. */
int vmem_memfile_pread(const struct vmem_memfile *mf, void *buf, size_t len,
		       uint64_t off);

/*
 * Seqlock helpers; with no seq file every read validates.  Once the seq
 * file is lost (seq_lost), tokens are unique per call: readers validate
 * as without one, and the cache, which keys its entries by token, never
 * hits again (no sequence, no cache).
 */
uint64_t vmem_memfile_lost_token(void);

static inline uint64_t vmem_memfile_seq_begin(const struct vmem_memfile *mf,
					      uint64_t off, uint64_t len,
					      bool *quiet)
{
	if (!mf->seq) {
		*quiet = true;
		return 0;
	}
	if (__atomic_load_n(&mf->seq_lost, __ATOMIC_ACQUIRE)) {
		*quiet = true;
		return vmem_memfile_lost_token();
	}
	return vmem_seq_read_begin(mf->seq, off, len, quiet);
}

static inline bool vmem_memfile_seq_valid(const struct vmem_memfile *mf,
					  uint64_t off, uint64_t len,
					  uint64_t token)
{
	return !mf->seq || __atomic_load_n(&mf->seq_lost, __ATOMIC_ACQUIRE) ||
	       vmem_seq_read_valid(mf->seq, off, len, token);
}

/*
 * A memfile with no memory file behind it, only the eviction sequence
 * @seq (may be NULL: none), for a backend driven without a VM (its tests,
 * tools): the seqlock helpers work, nothing else may be called.  Nothing
 * to close; @seq stays the caller's.
 */
void vmem_memfile_init_seq_only(struct vmem_memfile *mf,
				struct vmem_seq_map *seq);

/* Count of allocated bytes (st_blocks * 512), for tests and map. */
int64_t vmem_memfile_allocated(const struct vmem_memfile *mf);

#endif
