// SPDX-License-Identifier: MIT
/*
 * Split migration's library without QEMU: the plan (pager/plan.c), the
 * cold-page sender (pager/migsend.c) against a real nbdkit, and the
 * destination's commit (pager/incoming.c) on a real /dev/shm file.
 *
 * Expectations are computed independently: the fault window by brute
 * force from the page's home, page by page; the plan's choice from the
 * scores by a second, naive selection; the sub-host's content read back
 * over NBD by a separate libnbd handle; the memory file's data map from
 * SEEK_DATA (tests/lib/datamap).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/config.h"
#include "../pager/incoming.h"
#include "../pager/migsend.h"
#include "../pager/plan.h"
#include "lib/datamap.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define PG 4096ULL

/* ---- configs -------------------------------------------------------- */

static struct vmem_vm *load(struct vmem_config *cfg, const char *text)
{
	char err[512];
	struct vmem_vm *vm;

	ck_assert_msg(vmem_config_parse(text, "t.conf", cfg, err,
					sizeof(err)) == 0, "%s", err);
	vm = vmem_config_find(cfg, NULL, err, sizeof(err));
	ck_assert_msg(vm, "%s", err);
	return vm;
}

/* The home of page @off by the config, independently of plan.c. */
static long home_of(const struct vmem_vm *vm, uint64_t off)
{
	for (size_t i = 0; i < vm->n_subhosts; i++)
		if (off >= vm->subhosts[i].start && off < vm->subhosts[i].end)
			return (long)i;
	return -1;
}

/*
 * Brute force: the window of @off is the longest run of pages around it,
 * inside its chunk, whose pages all have @off's home, without crossing a
 * page of another home (a homeless run ends at a homed page).
 */
static void brute_window(const struct vmem_vm *vm, uint64_t off,
			 uint64_t *s, uint64_t *e)
{
	uint64_t cs = off / vm->chunk_size * vm->chunk_size;
	uint64_t ce = cs + vm->chunk_size;
	long h = home_of(vm, off);

	if (ce > vm->ram_size)
		ce = vm->ram_size;
	*s = off;
	while (*s > cs && home_of(vm, *s - PG) == h)
		*s -= PG;
	*e = off + PG;
	while (*e < ce && home_of(vm, *e) == h)
		*e += PG;
}

static const char *const odd_conf =
	"[v]\nmemory-file = /dev/shm/none\nram-size = 8M\n"
	"chunk-size = 64K\nlocal-limit = 4M\n"
	/* Ranges that cut chunks: 1M+12K, two homes touching inside a
	 * chunk at 3M+40K, a homeless gap inside a chunk. */
	"subhost = nbd://127.0.0.1:1 1036K-3112K\n"
	"subhost = nbd://127.0.0.1:2 3112K-5M\n"
	"subhost = nbd://127.0.0.1:3 5128K-6M\n";

START_TEST(test_window_brute_force)
{
	struct vmem_config cfg;
	struct vmem_vm *vm = load(&cfg, odd_conf);
	struct vmem_home_set h;
	uint64_t n = 0;

	vmem_home_set_of_vm(&h, vm);
	for (uint64_t off = 0; off < vm->ram_size; off += PG) {
		uint64_t s, e, bs, be;
		long home;

		vmem_fault_window(&h, vm->ram_size, vm->chunk_size, off, &s,
				  &e, &home);
		brute_window(vm, off, &bs, &be);
		ck_assert_msg(s == bs && e == be, "page %#" PRIx64 ": window "
			      "[%#" PRIx64 ", %#" PRIx64 "), by brute force "
			      "[%#" PRIx64 ", %#" PRIx64 ")", off, s, e, bs, be);
		ck_assert_int_eq(home, home_of(vm, off));
		n++;
	}
	ck_assert_uint_eq(n, 2048);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(test_plan_covers_ram)
{
	struct vmem_config cfg;
	struct vmem_vm *vm = load(&cfg, odd_conf);
	struct vmem_plan p;
	uint64_t off = 0, unhomed = 0;
	char err[512];

	ck_assert_msg(vmem_plan_init(&p, vm, err, sizeof(err)) == 0, "%s",
		      err);
	for (size_t i = 0; i < p.n; i++) {
		uint64_t bs, be;

		ck_assert_uint_eq(p.w[i].start, off);
		brute_window(vm, off, &bs, &be);
		ck_assert_uint_eq(p.w[i].end, be);
		ck_assert_int_eq(p.w[i].home, home_of(vm, off));
		ck_assert_uint_eq(vmem_plan_find(&p, off), i);
		ck_assert_uint_eq(vmem_plan_find(&p, p.w[i].end - PG), i);
		if (p.w[i].home < 0)
			unhomed += p.w[i].end - p.w[i].start;
		off = p.w[i].end;
	}
	ck_assert_uint_eq(off, vm->ram_size);
	/* [0, 1036K), [5M, 5128K), [6M, 8M) have no home. */
	ck_assert_uint_eq(unhomed, 1036 * KiB + 8 * KiB + 2 * MiB);
	ck_assert_uint_eq(p.unhomed_bytes, unhomed);
	vmem_plan_free(&p);
	vmem_config_free(&cfg);
}
END_TEST

/* The hottest homed windows that fit, by a naive selection. */
START_TEST(test_plan_choice)
{
	struct vmem_config cfg;
	struct vmem_vm *vm = load(&cfg, odd_conf);
	struct vmem_plan p;
	uint32_t *score;
	uint64_t main = 0, budget, used = 0;
	char err[512];
	bool *want;

	ck_assert(vmem_plan_init(&p, vm, err, sizeof(err)) == 0);
	score = calloc(p.n, sizeof(*score));
	want = calloc(p.n, sizeof(*want));
	for (size_t i = 0; i < p.n; i++)
		score[i] = (uint32_t)(vt_splitmix64(i) % 5) << 28;
	ck_assert_msg(vmem_plan_choose(&p, score, err, sizeof(err)) == 0,
		      "%s", err);
	/* Naive: repeatedly the highest score (lowest address on ties)
	 * among homed windows not taken, ever accessed, that still fit. */
	budget = p.local_limit - p.unhomed_bytes - p.headroom;
	for (;;) {
		long best = -1;

		for (size_t i = 0; i < p.n; i++) {
			uint64_t len = p.w[i].end - p.w[i].start;

			if (p.w[i].home < 0 || want[i] || !score[i] ||
			    used + len > budget)
				continue;
			if (best < 0 || score[i] > score[best])
				best = (long)i;
		}
		if (best < 0)
			break;
		want[best] = true;
		used += p.w[best].end - p.w[best].start;
	}
	for (size_t i = 0; i < p.n; i++) {
		if (p.w[i].home < 0) {
			ck_assert(p.w[i].main);
			ck_assert_int_eq(p.w[i].why, VMEM_WHY_UNHOMED);
		} else {
			ck_assert_msg(p.w[i].main == want[i], "window %zu "
				      "[%#" PRIx64 ", %#" PRIx64 ") score %u: "
				      "main %d, expected %d", i, p.w[i].start,
				      p.w[i].end, score[i], p.w[i].main,
				      want[i]);
		}
		if (p.w[i].main)
			main += p.w[i].end - p.w[i].start;
	}
	ck_assert_uint_eq(main, p.main_bytes);
	ck_assert_uint_le(main + p.headroom, p.local_limit);
	ck_assert_uint_eq(p.main_bytes + p.cold_bytes, p.size);
	free(score);
	free(want);
	vmem_plan_free(&p);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(test_plan_unhomed_too_big)
{
	struct vmem_config cfg;
	struct vmem_vm *vm = load(&cfg,
		"[v]\nmemory-file = /dev/shm/none\nram-size = 8M\n"
		"local-limit = 2M\nsubhost = nbd://127.0.0.1:1 6M-8M\n");
	struct vmem_plan p;
	char err[512] = "";

	ck_assert(vmem_plan_init(&p, vm, err, sizeof(err)) == 0);
	ck_assert_int_eq(vmem_plan_choose(&p, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "local-limit"), "%s", err);
	vmem_plan_free(&p);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(test_config_hash)
{
	static const char *const base =
		"[v]\nmemory-file = /dev/shm/a\nram-size = 8M\n"
		"chunk-size = 64K\nlocal-limit = 4M\n"
		"subhost = nbd://10.0.0.2:10809 4M-8M\n";
	static const char *const same =
		"# another host's copy\n[v]\nmemory-file = /dev/shm/b\n"
		"ram-size=8388608\nchunk-size=65536\nlocal-limit = 4096K\n"
		"timeout = 9s\nsubhost = nbd://10.0.0.2:10809 4M-8M\n";
	static const char *const differ[] = {
		"[v]\nmemory-file = /dev/shm/a\nram-size = 16M\n"
		"chunk-size = 64K\nlocal-limit = 4M\n"
		"subhost = nbd://10.0.0.2:10809 4M-8M\n",
		"[v]\nmemory-file = /dev/shm/a\nram-size = 8M\n"
		"chunk-size = 1M\nlocal-limit = 4M\n"
		"subhost = nbd://10.0.0.2:10809 4M-8M\n",
		"[v]\nmemory-file = /dev/shm/a\nram-size = 8M\n"
		"chunk-size = 64K\nlocal-limit = 5M\n"
		"subhost = nbd://10.0.0.2:10809 4M-8M\n",
		"[v]\nmemory-file = /dev/shm/a\nram-size = 8M\n"
		"chunk-size = 64K\nlocal-limit = 4M\n"
		"subhost = nbd://10.0.0.3:10809 4M-8M\n",
		"[v]\nmemory-file = /dev/shm/a\nram-size = 8M\n"
		"chunk-size = 64K\nlocal-limit = 4M\n"
		"subhost = nbd://10.0.0.2:10809 3M-8M\n",
	};
	struct vmem_config c1, c2;
	uint64_t h = vmem_plan_config_hash(load(&c1, base));

	ck_assert_uint_eq(h, vmem_plan_config_hash(load(&c2, same)));
	vmem_config_free(&c2);
	for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++) {
		ck_assert_msg(h != vmem_plan_config_hash(load(&c2, differ[i])),
			      "config %zu hashes like the base", i);
		vmem_config_free(&c2);
	}
	vmem_config_free(&c1);
}
END_TEST

START_TEST(test_plan_accept)
{
	struct vmem_config cfg;
	struct vmem_vm *vm = load(&cfg, odd_conf);
	struct vmem_plan src, dst;
	uint32_t *score;
	uint8_t *bits, *bad;
	size_t blen;
	char err[512];

	ck_assert(vmem_plan_init(&src, vm, err, sizeof(err)) == 0);
	score = calloc(src.n, sizeof(*score));
	for (size_t i = 0; i < src.n; i++)
		score[i] = i % 3 ? 0 : 1u << 31;
	ck_assert(vmem_plan_choose(&src, score, err, sizeof(err)) == 0);
	blen = vmem_plan_bits_len(&src);
	bits = calloc(blen, 1);
	bad = calloc(blen, 1);
	vmem_plan_get_bits(&src, bits);

	ck_assert(vmem_plan_init(&dst, vm, err, sizeof(err)) == 0);
	ck_assert_int_eq(vmem_plan_accept(&dst, src.config_hash ^ 1, src.n,
					  bits, blen, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "differs"), "%s", err);
	ck_assert_int_eq(vmem_plan_accept(&dst, src.config_hash, src.n + 1,
					  bits, blen, err, sizeof(err)), -1);
	/* Window 0 has no home: sending it away is refused. */
	memcpy(bad, bits, blen);
	ck_assert_int_eq(dst.w[0].home, -1);
	bad[0] &= (uint8_t)~1u;
	ck_assert_int_eq(vmem_plan_accept(&dst, src.config_hash, src.n, bad,
					  blen, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "no home"), "%s", err);
	/* Everything to the main host: over local-limit. */
	memset(bad, 0xff, blen);
	ck_assert_int_eq(vmem_plan_accept(&dst, src.config_hash, src.n, bad,
					  blen, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "local-limit"), "%s", err);

	ck_assert_msg(vmem_plan_accept(&dst, src.config_hash, src.n, bits,
				       blen, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(vmem_plan_hash(&dst), vmem_plan_hash(&src));
	for (size_t i = 0; i < src.n; i++)
		ck_assert_int_eq(dst.w[i].main, src.w[i].main);
	free(score);
	free(bits);
	free(bad);
	vmem_plan_free(&src);
	vmem_plan_free(&dst);
	vmem_config_free(&cfg);
}
END_TEST

/* ---- the destination's commit ---------------------------------------- */

START_TEST(test_incoming_commit)
{
	struct vmem_config cfg;
	struct vmem_vm *vm = load(&cfg, odd_conf);
	struct vmem_plan p;
	struct vt_datamap m;
	char path[64], err[512], want_at[32];
	uint64_t touched, hot_written = 0, cold_page = UINT64_MAX;
	uint64_t cold_page2 = UINT64_MAX;
	char *page = malloc(PG);
	volatile const char *map;
	char c;
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/vmt-migrate-plan-%d.mem",
		 (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)vm->ram_size), 0);
	ck_assert(vmem_plan_init(&p, vm, err, sizeof(err)) == 0);
	ck_assert(vmem_plan_choose(&p, NULL, err, sizeof(err)) == 0);
	ck_assert_uint_gt(p.cold_bytes, 0);
	/* Every third page of the hot windows holds data (the stream's);
	 * the stream refuses every cold page. */
	for (uint64_t off = 0; off < vm->ram_size; off += 3 * PG) {
		if (vmem_plan_is_cold(&p, off)) {
			ck_assert_int_eq(vmem_incoming_check_page(&p, off, err,
								  sizeof(err)),
					 -1);
			if (cold_page == UINT64_MAX)
				cold_page = off;
			cold_page2 = off;
			continue;
		}
		ck_assert_int_eq(vmem_incoming_check_page(&p, off, err,
							  sizeof(err)), 0);
		vt_pattern_fill(page, off, PG, 7);
		ck_assert_int_eq(pwrite(fd, page, PG, (off_t)off), (ssize_t)PG);
		hot_written += PG;
	}
	ck_assert_uint_ne(cold_page, cold_page2);
	/* Clean: the commit goes through. */
	ck_assert_msg(vmem_incoming_commit(&p, fd, &touched, err,
					   sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(touched, 0);

	/* A read fault on a cold page through a shared mapping (what a
	 * device model reading guest memory does): tmpfs allocates the
	 * page, and the commit fails naming it. */
	map = mmap(NULL, vm->ram_size, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert(map != MAP_FAILED);
	c = map[cold_page + 100];
	ck_assert_int_eq(c, 0);
	ck_assert_int_eq(vmem_incoming_commit(&p, fd, &touched, err,
					      sizeof(err)), -1);
	ck_assert_uint_eq(touched, PG);
	snprintf(want_at, sizeof(want_at), "[%#" PRIx64 ",", cold_page);
	ck_assert_msg(strstr(err, want_at) && strstr(err, "cold"),
		      "'%s' does not name %s", err, want_at);
	/* A write through the file counts as well. */
	vt_pattern_fill(page, cold_page2, PG, 8);
	ck_assert_int_eq(pwrite(fd, page, PG, (off_t)cold_page2),
			 (ssize_t)PG);
	ck_assert_int_eq(vmem_incoming_commit(&p, fd, &touched, err,
					      sizeof(err)), -1);
	ck_assert_uint_eq(touched, 2 * PG);
	/* Nothing was changed: the evidence stays. */
	ck_assert(vt_datamap_get(path, 0, UINT64_MAX, &m, err,
				 sizeof(err)) == 0);
	ck_assert_uint_eq(m.bytes, hot_written + 2 * PG);
	ck_assert(vt_datamap_has(&m, cold_page));
	/* The hot data is untouched. */
	for (uint64_t off = 0; off < vm->ram_size; off += 3 * PG) {
		char want[PG];

		if (vmem_plan_is_cold(&p, off))
			continue;
		vt_pattern_fill(want, off, PG, 7);
		ck_assert_int_eq(pread(fd, page, PG, (off_t)off), (ssize_t)PG);
		ck_assert(memcmp(page, want, PG) == 0);
	}
	munmap((void *)map, vm->ram_size);
	vt_datamap_free(&m);
	close(fd);
	unlink(path);
	free(page);
	vmem_plan_free(&p);
	vmem_config_free(&cfg);
}
END_TEST

/* ---- the cold-page sender against nbdkit ---------------------------- */

static struct vt_nbdkit nbdkit;

static void nbdkit_up(void)
{
	char err[512];

	memset(&nbdkit, 0, sizeof(nbdkit));
	snprintf(nbdkit.addr, sizeof(nbdkit.addr), "127.0.0.1");
	nbdkit.port = 24000 + (int)(getpid() % 500);
	snprintf(nbdkit.size, sizeof(nbdkit.size), "8M");
	if (vt_nbdkit_start(&nbdkit, true, err, sizeof(err)) < 0)
		vt_setup_failed(NULL, 0, "nbdkit: %s", err);
}

static void nbdkit_down(void)
{
	vt_nbdkit_kill(&nbdkit);
}

static char conf_text[1024];

static struct vmem_vm *sender_conf(struct vmem_config *cfg)
{
	ck_assert_msg(nbdkit.pid > 0, "nbdkit did not start");
	snprintf(conf_text, sizeof(conf_text),
		 "[v]\nmemory-file = /dev/shm/none\nram-size = 8M\n"
		 "chunk-size = 64K\nlocal-limit = 4M\ntimeout = 1s\n"
		 "subhost = %s 2M-8M\n", nbdkit.uri);
	return load(cfg, conf_text);
}

START_TEST(test_sender_writes_cold_pages)
{
	struct vmem_config cfg;
	struct vmem_vm *vm = sender_conf(&cfg);
	struct vmem_cold_sender_stats st;
	struct vmem_cold_sender *s;
	struct nbd_handle *h;
	struct vmem_plan p;
	char err[512], *buf = malloc(8 * MiB), *want = malloc(8 * MiB);
	char *page = malloc(PG);
	uint64_t cold_nonzero = 0, zero_skipped = 0;

	h = vt_nbd_connect(nbdkit.uri, 5000, err, sizeof(err));
	ck_assert_msg(h, "%s", err);
	/* Garbage from "an earlier migration" on the whole export. */
	memset(buf, 0xa5, 8 * MiB);
	ck_assert_int_eq(nbd_pwrite(h, buf, 8 * MiB, 0, 0), 0);

	ck_assert(vmem_plan_init(&p, vm, err, sizeof(err)) == 0);
	ck_assert(vmem_plan_choose(&p, NULL, err, sizeof(err)) == 0);
	s = vmem_cold_sender_new(&p, vm, err, sizeof(err));
	ck_assert_msg(s, "%s", err);

	/* The expected export: garbage outside the home, zeros in it
	 * where nothing non-zero was sent. */
	memset(want, 0xa5, 2 * MiB);
	memset(want + 2 * MiB, 0, 6 * MiB);
	for (uint64_t off = 0; off < 8 * MiB; off += PG) {
		bool zero = (off / PG) % 4 == 1;
		int r;

		if (zero)
			memset(page, 0, PG);
		else
			vt_pattern_fill(page, off, PG, 11);
		r = vmem_cold_sender_page(s, off, page, err, sizeof(err));
		ck_assert_msg(r >= 0, "%s", err);
		ck_assert_int_eq(r, vmem_plan_is_cold(&p, off));
		if (r == 1 && !zero) {
			memcpy(want + off, page, PG);
			cold_nonzero += PG;
		} else if (r == 1) {
			zero_skipped++;
		}
	}
	/* Re-dirtied: a cold page changes, one becomes zero, and a page
	 * is sent twice while queued: the last value wins. */
	for (uint64_t off = 0; off < 8 * MiB; off += 64 * PG) {
		if (!vmem_plan_is_cold(&p, off))
			continue;
		vt_pattern_fill(page, off, PG, 12);
		ck_assert_int_eq(vmem_cold_sender_page(s, off, page, err,
						       sizeof(err)), 1);
		vt_pattern_fill(page, off, PG, 13);
		ck_assert_int_eq(vmem_cold_sender_page(s, off, page, err,
						       sizeof(err)), 1);
		memcpy(want + off, page, PG);
		memset(page, 0, PG);
		ck_assert_int_eq(vmem_cold_sender_page(s, off + 2 * PG, page,
						       err, sizeof(err)), 1);
		memset(want + off + 2 * PG, 0, PG);
	}
	ck_assert_msg(vmem_cold_sender_drain(s, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_int_eq(nbd_pread(h, buf, 8 * MiB, 0, 0), 0);
	for (uint64_t off = 0; off < 8 * MiB; off += PG)
		ck_assert_msg(memcmp(buf + off, want + off, PG) == 0,
			      "export page %#" PRIx64 " differs (cold %d)",
			      off, vmem_plan_is_cold(&p, off));
	vmem_cold_sender_get_stats(s, 0, &st);
	ck_assert_uint_eq(st.zero_skipped, zero_skipped);
	ck_assert_uint_ge(st.bytes, cold_nonzero);
	/* Coalesced: the runs of three non-zero pages between zero pages
	 * go as one request each. */
	ck_assert_uint_le(st.requests, st.pages / 2);
	vmem_cold_sender_free(s);
	nbd_close(h);
	free(buf);
	free(want);
	free(page);
	vmem_plan_free(&p);
	vmem_config_free(&cfg);
}
END_TEST

START_TEST(test_sender_subhost_dies)
{
	struct vmem_config cfg;
	struct vmem_vm *vm = sender_conf(&cfg);
	struct vmem_cold_sender *s;
	struct vmem_plan p;
	char err[512], *page = malloc(PG);
	double t0;
	int r = 0;

	ck_assert(vmem_plan_init(&p, vm, err, sizeof(err)) == 0);
	ck_assert(vmem_plan_choose(&p, NULL, err, sizeof(err)) == 0);
	s = vmem_cold_sender_new(&p, vm, err, sizeof(err));
	ck_assert_msg(s, "%s", err);
	vt_nbdkit_kill(&nbdkit);
	t0 = vt_now_ms();
	vt_pattern_fill(page, 0, PG, 3);
	for (uint64_t off = 0; off < 8 * MiB && r >= 0; off += PG)
		r = vmem_cold_sender_page(s, off, page, err, sizeof(err));
	if (r >= 0)
		r = vmem_cold_sender_drain(s, err, sizeof(err));
	ck_assert_int_eq(r, -1);
	ck_assert_msg(strstr(err, nbdkit.uri), "'%s' does not name %s", err,
		      nbdkit.uri);
	/* Within the config's timeout (1 s), with slack for the machine. */
	ck_assert_double_lt(vt_now_ms() - t0, 3000);
	/* It stays failed. */
	ck_assert_int_eq(vmem_cold_sender_drain(s, err, sizeof(err)), -1);
	vmem_cold_sender_free(s);
	free(page);
	vmem_plan_free(&p);
	vmem_config_free(&cfg);
}
END_TEST

/* ---- the flush before the commit ---------------------------------- */

/*
 * nbdkit with @argv's plugin and filters (after the common options) on
 * 127.0.0.1:@port, dying with us; its PID once it answers a handshake.
 */
static pid_t nbdkit_argv(int port, const char *const *argv, char *uri,
			 size_t urilen)
{
	const char *av[24] = { "nbdkit", "-f", "-t", "1", "-i", "127.0.0.1",
			       "-p" };
	char ports[16], err[512];
	struct nbd_handle *h;
	size_t n = 7;
	pid_t pid;

	snprintf(ports, sizeof(ports), "%d", port);
	av[n++] = ports;
	for (size_t i = 0; argv[i] && n < 23; i++)
		av[n++] = argv[i];
	av[n] = NULL;
	snprintf(uri, urilen, "nbd://127.0.0.1:%d", port);
	pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execvp("nbdkit", (char *const *)av);
		_exit(127);
	}
	h = vt_nbd_connect(uri, 5000, err, sizeof(err));
	ck_assert_msg(h, "nbdkit %s: %s", argv[0], err);
	nbd_close(h);
	return pid;
}

static void nbdkit_argv_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static struct vmem_vm *uri_conf(struct vmem_config *cfg, const char *uri)
{
	snprintf(conf_text, sizeof(conf_text),
		 "[v]\nmemory-file = /dev/shm/none\nram-size = 8M\n"
		 "chunk-size = 64K\nlocal-limit = 4M\ntimeout = 1s\n"
		 "subhost = %s 2M-8M\n", uri);
	return load(cfg, conf_text);
}

/* Every cold page once, non-zero.  The drain's result. */
static int send_all_cold(struct vmem_cold_sender *s,
			 const struct vmem_plan *p, char *err, size_t errlen)
{
	char page[PG];

	for (uint64_t off = 0; off < 8 * MiB; off += PG) {
		if (!vmem_plan_is_cold(p, off))
			continue;
		vt_pattern_fill(page, off, PG, 21);
		if (vmem_cold_sender_page(s, off, page, err, errlen) != 1)
			return -1;
	}
	return vmem_cold_sender_drain(s, err, errlen);
}

/*
 * The server's own log (nbdkit's log filter) shows an NBD FLUSH after
 * the reply to the last write: what the commit record promises is on
 * the sub-host's stable storage, not only in its cache.
 */
START_TEST(test_sender_flushes_before_commit)
{
	char log[96], uri[96], err[512], line[512];
	const char *argv[] = { "--filter=log", "memory", "8M", log, NULL };
	struct vmem_cold_sender_stats st;
	struct vmem_cold_sender *s;
	struct vmem_config cfg;
	struct vmem_plan p;
	long last_write_ret = -1, flush = -1, flush_ret = -1, ln = 0;
	pid_t pid;
	FILE *f;

	snprintf(log, sizeof(log), "logfile=/tmp/migrate2-flush-%d.log",
		 (int)getpid());
	unlink(log + 8);
	pid = nbdkit_argv(24500 + (int)(getpid() % 200), argv, uri,
			  sizeof(uri));
	struct vmem_vm *vm = uri_conf(&cfg, uri);

	ck_assert(vmem_plan_init(&p, vm, err, sizeof(err)) == 0);
	ck_assert(vmem_plan_choose(&p, NULL, err, sizeof(err)) == 0);
	s = vmem_cold_sender_new(&p, vm, err, sizeof(err));
	ck_assert_msg(s, "%s", err);
	ck_assert_msg(send_all_cold(s, &p, err, sizeof(err)) == 0, "%s", err);
	vmem_cold_sender_get_stats(s, 0, &st);
	vmem_cold_sender_free(s);
	nbdkit_argv_kill(pid);

	f = fopen(log + 8, "r");
	ck_assert_msg(f, "%s: %s", log + 8, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		ln++;
		/* "... Write id=N ..." asks, "...Write id=N return=0"
		 * answers. */
		if (strstr(line, " ...Write ") && strstr(line, "return=0"))
			last_write_ret = ln;
		else if (strstr(line, " Flush "))
			flush = ln;
		else if (strstr(line, " ...Flush ") &&
			 strstr(line, "return=0"))
			flush_ret = ln;
	}
	fclose(f);
	ck_assert_msg(last_write_ret > 0, "no write in the server's log %s", log + 8);
	ck_assert_msg(flush > last_write_ret, "no flush after the last write's "
		      "reply (write reply at line %ld, flush at %ld)",
		      last_write_ret, flush);
	ck_assert_msg(flush_ret > flush, "the flush was not answered");
	ck_assert_uint_eq(st.flushes, 1);
	unlink(log + 8);
	vmem_plan_free(&p);
	vmem_config_free(&cfg);
}
END_TEST

/* A sub-host whose flush fails (EIO): the drain, hence the migration,
 * fails and names it. */
START_TEST(test_sender_flush_fails)
{
	const char *argv[] = {
		"eval", "get_size=echo 8M",
		"pread=dd if=/dev/zero count=$3 iflag=count_bytes status=none",
		"pwrite=cat >/dev/null", "trim=exit 0",
		"flush=echo EIO flush refused by the test >&2; exit 1", NULL,
	};
	struct vmem_cold_sender *s;
	struct vmem_config cfg;
	struct vmem_plan p;
	char uri[96], err[512];
	pid_t pid;

	pid = nbdkit_argv(24700 + (int)(getpid() % 200), argv, uri,
			  sizeof(uri));
	struct vmem_vm *vm = uri_conf(&cfg, uri);

	ck_assert(vmem_plan_init(&p, vm, err, sizeof(err)) == 0);
	ck_assert(vmem_plan_choose(&p, NULL, err, sizeof(err)) == 0);
	s = vmem_cold_sender_new(&p, vm, err, sizeof(err));
	ck_assert_msg(s, "%s", err);
	ck_assert_int_eq(send_all_cold(s, &p, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, uri) && strstr(err, "flush"),
		      "'%s' does not name %s and the flush", err, uri);
	/* It stays failed. */
	ck_assert_int_eq(vmem_cold_sender_drain(s, err, sizeof(err)), -1);
	vmem_cold_sender_free(s);
	nbdkit_argv_kill(pid);
	vmem_plan_free(&p);
	vmem_config_free(&cfg);
}
END_TEST

/*
 * A sub-host whose TRIM succeeds and does nothing, as the NBD protocol
 * allows ("the client MUST NOT make any assumptions about the contents
 * of the export affected by this command"; qemu-nbd's default
 * --discard=ignore does just that), holding garbage of an earlier VM.
 * The sender leaves zero pages out because it cleared the home range at
 * setup: that must leave zeros there, or the destination reads the
 * garbage where the source had zeros.
 */
START_TEST(test_sender_home_zero_despite_noop_trim)
{
	char file[96], pread_m[192], pwrite_m[192], uri[96], err[512];
	const char *argv[] = {
		"eval", "get_size=echo 8M", pread_m, pwrite_m, "trim=exit 0",
		NULL,
	};
	struct vmem_cold_sender *s;
	struct vmem_config cfg;
	struct vmem_plan p;
	struct nbd_handle *h;
	char *buf = malloc(8 * MiB), page[PG];
	uint64_t bad = 0, first_bad = 0, cold_zero = 0;
	int fd;
	pid_t pid;

	ck_assert(buf);
	snprintf(file, sizeof(file), "/dev/shm/vt-plan-noop-trim-%d",
		 (int)getpid());
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_msg(fd >= 0, "%s: %s", file, strerror(errno));
	memset(buf, 0xa5, 8 * MiB);	/* an earlier VM's pages */
	ck_assert_int_eq(pwrite(fd, buf, 8 * MiB, 0), (ssize_t)(8 * MiB));
	close(fd);
	snprintf(pread_m, sizeof(pread_m), "pread=dd if=%s skip=$4 count=$3 "
		 "iflag=skip_bytes,count_bytes status=none", file);
	snprintf(pwrite_m, sizeof(pwrite_m), "pwrite=dd of=%s seek=$4 "
		 "oflag=seek_bytes conv=notrunc status=none", file);
	pid = nbdkit_argv(24900 + (int)(getpid() % 90), argv, uri,
			  sizeof(uri));
	struct vmem_vm *vm = uri_conf(&cfg, uri);

	ck_assert(vmem_plan_init(&p, vm, err, sizeof(err)) == 0);
	ck_assert(vmem_plan_choose(&p, NULL, err, sizeof(err)) == 0);
	s = vmem_cold_sender_new(&p, vm, err, sizeof(err));
	ck_assert_msg(s, "%s", err);
	/* Every other cold page holds data, the rest are zero (left out). */
	for (uint64_t off = 0; off < 8 * MiB; off += PG) {
		bool zero = (off / PG) % 2;

		if (!vmem_plan_is_cold(&p, off))
			continue;
		if (zero)
			memset(page, 0, PG);
		else
			vt_pattern_fill(page, off, PG, 23);
		cold_zero += zero;
		ck_assert_int_eq(vmem_cold_sender_page(s, off, page, err,
						       sizeof(err)), 1);
	}
	ck_assert_msg(vmem_cold_sender_drain(s, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_uint_gt(cold_zero, 0);
	vmem_cold_sender_free(s);

	h = vt_nbd_connect(uri, 5000, err, sizeof(err));
	ck_assert_msg(h, "%s", err);
	ck_assert_int_eq(nbd_pread(h, buf, 8 * MiB, 0, 0), 0);
	nbd_close(h);
	nbdkit_argv_kill(pid);
	unlink(file);
	for (uint64_t off = 0; off < 8 * MiB; off += PG) {
		bool ok;

		if (!vmem_plan_is_cold(&p, off))
			continue;
		if ((off / PG) % 2) {
			memset(page, 0, PG);
		} else {
			vt_pattern_fill(page, off, PG, 23);
		}
		ok = !memcmp(buf + off, page, PG);
		if (!ok && !bad++)
			first_bad = off;
	}
	ck_assert_msg(bad == 0, "%" PRIu64 " cold pages read back wrong from "
		      "a sub-host whose trim does nothing, first at %#" PRIx64
		      " (%s)", bad, first_bad, (first_bad / PG) % 2 ?
		      "a zero page left out: the earlier VM's garbage" :
		      "a page with data");
	free(buf);
	vmem_plan_free(&p);
	vmem_config_free(&cfg);
}
END_TEST

static Suite *plan_suite(void)
{
	Suite *s = suite_create("plan");
	TCase *tc = vt_tcase_checked(s, "plan", NULL, NULL, 20);

	tcase_add_test(tc, test_window_brute_force);
	tcase_add_test(tc, test_plan_covers_ram);
	tcase_add_test(tc, test_plan_choice);
	tcase_add_test(tc, test_plan_unhomed_too_big);
	tcase_add_test(tc, test_config_hash);
	tcase_add_test(tc, test_plan_accept);
	tcase_add_test(tc, test_incoming_commit);
	tc = vt_tcase_unchecked(s, "sender", nbdkit_up, nbdkit_down, 30);
	tcase_add_test(tc, test_sender_writes_cold_pages);
	tcase_add_test(tc, test_sender_subhost_dies);
	tc = vt_tcase_unchecked(s, "flush", NULL, NULL, 30);
	tcase_add_test(tc, test_sender_flushes_before_commit);
	tcase_add_test(tc, test_sender_flush_fails);
	tcase_add_test(tc, test_sender_home_zero_despite_noop_trim);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return vt_run_suite(plan_suite());
}
