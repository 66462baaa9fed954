// SPDX-License-Identifier: MIT
/*
 * Unit tests for common/config.c: value parsers, the INI parser with every
 * error message checked word for word, vmem_config_find, vmem_config_load,
 * vmem_vm_resolve against real (sparse) files, and the print -> parse
 * round trip that --check-config relies on.  Also the real build/vmemfs
 * (or $VMEMFS) --check-config on the shipped example with no VM running.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/config.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TiB (1ULL << 40)

/* ---- helpers ------------------------------------------------------- */

static char tmpdir[64];
static pid_t tmpdir_owner;	/* forked test children must not remove it */

static int rm_entry(const char *p, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void rm_tmpdir(void)
{
	if (tmpdir[0] && getpid() == tmpdir_owner)
		nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = '\0';
}

/* Unchecked: runs in the parent, so the directory goes even when a test
 * in a forked child fails half-way. */
static void tmpdir_setup(void)
{
	strcpy(tmpdir, "/tmp/check_config.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(2);
	}
	tmpdir_owner = getpid();
	atexit(rm_tmpdir);
}

static void tmpdir_teardown(void)
{
	rm_tmpdir();
}

/* Make @name in the temp dir with @size bytes (sparse) and return its
 * path in a static buffer. */
static const char *make_file(const char *name, off_t size)
{
	static char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(ftruncate(fd, size), 0);
	close(fd);
	return path;
}

static void write_text(const char *path, const char *text, size_t len)
{
	char err[512];

	ck_assert_msg(vt_write_file(path, text, len, err, sizeof(err)) == 0,
		      "%s", err);
}

static void assert_cfg_empty(const struct vmem_config *cfg)
{
	ck_assert_ptr_null(cfg->vms);
	ck_assert_uint_eq(cfg->n_vms, 0);
	ck_assert_ptr_null(cfg->path);
}

/* Parsing @text as "vm.conf" must fail with exactly @msg. */
#define expect_err(text, msg) expect_err_at(text, msg, __LINE__)
static void expect_err_at(const char *text, const char *msg, int at)
{
	struct vmem_config cfg;
	char err[512] = "untouched";
	int r;

	memset(&cfg, 0x5a, sizeof(cfg));
	r = vmem_config_parse(text, "vm.conf", &cfg, err, sizeof(err));
	ck_assert_msg(r == -1, "line %d: parse succeeded, wanted '%s'",
		      at, msg);
	ck_assert_msg(strcmp(err, msg) == 0,
		      "line %d:\n  got  '%s'\n  want '%s'", at, err, msg);
	assert_cfg_empty(&cfg);
}

static void parse_ok(const char *text, struct vmem_config *cfg)
{
	char err[512] = "";
	int r = vmem_config_parse(text, "vm.conf", cfg, err, sizeof(err));

	ck_assert_msg(r == 0, "unexpected error: %s", err);
}

#define MIN "[vm1]\nmemory-file = /dev/shm/vm1.mem\n"

/* ---- value parsers ------------------------------------------------- */

static const struct {
	const char *s;
	uint64_t v;
} good_sizes[] = {
	{ "0", 0 },
	{ "1", 1 },
	{ "4096", 4096 },
	{ "007", 7 },
	{ "4K", 4 * KiB },
	{ "4k", 4 * KiB },
	{ "64K", 64 * KiB },
	{ "3M", 3 * MiB },
	{ "2G", 2 * GiB },
	{ "2g", 2 * GiB },
	{ "1T", TiB },
	{ "0x1000", 4096 },
	{ "0X10", 16 },
	{ "0xaBcD", 0xabcd },
	{ "0x10K", 16 * KiB },
	{ "0x0", 0 },
	{ "0xffffffffffffffff", UINT64_MAX },
	{ "18446744073709551615", UINT64_MAX },
	{ "16777215T", UINT64_MAX - TiB + 1 },
	{ "17179869183G", UINT64_MAX - GiB + 1 },
};

START_TEST(size_good)
{
	uint64_t v = 12345;

	ck_assert_int_eq(vmem_parse_size(good_sizes[_i].s, &v), 0);
	ck_assert_msg(v == good_sizes[_i].v, "'%s' -> %llu, want %llu",
		      good_sizes[_i].s, (unsigned long long)v,
		      (unsigned long long)good_sizes[_i].v);
}
END_TEST

static const char *const bad_sizes[] = {
	"", "K", "0x", "0xK", "abc", "-1", "+1", " 1", "1 ", "1 K", "1KB",
	"1.5G", "1P", "1KK", "0xg", "1e3", "0x1x", "1,000",
	/* overflow */
	"16777216T", "17179869184G", "18446744073709551616",
	"0x10000000000000000", "99999999999999999999999",
};

START_TEST(size_bad)
{
	uint64_t v = 12345;

	ck_assert_msg(vmem_parse_size(bad_sizes[_i], &v) == -1,
		      "'%s' accepted as %llu", bad_sizes[_i],
		      (unsigned long long)v);
}
END_TEST

START_TEST(range_parsing)
{
	uint64_t a = 1, b = 1;

	ck_assert_int_eq(vmem_parse_range("1G-2G", &a, &b), 0);
	ck_assert_uint_eq(a, GiB);
	ck_assert_uint_eq(b, 2 * GiB);
	ck_assert_int_eq(vmem_parse_range("0-4K", &a, &b), 0);
	ck_assert_uint_eq(a, 0);
	ck_assert_uint_eq(b, 4096);
	ck_assert_int_eq(vmem_parse_range("0x1000-0x3000", &a, &b), 0);
	ck_assert_uint_eq(a, 0x1000);
	ck_assert_uint_eq(b, 0x3000);
	ck_assert_int_eq(vmem_parse_range("1536M-16777215T", &a, &b), 0);
	ck_assert_uint_eq(a, 1536 * MiB);
	ck_assert_uint_eq(b, UINT64_MAX - TiB + 1);

	/* END is exclusive, so START must be strictly below it */
	ck_assert_int_eq(vmem_parse_range("1G-1G", &a, &b), -1);
	ck_assert_int_eq(vmem_parse_range("2G-1G", &a, &b), -1);
	ck_assert_int_eq(vmem_parse_range("1G", &a, &b), -1);
	ck_assert_int_eq(vmem_parse_range("-2G", &a, &b), -1);
	ck_assert_int_eq(vmem_parse_range("1G-", &a, &b), -1);
	ck_assert_int_eq(vmem_parse_range("-", &a, &b), -1);
	ck_assert_int_eq(vmem_parse_range("", &a, &b), -1);
	ck_assert_int_eq(vmem_parse_range("1G-2G-3G", &a, &b), -1);
	ck_assert_int_eq(vmem_parse_range("1G - 2G", &a, &b), -1);
	ck_assert_int_eq(vmem_parse_range("1G..2G", &a, &b), -1);
	ck_assert_int_eq(vmem_parse_range("0-16777216T", &a, &b), -1);
	ck_assert_int_eq(vmem_parse_range("x-2G", &a, &b), -1);
}
END_TEST

START_TEST(duration_parsing)
{
	uint64_t ms = 7;

	ck_assert_int_eq(vmem_parse_duration_ms("100ms", &ms), 0);
	ck_assert_uint_eq(ms, 100);
	ck_assert_int_eq(vmem_parse_duration_ms("2s", &ms), 0);
	ck_assert_uint_eq(ms, 2000);
	ck_assert_int_eq(vmem_parse_duration_ms("0ms", &ms), 0);
	ck_assert_uint_eq(ms, 0);
	ck_assert_int_eq(vmem_parse_duration_ms("0s", &ms), 0);
	ck_assert_uint_eq(ms, 0);
	ck_assert_int_eq(vmem_parse_duration_ms("1500ms", &ms), 0);
	ck_assert_uint_eq(ms, 1500);
	ck_assert_int_eq(vmem_parse_duration_ms("18446744073709551615ms",
						&ms), 0);
	ck_assert_uint_eq(ms, UINT64_MAX);
	ck_assert_int_eq(vmem_parse_duration_ms("18446744073709551s", &ms), 0);
	ck_assert_uint_eq(ms, 18446744073709551000ULL);

	/* the unit is required, and nothing else is a unit */
	static const char *const bad[] = {
		"2", "", "ms", "s", "2 s", " 2s", "2s ", "1.5s", "2m", "2S",
		"2MS", "2sec", "2msec", "-1s", "+1s", "0x10ms", "2h", "2us",
		"18446744073709551616ms", "18446744073709552s",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 7;
		ck_assert_msg(vmem_parse_duration_ms(bad[i], &ms) == -1,
			      "'%s' accepted as %llu ms", bad[i],
			      (unsigned long long)ms);
	}
}
END_TEST

START_TEST(format_size)
{
	static const struct {
		uint64_t v;
		const char *s;
	} t[] = {
		{ 0, "0" },
		{ 1, "1" },
		{ 1023, "1023" },
		{ 1024, "1K" },
		{ 12345, "12345" },
		{ 4096, "4K" },
		{ 1536 * MiB, "1536M" },
		{ 3 * GiB, "3G" },
		{ 1025 * GiB, "1025G" },
		{ TiB, "1T" },
		{ 5 * TiB + 4096, "5368709124K" },
		{ UINT64_MAX - TiB + 1, "16777215T" },
		{ UINT64_MAX, "18446744073709551615" },
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t back;

		vmem_format_size(t[i].v, buf, sizeof(buf));
		ck_assert_str_eq(buf, t[i].s);
		/* what we print, we parse back */
		ck_assert_int_eq(vmem_parse_size(buf, &back), 0);
		ck_assert_uint_eq(back, t[i].v);
	}
	/* a short buffer truncates, never overruns */
	memset(buf, 'x', sizeof(buf));
	vmem_format_size(12345, buf, 3);
	ck_assert_str_eq(buf, "12");
	ck_assert_int_eq(buf[3], 'x');
}
END_TEST

START_TEST(backend_names)
{
	/* The backends vmemfs is built with (vmemfs/backend.c), by name. */
	ck_assert_ptr_nonnull(vmem_backend_table);
	ck_assert_str_eq(vmem_backend_table[0]->name, "direct");
	ck_assert_str_eq(vmem_backend_table[1]->name, "remote-paging");
	ck_assert_ptr_null(vmem_backend_table[2]);
}
END_TEST

/* ---- parsing good configs ------------------------------------------ */

START_TEST(defaults)
{
	struct vmem_config cfg;
	struct vmem_vm *vm;

	parse_ok("\n" MIN, &cfg);
	ck_assert_str_eq(cfg.path, "vm.conf");
	ck_assert_uint_eq(cfg.n_vms, 1);
	vm = &cfg.vms[0];
	ck_assert_str_eq(vm->name, "vm1");
	ck_assert_uint_eq(vm->line, 2);
	ck_assert_str_eq(vm->memory_file, "/dev/shm/vm1.mem");
	ck_assert_uint_eq(vm->memory_file_line, 3);
	ck_assert_uint_eq(vm->ram_size, 0);
	ck_assert(!vm->ram_size_set);
	ck_assert_str_eq(vm->backend, "direct");
	ck_assert_int_eq(vm->layout, VMEM_LAYOUT_FLAT);	/* no qmp */
	ck_assert_ptr_null(vm->qmp);
	ck_assert_uint_eq(vm->chunk_size, 64 * KiB);
	ck_assert(!vm->fetch_merge_off);
	ck_assert_uint_eq(vm->cache_size, 4 * MiB);
	ck_assert_uint_eq(vm->cache_ttl_ms, 100);
	ck_assert_uint_eq(vm->timeout_ms, 2000);
	ck_assert_uint_eq(vm->local_limit, 0);
	ck_assert(!vm->local_limit_set);
	ck_assert_uint_eq(vm->n_subhosts, 0);
	ck_assert_ptr_null(vm->subhosts);
	vmem_config_free(&cfg);
	assert_cfg_empty(&cfg);
}
END_TEST

START_TEST(full_example)
{
	/* The example, with CRLF, tabs and both comment styles. */
	static const char text[] =
		"# vmemtrans example\n"
		"; another comment\n"
		"\n"
		"  [vm1]   # the VM\r\n"
		"memory-file = /dev/shm/vm1.mem      # required\n"
		"ram-size    = 2G                    ; default: file size\n"
		"backend\t=\tdirect\n"
		"chunk-size  = 0x20000\r\n"
		"cache-size  = 8M\n"
		"cache-ttl   = 250ms\n"
		"timeout     = 3s\n"
		"subhost     = nbd://127.0.0.1:10810 1G-2G   # second half\n"
		"subhost     = nbd+unix:///vm1?socket=/run/sub0.sock 0x1000-64M\n"
		"local-limit = 1G\n"
		"\n"
		"[vm-2.test_x]\n"
		"memory-file=/tmp/b\n"
		"backend=remote-paging\n"
		"qmp=/run/vmemtrans/vm2.qmp\n";
	struct vmem_config cfg;
	struct vmem_vm *vm;

	parse_ok(text, &cfg);
	ck_assert_uint_eq(cfg.n_vms, 2);
	vm = &cfg.vms[0];
	ck_assert_str_eq(vm->name, "vm1");
	ck_assert_uint_eq(vm->line, 4);
	ck_assert_str_eq(vm->memory_file, "/dev/shm/vm1.mem");
	ck_assert_uint_eq(vm->ram_size, 2 * GiB);
	ck_assert(vm->ram_size_set);
	ck_assert_uint_eq(vm->ram_size_line, 6);
	ck_assert_str_eq(vm->backend, "direct");
	ck_assert_uint_eq(vm->chunk_size, 128 * KiB);
	ck_assert_uint_eq(vm->cache_size, 8 * MiB);
	ck_assert_uint_eq(vm->cache_ttl_ms, 250);
	ck_assert_uint_eq(vm->timeout_ms, 3000);
	ck_assert_uint_eq(vm->local_limit, GiB);
	ck_assert(vm->local_limit_set);
	ck_assert_uint_eq(vm->local_limit_line, 14);
	ck_assert_uint_eq(vm->n_subhosts, 2);
	/* sorted by start, not by line */
	ck_assert_str_eq(vm->subhosts[0].uri,
			 "nbd+unix:///vm1?socket=/run/sub0.sock");
	ck_assert_uint_eq(vm->subhosts[0].start, 4096);
	ck_assert_uint_eq(vm->subhosts[0].end, 64 * MiB);
	ck_assert_uint_eq(vm->subhosts[0].line, 13);
	ck_assert_str_eq(vm->subhosts[1].uri, "nbd://127.0.0.1:10810");
	ck_assert_uint_eq(vm->subhosts[1].start, GiB);
	ck_assert_uint_eq(vm->subhosts[1].end, 2 * GiB);
	ck_assert_uint_eq(vm->subhosts[1].line, 12);

	vm = &cfg.vms[1];
	ck_assert_str_eq(vm->name, "vm-2.test_x");
	ck_assert_uint_eq(vm->line, 16);
	ck_assert_str_eq(vm->memory_file, "/tmp/b");
	ck_assert_str_eq(vm->backend, "remote-paging");
	ck_assert_str_eq(vm->qmp, "/run/vmemtrans/vm2.qmp");
	ck_assert_int_eq(vm->layout, VMEM_LAYOUT_AUTO);	/* qmp: auto */
	ck_assert_uint_eq(vm->chunk_size, 64 * KiB);
	ck_assert_uint_eq(vm->n_subhosts, 0);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(subhosts_sorted)
{
	struct vmem_config cfg;
	struct vmem_vm *vm;
	/* five adjacent ranges in scrambled order; touching is not
	 * overlapping because END is exclusive */
	static const uint64_t starts[] = { 3, 0, 4, 1, 2 };
	char text[1024];
	int n;

	n = snprintf(text, sizeof(text), MIN);
	for (int i = 0; i < 5; i++)
		n += snprintf(text + n, sizeof(text) - n,
			      "subhost = nbd://h%d %lluG-%lluG\n", i,
			      (unsigned long long)starts[i],
			      (unsigned long long)starts[i] + 1);
	parse_ok(text, &cfg);
	vm = &cfg.vms[0];
	ck_assert_uint_eq(vm->n_subhosts, 5);
	for (unsigned int i = 0; i < 5; i++) {
		char uri[16];
		int from = -1;

		for (int j = 0; j < 5; j++)
			if (starts[j] == i)
				from = j;
		snprintf(uri, sizeof(uri), "nbd://h%d", from);
		ck_assert_str_eq(vm->subhosts[i].uri, uri);
		ck_assert_uint_eq(vm->subhosts[i].start, i * GiB);
		ck_assert_uint_eq(vm->subhosts[i].end, (i + 1) * GiB);
		ck_assert_uint_eq(vm->subhosts[i].line, 3 + from);
	}
	vmem_config_free(&cfg);
}
END_TEST

static const char *const good_uris[] = {
	"nbd://127.0.0.1:10809",
	"nbd://localhost",
	"nbd://host.example/export",
	"nbd://host:1/",
	"nbd://host:65535/a/b",
	"nbd://[::1]:10809/export",
	"nbd://[fe80::1]",
	"nbd://h?tls=off",
	"nbd+unix:///export?socket=/tmp/s.sock",
	"nbd+unix:///?socket=/tmp/s.sock",
	"nbd+unix:///e?tls=off&socket=/x",
};

START_TEST(uri_good)
{
	struct vmem_config cfg;
	char text[512];

	snprintf(text, sizeof(text), MIN "subhost = %s 0-4K\n",
		 good_uris[_i]);
	parse_ok(text, &cfg);
	ck_assert_str_eq(cfg.vms[0].subhosts[0].uri, good_uris[_i]);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(cache_default_follows_chunk)
{
	struct vmem_config cfg;

	/* A 16M chunk with the 4M default cache would be refused for a key
	 * the user never wrote; the default grows to one chunk instead. */
	parse_ok(MIN "chunk-size = 16M\n", &cfg);
	ck_assert_uint_eq(cfg.vms[0].cache_size, 16 * MiB);
	vmem_config_free(&cfg);
	parse_ok(MIN "chunk-size = 1M\n", &cfg);
	ck_assert_uint_eq(cfg.vms[0].cache_size, 4 * MiB);
	vmem_config_free(&cfg);
	parse_ok(MIN "chunk-size = 16M\ncache-size = 0\n", &cfg);
	ck_assert_uint_eq(cfg.vms[0].cache_size, 0);
	vmem_config_free(&cfg);
	parse_ok(MIN "cache-size = 64K\n", &cfg);	/* == chunk: fine */
	ck_assert_uint_eq(cfg.vms[0].cache_size, 64 * KiB);
	vmem_config_free(&cfg);
	parse_ok(MIN "chunk-size = 4K\ncache-size = 4K\ncache-ttl = 0ms\n",
		 &cfg);
	ck_assert_uint_eq(cfg.vms[0].chunk_size, 4 * KiB);
	ck_assert_uint_eq(cfg.vms[0].cache_ttl_ms, 0);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(ranges_at_ram_end)
{
	struct vmem_config cfg;

	/* ram-size after the subhost line: checked once the section ends */
	parse_ok(MIN "subhost = nbd://h 1G-2G\nram-size = 2G\n"
		 "local-limit = 2G\n", &cfg);
	ck_assert_uint_eq(cfg.vms[0].subhosts[0].end, 2 * GiB);
	ck_assert_uint_eq(cfg.vms[0].local_limit, 2 * GiB);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(empty_texts)
{
	struct vmem_config cfg;

	parse_ok("", &cfg);
	ck_assert_uint_eq(cfg.n_vms, 0);
	vmem_config_free(&cfg);
	parse_ok("# nothing\n\n  ; here\n", &cfg);
	ck_assert_uint_eq(cfg.n_vms, 0);
	vmem_config_free(&cfg);
	/* last line without a newline */
	parse_ok("[a]\nmemory-file = /x", &cfg);
	ck_assert_str_eq(cfg.vms[0].memory_file, "/x");
	vmem_config_free(&cfg);
}
END_TEST

/* ---- every parse error --------------------------------------------- */

START_TEST(err_structure)
{
	expect_err("memory-file = /x\n[vm1]\n",
		   "vm.conf:1: key 'memory-file' outside any [section]; "
		   "start with [vmname]");
	expect_err("\n\n[vm1]\nmemory-file = /x\nchunk_size = 64K\n",
		   "vm.conf:5: unknown key 'chunk_size'");
	expect_err(MIN "Chunk-Size = 64K\n",
		   "vm.conf:3: unknown key 'Chunk-Size'");
	expect_err("[a]\nmemory-file=/x\n[b]\nmemory-file=/y\n[a]\n"
		   "memory-file=/z\n",
		   "vm.conf:5: duplicate section 'a' (first on line 1)");
	expect_err(MIN "chunk-size = 64K\ncache-size=8M\nchunk-size = 64K\n",
		   "vm.conf:5: duplicate key 'chunk-size' (already set on line 3)");
	expect_err(MIN "memory-file = /y\n",
		   "vm.conf:3: duplicate key 'memory-file' (already set on line 2)");
	expect_err(MIN "ram-size = 1G\nram-size = 1G\n",
		   "vm.conf:4: duplicate key 'ram-size' (already set on line 3)");
	expect_err("[vm1]\nmemory-file /x\n",
		   "vm.conf:2: expected 'key = value' or '[section]', "
		   "found 'memory-file /x'");
	expect_err(MIN "= 5\n", "vm.conf:3: missing key before '= 5'");
	expect_err(MIN "chunk-size =   # nothing\n",
		   "vm.conf:3: key 'chunk-size' has no value");
	expect_err("[vm1]\nmemory-file =\n",
		   "vm.conf:2: key 'memory-file' has no value");
}
END_TEST

START_TEST(err_sections)
{
	expect_err("[vm1\n", "vm.conf:1: section header '[vm1' lacks a closing ']'");
	expect_err("[]\n", "vm.conf:1: empty section name '[]'");
	expect_err("[  ]\n", "vm.conf:1: empty section name '[]'");
	expect_err("[vm 1]\n",
		   "vm.conf:1: section name 'vm 1' may only contain letters, "
		   "digits, '_', '.' and '-'");
	expect_err("[vm/1]\n",
		   "vm.conf:1: section name 'vm/1' may only contain letters, "
		   "digits, '_', '.' and '-'");
	expect_err("[vm1] junk\n",
		   "vm.conf:1: unexpected 'junk' after section header [vm1]");
	/* the required key, reported at the header of its section */
	expect_err("# c\n[vm1]\nchunk-size = 64K\n",
		   "vm.conf:2: VM 'vm1' has no memory-file (it is required, "
		   "or domain = NAME for a libvirt domain)");
	expect_err("[vm1]\n[vm2]\nmemory-file = /x\n",
		   "vm.conf:1: VM 'vm1' has no memory-file (it is required, "
		   "or domain = NAME for a libvirt domain)");
	expect_err(MIN "\n[vm2]\n",
		   "vm.conf:4: VM 'vm2' has no memory-file (it is required, "
		   "or domain = NAME for a libvirt domain)");
}
END_TEST

START_TEST(err_values)
{
	/* sizes */
	expect_err(MIN "chunk-size = 3K\n",
		   "vm.conf:3: chunk-size '3K' is not a power of two between 4K and 16M");
	expect_err(MIN "chunk-size = 2K\n",
		   "vm.conf:3: chunk-size '2K' is not a power of two between 4K and 16M");
	expect_err(MIN "chunk-size = 32M\n",
		   "vm.conf:3: chunk-size '32M' is not a power of two between 4K and 16M");
	expect_err(MIN "chunk-size = 0\n",
		   "vm.conf:3: chunk-size '0' is not a power of two between 4K and 16M");
	expect_err(MIN "chunk-size = 96K\n",
		   "vm.conf:3: chunk-size '96K' is not a power of two between 4K and 16M");
	expect_err(MIN "chunk-size = abc\n",
		   "vm.conf:3: chunk-size 'abc' is not a size (e.g. 4096, 64K, 0x10000)");
	expect_err(MIN "ram-size = 16777216T\n",
		   "vm.conf:3: ram-size '16777216T' is above the largest supported value 4096T");
	expect_err(MIN "ram-size = 2 G\n",
		   "vm.conf:3: ram-size '2 G' is not a size (e.g. 4096, 64K, 0x10000)");
	expect_err(MIN "ram-size = 0\n",
		   "vm.conf:3: ram-size '0' must be greater than zero");
	expect_err(MIN "ram-size = 1000\n",
		   "vm.conf:3: ram-size '1000' is not a multiple of 4K");
	expect_err(MIN "cache-size = -1\n",
		   "vm.conf:3: cache-size '-1' is not a size (e.g. 4096, 64K, 0x10000)");
	expect_err(MIN "local-limit = 0x\n",
		   "vm.conf:3: local-limit '0x' is not a size (e.g. 4096, 64K, 0x10000)");
	expect_err(MIN "local-limit = 0\n",
		   "vm.conf:3: local-limit '0' must be greater than zero");
	expect_err(MIN "local-limit = 1000\n",
		   "vm.conf:3: local-limit '1000' is not a multiple of 4K");
	expect_err(MIN "local-limit = 3G\nram-size = 2G\n",
		   "vm.conf:3: local-limit '3G' is larger than ram-size 2G");

	/* enum */
	expect_err(MIN "backend = Direct\n",
		   "vm.conf:3: backend 'Direct' is not one of: direct, remote-paging");
	expect_err(MIN "backend = remote-paging\n",
		   "vm.conf:3: backend 'remote-paging' needs qmp = PATH (the VM's QMP socket)");
	expect_err(MIN "qmp = run/vm1.qmp\n",
		   "vm.conf:3: qmp 'run/vm1.qmp' is not an absolute path to a unix socket");
	expect_err(MIN "fetch-merge = no\n",
		   "vm.conf:3: fetch-merge 'no' is not one of: on, off");
	expect_err(MIN "layout = gpa\n",
		   "vm.conf:3: layout 'gpa' is not one of: flat, auto");
	expect_err(MIN "layout = auto\n",
		   "vm.conf:3: layout 'auto' needs qmp = PATH (QEMU's memory map comes from it)");
	expect_err(MIN "qmp = /a\nqmp = /b\n",
		   "vm.conf:4: duplicate key 'qmp' (already set on line 3)");

	/* durations */
	expect_err(MIN "cache-ttl = soon\n",
		   "vm.conf:3: cache-ttl 'soon' is not a duration (e.g. 500ms, 2s)");
	expect_err(MIN "cache-ttl = 100\n",
		   "vm.conf:3: cache-ttl '100' is not a duration (e.g. 500ms, 2s)");
	expect_err(MIN "timeout = 0s\n",
		   "vm.conf:3: timeout '0s' must be greater than zero");
	expect_err(MIN "timeout = 0ms\n",
		   "vm.conf:3: timeout '0ms' must be greater than zero");
	expect_err(MIN "timeout = 99999999999999999999ms\n",
		   "vm.conf:3: timeout '99999999999999999999ms' is above the "
		   "largest supported value 3600s");
	expect_err(MIN "timeout = 1.5s\n",
		   "vm.conf:3: timeout '1.5s' is not a duration (e.g. 500ms, 2s)");

	/* cache must hold a chunk, whatever order the keys come in */
	expect_err(MIN "cache-size = 32K\n",
		   "vm.conf:3: cache-size '32K' is smaller than chunk-size 64K "
		   "(use 0 for no cache, or at least 64K)");
	expect_err(MIN "cache-size = 0x10000\nchunk-size = 128K\n",
		   "vm.conf:3: cache-size '0x10000' is smaller than chunk-size 128K "
		   "(use 0 for no cache, or at least 128K)");
}
END_TEST

START_TEST(err_subhosts)
{
	expect_err(MIN "subhost = nbd://h\n",
		   "vm.conf:3: subhost 'nbd://h' is not 'URI START-END [OPTION=VALUE...]' "
		   "(e.g. nbd://127.0.0.1:10809 1G-2G)");
	expect_err(MIN "subhost = nbd://h 1G-2G extra\n",
		   "vm.conf:3: subhost 'nbd://h 1G-2G extra' is not 'URI START-END [OPTION=VALUE...]' "
		   "(e.g. nbd://127.0.0.1:10809 1G-2G)");
	/* nbds:// parses (TLS: tests/check_tls.c); its host is checked. */
	expect_err(MIN "subhost = nbds://:10809 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbds://:10809' has no host (nbd[s]://[USER@]HOST[:PORT][/EXPORT])");
	expect_err(MIN "subhost = nbds+unix:///x 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbds+unix:///x' lacks ?socket=PATH");
	expect_err(MIN "subhost = http://h 1G-2G\n",
		   "vm.conf:3: subhost URI 'http://h' is not an nbd://, nbds://, nbd+unix:// or nbds+unix:// URI");
	expect_err(MIN "subhost = 127.0.0.1:10809 1G-2G\n",
		   "vm.conf:3: subhost URI '127.0.0.1:10809' is not an nbd://, nbds://, nbd+unix:// or nbds+unix:// URI");
	expect_err(MIN "subhost = nbd:// 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd://' has no host (nbd[s]://[USER@]HOST[:PORT][/EXPORT])");
	expect_err(MIN "subhost = nbd://:10809 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd://:10809' has no host (nbd[s]://[USER@]HOST[:PORT][/EXPORT])");
	expect_err(MIN "subhost = nbd://h: 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd://h:' has a bad port (1..65535)");
	expect_err(MIN "subhost = nbd://h:65536 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd://h:65536' has a bad port (1..65535)");
	expect_err(MIN "subhost = nbd://h:0 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd://h:0' has a bad port (1..65535)");
	expect_err(MIN "subhost = nbd://h:80x 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd://h:80x' has a bad port (1..65535)");
	expect_err(MIN "subhost = nbd://[::1 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd://[::1' has a malformed [IPv6] host");
	expect_err(MIN "subhost = nbd://[::1]x 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd://[::1]x' has junk after the host");
	expect_err(MIN "subhost = nbd+unix://h/e?socket=/s 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd+unix://h/e?socket=/s' must have "
		   "an empty host (nbd[s]+unix:///EXPORT?socket=PATH)");
	expect_err(MIN "subhost = nbd+unix:///e 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd+unix:///e' lacks ?socket=PATH");
	expect_err(MIN "subhost = nbd+unix:///e?socket= 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd+unix:///e?socket=' lacks ?socket=PATH");
	expect_err(MIN "subhost = nbd+unix:///e?sock=/s 1G-2G\n",
		   "vm.conf:3: subhost URI 'nbd+unix:///e?sock=/s' lacks ?socket=PATH");

	expect_err(MIN "subhost = nbd://h 2G-1G\n",
		   "vm.conf:3: subhost range '2G-1G' is empty (START must be below END)");
	expect_err(MIN "subhost = nbd://h 1G-1G\n",
		   "vm.conf:3: subhost range '1G-1G' is empty (START must be below END)");
	expect_err(MIN "subhost = nbd://h 1G\n",
		   "vm.conf:3: subhost range '1G' is not START-END (e.g. 1G-2G)");
	expect_err(MIN "subhost = nbd://h 1G-2X\n",
		   "vm.conf:3: subhost range '1G-2X' is not START-END (e.g. 1G-2G)");
	expect_err(MIN "subhost = nbd://h 1G-16777216T\n",
		   "vm.conf:3: subhost range '1G-16777216T' ends above the largest "
		   "supported ram-size 4096T");
	expect_err(MIN "subhost = nbd://h 1G-0x40000800\n",
		   "vm.conf:3: subhost range '1G-0x40000800' is not 4K-aligned");
	expect_err(MIN "subhost = nbd://h 512-1G\n",
		   "vm.conf:3: subhost range '512-1G' is not 4K-aligned");

	/* the issue's own example, lines 8 and 9 */
	expect_err(MIN "\n\n\n\n\n"
		   "subhost = nbd://a 1536M-3G\n"
		   "subhost = nbd://b 1G-2G\n",
		   "vm.conf:9: subhost range 1G-2G overlaps line 8 (1536M-3G)");
	/* containment in both directions, and a one-page overlap */
	expect_err(MIN "subhost = nbd://a 0-4G\nsubhost = nbd://b 1G-2G\n",
		   "vm.conf:4: subhost range 1G-2G overlaps line 3 (0-4G)");
	expect_err(MIN "subhost = nbd://a 1G-2G\nsubhost = nbd://b 0-4G\n",
		   "vm.conf:4: subhost range 0-4G overlaps line 3 (1G-2G)");
	expect_err(MIN "subhost = nbd://a 1G-2G\nsubhost = nbd://b 8G-9G\n"
		   "subhost = nbd://c 0x7ffff000-3G\n",
		   "vm.conf:5: subhost range 0x7ffff000-3G overlaps line 3 (1G-2G)");

	/* inside ram-size when that is given, whatever the key order */
	expect_err(MIN "subhost = nbd://a 0-1G\nsubhost = nbd://b 1G-3G\n"
		   "ram-size = 2G\n",
		   "vm.conf:4: subhost range 1G-3G ends beyond ram-size 2G");
}
END_TEST

START_TEST(err_second_vm_discards_all)
{
	struct vmem_config cfg;
	char err[256];

	memset(&cfg, 0, sizeof(cfg));
	ck_assert_int_eq(vmem_config_parse(MIN "[vm2]\nmemory-file = /y\n"
					   "timeout = never\n", "/etc/x.conf",
					   &cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/etc/x.conf:5: timeout 'never' is not a "
			 "duration (e.g. 500ms, 2s)");
	assert_cfg_empty(&cfg);
	vmem_config_free(&cfg);		/* harmless on an empty config */

	/* A tiny buffer truncates, it never overflows. */
	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(vmem_config_parse("[", "vm.conf", &cfg, err, 8), -1);
	ck_assert_str_eq(err, "vm.conf");
	ck_assert_int_eq(err[8], 'x');
	ck_assert_int_eq(vmem_config_parse("[", "vm.conf", &cfg, NULL, 0), -1);
}
END_TEST

/* ---- find ---------------------------------------------------------- */

START_TEST(find)
{
	struct vmem_config cfg;
	char err[256];

	parse_ok(MIN "[vm2]\nmemory-file = /y\n", &cfg);
	ck_assert_ptr_eq(vmem_config_find(&cfg, "vm1", err, sizeof(err)),
			 &cfg.vms[0]);
	ck_assert_ptr_eq(vmem_config_find(&cfg, "vm2", err, sizeof(err)),
			 &cfg.vms[1]);
	ck_assert_ptr_null(vmem_config_find(&cfg, "x", err, sizeof(err)));
	ck_assert_str_eq(err, "vm.conf: no VM named 'x' (have: vm1, vm2)");
	ck_assert_ptr_null(vmem_config_find(&cfg, "VM1", err, sizeof(err)));
	ck_assert_str_eq(err, "vm.conf: no VM named 'VM1' (have: vm1, vm2)");
	ck_assert_ptr_null(vmem_config_find(&cfg, NULL, err, sizeof(err)));
	ck_assert_str_eq(err,
			 "vm.conf: several VMs (vm1, vm2): choose one with --vm");
	vmem_config_free(&cfg);

	parse_ok(MIN, &cfg);
	ck_assert_ptr_eq(vmem_config_find(&cfg, NULL, err, sizeof(err)),
			 &cfg.vms[0]);
	ck_assert_ptr_eq(vmem_config_find(&cfg, "vm1", err, sizeof(err)),
			 &cfg.vms[0]);
	ck_assert_ptr_null(vmem_config_find(&cfg, "vm2", err, sizeof(err)));
	ck_assert_str_eq(err, "vm.conf: no VM named 'vm2' (have: vm1)");
	vmem_config_free(&cfg);

	parse_ok("# empty\n", &cfg);
	ck_assert_ptr_null(vmem_config_find(&cfg, NULL, err, sizeof(err)));
	ck_assert_str_eq(err, "vm.conf: no VM sections");
	ck_assert_ptr_null(vmem_config_find(&cfg, "vm1", err, sizeof(err)));
	ck_assert_str_eq(err, "vm.conf: no VM named 'vm1' (have: none)");
	vmem_config_free(&cfg);
}
END_TEST

/* ---- load ---------------------------------------------------------- */

START_TEST(load)
{
	struct vmem_config cfg;
	char path[256], want[512], err[512];
	static const char good[] = "[vm1]\nmemory-file = /x\nram-size = 1G\n";

	snprintf(path, sizeof(path), "%s/none.conf", tmpdir);
	memset(&cfg, 0x5a, sizeof(cfg));
	ck_assert_int_eq(vmem_config_load(path, &cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	ck_assert_str_eq(err, want);
	assert_cfg_empty(&cfg);

	ck_assert_int_eq(vmem_config_load(tmpdir, &cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: Is a directory", tmpdir);
	ck_assert_str_eq(err, want);
	assert_cfg_empty(&cfg);

	snprintf(path, sizeof(path), "%s/good.conf", tmpdir);
	write_text(path, good, strlen(good));
	ck_assert_int_eq(vmem_config_load(path, &cfg, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.path, path);
	ck_assert_uint_eq(cfg.n_vms, 1);
	ck_assert_uint_eq(cfg.vms[0].ram_size, GiB);
	vmem_config_free(&cfg);

	/* parse errors carry the path given to load */
	snprintf(path, sizeof(path), "%s/bad.conf", tmpdir);
	write_text(path, "[vm1]\nmemory-file = /x\nram-size = lots\n", 38);
	ck_assert_int_eq(vmem_config_load(path, &cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want),
		 "%s:3: ram-size 'lots' is not a size (e.g. 4096, 64K, 0x10000)",
		 path);
	ck_assert_str_eq(err, want);
	assert_cfg_empty(&cfg);

	snprintf(path, sizeof(path), "%s/nul.conf", tmpdir);
	write_text(path, "[vm1]\nmemory-file = /x\0\n", 24);
	ck_assert_int_eq(vmem_config_load(path, &cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: contains a NUL byte; not a text file",
		 path);
	ck_assert_str_eq(err, want);
	assert_cfg_empty(&cfg);
}
END_TEST

START_TEST(load_size_limit)
{
	struct vmem_config cfg;
	char path[256], want[512], err[512];
	size_t lim = 1 << 20;
	char *big = malloc(lim + 1);

	ck_assert_ptr_nonnull(big);
	/* exactly 1 MiB: a config followed by comment padding, accepted */
	memset(big, '#', lim + 1);
	memcpy(big, "[vm1]\nmemory-file = /x\n", 23);
	for (size_t i = 100; i < lim; i += 100)
		big[i] = '\n';
	snprintf(path, sizeof(path), "%s/big.conf", tmpdir);
	write_text(path, big, lim);
	ck_assert_int_eq(vmem_config_load(path, &cfg, err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.n_vms, 1);
	vmem_config_free(&cfg);

	/* one byte more: refused */
	write_text(path, big, lim + 1);
	ck_assert_int_eq(vmem_config_load(path, &cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want),
		 "%s: file is larger than 1 MiB; refusing to read it", path);
	ck_assert_str_eq(err, want);
	assert_cfg_empty(&cfg);
	free(big);
}
END_TEST

/* The example shipped (and installed) as vmemtrans.conf must stay valid. */
START_TEST(shipped_example)
{
	struct vmem_config cfg;
	char path[4096], err[512] = "";
	const char *slash = strrchr(__FILE__, '/');
	struct vmem_vm *vm;

	/* __FILE__ is tests/check_config.c as make passed it */
	snprintf(path, sizeof(path), "%.*s/../vmemtrans.conf",
		 slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
	ck_assert_msg(vmem_config_load(path, &cfg, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_uint_eq(cfg.n_vms, 3);
	vm = vmem_config_find(&cfg, "vm1", err, sizeof(err));
	ck_assert_ptr_nonnull(vm);
	ck_assert_uint_eq(vm->ram_size, 2 * GiB);
	ck_assert_uint_eq(vm->n_subhosts, 2);
	ck_assert_uint_eq(vm->subhosts[0].start, 512 * MiB);
	ck_assert_uint_eq(vm->subhosts[1].end, 2 * GiB);
	vm = vmem_config_find(&cfg, "vm2", err, sizeof(err));
	ck_assert_ptr_nonnull(vm);
	ck_assert_str_eq(vm->backend, "remote-paging");
	vm = vmem_config_find(&cfg, "vm3", err, sizeof(err));
	ck_assert_ptr_nonnull(vm);
	ck_assert_str_eq(vm->domain, "vm3");
	ck_assert_ptr_null(vm->memory_file);
	vmem_config_free(&cfg);
}
END_TEST

/* ---- resolve ------------------------------------------------------- */

/* Parse a config whose memory-file is @file, optionally with @extra keys,
 * then resolve it.  Returns resolve's result; @err gets the message. */
static int parse_resolve(struct vmem_config *cfg, const char *file,
			 const char *extra, char *err, size_t errlen)
{
	char text[1024];

	/* tls = off last: these sub-hosts are names (not loopback), and
	 * the line numbers of the messages stay those of @extra. */
	snprintf(text, sizeof(text), "[vm1]\nmemory-file = %s\n%stls = off\n",
		 file, extra ? extra : "");
	parse_ok(text, cfg);
	return vmem_vm_resolve(&cfg->vms[0], cfg->path, err, errlen);
}

START_TEST(resolve_ok)
{
	struct vmem_config cfg;
	char err[512] = "";
	const char *f = make_file("vm.mem", 2 * GiB);
	struct stat st;
	struct vmem_vm *vm;

	/* the file really is sparse: resolve must not need its data */
	ck_assert_int_eq(stat(f, &st), 0);
	ck_assert_int_lt(st.st_blocks, 16);

	ck_assert_int_eq(parse_resolve(&cfg, f, "subhost = nbd://h 1G-2G\n",
				       err, sizeof(err)), 0);
	vm = &cfg.vms[0];
	ck_assert_uint_eq(vm->ram_size, 2 * GiB);
	ck_assert(!vm->ram_size_set);
	ck_assert_uint_eq(vm->local_limit, 2 * GiB);
	ck_assert(!vm->local_limit_set);
	/* resolving twice gives the same answer */
	ck_assert_int_eq(vmem_vm_resolve(vm, cfg.path, err, sizeof(err)), 0);
	ck_assert_uint_eq(vm->ram_size, 2 * GiB);
	vmem_config_free(&cfg);

	/* given ram-size and local-limit win over the file size */
	ck_assert_int_eq(parse_resolve(&cfg, f, "ram-size = 4G\n"
				       "local-limit = 1G\n"
				       "subhost = nbd://h 2G-4G\n",
				       err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.vms[0].ram_size, 4 * GiB);
	ck_assert_uint_eq(cfg.vms[0].local_limit, GiB);
	vmem_config_free(&cfg);

	/* an empty file is fine when ram-size says how big the VM is */
	f = make_file("empty.mem", 0);
	ck_assert_int_eq(parse_resolve(&cfg, f, "ram-size = 1M\n",
				       err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.vms[0].ram_size, MiB);
	vmem_config_free(&cfg);
}
END_TEST

/* resolve() must fail with "vm.conf:LINE: " + @msg (with %s = @file) and
 * leave the VM as parsed. */
static void expect_resolve_err(const char *file, const char *extra,
			       const char *msgfmt)
{
	struct vmem_config cfg;
	char err[512] = "", want[512];

	snprintf(want, sizeof(want), msgfmt, file);
	ck_assert_int_eq(parse_resolve(&cfg, file, extra, err, sizeof(err)),
			 -1);
	ck_assert_str_eq(err, want);
	if (!cfg.vms[0].ram_size_set)
		ck_assert_uint_eq(cfg.vms[0].ram_size, 0);
	if (!cfg.vms[0].local_limit_set)
		ck_assert_uint_eq(cfg.vms[0].local_limit, 0);
	vmem_config_free(&cfg);
}

START_TEST(resolve_errors)
{
	char path[256];
	const char *f;

	snprintf(path, sizeof(path), "%s/missing.mem", tmpdir);
	expect_resolve_err(path, NULL,
			   "vm.conf:2: memory-file '%s': No such file or directory");
	expect_resolve_err(tmpdir, NULL,
			   "vm.conf:2: memory-file '%s' is not a regular file");
	expect_resolve_err("/dev/null", NULL,
			   "vm.conf:2: memory-file '%s' is not a regular file");

	f = make_file("zero.mem", 0);
	expect_resolve_err(f, NULL,
			   "vm.conf:2: memory-file '%s' is empty and no "
			   "ram-size is given");
	f = make_file("odd.mem", 5000);
	expect_resolve_err(f, "\n",
			   "vm.conf:2: memory-file '%s' size 5000 is not a "
			   "multiple of 4K; set ram-size");

	f = make_file("1g.mem", GiB);
	expect_resolve_err(f, "subhost = nbd://h 0-4K\n"
			   "subhost = nbd://h 512M-2G\n",
			   "vm.conf:4: subhost range 512M-2G ends beyond "
			   "ram-size 1G (the size of memory-file)");
	expect_resolve_err(f, "# pad\nlocal-limit = 2G\n",
			   "vm.conf:4: local-limit '2G' is larger than "
			   "ram-size 1G (the size of memory-file)");
}
END_TEST

/* A VM that is not started yet: its memory file is only a warning. */
START_TEST(resolve_unstarted)
{
	struct vmem_config cfg;
	char path[256], err[512] = "", want[512];
	const char *f;

	snprintf(path, sizeof(path), "%s/later.mem", tmpdir);
	/* no ram-size: nothing to check the ranges against yet */
	snprintf(want, sizeof(want), "[vm1]\nmemory-file = %s\n"
		 "subhost = nbd://h 1G-2G tls=off\n", path);
	parse_ok(want, &cfg);
	ck_assert_int_eq(vmem_vm_resolve_unstarted(&cfg.vms[0], cfg.path, err,
						   sizeof(err)), 1);
	snprintf(want, sizeof(want), "vm.conf:2: memory-file '%s' does not "
		 "exist yet (VM not started?); ram-size is its size, so "
		 "ranges are checked when mounting", path);
	ck_assert_str_eq(err, want);
	ck_assert_uint_eq(cfg.vms[0].ram_size, 0);
	ck_assert_uint_eq(cfg.vms[0].local_limit, 0);
	/* mounting still refuses it */
	ck_assert_int_eq(vmem_vm_resolve(&cfg.vms[0], cfg.path, err,
					 sizeof(err)), -1);
	snprintf(want, sizeof(want), "vm.conf:2: memory-file '%s': No such "
		 "file or directory", path);
	ck_assert_str_eq(err, want);
	vmem_config_free(&cfg);

	/* with ram-size: resolved against it, then the warning */
	snprintf(want, sizeof(want), "[vm1]\nmemory-file = %s\n"
		 "ram-size = 2G\nsubhost = nbd://h 1G-2G tls=off\n", path);
	parse_ok(want, &cfg);
	ck_assert_int_eq(vmem_vm_resolve_unstarted(&cfg.vms[0], cfg.path, err,
						   sizeof(err)), 1);
	snprintf(want, sizeof(want), "vm.conf:2: memory-file '%s' does not "
		 "exist yet (VM not started?); checked against ram-size", path);
	ck_assert_str_eq(err, want);
	ck_assert_uint_eq(cfg.vms[0].ram_size, 2 * GiB);
	ck_assert_uint_eq(cfg.vms[0].local_limit, 2 * GiB);
	vmem_config_free(&cfg);

	/* only "does not exist" is the VM not started: ENOTDIR is an error */
	f = make_file("plain", 0);
	snprintf(path, sizeof(path), "%s/x.mem", f);
	snprintf(want, sizeof(want), "[vm1]\nmemory-file = %s\n"
		 "ram-size = 1G\n", path);
	parse_ok(want, &cfg);
	ck_assert_int_eq(vmem_vm_resolve_unstarted(&cfg.vms[0], cfg.path, err,
						   sizeof(err)), -1);
	snprintf(want, sizeof(want), "vm.conf:2: memory-file '%s': Not a "
		 "directory", path);
	ck_assert_str_eq(err, want);
	vmem_config_free(&cfg);

	/* a file that exists: the same as vmem_vm_resolve, no warning */
	f = make_file("now.mem", GiB);
	ck_assert_int_eq(parse_resolve(&cfg, f, NULL, err, sizeof(err)), 0);
	vmem_config_free(&cfg);
	snprintf(want, sizeof(want), "[vm1]\nmemory-file = %s\n", f);
	parse_ok(want, &cfg);
	ck_assert_int_eq(vmem_vm_resolve_unstarted(&cfg.vms[0], cfg.path, err,
						   sizeof(err)), 0);
	ck_assert_uint_eq(cfg.vms[0].ram_size, GiB);
	vmem_config_free(&cfg);
}
END_TEST

/* kernel-btf and kernel-map: absolute paths, checked at resolve. */
START_TEST(kernel_files)
{
	struct vmem_config cfg;
	char err[512] = "", extra[600], missing[300];
	const char *f = make_file("k.mem", MiB);
	const char *btf = make_file("vmlinux", 4096);
	const char *map = make_file("System.map", 4096);

	snprintf(extra, sizeof(extra), "kernel-btf = %s\nkernel-map = %s\n",
		 btf, map);
	ck_assert_int_eq(parse_resolve(&cfg, f, extra, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.vms[0].kernel_btf, btf);
	ck_assert_str_eq(cfg.vms[0].kernel_map, map);
	vmem_config_free(&cfg);
	ck_assert_int_eq(parse_resolve(&cfg, f, NULL, err, sizeof(err)), 0);
	ck_assert_ptr_null(cfg.vms[0].kernel_btf);
	ck_assert_ptr_null(cfg.vms[0].kernel_map);
	vmem_config_free(&cfg);

	expect_err(MIN "kernel-btf = vmlinux\n",
		   "vm.conf:3: kernel-btf 'vmlinux' is not an absolute path");
	expect_err(MIN "kernel-map = ./System.map\n",
		   "vm.conf:3: kernel-map './System.map' is not an absolute "
		   "path");
	expect_err(MIN "kernel-map = /a\nkernel-map = /b\n",
		   "vm.conf:4: duplicate key 'kernel-map' (already set on "
		   "line 3)");

	snprintf(missing, sizeof(missing), "%s/no-such-vmlinux", tmpdir);
	snprintf(extra, sizeof(extra), "# pad\nkernel-btf = %s\n", missing);
	ck_assert_int_eq(parse_resolve(&cfg, f, extra, err, sizeof(err)), -1);
	snprintf(extra, sizeof(extra), "vm.conf:4: kernel-btf '%s': No such "
		 "file or directory", missing);
	ck_assert_str_eq(err, extra);
	vmem_config_free(&cfg);
	snprintf(extra, sizeof(extra), "kernel-map = %s\n", missing);
	ck_assert_int_eq(parse_resolve(&cfg, f, extra, err, sizeof(err)), -1);
	snprintf(extra, sizeof(extra), "vm.conf:3: kernel-map '%s': No such "
		 "file or directory", missing);
	ck_assert_str_eq(err, extra);
	vmem_config_free(&cfg);
}
END_TEST

/* ---- the real vmemfs binary ---------------------------------------- */

/* Run build/vmemfs (or $VMEMFS) with @args; returns its exit status. */
static int run_vmemfs(const char *const *args, char *out, size_t outlen,
		      char *errout, size_t errlen)
{
	char *argv[16];
	int n = 0, rc;

	argv[n++] = (char *)vt_vmemfs_bin();
	while (*args && n < 15)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	rc = vt_run(argv, out, outlen, errout, errlen, 10000);
	ck_assert_msg(rc >= 0, "could not run %s: %s", argv[0], errout);
	return rc;
}

/*
 * The README's promise: the shipped example passes --check-config on a
 * machine with no VM running (the memory files do not exist yet).
 */
START_TEST(check_config_shipped)
{
	char path[1024], out[8192], errout[4096], want[1536];
	const char *slash = strrchr(__FILE__, '/');
	static const char *const files[] = {
		"/dev/shm/vm1.mem", "/dev/shm/vm2.mem",
	};
	int rc;

	snprintf(path, sizeof(path), "%.*s/../vmemtrans.conf",
		 slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
	rc = run_vmemfs((const char *[]){ "--check-config", "-c", path, NULL },
			out, sizeof(out), errout, sizeof(errout));
	ck_assert_msg(rc == 0, "exit %d, stderr:\n%s", rc, errout);
	ck_assert_msg(strstr(out, "[vm1]\n") && strstr(out, "[vm2]\n"),
		      "settings not printed:\n%s", out);
	for (size_t i = 0; i < 2; i++) {
		const char *w;

		if (access(files[i], F_OK) == 0)
			continue;	/* a VM of that name runs here */
		snprintf(want, sizeof(want), "memory-file '%s' does not exist "
			 "yet (VM not started?)", files[i]);
		w = strstr(errout, want);
		ck_assert_msg(w, "no '%s' in:\n%s", want, errout);
		/* on a line "vmemfs: warning: PATH:LINE: ..." */
		while (w > errout && w[-1] != '\n')
			w--;
		snprintf(want, sizeof(want), "vmemfs: warning: %s:", path);
		ck_assert_msg(strncmp(w, want, strlen(want)) == 0,
			      "not a warning naming %s:\n%s", path, errout);
	}
}
END_TEST

/* With the memory file missing, real errors still fail --check-config,
 * and mounting refuses the missing file. */
START_TEST(check_config_missing_errors)
{
	char conf[256], mem[256], mnt[256], text[1024];
	char out[8192], errout[4096], want[1024];
	static const struct {
		const char *body;	/* after the memory-file line */
		int line;		/* of the error */
		const char *msg;
	} bad[] = {
		{ "ram-size = 1G\nsubhost = nbd://127.0.0.1:1 512M-2G\n", 4,
		  "subhost range 512M-2G ends beyond ram-size 1G" },
		{ "ram-size = 1G\nlocal-limit = 2G\n", 4,
		  "local-limit '2G' is larger than ram-size 1G" },
		{ "chunk-size = 3K\n", 3,
		  "chunk-size '3K' is not a power of two between 4K and 16M" },
	};
	int rc;

	snprintf(conf, sizeof(conf), "%s/vm.conf", tmpdir);
	snprintf(mem, sizeof(mem), "%s/absent.mem", tmpdir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[vm1]\nmemory-file = %s\n%s", mem,
			 bad[i].body);
		write_text(conf, text, strlen(text));
		rc = run_vmemfs((const char *[]){ "--check-config", "-c", conf,
						  NULL },
				out, sizeof(out), errout, sizeof(errout));
		ck_assert_msg(rc == 1, "exit %d, stderr:\n%s", rc, errout);
		snprintf(want, sizeof(want), "vmemfs: %s:%d: %s\n", conf,
			 bad[i].line, bad[i].msg);
		ck_assert_str_eq(errout, want);
	}

	/* a valid file: --check-config passes with the warning ... */
	snprintf(text, sizeof(text), "[vm1]\nmemory-file = %s\n"
		 "ram-size = 1G\nsubhost = nbd://127.0.0.1:1 512M-1G\n", mem);
	write_text(conf, text, strlen(text));
	rc = run_vmemfs((const char *[]){ "--check-config", "-c", conf, NULL },
			out, sizeof(out), errout, sizeof(errout));
	ck_assert_msg(rc == 0, "exit %d, stderr:\n%s", rc, errout);
	snprintf(want, sizeof(want), "vmemfs: warning: %s:2: memory-file '%s' "
		 "does not exist yet (VM not started?); checked against "
		 "ram-size\n", conf, mem);
	ck_assert_str_eq(errout, want);

	/* ... but the mount refuses it, before mounting anything */
	snprintf(mnt, sizeof(mnt), "%s/mnt", tmpdir);
	ck_assert_int_eq(mkdir(mnt, 0700), 0);
	rc = run_vmemfs((const char *[]){ "-f", "-c", conf, mnt, NULL },
			out, sizeof(out), errout, sizeof(errout));
	rmdir(mnt);
	ck_assert_msg(rc == 1, "exit %d, stderr:\n%s", rc, errout);
	snprintf(want, sizeof(want), "vmemfs: %s:2: memory-file '%s': No such "
		 "file or directory\n", conf, mem);
	ck_assert_str_eq(errout, want);
}
END_TEST

/* ---- print -> parse round trip ------------------------------------- */

static char *print_vm(const struct vmem_vm *vm)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	vmem_vm_print(vm, f);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

static void assert_same_settings(const struct vmem_vm *a,
				 const struct vmem_vm *b)
{
	ck_assert_str_eq(a->name, b->name);
	ck_assert_str_eq(a->memory_file, b->memory_file);
	ck_assert_uint_eq(a->ram_size, b->ram_size);
	ck_assert_str_eq(a->backend, b->backend);
	ck_assert_uint_eq(a->chunk_size, b->chunk_size);
	ck_assert_int_eq(a->fetch_merge_off, b->fetch_merge_off);
	ck_assert_uint_eq(a->cache_size, b->cache_size);
	ck_assert_uint_eq(a->cache_ttl_ms, b->cache_ttl_ms);
	ck_assert_uint_eq(a->timeout_ms, b->timeout_ms);
	ck_assert_uint_eq(a->local_limit, b->local_limit);
	ck_assert_uint_eq(a->n_subhosts, b->n_subhosts);
	for (size_t i = 0; i < a->n_subhosts; i++) {
		ck_assert_str_eq(a->subhosts[i].uri, b->subhosts[i].uri);
		ck_assert_uint_eq(a->subhosts[i].start, b->subhosts[i].start);
		ck_assert_uint_eq(a->subhosts[i].end, b->subhosts[i].end);
	}
}

static const char *const roundtrip_cfgs[] = {
	MIN,
	"[x.y-z_1]\n"
	"memory-file = /dev/shm/a b.mem\n"
	"ram-size    = 0x80000000\n"
	"backend     = remote-paging\n"
	"qmp         = /run/x.qmp\n"
	"chunk-size  = 0x400000\n"
	"cache-size  = 19087360\n"
	"cache-ttl   = 1500ms\n"
	"timeout     = 60000ms\n"
	"subhost     = nbd+unix:///e?socket=/run/s 0x40000000-1536M\n"
	"subhost     = nbd://[::1]:10809/vm 4K-8K\n"
	"subhost     = nbd://h 1536M-2G\n"
	"local-limit = 12288\n",
	MIN "cache-size = 0\ncache-ttl = 0ms\ntimeout = 1ms\n"
	"chunk-size = 16M\n",
	MIN "fetch-merge = off\n",
	MIN "fetch-merge = on\n",
};

START_TEST(roundtrip)
{
	struct vmem_config a, b;
	char *text;

	parse_ok(roundtrip_cfgs[_i], &a);
	text = print_vm(&a.vms[0]);
	parse_ok(text, &b);
	ck_assert_uint_eq(b.n_vms, 1);
	assert_same_settings(&a.vms[0], &b.vms[0]);
	ck_assert_int_eq(a.vms[0].ram_size_set, b.vms[0].ram_size_set);
	ck_assert_int_eq(a.vms[0].local_limit_set, b.vms[0].local_limit_set);
	free(text);
	vmem_config_free(&a);
	vmem_config_free(&b);
}
END_TEST

START_TEST(print_text)
{
	struct vmem_config cfg;
	char *text;

	parse_ok(roundtrip_cfgs[1], &cfg);
	text = print_vm(&cfg.vms[0]);
	ck_assert_str_eq(text,
		"[x.y-z_1]\n"
		"memory-file = /dev/shm/a b.mem\n"
		"ram-size    = 2G\n"
		"backend     = remote-paging\n"
		"chunk-size  = 4M\n"
		"cache-size  = 18640K\n"
		"cache-ttl   = 1500ms\n"
		"timeout     = 60s\n"
		"subhost     = nbd://[::1]:10809/vm 4K-8K\n"
		"subhost     = nbd+unix:///e?socket=/run/s 1G-1536M\n"
		"subhost     = nbd://h 1536M-2G\n"
		"local-limit = 12K\n"
		"qmp         = /run/x.qmp\n"
		"layout      = auto\n");
	free(text);
	vmem_config_free(&cfg);

	/* unresolved defaults: commented, so they stay defaults */
	parse_ok(MIN, &cfg);
	text = print_vm(&cfg.vms[0]);
	ck_assert_str_eq(text,
		"[vm1]\n"
		"memory-file = /dev/shm/vm1.mem\n"
		"# ram-size: the size of memory-file\n"
		"backend     = direct\n"
		"chunk-size  = 64K\n"
		"cache-size  = 4M\n"
		"cache-ttl   = 100ms\n"
		"timeout     = 2s\n"
		"# local-limit: ram-size\n"
		"layout      = flat\n");
	free(text);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(roundtrip_resolved)
{
	struct vmem_config a, b;
	char err[512] = "";
	const char *f = make_file("rt.mem", 3 * GiB);
	char *text;

	ck_assert_int_eq(parse_resolve(&a, f, "subhost = nbd://h 2G-3G\n",
				       err, sizeof(err)), 0);
	text = print_vm(&a.vms[0]);
	ck_assert_ptr_nonnull(strstr(text, "\nram-size    = 3G\n"));
	ck_assert_ptr_nonnull(strstr(text, "\nlocal-limit = 3G\n"));
	parse_ok(text, &b);
	/* the effective settings survive; resolving again changes nothing */
	assert_same_settings(&a.vms[0], &b.vms[0]);
	ck_assert_int_eq(vmem_vm_resolve(&b.vms[0], b.path, err, sizeof(err)),
			 0);
	assert_same_settings(&a.vms[0], &b.vms[0]);
	free(text);
	vmem_config_free(&a);
	vmem_config_free(&b);
}
END_TEST

/* A libvirt domain: domain (and libvirt) in place of memory-file and qmp. */
START_TEST(libvirt_domain)
{
	struct vmem_config cfg;
	char err[512];

	parse_ok("[vm1]\ndomain = vm1\nbackend = remote-paging\n", &cfg);
	ck_assert_str_eq(cfg.vms[0].domain, "vm1");
	ck_assert_ptr_null(cfg.vms[0].libvirt);
	ck_assert_ptr_null(cfg.vms[0].memory_file);
	ck_assert_int_eq(cfg.vms[0].layout, VMEM_LAYOUT_AUTO);
	/* Not started: no file to check yet, only a warning. */
	ck_assert_int_eq(vmem_vm_resolve_unstarted(&cfg.vms[0], "vm.conf", err,
						   sizeof(err)), 1);
	ck_assert_int_eq(vmem_vm_resolve(&cfg.vms[0], "vm.conf", err,
					 sizeof(err)), -1);
	ck_assert_str_eq(err, "vm.conf:1: domain 'vm1': its memory file is "
			 "not known yet");
	vmem_config_free(&cfg);
	parse_ok("[d]\ndomain = a.b-c+d_1\nlibvirt = qemu+ssh://h/system\n",
		 &cfg);
	ck_assert_str_eq(cfg.vms[0].libvirt, "qemu+ssh://h/system");
	vmem_config_free(&cfg);
	expect_err("[vm1]\ndomain = vm1\nmemory-file = /dev/shm/x\n",
		   "vm.conf:3: VM 'vm1' is libvirt domain 'vm1': its "
		   "memory-file and qmp come from libvirt, drop this line");
	expect_err("[vm1]\ndomain = vm1\nqmp = /run/q.sock\n",
		   "vm.conf:3: VM 'vm1' is libvirt domain 'vm1': its "
		   "memory-file and qmp come from libvirt, drop this line");
	expect_err(MIN "libvirt = qemu:///system\n",
		   "vm.conf:3: libvirt = URI needs domain = NAME");
	expect_err("[vm1]\ndomain = a/b\n",
		   "vm.conf:2: domain 'a/b' is not a libvirt domain name "
		   "(letters, digits, '_', '.', '-', '+')");
	expect_err("[vm1]\nram-size = 1G\n",
		   "vm.conf:1: VM 'vm1' has no memory-file (it is required, "
		   "or domain = NAME for a libvirt domain)");
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = vt_tcase_checked(s, "values", NULL, NULL, 0);
	tcase_add_loop_test(tc, size_good, 0,
			    sizeof(good_sizes) / sizeof(good_sizes[0]));
	tcase_add_loop_test(tc, size_bad, 0,
			    sizeof(bad_sizes) / sizeof(bad_sizes[0]));
	tcase_add_test(tc, range_parsing);
	tcase_add_test(tc, duration_parsing);
	tcase_add_test(tc, format_size);
	tcase_add_test(tc, backend_names);

	tc = vt_tcase_checked(s, "parse", NULL, NULL, 0);
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, full_example);
	tcase_add_test(tc, subhosts_sorted);
	tcase_add_loop_test(tc, uri_good, 0,
			    sizeof(good_uris) / sizeof(good_uris[0]));
	tcase_add_test(tc, cache_default_follows_chunk);
	tcase_add_test(tc, ranges_at_ram_end);
	tcase_add_test(tc, empty_texts);

	tc = vt_tcase_checked(s, "errors", NULL, NULL, 0);
	tcase_add_test(tc, err_structure);
	tcase_add_test(tc, err_sections);
	tcase_add_test(tc, err_values);
	tcase_add_test(tc, err_subhosts);
	tcase_add_test(tc, err_second_vm_discards_all);
	tcase_add_test(tc, find);
	tcase_add_test(tc, libvirt_domain);

	tc = vt_tcase_unchecked(s, "files", tmpdir_setup, tmpdir_teardown, 0);
	tcase_add_test(tc, load);
	tcase_add_test(tc, load_size_limit);
	tcase_add_test(tc, shipped_example);
	tcase_add_test(tc, resolve_ok);
	tcase_add_test(tc, resolve_errors);
	tcase_add_test(tc, resolve_unstarted);
	tcase_add_test(tc, check_config_shipped);
	tcase_add_test(tc, check_config_missing_errors);
	tcase_add_test(tc, kernel_files);
	tcase_add_test(tc, roundtrip_resolved);

	tc = vt_tcase_checked(s, "print", NULL, NULL, 0);
	tcase_add_loop_test(tc, roundtrip, 0,
			    sizeof(roundtrip_cfgs) / sizeof(roundtrip_cfgs[0]));
	tcase_add_test(tc, print_text);
	return s;
}

int main(void)
{
	return vt_run_suite(config_suite());
}
