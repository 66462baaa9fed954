// SPDX-License-Identifier: MIT
/*
 * memread: the measuring client of the vmemfs benchmark (scripts/bench.sh).
 *
 * The same program measures every side of every ratio, so that the
 * numbers differ only in what is being read, not in how:
 *
 *   seq     FILE OFF LEN BS          sequential pread()s of BS over the
 *                                    range, repeated for at least -t s
 *   rand    FILE OFF LEN BS N        N pread()s of BS at random BS-aligned
 *                                    offsets in the range; latency each
 *   nbdseq  URI  OFF LEN BS DEPTH    the range read with libnbd, DEPTH
 *                                    nbd_aio_pread()s kept in flight
 *   nbdrand URI  OFF LEN BS N        N synchronous nbd_pread()s of BS at
 *                                    random offsets; latency each
 *   fill    FILE OFF LEN SEED        write the test pattern into a file
 *   nbdfill URI  OFF LEN SEED        write the test pattern to an export
 *   check   FILE OFF LEN SEED        read and compare with the pattern
 *
 * Options (before the mode): -n NAME labels the result line, -t SECS is
 * the minimum run time of seq/nbdseq, -T SECS stops rand/nbdrand early
 * after that long (so a pathologically slow daemon cannot stall the whole
 * bench; n= in the result says how many reads were made), -s SEED seeds
 * the random offsets.
 * Sizes take K/M/G suffixes (powers of 1024).
 *
 * Every run prints one line that scripts can parse:
 *   result name=N mode=M bytes=B secs=S GiBps=G
 *   result name=N mode=M n=N mean_us=A p50_us=B p99_us=C min_us=D max_us=E
 *   result name=N mode=check bytes=B ok=1
 *
 * Reads go through plain pread(): vmemfs and refdaemon open `mem` with
 * direct_io, so every pread() is one FUSE request of exactly BS bytes,
 * with no page cache and no read-ahead to blur the numbers.
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

#define MR_FILL_BS (1u << 20)

static const char *mr_name = "run";
static double mr_min_secs;
static double mr_max_secs;
static uint64_t mr_seed = 1;

static void mr_die(const char *fmt, const char *arg, const char *why)
{
	fprintf(stderr, "memread: ");
	fprintf(stderr, fmt, arg);
	if (why)
		fprintf(stderr, ": %s", why);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t mr_parse_size(const char *s)
{
	uint64_t v;

	if (bench_parse_size(s, &v) < 0)
		mr_die("bad size '%s'", s, NULL);
	return v;
}

/*
 * splitmix64's output function: the test pattern is a pure function of
 * (seed, offset), so fill and check need no shared state, and a daemon
 * that served the wrong offset or zeros would be caught.
 */
static uint64_t mr_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Pattern bytes for [off, off + len); off and len multiples of 8. */
static void mr_pattern(void *buf, uint64_t off, size_t len, uint64_t seed)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = mr_mix(seed ^ ((off / 8) + i));
}

/* xorshift64*: cheap, reproducible offsets for the random modes. */
static uint64_t mr_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static void *mr_alloc(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len ? len : 1))
		mr_die("out of memory%s", "", NULL);
	memset(p, 0, len);
	return p;
}

static void mr_check_range(uint64_t off, uint64_t len, uint64_t bs)
{
	if (bs == 0 || len < bs)
		mr_die("%s", "block size must be > 0 and <= length", NULL);
	if (off + len < off)
		mr_die("%s", "range overflows", NULL);
}

static int mr_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void mr_report_lat(const char *mode, double *lat, size_t n)
{
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += lat[i];
	qsort(lat, n, sizeof(*lat), mr_cmp_double);
	printf("result name=%s mode=%s n=%zu mean_us=%.2f p50_us=%.2f "
	       "p99_us=%.2f min_us=%.2f max_us=%.2f\n", mr_name, mode, n,
	       sum / n * 1e6, lat[n / 2] * 1e6, lat[(size_t)(n * 0.99)] * 1e6,
	       lat[0] * 1e6, lat[n - 1] * 1e6);
}

static void mr_report_bw(const char *mode, uint64_t bytes, double secs)
{
	printf("result name=%s mode=%s bytes=%" PRIu64 " secs=%.4f "
	       "GiBps=%.3f\n", mr_name, mode, bytes, secs,
	       bytes / secs / (1u << 30));
}

static int mr_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0)
		mr_die("%s", path, strerror(errno));
	return fd;
}

/* pread exactly @len or die: a short read would fake a fast result. */
static void mr_pread_all(int fd, const char *path, void *buf, size_t len,
			 uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			mr_die("read %s", path, strerror(errno));
		if (n == 0)
			mr_die("read %s", path, "unexpected end of file");
		done += n;
	}
}

static void mr_seq(const char *path, uint64_t off, uint64_t len,
		   uint64_t bs)
{
	int fd = mr_open(path, O_RDONLY);
	char *buf = mr_alloc(bs);
	uint64_t bytes = 0;
	double t0 = bench_now_s(), t;

	mr_check_range(off, len, bs);
	do {
		for (uint64_t o = off; o + bs <= off + len; o += bs) {
			mr_pread_all(fd, path, buf, bs, o);
			bytes += bs;
		}
		t = bench_now_s() - t0;
	} while (t < mr_min_secs);
	mr_report_bw("seq", bytes, t);
	free(buf);
	close(fd);
}

/*
 * @n reads of @bs at random @bs-aligned offsets in [off, off+len), each
 * by @rd, timed one by one (rand and nbdrand: only the read differs).
 */
static void mr_rand_reads(const char *mode, uint64_t off, uint64_t len,
			  uint64_t bs, uint64_t n,
			  void (*rd)(void *ctx, char *buf, uint64_t bs,
				     uint64_t off), void *ctx)
{
	char *buf = mr_alloc(bs);
	double *lat = mr_alloc(n * sizeof(*lat));
	uint64_t s = mr_seed, slots;
	double start;

	mr_check_range(off, len, bs);
	slots = len / bs;
	start = bench_now_s();
	for (uint64_t i = 0; i < n; i++) {
		uint64_t o = off + mr_rand(&s) % slots * bs;
		double t0 = bench_now_s();

		rd(ctx, buf, bs, o);
		lat[i] = bench_now_s() - t0;
		if (mr_max_secs && t0 + lat[i] - start > mr_max_secs)
			n = i + 1;
	}
	mr_report_lat(mode, lat, n);
	free(lat);
	free(buf);
}

struct mr_file {
	int fd;
	const char *path;
};

static void mr_file_read(void *ctx, char *buf, uint64_t bs, uint64_t off)
{
	struct mr_file *f = ctx;

	mr_pread_all(f->fd, f->path, buf, bs, off);
}

static void mr_rand_file(const char *path, uint64_t off, uint64_t len,
			 uint64_t bs, uint64_t n)
{
	struct mr_file f = { mr_open(path, O_RDONLY), path };

	mr_rand_reads("rand", off, len, bs, n, mr_file_read, &f);
	close(f.fd);
}

static struct nbd_handle *mr_nbd_connect(const char *uri)
{
	struct nbd_handle *nbd = nbd_create();

	if (!nbd)
		mr_die("%s", "nbd_create", nbd_get_error());
	if (nbd_connect_uri(nbd, uri) == -1)
		mr_die("connect %s", uri, nbd_get_error());
	return nbd;
}

static void mr_nbd_close(struct nbd_handle *nbd)
{
	nbd_shutdown(nbd, 0);
	nbd_close(nbd);
}

struct mr_slot {
	int64_t cookie;		/* 0 = free */
	char *buf;
};

/*
 * Keep @depth reads of @bs in flight over the range, the way a client
 * that wants throughput from one NBD connection would.  This is the
 * ceiling vmemfs's remote path is compared with.
 */
static void mr_nbdseq(const char *uri, uint64_t off, uint64_t len,
		      uint64_t bs, unsigned int depth)
{
	struct nbd_handle *nbd = mr_nbd_connect(uri);
	struct mr_slot *slot;
	uint64_t bytes = 0;
	double t0, t;

	mr_check_range(off, len, bs);
	if (depth == 0)
		mr_die("%s", "depth must be > 0", NULL);
	slot = mr_alloc(depth * sizeof(*slot));
	for (unsigned int i = 0; i < depth; i++)
		slot[i].buf = mr_alloc(bs);

	t0 = bench_now_s();
	do {
		uint64_t next = off;
		unsigned int inflight = 0;

		while (next + bs <= off + len || inflight) {
			for (unsigned int i = 0; i < depth; i++) {
				if (slot[i].cookie || next + bs > off + len)
					continue;
				slot[i].cookie = nbd_aio_pread(nbd,
					slot[i].buf, bs, next,
					NBD_NULL_COMPLETION, 0);
				if (slot[i].cookie == -1)
					mr_die("%s", "nbd_aio_pread",
					       nbd_get_error());
				next += bs;
				inflight++;
			}
			if (nbd_poll(nbd, -1) == -1)
				mr_die("%s", "nbd_poll", nbd_get_error());
			for (unsigned int i = 0; i < depth; i++) {
				int r;

				if (!slot[i].cookie)
					continue;
				r = nbd_aio_command_completed(nbd,
							      slot[i].cookie);
				if (r == -1)
					mr_die("%s", "nbd read",
					       nbd_get_error());
				if (r == 1) {
					slot[i].cookie = 0;
					inflight--;
					bytes += bs;
				}
			}
		}
		t = bench_now_s() - t0;
	} while (t < mr_min_secs);
	mr_report_bw("nbdseq", bytes, t);

	for (unsigned int i = 0; i < depth; i++)
		free(slot[i].buf);
	free(slot);
	mr_nbd_close(nbd);
}

static void mr_nbd_read(void *ctx, char *buf, uint64_t bs, uint64_t off)
{
	if (nbd_pread(ctx, buf, bs, off, 0) == -1)
		mr_die("%s", "nbd_pread", nbd_get_error());
}

static void mr_nbdrand(const char *uri, uint64_t off, uint64_t len,
		       uint64_t bs, uint64_t n)
{
	struct nbd_handle *nbd = mr_nbd_connect(uri);

	mr_rand_reads("nbdrand", off, len, bs, n, mr_nbd_read, nbd);
	mr_nbd_close(nbd);
}

static void mr_fill_file(const char *path, uint64_t off, uint64_t len,
			 uint64_t seed)
{
	int fd = mr_open(path, O_WRONLY);
	char *buf = mr_alloc(MR_FILL_BS);

	for (uint64_t o = off; o < off + len; o += MR_FILL_BS) {
		size_t n = off + len - o < MR_FILL_BS ? off + len - o
						      : MR_FILL_BS;

		mr_pattern(buf, o, n, seed);
		if (pwrite(fd, buf, n, o) != (ssize_t)n)
			mr_die("write %s", path, strerror(errno));
	}
	if (close(fd))
		mr_die("close %s", path, strerror(errno));
	free(buf);
}

static void mr_nbdfill(const char *uri, uint64_t off, uint64_t len,
		       uint64_t seed)
{
	struct nbd_handle *nbd = mr_nbd_connect(uri);
	char *buf = mr_alloc(MR_FILL_BS);

	for (uint64_t o = off; o < off + len; o += MR_FILL_BS) {
		size_t n = off + len - o < MR_FILL_BS ? off + len - o
						      : MR_FILL_BS;

		mr_pattern(buf, o, n, seed);
		if (nbd_pwrite(nbd, buf, n, o, 0) == -1)
			mr_die("%s", "nbd_pwrite", nbd_get_error());
	}
	if (nbd_flush(nbd, 0) == -1 && nbd_can_flush(nbd) == 1)
		mr_die("%s", "nbd_flush", nbd_get_error());
	free(buf);
	mr_nbd_close(nbd);
}

static void mr_check(const char *path, uint64_t off, uint64_t len,
		     uint64_t seed)
{
	int fd = mr_open(path, O_RDONLY);
	char *buf = mr_alloc(MR_FILL_BS), *want = mr_alloc(MR_FILL_BS);

	for (uint64_t o = off; o < off + len; o += MR_FILL_BS) {
		size_t n = off + len - o < MR_FILL_BS ? off + len - o
						      : MR_FILL_BS;

		mr_pread_all(fd, path, buf, n, o);
		mr_pattern(want, o, n, seed);
		if (memcmp(buf, want, n)) {
			size_t i = 0;

			while (buf[i] == want[i])
				i++;
			printf("result name=%s mode=check bytes=%" PRIu64
			       " ok=0 first_bad=%" PRIu64 "\n", mr_name,
			       len, o + i);
			exit(2);
		}
	}
	printf("result name=%s mode=check bytes=%" PRIu64 " ok=1\n",
	       mr_name, len);
	free(want);
	free(buf);
	close(fd);
}

static void mr_usage(FILE *out)
{
	fprintf(out,
		"usage: memread [-n NAME] [-t MINSECS] [-T MAXSECS] [-s SEED] "
		"MODE ARGS\n"
		"  seq     FILE OFF LEN BS\n"
		"  rand    FILE OFF LEN BS N\n"
		"  nbdseq  URI  OFF LEN BS DEPTH\n"
		"  nbdrand URI  OFF LEN BS N\n"
		"  fill    FILE OFF LEN SEED\n"
		"  nbdfill URI  OFF LEN SEED\n"
		"  check   FILE OFF LEN SEED\n");
}

int main(int argc, char **argv)
{
	const char *mode, *target;
	uint64_t off, len, a5 = 0, a6 = 0;
	int opt, nargs;

	while ((opt = getopt(argc, argv, "n:t:T:s:h")) != -1) {
		switch (opt) {
		case 'n':
			mr_name = optarg;
			break;
		case 't':
			mr_min_secs = strtod(optarg, NULL);
			break;
		case 'T':
			mr_max_secs = strtod(optarg, NULL);
			break;
		case 's':
			mr_seed = mr_parse_size(optarg) | 1;
			break;
		case 'h':
			mr_usage(stdout);
			return 0;
		default:
			mr_usage(stderr);
			return 1;
		}
	}
	nargs = argc - optind;
	if (nargs < 5) {
		mr_usage(stderr);
		return 1;
	}
	mode = argv[optind];
	target = argv[optind + 1];
	off = mr_parse_size(argv[optind + 2]);
	len = mr_parse_size(argv[optind + 3]);
	a5 = mr_parse_size(argv[optind + 4]);
	if (nargs >= 6)
		a6 = mr_parse_size(argv[optind + 5]);

	/* Modes with a sixth argument must have it, the others must not. */
	bool six = !strcmp(mode, "rand") || !strcmp(mode, "nbdseq") ||
		   !strcmp(mode, "nbdrand");
	if (nargs != (six ? 6 : 5)) {
		mr_usage(stderr);
		return 1;
	}
	if (six && (a6 == 0 || a6 > (1u << 26)))
		mr_die("%s", "count/depth must be 1..2^26", NULL);
	if ((off | len) % 8)
		mr_die("%s", "offset and length must be multiples of 8", NULL);

	if (!strcmp(mode, "seq"))
		mr_seq(target, off, len, a5);
	else if (!strcmp(mode, "rand"))
		mr_rand_file(target, off, len, a5, a6);
	else if (!strcmp(mode, "nbdseq"))
		mr_nbdseq(target, off, len, a5, a6);
	else if (!strcmp(mode, "nbdrand"))
		mr_nbdrand(target, off, len, a5, a6);
	else if (!strcmp(mode, "fill"))
		mr_fill_file(target, off, len, a5);
	else if (!strcmp(mode, "nbdfill"))
		mr_nbdfill(target, off, len, a5);
	else if (!strcmp(mode, "check"))
		mr_check(target, off, len, a5);
	else {
		mr_usage(stderr);
		return 1;
	}
	return 0;
}
