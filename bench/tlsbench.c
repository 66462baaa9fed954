// SPDX-License-Identifier: MIT
/*
 * tlsbench: what TLS to the sub-hosts costs (scripts/bench-tls.sh runs it
 * as root).  One sub-host, one nbdkit in a network namespace reached over
 * a veth pair, serving `--tls=on --tls-psk=FILE` (TLS or clear, as the
 * client asks), 512 MiB with its upper half filled with pseudo-random
 * data; every figure is TLS against clear on that same server, same run:
 *
 *   - vmemfs, direct backend, cache-size 0 (every read goes to the
 *     sub-host): 1 MiB sequential reads over the homed 256 MiB (MiB/s),
 *     and 4 KiB reads at random offsets in it (latency, p50 and mean).
 *     Two mounts at once, one per mode, interleaved repetitions.
 *   - vmem-page-in of the 256 MiB (chunk 1 MiB) of a paused split guest
 *     (QEMU with -S: nothing of the homed half is resident), MiB/s; one
 *     guest per mode, each paging the range out and in -r times.
 *   - the handshake: a new pool's first 4 KiB read (TCP, NBD negotiation,
 *     TLS), and the first read on a pool whose connection died because
 *     the sub-host restarted (stale connection, retry, new handshake),
 *     against a 4 KiB read on a live connection.
 *
 * Medians of -r repetitions (default 5).  The table goes to stdout.
 * Everything started is stopped by PID at exit, also on SIGINT/SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/nbdconn.h"
#include "../tests/lib/guest.h"
#include "../tests/lib/hosts.h"

#define MiB ((uint64_t)1 << 20)
#define RAM (512 * MiB)
#define HOME_START (256 * MiB)
#define HOME_LEN (256 * MiB)
#define MAX_REPS 15
#define RAND_READS 1000
#define HS_REPS 15		/* handshakes: cheap, and noisy */
#define PORT_DATA 23301
#define PORT_SPARE 23302

enum { CLEAR, TLS, NMODES };
/* Mounts: the default chunk (64K), and 4K chunks (one page per fetch). */
#define NMOUNTS (2 * NMODES)
static const char *const mode_name[NMODES] = { "clear", "TLS" };

static struct {
	struct vt_netns ns;
	struct vt_nbdkit sub, spare;
	struct vt_vmemfs fs[NMOUNTS];
	struct vt_guest guest;
	char dir[64], mem[128], psk[128];
	bool guest_started;
	pid_t pid;
} S;

static int reps = 5;

static void teardown(void)
{
	if (getpid() != S.pid)
		return;
	if (S.guest_started)
		vt_guest_stop_started(&S.guest, 5000);
	S.guest_started = false;
	vt_vmemfs_stop_all(S.fs, NMOUNTS);
	vt_nbdkit_kill(&S.sub);
	vt_nbdkit_kill(&S.spare);
	vt_netns_delete(&S.ns);
	if (S.mem[0]) {
		char seq[160];

		snprintf(seq, sizeof(seq), "%s.seq", S.mem);
		unlink(S.mem);
		unlink(seq);
	}
	if (S.dir[0]) {
		static const char *const f[] = {
			"vmt.psk", "clear.conf", "tls.conf", "clear4k.conf",
			"tls4k.conf", "qemu-clear.conf", "qemu-tls.conf",
			"qemu.log", "clear.log", "tls.log", "clear4k.log",
			"tls4k.log", "mnt-clear", "mnt-tls", "mnt-clear4k",
			"mnt-tls4k",
		};
		char p[256];

		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
			snprintf(p, sizeof(p), "%s/%s", S.dir, f[i]);
			if (unlink(p) < 0)
				rmdir(p);
		}
		rmdir(S.dir);
	}
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						     noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tlsbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	teardown();
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double *s = malloc((size_t)n * sizeof(*s)), r;

	if (!s)
		die("out of memory");
	memcpy(s, v, (size_t)n * sizeof(*v));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	r = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return r;
}

static void write_text(const char *name, const char *text)
{
	char p[256];
	char err[512];

	snprintf(p, sizeof(p), "%s/%s", S.dir, name);
	if (vt_write_file(p, text, strlen(text), err, sizeof(err)) < 0)
		die("%s", err);
}

/* ---- set-up ---------------------------------------------------------- */

static void setup(void)
{
	char err[1024], name[32], uri[128];
	struct nbd_handle *h;
	char *buf = malloc(4 * MiB);
	int fd;

	if (!buf)
		die("out of memory");
	if (vt_run_dir("tlsb", S.pid, S.dir, S.mem, err, sizeof(err)) < 0)
		die("%s", err);
	snprintf(S.psk, sizeof(S.psk), "%s/vmt.psk", S.dir);
	if (vt_write_psk(S.psk, "vmt", err, sizeof(err)) < 0)
		die("%s", err);
	snprintf(name, sizeof(name), "vmt-tlsb-%d", (int)S.pid % 100000);
	if (vt_netns_create(&S.ns, name, 14200 + (unsigned int)S.pid % 100,
			    err, sizeof(err)) < 0)
		die("netns: %s", err);
	for (int i = 0; i < 2; i++) {
		struct vt_nbdkit *n = i ? &S.spare : &S.sub;

		snprintf(n->netns, sizeof(n->netns), "%s", S.ns.name);
		snprintf(n->addr, sizeof(n->addr), "%s", S.ns.ns_addr);
		n->port = i ? PORT_SPARE : PORT_DATA;
		snprintf(n->size, sizeof(n->size), "%s", i ? "16M" : "512M");
		snprintf(n->tls_psk, sizeof(n->tls_psk), "%s", S.psk);
		snprintf(n->tls_user, sizeof(n->tls_user), "vmt");
		n->tls_optional = true;
		if (vt_nbdkit_start(n, true, err, sizeof(err)) < 0)
			die("nbdkit: %s", err);
	}
	/* Data, not holes: NBD answers a hole of the memory plugin just as
	 * fast, but real RAM is not zero. */
	snprintf(uri, sizeof(uri), "nbd://%s:%d", S.sub.addr, S.sub.port);
	h = vt_nbd_connect(uri, 5000, err, sizeof(err));
	if (!h)
		die("%s", err);
	for (uint64_t off = HOME_START; off < HOME_START + HOME_LEN;
	     off += 4 * MiB) {
		vt_pattern_fill(buf, off, 4 * MiB, 14);
		if (nbd_pwrite(h, buf, 4 * MiB, off, 0) < 0)
			die("nbd_pwrite: %s", nbd_get_error());
	}
	nbd_shutdown(h, 0);
	nbd_close(h);
	free(buf);
	/* vmemfs's memory file: all holes, so every byte of the homed half
	 * is read from the sub-host. */
	fd = open(S.mem, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)RAM) < 0)
		die("%s: %s", S.mem, strerror(errno));
	close(fd);
}

/* "subhost = ..." of @mode, for vmemfs and QEMU. */
static void subhost_line(int mode, char *buf, size_t len)
{
	if (mode == TLS)
		snprintf(buf, len, "tls-psk = %s\nsubhost = nbds://vmt@%s:%d "
			 "%" PRIu64 "M-%" PRIu64 "M\n", S.psk, S.sub.addr,
			 S.sub.port, HOME_START / MiB,
			 (HOME_START + HOME_LEN) / MiB);
	else
		snprintf(buf, len, "tls = off\nsubhost = nbd://%s:%d %" PRIu64
			 "M-%" PRIu64 "M\n", S.sub.addr, S.sub.port,
			 HOME_START / MiB, (HOME_START + HOME_LEN) / MiB);
}

/* ---- vmemfs reads ------------------------------------------------------ */

/* Mount @i: mode @i % NMODES, chunk 64K for i < NMODES, else 4K. */
static void mount_all(void)
{
	char text[1024], sub[512], conf[256], mnt[256], log[256], err[1024];
	char tag[16];

	for (int i = 0; i < NMOUNTS; i++) {
		int m = i % NMODES;

		subhost_line(m, sub, sizeof(sub));
		snprintf(tag, sizeof(tag), "%s%s", m ? "tls" : "clear",
			 i < NMODES ? "" : "4k");
		snprintf(text, sizeof(text), "[b]\nmemory-file = %s\n"
			 "backend = direct\ncache-size = 0\ntimeout = 10s\n"
			 "chunk-size = %s\n%s", S.mem,
			 i < NMODES ? "64K" : "4K", sub);
		snprintf(conf, sizeof(conf), "%s.conf", tag);
		write_text(conf, text);
		snprintf(conf, sizeof(conf), "%s/%s.conf", S.dir, tag);
		snprintf(mnt, sizeof(mnt), "%s/mnt-%s", S.dir, tag);
		snprintf(log, sizeof(log), "%s/%s.log", S.dir, tag);
		mkdir(mnt, 0700);
		if (vt_vmemfs_start(&S.fs[i], conf, NULL, NULL, mnt, log, RAM,
				    20000, err, sizeof(err)) < 0)
			die("vmemfs (%s): %s", tag, err);
		vt_vmemfs_wait_kernel_scan(mnt);
	}
}

static int open_mem(int m)
{
	char p[300];
	int fd;

	snprintf(p, sizeof(p), "%s/mem", S.fs[m].mnt);
	fd = open(p, O_RDONLY);
	if (fd < 0)
		die("%s: %s", p, strerror(errno));
	return fd;
}

/* MiB/s of 1 MiB sequential reads over the homed half. */
static double seq_read(int m)
{
	char *buf = malloc(MiB);
	int fd = open_mem(m);
	double t0 = vt_now_ms();

	if (!buf)
		die("out of memory");
	for (uint64_t off = HOME_START; off < HOME_START + HOME_LEN;
	     off += MiB)
		if (pread(fd, buf, MiB, (off_t)off) != (ssize_t)MiB)
			die("%s read at %" PRIu64 ": %s", mode_name[m], off,
			    strerror(errno));
	close(fd);
	free(buf);
	return (double)HOME_LEN / MiB / ((vt_now_ms() - t0) / 1000);
}

/* Latencies (µs) of RAND_READS 4 KiB reads at random offsets of mount
 * @m, into @lat. */
static void rand_read(int m, unsigned int seed, double *lat)
{
	char buf[4096];
	int fd = open_mem(m);

	for (int i = 0; i < RAND_READS; i++) {
		uint64_t pg = vt_splitmix64(seed * 1000003ULL + (uint64_t)i) %
			      (HOME_LEN / 4096);
		double t0 = vt_now_ms();

		if (pread(fd, buf, 4096, (off_t)(HOME_START + pg * 4096)) !=
		    4096)
			die("%s 4K read: %s", mode_name[m % NMODES],
			    strerror(errno));
		lat[i] = (vt_now_ms() - t0) * 1000;
	}
	close(fd);
}

/* ---- raw libnbd, the floor of what vmemfs can do ------------------------ */

static struct nbd_handle *raw_connect(int m)
{
	char uri[128], err[512];
	struct nbd_handle *h;

	snprintf(uri, sizeof(uri), m == TLS ? "nbds://vmt@%s:%d" :
		 "nbd://%s:%d", S.sub.addr, S.sub.port);
	h = vt_nbd_connect_psk(uri, m == TLS ? S.psk : NULL, 5000, err,
			       sizeof(err));
	if (!h)
		die("%s", err);
	return h;
}

/* MiB/s of synchronous 1 MiB nbd_pread()s over the homed half. */
static double raw_seq(int m)
{
	struct nbd_handle *h = raw_connect(m);
	char *buf = malloc(MiB);
	double t0 = vt_now_ms();

	if (!buf)
		die("out of memory");
	for (uint64_t off = HOME_START; off < HOME_START + HOME_LEN;
	     off += MiB)
		if (nbd_pread(h, buf, MiB, off, 0) < 0)
			die("nbd_pread: %s", nbd_get_error());
	t0 = vt_now_ms() - t0;
	nbd_shutdown(h, 0);
	nbd_close(h);
	free(buf);
	return (double)HOME_LEN / MiB / (t0 / 1000);
}

/* Latencies (µs) of RAND_READS synchronous 64 KiB nbd_pread()s (what
 * vmemfs fetches for a 4 KiB read: one chunk). */
static void raw_rand(int m, unsigned int seed, double *lat)
{
	struct nbd_handle *h = raw_connect(m);
	static char buf[64 * 1024];

	for (int i = 0; i < RAND_READS; i++) {
		uint64_t c = vt_splitmix64(seed * 7919ULL + (uint64_t)i) %
			     (HOME_LEN / sizeof(buf));
		double t0 = vt_now_ms();

		if (nbd_pread(h, buf, sizeof(buf), HOME_START + c * sizeof(buf),
			      0) < 0)
			die("nbd_pread: %s", nbd_get_error());
		lat[i] = (vt_now_ms() - t0) * 1000;
	}
	nbd_shutdown(h, 0);
	nbd_close(h);
}

/* ---- the handshake ----------------------------------------------------- */

static struct nbdconn *pool(int m, const struct vt_nbdkit *n)
{
	struct vmem_tls tls = { .mode = m == TLS ? VMEM_TLS_REQUIRE :
				VMEM_TLS_OFF, .psk_file = S.psk,
				.username = "vmt" };
	char uri[128], err[256];
	struct nbdconn_params p = {
		.uri = uri, .tls = &tls, .max_conns = 1, .max_idle = 1,
		.window = 1,
	};
	struct nbdconn *c;

	snprintf(uri, sizeof(uri), "nbd://%s:%d", n->addr, n->port);
	c = nbdconn_new(&p, err, sizeof(err));
	if (!c)
		die("nbdconn_new: %s", err);
	return c;
}

/* ms of one 4 KiB read on @c. */
static double read4k(struct nbdconn *c)
{
	static char buf[4096];
	struct nbdconn_req r = { .op = NBDCONN_READ, .buf = buf, .off = 0,
				 .len = sizeof(buf) };
	char err[512];
	double t0 = vt_now_ms();
	int rc = nbdconn_run(c, &r, 1, nbdconn_deadline(10000), err,
			     sizeof(err));

	if (rc != 0)
		die("4K read: %d: %s", rc, err);
	return vt_now_ms() - t0;
}

/* ---- vmem-page-in -------------------------------------------------------- */

static void qmp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void qmp(const char *fmt, ...)
{
	char cmd[512], reply[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (vt_guest_qmp(&S.guest, cmd, reply, sizeof(reply), 300000) != 0)
		die("QMP %s: %s", cmd, reply);
}

/* Median MiB/s of vmem-page-in of the homed half of a paused guest. */
static double page_in_rate(int m)
{
	struct vt_guest_opts go = { 0 };
	char text[1024], sub[512], conf[256], err[2048];
	double v[MAX_REPS];

	subhost_line(m, sub, sizeof(sub));
	snprintf(text, sizeof(text), "[vm]\nmemory-file = %s\nram-size = 512M\n"
		 "chunk-size = 1M\ntimeout = 10s\n%s", S.mem, sub);
	snprintf(conf, sizeof(conf), "qemu-%s.conf", m ? "tls" : "clear");
	write_text(conf, text);
	snprintf(conf, sizeof(conf), "%s/qemu-%s.conf", S.dir,
		 m ? "tls" : "clear");
	/* A fresh memory file: nothing resident. */
	unlink(S.mem);
	{
		char seq[160];

		snprintf(seq, sizeof(seq), "%s.seq", S.mem);
		unlink(seq);
	}
	go.mem_path = S.mem;
	go.ram_size = RAM;
	go.vmem_config = conf;
	go.vmem_vm = "vm";
	go.run_dir = S.dir;
	go.paused = true;
	if (vt_guest_start(&S.guest, &go, err, sizeof(err)) < 0)
		die("QEMU (%s): %s", mode_name[m], err);
	S.guest_started = true;
	for (int r = 0; r < reps; r++) {
		double t0;

		if (r)
			qmp("{\"execute\":\"vmem-page-out\",\"arguments\":"
			    "{\"offset\":%" PRIu64 ",\"length\":%" PRIu64 "}}",
			    HOME_START, HOME_LEN);
		t0 = vt_now_ms();
		qmp("{\"execute\":\"vmem-page-in\",\"arguments\":"
		    "{\"offset\":%" PRIu64 ",\"length\":%" PRIu64 "}}",
		    HOME_START, HOME_LEN);
		v[r] = (double)HOME_LEN / MiB / ((vt_now_ms() - t0) / 1000);
	}
	vt_guest_stop_started(&S.guest, 10000);
	S.guest_started = false;
	memset(&S.guest, 0, sizeof(S.guest));
	return median(v, reps);
}

/* ---- main -------------------------------------------------------------- */

static void on_signal(int sig)
{
	(void)sig;
	teardown();
	_exit(130);
}

int main(int argc, char **argv)
{
	static double lat[NMODES][MAX_REPS * RAND_READS];
	static double rlat[NMODES][MAX_REPS * RAND_READS];
	static double lat4[NMODES][MAX_REPS * RAND_READS];
	double p50_4[NMODES];
	double rseq[NMODES][MAX_REPS], rseq_m[NMODES], rp50[NMODES];
	double seq[NMODES][MAX_REPS];
	double conn[NMODES][HS_REPS], reconn[NMODES][HS_REPS];
	double live[NMODES][HS_REPS], pin[NMODES];
	double seq_m[NMODES], p50[NMODES], mean[NMODES];
	double conn_m[NMODES], reconn_m[NMODES], live_m[NMODES];
	char err[1024];
	int opt;

	while ((opt = getopt(argc, argv, "r:h")) != -1) {
		if (opt == 'r' && atoi(optarg) >= 1 && atoi(optarg) <= MAX_REPS) {
			reps = atoi(optarg);
		} else {
			fprintf(stderr, "usage: tlsbench [-r REPS (1..%d, 5)]\n",
				MAX_REPS);
			return opt == 'h' ? 0 : 2;
		}
	}
	S.pid = getpid();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	setup();
	mount_all();

	/* Interleaved, so drift on a shared machine hits both modes. */
	for (int r = 0; r < reps; r++) {
		for (int m = 0; m < NMODES; m++) {
			seq[m][r] = seq_read(m);
			rand_read(m, (unsigned int)r, &lat[m][r * RAND_READS]);
			rand_read(NMODES + m, (unsigned int)r,
				  &lat4[m][r * RAND_READS]);
		}
	}
	vt_vmemfs_stop_all(S.fs, NMOUNTS);
	for (int r = 0; r < reps; r++) {
		for (int m = 0; m < NMODES; m++) {
			rseq[m][r] = raw_seq(m);
			raw_rand(m, (unsigned int)r, &rlat[m][r * RAND_READS]);
		}
	}

	for (int r = 0; r < HS_REPS; r++) {
		for (int m = 0; m < NMODES; m++) {
			struct nbdconn *c = pool(m, &S.spare);

			conn[m][r] = read4k(c);
			live[m][r] = read4k(c);
			/* The sub-host restarts: the pooled connection is
			 * dead, the next read finds it so and connects. */
			vt_nbdkit_kill(&S.spare);
			if (vt_nbdkit_start(&S.spare, true, err,
					    sizeof(err)) < 0)
				die("nbdkit: %s", err);
			reconn[m][r] = read4k(c);
			nbdconn_free(c);
		}
	}

	for (int m = 0; m < NMODES; m++)
		pin[m] = page_in_rate(m);

	for (int m = 0; m < NMODES; m++) {
		double sum = 0;

		seq_m[m] = median(seq[m], reps);
		for (int i = 0; i < reps * RAND_READS; i++)
			sum += lat[m][i];
		mean[m] = sum / (reps * RAND_READS);
		p50[m] = median(lat[m], reps * RAND_READS);
		conn_m[m] = median(conn[m], HS_REPS);
		reconn_m[m] = median(reconn[m], HS_REPS);
		live_m[m] = median(live[m], HS_REPS);
		rseq_m[m] = median(rseq[m], reps);
		rp50[m] = median(rlat[m], reps * RAND_READS);
		p50_4[m] = median(lat4[m], reps * RAND_READS);
	}
	printf("| one sub-host in a netns (veth), nbdkit --tls=on --tls-psk, same run, medians of %d | clear | TLS (PSK) | TLS / clear | target |\n",
	       reps);
	printf("|---|---|---|---|---|\n");
	printf("| vmemfs 1 MiB sequential reads, 256 MiB, cache off | %.0f MiB/s | %.0f MiB/s | %.2fx | >= 0.80x |\n",
	       seq_m[CLEAR], seq_m[TLS], seq_m[TLS] / seq_m[CLEAR]);
	printf("| vmemfs 4 KiB random reads, latency p50 (%d reads) | %.0f us | %.0f us | %.2fx | <= 1.30x |\n",
	       reps * RAND_READS, p50[CLEAR], p50[TLS], p50[TLS] / p50[CLEAR]);
	printf("| vmemfs 4 KiB random reads, latency mean | %.0f us | %.0f us | %.2fx | |\n",
	       mean[CLEAR], mean[TLS], mean[TLS] / mean[CLEAR]);
	printf("| vmemfs 4 KiB random reads, chunk-size 4K, latency p50 | %.0f us | %.0f us | %.2fx | <= 1.30x |\n",
	       p50_4[CLEAR], p50_4[TLS], p50_4[TLS] / p50_4[CLEAR]);
	printf("| raw libnbd 1 MiB synchronous reads, one connection (floor) | %.0f MiB/s | %.0f MiB/s | %.2fx | |\n",
	       rseq_m[CLEAR], rseq_m[TLS], rseq_m[TLS] / rseq_m[CLEAR]);
	printf("| raw libnbd 64 KiB random reads, latency p50 (floor) | %.0f us | %.0f us | %.2fx | |\n",
	       rp50[CLEAR], rp50[TLS], rp50[TLS] / rp50[CLEAR]);
	printf("| vmem-page-in of 256 MiB, chunk 1 MiB, paused guest | %.0f MiB/s | %.0f MiB/s | %.2fx | |\n",
	       pin[CLEAR], pin[TLS], pin[TLS] / pin[CLEAR]);
	printf("| connect: a new pool's first 4 KiB read (median of %d) | %.2f ms | %.2f ms | %.2fx | |\n",
	       HS_REPS, conn_m[CLEAR], conn_m[TLS], conn_m[TLS] / conn_m[CLEAR]);
	printf("| reconnect: first 4 KiB read after the sub-host restarted | %.2f ms | %.2f ms | %.2fx | |\n",
	       reconn_m[CLEAR], reconn_m[TLS], reconn_m[TLS] / reconn_m[CLEAR]);
	printf("| 4 KiB read on a live connection (for scale) | %.2f ms | %.2f ms | %.2fx | |\n",
	       live_m[CLEAR], live_m[TLS], live_m[TLS] / live_m[CLEAR]);
	teardown();
	return 0;
}
