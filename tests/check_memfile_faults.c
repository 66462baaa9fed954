// SPDX-License-Identifier: MIT
/*
 * Regression tests, on a real vmemfs mount, for the faults of the memory
 * file, its data map, `map`, the eviction sequence file and mmap that a
 * hostile review found (issue 7, section 2, faults 1, 2, 3, 7 and 12):
 *
 *   fs        memory file on ext4 (or xfs/btrfs) after its holes were read
 *             into the page cache: the holes still come from the sub-host
 *   badfs     memory file on ramfs: the mount is refused, naming ramfs
 *   map       `map` of a file with every other page present: fast, exact
 *   maptrunc  the same past VMEM_MAP_MAX_EXTENTS: bounded, marked
 *   seq       MEMFILE.seq truncated while mounted and read: the daemon
 *             lives, reads stay correct, nothing is cached any more
 *   deleted   memory file deleted and re-created: never the old content
 *   renamed   memory file renamed away and re-created: the same
 *   mmap      mmap(MAP_PRIVATE) of mem: SIGBUS, no page cache; read()
 *             works; with -o allow_mmap, mmap works
 *
 * Every expectation comes from this file's own layout and the pattern
 * function (tests/lib/hosts.h), and the data map from our own SEEK_DATA
 * walk, never from vmemfs's code.  Environments are set up and torn down
 * by unchecked fixtures in the runner, which reaps every process by PID
 * and removes every file and mount, also when a test fails.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libnbd.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/evictseq.h"
#include "lib/datamap.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define PAGE ((uint64_t)4096)
#define SEED_A 0x6d656d66696c6541ULL
#define SEED_B 0x6d656d66696c6542ULL
/* What vmemfs promises for the map (vmemfs.8); asserted from outside. */
#define MAP_MAX_EXTENTS 65536

struct env {
	bool ok;
	char err[1024];
	char memfile[200];
	char seqfile[210];
	char config[200];
	char mnt[200];
	char log[200];
	char mnt2[220];
	char log2[220];
	char extra[220];		/* one more file to remove */
	char fsdir[200];		/* a file system this test mounted */
	char fsimg[200];		/* its image, if any */
	bool fsdir_mounted;
	struct vt_nbdkit sub;
	struct vt_vmemfs fs, fs2;
	uint64_t ram;
};

static struct env *E;
static pid_t runner_pid;

#define env_fail(...) vt_setup_failed(E->err, sizeof(E->err), __VA_ARGS__)

static void env_down(void)
{
	if (!E)
		return;
	if (E->fs.pid > 0 || E->fs.mnt[0])
		vt_vmemfs_stop(&E->fs, 5000);
	if (E->fs2.pid > 0 || E->fs2.mnt[0])
		vt_vmemfs_stop(&E->fs2, 5000);
	if (E->log[0]) {
		vt_print_tail(E->log, 8, "  vmemfs log: ");
		unlink(E->log);
	}
	if (E->log2[0])
		unlink(E->log2);
	vt_nbdkit_kill(&E->sub);
	/* A daemon a test ran itself may have left its mount behind. */
	if (E->mnt[0]) {
		umount2(E->mnt, MNT_DETACH);
		rmdir(E->mnt);
	}
	if (E->mnt2[0]) {
		umount2(E->mnt2, MNT_DETACH);
		rmdir(E->mnt2);
	}
	if (E->memfile[0])
		unlink(E->memfile);
	if (E->seqfile[0])
		unlink(E->seqfile);
	if (E->extra[0])
		unlink(E->extra);
	if (E->config[0])
		unlink(E->config);
	if (E->fsdir[0]) {
		if (E->fsdir_mounted && umount2(E->fsdir, 0) < 0)
			umount2(E->fsdir, MNT_DETACH);
		rmdir(E->fsdir);
	}
	if (E->fsimg[0])
		unlink(E->fsimg);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	fflush(stdout);
	memset(E, 0, sizeof(*E));
}

static void cleanup_all(void)
{
	if (getpid() == runner_pid)
		env_down();
}

#define REQUIRE_ENV() ck_assert_msg(E->ok, "environment: %s", E->err)

/* ---- building blocks ------------------------------------------------ */

/* Write the pattern of @seed over the pages of [0, size) @want says. */
static int write_memfile(const char *path, uint64_t size, uint64_t seed,
			 bool (*want)(uint64_t pg))
{
	static uint8_t buf[MiB];
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);

	if (fd < 0) {
		env_fail("create %s: %s", path, strerror(errno));
		return -1;
	}
	if (ftruncate(fd, (off_t)size) < 0)
		goto fail;
	for (uint64_t pg = 0; pg < size / PAGE;) {
		uint64_t e = pg;

		if (!want(pg)) {
			pg++;
			continue;
		}
		while (e < size / PAGE && want(e) && (e - pg) * PAGE < sizeof(buf))
			e++;
		vt_pattern_fill(buf, pg * PAGE, (e - pg) * PAGE, seed);
		if (pwrite(fd, buf, (e - pg) * PAGE, (off_t)(pg * PAGE)) !=
		    (ssize_t)((e - pg) * PAGE))
			goto fail;
		pg = e;
	}
	close(fd);
	return 0;
fail:
	env_fail("write %s: %s", path, strerror(errno));
	close(fd);
	return -1;
}

/* Start a sub-host of @size and put the pattern on [off, off + len). */
static int start_sub(const char *size, uint64_t off, uint64_t len)
{
	static uint8_t buf[MiB];
	struct nbd_handle *h;
	char err[512];

	snprintf(E->sub.size, sizeof(E->sub.size), "%s", size);
	snprintf(E->sub.addr, sizeof(E->sub.addr), "127.0.0.1");
	E->sub.port = vt_free_tcp_port();
	if (vt_nbdkit_start(&E->sub, true, err, sizeof(err)) < 0) {
		env_fail("nbdkit: %s", err);
		return -1;
	}
	h = vt_nbd_connect(E->sub.uri, 5000, err, sizeof(err));
	if (!h) {
		env_fail("nbd: %s", err);
		return -1;
	}
	for (uint64_t o = off; o < off + len; o += sizeof(buf)) {
		vt_pattern_fill(buf, o, sizeof(buf), SEED_A);
		if (nbd_pwrite(h, buf, sizeof(buf), o, 0) < 0) {
			env_fail("nbd write: %s", nbd_get_error());
			nbd_close(h);
			return -1;
		}
	}
	nbd_close(h);
	return 0;
}

/* Config with the given tail lines (subhost etc.), and the mount point. */
static int write_config(const char *extra_lines)
{
	FILE *f = fopen(E->config, "w");

	if (!f) {
		env_fail("%s: %s", E->config, strerror(errno));
		return -1;
	}
	fprintf(f, "# written by check_memfile_faults\n[vmt]\n"
		"memory-file = %s\nram-size = %" PRIu64 "\nbackend = direct\n"
		"chunk-size = 64K\ntimeout = 2000ms\ntls = off\n%s",
		E->memfile, E->ram, extra_lines ? extra_lines : "");
	if (fclose(f) != 0) {
		env_fail("%s: %s", E->config, strerror(errno));
		return -1;
	}
	return 0;
}

static void name_files(const char *dir, const char *tag)
{
	pid_t pid = getpid();

	memset(E, 0, sizeof(*E));
	snprintf(E->memfile, sizeof(E->memfile), "%s/vmt-%d-%s.mem", dir,
		 (int)pid, tag);
	snprintf(E->config, sizeof(E->config), "/tmp/vmt-%d-%s.conf",
		 (int)pid, tag);
	snprintf(E->mnt, sizeof(E->mnt), "/tmp/vmt-%d-%s.mnt", (int)pid, tag);
	snprintf(E->log, sizeof(E->log), "/tmp/vmt-%d-%s.log", (int)pid, tag);
}

static int mount_it(struct vt_vmemfs *v, const char *mnt, const char *log,
		    const char *opts)
{
	char err[1024];

	if (mkdir(mnt, 0755) < 0) {
		env_fail("mkdir %s: %s", mnt, strerror(errno));
		return -1;
	}
	if (vt_vmemfs_start(v, E->config, NULL, opts, mnt, log, E->ram, 15000,
			    err, sizeof(err)) < 0) {
		env_fail("vmemfs: %s", err);
		vt_print_tail(log, 20, "  vmemfs log: ");
		return -1;
	}
	vt_vmemfs_wait_kernel_scan(mnt);
	return 0;
}

static char *in_mnt(const char *name)
{
	static __thread char p[300];

	snprintf(p, sizeof(p), "%s/%s", E->mnt, name);
	return p;
}

static void pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(off + done));

		ck_assert_msg(n > 0, "read of mem at 0x%" PRIx64 ": %s",
			      off + done, n < 0 ? strerror(errno) : "EOF");
		done += (size_t)n;
	}
}

/* Read [off, off + len) of mem and compare with @seed's pattern (or 0s). */
static void expect_mem(int fd, uint64_t off, uint64_t len, uint64_t seed,
		       bool zeros, const char *what)
{
	uint8_t *got = malloc(MiB), *want = malloc(MiB);

	ck_assert(got && want);
	for (uint64_t o = off; o < off + len; o += MiB) {
		size_t n = off + len - o < MiB ? off + len - o : MiB;

		pread_all(fd, got, n, o);
		if (zeros)
			memset(want, 0, n);
		else
			vt_pattern_fill(want, o, n, seed);
		if (memcmp(got, want, n) != 0) {
			size_t i = 0;

			while (got[i] == want[i])
				i++;
			ck_abort_msg("%s: mem at 0x%" PRIx64 " differs from the "
				     "expected data (first at 0x%" PRIx64
				     "; got %s)", what, o, o + i,
				     got[i & ~(PAGE - 1)] == 0 &&
				     !memcmp(got + (i & ~(PAGE - 1)),
					     got + (i & ~(PAGE - 1)) + 1, PAGE - 1) ?
				     "a page of zeros" : "other bytes");
		}
	}
	free(got);
	free(want);
}

static char *slurp(const char *path, double *ms)
{
	size_t cap = MiB, len = 0;
	char *buf = malloc(cap);
	double t0 = vt_now_ms();
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_ptr_nonnull(buf);
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
	}
	ck_assert_msg(n == 0, "read %s: %s", path, strerror(errno));
	close(fd);
	buf[len] = '\0';
	if (ms)
		*ms = vt_now_ms() - t0;
	return buf;
}

static uint64_t stat_u64(const char *key)
{
	char *text = slurp(in_mnt("stats"), NULL);
	json_object *j = json_tokener_parse(text), *v;
	uint64_t x;

	ck_assert_msg(j, "stats is not JSON: %.200s", text);
	ck_assert_msg(json_object_object_get_ex(j, key, &v),
		      "stats has no %s", key);
	x = json_object_get_uint64(v);
	json_object_put(j);
	free(text);
	return x;
}

static bool log_has(const char *log, const char *needle)
{
	FILE *f = fopen(log, "r");
	char line[2048];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static bool daemon_alive(const struct vt_vmemfs *v)
{
	char path[64], st[512];
	FILE *f;
	bool alive;

	if (v->pid <= 0 || kill(v->pid, 0) < 0)
		return false;
	/* A zombie answers kill(0) too. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)v->pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	alive = fgets(st, sizeof(st), f) && !strstr(st, ") Z ");
	fclose(f);
	return alive;
}

/* ---- fault 1: the memory file on a disk file system ----------------- */

static bool first_16m(uint64_t pg)
{
	return pg * PAGE < 16 * MiB;
}

static bool exact_holes(long type)
{
	return type == 0xEF53 || type == 0x58465342 || type == (long)0x9123683E;
}

/* A directory on ext4/xfs/btrfs: /tmp or /var/tmp, else a loop mount. */
static int disk_dir(char *dir, size_t len)
{
	static const char *const cands[] = { "/tmp", "/var/tmp" };
	char out[512], errout[512];
	struct statfs sf;

	/* VMT_FS_LOOP=1 takes the loop mount on purpose. */
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]) &&
	     !getenv("VMT_FS_LOOP"); i++) {
		if (statfs(cands[i], &sf) == 0 && exact_holes((long)sf.f_type)) {
			snprintf(dir, len, "%s", cands[i]);
			printf("info: memory file on %s (statfs type 0x%lx)\n",
			       dir, (unsigned long)sf.f_type);
			return 0;
		}
	}
	snprintf(E->fsimg, sizeof(E->fsimg), "/var/tmp/vmt-%d-ext4.img",
		 (int)getpid());
	snprintf(E->fsdir, sizeof(E->fsdir), "/var/tmp/vmt-%d-ext4.dir",
		 (int)getpid());
	if (truncate(E->fsimg, 0) < 0 && errno != ENOENT)
		return -1;
	{
		int fd = open(E->fsimg, O_RDWR | O_CREAT | O_TRUNC, 0600);

		if (fd < 0 || ftruncate(fd, 256 * MiB) < 0) {
			env_fail("%s: %s", E->fsimg, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	}
	char *mkfs[] = { "mkfs.ext4", "-q", "-F", E->fsimg, NULL };
	char *mnt[] = { "mount", "-o", "loop", E->fsimg, E->fsdir, NULL };

	if (vt_run(mkfs, out, sizeof(out), errout, sizeof(errout), 60000) != 0) {
		env_fail("mkfs.ext4 %s: %s", E->fsimg, errout);
		return -1;
	}
	if (mkdir(E->fsdir, 0700) < 0 ||
	    vt_run(mnt, out, sizeof(out), errout, sizeof(errout), 30000) != 0) {
		env_fail("mount -o loop %s: %s", E->fsimg, errout);
		return -1;
	}
	E->fsdir_mounted = true;
	snprintf(dir, len, "%s", E->fsdir);
	printf("info: memory file on a loop-mounted ext4 (%s)\n", dir);
	return 0;
}

static void setup_fs(void)
{
	char dir[200], lines[256];

	memset(E, 0, sizeof(*E));
	if (disk_dir(dir, sizeof(dir)) < 0)
		return;
	{
		/* name_files() clears E: keep what disk_dir() made. */
		struct env keep = *E;

		name_files(dir, "ext");
		snprintf(E->fsdir, sizeof(E->fsdir), "%s", keep.fsdir);
		snprintf(E->fsimg, sizeof(E->fsimg), "%s", keep.fsimg);
		E->fsdir_mounted = keep.fsdir_mounted;
	}
	E->ram = 64 * MiB;
	if (write_memfile(E->memfile, E->ram, SEED_A, first_16m) < 0 ||
	    start_sub("64M", 16 * MiB, 32 * MiB) < 0)
		return;
	snprintf(lines, sizeof(lines), "cache-size = 0\nsubhost = %s 16M-48M\n",
		 E->sub.uri);
	if (write_config(lines) < 0 ||
	    mount_it(&E->fs, E->mnt, E->log, NULL) < 0)
		return;
	E->ok = true;
}

struct cs_range { uint64_t off, len; };
struct cs_result { uint64_t cache, dirty, wb, evicted, recent; };

static uint64_t cached_pages(int fd, uint64_t off, uint64_t len)
{
	struct cs_range r = { off, len };
	struct cs_result cs;

	ck_assert_msg(syscall(451, fd, &r, &cs, 0) == 0, "cachestat: %s",
		      strerror(errno));
	return cs.cache;
}

START_TEST(test_holes_on_disk_fs_after_cat)
{
	static uint8_t buf[MiB];
	uint64_t remote0, remote1, zero0;
	int fd, mf;
	ssize_t n;

	REQUIRE_ENV();
	fd = open(in_mnt("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	expect_mem(fd, 16 * MiB, 32 * MiB, SEED_A, false, "before cat");

	/* Any backup or grep of the file: the holes' zero pages are now
	 * in its page cache. */
	mf = open(E->memfile, O_RDONLY);
	ck_assert_int_ge(mf, 0);
	while ((n = read(mf, buf, sizeof(buf))) > 0)
		;
	ck_assert_int_eq(n, 0);
	ck_assert_msg(cached_pages(mf, 16 * MiB, 32 * MiB) == 32 * MiB / PAGE,
		      "precondition: the holes were not cached after reading the "
		      "file (%" PRIu64 " pages); the test would prove nothing",
		      cached_pages(mf, 16 * MiB, 32 * MiB));
	close(mf);

	remote0 = stat_u64("bytes_remote");
	zero0 = stat_u64("bytes_zero");
	expect_mem(fd, 16 * MiB, 32 * MiB, SEED_A, false,
		   "holes after reading the memory file");
	expect_mem(fd, 0, 16 * MiB, SEED_A, false, "data");
	expect_mem(fd, 48 * MiB, 16 * MiB, 0, true, "hole with no home");
	remote1 = stat_u64("bytes_remote");
	ck_assert_msg(remote1 - remote0 == 32 * MiB,
		      "bytes_remote grew by %" PRIu64 ", want 32 MiB",
		      remote1 - remote0);
	ck_assert_uint_eq(stat_u64("bytes_zero") - zero0, 16 * MiB);
	close(fd);

	/* map says where the holes live. */
	char *text = slurp(in_mnt("map"), NULL);
	json_object *j = json_tokener_parse(text), *o, *v;
	bool seen = false;

	ck_assert_msg(j, "map is not JSON");
	for (size_t i = 0; i < json_object_array_length(j); i++) {
		o = json_object_array_get_idx(j, i);
		ck_assert(json_object_object_get_ex(o, "start", &v));
		if (json_object_get_uint64(v) != 16 * MiB)
			continue;
		ck_assert(json_object_object_get_ex(o, "where", &v));
		ck_assert_str_eq(json_object_get_string(v), E->sub.uri);
		ck_assert(json_object_object_get_ex(o, "end", &v));
		ck_assert_uint_eq(json_object_get_uint64(v), 48 * MiB);
		seen = true;
	}
	ck_assert_msg(seen, "map has no extent [16M,48M): %.300s", text);
	json_object_put(j);
	free(text);
}
END_TEST

/* ---- fault 1: a file system that does not report holes -------------- */

static void setup_badfs(void)
{
	char dir[200];

	memset(E, 0, sizeof(*E));
	snprintf(dir, sizeof(dir), "/tmp/vmt-%d-ramfs.dir", (int)getpid());
	{
		name_files(dir, "ramfs");
		snprintf(E->fsdir, sizeof(E->fsdir), "%s", dir);
	}
	if (mkdir(E->fsdir, 0700) < 0 ||
	    mount("vmt-ramfs", E->fsdir, "ramfs", 0, "mode=0700") < 0) {
		env_fail("mount ramfs on %s: %s", E->fsdir, strerror(errno));
		return;
	}
	E->fsdir_mounted = true;
	E->ram = 16 * MiB;
	if (write_memfile(E->memfile, E->ram, SEED_A, first_16m) < 0 ||
	    write_config(NULL) < 0 || mkdir(E->mnt, 0755) < 0)
		return;
	E->ok = true;
}

START_TEST(test_unsupported_fs_refused)
{
	char out[4096], errout[4096];
	char *argv[] = { (char *)vt_vmemfs_bin(), "-f", "-c", E->config,
			 E->mnt, NULL };
	int st;

	REQUIRE_ENV();
	st = vt_run(argv, out, sizeof(out), errout, sizeof(errout), 8000);
	ck_assert_msg(st > 0 && st < 128,
		      "vmemfs on a ramfs memory file: status %d (want an error "
		      "exit; -1 = it mounted and ran): %s%s", st, out, errout);
	ck_assert_msg(strstr(errout, "ramfs") && strstr(errout, E->memfile),
		      "the error does not name the file and ramfs: %s", errout);
}
END_TEST

/* ---- fault 2: map of a fragmented file ------------------------------ */

static bool even_page(uint64_t pg)
{
	return pg % 2 == 0;
}

static void setup_map_size(const char *tag, uint64_t ram)
{
	name_files("/dev/shm", tag);
	E->ram = ram;
	if (write_memfile(E->memfile, E->ram, SEED_A, even_page) < 0 ||
	    write_config("cache-size = 0\n") < 0 ||
	    mount_it(&E->fs, E->mnt, E->log, NULL) < 0)
		return;
	E->ok = true;
}

static void setup_map(void)
{
	setup_map_size("map", 128 * MiB);
}

static void setup_maptrunc(void)
{
	setup_map_size("maptrunc", 272 * MiB);
}

/* Our own data map of the memory file: runs [s, e) alternately local. */
struct run { uint64_t s, e; bool local; };

static size_t seek_walk(const char *path, uint64_t size, struct run **out)
{
	struct vt_datamap m;
	struct run *r;
	size_t n = 0;
	uint64_t off = 0;
	char err[512];

	ck_assert_msg(vt_datamap_get(path, 0, size, &m, err, sizeof(err)) == 0,
		      "%s", err);
	r = malloc((2 * m.n + 1) * sizeof(*r));
	ck_assert_ptr_nonnull(r);
	for (size_t i = 0; i < m.n; i++) {
		if (m.ext[i].start > off)
			r[n++] = (struct run){ off, m.ext[i].start, false };
		r[n++] = (struct run){ m.ext[i].start, m.ext[i].end, true };
		off = m.ext[i].end;
	}
	if (off < size)
		r[n++] = (struct run){ off, size, false };
	vt_datamap_free(&m);
	*out = r;
	return n;
}

static void check_extent(json_object *o, size_t i, uint64_t s, uint64_t e,
			 const char *where)
{
	json_object *v;

	ck_assert(json_object_object_get_ex(o, "start", &v));
	ck_assert_msg(json_object_get_uint64(v) == s,
		      "extent %zu starts at %" PRIu64 ", want %" PRIu64, i,
		      json_object_get_uint64(v), s);
	ck_assert(json_object_object_get_ex(o, "end", &v));
	ck_assert_msg(json_object_get_uint64(v) == e,
		      "extent %zu ends at %" PRIu64 ", want %" PRIu64, i,
		      json_object_get_uint64(v), e);
	ck_assert(json_object_object_get_ex(o, "where", &v));
	ck_assert_msg(strcmp(json_object_get_string(v), where) == 0,
		      "extent %zu is %s, want %s", i, json_object_get_string(v),
		      where);
}

/*
 * The quadratic map took 8 s for 128 MiB (issue 7), the linear one takes
 * ~0.1 s: 2.5 s leaves a loaded machine 25 times the room and still fails
 * the old code by a factor of three.
 */
#define MAP_BOUND_MS 2500.0

START_TEST(test_map_linear_and_exact)
{
	struct run *r;
	size_t n = seek_walk(E->memfile, E->ram, &r);
	double ms;
	char *text;
	json_object *j;

	REQUIRE_ENV();
	ck_assert_uint_eq(n, E->ram / PAGE);	/* every other page */
	text = slurp(in_mnt("map"), &ms);
	printf("info: map of %" PRIu64 " MiB with %zu runs: %.0f ms, %zu bytes\n",
	       E->ram / MiB, n, ms, strlen(text));
	ck_assert_msg(ms < MAP_BOUND_MS, "map took %.0f ms (bound %.0f ms)", ms,
		      MAP_BOUND_MS);
	j = json_tokener_parse(text);
	ck_assert_msg(j && json_object_is_type(j, json_type_array),
		      "map is not a JSON array");
	ck_assert_uint_eq(json_object_array_length(j), n);
	for (size_t i = 0; i < n; i++)
		check_extent(json_object_array_get_idx(j, i), i, r[i].s, r[i].e,
			     r[i].local ? "local" : "unmapped");
	json_object_put(j);
	free(text);
	free(r);
}
END_TEST

START_TEST(test_map_bounded_and_marked)
{
	struct run *r;
	size_t n = seek_walk(E->memfile, E->ram, &r), len;
	double ms;
	char *text;
	json_object *j;

	REQUIRE_ENV();
	ck_assert_uint_gt(n, MAP_MAX_EXTENTS);
	text = slurp(in_mnt("map"), &ms);
	printf("info: map of %" PRIu64 " MiB with %zu runs: %.0f ms\n",
	       E->ram / MiB, n, ms);
	ck_assert_msg(ms < 2 * MAP_BOUND_MS, "map took %.0f ms (bound %.0f ms)",
		      ms, 2 * MAP_BOUND_MS);
	j = json_tokener_parse(text);
	ck_assert_msg(j && json_object_is_type(j, json_type_array),
		      "map is not a JSON array");
	len = json_object_array_length(j);
	ck_assert_msg(len == MAP_MAX_EXTENTS + 1,
		      "map has %zu extents, want %d and the marker", len,
		      MAP_MAX_EXTENTS);
	for (size_t i = 0; i < MAP_MAX_EXTENTS; i++)
		check_extent(json_object_array_get_idx(j, i), i, r[i].s, r[i].e,
			     r[i].local ? "local" : "unmapped");
	check_extent(json_object_array_get_idx(j, MAP_MAX_EXTENTS),
		     MAP_MAX_EXTENTS, r[MAP_MAX_EXTENTS].s, E->ram, "truncated");
	json_object_put(j);
	free(text);
	free(r);
}
END_TEST

/* ---- fault 3: the sequence file truncated --------------------------- */

static bool first_8m(uint64_t pg)
{
	return pg * PAGE < 8 * MiB;
}

static void setup_seq(void)
{
	char lines[256];
	int fd;

	name_files("/dev/shm", "seq");
	E->ram = 16 * MiB;
	snprintf(E->seqfile, sizeof(E->seqfile), "%s%s", E->memfile,
		 VMEM_SEQ_SUFFIX);
	fd = open(E->seqfile, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, VMEM_SEQ_FILE_SIZE) < 0) {
		env_fail("%s: %s", E->seqfile, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	if (write_memfile(E->memfile, E->ram, SEED_A, first_8m) < 0 ||
	    start_sub("16M", 8 * MiB, 8 * MiB) < 0)
		return;
	/* A long TTL: a cached chunk would be served from the cache. */
	snprintf(lines, sizeof(lines),
		 "cache-size = 4M\ncache-ttl = 60s\nsubhost = %s 8M-16M\n",
		 E->sub.uri);
	if (write_config(lines) < 0 ||
	    mount_it(&E->fs, E->mnt, E->log, NULL) < 0)
		return;
	E->ok = true;
}

struct seq_reader {
	int fd;
	volatile bool *stop;
	uint64_t reads, bad, errors;
	int first_errno;
};

static void *seq_reader_thread(void *p)
{
	struct seq_reader *a = p;
	uint8_t got[64 * 1024], want[64 * 1024];
	uint64_t x = (uint64_t)(uintptr_t)p;

	while (!*a->stop) {
		uint64_t off;
		ssize_t n;

		x = vt_splitmix64(x);
		off = (x % (16 * MiB - sizeof(got))) & ~(uint64_t)4095;
		n = pread(a->fd, got, sizeof(got), (off_t)off);
		a->reads++;
		if (n != (ssize_t)sizeof(got)) {
			if (!a->errors++)
				a->first_errno = n < 0 ? errno : 0;
			continue;
		}
		vt_pattern_fill(want, off, sizeof(want), SEED_A);
		if (memcmp(got, want, sizeof(got)))
			a->bad++;
	}
	return NULL;
}

START_TEST(test_seq_truncated_while_reading)
{
	struct seq_reader a[4];
	pthread_t t[4];
	volatile bool stop = false;
	uint64_t hits0, hits1, reads = 0;
	int fd;

	REQUIRE_ENV();
	fd = open(in_mnt("mem"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	/* The cache works while the seq file does: a second read hits. */
	hits0 = stat_u64("cache_hits");
	expect_mem(fd, 9 * MiB, 64 * KiB, SEED_A, false, "remote");
	expect_mem(fd, 9 * MiB, 64 * KiB, SEED_A, false, "remote again");
	ck_assert_msg(stat_u64("cache_hits") > hits0,
		      "precondition: the cache did not hit with the seq file");

	for (int i = 0; i < 4; i++) {
		a[i] = (struct seq_reader){ .fd = fd, .stop = &stop };
		ck_assert_int_eq(pthread_create(&t[i], NULL, seq_reader_thread,
						&a[i]), 0);
	}
	vt_sleep_ms(200);
	ck_assert_int_eq(truncate(E->seqfile, 0), 0);
	vt_sleep_ms(500);
	stop = true;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		reads += a[i].reads;
		ck_assert_msg(a[i].errors == 0,
			      "%" PRIu64 " reads failed (first: %s)",
			      a[i].errors, strerror(a[i].first_errno));
		ck_assert_msg(a[i].bad == 0, "%" PRIu64 " reads were wrong",
			      a[i].bad);
	}
	ck_assert_msg(daemon_alive(&E->fs), "vmemfs died");
	ck_assert_msg(reads > 50, "only %" PRIu64 " reads", reads);

	/* Reads go on, correct, and nothing is served from the cache. */
	expect_mem(fd, 0, 16 * MiB, SEED_A, false, "after truncation");
	expect_mem(fd, 10 * MiB, 64 * KiB, SEED_A, false, "remote");
	hits1 = stat_u64("cache_hits");
	expect_mem(fd, 10 * MiB, 64 * KiB, SEED_A, false, "remote again");
	expect_mem(fd, 9 * MiB, 64 * KiB, SEED_A, false, "cached before");
	ck_assert_msg(stat_u64("cache_hits") == hits1,
		      "the cache served data without a sequence file");
	close(fd);
	ck_assert_msg(log_has(E->log, "sequence file"),
		      "no log line says the sequence file was lost");
	ck_assert_msg(daemon_alive(&E->fs), "vmemfs died");
}
END_TEST

/* ---- fault 7: a deleted or replaced memory file --------------------- */

static bool all_pages(uint64_t pg)
{
	(void)pg;
	return true;
}

static void setup_dead(const char *tag)
{
	name_files("/dev/shm", tag);
	E->ram = 16 * MiB;
	snprintf(E->extra, sizeof(E->extra), "%s.old", E->memfile);
	if (write_memfile(E->memfile, E->ram, SEED_A, all_pages) < 0 ||
	    write_config("cache-size = 0\n") < 0 ||
	    mount_it(&E->fs, E->mnt, E->log, NULL) < 0)
		return;
	E->ok = true;
}

static void setup_deleted(void)
{
	setup_dead("deleted");
}

static void setup_renamed(void)
{
	setup_dead("renamed");
}

/* Read 1 MiB at 0: true when it is the new VM's, false on EIO; never A. */
static bool read_not_old(int fd, const char *what)
{
	static uint8_t got[MiB], a[MiB], b[MiB];
	ssize_t n = pread(fd, got, sizeof(got), 0);

	if (n < 0) {
		ck_assert_msg(errno == EIO, "%s: read failed with %s, want EIO",
			      what, strerror(errno));
		return false;
	}
	ck_assert_int_eq(n, (ssize_t)sizeof(got));
	vt_pattern_fill(a, 0, sizeof(a), SEED_A);
	vt_pattern_fill(b, 0, sizeof(b), SEED_B);
	ck_assert_msg(memcmp(got, a, sizeof(a)) != 0,
		      "%s: mem serves the deleted file's (the dead VM's) memory",
		      what);
	ck_assert_msg(memcmp(got, b, sizeof(b)) == 0,
		      "%s: mem serves neither the old nor the new file", what);
	return true;
}

/* Does the daemon still hold the old file open (its memory allocated)? */
static bool holds_deleted(pid_t pid, const char *path)
{
	char dir[64], link[300], want[300];
	struct dirent *de;
	DIR *d;
	bool found = false;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	snprintf(want, sizeof(want), "%s (deleted)", path);
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while (!found && (de = readdir(d))) {
		char p[400];
		ssize_t n;

		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		n = readlink(p, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		found = strcmp(link, want) == 0;
	}
	closedir(d);
	return found;
}

static void dead_test(bool rename_away)
{
	int fd, fd2;

	REQUIRE_ENV();
	fd = open(in_mnt("mem"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	expect_mem(fd, 0, E->ram, SEED_A, false, "the first VM");

	if (rename_away)
		ck_assert_int_eq(rename(E->memfile, E->extra), 0);
	else
		ck_assert_int_eq(unlink(E->memfile), 0);
	ck_assert_int_eq(write_memfile(E->memfile, E->ram, SEED_B,
				       all_pages), 0);
	/* The check of the path runs at most every 10 ms (vmemfs.8). */
	vt_sleep_ms(50);

	read_not_old(fd, "an fd opened before");
	fd2 = open(in_mnt("mem"), O_RDONLY);
	ck_assert_int_ge(fd2, 0);
	read_not_old(fd2, "a new open");
	read_not_old(fd, "an fd opened before, again");
	close(fd);
	close(fd2);
	/* map must not describe the dead file either. */
	fd = open(in_mnt("map"), O_RDONLY);
	ck_assert_msg(fd < 0 && errno == EIO, "open map: %s, want EIO",
		      fd < 0 ? strerror(errno) : "it opened");
	ck_assert_msg(log_has(E->log, E->memfile) &&
		      (log_has(E->log, "deleted") || log_has(E->log, "replaced")),
		      "no log line says the memory file is gone");
	if (!rename_away)
		ck_assert_msg(!holds_deleted(E->fs.pid, E->memfile),
			      "vmemfs still holds the deleted memory file open");
	ck_assert_msg(daemon_alive(&E->fs), "vmemfs died");
}

START_TEST(test_memfile_deleted_and_recreated)
{
	dead_test(false);
}
END_TEST

START_TEST(test_memfile_renamed_and_recreated)
{
	dead_test(true);
}
END_TEST

/* ---- fault 12: mmap of mem ------------------------------------------ */

static void setup_mmap_opts(const char *tag, const char *opts)
{
	name_files("/dev/shm", tag);
	E->ram = 16 * MiB;
	if (write_memfile(E->memfile, E->ram, SEED_A, all_pages) < 0 ||
	    write_config("cache-size = 0\n") < 0 ||
	    mount_it(&E->fs, E->mnt, E->log, opts) < 0)
		return;
	E->ok = true;
}

static void setup_mmap(void)
{
	setup_mmap_opts("mmap", NULL);
}

static void setup_mmap_allowed(void)
{
	setup_mmap_opts("mmapok", "allow_mmap");
}

static sigjmp_buf bus_jmp;

static void on_bus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

/*
 * In a child: map 1 MiB of @path MAP_PRIVATE and touch its first byte.
 * Exit code: 0 the touch read the pattern, 1 SIGBUS and no page of the
 * mapping resident, 2 SIGBUS but pages resident, 3 wrong data, 4 mmap
 * failed, 5 other failure.  *shared_errno: errno of MAP_SHARED.
 */
static int mmap_child(const char *path, int *shared_errno)
{
	int pfd[2], st;
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		static uint8_t want[MiB];
		unsigned char vec[MiB / 4096];
		volatile uint8_t *m;
		int fd = open(path, O_RDONLY), e = 0, res = 0;
		void *s;

		close(pfd[0]);
		if (fd < 0)
			_exit(5);
		s = mmap(NULL, MiB, PROT_READ, MAP_SHARED, fd, 0);
		e = s == MAP_FAILED ? errno : 0;
		if (write(pfd[1], &e, sizeof(e)) != sizeof(e))
			_exit(5);
		m = mmap(NULL, MiB, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED)
			_exit(4);
		signal(SIGBUS, on_bus);
		if (sigsetjmp(bus_jmp, 1) == 0) {
			vt_pattern_fill(want, 0, MiB, SEED_A);
			for (size_t i = 0; i < MiB; i += 4096)
				if (m[i] != want[i])
					_exit(3);
			_exit(memcmp((const void *)m, want, MiB) ? 3 : 0);
		}
		/* SIGBUS: did any guest memory stay in the page cache? */
		if (mincore((void *)m, MiB, vec) < 0)
			_exit(5);
		for (size_t i = 0; i < sizeof(vec); i++)
			if (vec[i] & 1)
				res = 2;
		_exit(res ? res : 1);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], shared_errno, sizeof(*shared_errno)),
			 (ssize_t)sizeof(*shared_errno));
	close(pfd[0]);
	st = vt_wait_pid(pid, 20000);
	ck_assert_msg(st >= 0 && WIFEXITED(st), "mmap child: status 0x%x", st);
	return WEXITSTATUS(st);
}

START_TEST(test_mmap_refused)
{
	char path[300];
	int shared, rc, fd;

	REQUIRE_ENV();
	snprintf(path, sizeof(path), "%s/mem", E->mnt);
	rc = mmap_child(path, &shared);
	ck_assert_msg(shared == ENODEV, "mmap(MAP_SHARED) of mem: %s, want ENODEV",
		      shared ? strerror(shared) : "it worked");
	ck_assert_msg(rc != 0, "a MAP_PRIVATE mapping of mem served guest memory "
		      "through the page cache");
	ck_assert_msg(rc != 2, "after SIGBUS, pages of mem stayed in the page cache");
	ck_assert_msg(rc == 1, "mmap child failed with %d", rc);
	snprintf(path, sizeof(path), "%s/ram", E->mnt);
	rc = mmap_child(path, &shared);
	ck_assert_msg(rc == 1, "mmap of ram: child said %d, want SIGBUS (1)", rc);

	/* read() is not affected. */
	fd = open(in_mnt("mem"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	expect_mem(fd, 0, 4 * MiB, SEED_A, false, "read() of mem");
	close(fd);
	ck_assert_msg(log_has(E->log, "allow_mmap"),
		      "no log line says why the mapping failed");
}
END_TEST

START_TEST(test_mmap_allowed_by_option)
{
	char path[300];
	int shared, rc;

	REQUIRE_ENV();
	snprintf(path, sizeof(path), "%s/mem", E->mnt);
	rc = mmap_child(path, &shared);
	ck_assert_msg(rc == 0, "with -o allow_mmap, a MAP_PRIVATE mapping of mem "
		      "failed (child said %d)", rc);
	ck_assert_int_eq(shared, ENODEV);
}
END_TEST

/* ---- main ----------------------------------------------------------- */

static TCase *tc(Suite *s, const char *name, void (*setup)(void),
		 int timeout)
{
	return vt_tcase_unchecked(s, name, setup, env_down, timeout);
}

static Suite *memfile_suite(void)
{
	Suite *s = suite_create("memfile-faults");

	tcase_add_test(tc(s, "fs", setup_fs, 60), test_holes_on_disk_fs_after_cat);
	tcase_add_test(tc(s, "badfs", setup_badfs, 30),
		       test_unsupported_fs_refused);
	tcase_add_test(tc(s, "map", setup_map, 120), test_map_linear_and_exact);
	tcase_add_test(tc(s, "maptrunc", setup_maptrunc, 120),
		       test_map_bounded_and_marked);
	tcase_add_test(tc(s, "seq", setup_seq, 60),
		       test_seq_truncated_while_reading);
	tcase_add_test(tc(s, "deleted", setup_deleted, 30),
		       test_memfile_deleted_and_recreated);
	tcase_add_test(tc(s, "renamed", setup_renamed, 30),
		       test_memfile_renamed_and_recreated);
	tcase_add_test(tc(s, "mmap", setup_mmap, 60), test_mmap_refused);
	tcase_add_test(tc(s, "mmap-allowed", setup_mmap_allowed, 60),
		       test_mmap_allowed_by_option);
	return s;
}

int main(void)
{
	int rc;

	runner_pid = getpid();
	E = vt_runner_env(sizeof(*E), cleanup_all);
	if (!E)
		return 1;
	rc = vt_run_suite(memfile_suite());
	cleanup_all();
	return rc;
}
