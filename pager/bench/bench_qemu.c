// SPDX-License-Identifier: MIT
/*
 * bench_qemu: what remote paging costs a real split VM (scripts/bench-qemu.sh
 * runs it; `bench_qemu -h` for the options).
 *
 * Setup: the patched QEMU runs the test guest (TCG, 1 vCPU, 512 MiB) whose
 * RAM above 32M is homed on nbdkit (memory plugin) in a network namespace
 * of its own, reached over a veth pair, with a 1 MiB chunk and no
 * local-limit (nothing is evicted behind the benchmark's back).  Before
 * boot the sub-host is filled with pseudo-random data, so that every page
 * read from it is data, not a hole that NBD can answer without a payload
 * (real RAM is not zero either; the guest writes what it uses).
 *
 * (a) The guest reads a 128 MiB tmpfs file with dd: all of it local, then
 *     with half of its pages on the sub-host, then all of them.  "Half"
 *     is by RAM address, as a split VM is split: the host finds where each
 *     page of the file is (every page names itself), and pages out the RAM
 *     range above the median page, with everything else that lives there.
 *     Before a local run, the range is paged back in.
 * (b) With the guest paused: vmem-page-in of 256 MiB that are all on the
 *     sub-host, against raw libnbd reads of the same 256 MiB from the same
 *     sub-host, 1 MiB at a time and 16 in flight.
 *
 * (c) With the guest running: a counter loop in the guest (vmt-procs
 *     spin, 20 ms steps of its own clock) while the host pages in 256 MiB
 *     that are on the sub-host, by QMP vmem-page-in and by the pager's
 *     control socket.  The ratio, in one run, is the loop's rate in the
 *     steps of the page-in (the host's clock lined up with the guest's
 *     over the console, within its round trip) over its median rate
 *     in the rest of the run (target >= 0.8); a run with no page-in,
 *     the same steps, gives the noise.
 *
 * Every measurement is repeated (-r, default 3), interleaved, and the
 * median reported.  Everything started is killed by PID at exit, also on
 * SIGINT/SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libnbd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../common/pagerctl.h"

#include "../../tests/lib/guest.h"
#include "../../tests/lib/hosts.h"

#define MiB ((uint64_t)1 << 20)
#define PAGE 4096
#define RAM (512 * MiB)
#define HOME_START (32 * MiB)
#define CHUNK MiB
#define PAGEIN_START (256 * MiB)
#define PAGEIN_LEN (256 * MiB)
#define MAX_REPS 9

static struct {
	struct vt_guest guest;
	struct vt_nbdkit sub;
	struct vt_netns ns;
	char dir[64], conf[128], mem[128];
	pid_t pid;
} S;

static int reps = 5;
static double console_s;	/* round trip of an empty command */
static unsigned int file_mib = 128;

static void down(void)
{
	char path[256];

	if (getpid() != S.pid)
		return;
	vt_guest_stop(&S.guest, 3000);
	vt_nbdkit_kill(&S.sub);
	vt_netns_delete(&S.ns);
	if (S.mem[0]) {
		unlink(S.mem);
		snprintf(path, sizeof(path), "%s.seq", S.mem);
		unlink(path);
		snprintf(path, sizeof(path), "%.150s.ctl", S.mem);
		unlink(path);
		S.mem[0] = '\0';
	}
	if (S.dir[0]) {
		snprintf(path, sizeof(path), "%s/qemu.log", S.dir);
		unlink(path);
		unlink(S.conf);
		rmdir(S.dir);
		S.dir[0] = '\0';
	}
}

static void on_signal(int sig)
{
	down();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						     noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench_qemu: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench_qemu: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	double s[MAX_REPS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void qmp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void qmp(const char *fmt, ...)
{
	char cmd[512], reply[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (vt_guest_qmp(&S.guest, cmd, reply, sizeof(reply), 120000) != 0)
		die("QMP %s: %s", cmd, reply);
}

static void page_out(uint64_t off, uint64_t len)
{
	qmp("{\"execute\":\"vmem-page-out\",\"arguments\":{\"offset\":%"
	    PRIu64 ",\"length\":%" PRIu64 "}}", off, len);
}

static void page_in(uint64_t off, uint64_t len)
{
	qmp("{\"execute\":\"vmem-page-in\",\"arguments\":{\"offset\":%"
	    PRIu64 ",\"length\":%" PRIu64 "}}", off, len);
}

/*
 * Seconds the guest needs for @cmd, measured on the host around the
 * console round trip, less the round trip of an empty command (the guest
 * has no clock finer than 10 ms).
 */
static double guest_time(const char *cmd)
{
	char out[4096];
	double t0 = vt_now_ms(), t;
	int st = vt_guest_run(&S.guest, cmd, out, sizeof(out), 240000);

	if (st != 0)
		die("guest `%s` -> %d: %s", cmd, st, out);
	t = (vt_now_ms() - t0) / 1000 - console_s;
	return t > 0 ? t : 0;
}

/* ---- (c) the guest's counter loop during a page-in ---- */

#define SPIN_MS 3000
#define SPIN_STEP_MS 20
#define SPIN_N (SPIN_MS / SPIN_STEP_MS)
#define SPIN_SKIP 10		/* the loop's first steps fault it in */

/* vmem page-in of [off, off + len) on the pager's control socket. */
static void ctl_page_in(uint64_t off, uint64_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct {
		struct vmem_ctl_req rq;
		struct vmem_ctl_range rg;
	} m = { { VMEM_CTL_MAGIC, VMEM_CTL_PAGE_IN, 1, 7 }, { off, len } };
	struct vmem_ctl_reply rp;
	size_t got = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s.ctl", S.mem);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, &m, sizeof(m)) != (ssize_t)sizeof(m))
		die("control socket %s: %s", sa.sun_path, strerror(errno));
	while (got < sizeof(rp)) {
		ssize_t r = read(fd, (char *)&rp + got, sizeof(rp) - got);

		if (r <= 0)
			die("control socket: no reply");
		got += (size_t)r;
	}
	close(fd);
	if (rp.err)
		die("control socket page-in: %s", rp.msg);
}

enum spin_load { SPIN_IDLE, SPIN_QMP, SPIN_CTL };

static int cmp_ul(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a;
	unsigned long y = *(const unsigned long *)b;

	return x < y ? -1 : x > y;
}

/*
 * Run the counter loop for SPIN_MS; after 1 s, page in 256 MiB (or not).
 * Returns the loop's rate during the steps [*a, *b) (those of the
 * page-in, from the host's clock; with no page-in, the same steps as the
 * run before) over its median rate in the other steps of the same run.
 */
static double spin(enum spin_load load, size_t *a, size_t *b,
		   double *pagein_ms)
{
	char out[8192], *p;
	unsigned long c[SPIN_N], rest[SPIN_N];
	double t0, g0, gnow, sum = 0;
	size_t n = 0, nrest = 0;
	int st;

	page_out(PAGEIN_START, PAGEIN_LEN);
	st = vt_guest_run(&S.guest, "rm -f /tmp/spin /tmp/spin.done; "
			  "(vmt-procs spin 3000 20 > /tmp/spin; "
			  "touch /tmp/spin.done) &", out, sizeof(out), 10000);
	if (st != 0)
		die("guest spin: %d: %s", st, out);
	usleep(1000000);
	/*
	 * Line the clocks up: the loop's start and the guest's "now", in
	 * the guest's clock, and the host's clock when the answer came (the
	 * guest printed "now" within the console's round trip before).
	 */
	st = vt_guest_run(&S.guest, "cat /tmp/spin.t0; vmt-procs now", out,
			  sizeof(out), 10000);
	t0 = vt_now_ms();
	if (st != 0 || sscanf(out, "%lf %lf", &g0, &gnow) != 2)
		die("guest spin clock: %d: %s", st, out);
	if (load != SPIN_IDLE) {
		double t1 = vt_now_ms(), at;

		if (load == SPIN_QMP)
			page_in(PAGEIN_START, PAGEIN_LEN);
		else
			ctl_page_in(PAGEIN_START, PAGEIN_LEN);
		*pagein_ms = vt_now_ms() - t1;
		/* The page-in's start in the loop's own time. */
		at = gnow - g0 + (t1 - t0);
		if (at < 0)
			die("guest spin: the loop started after the page-in");
		*a = (size_t)(at / SPIN_STEP_MS);
		*b = (size_t)((at + *pagein_ms) / SPIN_STEP_MS) + 1;
		if (*b > SPIN_N)
			*b = SPIN_N;
	}
	st = vt_guest_run(&S.guest, "i=0; while [ ! -e /tmp/spin.done ] && "
			  "[ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; "
			  "cat /tmp/spin", out, sizeof(out), 40000);
	if (st != 0)
		die("guest cat /tmp/spin: %d: %s", st, out);
	for (p = out; n < SPIN_N && *p; n++) {
		char *e;

		c[n] = strtoul(p, &e, 10);
		if (e == p)
			break;
		p = e;
	}
	if (n != SPIN_N)
		die("guest spin: %zu of %d steps", n, SPIN_N);
	for (size_t i = SPIN_SKIP; i < n; i++) {
		/* Two steps of margin: the clocks are not the same. */
		if (i + 2 >= *a && i < *b + 2)
			continue;
		rest[nrest++] = c[i];
	}
	for (size_t i = *a; i < *b; i++)
		sum += (double)c[i];
	qsort(rest, nrest, sizeof(rest[0]), cmp_ul);
	if (!nrest || *b <= *a || !rest[nrest / 2])
		die("guest spin: no steps to compare");
	return sum / (double)(*b - *a) / (double)rest[nrest / 2];
}

static bool resident(int fd, uint64_t off)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);

	return d >= 0 && (uint64_t)d == off;
}

/* ---- raw libnbd reads of the page-in range ---- */

static double raw_read(unsigned int in_flight)
{
	char err[512];
	struct nbd_handle *h = vt_nbd_connect(S.sub.uri, 5000, err,
					      sizeof(err));
	char *buf = malloc(16 * MiB);
	double t0;

	if (!h || !buf)
		die("raw read: %s", h ? "out of memory" : err);
	t0 = vt_now_ms();
	for (uint64_t o = 0; o < PAGEIN_LEN; o += in_flight * MiB) {
		if (in_flight == 1) {
			if (nbd_pread(h, buf, MiB, PAGEIN_START + o, 0) == -1)
				die("nbd_pread: %s", nbd_get_error());
			continue;
		}
		for (unsigned int k = 0; k < in_flight &&
		     o + k * MiB < PAGEIN_LEN; k++)
			if (nbd_aio_pread(h, buf + k * MiB, MiB,
					  PAGEIN_START + o + k * MiB,
					  NBD_NULL_COMPLETION, 0) == -1)
				die("nbd_aio_pread: %s", nbd_get_error());
		while (nbd_aio_in_flight(h) > 0)
			if (nbd_poll(h, -1) == -1)
				die("nbd_poll: %s", nbd_get_error());
	}
	t0 = vt_now_ms() - t0;
	nbd_shutdown(h, 0);
	nbd_close(h);
	free(buf);
	return PAGEIN_LEN / (double)MiB / (t0 / 1000);
}

/* ---- setup ---- */

static void prefill_subhost(void)
{
	char err[512];
	struct nbd_handle *h = vt_nbd_connect(S.sub.uri, 5000, err,
					      sizeof(err));
	char *buf = malloc(MiB);

	if (!h || !buf)
		die("prefill: %s", h ? "out of memory" : err);
	for (uint64_t o = HOME_START; o < RAM; o += MiB) {
		vt_pattern_fill(buf, o, MiB, 0xbe7c4);
		if (nbd_pwrite(h, buf, MiB, o, 0) == -1)
			die("prefill: %s", nbd_get_error());
	}
	nbd_shutdown(h, 0);
	nbd_close(h);
	free(buf);
}

static void up(void)
{
	struct vt_guest_opts o = { 0 };
	char name[32], err[1024];
	FILE *f;
	int rc = -1;

	snprintf(S.dir, sizeof(S.dir), "/tmp/vmt-bq.XXXXXX");
	if (!mkdtemp(S.dir)) {
		S.dir[0] = '\0';
		die("mkdtemp: %s", strerror(errno));
	}
	snprintf(S.mem, sizeof(S.mem), "/dev/shm/vmt-bq-%d.mem", (int)S.pid);
	unlink(S.mem);
	snprintf(S.conf, sizeof(S.conf), "%s/vmemtrans.conf", S.dir);
	snprintf(name, sizeof(name), "vmt-bq-%d", (int)S.pid);
	/* Another test's namespace may hold a subnet; try a few. */
	for (int i = 0; i < 4 && rc < 0; i++)
		rc = vt_netns_create(&S.ns, name, 15600 + (S.pid + i * 97) % 400,
				     err, sizeof(err));
	if (rc < 0)
		die("netns: %s", err);
	snprintf(S.sub.netns, sizeof(S.sub.netns), "%s", S.ns.name);
	snprintf(S.sub.addr, sizeof(S.sub.addr), "%s", S.ns.ns_addr);
	S.sub.port = 10809;
	snprintf(S.sub.size, sizeof(S.sub.size), "%" PRIu64 "M", RAM / MiB);
	if (vt_nbdkit_start(&S.sub, true, err, sizeof(err)) < 0)
		die("nbdkit: %s", err);
	prefill_subhost();

	f = fopen(S.conf, "w");
	if (!f)
		die("%s: %s", S.conf, strerror(errno));
	fprintf(f, "[bench]\nmemory-file = %s\nram-size = %" PRIu64 "M\n"
		"chunk-size = %" PRIu64 "K\nsubhost = %s %" PRIu64 "M-%" PRIu64
		"M\n", S.mem, RAM / MiB, CHUNK / 1024, S.sub.uri,
		HOME_START / MiB, RAM / MiB);
	fclose(f);
	o.mem_path = S.mem;
	o.ram_size = RAM;
	o.vmem_config = S.conf;
	o.vmem_vm = "bench";
	o.run_dir = S.dir;
	o.boot_timeout_ms = 90000;
	if (vt_guest_start(&S.guest, &o, err, sizeof(err)) < 0)
		die("boot: %s", err);
	note("guest booted in %.1f s; sub-host %s in netns %s",
	     S.guest.boot_ms / 1000, S.sub.uri, S.ns.name);
}

/*
 * Where the guest's file is: pread the memory file (never map it) and
 * collect the RAM offset of every page that names itself as ours.
 */
static uint64_t *locate(unsigned int npages, unsigned int tag)
{
	uint64_t *where = calloc(npages, sizeof(*where));
	char *buf = malloc(MiB), hdr[32];
	unsigned int found = 0;
	int fd = open(S.mem, O_RDONLY);

	if (!where || !buf || fd < 0)
		die("locate: %s", strerror(errno));
	snprintf(hdr, sizeof(hdr), "VMTBQ-%05u-", tag);
	for (uint64_t o = 0; o < RAM; o += MiB) {
		if (pread(fd, buf, MiB, (off_t)o) != (ssize_t)MiB)
			die("pread %s: %s", S.mem, strerror(errno));
		for (size_t p = 0; p < MiB; p += PAGE) {
			unsigned int i;

			if (memcmp(buf + p, hdr, 12) ||
			    sscanf(buf + p + 12, "%8u", &i) != 1 ||
			    i >= npages || where[i])
				continue;
			where[i] = o + p;
			found++;
		}
	}
	close(fd);
	free(buf);
	if (found != npages)
		die("found %u of the %u pages of the guest's file in the "
		    "memory file", found, npages);
	return where;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void usage(void)
{
	printf("usage: bench_qemu [-r REPS] [-m FILE_MIB]\n"
	       "  -r  repetitions of each measurement, median reported "
	       "(1..%d, default 5)\n"
	       "  -m  size of the guest's file in MiB (16..192, default "
	       "128)\n", MAX_REPS);
}

int main(int argc, char **argv)
{
	double t_local[MAX_REPS], t_half[MAX_REPS], t_all[MAX_REPS];
	double r_pagein[MAX_REPS], r_raw1[MAX_REPS], r_raw16[MAX_REPS];
	unsigned int npages, tag, remote_half = 0, remote_all = 0;
	uint64_t *where, *sorted, split, lowest;
	char cmd[512], read_cmd[128];
	double ml, mh, ma, mp, m1, m16;
	double s_idle_q[MAX_REPS], s_idle_c[MAX_REPS];
	double d_qmp[MAX_REPS], d_ctl[MAX_REPS];
	bool has_ctl;
	double rq[MAX_REPS], rc[MAX_REPS];
	int c, fd;

	while ((c = getopt(argc, argv, "r:m:h")) != -1) {
		switch (c) {
		case 'r':
			reps = atoi(optarg);
			break;
		case 'm':
			file_mib = (unsigned int)atoi(optarg);
			break;
		default:
			usage();
			return c == 'h' ? 0 : 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS || file_mib < 16 || file_mib > 192) {
		usage();
		return 2;
	}
	if (access(vt_qemu_bin(), X_OK) != 0)
		die("%s missing (run scripts/build-qemu.sh)", vt_qemu_bin());
	setvbuf(stdout, NULL, _IOLBF, 0);
	S.pid = getpid();
	atexit(down);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	up();
	{
		double rt[MAX_REPS];

		for (int r = 0; r < MAX_REPS; r++)
			rt[r] = guest_time("true");
		console_s = median(rt, MAX_REPS);
		note("console round trip %.1f ms (subtracted)",
		     console_s * 1000);
	}

	/* (a) The guest's file: pages that name themselves. */
	npages = file_mib * (unsigned int)(MiB / PAGE);
	tag = (unsigned int)S.pid % 100000;
	snprintf(cmd, sizeof(cmd), "awk 'BEGIN { p = \"\"; "
		 "for (j = 0; j < %d; j++) p = p \"y\"; "
		 "for (i = 0; i < %u; i++) printf \"VMTBQ-%%05d-%%08d-%%s\\n\", "
		 "%u, i, p }' > /tmp/f", PAGE - 22, npages, tag);
	note("guest writes its %u MiB file (%.1f s)", file_mib,
	     guest_time(cmd));
	where = locate(npages, tag);
	sorted = malloc(npages * sizeof(*sorted));
	memcpy(sorted, where, npages * sizeof(*sorted));
	qsort(sorted, npages, sizeof(*sorted), cmp_u64);
	/* Split at the median page, rounded down to a chunk: the upper
	 * part of RAM goes to the sub-host. */
	split = sorted[npages / 2] & ~(CHUNK - 1);
	lowest = sorted[0] & ~(CHUNK - 1);
	if (lowest < HOME_START)
		die("part of the file is below %" PRIu64 " MiB, which has no "
		    "home", HOME_START / MiB);
	snprintf(read_cmd, sizeof(read_cmd),
		 "dd if=/tmp/f of=/dev/null bs=1M 2>/dev/null");
	fd = open(S.mem, O_RDONLY);
	if (fd < 0)
		die("%s: %s", S.mem, strerror(errno));
	for (int r = 0; r < reps; r++) {
		page_in(lowest, RAM - lowest);
		t_local[r] = guest_time(read_cmd);

		page_out(split, RAM - split);
		remote_half = 0;
		for (unsigned int i = 0; i < npages; i++)
			remote_half += !resident(fd, where[i]);
		t_half[r] = guest_time(read_cmd);

		page_out(lowest, RAM - lowest);
		remote_all = 0;
		for (unsigned int i = 0; i < npages; i++)
			remote_all += !resident(fd, where[i]);
		t_all[r] = guest_time(read_cmd);
		note("run %d: local %.2f s, %u/%u pages remote %.2f s, "
		     "%u/%u remote %.2f s", r + 1, t_local[r], remote_half,
		     npages, t_half[r], remote_all, npages, t_all[r]);
	}
	close(fd);

	/* (b) Page-in against raw reads, the guest paused. */
	qmp("{\"execute\":\"stop\"}");
	for (int r = 0; r < reps; r++) {
		double t0;

		page_out(PAGEIN_START, PAGEIN_LEN);
		r_raw1[r] = raw_read(1);
		r_raw16[r] = raw_read(16);
		t0 = vt_now_ms();
		page_in(PAGEIN_START, PAGEIN_LEN);
		r_pagein[r] = PAGEIN_LEN / (double)MiB /
			      ((vt_now_ms() - t0) / 1000);
		note("run %d: page-in %.0f MiB/s, raw %.0f MiB/s one at a "
		     "time, %.0f MiB/s 16 in flight", r + 1, r_pagein[r],
		     r_raw1[r], r_raw16[r]);
	}
	qmp("{\"execute\":\"cont\"}");

	/* (c) The guest's counter loop while 256 MiB come in. */
	snprintf(cmd, sizeof(cmd), "%.100s.ctl", S.mem);
	/* A QEMU from before the control socket (VMEM_QEMU=...): QMP only. */
	has_ctl = access(cmd, F_OK) == 0;
	for (int r = 0; r < reps; r++) {
		size_t qa = 0, qb = 0, ca = 0, cb = 0;

		rq[r] = spin(SPIN_QMP, &qa, &qb, &d_qmp[r]);
		s_idle_q[r] = spin(SPIN_IDLE, &qa, &qb, NULL);
		rc[r] = d_ctl[r] = s_idle_c[r] = 0;
		if (has_ctl) {
			rc[r] = spin(SPIN_CTL, &ca, &cb, &d_ctl[r]);
			s_idle_c[r] = spin(SPIN_IDLE, &ca, &cb, NULL);
		}
		note("run %d: counter loop during a %.0f ms QMP page-in %.2fx "
		     "(same steps, no page-in: %.2fx), during a %.0f ms "
		     "control-socket page-in %.2fx (%.2fx) of its rate in the "
		     "rest of the run", r + 1, d_qmp[r], rq[r], s_idle_q[r],
		     d_ctl[r], rc[r], s_idle_c[r]);
	}

	ml = median(t_local, reps);
	mh = median(t_half, reps);
	ma = median(t_all, reps);
	mp = median(r_pagein, reps);
	m1 = median(r_raw1, reps);
	m16 = median(r_raw16, reps);
	printf("\nSplit VM under the patched QEMU: TCG guest, 512 MiB, RAM "
	       "above %" PRIu64 " MiB homed on nbdkit\nin a network namespace "
	       "(veth), chunk-size 1M, no local-limit.  Medians of %d runs.\n\n",
	       HOME_START / MiB, reps);
	printf("%-52s %12s %9s\n", "measurement", "value", "ratio");
	printf("%-52s %10.2f s %9s\n", "(a) guest reads its file, all local",
	       ml, "1.00");
	snprintf(cmd, sizeof(cmd), "    %u of %u pages on the sub-host",
		 remote_half, npages);
	printf("%-52s %10.2f s %8.2fx\n", cmd, mh, mh / ml);
	snprintf(cmd, sizeof(cmd), "    %u of %u pages on the sub-host",
		 remote_all, npages);
	printf("%-52s %10.2f s %8.2fx\n", cmd, ma, ma / ml);
	printf("%-52s %6.0f MiB/s %9s\n",
	       "(b) raw libnbd 1 MiB reads, one at a time", m1, "1.00");
	printf("%-52s %6.0f MiB/s %8.2fx\n",
	       "    raw libnbd 1 MiB reads, 16 in flight", m16, m16 / m1);
	printf("%-52s %6.0f MiB/s %8.2fx\n",
	       "    vmem-page-in of 256 MiB (chunk 1M, QMP)", mp, mp / m1);
	printf("\npage-in / raw one at a time = %.2f, page-in / raw 16 in "
	       "flight = %.2f (target >= 0.5)\n", mp / m1, mp / m16);
	printf("guest file read, half remote / all local = %.2f\n", mh / ml);
	printf("(c) guest counter loop during a 256 MiB page-in / its rate in "
	       "the rest of the run (target >= 0.8):\n"
	       "    QMP vmem-page-in (%.0f ms): %.2fx (no page-in, same "
	       "steps: %.2fx)\n    control socket (%.0f ms): %.2fx (no "
	       "page-in, same steps: %.2fx)\n", median(d_qmp, reps),
	       median(rq, reps), median(s_idle_q, reps), median(d_ctl, reps),
	       median(rc, reps), median(s_idle_c, reps));
	free(where);
	free(sorted);
	return 0;
}
