// SPDX-License-Identifier: MIT
/*
 * Pages moving under readers of a real vmemfs mount (the mount fixture,
 * tests/lib/mount.h): a mover thread moves pages of two hot windows
 * between the memory file and the sub-hosts the way the pager does
 * (write the new place, then punch or trim the old one, between the
 * begin and end marks of the seq file), out and in and straight back
 * (the ABA case), while readers verify every byte they get.  With the
 * seq file no read may return wrong bytes; without it (VMT_MOVER_NOSEQ,
 * information only) the test says how often they do.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/evictseq.h"
#include "lib/mount.h"

static void setup_mover(void)
{
	struct mt_opts o = MT_OPTS("mover");

	mt_env_up(&o);
}

static void setup_mover_noseq(void)
{
	/* VMT_MOVER_NOSEQ=N: cache-size N bytes (default 4M). */
	const char *c = getenv("VMT_MOVER_NOSEQ");
	struct mt_opts o = MT_OPTS("noseq");

	o.with_seq = false;
	if (c && *c >= '0' && *c <= '9')
		o.cache_size = strtoull(c, NULL, 0);
	mt_env_up(&o);
}

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
	struct mt_reader ra[4];
	struct mt_stats a, b;
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
			m->local[w][pg] = mt_page_initially_local(
				((w ? WIN1 : WIN0) + pg * PAGE) / PAGE);
	}
	m->seq = E->seq;
	mt_stats_get(&a, false);
	fd = open(mt_path("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));

	m->until = vt_now_ms() + 4000;
	ck_assert_int_eq(pthread_create(&mt, NULL, mover_thread, m), 0);
	/* Two readers per window. */
	{
		pthread_t th[4];
		double until = m->until;

		for (int i = 0; i < 4; i++) {
			uint64_t lo = i & 1 ? WIN1 : WIN0;

			ra[i] = (struct mt_reader){
				.id = i, .until = until, .lo = lo,
				.hi = lo + WIN_LEN, .maxlen = 192 * KiB,
				.fd = fd,
			};
			pthread_create(&th[i], NULL, mt_reader_thread, &ra[i]);
		}
		for (int i = 0; i < 4; i++)
			pthread_join(th[i], NULL);
	}
	pthread_join(mt, NULL);
	ck_assert_msg(!m->err[0], "mover: %s", m->err);
	mt_stats_get(&b, false);
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
	mt_read_verify(fd, WIN0, WIN_LEN);
	mt_read_verify(fd, WIN1, WIN_LEN);

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

static Suite *mover_suite(void)
{
	Suite *s = suite_create("mount");

	tcase_add_test(vt_tcase_unchecked(s, "mover", setup_mover,
					  mt_env_down, 40), test_mover_seq);
	if (getenv("VMT_MOVER_NOSEQ"))
		tcase_add_test(vt_tcase_unchecked(s, "mover-noseq",
						  setup_mover_noseq,
						  mt_env_down, 40),
			       test_mover_noseq);
	return s;
}

int main(void)
{
	return mt_main(mover_suite);
}
