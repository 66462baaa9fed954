// SPDX-License-Identifier: MIT
/*
 * ids_reader: an intrusion-detector-like reader of VM memory, the client of
 * the direct-fetch vs remote-paging comparison (scripts/bench-compare.sh).
 *
 * An offloaded IDS (Transcall's shadow /proc, a memory scanner) does two
 * kinds of reads: many small ones scattered over kernel memory while it
 * follows pointers, and long sequential scans.  This program does both,
 * in that order, on one target:
 *
 *   ids_reader [-n NAME] [-s SEED] TARGET START LEN NSCATTER SCATTER_BS \
 *              SCAN_START SCAN_LEN SCAN_BS
 *
 *   phase 1  NSCATTER reads of SCATTER_BS bytes at random 64-byte aligned
 *            offsets in [START, START+LEN), seeded (the same offsets for
 *            the same SEED, whatever the target)
 *   phase 2  [SCAN_START, SCAN_START+SCAN_LEN) read in order, SCAN_BS at
 *            a time
 *
 * TARGET is a file (vmemfs's `ram`, offsets = RAM offsets) or an NBD URI
 * (a sub-host, offsets = RAM offsets too): then every read is one
 * synchronous nbd_pread() of exactly the bytes asked for, the raw cost
 * of fetching those bytes with libnbd that vmemfs's direct backend is
 * measured against.  With -c CHUNK (NBD only) each read fetches instead
 * the CHUNK-aligned whole chunks around it, as direct fetch does with
 * chunk-size CHUNK and no cache, one request per chunk: raw libnbd doing
 * the paper's transfers.  With -m as well, those chunks go out as the
 * direct backend sends them now: adjacent chunks landing next to each
 * other in one request (the first and the last chunk of a read that
 * stick out of it land apart from the middle ones, so they are requests
 * of their own unless they are the only two); raw libnbd doing the same
 * transfers as vmemfs's direct fetch.
 *
 * Output, one line:
 *   result name=N scatter_s=A scan_s=B total_s=C bytes=D sum=0xH
 * sum is a hash of every byte read, in order, so runs over different
 * targets can be compared for having read the same data.
 * Sizes take K/M/G suffixes (powers of 1024).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

struct target {
	int fd;				/* file, or -1 */
	struct nbd_handle *nbd;		/* NBD, or NULL */
	const char *name;
	uint64_t chunk;			/* NBD: fetch whole chunks; 0 = no */
	bool merge;			/* -m: adjacent chunks in one request */
	unsigned char *cbuf;		/* room for the chunks of one read */
};

static void die(const char *what, const char *why)
{
	fprintf(stderr, "ids_reader: %s: %s\n", what, why);
	exit(1);
}

static uint64_t parse_size(const char *s)
{
	uint64_t v;

	if (bench_parse_size(s, &v) < 0)
		die(s, "not a size");
	return v;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* FNV-style running hash of everything read. */
static uint64_t mix(uint64_t h, const unsigned char *p, size_t len)
{
	uint64_t w;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
	}
	for (; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static void read_exact(struct target *t, unsigned char *buf, size_t len,
		       uint64_t off)
{
	size_t got = 0;

	if (t->nbd && t->chunk) {
		uint64_t s = off & ~(t->chunk - 1);
		uint64_t e = (off + len + t->chunk - 1) & ~(t->chunk - 1);

		/* One request per chunk, as the paper's direct fetch sends
		 * them; with -m one per run of chunks that are all inside
		 * the read, or all sticking out of it. */
		for (uint64_t c = s; c < e;) {
			bool in = c >= off && c + t->chunk <= off + len;
			uint64_t n = t->chunk;

			while (t->merge && c + n < e &&
			       (c + n >= off && c + n + t->chunk <= off + len) == in)
				n += t->chunk;
			if (nbd_pread(t->nbd, t->cbuf + (c - s), n, c, 0) == -1)
				die(t->name, nbd_get_error());
			c += n;
		}
		memcpy(buf, t->cbuf + (off - s), len);
		return;
	}
	if (t->nbd) {
		if (nbd_pread(t->nbd, buf, len, off, 0) == -1)
			die(t->name, nbd_get_error());
		return;
	}
	while (got < len) {
		ssize_t n = pread(t->fd, buf + got, len - got,
				  (off_t)(off + got));

		if (n < 0) {
			char what[512];

			snprintf(what, sizeof(what), "%s at 0x%" PRIx64,
				 t->name, off + got);
			die(what, strerror(errno));
		}
		if (n == 0)
			die(t->name, "unexpected end of file");
		got += (size_t)n;
	}
}

static void open_target(struct target *t, const char *name)
{
	t->name = name;
	t->fd = -1;
	t->nbd = NULL;
	if (strncmp(name, "nbd://", 6) == 0 ||
	    strncmp(name, "nbd+unix://", 11) == 0) {
		t->nbd = nbd_create();
		if (!t->nbd || nbd_connect_uri(t->nbd, name) == -1)
			die(name, nbd_get_error());
		return;
	}
	t->fd = open(name, O_RDONLY);
	if (t->fd < 0)
		die(name, strerror(errno));
}

static void usage(FILE *out)
{
	fprintf(out, "usage: ids_reader [-n NAME] [-s SEED] [-c CHUNK] TARGET "
		"START LEN NSCATTER SCATTER_BS SCAN_START SCAN_LEN SCAN_BS\n"
		"  TARGET: a file (vmemfs ram) or an nbd:// URI\n"
		"  -c: NBD only, fetch the whole CHUNK-aligned chunks of each "
		"read, one request per chunk\n"
		"  -m: with -c, adjacent chunks in one request, as vmemfs's "
		"direct backend sends them\n");
}

int main(int argc, char **argv)
{
	const char *label = "run";
	uint64_t seed = 1, chunk = 0, start, len, nscatter, sbs, scan0, scanlen, scanbs;
	uint64_t rng, bytes = 0, h = 0xcbf29ce484222325ULL;
	unsigned char *buf;
	struct target t = { 0 };
	bool merge = false;
	double t0, t1, t2;
	int opt;

	while ((opt = getopt(argc, argv, "n:s:c:mh")) != -1) {
		switch (opt) {
		case 'm':
			merge = true;
			break;
		case 'c':
			chunk = parse_size(optarg);
			if (!chunk || (chunk & (chunk - 1)))
				die(optarg, "chunk is not a power of two");
			break;
		case 'n':
			label = optarg;
			break;
		case 's':
			seed = parse_size(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 8) {
		usage(stderr);
		return 2;
	}
	start = parse_size(argv[optind + 1]);
	len = parse_size(argv[optind + 2]);
	nscatter = parse_size(argv[optind + 3]);
	sbs = parse_size(argv[optind + 4]);
	scan0 = parse_size(argv[optind + 5]);
	scanlen = parse_size(argv[optind + 6]);
	scanbs = parse_size(argv[optind + 7]);
	if (!sbs || !scanbs || len < sbs + 64 || scanlen % scanbs)
		die("arguments", "need SCATTER_BS > 0, LEN > SCATTER_BS + 64 "
		    "and SCAN_LEN a multiple of SCAN_BS > 0");
	buf = malloc(sbs > scanbs ? sbs : scanbs);
	if (!buf)
		die("malloc", strerror(ENOMEM));
	open_target(&t, argv[optind]);
	if (merge && !chunk)
		die("-m", "needs -c CHUNK");
	if (chunk) {
		uint64_t most = sbs > scanbs ? sbs : scanbs;

		if (!t.nbd)
			die("-c", "only for an NBD target");
		t.chunk = chunk;
		t.merge = merge;
		t.cbuf = malloc((most + 2 * chunk) & ~(chunk - 1));
		if (!t.cbuf)
			die("malloc", strerror(ENOMEM));
	}

	rng = seed;
	t0 = bench_now_s();
	for (uint64_t i = 0; i < nscatter; i++) {
		uint64_t off = start + (splitmix64(&rng) % (len - sbs)) / 64 * 64;

		read_exact(&t, buf, sbs, off);
		h = mix(h, buf, sbs);
		bytes += sbs;
	}
	t1 = bench_now_s();
	for (uint64_t off = scan0; off < scan0 + scanlen; off += scanbs) {
		read_exact(&t, buf, scanbs, off);
		h = mix(h, buf, scanbs);
		bytes += scanbs;
	}
	t2 = bench_now_s();
	printf("result name=%s scatter_s=%.4f scan_s=%.4f total_s=%.4f "
	       "bytes=%" PRIu64 " sum=0x%016" PRIx64 "\n", label, t1 - t0,
	       t2 - t1, t2 - t0, bytes, h);
	if (t.nbd) {
		nbd_shutdown(t.nbd, 0);
		nbd_close(t.nbd);
	} else {
		close(t.fd);
	}
	free(t.cbuf);
	free(buf);
	return 0;
}
