// SPDX-License-Identifier: MIT
/*
 * bench_migrate: split migration against the two other ways of moving a
 * VM that does not fit one destination (issue 12), in one run, on the
 * same guest, workload and bandwidth limit:
 *
 *   plain  plain QEMU migration to one big destination (RAM all local);
 *   naive  the same stock migration into a split destination whose pager
 *          pages from the start (vmem-split incoming=paging): what does
 *          not fit local-limit is evicted to the sub-host as it arrives;
 *   split  x-vmem-split from a vmem-split-source into a split
 *          destination: hot windows in the stream, cold ones straight to
 *          the sub-host.
 *
 * One source guest (512 MiB, TCG) writes 100 MiB of zeros, 96 MiB of
 * random data once (cold) and 16 MiB rewritten every second (hot), and is
 * migrated three times (cont on the source after each).  For each way:
 * total time and downtime (query-migrate), bytes to the main host (the
 * stream) and to the sub-host, the main host's peak memory (the
 * destination's memory file, sampled every 20 ms with SEEK_DATA), and the
 * guest's time to re-read its hot set and then its cold set on the
 * destination.  Sub-host in a network namespace; destination on
 * loopback.  Prints a table; ratios are against plain.
 *
 * Each way runs REPS times, the ways interleaved; the table gives
 * medians.
 *
 *   bench_migrate [-b MiB/s] [-r REPS]
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../tests/lib/datamap.h"
#include "../../tests/lib/guest.h"
#include "../../tests/lib/hosts.h"

#define MiB ((uint64_t)1 << 20)
#define RAM (512 * MiB)
#define HOME_START (128 * MiB)
#define LIMIT (256 * MiB)

enum way { PLAIN, NAIVE, SPLIT, NWAYS };
static const char *const way_name[NWAYS] = { "plain", "naive", "split" };

struct result {
	double total_ms, downtime_ms, wall_ms;
	uint64_t main_bytes, sub_bytes, peak;
	double hot_ms, cold_ms;
	bool ok;
};

static struct vt_guest src, dst;
static struct vt_nbdkit sub;
static struct vt_netns ns;
static char dir[64], src_mem[128], dst_mem[128], conf[192];
static int port;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void cleanup(void)
{
	char path[256];

	vt_guest_stop_started(&dst, 2000);
	vt_guest_stop_started(&src, 2000);
	vt_nbdkit_kill(&sub);
	vt_netns_delete(&ns);
	if (src_mem[0]) {
		unlink(src_mem);
		unlink(dst_mem);
		snprintf(path, sizeof(path), "%s.seq", dst_mem);
		unlink(path);
	}
	if (dir[0]) {
		snprintf(path, sizeof(path), "rm -rf '%s'", dir);
		if (system(path) != 0)
			fprintf(stderr, "bench_migrate: could not remove %s\n",
				dir);
		dir[0] = '\0';
	}
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench_migrate: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static json_object *qmp(struct vt_guest *g, const char *cmd)
{
	static char reply[1 << 16];
	json_object *j, *r;

	if (vt_guest_qmp(g, cmd, reply, sizeof(reply), 120000) != 0)
		die("QMP %s: %s", cmd, reply);
	j = json_tokener_parse(reply);
	if (!j || !json_object_object_get_ex(j, "return", &r))
		die("QMP %s: %s", cmd, reply);
	json_object_get(r);
	json_object_put(j);
	return r;
}

static uint64_t ju(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ?
	       (uint64_t)json_object_get_int64(v) : 0;
}

static void gsh(struct vt_guest *g, const char *cmd, double *ms)
{
	char out[4096];
	double t0 = vt_now_ms();

	if (vt_guest_run(g, cmd, out, sizeof(out), 300000) != 0)
		die("guest `%s`: %s", cmd, out);
	if (ms)
		*ms = vt_now_ms() - t0;
}

/* As gsh, on the destination: false (the run fails) after 60 s. */
static bool dsh(const char *cmd, double *ms)
{
	char out[4096];
	double t0 = vt_now_ms();

	if (vt_guest_run(&dst, cmd, out, sizeof(out), 60000) != 0) {
		printf("run: destination guest `%s` failed: %.200s\n", cmd,
		       out);
		return false;
	}
	if (ms)
		*ms = vt_now_ms() - t0;
	return true;
}

static uint64_t mem_bytes(const char *path)
{
	struct vt_datamap m;
	char err[256];
	uint64_t b;

	if (vt_datamap_get(path, 0, UINT64_MAX, &m, err, sizeof(err)) < 0)
		return 0;
	b = m.bytes;
	vt_datamap_free(&m);
	return b;
}

static void start_dst(enum way w)
{
	static char inc[64], ddir[96];
	static const char *extra[3];
	struct vt_guest_opts o = { 0 };
	char err[2048];

	unlink(dst_mem);
	snprintf(inc, sizeof(inc), "tcp:127.0.0.1:%d", port);
	snprintf(ddir, sizeof(ddir), "%s/dst", dir);
	mkdir(ddir, 0700);
	extra[0] = "-incoming";
	extra[1] = inc;
	extra[2] = NULL;
	o.mem_path = dst_mem;
	o.ram_size = RAM;
	o.run_dir = ddir;
	o.paused = true;
	o.extra_args = extra;
	if (w != PLAIN) {
		o.vmem_config = conf;
		o.vmem_vm = "vm1";
		o.vmem_opts = w == NAIVE ? ",incoming=paging" : NULL;
	}
	if (vt_guest_start(&dst, &o, err, sizeof(err)) < 0)
		die("destination: %s", err);
}

static void run_way(enum way w, uint64_t bw, struct result *r)
{
	char cmd[512];
	json_object *info, *v, *vs;
	double t0;

	memset(r, 0, sizeof(*r));
	start_dst(w);
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate-set-capabilities\","
		 "\"arguments\":{\"capabilities\":[{\"capability\":"
		 "\"x-vmem-split\",\"state\":%s}]}}",
		 w == SPLIT ? "true" : "false");
	json_object_put(qmp(&src, cmd));
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate-set-parameters\","
		 "\"arguments\":{\"max-bandwidth\":%" PRIu64 ","
		 "\"downtime-limit\":300}}", bw);
	json_object_put(qmp(&src, cmd));
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate\",\"arguments\":"
		 "{\"uri\":\"tcp:127.0.0.1:%d\"}}", port);
	t0 = vt_now_ms();
	json_object_put(qmp(&src, cmd));
	for (;;) {
		const char *st;
		uint64_t b = mem_bytes(dst_mem);

		if (b > r->peak)
			r->peak = b;
		info = qmp(&src, "{\"execute\":\"query-migrate\"}");
		st = json_object_object_get_ex(info, "status", &v) ?
		     json_object_get_string(v) : "";
		if (!strcmp(st, "completed"))
			break;
		if (!strcmp(st, "failed") || !strcmp(st, "cancelled") ||
		    vt_now_ms() - t0 > 600000) {
			fprintf(stderr, "bench_migrate: %s migration %s: %s\n",
				way_name[w], st,
				json_object_object_get_ex(info, "error-desc",
							  &v) ?
				json_object_get_string(v) : "");
			json_object_put(info);
			vt_guest_stop(&dst, 3000);
			memset(&dst, 0, sizeof(dst));
			return;
		}
		json_object_put(info);
		vt_sleep_ms(20);
	}
	r->wall_ms = vt_now_ms() - t0;
	r->total_ms = (double)ju(info, "total-time");
	r->downtime_ms = (double)ju(info, "downtime");
	if (json_object_object_get_ex(info, "ram", &v))
		r->main_bytes = ju(v, "transferred");
	if (json_object_object_get_ex(info, "vmem-split", &vs)) {
		for (size_t i = 0; i < json_object_array_length(vs); i++)
			r->sub_bytes += ju(json_object_array_get_idx(vs, i),
					   "bytes");
		/* ram.transferred counts the sub-host bytes too. */
		r->main_bytes -= r->sub_bytes;
	}
	json_object_put(info);
	/* The destination's memory file right after completion. */
	{
		uint64_t b = mem_bytes(dst_mem);

		if (b > r->peak)
			r->peak = b;
	}
	json_object_put(qmp(&dst, "{\"execute\":\"cont\"}"));
	/*
	 * Stop the hot loop (it reads /tmp/hotsrc every second), waiting on
	 * the host side: a guest sleep right after migration sometimes never
	 * ended in earlier runs (a guest timer lost in migration, plain or
	 * split alike).
	 */
	if (!dsh("kill $(cat /tmp/hot.pid)", NULL) ||
	    (vt_sleep_ms(2000), false) ||
	    !dsh("dd if=/tmp/hot of=/dev/null bs=1M 2>/dev/null", &r->hot_ms) ||
	    !dsh("dd if=/tmp/cold of=/dev/null bs=1M 2>/dev/null",
		 &r->cold_ms))
		goto out;
	if (w == NAIVE) {
		/* What the pager evicted to the sub-host while loading. */
		info = qmp(&dst, "{\"execute\":\"query-vmem\"}");
		r->sub_bytes = ju(info, "bytes-out");
		json_object_put(info);
	}
	r->ok = true;
out:
	printf("run: %-5s %s total %5.0f ms, downtime %4.0f ms, main %4.0f MiB, "
	       "sub-host %4.0f MiB, peak %4.0f MiB, hot %4.0f ms, cold %4.0f "
	       "ms\n", way_name[w], r->ok ? "ok" : "FAILED", r->total_ms, r->downtime_ms,
	       (double)r->main_bytes / MiB, (double)r->sub_bytes / MiB,
	       (double)r->peak / MiB, r->hot_ms, r->cold_ms);
	vt_guest_stop(&dst, 3000);
	memset(&dst, 0, sizeof(dst));
	/* The source runs on, for the next way. */
	json_object_put(qmp(&src, "{\"execute\":\"cont\"}"));
	vt_sleep_ms(3000);
}

#define MAXREPS 15

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double med(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median of each figure over the runs that completed. */
static void median_of(const struct result *r, int n, struct result *out)
{
	double v[8][MAXREPS];
	int m = 0;

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < n; i++) {
		if (!r[i].ok)
			continue;
		v[0][m] = r[i].total_ms;
		v[1][m] = r[i].downtime_ms;
		v[2][m] = (double)r[i].main_bytes;
		v[3][m] = (double)r[i].sub_bytes;
		v[4][m] = (double)r[i].peak;
		v[5][m] = r[i].hot_ms;
		v[6][m] = r[i].cold_ms;
		m++;
	}
	if (m < n)
		printf("note: %d of %d runs failed\n", n - m, n);
	if (!m)
		return;
	out->ok = true;
	out->total_ms = med(v[0], m);
	out->downtime_ms = med(v[1], m);
	out->main_bytes = (uint64_t)med(v[2], m);
	out->sub_bytes = (uint64_t)med(v[3], m);
	out->peak = (uint64_t)med(v[4], m);
	out->hot_ms = med(v[5], m);
	out->cold_ms = med(v[6], m);
}

static void on_signal(int sig)
{
	(void)sig;
	exit(1);
}

int main(int argc, char **argv)
{
	uint64_t bw = 200 * MiB;
	struct result res[NWAYS], runs[NWAYS][MAXREPS];
	int reps = 3;
	static char vss[512];
	static const char *extra[3];
	struct vt_guest_opts o = { 0 };
	char err[2048], name[64];
	FILE *f;
	int c;

	while ((c = getopt(argc, argv, "b:r:")) != -1) {
		if (c == 'b')
			bw = strtoull(optarg, NULL, 0) * MiB;
		else if (c == 'r')
			reps = atoi(optarg);
		else
			die("usage: bench_migrate [-b MiB/s] [-r REPS]");
	}
	if (reps < 1 || reps > MAXREPS)
		die("-r: 1 to %d", MAXREPS);
	setvbuf(stdout, NULL, _IOLBF, 0);
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (vt_run_dir("bench-migrate", getpid(), dir, src_mem, err,
		       sizeof(err)) < 0)
		die("%s", err);
	snprintf(dst_mem, sizeof(dst_mem), "/dev/shm/vmt-bench-migrate-dst-%d"
		 ".mem", (int)getpid());
	snprintf(conf, sizeof(conf), "%s/vmemtrans.conf", dir);
	port = 24900 + (int)(getpid() % 90);
	snprintf(name, sizeof(name), "vmt-bm-%d", (int)getpid());
	if (vt_subhost_in_netns(&ns, &sub, name, 12500 + getpid() % 300,
				10809, RAM / MiB, err, sizeof(err)) < 0)
		die("sub-host: %s", err);
	f = fopen(conf, "w");
	if (!f)
		die("%s: %s", conf, strerror(errno));
	fprintf(f, "[vm1]\nmemory-file = %s\nram-size = 512M\n"
		"chunk-size = 64K\nlocal-limit = 256M\ntimeout = 5s\n"
		"tls = off\n"	/* a clear sub-host in its own netns */
		"subhost = %s 128M-512M\n", dst_mem, sub.uri);
	fclose(f);
	snprintf(vss, sizeof(vss), "vmem-split-source,id=vss,memdev=ram0,"
		 "config=%s,vm=vm1,sample-ms=500", conf);
	extra[0] = "-object";
	extra[1] = vss;
	extra[2] = NULL;
	o.mem_path = src_mem;
	o.ram_size = RAM;
	o.run_dir = dir;
	o.boot_timeout_ms = 120000;
	o.extra_args = extra;
	if (vt_guest_start(&src, &o, err, sizeof(err)) < 0)
		die("source: %s", err);
	gsh(&src, "dd if=/dev/zero of=/tmp/ballast bs=1M count=100 "
	    "2>/dev/null && head -c 100663296 /dev/urandom >/tmp/cold && "
	    "head -c 16777216 /dev/urandom >/tmp/hotsrc && "
	    "cp /tmp/hotsrc /tmp/hot", NULL);
	gsh(&src, "(while :; do dd if=/tmp/hotsrc of=/tmp/hot bs=1M "
	    "conv=notrunc 2>/dev/null; sleep 1; done) >/dev/null 2>&1 & "
		"echo $! >/tmp/hot.pid",
	    NULL);
	/* 20 s: the cold data's samples have aged out (32 x 500 ms). */
	vt_sleep_ms(20000);

	printf("bench_migrate: 512 MiB TCG guest (96 MiB cold, 16 MiB hot, "
	       "100 MiB zeros); destination local-limit 256M, [128M,512M) "
	       "homed on %s; max-bandwidth %" PRIu64 " MiB/s\n", sub.uri,
	       bw / MiB);
	for (int k = 0; k < reps; k++)
		for (int w = 0; w < NWAYS; w++)
			run_way((enum way)w, bw, &runs[w][k]);
	for (int w = 0; w < NWAYS; w++)
		median_of(runs[w], reps, &res[w]);
	printf("medians of %d runs each\n", reps);

	printf("\n| way | total time | downtime | to main host | to sub-host "
	       "| main-host peak | hot re-read | cold re-read |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	for (int w = 0; w < NWAYS; w++) {
		const struct result *r = &res[w], *p = &res[PLAIN];

		if (!r->ok) {
			printf("| %s | failed | | | | | | |\n", way_name[w]);
			continue;
		}
		printf("| %s | %.0f ms (%.2fx) | %.0f ms | %.0f MiB | %.0f MiB "
		       "| %.0f MiB (%.2fx) | %.0f ms (%.2fx) | %.0f ms "
		       "(%.2fx) |\n", way_name[w], r->total_ms,
		       p->ok ? r->total_ms / p->total_ms : 0, r->downtime_ms,
		       (double)r->main_bytes / MiB, (double)r->sub_bytes / MiB,
		       (double)r->peak / MiB,
		       p->ok ? (double)r->peak / (double)p->peak : 0,
		       r->hot_ms, p->ok ? r->hot_ms / p->hot_ms : 0,
		       r->cold_ms, p->ok ? r->cold_ms / p->cold_ms : 0);
	}
	/* For the plot (scripts/bench-migrate.sh). */
	for (int w = 0; w < NWAYS; w++)
		if (res[w].ok)
			printf("dat: %s %.0f %.0f %.1f %.1f %.1f %.0f %.0f\n",
			       way_name[w], res[w].total_ms,
			       res[w].downtime_ms,
			       (double)res[w].main_bytes / MiB,
			       (double)res[w].sub_bytes / MiB,
			       (double)res[w].peak / MiB, res[w].hot_ms,
			       res[w].cold_ms);
	return res[SPLIT].ok && res[PLAIN].ok && res[NAIVE].ok ? 0 : 1;
}
