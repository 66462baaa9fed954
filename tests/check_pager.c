// SPDX-License-Identifier: MIT
/*
 * Tests of the userfaultfd remote pager on a plain mapping, without QEMU,
 * against a real nbdkit (file plugin on a /dev/shm image, unix socket).
 *
 * The expectations are computed independently of the pager: contents from
 * a pattern function, residency from the memory file's own data map
 * (SEEK_DATA / st_blocks), and the sub-host's state from its backing
 * image file, which the test reads directly.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/evictseq.h"
#include "../common/pagerctl.h"
#include "../pager/pager.h"
#include "lib/suite.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define PG 4096ULL

#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

struct env {
	char mem_path[128], img_path[128], sock[128], pidfile[128];
	char uri[256];
	uint64_t size;
	int mem_fd;
	char *map;
	pid_t nbdkit;
	struct vmem_pager *pg;
	struct vmem_pager_subhost sub[2];
};

static struct env E;
/*
 * Files are named after the runner, not the forked test: a test that
 * fails exits at once (Check runs no atexit handlers then), and the
 * runner removes what it left behind.  Tests run one at a time.
 */
static pid_t runner_pid;

/*
 * Faults the kernel and the clock do not offer on demand.  pager.mk links
 * this test with -Wl,--wrap for clock_gettime, syscall and poll: calls of
 * those from the pager library (and from this file) come here first; by
 * default they go straight on to libc.  Shared libraries (libnbd, libc
 * itself) are not affected.
 *
 * - mono_step_ns (per thread): every CLOCK_MONOTONIC reading of that
 *   thread is that much later than the one before, as if the thread had
 *   been preempted between any two readings.
 * - realtime_skew_ns (all threads): CLOCK_REALTIME reads that much ahead,
 *   as if the wall clock was stepped back by that much just after a
 *   reading (NTP, an administrator).
 * - no_cachestat (all threads): cachestat(2) fails with ENOSYS, as on
 *   kernels before 6.5 (Debian bookworm's 6.1 among them).
 * - poll_failures (all threads): that many polls of two fds (only the
 *   fault threads poll two) fail with ENOMEM, which poll(2) may return.
 */
int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);
long __real_syscall(long nr, ...);
long __wrap_syscall(long nr, ...);
int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);

static __thread int64_t mono_step_ns, mono_skew_ns;
static int64_t realtime_skew_ns;	/* atomic */
static bool no_cachestat;		/* atomic */
static int poll_failures;		/* atomic */
/* cachestat reports the data pages of [swap_s, swap_e) as swapped out:
 * not cached but evicted, as the kernel does for shmem in swap. */
static uint64_t swap_s, swap_e;		/* set while no pager runs */

int __wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
	int64_t add = 0;
	uint64_t ns;
	int rc = __real_clock_gettime(id, ts);

	if (rc)
		return rc;
	if (id == CLOCK_REALTIME) {
		add = __atomic_load_n(&realtime_skew_ns, __ATOMIC_RELAXED);
	} else if (id == CLOCK_MONOTONIC && mono_step_ns) {
		mono_skew_ns += mono_step_ns;
		add = mono_skew_ns;
	}
	if (add) {
		ns = (uint64_t)ts->tv_sec * 1000000000ULL +
		     (uint64_t)ts->tv_nsec + (uint64_t)add;
		ts->tv_sec = (time_t)(ns / 1000000000ULL);
		ts->tv_nsec = (long)(ns % 1000000000ULL);
	}
	return 0;
}

long __wrap_syscall(long nr, ...)
{
	long a[6];
	va_list ap;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_cachestat &&
	    __atomic_load_n(&no_cachestat, __ATOMIC_RELAXED)) {
		errno = ENOSYS;
		return -1;
	}
	if (nr == SYS_cachestat && swap_e > swap_s) {
		const uint64_t *r = (const uint64_t *)a[1];
		uint64_t *cs = (uint64_t *)a[2];
		uint64_t s = r[0] > swap_s ? r[0] : swap_s;
		uint64_t e = r[0] + r[1] < swap_e ? r[0] + r[1] : swap_e;
		long rc = __real_syscall(nr, a[0], a[1], a[2], a[3], a[4],
					 a[5]);

		/* cs: nr_cache, nr_dirty, nr_writeback, nr_evicted, ... */
		if (rc == 0 && e > s) {
			/* At most what is cached: a punched page is no
			 * longer there to be swapped out. */
			uint64_t mv = (e - s) / PG < cs[0] ? (e - s) / PG
							   : cs[0];

			cs[0] -= mv;
			cs[3] += mv;
		}
		return rc;
	}
	return __real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (n == 2 && __atomic_load_n(&poll_failures, __ATOMIC_RELAXED) > 0 &&
	    __atomic_sub_fetch(&poll_failures, 1, __ATOMIC_RELAXED) >= 0) {
		errno = ENOMEM;
		return -1;
	}
	return __real_poll(fds, n, timeout);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The reference content of a sub-host at @off (8-byte aligned). */
static uint64_t pat(uint64_t off, uint64_t seed)
{
	uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ULL ^ seed;

	x ^= x >> 29;
	return x * 0xBF58476D1CE4E5B9ULL;
}

static void fill(char *buf, uint64_t off, uint64_t len, uint64_t seed)
{
	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t v = pat(off + i, seed);

		memcpy(buf + i, &v, 8);
	}
}

/* First mismatching offset of @buf against the pattern, or UINT64_MAX. */
static uint64_t mismatch(const char *buf, uint64_t off, uint64_t len,
			 uint64_t seed)
{
	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t v;

		memcpy(&v, buf + i, 8);
		if (v != (seed == 0 ? 0 : pat(off + i, seed)))
			return off + i;
	}
	return UINT64_MAX;
}

static uint64_t data_bytes(int fd, uint64_t off, uint64_t end)
{
	uint64_t n = 0;

	while (off < end) {
		off_t d = lseek(fd, (off_t)off, SEEK_DATA), h;

		if (d < 0 || (uint64_t)d >= end)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		if ((uint64_t)h > end)
			h = (off_t)end;
		n += (uint64_t)(h - d);
		off = (uint64_t)h;
	}
	return n;
}

static uint64_t alloc_bytes(int fd)
{
	struct stat st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static void pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	ck_assert_int_eq(pwrite(fd, buf, len, off), (ssize_t)len);
}

static void write_pattern(int fd, uint64_t off, uint64_t len, uint64_t seed)
{
	char *b = malloc(MiB);

	ck_assert_ptr_nonnull(b);
	for (uint64_t o = off; o < off + len; o += MiB) {
		uint64_t l = off + len - o < MiB ? off + len - o : MiB;

		fill(b, o, l, seed);
		pwrite_all(fd, b, l, (off_t)o);
	}
	free(b);
}

/* ---- nbdkit, started and killed by PID ---- */

static void nbdkit_start(struct env *e)
{
	char fileopt[160];
	uint64_t t0 = now_ms();
	pid_t pid;

	unlink(e->pidfile);
	unlink(e->sock);	/* a killed nbdkit leaves it behind */
	snprintf(fileopt, sizeof(fileopt), "file=%s", e->img_path);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, 1);
		execlp("nbdkit", "nbdkit", "-f", "--exit-with-parent",
		       "-U", e->sock, "-P", e->pidfile, "file", fileopt,
		       (char *)NULL);
		_exit(127);
	}
	e->nbdkit = pid;
	/* nbdkit writes the PID file once it accepts connections. */
	while (access(e->pidfile, F_OK) != 0) {
		ck_assert_msg(now_ms() - t0 < 5000, "nbdkit did not start");
		ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);
		usleep(5000);
	}
}

static void nbdkit_stop(struct env *e)
{
	if (e->nbdkit > 0) {
		kill(e->nbdkit, SIGKILL);
		waitpid(e->nbdkit, NULL, 0);
		e->nbdkit = 0;
	}
}

static void cleanup(void)
{
	if (E.pg) {
		vmem_pager_free(E.pg);
		E.pg = NULL;
	}
	nbdkit_stop(&E);
	if (E.map) {
		munmap(E.map, E.size);
		E.map = NULL;
	}
	if (E.mem_fd > 0)
		close(E.mem_fd);
	E.mem_fd = -1;
	if (E.mem_path[0]) {
		char seq[160];

		snprintf(seq, sizeof(seq), "%s%s", E.mem_path, VMEM_SEQ_SUFFIX);
		unlink(seq);
		unlink(E.mem_path);
		unlink(E.img_path);
		unlink(E.sock);
		unlink(E.pidfile);
	}
}

/* A sparse memory file and sub-host image of @size; nbdkit running. */
static void env_setup(uint64_t size)
{
	int img;

	memset(&E, 0, sizeof(E));
	E.mem_fd = -1;
	E.size = size;
	snprintf(E.mem_path, sizeof(E.mem_path), "/dev/shm/ckpager.%d.mem",
		 (int)runner_pid);
	snprintf(E.img_path, sizeof(E.img_path), "/dev/shm/ckpager.%d.img",
		 (int)runner_pid);
	snprintf(E.sock, sizeof(E.sock), "/tmp/ckpager.%d.sock",
		 (int)runner_pid);
	snprintf(E.pidfile, sizeof(E.pidfile), "/tmp/ckpager.%d.pid",
		 (int)runner_pid);
	snprintf(E.uri, sizeof(E.uri), "nbd+unix:///?socket=%s", E.sock);
	atexit(cleanup);
	unlink(E.mem_path);
	unlink(E.img_path);
	E.mem_fd = open(E.mem_path, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(E.mem_fd, 0);
	ck_assert_int_eq(ftruncate(E.mem_fd, (off_t)size), 0);
	img = open(E.img_path, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(img, 0);
	ck_assert_int_eq(ftruncate(img, (off_t)size), 0);
	close(img);
	E.map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
		     E.mem_fd, 0);
	ck_assert_ptr_ne(E.map, MAP_FAILED);
	nbdkit_start(&E);
}

static int img_fd(void)
{
	int fd = open(E.img_path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	return fd;
}

/* One sub-host, home of [hs, he). */
static void pager_up(uint64_t hs, uint64_t he, uint64_t chunk,
		     uint64_t limit, uint64_t timeout_ms)
{
	struct vmem_pager_params p = {
		.host_addr = E.map,
		.size = E.size,
		.mem_fd = E.mem_fd,
		.mem_path = E.mem_path,
		.chunk_size = chunk,
		.local_limit = limit,
		.timeout_ms = timeout_ms,
		.subhosts = E.sub,
		.n_subhosts = he > hs ? 1 : 0,
		.quiet = getenv("PAGER_VERBOSE") == NULL,
	};
	char err[256] = "";

	E.sub[0].uri = E.uri;
	E.sub[0].start = hs;
	E.sub[0].end = he;
	E.pg = vmem_pager_new(&p, err, sizeof(err));
	ck_assert_msg(E.pg != NULL, "vmem_pager_new: %s", err);
	ck_assert_int_eq(vmem_pager_start(E.pg), 0);
}

static struct vmem_pager_stats stats(struct vmem_pager_subhost_stats *sh)
{
	struct vmem_pager_stats s;
	struct vmem_pager_subhost_stats dummy;

	vmem_pager_get_stats(E.pg, &s, sh ? sh : &dummy, 1);
	return s;
}

/* ---- faults fetch from the sub-host, trim it, zero-fill the rest ---- */

START_TEST(test_fault_fetch)
{
	const uint64_t size = 32 * MiB, hs = 8 * MiB, he = 24 * MiB;
	const uint64_t seed = 0x1234, lseed = 0x777;
	const uint64_t localpg = hs + 64 * KiB;	/* already on the main host */
	const uint64_t zs = 12 * MiB, ze = zs + 256 * KiB; /* hole in image */
	struct vmem_pager_subhost_stats sh;
	struct vmem_pager_stats s;
	char page[PG], *buf;
	int img;

	env_setup(size);
	img = img_fd();
	write_pattern(img, hs, zs - hs, seed);
	write_pattern(img, ze, he - ze, seed);
	fill(page, localpg, PG, lseed);
	pwrite_all(E.mem_fd, page, PG, (off_t)localpg);
	pager_up(hs, he, 1 * MiB, 0, 2000);

	/* Every page through the mapping, as a vCPU would see it. */
	for (uint64_t o = 0; o < size; o += PG) {
		uint64_t want = o < hs || o >= he || (o >= zs && o < ze) ?
				0 : seed, bad;

		if (o == localpg)
			bad = mismatch(E.map + o, o, PG, lseed);
		else
			bad = mismatch(E.map + o, o, PG, want);
		ck_assert_msg(bad == UINT64_MAX, "wrong byte at %#" PRIx64,
			      bad);
	}
	/* Resident now: all of it, in the file itself (pread sees it). */
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, size), size);
	buf = malloc(he - hs);
	ck_assert_int_eq(pread(E.mem_fd, buf, PG, (off_t)(hs + 5 * MiB)),
			 (ssize_t)PG);
	ck_assert_uint_eq(mismatch(buf, hs + 5 * MiB, PG, seed), UINT64_MAX);

	/*
	 * The sub-host no longer holds it: trimmed to a hole of zeros.  The
	 * trims are queued after the install and sent by the trim thread;
	 * once flushed, none is left.
	 */
	ck_assert_int_eq(vmem_pager_trim_flush(E.pg, 5000), 0);
	ck_assert_uint_eq(vmem_pager_trims_pending(E.pg), 0);
	vmem_pager_stop(E.pg);
	ck_assert_uint_eq(data_bytes(img, 0, size), 0);
	ck_assert_int_eq(pread(img, buf, he - hs, (off_t)hs),
			 (ssize_t)(he - hs));
	ck_assert_uint_eq(mismatch(buf, hs, he - hs, 0), UINT64_MAX);
	free(buf);

	s = stats(&sh);
	/* 16 one-MiB windows in the homed range, one fault each. */
	ck_assert_uint_ge(s.faults, 16 + 16);
	ck_assert_uint_eq(s.bytes_in, he - hs - PG);
	ck_assert_uint_eq(sh.bytes_in, he - hs - PG);
	ck_assert_uint_eq(s.bytes_zero, size - (he - hs));
	ck_assert_uint_eq(s.resident_bytes, size);
	ck_assert_uint_eq(s.evictions + s.page_outs, 0);
	ck_assert(sh.up);
	close(img);
	cleanup();
}
END_TEST

/* The sequence file brackets every move. */
START_TEST(test_seq_file)
{
	char seq[160];
	struct vmem_seq_map *m;
	uint64_t t0, t1, t2;
	bool quiet;
	char err[256];
	int fd;

	env_setup(8 * MiB);
	pager_up(0, 8 * MiB, 64 * KiB, 0, 2000);
	snprintf(seq, sizeof(seq), "%s%s", E.mem_path, VMEM_SEQ_SUFFIX);
	fd = open(seq, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_eq(lseek(fd, 0, SEEK_END), VMEM_SEQ_FILE_SIZE);
	m = mmap(NULL, VMEM_SEQ_FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);
	close(fd);

	t1 = vmem_seq_read_begin(m, 0, 64 * KiB, &quiet);
	ck_assert(quiet);
	E.map[100] = 1;		/* fault: a move in */
	ck_assert(!vmem_seq_read_valid(m, 0, 64 * KiB, t1));
	/*
	 * The faulting thread is woken before the trim on the sub-host, so
	 * the move may still be in flight: readers see "not quiet" until
	 * it ends, which must be soon.
	 */
	t0 = now_ms();
	do {
		t2 = vmem_seq_read_begin(m, 0, 64 * KiB, &quiet);
		ck_assert(now_ms() - t0 < 2000);
	} while (!quiet);
	ck_assert_int_eq(vmem_pager_page_out(E.pg, 0, 64 * KiB, err,
					     sizeof(err)), 0);
	ck_assert(!vmem_seq_read_valid(m, 0, 64 * KiB, t2));
	/* A range in another stripe was not disturbed. */
	t1 = vmem_seq_read_begin(m, 4 * MiB, 64 * KiB, &quiet);
	ck_assert_int_eq(vmem_pager_page_in(E.pg, 0, 64 * KiB, err,
					    sizeof(err)), 0);
	ck_assert(vmem_seq_read_valid(m, 4 * MiB, 64 * KiB, t1));
	ck_assert_int_eq(E.map[100], 1);
	munmap(m, VMEM_SEQ_FILE_SIZE);
	cleanup();
}
END_TEST

/* ---- eviction keeps the file under the budget ---- */

struct monitor {
	int fd;
	bool stop;		/* atomic */
	uint64_t max;
};

static void *monitor_thread(void *arg)
{
	struct monitor *m = arg;

	while (!__atomic_load_n(&m->stop, __ATOMIC_RELAXED)) {
		uint64_t a = alloc_bytes(m->fd);

		if (a > m->max)
			m->max = a;
		usleep(100);
	}
	return NULL;
}

struct sweep {
	uint64_t len, seed;
	uint64_t bad;
};

static void *sweep_thread(void *arg)
{
	struct sweep *w = arg;

	/* Write, then verify twice: every verify pass refetches evictees. */
	for (uint64_t o = 0; o < w->len; o += PG)
		fill(E.map + o, o, PG, w->seed);
	for (int pass = 0; pass < 2 && w->bad == UINT64_MAX; pass++)
		for (uint64_t o = 0; o < w->len; o += PG) {
			w->bad = mismatch(E.map + o, o, PG, w->seed);
			if (w->bad != UINT64_MAX)
				break;
		}
	return NULL;
}

START_TEST(test_eviction_budget)
{
	const uint64_t size = 64 * MiB, limit = 8 * MiB, region = 24 * MiB;
	struct monitor mon = { .max = 0 };
	struct sweep sw = { .len = region, .seed = 0xabc, .bad = UINT64_MAX };
	struct vmem_pager_stats s;
	pthread_t mt, st;
	char *buf;
	int img;

	env_setup(size);
	pager_up(0, size, 256 * KiB, limit, 2000);
	mon.fd = E.mem_fd;
	pthread_create(&mt, NULL, monitor_thread, &mon);
	pthread_create(&st, NULL, sweep_thread, &sw);
	pthread_join(st, NULL);
	__atomic_store_n(&mon.stop, true, __ATOMIC_RELAXED);
	pthread_join(mt, NULL);

	ck_assert_msg(sw.bad == UINT64_MAX, "wrong data at %#" PRIx64,
		      sw.bad);
	ck_assert_msg(mon.max <= limit, "resident %" PRIu64 " > limit",
		      mon.max);
	ck_assert_uint_le(data_bytes(E.mem_fd, 0, size), limit);
	/* "One place" below holds once the queued trims are done. */
	ck_assert_int_eq(vmem_pager_trim_flush(E.pg, 5000), 0);
	/* The eviction thread keeps its headroom: stop it to compare. */
	vmem_pager_stop(E.pg);
	s = stats(NULL);
	ck_assert_uint_gt(s.evictions, 0);
	ck_assert_uint_le(s.resident_bytes, limit);
	ck_assert_uint_eq(s.resident_bytes, data_bytes(E.mem_fd, 0, size));
	/* 24 MiB written through an 8 MiB budget: >= 16 MiB went out. */
	ck_assert_uint_ge(s.bytes_out, region - limit);

	/* Each page is in exactly one place, and the pair holds it all. */
	img = img_fd();
	buf = malloc(region);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, region) +
			  data_bytes(img, 0, region), region);
	for (uint64_t o = 0; o < region; o += 256 * KiB) {
		int fd = data_bytes(E.mem_fd, o, o + 256 * KiB) ? E.mem_fd :
			 img;

		ck_assert_int_eq(pread(fd, buf, 256 * KiB, (off_t)o),
				 (ssize_t)(256 * KiB));
		ck_assert_uint_eq(mismatch(buf, o, 256 * KiB, sw.seed),
				  UINT64_MAX);
	}
	free(buf);
	close(img);
	cleanup();
}
END_TEST

/*
 * ---- the budget is taken by memory without a home ----
 *
 * What a guest does once it has filled its low, unhomed RAM: resident
 * memory that can never leave sits at local-limit, and the guest goes on
 * writing and reading homed pages.  Each homed chunk that comes in is
 * then the only thing eviction may take.  Evicting it before the thread
 * that faulted on it has used it livelocks that thread (a guest write of
 * 4K timed out after 240 s in the end-to-end test).  The faults must
 * complete, each chunk of a sequential pass must be fetched about once,
 * and the main host may go over the limit only by a bounded amount.
 */
struct homed_pass {
	uint64_t off, len, seed;
	uint64_t bad;
	bool done;		/* atomic */
};

/*
 * A vCPU does not touch the next page the moment its fault returns: it is
 * woken, rescheduled, and under TCG runs the guest's code in between.  The
 * pause per page stands for that.
 */
static void *homed_pass_thread(void *arg)
{
	struct homed_pass *w = arg;

	for (uint64_t o = w->off; o < w->off + w->len; o += PG) {
		fill(E.map + o, o, PG, w->seed);
		usleep(50);
	}
	for (int pass = 0; pass < 2 && w->bad == UINT64_MAX; pass++)
		for (uint64_t o = w->off; o < w->off + w->len; o += PG) {
			w->bad = mismatch(E.map + o, o, PG, w->seed);
			if (w->bad != UINT64_MAX)
				break;
			usleep(50);
		}
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
	return NULL;
}

#define NPASS 2

START_TEST(test_unhomed_fills_budget)
{
	const uint64_t size = 64 * MiB, hs = 32 * MiB, cs = 1 * MiB;
	const uint64_t limit = 24 * MiB, region = 16 * MiB;
	/*
	 * Room for two homed chunks: less than the eviction thread's usual
	 * headroom (2 MiB here), as in the end-to-end test, where 11 MiB of
	 * room met 16 MiB of headroom.
	 */
	const uint64_t unhomed = limit - 2 * cs;
	struct homed_pass w[NPASS];
	struct monitor mon = { .max = 0 };
	struct vmem_pager_stats s;
	pthread_t wt[NPASS], mt;
	uint64_t t0, el;
	int done;

	env_setup(size);
	pager_up(hs, size, cs, limit, 2000);
	/* Unhomed memory, touched by "the guest", up to the whole budget. */
	for (uint64_t o = 0; o < unhomed; o += PG)
		fill(E.map + o, o, PG, 0x1111);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, hs), unhomed);

	mon.fd = E.mem_fd;
	pthread_create(&mt, NULL, monitor_thread, &mon);
	t0 = now_ms();
	for (int i = 0; i < NPASS; i++) {
		w[i] = (struct homed_pass){ .off = hs + i * region / NPASS,
			.len = region / NPASS, .seed = 0x4242,
			.bad = UINT64_MAX };
		pthread_create(&wt[i], NULL, homed_pass_thread, &w[i]);
	}
	do {
		usleep(10000);
		done = 0;
		for (int i = 0; i < NPASS; i++)
			done += __atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE);
	} while (done < NPASS && now_ms() - t0 < 15000);
	el = now_ms() - t0;
	s = stats(NULL);
	/* A livelocked thread cannot be joined: fail, and let the test's
	 * process (forked by Check) take it down. */
	ck_assert_msg(done == NPASS, "homed faults did not complete in %"
		      PRIu64 " ms: %" PRIu64 " faults, %" PRIu64 " MiB "
		      "fetched, %" PRIu64 " evictions", el, s.faults,
		      s.bytes_in >> 20, s.evictions);
	for (int i = 0; i < NPASS; i++)
		pthread_join(wt[i], NULL);
	__atomic_store_n(&mon.stop, true, __ATOMIC_RELAXED);
	pthread_join(mt, NULL);
	fprintf(stderr, "unhomed budget: %" PRIu64 " ms, %" PRIu64 " faults, "
		"%" PRIu64 " MiB fetched for 3 passes over %" PRIu64 " MiB, %"
		PRIu64 " evictions, over limit %" PRIu64 " times, max resident "
		"%" PRIu64 " MiB\n", el, s.faults, s.bytes_in >> 20,
		region >> 20, s.evictions, s.over_limit, mon.max >> 20);

	for (int i = 0; i < NPASS; i++)
		ck_assert_msg(w[i].bad == UINT64_MAX, "wrong data at %#"
			      PRIx64, w[i].bad);
	/* The unhomed data is untouched and still all resident. */
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, hs), unhomed);
	for (uint64_t o = 0; o < unhomed; o += PG)
		ck_assert_uint_eq(mismatch(E.map + o, o, PG, 0x1111),
				  UINT64_MAX);
	/*
	 * Three sequential passes over 16 chunks: each chunk is fetched
	 * once per pass at most (the region does not fit, so it is
	 * refetched every pass).  Evicting chunks before their pages were
	 * used fetches a chunk per page touched: 256x as much.
	 */
	ck_assert_uint_le(s.bytes_in, 3 * region + 4 * cs);
	ck_assert_uint_gt(s.evictions, 0);
	/*
	 * It had to go over the limit, but only by the chunks the pager
	 * protects as young (8), those the fault threads (2) were
	 * installing, and the one the evictor was moving out (resident
	 * until its punch; 33 MiB was seen once on a loaded machine).
	 */
	ck_assert_uint_gt(s.over_limit, 0);
	ck_assert_msg(mon.max <= unhomed + (8 + 2 + 1) * cs, "resident %" PRIu64
		      " MiB", mon.max >> 20);
	cleanup();
}
END_TEST

/* ---- writers race eviction: no write may be lost ---- */

#define NWRITERS 4
#define RACE_MS 3000

struct writer {
	int id;
	uint64_t npages;
	uint64_t *val;		/* last value written per own page */
	uint64_t iters, lost;
	uint64_t lost_at;
};

static bool race_stop;	/* atomic */

#define STOPPING() __atomic_load_n(&race_stop, __ATOMIC_RELAXED)

static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	unsigned int r = (unsigned int)w->id * 7919 + 1;

	while (!STOPPING()) {
		uint64_t idx = (uint64_t)rand_r(&r) % (w->npages / NWRITERS);
		uint64_t page = idx * NWRITERS + (uint64_t)w->id;
		volatile uint64_t *head = (uint64_t *)(E.map + page * PG);
		volatile uint64_t *tail = head + PG / 8 - 1;
		uint64_t v = w->val[idx] + 1;

		/* What we wrote last time must have survived its trips. */
		if (*head != w->val[idx] || *tail != w->val[idx]) {
			w->lost++;
			w->lost_at = page * PG;
		}
		*head = v;
		*tail = v;
		if (*head != v || *tail != v) {
			w->lost++;
			w->lost_at = page * PG;
		}
		w->val[idx] = v;
		w->iters++;
	}
	return NULL;
}

struct outer {
	uint64_t size, calls, fails, raced;
	char err[256];
};

static void *pageout_thread(void *arg)
{
	struct outer *o = arg;
	unsigned int r = 42;
	char err[256];

	while (!STOPPING()) {
		uint64_t off = ((uint64_t)rand_r(&r) % (o->size / (64 * KiB))) *
			       64 * KiB;

		if (vmem_pager_page_out(E.pg, off, 256 * KiB < o->size - off ?
					256 * KiB : o->size - off, err,
					sizeof(err)))
			o->fails++;
		o->calls++;
		usleep(200);
	}
	return NULL;
}

/* Lists of scattered ranges paged in while the others race (the
 * batched, pipelined page-in path). */
static void *pagein_thread(void *arg)
{
	struct outer *o = arg;
	unsigned int r = 4242;
	char err[256];

	while (!STOPPING()) {
		struct vmem_pager_range rg[4];

		for (int i = 0; i < 4; i++) {
			uint64_t off = ((uint64_t)rand_r(&r) %
					(o->size / (64 * KiB))) * 64 * KiB;

			rg[i].offset = off + (uint64_t)rand_r(&r) % PG;
			rg[i].length = 64 * KiB < o->size - rg[i].offset ?
				       64 * KiB : o->size - rg[i].offset;
		}
		/* page_out may punch what it just paged in (EAGAIN): a
		 * race the caller is told about, not an error. */
		if (vmem_pager_page_in_ranges(E.pg, rg, 4, err,
					      sizeof(err))) {
			if (errno == EAGAIN) {
				o->raced++;
			} else {
				o->fails++;
				snprintf(o->err, sizeof(o->err), "%s", err);
			}
		}
		o->calls++;
		usleep(200);
	}
	return NULL;
}

START_TEST(test_race_writers)
{
	const uint64_t size = 16 * MiB, npages = size / PG;
	struct writer w[NWRITERS];
	struct outer out = { .size = size }, in = { .size = size };
	pthread_t wt[NWRITERS], ot, it;
	struct vmem_pager_stats s;
	uint64_t iters = 0;

	env_setup(size);
	/* Pages start at zero: on the sub-host as never written. */
	pager_up(0, size, 64 * KiB, 2 * MiB, 2000);
	__atomic_store_n(&race_stop, false, __ATOMIC_RELAXED);
	for (int i = 0; i < NWRITERS; i++) {
		w[i] = (struct writer){ .id = i, .npages = npages };
		w[i].val = calloc(npages / NWRITERS, sizeof(uint64_t));
		pthread_create(&wt[i], NULL, writer_thread, &w[i]);
	}
	pthread_create(&ot, NULL, pageout_thread, &out);
	pthread_create(&it, NULL, pagein_thread, &in);
	usleep(RACE_MS * 1000);
	__atomic_store_n(&race_stop, true, __ATOMIC_RELAXED);
	for (int i = 0; i < NWRITERS; i++)
		pthread_join(wt[i], NULL);
	pthread_join(ot, NULL);
	pthread_join(it, NULL);

	s = stats(NULL);
	for (int i = 0; i < NWRITERS; i++) {
		ck_assert_msg(w[i].lost == 0, "writer %d lost %" PRIu64
			      " writes (last at %#" PRIx64 ")", i, w[i].lost,
			      w[i].lost_at);
		iters += w[i].iters;
	}
	fprintf(stderr, "race: %" PRIu64 " writes, %" PRIu64 " faults, %"
		PRIu64 " wp faults, %" PRIu64 " evictions, %" PRIu64
		" page_outs (%" PRIu64 " calls), %" PRIu64 " page_in "
		"lists, %" PRIu64 " trims (%" PRIu64 " superseded)\n", iters,
		s.faults, s.wp_faults, s.evictions, s.page_outs, out.calls,
		in.calls, s.trims, s.trims_dropped);
	ck_assert_uint_eq(out.fails, 0);
	ck_assert_msg(in.fails == 0, "%" PRIu64 " page_in failures: %s",
		      in.fails, in.err);
	ck_assert_uint_lt(in.raced, in.calls / 2);
	ck_assert_uint_gt(in.calls, 100);
	vmem_pager_stop(E.pg);
	/* The race really happened: many moves each way. */
	ck_assert_uint_gt(s.evictions, 100);
	ck_assert_uint_gt(s.page_outs, 100);
	ck_assert_uint_gt(s.faults, 100);

	/* Final state, read the independent way: file or sub-host image. */
	{
		int img = img_fd();

		for (uint64_t p = 0; p < npages; p++) {
			uint64_t want = w[p % NWRITERS].val[p / NWRITERS];
			uint64_t h, t, off = p * PG;
			int fd = data_bytes(E.mem_fd, off, off + PG) ?
				 E.mem_fd : img;

			ck_assert_int_eq(pread(fd, &h, 8, (off_t)off), 8);
			ck_assert_int_eq(pread(fd, &t, 8,
					       (off_t)(off + PG - 8)), 8);
			ck_assert_msg(h == want && t == want,
				      "page %#" PRIx64 ": %" PRIu64 "/%" PRIu64
				      " want %" PRIu64, off, h, t, want);
		}
		close(img);
	}
	for (int i = 0; i < NWRITERS; i++)
		free(w[i].val);
	cleanup();
}
END_TEST

/* ---- page_in / page_out seen in the data map ---- */

START_TEST(test_page_in_out)
{
	const uint64_t size = 16 * MiB, hs = 4 * MiB;
	const uint64_t seed = 0x5151;
	struct vmem_pager_subhost_stats sh;
	struct vmem_pager_stats s;
	char err[256], *buf = malloc(4 * MiB);
	int img;

	env_setup(size);
	pager_up(hs, size, 64 * KiB, 0, 2000);
	img = img_fd();
	/* Make [4M, 8M) resident with known content, and [0, 1M) too. */
	for (uint64_t o = hs; o < 8 * MiB; o += PG)
		fill(E.map + o, o, PG, seed);
	for (uint64_t o = 0; o < 1 * MiB; o += PG)
		fill(E.map + o, o, PG, seed);
	ck_assert_uint_eq(data_bytes(E.mem_fd, hs, 8 * MiB), 4 * MiB);

	/* Out: gone from the file, on the sub-host with the content. */
	ck_assert_int_eq(vmem_pager_page_out(E.pg, hs, 4 * MiB, err,
					     sizeof(err)), 0);
	ck_assert_uint_eq(data_bytes(E.mem_fd, hs, 8 * MiB), 0);
	ck_assert_int_eq(pread(img, buf, 4 * MiB, (off_t)hs),
			 (ssize_t)(4 * MiB));
	ck_assert_uint_eq(mismatch(buf, hs, 4 * MiB, seed), UINT64_MAX);

	/* No home: page_out leaves it (succeeds, nothing to do). */
	ck_assert_int_eq(vmem_pager_page_out(E.pg, 0, 1 * MiB, err,
					     sizeof(err)), 0);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, 1 * MiB), 1 * MiB);

	/* In, unaligned: exactly the covering pages come back. */
	ck_assert_int_eq(vmem_pager_page_in(E.pg, 5 * MiB + 100,
					    1 * MiB - 200, err,
					    sizeof(err)), 0);
	ck_assert_uint_eq(data_bytes(E.mem_fd, hs, 8 * MiB), 1 * MiB);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 5 * MiB, 6 * MiB), 1 * MiB);
	ck_assert_int_eq(vmem_pager_trim_flush(E.pg, 5000), 0);
	ck_assert_uint_eq(data_bytes(img, 5 * MiB, 6 * MiB), 0);
	ck_assert_uint_eq(data_bytes(img, hs, 8 * MiB), 3 * MiB);
	ck_assert_int_eq(pread(E.mem_fd, buf, 1 * MiB, (off_t)(5 * MiB)),
			 (ssize_t)(1 * MiB));
	ck_assert_uint_eq(mismatch(buf, 5 * MiB, 1 * MiB, seed), UINT64_MAX);

	/* page_in of a resident range is a no-op, and bad ranges fail. */
	ck_assert_int_eq(vmem_pager_page_in(E.pg, 5 * MiB, 1 * MiB, err,
					    sizeof(err)), 0);
	ck_assert_int_eq(vmem_pager_page_in(E.pg, size, PG, err,
					    sizeof(err)), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(vmem_pager_page_out(E.pg, size - PG, 2 * PG, err,
					     sizeof(err)), -1);

	s = stats(&sh);
	ck_assert_uint_eq(s.bytes_out, 4 * MiB);
	ck_assert_uint_eq(sh.bytes_out, 4 * MiB);
	ck_assert_uint_ge(s.page_outs, 1);
	ck_assert_uint_eq(s.resident_bytes, data_bytes(E.mem_fd, 0, size));
	free(buf);
	close(img);
	cleanup();
}
END_TEST

/*
 * vmem_pager_resident_in() (what query-vmem reports per sub-host) agrees
 * with the memory file's data map, also for a home range that cuts chunks
 * at both ends and for pages that were resident before the pager started.
 */
static void check_resident_in(uint64_t size)
{
	const uint64_t r[][2] = {
		{ 0, size }, { 0, 4 * MiB + 64 * KiB },
		{ 4 * MiB + 64 * KiB, 12 * MiB - 8 * KiB },
		{ 12 * MiB - 8 * KiB, size }, { 3 * MiB + 4 * KiB, 4 * MiB },
		{ 11 * MiB + 4 * KiB, 12 * MiB - 4 * KiB }, { size - PG, size + MiB },
	};

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		uint64_t s = r[i][0], e = r[i][1] < size ? r[i][1] : size;

		ck_assert_msg(vmem_pager_resident_in(E.pg, r[i][0], r[i][1]) ==
			      data_bytes(E.mem_fd, s, e),
			      "[%#" PRIx64 ", %#" PRIx64 "): %" PRIu64
			      " resident, file has %" PRIu64, r[i][0], r[i][1],
			      vmem_pager_resident_in(E.pg, r[i][0], r[i][1]),
			      data_bytes(E.mem_fd, s, e));
	}
}

START_TEST(test_resident_in)
{
	const uint64_t size = 16 * MiB;
	const uint64_t hs = 4 * MiB + 64 * KiB, he = 12 * MiB - 8 * KiB;
	char err[256];

	env_setup(size);
	/* Resident before the pager starts, across the start of the home. */
	write_pattern(E.mem_fd, 3 * MiB + 512 * KiB, 1 * MiB, 0x99);
	pager_up(hs, he, 1 * MiB, 0, 2000);
	ck_assert_uint_eq(vmem_pager_resident_in(E.pg, hs, he), 448 * KiB);
	check_resident_in(size);
	/* Faults in the middle, at the end of the home and just past it. */
	for (uint64_t o = 6 * MiB; o < 7 * MiB; o += PG)
		E.map[o] = 1;
	E.map[he - PG] = 1;
	E.map[he + PG] = 1;
	/* A fault recounts after it woke the vCPU: join the fault threads. */
	vmem_pager_stop(E.pg);
	check_resident_in(size);
	ck_assert_int_eq(vmem_pager_start(E.pg), 0);
	ck_assert_uint_gt(vmem_pager_resident_in(E.pg, hs, he), 1 * MiB);
	/* Out again: only the unhomed pages stay. */
	ck_assert_int_eq(vmem_pager_page_out(E.pg, 0, size, err,
					     sizeof(err)), 0);
	check_resident_in(size);
	ck_assert_uint_eq(vmem_pager_resident_in(E.pg, hs, he), 0);
	ck_assert_uint_gt(vmem_pager_resident_in(E.pg, 0, size), 0);
	cleanup();
}
END_TEST

/* ---- a failing sub-host: API callers time out, faults wait ---- */

static void *touch_thread(void *arg)
{
	uint64_t off = *(uint64_t *)arg;

	*(uint64_t *)arg = *(volatile uint64_t *)(E.map + off);
	return NULL;
}

START_TEST(test_subhost_down)
{
	const uint64_t size = 8 * MiB, seed = 0x99, timeout = 300;
	struct vmem_pager_subhost_stats sh;
	struct vmem_pager_stats s;
	uint64_t t0, el, arg = 2 * MiB + 8 * 11;
	pthread_t t;
	char err[256];
	int img, rc;

	env_setup(size);
	img = img_fd();
	write_pattern(img, 0, size, seed);
	pager_up(0, size, 64 * KiB, 0, timeout);
	ck_assert_int_eq(vmem_pager_page_in(E.pg, 4 * MiB, 64 * KiB, err,
					    sizeof(err)), 0);
	nbdkit_stop(&E);

	/* page_out to a dead sub-host fails in time and keeps the data. */
	t0 = now_ms();
	rc = vmem_pager_page_out(E.pg, 4 * MiB, 64 * KiB, err, sizeof(err));
	el = now_ms() - t0;
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(el < timeout + 1500, "page_out took %" PRIu64 " ms", el);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, size), 64 * KiB);
	{
		char b[64 * KiB];

		ck_assert_int_eq(pread(E.mem_fd, b, sizeof(b),
				       (off_t)(4 * MiB)), (ssize_t)sizeof(b));
		ck_assert_uint_eq(mismatch(b, 4 * MiB, sizeof(b), seed),
				  UINT64_MAX);
	}

	t0 = now_ms();
	rc = vmem_pager_page_in(E.pg, 1 * MiB, 64 * KiB, err, sizeof(err));
	el = now_ms() - t0;
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(el >= timeout / 2 && el < timeout + 1500,
		      "page_in gave up after %" PRIu64 " ms", el);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, size), 64 * KiB);
	/* Many chunks, spread over page_in's workers: fails as one. */
	t0 = now_ms();
	rc = vmem_pager_page_in(E.pg, 0, 1 * MiB, err, sizeof(err));
	el = now_ms() - t0;
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(el < timeout + 1500, "page_in took %" PRIu64 " ms", el);
	ck_assert_ptr_nonnull(strstr(err, E.sock));

	/* A vCPU-like access blocks (no EIO, no zeros) ... */
	pthread_create(&t, NULL, touch_thread, &arg);
	usleep(600 * 1000);
	ck_assert_int_eq(pthread_tryjoin_np(t, NULL), EBUSY);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, size), 64 * KiB);
	/* page_in of the RAM that stuck fault holds still answers in time. */
	t0 = now_ms();
	rc = vmem_pager_page_in(E.pg, 2 * MiB, 64 * KiB, err, sizeof(err));
	el = now_ms() - t0;
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(el < timeout + 1500, "page_in took %" PRIu64 " ms", el);
	/* ... and completes with the right data once the sub-host is back. */
	nbdkit_start(&E);
	t0 = now_ms();
	while (pthread_tryjoin_np(t, NULL) == EBUSY) {
		ck_assert_msg(now_ms() - t0 < 5000, "fault never completed");
		usleep(10000);
	}
	ck_assert_uint_eq(arg, pat(2 * MiB + 8 * 11, seed));
	s = stats(&sh);
	ck_assert_uint_gt(s.retries, 0);
	ck_assert_uint_gt(sh.errors, 0);
	ck_assert(sh.up);
	ck_assert_int_eq(vmem_pager_page_in(E.pg, 1 * MiB, 64 * KiB, err,
					    sizeof(err)), 0);
	close(img);
	cleanup();
}
END_TEST

/* ---- timed waits: one clock reading, no wall clock ---- */

/* A page_in/page_out call on a thread of its own, timed from outside. */
struct api_call {
	bool out;			/* page_out, else page_in */
	uint64_t off, len;
	int64_t mono_step_ns;		/* see __wrap_clock_gettime */
	int rc, err_no;
	char err[256];
};

static void *api_call_thread(void *arg)
{
	struct api_call *c = arg;

	mono_step_ns = c->mono_step_ns;
	if (c->out)
		c->rc = vmem_pager_page_out(E.pg, c->off, c->len, c->err,
					    sizeof(c->err));
	else
		c->rc = vmem_pager_page_in(E.pg, c->off, c->len, c->err,
					   sizeof(c->err));
	c->err_no = errno;
	mono_step_ns = 0;
	return NULL;
}

/* Run @c; fail unless it returns within @limit_ms.  Returns its ms. */
static uint64_t api_call_within(struct api_call *c, uint64_t limit_ms)
{
	uint64_t t0 = now_ms();
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, api_call_thread, c), 0);
	while (pthread_tryjoin_np(t, NULL) == EBUSY) {
		ck_assert_msg(now_ms() - t0 < limit_ms, "page_%s did not "
			      "return within %" PRIu64 " ms", c->out ? "out" :
			      "in", limit_ms);
		usleep(10000);
	}
	return now_ms() - t0;
}

/*
 * A fault on homed RAM while the sub-host is down: the fault thread holds
 * the chunk of @off and retries.  Returns the thread that faulted; the
 * caller starts nbdkit again and joins it.
 */
static pthread_t stuck_fault(uint64_t *arg)
{
	struct vmem_pager_subhost_stats sh;
	uint64_t t0 = now_ms();
	pthread_t t;

	nbdkit_stop(&E);
	ck_assert_int_eq(pthread_create(&t, NULL, touch_thread, arg), 0);
	for (;;) {
		stats(&sh);
		if (sh.errors > 0)
			break;
		ck_assert_msg(now_ms() - t0 < 5000, "the fault never failed");
		usleep(5000);
	}
	return t;
}

static void unstick_fault(pthread_t t, uint64_t *arg, uint64_t off,
			  uint64_t seed)
{
	uint64_t t0;

	nbdkit_start(&E);
	t0 = now_ms();
	while (pthread_tryjoin_np(t, NULL) == EBUSY) {
		ck_assert_msg(now_ms() - t0 < 5000, "fault never completed");
		usleep(10000);
	}
	ck_assert_uint_eq(*arg, pat(off, seed));
}

/*
 * page_out waits for a chunk a stuck fault holds, until its timeout.  The
 * wait's length was computed from two readings of the clock; a thread
 * preempted between them (here: every reading 100 ms after the one
 * before, timeout 250 ms) saw the deadline still ahead at the first and
 * passed at the second, and the subtraction wrapped to a wait of 2^64 ms.
 */
START_TEST(test_lock_wait_clock_read_once)
{
	const uint64_t size = 8 * MiB, seed = 0x31, timeout = 250;
	uint64_t arg = 2 * MiB + 8 * 5, el;
	struct api_call c = {
		.out = true, .off = 2 * MiB, .len = 64 * KiB,
		.mono_step_ns = 100 * 1000000LL,
	};
	pthread_t t;
	int img;

	env_setup(size);
	img = img_fd();
	write_pattern(img, 0, size, seed);
	pager_up(0, size, 64 * KiB, 0, timeout);
	t = stuck_fault(&arg);
	el = api_call_within(&c, 5000);
	ck_assert_int_eq(c.rc, -1);
	ck_assert_int_eq(c.err_no, ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(c.err, "busy"));
	ck_assert_msg(el < timeout + 1500, "page_out took %" PRIu64 " ms", el);
	unstick_fault(t, &arg, 2 * MiB + 8 * 5, seed);
	close(img);
	cleanup();
}
END_TEST

/*
 * The same wait measured on the wall clock: a step of CLOCK_REALTIME
 * (here: back by an hour, just after the pager read it) stretched it by
 * the step.  Waits count on CLOCK_MONOTONIC.
 */
START_TEST(test_lock_wait_wall_clock_step)
{
	const uint64_t size = 8 * MiB, seed = 0x32, timeout = 250;
	uint64_t arg = 3 * MiB + 8 * 7, el;
	struct api_call c = { .out = false, .off = 3 * MiB, .len = 4 * KiB };
	pthread_t t;
	int img;

	env_setup(size);
	img = img_fd();
	write_pattern(img, 0, size, seed);
	pager_up(0, size, 64 * KiB, 0, timeout);
	t = stuck_fault(&arg);
	__atomic_store_n(&realtime_skew_ns, 3600LL * 1000000000LL,
			 __ATOMIC_RELAXED);
	el = api_call_within(&c, 5000);
	__atomic_store_n(&realtime_skew_ns, 0, __ATOMIC_RELAXED);
	ck_assert_int_eq(c.rc, -1);
	ck_assert_int_eq(c.err_no, ETIMEDOUT);
	ck_assert_msg(el >= timeout / 2 && el < timeout + 1500,
		      "page_in took %" PRIu64 " ms", el);
	unstick_fault(t, &arg, 3 * MiB + 8 * 7, seed);
	close(img);
	cleanup();
}
END_TEST

/*
 * The eviction thread sleeps 200 ms at a time unless a fault that goes
 * over the headroom wakes it.  Pages counted by a recount, not reserved
 * (someone else wrote them into the memory file), wake nobody: only the
 * timed wait finds them.  With the wait on the wall clock, a clock step
 * back by an hour made it an hour.
 *
 * Chunk 1 MiB, 1 fault thread, limit 3.25 MiB: the evictor keeps
 * limit / 8 = 416 KiB free, i.e. works above 2.84 MiB.  Chunks 0 and 1
 * are resident from before the pager (old, evictable).  Chunk 8 is
 * written from outside but for its last page; the fault on that page
 * reserves 4 KiB (2 MiB + 4 KiB + 416 KiB: no wake-up), and its recount
 * finds 3 MiB resident: one chunk must go within a few sleeps.
 */
START_TEST(test_evictor_wall_clock_step)
{
	const uint64_t size = 16 * MiB, seed = 0x33, cs = 1 * MiB;
	const uint64_t limit = 3 * MiB + 256 * KiB;
	struct vmem_pager_params p;
	struct vmem_pager_stats s;
	uint64_t arg = 9 * MiB - PG, t0;
	char err[256] = "", *b;
	pthread_t t;
	int img;

	env_setup(size);
	img = img_fd();
	write_pattern(img, 0, size, seed);
	write_pattern(E.mem_fd, 0, 2 * cs, seed);
	__atomic_store_n(&realtime_skew_ns, 3600LL * 1000000000LL,
			 __ATOMIC_RELAXED);
	memset(&p, 0, sizeof(p));
	p.host_addr = E.map;
	p.size = size;
	p.mem_fd = E.mem_fd;
	p.mem_path = E.mem_path;
	p.chunk_size = cs;
	p.local_limit = limit;
	p.timeout_ms = 2000;
	p.n_fault_threads = 1;
	p.subhosts = E.sub;
	p.n_subhosts = 1;
	p.quiet = getenv("PAGER_VERBOSE") == NULL;
	E.sub[0].uri = E.uri;
	E.sub[0].start = 0;
	E.sub[0].end = size;
	E.pg = vmem_pager_new(&p, err, sizeof(err));
	ck_assert_msg(E.pg != NULL, "vmem_pager_new: %s", err);
	ck_assert_int_eq(vmem_pager_start(E.pg), 0);
	/* Let the evictor go to sleep: nothing to do yet. */
	usleep(100 * 1000);
	ck_assert_uint_eq(stats(NULL).evictions, 0);

	b = malloc(cs);
	ck_assert_ptr_nonnull(b);
	fill(b, 8 * MiB, cs - PG, seed);
	pwrite_all(E.mem_fd, b, cs - PG, (off_t)(8 * MiB));
	free(b);
	ck_assert_int_eq(pthread_create(&t, NULL, touch_thread, &arg), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_uint_eq(arg, pat(9 * MiB - PG, seed));

	t0 = now_ms();
	while ((s = stats(NULL)).evictions == 0) {
		ck_assert_msg(now_ms() - t0 < 3000, "nothing evicted in 3 s, "
			      "resident %" PRIu64 " over %" PRIu64,
			      s.resident_bytes, limit - limit / 8);
		usleep(10000);
	}
	__atomic_store_n(&realtime_skew_ns, 0, __ATOMIC_RELAXED);
	ck_assert_uint_le(data_bytes(E.mem_fd, 0, size), limit - limit / 8);
	close(img);
	cleanup();
}
END_TEST

/* ---- errno reaches the caller ---- */

static bool sub_host_errno(int e)
{
	return e == ETIMEDOUT || e == EIO || e == ECONNREFUSED ||
	       e == ENOENT || e == ECONNRESET || e == EPIPE ||
	       e == ENOTCONN || e == ESHUTDOWN;
}

/*
 * page_in/page_out on a dead sub-host fail with the sub-host's error.
 * The recount after the failure probes the data map (cachestat, then
 * lseek, which fails with ENXIO past the last data) and used to replace
 * errno before the caller read it.  Without cachestat (kernels before
 * 6.5) every probe sets errno.
 */
START_TEST(test_errno_survives_recount)
{
	const uint64_t size = 8 * MiB, seed = 0x34, timeout = 300;
	struct api_call out = { .out = true, .off = 4 * MiB, .len = 64 * KiB };
	struct api_call in = { .out = false, .off = 1 * MiB, .len = 64 * KiB };
	char err[256];
	int img;

	env_setup(size);
	img = img_fd();
	write_pattern(img, 0, size, seed);
	pager_up(0, size, 64 * KiB, 0, timeout);
	ck_assert_int_eq(vmem_pager_page_in(E.pg, 4 * MiB, 64 * KiB, err,
					    sizeof(err)), 0);
	nbdkit_stop(&E);
	__atomic_store_n(&no_cachestat, true, __ATOMIC_RELAXED);

	api_call_within(&out, 5000);
	ck_assert_int_eq(out.rc, -1);
	ck_assert_msg(sub_host_errno(out.err_no), "page_out: errno %d (%s), "
		      "not the sub-host's; message: %s", out.err_no,
		      strerror(out.err_no), out.err);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, size), 64 * KiB);

	api_call_within(&in, 5000);
	ck_assert_int_eq(in.rc, -1);
	ck_assert_msg(sub_host_errno(in.err_no), "page_in: errno %d (%s), "
		      "not the sub-host's; message: %s", in.err_no,
		      strerror(in.err_no), in.err);
	__atomic_store_n(&no_cachestat, false, __ATOMIC_RELAXED);
	close(img);
	cleanup();
}
END_TEST

/* ---- swapped-out pages are resident ---- */

/*
 * With host swap, a swapped-out page of the memory file is a swap entry
 * that cachestat(2) counts as evicted, not cached; it is still data
 * (SEEK_DATA says so, and reading it swaps it in).  The machine has no
 * swap, so the wrapped cachestat reports [1M, 1.25M) as swapped out.
 * The pager must see it as resident: page_in fetches nothing, page_out
 * moves it to its home.
 */
START_TEST(test_swapped_pages_are_resident)
{
	const uint64_t size = 8 * MiB, seed = 0x36, s = 1 * MiB;
	const uint64_t len = 256 * KiB;
	struct vmem_pager_stats st;
	char err[256], *b;
	int img;

	env_setup(size);
	img = img_fd();
	write_pattern(E.mem_fd, s, len, seed);
	swap_s = s;
	swap_e = s + len;
	pager_up(0, size, 64 * KiB, 0, 2000);
	ck_assert_uint_eq(stats(NULL).resident_bytes, len);
	ck_assert_msg(vmem_pager_page_in(E.pg, s, len, err, sizeof(err)) == 0,
		      "page_in of swapped-out pages: %s", err);
	st = stats(NULL);
	ck_assert_uint_eq(st.bytes_in, 0);
	ck_assert_msg(vmem_pager_page_out(E.pg, s, len, err, sizeof(err)) == 0,
		      "page_out: %s", err);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, size), 0);
	b = malloc(len);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(pread(img, b, len, (off_t)s), (ssize_t)len);
	ck_assert_uint_eq(mismatch(b, s, len, seed), UINT64_MAX);
	free(b);
	swap_s = swap_e = 0;
	close(img);
	cleanup();
}
END_TEST

/* ---- a fault thread outlives a failed poll ---- */

/*
 * poll(2) of the userfaultfd can fail (ENOMEM).  The fault thread left
 * its loop without a word, and with it the last fault thread: every later
 * fault waited forever.  It must say so and go on.
 */
START_TEST(test_fault_thread_poll_error)
{
	const uint64_t size = 8 * MiB, seed = 0x35;
	struct vmem_pager_params p;
	char logpath[128], log[4096] = "", err[256] = "";
	uint64_t arg = 5 * MiB + 8 * 3, t0;
	int img, logfd, saved;
	pthread_t t;
	ssize_t n;

	env_setup(size);
	img = img_fd();
	write_pattern(img, 0, size, seed);
	snprintf(logpath, sizeof(logpath), "/dev/shm/ckpager.%d.log",
		 (int)runner_pid);
	logfd = open(logpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(logfd, 0);
	unlink(logpath);
	saved = dup(2);
	ck_assert_int_ge(saved, 0);
	dup2(logfd, 2);

	memset(&p, 0, sizeof(p));
	p.host_addr = E.map;
	p.size = size;
	p.mem_fd = E.mem_fd;
	p.mem_path = E.mem_path;
	p.chunk_size = 64 * KiB;
	p.n_fault_threads = 1;
	p.subhosts = E.sub;
	p.n_subhosts = 1;
	p.quiet = false;
	E.sub[0].uri = E.uri;
	E.sub[0].start = 0;
	E.sub[0].end = size;
	__atomic_store_n(&poll_failures, 1, __ATOMIC_RELAXED);
	E.pg = vmem_pager_new(&p, err, sizeof(err));
	ck_assert_msg(E.pg != NULL, "vmem_pager_new: %s", err);
	ck_assert_int_eq(vmem_pager_start(E.pg), 0);
	t0 = now_ms();
	while (__atomic_load_n(&poll_failures, __ATOMIC_RELAXED) > 0) {
		ck_assert_msg(now_ms() - t0 < 5000, "the fault thread never "
			      "polled");
		usleep(1000);
	}

	ck_assert_int_eq(pthread_create(&t, NULL, touch_thread, &arg), 0);
	while (pthread_tryjoin_np(t, NULL) == EBUSY) {
		ck_assert_msg(now_ms() - t0 < 5000, "the fault was never "
			      "served after a failed poll");
		usleep(10000);
	}
	ck_assert_uint_eq(arg, pat(5 * MiB + 8 * 3, seed));

	dup2(saved, 2);
	close(saved);
	n = pread(logfd, log, sizeof(log) - 1, 0);
	close(logfd);
	ck_assert_int_gt(n, 0);
	ck_assert_msg(strstr(log, "poll") && strstr(log, strerror(ENOMEM)),
		      "no line about the failed poll in: %s", log);
	close(img);
	cleanup();
}
END_TEST

/* ---- parameter checks ---- */

START_TEST(test_bad_params)
{
	struct vmem_pager_params p;
	struct vmem_pager_subhost sub[2] = {
		{ "nbd://127.0.0.1:1", 0, 2 * MiB, NULL },
		{ "nbd://127.0.0.1:2", 1 * MiB, 3 * MiB, NULL },
	};
	char err[256];

	env_setup(4 * MiB);
	memset(&p, 0, sizeof(p));
	p.host_addr = E.map;
	p.size = E.size;
	p.mem_fd = E.mem_fd;
	p.mem_path = E.mem_path;
	p.quiet = true;

	p.chunk_size = 3 * KiB;
	ck_assert_ptr_null(vmem_pager_new(&p, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "chunk size"));
	p.chunk_size = 64 * KiB;
	p.local_limit = 64 * KiB;
	ck_assert_ptr_null(vmem_pager_new(&p, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "local limit"));
	p.local_limit = 0;
	p.subhosts = sub;
	p.n_subhosts = 2;
	ck_assert_ptr_null(vmem_pager_new(&p, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "overlap"));
	sub[1].start = 2 * MiB;
	sub[1].end = 5 * MiB;
	ck_assert_ptr_null(vmem_pager_new(&p, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "inside RAM"));
	/* RAM bigger than the memory file. */
	sub[1].end = 4 * MiB;
	p.size = 8 * MiB;
	ck_assert_ptr_null(vmem_pager_new(&p, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "smaller than size"));
	p.size = E.size;
	p.host_addr = E.map;
	E.pg = vmem_pager_new(&p, err, sizeof(err));
	ck_assert_msg(E.pg != NULL, "%s", err);
	{
		struct vmem_pager_subhost_stats shs[2];
		struct vmem_pager_stats s;

		vmem_pager_get_stats(E.pg, &s, shs, 2);
		ck_assert_uint_eq(s.n_subhosts, 2);
		ck_assert_str_eq(shs[1].uri, "nbd://127.0.0.1:2");
		ck_assert_uint_eq(shs[1].start, 2 * MiB);
		ck_assert_uint_eq(s.chunk_size, 64 * KiB);
	}
	cleanup();
}
END_TEST

/* ---- trims off the critical path: crash and move-out safety ---- */

/*
 * A crash between install and trim: the pages are in the memory file and
 * still on the sub-host.  Nothing is lost, and the stale copy is harmless
 * to a pager that starts on the same file: it never reads it while the
 * page is local, and a move-out replaces it first.
 */
START_TEST(test_trim_crash_between_install_and_trim)
{
	const uint64_t size = 8 * MiB, seed = 0x7717;
	char err[256], *buf = malloc(MiB);
	int img;

	env_setup(size);
	img = img_fd();
	write_pattern(img, 0, size, seed);
	pager_up(0, size, 64 * KiB, 0, 2000);
	vmem_pager_trim_hold(E.pg, true);
	ck_assert_int_eq(vmem_pager_page_in(E.pg, 2 * MiB, MiB, err,
					    sizeof(err)), 0);
	ck_assert_uint_eq(vmem_pager_trims_pending(E.pg), 16);
	/* Held: flushing cannot finish, and says so. */
	ck_assert_int_eq(vmem_pager_trim_flush(E.pg, 100), -1);
	ck_assert_int_eq(errno, EAGAIN);
	/* The "crash": the pager goes away with its queue. */
	vmem_pager_free(E.pg);
	E.pg = NULL;
	ck_assert_uint_eq(data_bytes(E.mem_fd, 2 * MiB, 3 * MiB), MiB);
	ck_assert_uint_eq(data_bytes(img, 2 * MiB, 3 * MiB), MiB);
	ck_assert_int_eq(pread(E.mem_fd, buf, MiB, 2 * MiB), (ssize_t)MiB);
	ck_assert_uint_eq(mismatch(buf, 2 * MiB, MiB, seed), UINT64_MAX);

	/* A new pager on the same file; the guest writes the pages. */
	pager_up(0, size, 64 * KiB, 0, 2000);
	for (uint64_t o = 2 * MiB; o < 3 * MiB; o += PG)
		fill(E.map + o, o, PG, seed + 1);
	/* Out and in again: the new data, never the stale copy. */
	ck_assert_int_eq(vmem_pager_page_out(E.pg, 2 * MiB, MiB, err,
					     sizeof(err)), 0);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 2 * MiB, 3 * MiB), 0);
	ck_assert_int_eq(vmem_pager_page_in(E.pg, 2 * MiB, MiB, err,
					    sizeof(err)), 0);
	for (uint64_t o = 2 * MiB; o < 3 * MiB; o += PG)
		ck_assert_uint_eq(mismatch(E.map + o, o, PG, seed + 1),
				  UINT64_MAX);
	/* Faults on the rest read the sub-host's (never trimmed) data. */
	for (uint64_t o = 4 * MiB; o < 5 * MiB; o += PG)
		ck_assert_uint_eq(mismatch(E.map + o, o, PG, seed),
				  UINT64_MAX);
	ck_assert_int_eq(vmem_pager_trim_flush(E.pg, 5000), 0);
	ck_assert_uint_eq(data_bytes(img, 2 * MiB, 3 * MiB), 0);
	ck_assert_uint_eq(data_bytes(img, 4 * MiB, 5 * MiB), 0);
	close(img);
	free(buf);
	cleanup();
}
END_TEST

/*
 * A queued trim must never be sent after a move-out of the same chunk:
 * it would discard the only copy of what the move-out wrote home.
 */
START_TEST(test_trim_superseded_by_move_out)
{
	const uint64_t size = 8 * MiB, seed = 0x7718, off = 3 * MiB;
	struct vmem_pager_stats s;
	char err[256];
	int img;

	env_setup(size);
	img = img_fd();
	write_pattern(img, 0, size, seed);
	pager_up(0, size, 64 * KiB, 0, 2000);
	vmem_pager_trim_hold(E.pg, true);
	ck_assert_int_eq(vmem_pager_page_in(E.pg, off, 256 * KiB, err,
					    sizeof(err)), 0);
	ck_assert_uint_eq(vmem_pager_trims_pending(E.pg), 4);
	for (uint64_t o = off; o < off + 256 * KiB; o += PG)
		fill(E.map + o, o, PG, seed + 2);
	/* Home again with the new data, while the old trims wait. */
	ck_assert_int_eq(vmem_pager_page_out(E.pg, off, 256 * KiB, err,
					     sizeof(err)), 0);
	vmem_pager_trim_hold(E.pg, false);
	ck_assert_int_eq(vmem_pager_trim_flush(E.pg, 5000), 0);
	/* The sub-host still holds the new data, and it comes back. */
	ck_assert_int_eq(vmem_pager_page_in(E.pg, off, 256 * KiB, err,
					    sizeof(err)), 0);
	for (uint64_t o = off; o < off + 256 * KiB; o += PG)
		ck_assert_uint_eq(mismatch(E.map + o, o, PG, seed + 2),
				  UINT64_MAX);
	s = stats(NULL);
	ck_assert_uint_eq(s.trims_dropped, 4);
	close(img);
	cleanup();
}
END_TEST

/* ---- one page_in call, a list of ranges ---- */

START_TEST(test_page_in_ranges)
{
	const uint64_t size = 16 * MiB, hs = 4 * MiB, seed = 0x7719;
	struct vmem_pager_range rg[VMEM_PAGER_MAX_RANGES + 1];
	struct vmem_pager_stats s0, s1;
	char err[256];
	int img;

	env_setup(size);
	img = img_fd();
	write_pattern(img, 0, size, seed);
	pager_up(hs, size, 64 * KiB, 4 * MiB, 2000);

	/* Out of order, overlapping, unaligned, one without a home. */
	rg[0] = (struct vmem_pager_range){ 9 * MiB + 100, 64 * KiB };
	rg[1] = (struct vmem_pager_range){ 5 * MiB, 128 * KiB };
	rg[2] = (struct vmem_pager_range){ 5 * MiB + 64 * KiB, 128 * KiB };
	rg[3] = (struct vmem_pager_range){ 1 * MiB, PG };
	s0 = stats(NULL);
	ck_assert_int_eq(vmem_pager_page_in_ranges(E.pg, rg, 4, err,
						   sizeof(err)), 0);
	s1 = stats(NULL);
	/* Exactly the covering pages, each once. */
	ck_assert_uint_eq(data_bytes(E.mem_fd, 9 * MiB, 9 * MiB + 68 * KiB),
			  68 * KiB);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 5 * MiB, 5 * MiB + 192 * KiB),
			  192 * KiB);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, size),
			  68 * KiB + 192 * KiB + PG);
	ck_assert_uint_eq(s1.bytes_in - s0.bytes_in, 68 * KiB + 192 * KiB);
	ck_assert_uint_eq(s1.bytes_zero - s0.bytes_zero, PG);
	for (uint64_t o = 5 * MiB; o < 5 * MiB + 192 * KiB; o += PG)
		ck_assert_uint_eq(mismatch(E.map + o, o, PG, seed),
				  UINT64_MAX);
	for (uint64_t o = 9 * MiB; o < 9 * MiB + 68 * KiB; o += PG)
		ck_assert_uint_eq(mismatch(E.map + o, o, PG, seed),
				  UINT64_MAX);

	/* Bounds: checked before anything moves. */
	rg[0] = (struct vmem_pager_range){ 12 * MiB, 64 * KiB };
	rg[1] = (struct vmem_pager_range){ size - PG, 2 * PG };
	ck_assert_int_eq(vmem_pager_page_in_ranges(E.pg, rg, 2, err,
						   sizeof(err)), -1);
	ck_assert_int_eq(errno, EINVAL);
	rg[1] = (struct vmem_pager_range){ 8 * PG, UINT64_MAX - 4 * PG };
	ck_assert_int_eq(vmem_pager_page_in_ranges(E.pg, rg, 2, err,
						   sizeof(err)), -1);
	ck_assert_int_eq(errno, EINVAL);
	rg[1] = (struct vmem_pager_range){ 12 * MiB, 0 };
	ck_assert_int_eq(vmem_pager_page_in_ranges(E.pg, rg, 2, err,
						   sizeof(err)), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 12 * MiB, 13 * MiB), 0);
	ck_assert_int_eq(vmem_pager_page_in_ranges(E.pg, rg, 0, err,
						   sizeof(err)), -1);
	ck_assert_int_eq(errno, EINVAL);
	for (size_t i = 0; i <= VMEM_PAGER_MAX_RANGES; i++)
		rg[i] = (struct vmem_pager_range){ 12 * MiB, PG };
	ck_assert_int_eq(vmem_pager_page_in_ranges(E.pg, rg,
						   VMEM_PAGER_MAX_RANGES + 1,
						   err, sizeof(err)), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* The same range many times is one range. */
	ck_assert_int_eq(vmem_pager_page_in_ranges(E.pg, rg,
						   VMEM_PAGER_MAX_RANGES,
						   err, sizeof(err)), 0);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 12 * MiB, 13 * MiB), PG);
	/* The sum must fit under local-limit (4M, less the slack). */
	rg[0] = (struct vmem_pager_range){ 6 * MiB, 2 * MiB };
	rg[1] = (struct vmem_pager_range){ 10 * MiB, 2 * MiB };
	ck_assert_int_eq(vmem_pager_page_in_ranges(E.pg, rg, 2, err,
						   sizeof(err)), -1);
	ck_assert_int_eq(errno, EFBIG);
	close(img);
	cleanup();
}
END_TEST

/* ---- the control socket ---- */

static char ctl_path[96];

static int ctl_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ctl_path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read a reply within @ms: 1, 0 at EOF, -1 on timeout. */
static int ctl_reply(int fd, struct vmem_ctl_reply *rp, int ms)
{
	size_t got = 0;

	while (got < sizeof(*rp)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, ms) != 1)
			return -1;
		r = read(fd, (char *)rp + got, sizeof(*rp) - got);
		if (r <= 0)
			return got ? -1 : 0;
		got += (size_t)r;
	}
	return 1;
}

static void ctl_send(int fd, uint32_t magic, uint16_t op, uint16_t n,
		     const struct vmem_ctl_range *rg, size_t nsend)
{
	struct vmem_ctl_req rq = { .magic = magic, .op = op, .n = n,
				   .tag = 0x1234 + op };

	ck_assert_int_eq(send(fd, &rq, sizeof(rq), MSG_NOSIGNAL),
			 (ssize_t)sizeof(rq));
	if (nsend)
		ck_assert_int_eq(send(fd, rg, nsend * sizeof(*rg),
				      MSG_NOSIGNAL),
				 (ssize_t)(nsend * sizeof(*rg)));
}

/* One request; the reply's err (-1: no reply, -2: EOF). */
static int ctl_call(int fd, uint16_t op, const struct vmem_ctl_range *rg,
		    uint16_t n)
{
	struct vmem_ctl_req rq = { .magic = VMEM_CTL_MAGIC, .op = op, .n = n,
				   .tag = 0x1234 + op };
	struct vmem_ctl_reply rp;
	int r;

	/* A connection the pager closed at once fails here already. */
	if (send(fd, &rq, sizeof(rq), MSG_NOSIGNAL) != (ssize_t)sizeof(rq))
		return -2;
	if (n && send(fd, rg, n * sizeof(*rg), MSG_NOSIGNAL) !=
	    (ssize_t)(n * sizeof(*rg)))
		return -2;
	r = ctl_reply(fd, &rp, 10000);
	if (r <= 0)
		return r == 0 ? -2 : -1;
	ck_assert_uint_eq(rp.magic, VMEM_CTL_MAGIC);
	ck_assert_uint_eq(rp.tag, 0x1234 + op);
	return rp.err;
}

/* As user nobody, in a child: does a PING get an answer?  1 yes, 0 the
 * connection was closed, 2 connect refused. */
static int ctl_ping_as_nobody(void)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd;

		if (setgid(65534) || setuid(65534))
			_exit(9);
		fd = ctl_connect();
		if (fd < 0)
			_exit(2);
		{
			struct vmem_ctl_req rq = { .magic = VMEM_CTL_MAGIC,
						   .op = VMEM_CTL_PING };
			struct vmem_ctl_reply rp;

			if (send(fd, &rq, sizeof(rq), MSG_NOSIGNAL) < 0)
				_exit(0);
			_exit(ctl_reply(fd, &rp, 5000) == 1 ? 1 : 0);
		}
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

START_TEST(test_ctl_socket)
{
	const uint64_t size = 16 * MiB, hs = 4 * MiB, seed = 0x771a;
	struct vmem_pager_params p = { 0 };
	struct vmem_ctl_range rg[VMEM_CTL_MAX_RANGES + 1];
	struct vmem_ctl_reply rp;
	int fd, fds[VMEM_CTL_MAX_CONNS], img;
	char err[256] = "";
	struct stat st;
	uint64_t t0;

	env_setup(size);
	img = img_fd();
	write_pattern(img, 0, size, seed);
	close(img);
	snprintf(ctl_path, sizeof(ctl_path), "/tmp/ckpager.%d.ctl",
		 (int)runner_pid);

	/* Something that is not our socket at the path: refused, kept. */
	unlink(ctl_path);
	fd = open(ctl_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	E.sub[0] = (struct vmem_pager_subhost){ E.uri, hs, size, NULL };
	p = (struct vmem_pager_params){
		.host_addr = E.map, .size = E.size, .mem_fd = E.mem_fd,
		.mem_path = E.mem_path, .chunk_size = 64 * KiB,
		.timeout_ms = 2000, .subhosts = E.sub, .n_subhosts = 1,
		.quiet = true, .ctl_path = ctl_path,
	};
	ck_assert_ptr_null(vmem_pager_new(&p, err, sizeof(err)));
	ck_assert_msg(strstr(err, "not a socket of ours"), "%s", err);
	ck_assert_int_eq(stat(ctl_path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	unlink(ctl_path);

	E.pg = vmem_pager_new(&p, err, sizeof(err));
	ck_assert_msg(E.pg != NULL, "vmem_pager_new: %s", err);
	ck_assert_int_eq(vmem_pager_start(E.pg), 0);
	ck_assert_str_eq(vmem_pager_ctl_path(E.pg), ctl_path);
	ck_assert_int_eq(stat(ctl_path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0600);

	fd = ctl_connect();
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ctl_call(fd, VMEM_CTL_PING, NULL, 0), 0);
	/* One command, a list of ranges: all resident when it answers. */
	rg[0] = (struct vmem_ctl_range){ 8 * MiB, 256 * KiB };
	rg[1] = (struct vmem_ctl_range){ 5 * MiB, 64 * KiB };
	rg[2] = (struct vmem_ctl_range){ 1 * MiB, PG };
	ck_assert_int_eq(ctl_call(fd, VMEM_CTL_PAGE_IN, rg, 3), 0);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, size),
			  256 * KiB + 64 * KiB + PG);
	for (uint64_t o = 8 * MiB; o < 8 * MiB + 256 * KiB; o += PG)
		ck_assert_uint_eq(mismatch(E.map + o, o, PG, seed),
				  UINT64_MAX);
	/* Hostile but well-framed: an error reply, the connection stays. */
	rg[0] = (struct vmem_ctl_range){ size - PG, 2 * PG };
	ck_assert_int_eq(ctl_call(fd, VMEM_CTL_PAGE_IN, rg, 1), EINVAL);
	rg[0] = (struct vmem_ctl_range){ UINT64_MAX - PG, 2 * PG };
	ck_assert_int_eq(ctl_call(fd, VMEM_CTL_PAGE_IN, rg, 1), EINVAL);
	ck_assert_int_eq(ctl_call(fd, VMEM_CTL_PAGE_IN, rg, 0), EINVAL);
	ck_assert_int_eq(ctl_call(fd, 77, rg, 1), EOPNOTSUPP);
	ck_assert_int_eq(ctl_call(fd, VMEM_CTL_PING, NULL, 0), 0);
	ck_assert_uint_eq(data_bytes(E.mem_fd, 0, size),
			  256 * KiB + 64 * KiB + PG);
	/* Too many ranges: E2BIG, then closed (before reading them). */
	ctl_send(fd, VMEM_CTL_MAGIC, VMEM_CTL_PAGE_IN,
		 VMEM_CTL_MAX_RANGES + 1, NULL, 0);
	ck_assert_int_eq(ctl_reply(fd, &rp, 5000), 1);
	ck_assert_int_eq(rp.err, E2BIG);
	ck_assert_int_eq(ctl_reply(fd, &rp, 5000), 0);
	close(fd);
	/* Bad magic: EPROTO, then closed. */
	fd = ctl_connect();
	ck_assert_int_ge(fd, 0);
	ctl_send(fd, 0xdeadbeef, VMEM_CTL_PING, 0, NULL, 0);
	ck_assert_int_eq(ctl_reply(fd, &rp, 5000), 1);
	ck_assert_int_eq(rp.err, EPROTO);
	ck_assert_int_eq(ctl_reply(fd, &rp, 5000), 0);
	close(fd);
	/* Half a frame, then silence: closed after VMEM_CTL_FRAME_MS. */
	fd = ctl_connect();
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(send(fd, "VM", 2, MSG_NOSIGNAL), 2);
	t0 = now_ms();
	ck_assert_int_eq(ctl_reply(fd, &rp, VMEM_CTL_FRAME_MS + 3000), 0);
	ck_assert_uint_ge(now_ms() - t0, VMEM_CTL_FRAME_MS - 100);
	close(fd);
	/* A client that leaves before its reply does not hurt the pager. */
	fd = ctl_connect();
	rg[0] = (struct vmem_ctl_range){ 10 * MiB, MiB };
	ctl_send(fd, VMEM_CTL_MAGIC, VMEM_CTL_PAGE_IN, 1, rg, 1);
	close(fd);

	/* At most VMEM_CTL_MAX_CONNS: the next one is closed at once. */
	for (int i = 0; i < VMEM_CTL_MAX_CONNS; i++) {
		/* The threads of the connections closed above may take a
		 * moment to go (one finishes its page-in first). */
		for (int tries = 0;; tries++) {
			int r;

			fds[i] = ctl_connect();
			ck_assert_int_ge(fds[i], 0);
			r = ctl_call(fds[i], VMEM_CTL_PING, NULL, 0);
			if (r == 0)
				break;
			ck_assert_int_eq(r, -2);
			ck_assert_int_lt(tries, 100);
			close(fds[i]);
			usleep(50000);
		}
	}
	fd = ctl_connect();
	if (fd >= 0) {
		struct vmem_ctl_req rq = { .magic = VMEM_CTL_MAGIC,
					   .op = VMEM_CTL_PING };

		/* The send may already find it closed. */
		if (send(fd, &rq, sizeof(rq), MSG_NOSIGNAL) ==
		    (ssize_t)sizeof(rq))
			ck_assert_int_eq(ctl_reply(fd, &rp, 5000), 0);
		close(fd);
	}
	for (int i = 0; i < VMEM_CTL_MAX_CONNS; i++)
		close(fds[i]);

	/* Another user: the mode keeps it out, and so does SO_PEERCRED. */
	ck_assert_int_eq(ctl_ping_as_nobody(), 2);
	ck_assert_int_eq(chmod(ctl_path, 0666), 0);
	ck_assert_int_eq(ctl_ping_as_nobody(), 0);
	ck_assert_int_eq(chmod(ctl_path, 0600), 0);

	/* Gone with the pager; a stale socket of ours is replaced. */
	vmem_pager_free(E.pg);
	E.pg = NULL;
	ck_assert_int_eq(access(ctl_path, F_OK), -1);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int l = socket(AF_UNIX, SOCK_STREAM, 0);

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ctl_path);
		ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)),
				 0);
		close(l);
	}
	E.pg = vmem_pager_new(&p, err, sizeof(err));
	ck_assert_msg(E.pg != NULL, "vmem_pager_new: %s", err);
	ck_assert_int_eq(vmem_pager_start(E.pg), 0);
	fd = ctl_connect();
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ctl_call(fd, VMEM_CTL_PING, NULL, 0), 0);
	close(fd);
	cleanup();
	unlink(ctl_path);
}
END_TEST

static Suite *pager_suite(void)
{
	Suite *s = suite_create("pager");
	TCase *tc = tcase_create("pager");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_bad_params);
	tcase_add_test(tc, test_fault_fetch);
	tcase_add_test(tc, test_seq_file);
	tcase_add_test(tc, test_page_in_out);
	tcase_add_test(tc, test_resident_in);
	tcase_add_test(tc, test_eviction_budget);
	tcase_add_test(tc, test_unhomed_fills_budget);
	tcase_add_test(tc, test_race_writers);
	tcase_add_test(tc, test_subhost_down);
	tcase_add_test(tc, test_lock_wait_clock_read_once);
	tcase_add_test(tc, test_lock_wait_wall_clock_step);
	tcase_add_test(tc, test_evictor_wall_clock_step);
	tcase_add_test(tc, test_errno_survives_recount);
	tcase_add_test(tc, test_fault_thread_poll_error);
	tcase_add_test(tc, test_swapped_pages_are_resident);
	tcase_add_test(tc, test_trim_crash_between_install_and_trim);
	tcase_add_test(tc, test_trim_superseded_by_move_out);
	tcase_add_test(tc, test_page_in_ranges);
	tcase_add_test(tc, test_ctl_socket);
	suite_add_tcase(s, tc);
	return s;
}

/* What a failed test left (its nbdkit died with it: --exit-with-parent). */
static void remove_leftovers(void)
{
	static const char *const fmt[] = {
		"/dev/shm/ckpager.%d.mem", "/dev/shm/ckpager.%d.mem" VMEM_SEQ_SUFFIX,
		"/dev/shm/ckpager.%d.img", "/tmp/ckpager.%d.sock",
		"/tmp/ckpager.%d.pid", "/dev/shm/ckpager.%d.log",
		"/tmp/ckpager.%d.ctl", "/tmp/ckpager.%d.ctl.new",
	};
	char path[128];

	for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
		snprintf(path, sizeof(path), fmt[i], (int)runner_pid);
		unlink(path);
	}
}

int main(void)
{
	int rc;

	runner_pid = getpid();
	rc = vt_run_suite(pager_suite());
	remove_leftovers();
	return rc;
}
