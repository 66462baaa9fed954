// SPDX-License-Identifier: MIT
/*
 * Unit tests of run splitting (memfile.c), homes and the map (homes.c),
 * and the latency histogram (stats.c), against sparse files whose data
 * map the test itself lays down.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/config.h"
#include "../vmemfs/homes.h"
#include "../vmemfs/memfile.h"
#include "../vmemfs/stats.h"
#include "lib/suite.h"

#define K 1024ull
#define M (1024ull * K)

static char path[64];
static int wfd = -1;
static pid_t runner;	/* names the scratch file; main removes it */

static void make_file(uint64_t size)
{
	snprintf(path, sizeof(path), "/dev/shm/vmt-layout-%d", (int)runner);
	wfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(wfd, 0);
	ck_assert_int_eq(ftruncate(wfd, (off_t)size), 0);
}

static void put(uint64_t off, uint64_t len, int byte)
{
	char *b = malloc(len);

	memset(b, byte, len);
	ck_assert_int_eq(pwrite(wfd, b, len, (off_t)off), (ssize_t)len);
	free(b);
}

static void teardown(void)
{
	if (wfd >= 0)
		close(wfd);
	wfd = -1;
	unlink(path);
}

START_TEST(runs_follow_data_map)
{
	struct vmem_memfile mf;
	char err[256];
	uint64_t end;
	bool present;

	make_file(1 * M);
	put(64 * K, 8 * K, 0xaa);
	put(512 * K, 4 * K, 0xbb);
	ck_assert_int_eq(vmem_memfile_open(&mf, path, err, sizeof(err)), 0);
	ck_assert_ptr_null(mf.seq);

	ck_assert_int_eq(vmem_memfile_run(&mf, 0, 1 * M, &present, &end), 0);
	ck_assert(!present);
	ck_assert_uint_eq(end, 64 * K);
	ck_assert_int_eq(vmem_memfile_run(&mf, 64 * K, 1 * M, &present, &end), 0);
	ck_assert(present);
	ck_assert_uint_eq(end, 72 * K);
	/* Starting inside a run, and clipped by the caller's end. */
	ck_assert_int_eq(vmem_memfile_run(&mf, 68 * K, 70 * K, &present, &end), 0);
	ck_assert(present);
	ck_assert_uint_eq(end, 70 * K);
	ck_assert_int_eq(vmem_memfile_run(&mf, 72 * K, 1 * M, &present, &end), 0);
	ck_assert(!present);
	ck_assert_uint_eq(end, 512 * K);
	ck_assert_int_eq(vmem_memfile_run(&mf, 516 * K, 1 * M, &present, &end), 0);
	ck_assert(!present);
	ck_assert_uint_eq(end, 1 * M);
	/* Past the end of the file (ram-size larger than the file). */
	ck_assert_int_eq(vmem_memfile_run(&mf, 2 * M, 3 * M, &present, &end), 0);
	ck_assert(!present);
	ck_assert_uint_eq(end, 3 * M);

	ck_assert(vmem_memfile_all_present(&mf, 64 * K, 72 * K));
	ck_assert(!vmem_memfile_all_present(&mf, 64 * K, 76 * K));

	/* Punch the first run: the next look sees the hole. */
	ck_assert_int_eq(fallocate(wfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   64 * K, 4 * K), 0);
	ck_assert(!vmem_memfile_all_present(&mf, 64 * K, 72 * K));
	ck_assert_int_eq(vmem_memfile_run(&mf, 64 * K, 1 * M, &present, &end), 0);
	ck_assert(!present);
	ck_assert_uint_eq(end, 68 * K);
	vmem_memfile_close(&mf);
}
END_TEST

START_TEST(pread_does_not_allocate)
{
	struct vmem_memfile mf;
	char err[256], *buf = malloc(1 * M);
	struct stat before, after;

	make_file(1 * M);
	put(256 * K, 4 * K, 0x5a);
	ck_assert_int_eq(fstat(wfd, &before), 0);
	ck_assert_int_eq(vmem_memfile_open(&mf, path, err, sizeof(err)), 0);
	ck_assert_int_eq(vmem_memfile_pread(&mf, buf, 1 * M, 0), 0);
	ck_assert_int_eq(buf[256 * K], 0x5a);
	ck_assert_int_eq(buf[0], 0);
	ck_assert_int_eq(fstat(wfd, &after), 0);
	ck_assert_int_eq(after.st_blocks, before.st_blocks);
	ck_assert_int_eq(vmem_memfile_allocated(&mf), (int64_t)before.st_blocks * 512);
	vmem_memfile_close(&mf);
	free(buf);
}
END_TEST

START_TEST(seq_file_is_used_when_present)
{
	struct vmem_memfile mf;
	struct vmem_seq_map *m;
	char err[256], seqpath[80];
	uint64_t tok;
	bool quiet;
	int sfd;

	make_file(64 * M);
	snprintf(seqpath, sizeof(seqpath), "%s%s", path, VMEM_SEQ_SUFFIX);	/* removed by main too */
	sfd = open(seqpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(sfd, 0);
	m = calloc(1, sizeof(*m));
	ck_assert_int_eq(pwrite(sfd, m, sizeof(*m), 0), (ssize_t)sizeof(*m));
	ck_assert_int_eq(vmem_memfile_open(&mf, path, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(mf.seq);

	tok = vmem_memfile_seq_begin(&mf, 0, 4 * K, &quiet);
	ck_assert(quiet);
	ck_assert(vmem_memfile_seq_valid(&mf, 0, 4 * K, tok));

	/* A move begun in stripe 1 (2 MiB..4 MiB), seen through the file. */
	vmem_seq_move_begin(m, 2 * M, 4 * K);
	ck_assert_int_eq(pwrite(sfd, m, sizeof(*m), 0), (ssize_t)sizeof(*m));
	ck_assert(vmem_memfile_seq_valid(&mf, 0, 4 * K, tok));	 /* stripe 0 */
	ck_assert(!vmem_memfile_seq_valid(&mf, 0, 3 * M, tok));	 /* spans 0-1 */
	tok = vmem_memfile_seq_begin(&mf, 2 * M, 4 * K, &quiet);
	ck_assert(!quiet);					 /* in flight */
	vmem_seq_move_end(m, 2 * M, 4 * K);
	ck_assert_int_eq(pwrite(sfd, m, sizeof(*m), 0), (ssize_t)sizeof(*m));
	ck_assert(vmem_memfile_seq_valid(&mf, 2 * M, 4 * K, tok));
	tok = vmem_memfile_seq_begin(&mf, 2 * M, 4 * K, &quiet);
	ck_assert(quiet);
	/* Stripe 33 shares stripe 1's counters: a false alarm, by design. */
	vmem_seq_move_begin(m, 66 * M, 4 * K);
	ck_assert_int_eq(pwrite(sfd, m, sizeof(*m), 0), (ssize_t)sizeof(*m));
	ck_assert(!vmem_memfile_seq_valid(&mf, 2 * M, 4 * K, tok));

	vmem_memfile_close(&mf);
	close(sfd);
	unlink(seqpath);
	free(m);
}
END_TEST

static struct vmem_config cfg;

static struct vmem_vm *vm_from(const char *text)
{
	char err[256];

	ck_assert_msg(vmem_config_parse(text, "t.conf", &cfg, err, sizeof(err)) == 0,
		      "%s", err);
	cfg.vms[0].ram_size = 1 * M;
	return &cfg.vms[0];
}

START_TEST(homes)
{
	struct vmem_vm *vm;
	uint64_t e;

	make_file(1 * M);
	vm = vm_from("[v]\nmemory-file = /x\nram-size = 1M\n"
		     "subhost = nbd://a:1 768K-1M\n"
		     "subhost = nbd://b:2 256K-512K\n");
	ck_assert_int_eq(vmem_home_of(vm, 0, &e), VMEM_HOME_NONE);
	ck_assert_uint_eq(e, 256 * K);
	ck_assert_int_eq(vmem_home_of(vm, 256 * K, &e), 0);	/* sorted */
	ck_assert_str_eq(vm->subhosts[0].uri, "nbd://b:2");
	ck_assert_uint_eq(e, 512 * K);
	ck_assert_int_eq(vmem_home_of(vm, 511 * K, &e), 0);
	ck_assert_int_eq(vmem_home_of(vm, 512 * K, &e), VMEM_HOME_NONE);
	ck_assert_uint_eq(e, 768 * K);
	ck_assert_int_eq(vmem_home_of(vm, 1 * M - 1, &e), 1);
	ck_assert_uint_eq(e, 1 * M);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(map_merges_and_covers)
{
	static const struct { uint64_t s, e; const char *w; } want[] = {
		{ 0, 64 * K, "local" },
		{ 64 * K, 256 * K, "unmapped" },
		{ 256 * K, 300 * K, "nbd://b:2" },
		{ 300 * K, 304 * K, "local" },
		{ 304 * K, 512 * K, "nbd://b:2" },
		{ 512 * K, 768 * K, "unmapped" },
		{ 768 * K, 1 * M, "nbd://a:1" },
	};
	struct vmem_memfile mf;
	struct vmem_vm *vm;
	json_object *arr;
	char err[256], *text;
	size_t i;

	make_file(1 * M);
	put(0, 64 * K, 1);
	put(300 * K, 4 * K, 2);
	vm = vm_from("[v]\nmemory-file = /x\nram-size = 1M\n"
		     "subhost = nbd://a:1 768K-1M\n"
		     "subhost = nbd://b:2 256K-512K\n");
	ck_assert_int_eq(vmem_memfile_open(&mf, path, err, sizeof(err)), 0);
	text = vmem_map_json(vm, &mf, NULL);
	ck_assert_ptr_nonnull(text);
	arr = json_tokener_parse(text);
	ck_assert_ptr_nonnull(arr);
	ck_assert_int_eq(json_object_array_length(arr), sizeof(want) / sizeof(want[0]));
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		json_object *o = json_object_array_get_idx(arr, i), *v;

		ck_assert(json_object_object_get_ex(o, "start", &v));
		ck_assert_uint_eq(json_object_get_uint64(v), want[i].s);
		ck_assert(json_object_object_get_ex(o, "end", &v));
		ck_assert_uint_eq(json_object_get_uint64(v), want[i].e);
		ck_assert(json_object_object_get_ex(o, "where", &v));
		ck_assert_str_eq(json_object_get_string(v), want[i].w);
	}
	json_object_put(arr);
	free(text);
	vmem_memfile_close(&mf);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(map_carries_gpa)
{
	/* RAM [0,640K) at GPA 0, RAM [640K,1M) at GPA 1M (a hole between). */
	static struct vmem_gpa_ext ext[] = {
		{ 1 * M, 384 * K, 640 * K },
		{ 0, 640 * K, 0 },
	};
	static const struct { uint64_t s, e, gs, ge; const char *w; } want[] = {
		{ 0, 64 * K, 0, 64 * K, "local" },
		{ 64 * K, 640 * K, 64 * K, 640 * K, "unmapped" },
		{ 640 * K, 1 * M, 1 * M, 1 * M + 384 * K, "unmapped" },
	};
	struct vmem_gpa_map gpa = { ext, 2, 1 * M + 384 * K };
	struct vmem_memfile mf;
	struct vmem_vm *vm;
	json_object *arr;
	char err[256], *text;
	size_t i;

	make_file(1 * M);
	put(0, 64 * K, 1);
	vm = vm_from("[v]\nmemory-file = /x\nram-size = 1M\n");
	ck_assert_int_eq(vmem_memfile_open(&mf, path, err, sizeof(err)), 0);
	text = vmem_map_json(vm, &mf, &gpa);
	arr = json_tokener_parse(text);
	ck_assert_int_eq(json_object_array_length(arr), 3);
	for (i = 0; i < 3; i++) {
		json_object *o = json_object_array_get_idx(arr, i), *v;

		json_object_object_get_ex(o, "start", &v);
		ck_assert_uint_eq(json_object_get_uint64(v), want[i].s);
		json_object_object_get_ex(o, "end", &v);
		ck_assert_uint_eq(json_object_get_uint64(v), want[i].e);
		json_object_object_get_ex(o, "gpa_start", &v);
		ck_assert_uint_eq(json_object_get_uint64(v), want[i].gs);
		json_object_object_get_ex(o, "gpa_end", &v);
		ck_assert_uint_eq(json_object_get_uint64(v), want[i].ge);
		json_object_object_get_ex(o, "where", &v);
		ck_assert_str_eq(json_object_get_string(v), want[i].w);
	}
	json_object_put(arr);
	free(text);
	vmem_memfile_close(&mf);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(histogram_percentiles)
{
	struct vmem_hist *h = calloc(1, sizeof(*h));
	uint64_t v;
	int i;

	ck_assert_uint_eq(vmem_hist_percentile(h, 50), 0);
	/* 1..1000 us: p50 ~ 500 us, p99 ~ 990 us, within one bucket (1/8). */
	for (i = 1; i <= 1000; i++)
		vmem_hist_add(h, (uint64_t)i * 1000);
	v = vmem_hist_percentile(h, 50);
	ck_assert_uint_ge(v, 500000);
	ck_assert_uint_le(v, 500000 + 500000 / 8 + 1);
	v = vmem_hist_percentile(h, 99);
	ck_assert_uint_ge(v, 990000);
	ck_assert_uint_le(v, 990000 + 990000 / 8 + 1);
	v = vmem_hist_percentile(h, 100);
	ck_assert_uint_ge(v, 1000000);
	ck_assert_uint_le(v, 1000000 + 1000000 / 8 + 1);
	/* Small values are exact. */
	memset(h, 0, sizeof(*h));
	vmem_hist_add(h, 3);
	ck_assert_uint_eq(vmem_hist_percentile(h, 50), 3);
	vmem_hist_add(h, UINT64_MAX);
	ck_assert_uint_eq(vmem_hist_percentile(h, 100), UINT64_MAX);
	free(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("layout");
	TCase *tc = vt_tcase_checked(s, "core", NULL, teardown, 0);
	char seqpath[80];
	int rc;

	runner = getpid();

	tcase_add_test(tc, runs_follow_data_map);
	tcase_add_test(tc, pread_does_not_allocate);
	tcase_add_test(tc, seq_file_is_used_when_present);
	tcase_add_test(tc, homes);
	tcase_add_test(tc, map_merges_and_covers);
	tcase_add_test(tc, map_carries_gpa);
	tcase_add_test(tc, histogram_percentiles);
	rc = vt_run_suite(s);
	/* Check skips a failed test's teardown: clean up here too. */
	snprintf(path, sizeof(path), "/dev/shm/vmt-layout-%d", (int)runner);
	snprintf(seqpath, sizeof(seqpath), "%s%s", path, VMEM_SEQ_SUFFIX);
	unlink(path);
	unlink(seqpath);
	return rc;
}
