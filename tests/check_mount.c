// SPDX-License-Identifier: MIT
/*
 * Integration tests of vmemfs with real parts, pages standing still:
 * reads of every kind of range (local, remote, unmapped) compared with
 * the reference, the map and stats files, concurrent readers,
 * permissions, SIGTERM and --check-config.  The environment, its layout
 * and the reference are the mount fixture (tests/lib/mount.h);
 * check_mount_faults tests sub-host failures and check_mover pages that
 * move, on the same fixture.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/datamap.h"
#include "lib/mount.h"

static void setup_static(void)
{
	/* A seq file as the pager publishes it (nobody moves pages here):
	 * without one, vmemfs does not cache, and the cache is tested too. */
	struct mt_opts o = MT_OPTS("static");

	mt_env_up(&o);
}

/* Bytes of [off, off+len) (page aligned) that are local/remote/zero. */
static void classify(uint64_t off, uint64_t len, uint64_t *local,
		     uint64_t *remote, uint64_t *zero)
{
	*local = *remote = *zero = 0;
	for (uint64_t pg = off / PAGE; pg < (off + len) / PAGE; pg++) {
		if (mt_page_initially_local(pg))
			*local += PAGE;
		else if (mt_page_home(pg) >= 0)
			*remote += PAGE;
		else
			*zero += PAGE;
	}
}


/* ---- static tests --------------------------------------------------- */

/* The memory file's data map, from our own SEEK_DATA walk. */
static void datamap_get(struct vt_datamap *m)
{
	char err[512];

	ck_assert_msg(vt_datamap_get(E->memfile, 0, UINT64_MAX, m, err,
				     sizeof(err)) == 0, "%s", err);
}

START_TEST(test_setup_matches_layout)
{
	/* The fixture itself: the file's data map is exactly the layout. */
	struct vt_datamap m;
	uint64_t want_local = 0;
	size_t k = 0;

	REQUIRE_ENV();
	datamap_get(&m);
	for (uint64_t pg = 0; pg < NPAGES;) {
		uint64_t e = pg;

		if (!mt_page_initially_local(pg)) {
			pg++;
			continue;
		}
		while (e < NPAGES && mt_page_initially_local(e))
			e++;
		ck_assert_msg(k < m.n, "fewer data extents than local runs");
		ck_assert_msg(m.ext[k].start == pg * PAGE &&
			      m.ext[k].end == e * PAGE,
			      "data extent %zu is [0x%" PRIx64 ",0x%" PRIx64
			      ") not [0x%" PRIx64 ",0x%" PRIx64 ")",
			      k, m.ext[k].start, m.ext[k].end, pg * PAGE,
			      e * PAGE);
		want_local += (e - pg) * PAGE;
		k++;
		pg = e;
	}
	ck_assert_uint_eq(k, m.n);
	ck_assert_uint_eq((uint64_t)m.blocks * 512, want_local);
	vt_datamap_free(&m);
}
END_TEST

START_TEST(test_full_compare)
{
	const size_t chunk = MiB;
	uint8_t *buf = malloc(chunk);
	struct vt_datamap before, after;
	double t0, ms;
	int fd;

	REQUIRE_ENV();
	datamap_get(&before);
	fd = open(mt_path("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	t0 = vt_now_ms();
	for (uint64_t off = 0; off < RAM; off += chunk) {
		ssize_t n = mt_pread_full(fd, buf, chunk, off);
		uint64_t bad = 0;

		ck_assert_msg(n == (ssize_t)chunk,
			      "pread 1M @ 0x%" PRIx64 " = %zd (%s)", off, n,
			      n < 0 ? strerror(errno) : "short");
		ck_assert_msg(mt_verify(buf, off, chunk, &bad),
			      "mem differs from reference at 0x%" PRIx64, bad);
	}
	ms = vt_now_ms() - t0;
	printf("info: full read of mem (256 MiB, 1 MiB preads): %.0f ms, %.0f MiB/s\n",
	       ms, 256 / (ms / 1000));
	/* At the end of the file: EOF, not an error. */
	ck_assert_int_eq(pread(fd, buf, 4096, RAM), 0);
	close(fd);
	datamap_get(&after);
	{
		char err[512];

		ck_assert_msg(vt_datamap_cmp(&before, &after, err,
					     sizeof(err)) == 0, "%s", err);
	}
	free(buf);
	vt_datamap_free(&before);
	vt_datamap_free(&after);
}
END_TEST

START_TEST(test_local_and_remote_throughput)
{
	/* Separately: a purely local and a purely remote range. */
	const size_t chunk = MiB;
	uint8_t *buf = malloc(chunk);
	int fd = open(mt_path("mem"), O_RDONLY);
	double t0, ms_local, ms_remote;
	uint64_t bad;

	REQUIRE_ENV();
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	t0 = vt_now_ms();
	for (uint64_t off = 16 * MiB; off < 80 * MiB; off += chunk)
		ck_assert_int_eq(mt_pread_full(fd, buf, chunk, off), chunk);
	ms_local = vt_now_ms() - t0;
	/* Sub-host 1 has only single local pages in [204M, 252M). */
	t0 = vt_now_ms();
	for (uint64_t off = 204 * MiB; off < 252 * MiB; off += chunk) {
		ck_assert_int_eq(mt_pread_full(fd, buf, chunk, off), chunk);
		ck_assert_msg(mt_verify(buf, off, chunk, &bad),
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
	fd = open(mt_path("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		mt_read_verify(fd, cases[i].off, cases[i].len);
	/* And 300 random odd ones (fixed seed: reproducible). */
	for (uint64_t i = 0; i < 300; i++) {
		uint64_t r = vt_splitmix64(i * 7919 + 1);
		size_t len = 1 + (r >> 40) % 300000;
		uint64_t off = r % (RAM - len);

		mt_read_verify(fd, off, len);
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
	j = mt_read_json("map");
	ck_assert(json_object_is_type(j, json_type_array));
	n = json_object_array_length(j);
	/* Expected: merge pages with the same answer. */
	for (uint64_t pg = 0; pg < NPAGES;) {
		const char *want;
		uint64_t e;
		json_object *x, *w;
		int64_t s, en;

#define WHERE(p) (mt_page_initially_local(p) ? "local" :			\
		  mt_page_home(p) >= 0 ? E->sub[mt_page_home(p)].uri : "unmapped")
		want = WHERE(pg);
		for (e = pg + 1; e < NPAGES && strcmp(WHERE(e), want) == 0;
		     e++)
			;
#undef WHERE
		ck_assert_msg(k < n, "map has only %zu extents", n);
		x = json_object_array_get_idx(j, k);
		s = mt_jint(x, "start");
		en = mt_jint(x, "end");
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
	struct mt_stats a, b;
	uint64_t l = 0, r = 0, z = 0, total = 0;
	int fd;

	REQUIRE_ENV();
	/* Let cached chunks of earlier tests expire (cache-ttl 100ms). */
	vt_sleep_ms(250);
	mt_stats_get(&a, true);
	fd = open(mt_path("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
		uint64_t dl, dr, dz;

		mt_read_verify(fd, reads[i].off, reads[i].len);
		classify(reads[i].off, reads[i].len, &dl, &dr, &dz);
		l += dl;
		r += dr;
		z += dz;
		total += reads[i].len;
	}
	close(fd);
	mt_stats_get(&b, true);
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


START_TEST(test_concurrent_readers)
{
	struct mt_reader a[8];
	uint64_t reads = 0, bytes = 0;
	double t0 = vt_now_ms(), ms;
	int fd;

	REQUIRE_ENV();
	fd = open(mt_path("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	mt_run_readers(a, 8, fd, 0, RAM, 512 * KiB, 3000);
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
	ck_assert_int_eq(stat(mt_path("mem"), &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_msg((st.st_mode & 07777) == 0400, "mem mode is %o",
		      st.st_mode & 07777);
	ck_assert_int_eq(st.st_uid, 0);
	ck_assert_int_eq(st.st_size, RAM);
	/* Read-only, even for root. */
	errno = 0;
	ck_assert_msg(open(mt_path("mem"), O_WRONLY) < 0 &&
		      (errno == EACCES || errno == EROFS || errno == EPERM),
		      "open(mem, O_WRONLY): %s", strerror(errno));
	/* Another user gets EACCES without allow_other. */
	pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		int fd;

		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(2);
		fd = open(mt_path("mem"), O_RDONLY);
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
		if (mt_pread_full(fd, got, sizeof(got), SUB0_END - 100000) !=
		    (ssize_t)sizeof(got))
			_exit(4);
		mt_ref_fill(want, SUB0_END - 100000, sizeof(want));
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

/* ---- main ----------------------------------------------------------- */

static Suite *mount_suite(void)
{
	Suite *s = suite_create("mount");
	TCase *tc;

	tc = vt_tcase_unchecked(s, "static", setup_static, mt_env_down, 60);
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
	return s;
}

int main(void)
{
	return mt_main(mount_suite);
}
