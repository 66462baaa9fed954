// SPDX-License-Identifier: MIT
/*
 * The largest value of every numeric key (config.h, VMEM_*_MAX): the
 * limit itself loads, the next value up is refused with a message that
 * names the line and the limit, and so are the values that broke vmemfs
 * after loading (ram-size 2^63: stat EIO; timeout 2^64-1 ms: wrapped to
 * 0; a timeout beyond 24.8 days: poll(-1)).  The limits are written out
 * here as numbers, not taken from config.h, so a changed limit fails.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/config.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define KiB (1ULL << 10)
#define TiB (1ULL << 40)
#define RAM_MAX (4096 * TiB)		/* 2^52 */
#define DUR_MAX_MS 3600000ULL		/* 1 h */

#define HDR "[vm1]\nmemory-file = /dev/shm/vm1.mem\n"

#define expect_err(text, msg) expect_err_at(text, msg, __LINE__)
static void expect_err_at(const char *text, const char *msg, int at)
{
	struct vmem_config cfg;
	char err[512] = "untouched";

	ck_assert_msg(vmem_config_parse(text, "vm.conf", &cfg, err,
					sizeof(err)) == -1,
		      "line %d: accepted, wanted '%s'", at, msg);
	ck_assert_msg(strcmp(err, msg) == 0,
		      "line %d:\n  got  '%s'\n  want '%s'", at, err, msg);
}

/* Parse @text; it must load.  The caller frees @cfg. */
#define parse_ok(text, cfg) parse_ok_at(text, cfg, __LINE__)
static void parse_ok_at(const char *text, struct vmem_config *cfg, int at)
{
	char err[512] = "";

	ck_assert_msg(vmem_config_parse(text, "vm.conf", cfg, err,
					sizeof(err)) == 0,
		      "line %d: refused: %s", at, err);
}

START_TEST(ram_size)
{
	struct vmem_config cfg;

	parse_ok(HDR "ram-size = 4096T\n", &cfg);
	ck_assert_uint_eq(cfg.vms[0].ram_size, RAM_MAX);
	vmem_config_free(&cfg);
	parse_ok(HDR "ram-size = 0xffffffffff000\n", &cfg);	/* 2^52-4K */
	ck_assert_uint_eq(cfg.vms[0].ram_size, RAM_MAX - 4 * KiB);
	vmem_config_free(&cfg);

	/* one page above */
	expect_err(HDR "ram-size = 0x10000000001000\n",
		   "vm.conf:3: ram-size '0x10000000001000' is above the "
		   "largest supported value 4096T");
	/* the review's values: 2^63 (stat EIO), 2^64-4K */
	expect_err(HDR "ram-size = 8388608T\n",
		   "vm.conf:3: ram-size '8388608T' is above the largest "
		   "supported value 4096T");
	expect_err(HDR "\nram-size = 0xfffffffffffff000\n",
		   "vm.conf:4: ram-size '0xfffffffffffff000' is above the "
		   "largest supported value 4096T");
	/* beyond 64 bits: the same message */
	expect_err(HDR "ram-size = 16777216T\n",
		   "vm.conf:3: ram-size '16777216T' is above the largest "
		   "supported value 4096T");
}
END_TEST

START_TEST(timeout)
{
	struct vmem_config cfg;

	parse_ok(HDR "timeout = 3600s\n", &cfg);
	ck_assert_uint_eq(cfg.vms[0].timeout_ms, DUR_MAX_MS);
	vmem_config_free(&cfg);
	parse_ok(HDR "timeout = 3600000ms\n", &cfg);
	ck_assert_uint_eq(cfg.vms[0].timeout_ms, DUR_MAX_MS);
	vmem_config_free(&cfg);

	expect_err(HDR "timeout = 3600001ms\n",
		   "vm.conf:3: timeout '3600001ms' is above the largest "
		   "supported value 3600s");
	expect_err(HDR "timeout = 3601s\n",
		   "vm.conf:3: timeout '3601s' is above the largest "
		   "supported value 3600s");
	/* wrapped to 0 ns once multiplied: every read failed at once */
	expect_err(HDR "timeout = 18446744073709551615ms\n",
		   "vm.conf:3: timeout '18446744073709551615ms' is above the "
		   "largest supported value 3600s");
	/* INT_MAX + 1 ms: poll(-1), a wait forever */
	expect_err(HDR "timeout = 2147483648ms\n",
		   "vm.conf:3: timeout '2147483648ms' is above the largest "
		   "supported value 3600s");
	expect_err(HDR "timeout = 18446744073709552s\n",
		   "vm.conf:3: timeout '18446744073709552s' is above the "
		   "largest supported value 3600s");
}
END_TEST

START_TEST(cache_ttl)
{
	struct vmem_config cfg;

	parse_ok(HDR "cache-ttl = 3600s\n", &cfg);
	ck_assert_uint_eq(cfg.vms[0].cache_ttl_ms, DUR_MAX_MS);
	vmem_config_free(&cfg);
	expect_err(HDR "cache-ttl = 3600001ms\n",
		   "vm.conf:3: cache-ttl '3600001ms' is above the largest "
		   "supported value 3600s");
	expect_err(HDR "cache-ttl = 18446744073709551615ms\n",
		   "vm.conf:3: cache-ttl '18446744073709551615ms' is above "
		   "the largest supported value 3600s");
}
END_TEST

START_TEST(cache_size_and_local_limit)
{
	struct vmem_config cfg;

	parse_ok(HDR "cache-size = 4096T\nlocal-limit = 4096T\n", &cfg);
	ck_assert_uint_eq(cfg.vms[0].cache_size, RAM_MAX);
	ck_assert_uint_eq(cfg.vms[0].local_limit, RAM_MAX);
	vmem_config_free(&cfg);
	expect_err(HDR "cache-size = 0x10000000000001\n",
		   "vm.conf:3: cache-size '0x10000000000001' is above the "
		   "largest supported value 4096T");
	expect_err(HDR "local-limit = 0x10000000001000\n",
		   "vm.conf:3: local-limit '0x10000000001000' is above the "
		   "largest supported value 4096T");
	expect_err(HDR "local-limit = 18446744073709551615\n",
		   "vm.conf:3: local-limit '18446744073709551615' is above "
		   "the largest supported value 4096T");
}
END_TEST

START_TEST(chunk_size)
{
	struct vmem_config cfg;

	parse_ok(HDR "chunk-size = 16M\n", &cfg);
	ck_assert_uint_eq(cfg.vms[0].chunk_size, 16 << 20);
	vmem_config_free(&cfg);
	expect_err(HDR "chunk-size = 99999999999999999999\n",
		   "vm.conf:3: chunk-size '99999999999999999999' is not a "
		   "power of two between 4K and 16M");
}
END_TEST

START_TEST(subhost_ranges)
{
	struct vmem_config cfg;

	parse_ok(HDR "ram-size = 4096T\n"
		 "subhost = nbd://h 4095T-4096T\n", &cfg);
	ck_assert_uint_eq(cfg.vms[0].subhosts[0].end, RAM_MAX);
	vmem_config_free(&cfg);
	/* without ram-size the file's size bounds it later; the limit
	 * holds already */
	expect_err(HDR "subhost = nbd://h 4095T-0x10000000001000\n",
		   "vm.conf:3: subhost range '4095T-0x10000000001000' ends "
		   "above the largest supported ram-size 4096T");
	expect_err(HDR "subhost = nbd://h 8388608T-8388609T\n",
		   "vm.conf:3: subhost range '8388608T-8388609T' ends above "
		   "the largest supported ram-size 4096T");
	expect_err(HDR "subhost = nbd://h 0-16777216T\n",
		   "vm.conf:3: subhost range '0-16777216T' ends above the "
		   "largest supported ram-size 4096T");
}
END_TEST

START_TEST(subhost_count)
{
	struct vmem_config cfg;
	char *text, *p;
	size_t cap = 64 * 129 + 256;
	int i;

	text = malloc(cap);
	ck_assert_ptr_nonnull(text);
	p = text + sprintf(text, HDR);
	for (i = 0; i < 128; i++)
		p += sprintf(p, "subhost = nbd://h%d %dM-%dM\n", i, i, i + 1);
	parse_ok(text, &cfg);
	ck_assert_uint_eq(cfg.vms[0].n_subhosts, 128);
	vmem_config_free(&cfg);
	/* line 2 + 128 + 1 */
	sprintf(p, "subhost = nbd://x 1G-2G\n");
	expect_err(text, "vm.conf:131: subhost 'nbd://x 1G-2G' is above the "
		   "largest supported number of sub-hosts per VM, 128");
	free(text);
}
END_TEST

/* ---- the real binary and a real (sparse) memory file ---------------- */

static char mem_path[64], conf_path[64];

static void files_name(void)
{
	snprintf(mem_path, sizeof(mem_path), "/dev/shm/vmt-bounds-%d.mem",
		 (int)getpid());
	snprintf(conf_path, sizeof(conf_path), "/tmp/vmt-bounds-%d.conf",
		 (int)getpid());
}

static void files_remove(void)
{
	unlink(mem_path);
	unlink(conf_path);
}

static void write_conf(const char *extra)
{
	FILE *f = fopen(conf_path, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "[vm1]\nmemory-file = %s\n%s", mem_path, extra);
	ck_assert_int_eq(fclose(f), 0);
}

static void make_mem(off_t size)
{
	int fd = open(mem_path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	ck_assert_msg(fd >= 0, "%s: %s", mem_path, strerror(errno));
	ck_assert_msg(ftruncate(fd, size) == 0, "ftruncate %s to %lld: %s",
		      mem_path, (long long)size, strerror(errno));
	close(fd);
}

static int check_config_run(char *out, size_t outlen, char *errout,
			    size_t errlen)
{
	char *argv[] = { (char *)vt_vmemfs_bin(), "--check-config", "-c",
			 conf_path, NULL };

	return vt_run(argv, out, outlen, errout, errlen, 10000);
}

START_TEST(check_config_refuses)
{
	char out[2048], errout[1024], want[256];
	int rc;

	make_mem(16 << 20);
	/* the review: this passed --check-config, then mounted */
	write_conf("ram-size = 8388608T\n");
	rc = check_config_run(out, sizeof(out), errout, sizeof(errout));
	ck_assert_msg(rc == 1, "exit %d, stderr: %s", rc, errout);
	snprintf(want, sizeof(want), "vmemfs: %s:3: ram-size '8388608T' is "
		 "above the largest supported value 4096T\n", conf_path);
	ck_assert_str_eq(errout, want);

	write_conf("timeout = 18446744073709551615ms\n");
	rc = check_config_run(out, sizeof(out), errout, sizeof(errout));
	ck_assert_msg(rc == 1, "exit %d, stderr: %s", rc, errout);
	snprintf(want, sizeof(want), "vmemfs: %s:3: timeout "
		 "'18446744073709551615ms' is above the largest supported "
		 "value 3600s\n", conf_path);
	ck_assert_str_eq(errout, want);

	/* the limits themselves pass and print back as given */
	write_conf("timeout = 3600s\ncache-ttl = 3600000ms\n");
	rc = check_config_run(out, sizeof(out), errout, sizeof(errout));
	ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, errout);
	ck_assert_ptr_nonnull(strstr(out, "timeout     = 3600s\n"));
	ck_assert_ptr_nonnull(strstr(out, "cache-ttl   = 3600s\n"));
}
END_TEST

START_TEST(memory_file_too_large)
{
	char err[512], want[256];
	struct vmem_config cfg;

	/* tmpfs takes a sparse file of any size: one page above 2^52 */
	make_mem((off_t)(RAM_MAX + 4 * KiB));
	write_conf("");
	ck_assert_int_eq(vmem_config_load(conf_path, &cfg, err, sizeof(err)),
			 0);
	ck_assert_int_eq(vmem_vm_resolve(&cfg.vms[0], conf_path, err,
					 sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: memory-file '%s' size "
		 "4503599627374592 is above the largest supported ram-size "
		 "4096T", conf_path, mem_path);
	ck_assert_str_eq(err, want);
	vmem_config_free(&cfg);

	/* exactly the limit resolves */
	make_mem((off_t)RAM_MAX);
	ck_assert_int_eq(vmem_config_load(conf_path, &cfg, err, sizeof(err)),
			 0);
	ck_assert_msg(vmem_vm_resolve(&cfg.vms[0], conf_path, err,
				      sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.vms[0].ram_size, RAM_MAX);
	vmem_config_free(&cfg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config_bounds");
	TCase *tc = vt_tcase_checked(s, "parse", NULL, NULL, 0);
	int rc;

	tcase_add_test(tc, ram_size);
	tcase_add_test(tc, timeout);
	tcase_add_test(tc, cache_ttl);
	tcase_add_test(tc, cache_size_and_local_limit);
	tcase_add_test(tc, chunk_size);
	tcase_add_test(tc, subhost_ranges);
	tcase_add_test(tc, subhost_count);

	files_name();
	tc = vt_tcase_checked(s, "files", NULL, NULL, 0);
	tcase_add_test(tc, check_config_refuses);
	tcase_add_test(tc, memory_file_too_large);
	rc = vt_run_suite(s);
	/* Check skips a failed test's cleanup: remove the files here. */
	files_remove();
	return rc;
}
