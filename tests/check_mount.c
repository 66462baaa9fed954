// SPDX-License-Identifier: MIT
/*
 * Integration tests of vmemfs with real parts: a sparse memory file in
 * /dev/shm holding a known pattern on its "local" pages, two nbdkit
 * sub-hosts in network namespaces of their own holding the pattern for
 * the pages of their homes that are not local, and a real FUSE mount.
 *
 * Every expectation is computed here from the layout below and the
 * pattern function, never from vmemfs's own code.
 *
 * Processes: the shared environment (nbdkit, vmemfs) is started by
 * unchecked fixtures, i.e. in the runner process, which outlives the
 * forked tests and reaps everything by PID at teardown, at exit and on
 * SIGINT/SIGTERM.  A test that restarts a sub-host records the new PID
 * in the shared environment block (MAP_SHARED), and the runner is the
 * sub-reaper, so the orphan is still killed and reaped by PID.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libnbd.h>
#include <pthread.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/evictseq.h"
#include "lib/hosts.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define PAGE ((uint64_t)4096)
#define RAM (256 * MiB)
#define NPAGES (RAM / PAGE)
#define SEED 0x766d656d74657374ULL	/* "vmemtest" */

/*
 * The layout.  [0,96M) is local except two unmapped holes; sub-host 0 is
 * the home of [96M,160M), sub-host 1 of [176M,256M); [160M,176M) has no
 * home, so its holes read as zeros.  Inside the homes some pages are
 * local (paged in), singly and in runs.
 */
#define SUB0_START (96 * MiB)
#define SUB0_END (160 * MiB)
#define SUB1_START (176 * MiB)
#define SUB1_END RAM
#define HOLE0_START (8 * MiB)
#define HOLE0_END (8 * MiB + 64 * KiB)
#define HOLE1_START (40 * MiB + 4 * KiB)
#define HOLE1_END (40 * MiB + 12 * KiB)
#define RUN0_START (128 * MiB)
#define RUN0_END (129 * MiB)
#define RUN1_START (200 * MiB)
#define RUN1_END (200 * MiB + 12 * KiB)

static int page_home(uint64_t pg)
{
	uint64_t off = pg * PAGE;

	if (off >= SUB0_START && off < SUB0_END)
		return 0;
	if (off >= SUB1_START && off < SUB1_END)
		return 1;
	return -1;
}

static bool page_initially_local(uint64_t pg)
{
	uint64_t off = pg * PAGE;

	if (off < SUB0_START)
		return !((off >= HOLE0_START && off < HOLE0_END) ||
			 (off >= HOLE1_START && off < HOLE1_END));
	if (off < SUB0_END)
		return pg % 37 == 0 || (off >= RUN0_START && off < RUN0_END);
	if (off < SUB1_START)
		return pg % 5 == 0;
	return pg % 41 == 3 || (off >= RUN1_START && off < RUN1_END);
}

/* What `mem` must read as: the pattern, except holes with no home. */
static void ref_fill(void *buf, uint64_t off, size_t len)
{
	uint8_t *p = buf;
	uint64_t end = off + len;

	vt_pattern_fill(buf, off, len, SEED);
	for (uint64_t pg = off / PAGE; pg * PAGE < end; pg++) {
		uint64_t s = pg * PAGE, e = s + PAGE;

		if (page_home(pg) >= 0 || page_initially_local(pg))
			continue;
		if (s < off)
			s = off;
		if (e > end)
			e = end;
		memset(p + (s - off), 0, e - s);
	}
}

/* ---- the environment ------------------------------------------------ */

struct env_opts {
	const char *tag;
	uint64_t cache_size;
	unsigned int cache_ttl_ms;
	unsigned int timeout_ms;
	bool with_seq;
};

struct env {
	bool up;			/* something to tear down */
	bool ok;			/* setup completed */
	char err[2048];
	struct env_opts opt;
	char memfile[128];
	char seqfile[140];
	char config[128];
	char mnt[128];
	char log[128];
	struct vt_nbdkit sub[2];
	struct vt_vmemfs fs;
	struct vt_vmemfs fs2;		/* a test's own second mount */
	char mnt2[140];
	struct vmem_seq_map *seq;	/* mapped by the runner, shared */
};

static struct env *E;			/* MAP_SHARED: tests update PIDs */
static pid_t runner_pid;
static bool use_netns;
/* Why namespaces could not be made, when VMT_NO_NETNS did not ask. */
static char netns_err[1024];
static struct vt_netns netns[2];

static void env_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void env_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(E->err, sizeof(E->err), fmt, ap);
	va_end(ap);
	printf("setup failed: %s\n", E->err);
	fflush(stdout);
}

static int write_memfile(void)
{
	static uint8_t buf[MiB];
	int fd = open(E->memfile, O_RDWR | O_CREAT | O_EXCL, 0600);

	if (fd < 0) {
		env_fail("create %s: %s", E->memfile, strerror(errno));
		return -1;
	}
	if (ftruncate(fd, RAM) < 0)
		goto fail;
	/* Write runs of local pages, at most 1 MiB at a time. */
	for (uint64_t pg = 0; pg < NPAGES;) {
		uint64_t s = pg, e;

		if (!page_initially_local(pg)) {
			pg++;
			continue;
		}
		for (e = s; e < NPAGES && page_initially_local(e) &&
		     (e - s) * PAGE < sizeof(buf); e++)
			;
		vt_pattern_fill(buf, s * PAGE, (e - s) * PAGE, SEED);
		if (pwrite(fd, buf, (e - s) * PAGE, s * PAGE) !=
		    (ssize_t)((e - s) * PAGE))
			goto fail;
		pg = e;
	}
	close(fd);
	return 0;
fail:
	env_fail("write %s: %s", E->memfile, strerror(errno));
	close(fd);
	return -1;
}

/* Put the pattern on sub-host @i for the pages of its home not local. */
static int fill_subhost(int i, char *err, size_t errlen)
{
	static uint8_t buf[MiB];
	struct nbd_handle *h = vt_nbd_connect(E->sub[i].uri, 5000, err,
					      errlen);
	int ret = 0;

	if (!h)
		return -1;
	for (uint64_t pg = 0; pg < NPAGES && ret == 0;) {
		uint64_t s = pg, e;

		if (page_home(pg) != i || page_initially_local(pg)) {
			pg++;
			continue;
		}
		for (e = s; e < NPAGES && page_home(e) == i &&
		     !page_initially_local(e) &&
		     (e - s) * PAGE < sizeof(buf); e++)
			;
		vt_pattern_fill(buf, s * PAGE, (e - s) * PAGE, SEED);
		if (nbd_pwrite(h, buf, (e - s) * PAGE, s * PAGE, 0) < 0) {
			snprintf(err, errlen, "nbd_pwrite %s: %s",
				 E->sub[i].uri, nbd_get_error());
			ret = -1;
		}
		pg = e;
	}
	if (ret == 0 && nbd_flush(h, 0) < 0 && nbd_can_flush(h) > 0) {
		snprintf(err, errlen, "nbd_flush: %s", nbd_get_error());
		ret = -1;
	}
	nbd_shutdown(h, 0);
	nbd_close(h);
	return ret;
}

static int start_subhost(int i, bool exit_with_parent, char *err,
			 size_t errlen)
{
	struct vt_nbdkit *n = &E->sub[i];

	if (vt_nbdkit_start(n, exit_with_parent, err, errlen) < 0)
		return -1;
	return fill_subhost(i, err, errlen);
}

static void env_down(void)
{
	if (!E || !E->up)
		return;
	if (E->fs.pid > 0 || E->fs.mnt[0]) {
		int st = vt_vmemfs_stop(&E->fs, 5000);

		if (st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			printf("note: vmemfs ended with status 0x%x\n", st);
		else if (st == -1)
			printf("note: vmemfs did not exit on SIGTERM\n");
		E->fs.mnt[0] = '\0';
	}
	if (E->fs2.pid > 0 || E->fs2.mnt[0])
		vt_vmemfs_stop(&E->fs2, 3000);
	if (E->mnt2[0])
		rmdir(E->mnt2);
	if (E->log[0]) {
		vt_print_tail(E->log, 12, "  vmemfs log: ");
		unlink(E->log);
	}
	for (int i = 0; i < 2; i++) {
		vt_nbdkit_kill(&E->sub[i]);
		if (use_netns)
			vt_netns_kill_all(&netns[i]);
	}
	if (E->seq)
		munmap(E->seq, VMEM_SEQ_FILE_SIZE);
	E->seq = NULL;
	if (E->memfile[0])
		unlink(E->memfile);
	if (E->seqfile[0])
		unlink(E->seqfile);
	if (E->config[0])
		unlink(E->config);
	if (E->mnt[0])
		rmdir(E->mnt);
	/* Orphans a test left (none expected): reap without blocking. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	fflush(stdout);
	memset(E, 0, sizeof(*E));
}

static int write_config(const char *path, const struct env_opts *o)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fprintf(f,
		"# written by check_mount\n"
		"[vmt]\n"
		"memory-file = %s\n"
		"ram-size    = 256M\n"
		"backend     = direct\n"
		"chunk-size  = 64K\n"
		"cache-size  = %" PRIu64 "\n"
		"cache-ttl   = %ums\n"
		"timeout     = %ums\n"
		"subhost     = %s 96M-160M\n"
		"subhost     = %s 176M-256M\n",
		E->memfile, o->cache_size, o->cache_ttl_ms, o->timeout_ms,
		E->sub[0].uri, E->sub[1].uri);
	return fclose(f);
}

static void env_up(const struct env_opts *o)
{
	char err[1024];
	pid_t pid = getpid();

	memset(E, 0, sizeof(*E));
	E->up = true;
	E->opt = *o;
	snprintf(E->memfile, sizeof(E->memfile), "/dev/shm/vmt-%d-%s.mem",
		 pid, o->tag);
	snprintf(E->config, sizeof(E->config), "/tmp/vmt-%d-%s.conf", pid,
		 o->tag);
	snprintf(E->log, sizeof(E->log), "/tmp/vmt-%d-%s.log", pid, o->tag);
	snprintf(E->mnt, sizeof(E->mnt), "/tmp/vmt-%d-%s.mnt", pid, o->tag);

	if (write_memfile() < 0)
		return;
	if (o->with_seq) {
		int fd;

		snprintf(E->seqfile, sizeof(E->seqfile), "%s%s", E->memfile,
			 VMEM_SEQ_SUFFIX);
		fd = open(E->seqfile, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || ftruncate(fd, VMEM_SEQ_FILE_SIZE) < 0) {
			env_fail("create %s: %s", E->seqfile, strerror(errno));
			if (fd >= 0)
				close(fd);
			return;
		}
		E->seq = mmap(NULL, VMEM_SEQ_FILE_SIZE,
			      PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (E->seq == MAP_FAILED) {
			E->seq = NULL;
			env_fail("mmap %s: %s", E->seqfile, strerror(errno));
			return;
		}
	}

	for (int i = 0; i < 2; i++) {
		struct vt_nbdkit *n = &E->sub[i];

		snprintf(n->size, sizeof(n->size), "256M");
		if (use_netns) {
			_Static_assert(sizeof(n->netns) ==
				       sizeof(netns[i].name), "netns name");
			_Static_assert(sizeof(n->addr) ==
				       sizeof(netns[i].ns_addr), "address");
			memcpy(n->netns, netns[i].name, sizeof(n->netns));
			memcpy(n->addr, netns[i].ns_addr, sizeof(n->addr));
			n->port = 10809;
		} else {
			snprintf(n->addr, sizeof(n->addr), "127.0.0.1");
			n->port = vt_free_tcp_port();
		}
		if (start_subhost(i, true, err, sizeof(err)) < 0) {
			env_fail("sub-host %d: %s", i, err);
			return;
		}
	}

	if (write_config(E->config, o) < 0) {
		env_fail("write %s: %s", E->config, strerror(errno));
		return;
	}
	if (mkdir(E->mnt, 0755) < 0) {
		env_fail("mkdir %s: %s", E->mnt, strerror(errno));
		return;
	}
	if (vt_vmemfs_start(&E->fs, E->config, NULL, NULL, E->mnt, E->log,
			    RAM, 15000, err, sizeof(err)) < 0) {
		env_fail("vmemfs: %s", err);
		vt_print_tail(E->log, 20, "  vmemfs log: ");
		return;
	}
	E->ok = true;
}

static void setup_static(void)
{
	/* A seq file as the pager publishes it (nobody moves pages here):
	 * without one, vmemfs does not cache, and the cache is tested too. */
	static const struct env_opts o = {
		.tag = "static", .cache_size = 4 * MiB, .cache_ttl_ms = 100,
		.timeout_ms = 2000, .with_seq = true,
	};

	env_up(&o);
}

static void setup_faults(void)
{
	/* No cache: every read below must really go to the sub-host. */
	static const struct env_opts o = {
		.tag = "faults", .cache_size = 0, .cache_ttl_ms = 100,
		.timeout_ms = 1000,
	};

	env_up(&o);
}

static void setup_mover(void)
{
	static const struct env_opts o = {
		.tag = "mover", .cache_size = 4 * MiB, .cache_ttl_ms = 100,
		.timeout_ms = 2000, .with_seq = true,
	};

	env_up(&o);
}

static void setup_mover_noseq(void)
{
	/* VMT_MOVER_NOSEQ=N: cache-size N bytes (default 4M). */
	const char *c = getenv("VMT_MOVER_NOSEQ");
	struct env_opts o = {
		.tag = "noseq", .cache_size = 4 * MiB, .cache_ttl_ms = 100,
		.timeout_ms = 2000, .with_seq = false,
	};

	if (c && *c >= '0' && *c <= '9')
		o.cache_size = strtoull(c, NULL, 0);
	env_up(&o);
}

static void cleanup_all(void)
{
	/* Check's forked tests inherit atexit handlers: only the runner. */
	if (getpid() != runner_pid)
		return;
	env_down();
	for (int i = 0; i < 2; i++)
		vt_netns_delete(&netns[i]);
}

#define REQUIRE_ENV() ck_assert_msg(E->ok, "environment: %s", E->err)

/* ---- helpers for tests ---------------------------------------------- */

static char *path_in_mnt(const char *name)
{
	static __thread char p[300];

	snprintf(p, sizeof(p), "%s/%s", E->mnt, name);
	return p;
}

/* Compare; on mismatch *bad = first differing offset. */
static bool verify(const uint8_t *got, uint64_t off, size_t len,
		   uint64_t *bad)
{
	uint8_t *want = malloc(len ? len : 1);
	bool ok;

	ck_assert_ptr_nonnull(want);
	ref_fill(want, off, len);
	ok = memcmp(got, want, len) == 0;
	if (!ok) {
		size_t i = 0;

		while (got[i] == want[i])
			i++;
		*bad = off + i;
	}
	free(want);
	return ok;
}

static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

static char *read_whole(const char *path)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
		n = read(fd, buf + len, cap - len - 1);
		ck_assert_msg(n >= 0, "read %s: %s", path, strerror(errno));
		if (n == 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

static json_object *read_json(const char *name)
{
	char *text = read_whole(path_in_mnt(name));
	json_object *j = json_tokener_parse(text);

	ck_assert_msg(j != NULL, "%s is not JSON: %.200s", name, text);
	free(text);
	return j;
}

static double jnum(json_object *o, const char *key)
{
	json_object *v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v),
		      "key \"%s\" missing", key);
	ck_assert_msg(json_object_is_type(v, json_type_int) ||
		      json_object_is_type(v, json_type_double),
		      "key \"%s\" is not a number", key);
	return json_object_get_double(v);
}

static int64_t jint(json_object *o, const char *key)
{
	json_object *v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v),
		      "key \"%s\" missing", key);
	ck_assert_msg(json_object_is_type(v, json_type_int),
		      "key \"%s\" is not an integer", key);
	return json_object_get_int64(v);
}

/* The memory file's allocation: st_blocks and its data extents. */
struct datamap {
	int64_t blocks;
	size_t n;
	uint64_t (*ext)[2];
};

static void datamap_get(const char *path, struct datamap *m)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	size_t cap = 1024;
	off_t off = 0;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	m->blocks = st.st_blocks;
	m->n = 0;
	m->ext = malloc(cap * sizeof(*m->ext));
	for (;;) {
		off_t d = lseek(fd, off, SEEK_DATA), h;

		if (d < 0)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		ck_assert(h > d);
		if (m->n == cap) {
			cap *= 2;
			m->ext = realloc(m->ext, cap * sizeof(*m->ext));
		}
		m->ext[m->n][0] = d;
		m->ext[m->n][1] = h;
		m->n++;
		off = h;
	}
	close(fd);
}

static void datamap_assert_equal(const struct datamap *a,
				 const struct datamap *b)
{
	ck_assert_msg(a->blocks == b->blocks,
		      "memory file st_blocks changed: %" PRId64 " -> %" PRId64,
		      a->blocks, b->blocks);
	ck_assert_msg(a->n == b->n, "data extents changed: %zu -> %zu",
		      a->n, b->n);
	for (size_t i = 0; i < a->n; i++)
		ck_assert_msg(a->ext[i][0] == b->ext[i][0] &&
			      a->ext[i][1] == b->ext[i][1],
			      "data extent %zu changed", i);
}

/* Bytes of [off, off+len) (page aligned) that are local/remote/zero. */
static void classify(uint64_t off, uint64_t len, uint64_t *local,
		     uint64_t *remote, uint64_t *zero)
{
	*local = *remote = *zero = 0;
	for (uint64_t pg = off / PAGE; pg < (off + len) / PAGE; pg++) {
		if (page_initially_local(pg))
			*local += PAGE;
		else if (page_home(pg) >= 0)
			*remote += PAGE;
		else
			*zero += PAGE;
	}
}

/* Read and verify [off, off+len) through @fd; fails the test if wrong. */
static void read_verify(int fd, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	ssize_t n;
	uint64_t bad = 0;

	ck_assert_ptr_nonnull(buf);
	n = pread_full(fd, buf, len, off);
	ck_assert_msg(n == (ssize_t)len,
		      "pread(%zu @ 0x%" PRIx64 ") = %zd (%s)", len, off, n,
		      n < 0 ? strerror(errno) : "short");
	ck_assert_msg(verify(buf, off, len, &bad),
		      "wrong byte at 0x%" PRIx64 " in read of %zu @ 0x%" PRIx64,
		      bad, len, off);
	free(buf);
}

/* ---- static tests --------------------------------------------------- */

START_TEST(test_setup_matches_layout)
{
	/* The fixture itself: the file's data map is exactly the layout. */
	struct datamap m;
	uint64_t want_local = 0;
	size_t k = 0;

	REQUIRE_ENV();
	datamap_get(E->memfile, &m);
	for (uint64_t pg = 0; pg < NPAGES;) {
		uint64_t e = pg;

		if (!page_initially_local(pg)) {
			pg++;
			continue;
		}
		while (e < NPAGES && page_initially_local(e))
			e++;
		ck_assert_msg(k < m.n, "fewer data extents than local runs");
		ck_assert_msg(m.ext[k][0] == pg * PAGE &&
			      m.ext[k][1] == e * PAGE,
			      "data extent %zu is [0x%" PRIx64 ",0x%" PRIx64
			      ") not [0x%" PRIx64 ",0x%" PRIx64 ")",
			      k, m.ext[k][0], m.ext[k][1], pg * PAGE,
			      e * PAGE);
		want_local += (e - pg) * PAGE;
		k++;
		pg = e;
	}
	ck_assert_uint_eq(k, m.n);
	ck_assert_uint_eq((uint64_t)m.blocks * 512, want_local);
	free(m.ext);
}
END_TEST

START_TEST(test_full_compare)
{
	const size_t chunk = MiB;
	uint8_t *buf = malloc(chunk);
	struct datamap before, after;
	double t0, ms;
	int fd;

	REQUIRE_ENV();
	datamap_get(E->memfile, &before);
	fd = open(path_in_mnt("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	t0 = vt_now_ms();
	for (uint64_t off = 0; off < RAM; off += chunk) {
		ssize_t n = pread_full(fd, buf, chunk, off);
		uint64_t bad = 0;

		ck_assert_msg(n == (ssize_t)chunk,
			      "pread 1M @ 0x%" PRIx64 " = %zd (%s)", off, n,
			      n < 0 ? strerror(errno) : "short");
		ck_assert_msg(verify(buf, off, chunk, &bad),
			      "mem differs from reference at 0x%" PRIx64, bad);
	}
	ms = vt_now_ms() - t0;
	printf("info: full read of mem (256 MiB, 1 MiB preads): %.0f ms, %.0f MiB/s\n",
	       ms, 256 / (ms / 1000));
	/* At the end of the file: EOF, not an error. */
	ck_assert_int_eq(pread(fd, buf, 4096, RAM), 0);
	close(fd);
	datamap_get(E->memfile, &after);
	datamap_assert_equal(&before, &after);
	free(buf);
	free(before.ext);
	free(after.ext);
}
END_TEST

START_TEST(test_local_and_remote_throughput)
{
	/* Separately: a purely local and a purely remote range. */
	const size_t chunk = MiB;
	uint8_t *buf = malloc(chunk);
	int fd = open(path_in_mnt("mem"), O_RDONLY);
	double t0, ms_local, ms_remote;
	uint64_t bad;

	REQUIRE_ENV();
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	t0 = vt_now_ms();
	for (uint64_t off = 16 * MiB; off < 80 * MiB; off += chunk)
		ck_assert_int_eq(pread_full(fd, buf, chunk, off), chunk);
	ms_local = vt_now_ms() - t0;
	/* Sub-host 1 has only single local pages in [204M, 252M). */
	t0 = vt_now_ms();
	for (uint64_t off = 204 * MiB; off < 252 * MiB; off += chunk) {
		ck_assert_int_eq(pread_full(fd, buf, chunk, off), chunk);
		ck_assert_msg(verify(buf, off, chunk, &bad),
			      "wrong byte at 0x%" PRIx64, bad);
	}
	ms_remote = vt_now_ms() - t0;
	printf("info: local 1 MiB reads %.0f MiB/s; remote (sub-host 1) 1 MiB reads %.0f MiB/s\n",
	       64 / (ms_local / 1000), 48 / (ms_remote / 1000));
	close(fd);
	free(buf);
}
END_TEST

START_TEST(test_unaligned_reads)
{
	/* Reads that start and end mid-page across every kind of border. */
	static const struct {
		uint64_t off;
		size_t len;
	} cases[] = {
		{ 0, 1 },
		{ 1, 4095 },
		{ 4095, 2 },
		{ HOLE0_START - 3, 7 },			/* local -> unmapped */
		{ HOLE0_END - 5, 4100 },		/* unmapped -> local */
		{ HOLE1_START - 4097, 3 * 4096 + 11 },	/* tiny hole */
		{ SUB0_START - 1000, 5000 },		/* local -> sub 0 */
		{ SUB0_START - 1, 1 << 20 },
		{ 37 * 700 * PAGE - 13, 8200 },	/* around a local page */
		{ RUN0_START - 77, 4096 + 77 * 2 },	/* into a local run */
		{ RUN0_END - 4097, 12345 },		/* out of it */
		{ SUB0_END - 3, 9 },			/* sub 0 -> no home */
		{ SUB0_END - 70000, 200001 },
		{ SUB1_START - 7, 13 },			/* no home -> sub 1 */
		{ SUB1_START - 65536 - 1, 3 * 65536 + 3 },
		{ RUN1_START - 1, 12 * 1024 + 2 },
		{ 150 * MiB + 12345, 3 * MiB + 1 },	/* many chunks */
		{ RAM - 4097, 4097 },			/* the very end */
		{ RAM - 1, 1 },
	};
	int fd;

	REQUIRE_ENV();
	fd = open(path_in_mnt("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		read_verify(fd, cases[i].off, cases[i].len);
	/* And 300 random odd ones (fixed seed: reproducible). */
	for (uint64_t i = 0; i < 300; i++) {
		uint64_t r = vt_splitmix64(i * 7919 + 1);
		size_t len = 1 + (r >> 40) % 300000;
		uint64_t off = r % (RAM - len);

		read_verify(fd, off, len);
	}
	/* A read across the end is clipped. */
	{
		uint8_t buf[8192];
		ssize_t n = pread(fd, buf, sizeof(buf), RAM - 100);

		ck_assert_int_eq(n, 100);
	}
	close(fd);
}
END_TEST

START_TEST(test_map)
{
	json_object *j;
	size_t n, k = 0;
	uint64_t pos = 0;

	REQUIRE_ENV();
	j = read_json("map");
	ck_assert(json_object_is_type(j, json_type_array));
	n = json_object_array_length(j);
	/* Expected: merge pages with the same answer. */
	for (uint64_t pg = 0; pg < NPAGES;) {
		const char *want;
		uint64_t e;
		json_object *x, *w;
		int64_t s, en;

#define WHERE(p) (page_initially_local(p) ? "local" :			\
		  page_home(p) >= 0 ? E->sub[page_home(p)].uri : "unmapped")
		want = WHERE(pg);
		for (e = pg + 1; e < NPAGES && strcmp(WHERE(e), want) == 0;
		     e++)
			;
#undef WHERE
		ck_assert_msg(k < n, "map has only %zu extents", n);
		x = json_object_array_get_idx(j, k);
		s = jint(x, "start");
		en = jint(x, "end");
		ck_assert_msg(json_object_object_get_ex(x, "where", &w),
			      "extent %zu has no where", k);
		ck_assert_msg((uint64_t)s == pg * PAGE &&
			      (uint64_t)en == e * PAGE &&
			      strcmp(json_object_get_string(w), want) == 0,
			      "map extent %zu is [0x%" PRIx64 ",0x%" PRIx64
			      ") %s, expected [0x%" PRIx64 ",0x%" PRIx64 ") %s",
			      k, (uint64_t)s, (uint64_t)en,
			      json_object_get_string(w), pg * PAGE, e * PAGE,
			      want);
		pos = e * PAGE;
		pg = e;
		k++;
	}
	ck_assert_uint_eq(pos, RAM);
	ck_assert_msg(k == n, "map has %zu extents, expected %zu", n, k);
	printf("info: map has %zu extents\n", n);
	json_object_put(j);
}
END_TEST

/* {"p50","p90","p99","max"}: numbers in order. */
static void assert_percentiles(json_object *lat)
{
	ck_assert(jnum(lat, "p50") >= 0);
	ck_assert(jnum(lat, "p50") <= jnum(lat, "p90"));
	ck_assert(jnum(lat, "p90") <= jnum(lat, "p99"));
	ck_assert(jnum(lat, "p99") <= jnum(lat, "max"));
}

struct stats_snap {
	int64_t reads, read_errors, local, remote, zero, retries, hits,
		misses;
	int64_t req[2], bytes[2], errors[2], connects[2];
};

static void stats_get(struct stats_snap *s, bool check_shape)
{
	json_object *j = read_json("stats"), *subs, *lat;

	ck_assert(json_object_is_type(j, json_type_object));
	s->reads = jint(j, "reads");
	s->read_errors = jint(j, "read_errors");
	s->local = jint(j, "bytes_local");
	s->remote = jint(j, "bytes_remote");
	s->zero = jint(j, "bytes_zero");
	s->retries = jint(j, "retries");
	s->hits = jint(j, "cache_hits");
	s->misses = jint(j, "cache_misses");
	ck_assert_msg(json_object_object_get_ex(j, "subhosts", &subs) &&
		      json_object_is_type(subs, json_type_array),
		      "stats has no subhosts array");
	ck_assert_uint_eq(json_object_array_length(subs), 2);
	for (int i = 0; i < 2; i++) {
		json_object *x = json_object_array_get_idx(subs, i), *u;

		s->req[i] = jint(x, "requests");
		s->bytes[i] = jint(x, "bytes");
		s->errors[i] = jint(x, "errors");
		s->connects[i] = jint(x, "connects");
		if (!check_shape)
			continue;
		ck_assert(json_object_object_get_ex(x, "uri", &u));
		ck_assert_str_eq(json_object_get_string(u), E->sub[i].uri);
		ck_assert_int_eq(jint(x, "start"), i ? SUB1_START : SUB0_START);
		ck_assert_int_eq(jint(x, "end"), i ? SUB1_END : SUB0_END);
		ck_assert(json_object_object_get_ex(x, "latency_us", &lat));
		assert_percentiles(lat);
	}
	if (check_shape) {
		ck_assert(json_object_object_get_ex(j, "latency_us", &lat));
		assert_percentiles(lat);
	}
	json_object_put(j);
}

START_TEST(test_stats)
{
	static const struct {
		uint64_t off, len;
	} reads[] = {
		{ 0, MiB },				/* local */
		{ HOLE0_START - 8 * KiB, 72 * KiB },	/* local + zeros */
		{ 100 * MiB, MiB },			/* sub 0 + local pages */
		{ 164 * MiB, 256 * KiB },		/* no home: zeros+local */
		{ RUN0_START, 64 * KiB },		/* local inside a home */
	};
	struct stats_snap a, b;
	uint64_t l = 0, r = 0, z = 0, total = 0;
	int fd;

	REQUIRE_ENV();
	/* Let cached chunks of earlier tests expire (cache-ttl 100ms). */
	vt_sleep_ms(250);
	stats_get(&a, true);
	fd = open(path_in_mnt("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
		uint64_t dl, dr, dz;

		read_verify(fd, reads[i].off, reads[i].len);
		classify(reads[i].off, reads[i].len, &dl, &dr, &dz);
		l += dl;
		r += dr;
		z += dz;
		total += reads[i].len;
	}
	close(fd);
	stats_get(&b, true);
	printf("info: stats deltas: reads %" PRId64 " local %" PRId64
	       " remote %" PRId64 " zero %" PRId64 " (expected %" PRIu64
	       "/%" PRIu64 "/%" PRIu64 "), sub0 requests %" PRId64 "\n",
	       b.reads - a.reads, b.local - a.local, b.remote - a.remote,
	       b.zero - a.zero, l, r, z, b.req[0] - a.req[0]);
	ck_assert_int_ge(b.reads - a.reads, 5);
	ck_assert_int_eq(b.read_errors - a.read_errors, 0);
	ck_assert_int_eq((b.local - a.local) + (b.remote - a.remote) +
			 (b.zero - a.zero), total);
	ck_assert_int_eq(b.local - a.local, l);
	ck_assert_int_eq(b.remote - a.remote, r);
	ck_assert_int_eq(b.zero - a.zero, z);
	/* Remote bytes came from sub-host 0 only. */
	ck_assert_int_ge(b.req[0] - a.req[0], 1);
	ck_assert_int_ge(b.bytes[0] - a.bytes[0], 1);
	ck_assert_int_eq(b.req[1] - a.req[1], 0);
	ck_assert_int_eq(b.errors[0] - a.errors[0], 0);
	/* With a 4M cache every remote chunk is a hit or a miss. */
	ck_assert_int_ge((b.hits - a.hits) + (b.misses - a.misses), 1);
}
END_TEST

struct reader_arg {
	int id;
	double until;
	uint64_t lo, hi;		/* range to read in */
	size_t maxlen;
	uint64_t reads, bytes, bad, eio, other_err;
	uint64_t first_bad;
	int fd;
};

static void *reader_thread(void *p)
{
	struct reader_arg *a = p;
	uint8_t *buf = malloc(a->maxlen), *want = malloc(a->maxlen);
	uint64_t x = 0x1234567ULL * (a->id + 1);

	while (vt_now_ms() < a->until) {
		uint64_t r = vt_splitmix64(x++);
		size_t len = 1 + (r >> 40) % a->maxlen;
		uint64_t off = a->lo + r % (a->hi - a->lo - len);
		ssize_t n = pread_full(a->fd, buf, len, off);

		a->reads++;
		if (n < 0) {
			if (errno == EIO)
				a->eio++;
			else
				a->other_err++;
			continue;
		}
		if (n != (ssize_t)len) {
			a->other_err++;
			continue;
		}
		a->bytes += len;
		ref_fill(want, off, len);
		if (memcmp(buf, want, len)) {
			size_t i = 0;

			while (buf[i] == want[i])
				i++;
			if (!a->bad)
				a->first_bad = off + i;
			a->bad++;
		}
	}
	free(buf);
	free(want);
	return NULL;
}

static void run_readers(struct reader_arg *args, int n, int fd,
			uint64_t lo, uint64_t hi, size_t maxlen, double ms)
{
	pthread_t th[16];
	double until = vt_now_ms() + ms;

	for (int i = 0; i < n; i++) {
		args[i] = (struct reader_arg){
			.id = i, .until = until, .lo = lo, .hi = hi,
			.maxlen = maxlen, .fd = fd,
		};
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader_thread,
						&args[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

START_TEST(test_concurrent_readers)
{
	struct reader_arg a[8];
	uint64_t reads = 0, bytes = 0;
	double t0 = vt_now_ms(), ms;
	int fd;

	REQUIRE_ENV();
	fd = open(path_in_mnt("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	run_readers(a, 8, fd, 0, RAM, 512 * KiB, 3000);
	ms = vt_now_ms() - t0;
	close(fd);
	for (int i = 0; i < 8; i++) {
		ck_assert_msg(a[i].bad == 0,
			      "reader %d: %" PRIu64 " wrong reads, first at 0x%"
			      PRIx64, i, a[i].bad, a[i].first_bad);
		ck_assert_msg(a[i].eio == 0 && a[i].other_err == 0,
			      "reader %d: %" PRIu64 " EIO, %" PRIu64
			      " other errors", i, a[i].eio, a[i].other_err);
		ck_assert_msg(a[i].reads > 10, "reader %d made %" PRIu64
			      " reads only", i, a[i].reads);
		reads += a[i].reads;
		bytes += a[i].bytes;
	}
	printf("info: 8 random readers: %" PRIu64 " reads, %.0f reads/s, %.0f MiB/s, all verified\n",
	       reads, reads / (ms / 1000), bytes / (double)MiB / (ms / 1000));
}
END_TEST

START_TEST(test_permissions)
{
	struct stat st;
	pid_t pid;
	int ws;

	REQUIRE_ENV();
	ck_assert_int_eq(stat(path_in_mnt("mem"), &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_msg((st.st_mode & 07777) == 0400, "mem mode is %o",
		      st.st_mode & 07777);
	ck_assert_int_eq(st.st_uid, 0);
	ck_assert_int_eq(st.st_size, RAM);
	/* Read-only, even for root. */
	errno = 0;
	ck_assert_msg(open(path_in_mnt("mem"), O_WRONLY) < 0 &&
		      (errno == EACCES || errno == EROFS || errno == EPERM),
		      "open(mem, O_WRONLY): %s", strerror(errno));
	/* Another user gets EACCES without allow_other. */
	pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		int fd;

		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(2);
		fd = open(path_in_mnt("mem"), O_RDONLY);
		if (fd >= 0)
			_exit(3);
		_exit(errno == EACCES ? 0 : 4);
	}
	ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
	ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
		      "user 65534 opening mem: exit %d (3 = it succeeded, 4 = errno not EACCES)",
		      WEXITSTATUS(ws));
}
END_TEST

START_TEST(test_allow_other_and_sigterm)
{
	char err[1024], log[160];
	struct stat st, parent;
	pid_t pid;
	int ws;

	REQUIRE_ENV();
	/* A second mount of the same VM, named with --vm, for everyone. */
	snprintf(E->mnt2, sizeof(E->mnt2), "%s2", E->mnt);
	snprintf(log, sizeof(log), "%s2", E->log);
	ck_assert_int_eq(mkdir(E->mnt2, 0755), 0);
	ck_assert_msg(vt_vmemfs_start(&E->fs2, E->config, "vmt", "allow_other",
				      E->mnt2, log, RAM, 15000, err,
				      sizeof(err)) == 0, "%s", err);
	unlink(log);
	pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		static uint8_t got[256 * 1024], want[256 * 1024];
		char p[300];
		int fd;

		snprintf(p, sizeof(p), "%s/mem", E->mnt2);
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(2);
		fd = open(p, O_RDONLY);
		if (fd < 0)
			_exit(3);
		/* Local, remote and unmapped bytes in one read. */
		if (pread_full(fd, got, sizeof(got), SUB0_END - 100000) !=
		    (ssize_t)sizeof(got))
			_exit(4);
		ref_fill(want, SUB0_END - 100000, sizeof(want));
		_exit(memcmp(got, want, sizeof(got)) ? 5 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
	ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
		      "user 65534 reading mem with allow_other: exit %d (3 = open failed, 4 = read failed, 5 = wrong data)",
		      WEXITSTATUS(ws));

	/* SIGTERM: unmount and exit 0. */
	ck_assert_int_eq(stat(E->mnt2, &st), 0);
	ck_assert_int_eq(stat("/tmp", &parent), 0);
	ck_assert(st.st_dev != parent.st_dev);
	ck_assert_int_eq(kill(E->fs2.pid, SIGTERM), 0);
	ws = vt_wait_pid(E->fs2.pid, 5000);
	ck_assert_msg(ws != -1, "vmemfs did not exit within 5 s of SIGTERM");
	E->fs2.pid = 0;
	ck_assert_int_eq(stat(E->mnt2, &st), 0);
	ck_assert_msg(st.st_dev == parent.st_dev,
		      "still mounted after SIGTERM");
	ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
		      "vmemfs exit status after SIGTERM: 0x%x (want exit 0)",
		      ws);
}
END_TEST

static int check_config_text(const char *text, char *out, size_t outlen,
			     char *errout, size_t errlen, char *path,
			     size_t pathlen)
{
	FILE *f;
	char *argv[] = { (char *)vt_vmemfs_bin(), "--check-config", "-c",
			 path, NULL };

	snprintf(path, pathlen, "/tmp/vmt-%d-check.conf", (int)getpid());
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	{
		int rc = vt_run(argv, out, outlen, errout, errlen, 10000);

		unlink(path);
		return rc;
	}
}

START_TEST(test_check_config)
{
	char out[8192], errout[4096], path[128], text[2048], want[160];
	int rc;

	REQUIRE_ENV();
	/* The environment's own config: valid, printed back. */
	{
		char *argv[] = { (char *)vt_vmemfs_bin(), "--check-config",
				 "-c", E->config, NULL };

		rc = vt_run(argv, out, sizeof(out), errout, sizeof(errout),
			    10000);
	}
	ck_assert_msg(rc == 0, "--check-config exit %d: %s", rc, errout);
	ck_assert_msg(strstr(out, E->memfile), "no memory-file in: %s", out);
	ck_assert_msg(strstr(out, E->sub[0].uri) && strstr(out, E->sub[1].uri),
		      "sub-hosts missing in: %s", out);
	ck_assert_msg(strstr(out, "96M-160M") && strstr(out, "176M-256M"),
		      "ranges missing in: %s", out);
	ck_assert_msg(strstr(out, "ram-size") && strstr(out, "256M"),
		      "ram-size missing in: %s", out);

	/* Bad configs: nonzero, naming FILE:LINE. */
	static const struct {
		const char *body;	/* after "[vmt]\nmemory-file = X\n" */
		int line;
	} bad[] = {
		{ "chunk-size = 3K\n", 3 },
		{ "colour = blue\n", 3 },
		{ "ram-size = 256M\ntimeout = soon\n", 4 },
		{ "ram-size = 256M\nsubhost = nbd://127.0.0.1:1 200M-300M\n", 4 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[vmt]\nmemory-file = %s\n%s",
			 E->memfile, bad[i].body);
		rc = check_config_text(text, out, sizeof(out), errout,
				       sizeof(errout), path, sizeof(path));
		snprintf(want, sizeof(want), "%s:%d:", path, bad[i].line);
		ck_assert_msg(rc != 0, "bad config %zu accepted", i);
		ck_assert_msg(strstr(errout, want),
			      "bad config %zu: \"%s\" not in stderr: %s", i,
			      want, errout);
	}
	/* Overlapping ranges: the second line is at fault (or the first). */
	snprintf(text, sizeof(text),
		 "[vmt]\nmemory-file = %s\nsubhost = nbd://a 96M-160M\n"
		 "subhost = nbd://b 150M-170M\n", E->memfile);
	rc = check_config_text(text, out, sizeof(out), errout, sizeof(errout),
			       path, sizeof(path));
	ck_assert_msg(rc != 0, "overlapping sub-host ranges accepted");
	{
		char w3[160], w4[160];

		snprintf(w3, sizeof(w3), "%s:3:", path);
		snprintf(w4, sizeof(w4), "%s:4:", path);
		ck_assert_msg(strstr(errout, w3) || strstr(errout, w4),
			      "overlap: no FILE:LINE in stderr: %s", errout);
	}
}
END_TEST

/* ---- sub-host failures ---------------------------------------------- */

/* pread one page; returns 0 or errno, and the time it took. */
static int timed_read(int fd, uint64_t off, size_t len, double *ms,
		      bool verify_data)
{
	uint8_t *buf = malloc(len);
	double t0 = vt_now_ms();
	ssize_t n = pread(fd, buf, len, off);
	int e = n < 0 ? errno : 0;
	uint64_t bad;

	*ms = vt_now_ms() - t0;
	if (n >= 0 && n != (ssize_t)len)
		e = -1;
	if (e == 0 && verify_data && !verify(buf, off, len, &bad))
		e = -2;
	free(buf);
	return e;
}

/* Local, no-home and other-sub-host ranges still read right. */
static void others_still_work(int fd, int dead)
{
	double ms;
	int e;

	e = timed_read(fd, 20 * MiB + 123, 200 * KiB, &ms, true);
	ck_assert_msg(e == 0, "local read failed (%d) with sub-host %d down",
		      e, dead);
	ck_assert_msg(ms < 500, "local read took %.0f ms with sub-host down",
		      ms);
	e = timed_read(fd, 161 * MiB + 77, 300 * KiB, &ms, true);
	ck_assert_msg(e == 0, "no-home read failed (%d) with sub-host %d down",
		      e, dead);
	e = timed_read(fd, dead ? 101 * MiB + 5 : 230 * MiB + 5, 256 * KiB,
		       &ms, true);
	ck_assert_msg(e == 0, "read from the live sub-host failed (%d)", e);
	/* A local page inside the dead one's home: needs no sub-host. */
	e = timed_read(fd, dead ? RUN1_START : RUN0_START, 12 * KiB, &ms, true);
	ck_assert_msg(e == 0, "local run inside dead home failed (%d)", e);
}

/* Poll a read of [off, off+len) until it succeeds and verifies. */
static double wait_recovery(int fd, uint64_t off, size_t len,
			    double limit_ms)
{
	double t0 = vt_now_ms(), ms;

	for (;;) {
		if (timed_read(fd, off, len, &ms, true) == 0)
			return vt_now_ms() - t0;
		ck_assert_msg(vt_now_ms() - t0 < limit_ms,
			      "sub-host range did not recover within %.0f ms",
			      limit_ms);
		vt_sleep_ms(50);
	}
}

START_TEST(test_subhost_killed)
{
	const double slack = 1000;
	double to, ms, worst = 0, rec;
	char err[512];
	int fd, e;

	REQUIRE_ENV();
	to = E->opt.timeout_ms;
	fd = open(path_in_mnt("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	/* Up: a remote range of sub-host 0 reads right. */
	ck_assert_int_eq(timed_read(fd, 110 * MiB + 9, 300 * KiB, &ms, true), 0);

	vt_nbdkit_kill(&E->sub[0]);
	/* Different chunks each time: nothing can come from a cache. */
	for (int i = 0; i < 3; i++) {
		e = timed_read(fd, (112 + i) * MiB + 4 * KiB, 8 * KiB, &ms, false);
		ck_assert_msg(e == EIO, "read of a dead sub-host's range: %s",
			      e > 0 ? strerror(e) : e == 0 ? "succeeded" : "short");
		ck_assert_msg(ms <= to + slack,
			      "EIO after %.0f ms; timeout is %.0f ms", ms, to);
		if (ms > worst)
			worst = ms;
	}
	printf("info: killed sub-host: EIO after at most %.1f ms (timeout %.0f ms)\n",
	       worst, to);
	others_still_work(fd, 0);

	/* Restart it on the same address; the daemon must reconnect. */
	ck_assert_msg(start_subhost(0, false, err, sizeof(err)) == 0,
		      "restart sub-host 0: %s", err);
	rec = wait_recovery(fd, 115 * MiB + 4 * KiB, 64 * KiB, 5000 + to);
	printf("info: killed sub-host restarted: reads recovered after %.0f ms\n",
	       rec);
	read_verify(fd, SUB0_START, SUB0_END - SUB0_START);
	close(fd);
}
END_TEST

START_TEST(test_subhost_stopped)
{
	const double slack = 1000;
	double to, ms, worst = 0, best = 1e9, rec;
	int fd, e;

	REQUIRE_ENV();
	to = E->opt.timeout_ms;
	fd = open(path_in_mnt("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	ck_assert_int_eq(timed_read(fd, 230 * MiB + 9, 300 * KiB, &ms, true), 0);

	ck_assert_int_eq(vt_stop_pid(E->sub[1].pid, 2000), 0);
	for (int i = 0; i < 2; i++) {
		e = timed_read(fd, (232 + i) * MiB + 4 * KiB, 8 * KiB, &ms, false);
		if (e != EIO)
			kill(E->sub[1].pid, SIGCONT);
		ck_assert_msg(e == EIO, "read of a hung sub-host's range: %s",
			      e > 0 ? strerror(e) : e == 0 ? "succeeded" : "short");
		if (ms > to + slack)
			kill(E->sub[1].pid, SIGCONT);
		ck_assert_msg(ms <= to + slack,
			      "EIO after %.0f ms; timeout is %.0f ms", ms, to);
		worst = ms > worst ? ms : worst;
		best = ms < best ? ms : best;
	}
	printf("info: hung sub-host: EIO after %.1f..%.1f ms (timeout %.0f ms)\n",
	       best, worst, to);
	others_still_work(fd, 1);
	ck_assert_int_eq(kill(E->sub[1].pid, SIGCONT), 0);
	rec = wait_recovery(fd, 235 * MiB + 4 * KiB, 64 * KiB, 5000 + to);
	printf("info: hung sub-host continued: reads recovered after %.0f ms\n",
	       rec);
	read_verify(fd, SUB1_START, SUB1_END - SUB1_START);
	close(fd);
}
END_TEST

static void set_link(const char *ns, const char *dev, bool up)
{
	char err[256];
	char *argv[] = { "ip", "-n", (char *)ns, "link", "set", (char *)dev,
			 up ? "up" : "down", NULL };
	int rc = vt_run(argv, NULL, 0, err, sizeof(err), 5000);

	ck_assert_msg(rc == 0, "ip link set %s %s: %s", dev,
		      up ? "up" : "down", err);
}

START_TEST(test_subhost_unreachable)
{
	/*
	 * The sub-host's end of the link goes down: its packets vanish (no
	 * RST, no ICMP), so only the timeout can answer.
	 */
	const double slack = 1000;
	double to, ms, worst = 0, rec;
	int fd, e;

	/* Not a skip: without namespaces this test fails, unless asked. */
	ck_assert_msg(use_netns, "needs network namespaces: %s", netns_err);
	REQUIRE_ENV();
	to = E->opt.timeout_ms;
	fd = open(path_in_mnt("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	ck_assert_int_eq(timed_read(fd, 140 * MiB + 9, 300 * KiB, &ms, true), 0);

	set_link(netns[0].name, netns[0].veth_ns, false);
	for (int i = 0; i < 2; i++) {
		e = timed_read(fd, (141 + i) * MiB + 4 * KiB, 8 * KiB, &ms, false);
		if (e != EIO || ms > to + slack)
			set_link(netns[0].name, netns[0].veth_ns, true);
		ck_assert_msg(e == EIO, "read of an unreachable sub-host's range: %s",
			      e > 0 ? strerror(e) : e == 0 ? "succeeded" : "short");
		ck_assert_msg(ms <= to + slack,
			      "EIO after %.0f ms; timeout is %.0f ms", ms, to);
		worst = ms > worst ? ms : worst;
	}
	printf("info: unreachable sub-host: EIO after at most %.1f ms (timeout %.0f ms)\n",
	       worst, to);
	others_still_work(fd, 0);
	set_link(netns[0].name, netns[0].veth_ns, true);
	rec = wait_recovery(fd, 143 * MiB + 4 * KiB, 64 * KiB, 8000 + to);
	printf("info: unreachable sub-host back: reads recovered after %.0f ms\n",
	       rec);
	read_verify(fd, SUB0_START, SUB0_END - SUB0_START);
	close(fd);
}
END_TEST

/* ---- the mover ------------------------------------------------------ */

/* Hot windows the mover works on, one per sub-host home. */
#define WIN0 (100 * MiB)
#define WIN1 (180 * MiB)
#define WIN_LEN MiB

struct mover_arg {
	double until;
	int memfd;
	struct nbd_handle *h[2];
	struct vmem_seq_map *seq;
	uint8_t local[2][WIN_LEN / PAGE];
	uint64_t outs, ins, bounces;
	char err[256];
};

static int move_out(struct mover_arg *m, int w, uint64_t pg, const void *p)
{
	uint64_t off = (w ? WIN1 : WIN0) + pg * PAGE;

	if (m->seq)
		vmem_seq_move_begin(m->seq, off, PAGE);
	if (nbd_pwrite(m->h[w], p, PAGE, off, 0) < 0) {
		snprintf(m->err, sizeof(m->err), "nbd_pwrite: %s",
			 nbd_get_error());
		return -1;
	}
	if (fallocate(m->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      off, PAGE) < 0) {
		snprintf(m->err, sizeof(m->err), "punch: %s", strerror(errno));
		return -1;
	}
	if (m->seq)
		vmem_seq_move_end(m->seq, off, PAGE);
	m->local[w][pg] = 0;
	m->outs++;
	return 0;
}

static int move_in(struct mover_arg *m, int w, uint64_t pg, const void *p)
{
	uint64_t off = (w ? WIN1 : WIN0) + pg * PAGE;

	if (m->seq)
		vmem_seq_move_begin(m->seq, off, PAGE);
	if (pwrite(m->memfd, p, PAGE, off) != (ssize_t)PAGE) {
		snprintf(m->err, sizeof(m->err), "pwrite: %s", strerror(errno));
		return -1;
	}
	if (nbd_trim(m->h[w], PAGE, off, 0) < 0) {
		snprintf(m->err, sizeof(m->err), "nbd_trim: %s",
			 nbd_get_error());
		return -1;
	}
	if (m->seq)
		vmem_seq_move_end(m->seq, off, PAGE);
	m->local[w][pg] = 1;
	m->ins++;
	return 0;
}

static void *mover_thread(void *p)
{
	struct mover_arg *m = p;
	uint8_t page[PAGE];
	uint64_t x = 42;

	while (vt_now_ms() < m->until && !m->err[0]) {
		uint64_t r = vt_splitmix64(x++);
		int w = r & 1;
		uint64_t pg = (r >> 1) % (WIN_LEN / PAGE);
		uint64_t off = (w ? WIN1 : WIN0) + pg * PAGE;

		vt_pattern_fill(page, off, PAGE, SEED);
		if (m->local[w][pg]) {
			if (move_out(m, w, pg, page))
				break;
			/* Out and straight back in: the ABA case. */
			if ((r >> 20) % 4 == 0) {
				if (move_in(m, w, pg, page))
					break;
				m->bounces++;
			}
		} else if (move_in(m, w, pg, page)) {
			break;
		}
		usleep((r >> 32) % 300);
	}
	return NULL;
}

static void mover_test(bool must_be_correct)
{
	struct mover_arg *m = calloc(1, sizeof(*m));
	struct reader_arg ra[4];
	struct stats_snap a, b;
	pthread_t mt;
	uint64_t reads = 0, bad = 0, eio = 0, other = 0, first_bad = 0;
	char err[512];
	int fd;

	REQUIRE_ENV();
	ck_assert_ptr_nonnull(m);
	m->memfd = open(E->memfile, O_RDWR);
	ck_assert_msg(m->memfd >= 0, "open %s: %s", E->memfile,
		      strerror(errno));
	for (int w = 0; w < 2; w++) {
		m->h[w] = vt_nbd_connect(E->sub[w].uri, 5000, err, sizeof(err));
		ck_assert_msg(m->h[w], "%s", err);
		for (uint64_t pg = 0; pg < WIN_LEN / PAGE; pg++)
			m->local[w][pg] = page_initially_local(
				((w ? WIN1 : WIN0) + pg * PAGE) / PAGE);
	}
	m->seq = E->seq;
	stats_get(&a, false);
	fd = open(path_in_mnt("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));

	m->until = vt_now_ms() + 4000;
	ck_assert_int_eq(pthread_create(&mt, NULL, mover_thread, m), 0);
	/* Two readers per window. */
	{
		pthread_t th[4];
		double until = m->until;

		for (int i = 0; i < 4; i++) {
			uint64_t lo = i & 1 ? WIN1 : WIN0;

			ra[i] = (struct reader_arg){
				.id = i, .until = until, .lo = lo,
				.hi = lo + WIN_LEN, .maxlen = 192 * KiB,
				.fd = fd,
			};
			pthread_create(&th[i], NULL, reader_thread, &ra[i]);
		}
		for (int i = 0; i < 4; i++)
			pthread_join(th[i], NULL);
	}
	pthread_join(mt, NULL);
	ck_assert_msg(!m->err[0], "mover: %s", m->err);
	stats_get(&b, false);
	for (int i = 0; i < 4; i++) {
		reads += ra[i].reads;
		bad += ra[i].bad;
		eio += ra[i].eio;
		other += ra[i].other_err;
		if (ra[i].bad && !first_bad)
			first_bad = ra[i].first_bad;
	}
	printf("info: mover (%s seq file): %" PRIu64 " moves out, %" PRIu64
	       " in (%" PRIu64 " bounces); readers: %" PRIu64 " reads, %"
	       PRIu64 " wrong, %" PRIu64 " EIO, %" PRIu64
	       " other errors; daemon retries %" PRId64 "\n",
	       m->seq ? "with" : "WITHOUT", m->outs, m->ins, m->bounces, reads,
	       bad, eio, other, b.retries - a.retries);
	if (bad)
		printf("info: first wrong byte at 0x%" PRIx64 "\n", first_bad);

	/* The mover kept its books: the file's data map agrees. */
	for (int w = 0; w < 2; w++)
		for (uint64_t pg = 0; pg < WIN_LEN / PAGE; pg++) {
			off_t off = (w ? WIN1 : WIN0) + pg * PAGE;
			bool present = lseek(m->memfd, off, SEEK_DATA) == off;

			ck_assert_msg(present == m->local[w][pg],
				      "mover bookkeeping wrong at 0x%jx",
				      (intmax_t)off);
		}
	/* Quiet again: both windows read right. */
	read_verify(fd, WIN0, WIN_LEN);
	read_verify(fd, WIN1, WIN_LEN);

	for (int w = 0; w < 2; w++) {
		nbd_shutdown(m->h[w], 0);
		nbd_close(m->h[w]);
	}
	close(m->memfd);
	close(fd);
	ck_assert_msg(m->outs > 100 && m->ins > 100,
		      "mover made too few moves (%" PRIu64 "/%" PRIu64 ")",
		      m->outs, m->ins);
	ck_assert_msg(reads > 200, "readers made only %" PRIu64 " reads", reads);
	if (must_be_correct) {
		ck_assert_msg(bad == 0,
			      "%" PRIu64 " reads returned wrong bytes while pages moved (first at 0x%"
			      PRIx64 ")", bad, first_bad);
		ck_assert_msg(other == 0, "%" PRIu64 " reads failed oddly",
			      other);
		/* EIO after bounded retries is allowed, but must be rare. */
		ck_assert_msg(eio * 100 <= reads,
			      "%" PRIu64 " of %" PRIu64 " reads gave EIO", eio,
			      reads);
		ck_assert_msg(b.retries - a.retries > 0,
			      "pages moved under readers but stats.retries did not move");
	}
	free(m);
}

START_TEST(test_mover_seq)
{
	mover_test(true);
}
END_TEST

START_TEST(test_mover_noseq)
{
	/* Information only (enabled by VMT_MOVER_NOSEQ=1): see the report. */
	mover_test(false);
}
END_TEST

/* ---- main ----------------------------------------------------------- */

static Suite *mount_suite(void)
{
	Suite *s = suite_create("mount");
	TCase *tc;

	tc = tcase_create("static");
	tcase_add_unchecked_fixture(tc, setup_static, env_down);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_setup_matches_layout);
	tcase_add_test(tc, test_full_compare);
	tcase_add_test(tc, test_local_and_remote_throughput);
	tcase_add_test(tc, test_unaligned_reads);
	tcase_add_test(tc, test_map);
	tcase_add_test(tc, test_stats);
	tcase_add_test(tc, test_concurrent_readers);
	tcase_add_test(tc, test_permissions);
	tcase_add_test(tc, test_allow_other_and_sigterm);
	tcase_add_test(tc, test_check_config);
	suite_add_tcase(s, tc);

	tc = tcase_create("faults");
	tcase_add_unchecked_fixture(tc, setup_faults, env_down);
	tcase_set_timeout(tc, 40);
	tcase_add_test(tc, test_subhost_killed);
	tcase_add_test(tc, test_subhost_stopped);
	/* needs a link of its own to cut; VMT_NO_NETNS=1 leaves it out */
	if (!getenv("VMT_NO_NETNS"))
		tcase_add_test(tc, test_subhost_unreachable);
	suite_add_tcase(s, tc);

	tc = tcase_create("mover");
	tcase_add_unchecked_fixture(tc, setup_mover, env_down);
	tcase_set_timeout(tc, 40);
	tcase_add_test(tc, test_mover_seq);
	suite_add_tcase(s, tc);

	if (getenv("VMT_MOVER_NOSEQ")) {
		tc = tcase_create("mover-noseq");
		tcase_add_unchecked_fixture(tc, setup_mover_noseq, env_down);
		tcase_set_timeout(tc, 40);
		tcase_add_test(tc, test_mover_noseq);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	SRunner *sr;
	char err[1024];
	int failed;

	runner_pid = getpid();
	E = vt_runner_env(sizeof(*E), cleanup_all);
	if (!E)
		return 1;

	/* VMT_NO_NETNS=1 runs the loopback fallback on purpose. */
	use_netns = !getenv("VMT_NO_NETNS");
	if (!use_netns)
		printf("note: VMT_NO_NETNS set; sub-hosts run on loopback\n");
	for (int i = 0; i < 2 && use_netns; i++) {
		char name[32];

		snprintf(name, sizeof(name), "vmt-%d-%d", (int)runner_pid,
			 i + 1);
		if (vt_netns_create(&netns[i], name,
				    (runner_pid % 8000) * 2 + i, err,
				    sizeof(err)) < 0) {
			printf("note: cannot make network namespaces (%s); sub-hosts run on loopback\n",
			       err);
			snprintf(netns_err, sizeof(netns_err), "%s", err);
			use_netns = false;
			vt_netns_delete(&netns[0]);
		}
	}
	if (use_netns)
		printf("info: sub-hosts in network namespaces %s (%s) and %s (%s)\n",
		       netns[0].name, netns[0].ns_addr, netns[1].name,
		       netns[1].ns_addr);

	sr = srunner_create(mount_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	cleanup_all();
	return failed ? 1 : 0;
}
