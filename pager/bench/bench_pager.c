// SPDX-License-Identifier: MIT
/*
 * bench_pager: what remote paging costs, measured against the same nbdkit.
 *
 *   page-in throughput (1 MiB chunk), fault driven and via page_in(),
 *   vs raw libnbd 1 MiB reads (one at a time, and pipelined);
 *   per-fault latency with 4K, 64K and 1M chunks;
 *   what one page_in() of a 64K chunk costs against a raw libnbd 64K
 *   read (and read + trim, the two round trips the old page-in made),
 *   and page_in() of a list of 16 x 64K ranges against 16 pipelined
 *   raw 64K reads.
 *
 * Usage: bench_pager [tcp|unix] [MiB] [latency]   (default tcp, 256 MiB;
 * "latency": only the one-chunk and 16-range page_in measurements)
 * Starts nbdkit (file plugin on a /dev/shm image) and kills it by PID.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include "../../common/pagerctl.h"
#include "../pager.h"

#define MiB ((uint64_t)1 << 20)
#define PG ((uint64_t)4096)
#define REPS 5

static char mem_path[128], img_path[128], sock[128], pidfile[128];
static char uri[256];
static pid_t nbdkit_pid;
static uint64_t size;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_pager: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void cleanup(void)
{
	char seq[160];

	if (nbdkit_pid > 0) {
		kill(nbdkit_pid, SIGTERM);
		waitpid(nbdkit_pid, NULL, 0);
	}
	snprintf(seq, sizeof(seq), "%s.seq", mem_path);
	unlink(seq);
	unlink(mem_path);
	unlink(img_path);
	unlink(sock);
	unlink(pidfile);
}

static void start_nbdkit(bool tcp)
{
	char fileopt[160];
	int port = 20000 + getpid() % 20000;

	snprintf(fileopt, sizeof(fileopt), "file=%s", img_path);
	if (tcp)
		snprintf(uri, sizeof(uri), "nbd://127.0.0.1:%d", port);
	else
		snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
	nbdkit_pid = fork();
	if (nbdkit_pid < 0)
		die("fork");
	if (nbdkit_pid == 0) {
		char portstr[16];

		snprintf(portstr, sizeof(portstr), "%d", port);
		if (tcp)
			execlp("nbdkit", "nbdkit", "-f", "--exit-with-parent",
			       "-i", "127.0.0.1", "-p", portstr, "-P", pidfile,
			       "file", fileopt, (char *)NULL);
		else
			execlp("nbdkit", "nbdkit", "-f", "--exit-with-parent",
			       "-U", sock, "-P", pidfile, "file", fileopt,
			       (char *)NULL);
		_exit(127);
	}
	for (int i = 0; access(pidfile, F_OK) != 0; i++) {
		if (i > 500) {
			fprintf(stderr, "nbdkit did not start\n");
			exit(1);
		}
		usleep(10000);
	}
}

/* Fill the sub-host image with non-zero data and empty the memory file. */
static void reset(int mem_fd)
{
	int img = open(img_path, O_RDWR);
	char *b = malloc(MiB);

	if (img < 0 || !b)
		die("image");
	for (uint64_t o = 0; o < size; o += MiB) {
		for (uint64_t i = 0; i < MiB; i += 8)
			*(uint64_t *)(b + i) = (o + i) * 0x9E3779B97F4A7C15ULL;
		if (pwrite(img, b, MiB, (off_t)o) != (ssize_t)MiB)
			die("pwrite image");
	}
	close(img);
	free(b);
	if (fallocate(mem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)size))
		die("punch");
}

static double raw_nbd(bool pipelined)
{
	struct nbd_handle *h = nbd_create();
	char *b = malloc(pipelined ? 64 * MiB : MiB);
	double t0;

	if (!h || !b || nbd_connect_uri(h, uri) == -1) {
		fprintf(stderr, "%s\n", nbd_get_error());
		exit(1);
	}
	t0 = now_s();
	if (!pipelined) {
		for (uint64_t o = 0; o < size; o += MiB)
			if (nbd_pread(h, b, MiB, o, 0) == -1)
				exit(1);
	} else {
		/* 16 x 1 MiB in flight */
		for (uint64_t o = 0; o < size; o += 16 * MiB) {
			for (int k = 0; k < 16; k++)
				if (nbd_aio_pread(h, b + k * MiB, MiB,
						  o + k * MiB,
						  NBD_NULL_COMPLETION, 0) == -1)
					exit(1);
			while (nbd_aio_in_flight(h) > 0)
				if (nbd_poll(h, -1) == -1)
					exit(1);
		}
	}
	t0 = now_s() - t0;
	nbd_shutdown(h, 0);
	nbd_close(h);
	free(b);
	return size / MiB / t0;
}

static char ctl_path[96];

static struct vmem_pager *mkpager(char *map, int mem_fd, uint64_t chunk)
{
	struct vmem_pager_subhost sub = { uri, 0, size };
	struct vmem_pager_params p = {
		.host_addr = map, .size = size, .mem_fd = mem_fd,
		.mem_path = mem_path, .chunk_size = chunk,
		.subhosts = &sub, .n_subhosts = 1,
		.ctl_path = ctl_path[0] ? ctl_path : NULL,
	};
	char err[256];
	struct vmem_pager *pg = vmem_pager_new(&p, err, sizeof(err));

	if (!pg || vmem_pager_start(pg)) {
		fprintf(stderr, "pager: %s\n", err);
		exit(1);
	}
	return pg;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v)
{
	qsort(v, REPS, sizeof(*v), cmp_d);
	return v[REPS / 2];
}

#define NLAT 1000

/* One request on the control socket: 0 when it succeeded. */
static int ctl_call(int fd, uint16_t op, uint64_t off, uint64_t len)
{
	struct {
		struct vmem_ctl_req rq;
		struct vmem_ctl_range rg;
	} m = { { VMEM_CTL_MAGIC, op, op == VMEM_CTL_PING ? 0 : 1, 1 },
		{ off, len } };
	struct vmem_ctl_reply rp;
	size_t got = 0, l = op == VMEM_CTL_PING ? sizeof(m.rq) : sizeof(m);

	if (write(fd, &m, l) != (ssize_t)l)
		return -1;
	while (got < sizeof(rp)) {
		ssize_t r = read(fd, (char *)&rp + got, sizeof(rp) - got);

		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return rp.err;
}

static double p50_us(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return v[n / 2] * 1e6;
}

/* Chunk-aligned offsets in a shuffled order, each used once. */
static void shuffled(uint64_t *o, size_t n, uint64_t unit)
{
	for (size_t i = 0; i < n; i++)
		o[i] = (uint64_t)i * (size / unit / n) * unit;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1);
		uint64_t t = o[i];

		o[i] = o[j];
		o[j] = t;
	}
}

static void pagein_latency(char *map, int mem_fd)
{
	const uint64_t cs = 64 << 10;
	struct nbd_handle *h = nbd_create();
	static double lat[NLAT];
	static uint64_t off[NLAT];
	struct vmem_pager_range rg[16];
	char err[256], *b = malloc(16 * cs);
	double raw, rawtrim, pin, pinheld, raw16, pin16, ping, pctl, alloc64;
	double t0;
	struct vmem_pager *pg;
	size_t n16 = size / (16 * cs) < 200 ? size / (16 * cs) : 200;

	if (!h || !b || nbd_connect_uri(h, uri) == -1) {
		fprintf(stderr, "%s\n", nbd_get_error());
		exit(1);
	}
	reset(mem_fd);
	shuffled(off, NLAT, cs);
	for (size_t i = 0; i < NLAT; i++) {
		t0 = now_s();
		if (nbd_pread(h, b, cs, off[i], 0) == -1)
			exit(1);
		lat[i] = now_s() - t0;
	}
	raw = p50_us(lat, NLAT);
	for (size_t i = 0; i < NLAT; i++) {
		t0 = now_s();
		if (nbd_pread(h, b, cs, off[i], 0) == -1 ||
		    nbd_trim(h, cs, off[i], 0) == -1)
			exit(1);
		lat[i] = now_s() - t0;
	}
	rawtrim = p50_us(lat, NLAT);
	/* 16 x 64K pipelined, one round trip */
	reset(mem_fd);
	shuffled(off, n16, 16 * cs);
	for (size_t i = 0; i < n16; i++) {
		t0 = now_s();
		for (int k = 0; k < 16; k++)
			if (nbd_aio_pread(h, b + k * cs, cs, off[i] + k * cs,
					  NBD_NULL_COMPLETION, 0) == -1)
				exit(1);
		while (nbd_aio_in_flight(h) > 0)
			if (nbd_poll(h, -1) == -1)
				exit(1);
		lat[i] = now_s() - t0;
	}
	raw16 = p50_us(lat, n16);

	reset(mem_fd);
	pg = mkpager(map, mem_fd, cs);
	shuffled(off, NLAT, cs);
	for (size_t i = 0; i < NLAT; i++) {
		t0 = now_s();
		if (vmem_pager_page_in(pg, off[i], cs, err, sizeof(err))) {
			fprintf(stderr, "page_in: %s\n", err);
			exit(1);
		}
		lat[i] = now_s() - t0;
	}
	pin = p50_us(lat, NLAT);
	vmem_pager_free(pg);

	/* The same with the trims held back: what they cost meanwhile. */
	reset(mem_fd);
	pg = mkpager(map, mem_fd, cs);
	vmem_pager_trim_hold(pg, true);
	for (size_t i = 0; i < NLAT; i++) {
		t0 = now_s();
		if (vmem_pager_page_in(pg, off[i], cs, err, sizeof(err))) {
			fprintf(stderr, "page_in: %s\n", err);
			exit(1);
		}
		lat[i] = now_s() - t0;
	}
	pinheld = p50_us(lat, NLAT);
	vmem_pager_free(pg);

	reset(mem_fd);
	pg = mkpager(map, mem_fd, cs);
	shuffled(off, n16, 16 * cs);
	for (size_t i = 0; i < n16; i++) {
		for (int k = 0; k < 16; k++)
			rg[k] = (struct vmem_pager_range){ off[i] + k * cs,
							   cs };
		t0 = now_s();
		if (vmem_pager_page_in_ranges(pg, rg, 16, err, sizeof(err))) {
			fprintf(stderr, "page_in_ranges: %s\n", err);
			exit(1);
		}
		lat[i] = now_s() - t0;
	}
	pin16 = p50_us(lat, n16);
	vmem_pager_free(pg);

	/*
	 * The floor of installing a chunk: new tmpfs pages of 64K, written
	 * (allocation, accounting, copy; UFFDIO_COPY does the same work).
	 */
	{
		char scratch[160];
		int sfd;

		snprintf(scratch, sizeof(scratch), "%s.scratch", mem_path);
		sfd = open(scratch, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (sfd < 0 || ftruncate(sfd, (off_t)(NLAT * cs)))
			die("scratch file");
		for (size_t i = 0; i < NLAT; i++) {
			t0 = now_s();
			if (pwrite(sfd, b, cs, (off_t)(i * cs)) != (ssize_t)cs)
				die("pwrite scratch");
			lat[i] = now_s() - t0;
		}
		alloc64 = p50_us(lat, NLAT);
		close(sfd);
		unlink(scratch);
	}

	/* The control socket: a round trip, and a 64K page-in through it. */
	snprintf(ctl_path, sizeof(ctl_path), "/tmp/bpager.%d.ctl", getpid());
	reset(mem_fd);
	pg = mkpager(map, mem_fd, cs);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ctl_path);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			die("connect control socket");
		for (size_t i = 0; i < NLAT; i++) {
			t0 = now_s();
			if (ctl_call(fd, VMEM_CTL_PING, 0, 0))
				die("ping");
			lat[i] = now_s() - t0;
		}
		ping = p50_us(lat, NLAT);
		shuffled(off, NLAT, cs);
		for (size_t i = 0; i < NLAT; i++) {
			t0 = now_s();
			if (ctl_call(fd, VMEM_CTL_PAGE_IN, off[i], cs))
				die("control socket page-in");
			lat[i] = now_s() - t0;
		}
		pctl = p50_us(lat, NLAT);
		close(fd);
	}
	vmem_pager_free(pg);
	ctl_path[0] = '\0';
	nbd_shutdown(h, 0);
	nbd_close(h);
	free(b);

	printf("one 64K chunk (p50 of %d, shuffled, nothing local):\n", NLAT);
	printf("  raw libnbd 64K read:                  %7.1f us\n", raw);
	printf("  raw libnbd 64K read + trim:           %7.1f us\n",
	       rawtrim);
	printf("  page_in() of 64K:                     %7.1f us  "
	       "(%.2fx raw read)\n", pin, pin / raw);
	printf("  page_in() of 64K, no trim sent:       %7.1f us  "
	       "(%.2fx raw read)\n", pinheld, pinheld / raw);
	printf("  64K of new tmpfs pages (install floor):%7.1f us\n", alloc64);
	printf("  control socket round trip (ping):     %7.1f us\n", ping);
	printf("  page-in of 64K by control socket:     %7.1f us  "
	       "(%.2fx raw read)\n", pctl, pctl / raw);
	printf("16 x 64K (p50 of %zu):\n", n16);
	printf("  raw libnbd, 16 reads pipelined:       %7.1f us\n", raw16);
	printf("  page_in() of a list of 16 ranges:     %7.1f us  "
	       "(%.2fx raw)\n", pin16, pin16 / raw16);
}

int main(int argc, char **argv)
{
	bool tcp = !(argc > 1 && strcmp(argv[1], "unix") == 0);
	double raw1, rawp, fault_tp, api_tp, t0;
	double r_raw1[REPS], r_rawp[REPS], r_fault[REPS], r_api[REPS];
	uint64_t chunks[] = { 4096, 64 << 10, 1 << 20 };
	volatile uint64_t sink = 0;
	struct vmem_pager *pg;
	char err[256], *map;
	int mem_fd, img;

	size = (argc > 2 ? strtoull(argv[2], NULL, 0) : 256) * MiB;
	snprintf(mem_path, sizeof(mem_path), "/dev/shm/bpager.%d.mem",
		 getpid());
	snprintf(img_path, sizeof(img_path), "/dev/shm/bpager.%d.img",
		 getpid());
	snprintf(sock, sizeof(sock), "/tmp/bpager.%d.sock", getpid());
	snprintf(pidfile, sizeof(pidfile), "/tmp/bpager.%d.pid", getpid());
	atexit(cleanup);
	mem_fd = open(mem_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	img = open(img_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (mem_fd < 0 || img < 0 || ftruncate(mem_fd, (off_t)size) ||
	    ftruncate(img, (off_t)size))
		die("files");
	close(img);
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd, 0);
	if (map == MAP_FAILED)
		die("mmap");
	start_nbdkit(tcp);
	printf("nbdkit file plugin over %s, %" PRIu64 " MiB\n",
	       tcp ? "loopback TCP" : "unix socket", size / MiB);

	/* "latency" as the third argument: only the 64K page_in part. */
	if (argc > 3 && strcmp(argv[3], "latency") == 0) {
		pagein_latency(map, mem_fd);
		return 0;
	}
	/* Median of REPS interleaved runs: this machine is shared. */
	for (int rep = 0; rep < REPS; rep++) {
		reset(mem_fd);
		r_raw1[rep] = raw_nbd(false);
		r_rawp[rep] = raw_nbd(true);

		/* Fault driven: touch one byte per page in order. */
		reset(mem_fd);
		pg = mkpager(map, mem_fd, MiB);
		t0 = now_s();
		for (uint64_t o = 0; o < size; o += PG)
			sink += *(volatile char *)(map + o);
		r_fault[rep] = size / MiB / (now_s() - t0);
		vmem_pager_free(pg);

		reset(mem_fd);
		pg = mkpager(map, mem_fd, MiB);
		t0 = now_s();
		if (vmem_pager_page_in(pg, 0, size, err, sizeof(err))) {
			fprintf(stderr, "page_in: %s\n", err);
			return 1;
		}
		r_api[rep] = size / MiB / (now_s() - t0);
		vmem_pager_free(pg);
	}
	raw1 = median(r_raw1);
	rawp = median(r_rawp);
	fault_tp = median(r_fault);
	api_tp = median(r_api);
	printf("(median of %d runs)\n", REPS);

	printf("raw libnbd 1 MiB reads, one at a time:  %8.0f MiB/s\n", raw1);
	printf("raw libnbd 1 MiB reads, 16 in flight:   %8.0f MiB/s\n", rawp);
	printf("page-in by faults, 1 MiB chunk:         %8.0f MiB/s  "
	       "(%.2fx one-at-a-time, %.2fx pipelined)\n", fault_tp,
	       fault_tp / raw1, fault_tp / rawp);
	printf("page-in by page_in(), 1 MiB chunk:      %8.0f MiB/s  "
	       "(%.2fx one-at-a-time, %.2fx pipelined)\n", api_tp,
	       api_tp / raw1, api_tp / rawp);

	/* Per-fault latency: one touch per chunk, in a shuffled order. */
	printf("per-fault latency (touch to data, incl. fetch+install):\n");
	for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		uint64_t cs = chunks[k], n = size / cs;
		double *lat;
		uint64_t *order;

		if (n > 2048)
			n = 2048;
		lat = calloc(n, sizeof(*lat));
		order = calloc(n, sizeof(*order));
		for (uint64_t i = 0; i < n; i++)
			order[i] = i * (size / cs / n);
		for (uint64_t i = n - 1; i > 0; i--) {
			uint64_t j = (uint64_t)rand() % (i + 1), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		reset(mem_fd);
		pg = mkpager(map, mem_fd, cs);
		for (uint64_t i = 0; i < n; i++) {
			t0 = now_s();
			sink += *(volatile char *)(map + order[i] * cs);
			lat[i] = (now_s() - t0) * 1e6;
		}
		vmem_pager_free(pg);
		qsort(lat, n, sizeof(*lat), cmp_d);
		{
			double sum = 0;

			for (uint64_t i = 0; i < n; i++)
				sum += lat[i];
			printf("  chunk %5" PRIu64 "K: mean %7.1f us  p50 %7.1f"
			       "  p99 %7.1f  (%6.1f us per 4K page, %" PRIu64
			       " faults)\n", cs >> 10, sum / n, lat[n / 2],
			       lat[n * 99 / 100], sum / n / (cs / PG), n);
		}
		free(lat);
		free(order);
	}
	pagein_latency(map, mem_fd);
	(void)sink;
	munmap(map, size);
	close(mem_fd);
	return 0;
}
