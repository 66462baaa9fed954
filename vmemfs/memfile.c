// SPDX-License-Identifier: MIT
/*
 * The memory file, read-only.  See memfile.h for why we never map it.
 * The seq file beside it is a different matter: it is small, always
 * written by its owner before we look, and mapping it lets a reader check
 * it with two loads instead of two syscalls per read.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/presence.h"
#include "../common/timeutil.h"
#include "log.h"
#include "memfile.h"

/* ---- a seq file truncated under us ---------------------------------- */

/*
 * A shared mapping of a file raises SIGBUS on a load from a page past the
 * file's end: `truncate -s 0 MEMFILE.seq` used to kill the daemon.
 * Other ways were weighed:
 *   - fstat before each use is racy (truncation between the two);
 *   - a private snapshot would not see the live counters;
 *   - pread() of the counters costs two syscalls per run, and a kernel
 *     copy_to_user() does not promise whole 64-bit loads, so a counter
 *     read while it moves could come out torn and validate a stale token;
 *   - a lease makes the truncater wait for us; seals exist for memfd only.
 * So the mapping stays and SIGBUS on it is caught: the handler marks the
 * memfile seq_lost and puts an anonymous zero page in place of the file's
 * (mmap MAP_FIXED replaces it atomically, the address stays valid), and
 * the faulting load, restarted, reads zeros.  The seqlock helpers see
 * seq_lost and behave as with no seq file at all, and the next check logs
 * it.  A SIGBUS anywhere else goes on to whatever handled it before.
 */
#define MAX_SEQ_MAPS 16

static struct {
	char *addr;			/* atomic; NULL = free slot */
	struct vmem_memfile *mf;
} seq_maps[MAX_SEQ_MAPS];
static struct sigaction old_bus;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t seq_maps_mu = PTHREAD_MUTEX_INITIALIZER;

/* Replace the seq mapping at @addr by zeros; async-signal-safe. */
static int seq_map_zero(char *addr)
{
	return mmap(addr, VMEM_SEQ_FILE_SIZE, PROT_READ,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
	       MAP_FAILED ? -1 : 0;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char *a = si->si_addr;

	for (int i = 0; i < MAX_SEQ_MAPS; i++) {
		char *base = __atomic_load_n(&seq_maps[i].addr,
					     __ATOMIC_ACQUIRE);
		struct vmem_memfile *mf;

		if (!base || a < base || a >= base + VMEM_SEQ_FILE_SIZE)
			continue;
		mf = __atomic_load_n(&seq_maps[i].mf, __ATOMIC_ACQUIRE);
		__atomic_store_n(&mf->seq_lost, true, __ATOMIC_SEQ_CST);
		if (seq_map_zero(base) == 0)
			return;		/* the load runs again, on zeros */
		break;
	}
	if (old_bus.sa_flags & SA_SIGINFO) {
		old_bus.sa_sigaction(sig, si, uc);
		return;
	}
	if (old_bus.sa_handler != SIG_DFL && old_bus.sa_handler != SIG_IGN) {
		old_bus.sa_handler(sig);
		return;
	}
	/* Not ours: the default action, when the load is retried. */
	signal(SIGBUS, SIG_DFL);
}

static void install_sigbus(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old_bus);
}

static int seq_map_register(struct vmem_memfile *mf)
{
	int ret = -1;

	pthread_once(&bus_once, install_sigbus);
	pthread_mutex_lock(&seq_maps_mu);
	for (int i = 0; i < MAX_SEQ_MAPS; i++) {
		if (seq_maps[i].addr)
			continue;
		__atomic_store_n(&seq_maps[i].mf, mf, __ATOMIC_RELEASE);
		__atomic_store_n(&seq_maps[i].addr, (char *)mf->seq,
				 __ATOMIC_RELEASE);
		ret = 0;
		break;
	}
	pthread_mutex_unlock(&seq_maps_mu);
	return ret;
}

static void seq_map_unregister(const struct vmem_memfile *mf)
{
	pthread_mutex_lock(&seq_maps_mu);
	for (int i = 0; i < MAX_SEQ_MAPS; i++)
		if (seq_maps[i].addr == (char *)mf->seq)
			__atomic_store_n(&seq_maps[i].addr, NULL,
					 __ATOMIC_RELEASE);
	pthread_mutex_unlock(&seq_maps_mu);
}

uint64_t vmem_memfile_lost_token(void)
{
	/* Real tokens are sums of 32 counters: never near 2^63. */
	static uint64_t next;

	return (1ull << 63) | __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);
}

/* The seq file is no longer to be trusted: zeros from now on. */
static void seq_lose(struct vmem_memfile *mf, const char *why)
{
	if (!mf->seq)
		return;
	__atomic_store_n(&mf->seq_lost, true, __ATOMIC_SEQ_CST);
	if (seq_map_zero((char *)mf->seq) < 0)
		vmem_log(LOG_ERR, "%s: cannot replace its mapping: %s",
			 mf->seq_path, strerror(errno));
	if (!__atomic_exchange_n(&mf->seq_lost_logged, true, __ATOMIC_SEQ_CST))
		vmem_log(LOG_ERR, "%s: %s: reading on without the eviction "
			 "sequence file (page moves are caught by the data map "
			 "alone, fetched data is not cached)", mf->seq_path,
			 why);
}

/* ---- open and close ------------------------------------------------- */

static int open_seq(struct vmem_memfile *mf, char *err, size_t errlen)
{
	struct stat st;
	void *p;

	if (asprintf(&mf->seq_path, "%s%s", mf->path, VMEM_SEQ_SUFFIX) < 0)
		mf->seq_path = NULL;
	if (!mf->seq_path) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}

	mf->seq_fd = open(mf->seq_path, O_RDONLY | O_CLOEXEC);
	if (mf->seq_fd < 0) {
		/* No mover publishes a sequence: we rely on re-checking the
		 * data map alone. */
		if (errno == ENOENT)
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
	if (seq_map_register(mf) < 0) {
		snprintf(err, errlen, "%s: more than %d memory files open",
			 mf->seq_path, MAX_SEQ_MAPS);
		return -1;
	}
	return 0;
}

void vmem_memfile_init_seq_only(struct vmem_memfile *mf,
				struct vmem_seq_map *seq)
{
	memset(mf, 0, sizeof(*mf));
	pthread_mutex_init(&mf->check_mu, NULL);
	mf->fd = -1;
	mf->seq_fd = -1;
	mf->seq = seq;
}

int vmem_memfile_open(struct vmem_memfile *mf, const char *path,
		      char *err, size_t errlen)
{
	enum vmem_datamap_kind kind;
	struct stat st;

	memset(mf, 0, sizeof(*mf));
	pthread_mutex_init(&mf->check_mu, NULL);
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
	if (vmem_datamap_kind(mf->fd, path, &kind, err, errlen) < 0)
		goto fail;
	mf->kind = kind;
	mf->dev = st.st_dev;
	mf->ino = st.st_ino;
	mf->size = st.st_size;
	if (open_seq(mf, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	vmem_memfile_close(mf);
	return -1;
}

/* The paths a revive replaced: readers may still hold them. */
struct vmem_memfile_retired {
	char *path, *seq_path;
	struct vmem_memfile_retired *next;
};

void vmem_memfile_close(struct vmem_memfile *mf)
{
	while (mf->retired) {
		struct vmem_memfile_retired *r = mf->retired;

		mf->retired = r->next;
		free(r->path);
		free(r->seq_path);
		free(r);
	}
	if (mf->seq) {
		seq_map_unregister(mf);
		munmap(mf->seq, VMEM_SEQ_FILE_SIZE);
	}
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

/* ---- is it still the VM's file? ------------------------------------- */

/*
 * The VM we were reading is gone.  Readers keep using mf->fd, so it is
 * not closed (its number could be reused under them) but pointed at an
 * empty file, atomically (dup3): that releases the old file's memory, and
 * a read that raced this finds nothing there; every user of the data map
 * checks `dead` after asking, so nothing read from either file is served
 * past this point.
 */
static void mark_dead(struct vmem_memfile *mf, const char *why)
{
	int empty;

	__atomic_store_n(&mf->dead_ns, vmem_now_ns(), __ATOMIC_SEQ_CST);
	__atomic_store_n(&mf->dead, true, __ATOMIC_SEQ_CST);
	vmem_log(LOG_ERR, "%s: %s: the VM whose memory this mount showed is "
		 "gone; reads fail with EIO until vmemfs is restarted for the "
		 "new one (a libvirt domain's next start is followed)",
		 mf->path, why);
	empty = memfd_create("vmemfs-dead", MFD_CLOEXEC);
	if (empty >= 0) {
		if (dup3(empty, mf->fd, O_CLOEXEC) < 0)
			vmem_log(LOG_ERR, "%s: cannot release the old file: %s",
				 mf->path, strerror(errno));
		close(empty);
	}
	if (mf->seq) {
		__atomic_store_n(&mf->seq_lost_logged, true, __ATOMIC_SEQ_CST);
		seq_lose(mf, "released");
	}
}

int vmem_memfile_check(struct vmem_memfile *mf, bool force)
{
	char why[160];
	struct stat st;
	uint64_t now;

	if (vmem_memfile_dead(mf))
		return -EIO;
	if (mf->fd < 0)
		return 0;
	/* Deleted, or renamed over: its last link is gone. */
	if (fstat(mf->fd, &st) == 0 && st.st_nlink == 0) {
		snprintf(why, sizeof(why), "was deleted (inode %llu)",
			 (unsigned long long)mf->ino);
		goto dead;
	}
	if (__atomic_load_n(&mf->seq_lost, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&mf->seq_lost_logged, __ATOMIC_ACQUIRE))
		seq_lose(mf, "truncated under us");
	now = vmem_now_ns();
	if (!force && now - __atomic_load_n(&mf->checked_ns, __ATOMIC_RELAXED) <
		      VMEM_MEMFILE_CHECK_MS * VMEM_NS_PER_MS)
		return 0;
	__atomic_store_n(&mf->checked_ns, now, __ATOMIC_RELAXED);
	if (stat(mf->path, &st) < 0) {
		if (errno != ENOENT)
			return 0;	/* cannot tell; the fstat still holds */
		snprintf(why, sizeof(why), "is no longer there");
		goto dead;
	}
	if (st.st_dev != mf->dev || st.st_ino != mf->ino) {
		snprintf(why, sizeof(why), "was replaced (inode %llu, now %llu)",
			 (unsigned long long)mf->ino,
			 (unsigned long long)st.st_ino);
		goto dead;
	}
	if (mf->seq && !__atomic_load_n(&mf->seq_lost, __ATOMIC_ACQUIRE) &&
	    fstat(mf->seq_fd, &st) == 0 && st.st_size < VMEM_SEQ_FILE_SIZE)
		seq_lose(mf, "truncated under us");
	return 0;
dead:
	pthread_mutex_lock(&mf->check_mu);
	if (!vmem_memfile_dead(mf))
		mark_dead(mf, why);
	pthread_mutex_unlock(&mf->check_mu);
	return -EIO;
}

int vmem_memfile_revive(struct vmem_memfile *mf, const char *path,
			uint64_t quiet_ms, char *err, size_t errlen)
{
	struct vmem_memfile_retired *old = calloc(1, sizeof(*old));
	enum vmem_datamap_kind kind;
	char *seq_path = NULL;
	int fd, seq_fd = -1;
	struct stat st;
	void *p;

	if (!old || !(old->path = strdup(path)) ||
	    asprintf(&seq_path, "%s%s", path, VMEM_SEQ_SUFFIX) < 0) {
		free(old ? old->path : NULL);
		free(old);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	old->seq_path = seq_path;	/* swapped with the live ones below */
	if (!vmem_memfile_dead(mf)) {
		snprintf(err, errlen, "%s: still in use", mf->path);
		goto fail;
	}
	if (vmem_now_ns() - __atomic_load_n(&mf->dead_ns, __ATOMIC_SEQ_CST) <
	    quiet_ms * VMEM_NS_PER_MS) {
		snprintf(err, errlen, "%s: died less than %llu ms ago",
			 mf->path, (unsigned long long)quiet_ms);
		goto fail;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    vmem_datamap_kind(fd, path, &kind, err, errlen) < 0) {
		if (fd < 0 || !S_ISREG(st.st_mode))
			snprintf(err, errlen, "%s: %s", path, fd < 0 ?
				 strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	if ((uint64_t)st.st_size != mf->size || (int)kind != mf->kind) {
		snprintf(err, errlen, "%s: %llu bytes, the old file had %llu: "
			 "not the same VM; remount", path,
			 (unsigned long long)st.st_size,
			 (unsigned long long)mf->size);
		close(fd);
		goto fail;
	}
	/* The seq file: over the old mapping, or a new one. */
	seq_fd = open(seq_path, O_RDONLY | O_CLOEXEC);
	p = NULL;
	if (seq_fd >= 0) {
		struct stat sst;

		if (fstat(seq_fd, &sst) < 0 || sst.st_size < VMEM_SEQ_FILE_SIZE)
			p = MAP_FAILED;
		else
			p = mmap(mf->seq, VMEM_SEQ_FILE_SIZE, PROT_READ,
				 MAP_SHARED | (mf->seq ? MAP_FIXED : 0),
				 seq_fd, 0);
		if (p == MAP_FAILED) {
			snprintf(err, errlen, "%s: cannot map it", seq_path);
			close(seq_fd);
			close(fd);
			goto fail;
		}
	}
	if (dup3(fd, mf->fd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "%s: dup3: %s", path, strerror(errno));
		close(fd);
		if (seq_fd >= 0)
			close(seq_fd);
		goto fail;
	}
	close(fd);
	if (seq_fd >= 0 && mf->seq_fd >= 0) {
		dup3(seq_fd, mf->seq_fd, O_CLOEXEC);
		close(seq_fd);
	} else if (seq_fd >= 0) {
		mf->seq_fd = seq_fd;
	}
	if (p && !mf->seq) {
		mf->seq = p;
		if (seq_map_register(mf) < 0) {
			/* No SIGBUS cover: go on without the sequence. */
			__atomic_store_n(&mf->seq_lost, true, __ATOMIC_SEQ_CST);
		}
	}
	/* A file without a seq keeps seq_lost: no sequence, no cache. */
	if (p) {
		__atomic_store_n(&mf->seq_lost_logged, false, __ATOMIC_SEQ_CST);
		__atomic_store_n(&mf->seq_lost, false, __ATOMIC_SEQ_CST);
	}
	/* Swap the paths; the old strings stay until close. */
	{
		char *op = mf->path, *os = mf->seq_path;

		__atomic_store_n(&mf->path, old->path, __ATOMIC_SEQ_CST);
		__atomic_store_n(&mf->seq_path, old->seq_path, __ATOMIC_SEQ_CST);
		old->path = op;
		old->seq_path = os;
	}
	old->next = mf->retired;
	mf->retired = old;
	mf->dev = st.st_dev;
	mf->ino = st.st_ino;
	__atomic_store_n(&mf->checked_ns, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&mf->dead, false, __ATOMIC_SEQ_CST);
	vmem_log(LOG_INFO, "%s: reading the VM's new memory file", path);
	return 0;
fail:
	free(old->path);
	free(old->seq_path);
	free(old);
	return -1;
}

/* ---- the data map --------------------------------------------------- */

static bool no_cachestat;

#define RANGE_NONE_PRESENT 2	/* range_present(): all of it a hole */

/*
 * 1: every page of [off, end) is present; RANGE_NONE_PRESENT: none is;
 * 0: some are; -1: cannot tell.
 */
static int range_present(const struct vmem_memfile *mf, uint64_t off,
			 uint64_t end)
{
	uint64_t pages;
	int64_t n;

	/* Only on tmpfs is the page cache the data map (presence.h). */
	if (mf->kind != VMEM_DATAMAP_SHMEM ||
	    __atomic_load_n(&no_cachestat, __ATOMIC_RELAXED))
		return -1;
	n = vmem_pages_present(mf->fd, off, end, &pages);
	if (n < 0) {
		if (errno == ENOSYS || errno == EOPNOTSUPP)
			__atomic_store_n(&no_cachestat, true, __ATOMIC_RELAXED);
		return -1;
	}
	if (n == 0)
		return RANGE_NONE_PRESENT;
	return (uint64_t)n == pages;
}

/* 1: every page of [off, end) is present; 0: not; -1: cannot tell. */
static int range_all_present(const struct vmem_memfile *mf, uint64_t off,
			     uint64_t end)
{
	int r = range_present(mf, off, end);

	return r == RANGE_NONE_PRESENT ? 0 : r;
}

static int seek_run(const struct vmem_memfile *mf, uint64_t off,
		    uint64_t end, bool *present, uint64_t *run_end)
{
	off_t next;

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

int vmem_memfile_run(const struct vmem_memfile *mf, uint64_t off,
		     uint64_t end, bool *present, uint64_t *run_end)
{
	int rc;

	if (vmem_memfile_dead(mf))
		return -EIO;
	/* One cachestat answers both ends of the question for a range that
	 * is all data or all a hole (a remote read's common case: it
	 * saves the two lseek()s, a microsecond, per read). */
	if (end <= mf->size) {
		int all = range_present(mf, off, end);

		if (all == 1 || all == RANGE_NONE_PRESENT) {
			*present = all == 1;
			*run_end = end;
			/* mark_dead()'s empty file is all hole too. */
			return vmem_memfile_dead(mf) ? -EIO : 0;
		}
	}
	rc = seek_run(mf, off, end, present, run_end);
	/* The answer may come from the empty file mark_dead() put there. */
	if (vmem_memfile_dead(mf))
		return -EIO;
	return rc;
}

int vmem_memfile_seek_run(const struct vmem_memfile *mf, uint64_t off,
			  uint64_t end, bool *present, uint64_t *run_end)
{
	int rc;

	if (vmem_memfile_dead(mf))
		return -EIO;
	rc = seek_run(mf, off, end, present, run_end);
	if (vmem_memfile_dead(mf))
		return -EIO;
	return rc;
}

bool vmem_memfile_all_present(const struct vmem_memfile *mf, uint64_t off,
			      uint64_t end)
{
	int all = range_all_present(mf, off, end);
	off_t hole;

	if (all < 0) {
		hole = lseek(mf->fd, off, SEEK_HOLE);
		all = hole >= 0 && (uint64_t)hole >= end;
	}
	return all && !vmem_memfile_dead(mf);
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
