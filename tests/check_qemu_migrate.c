// SPDX-License-Identifier: MIT
/*
 * Split migration end to end (issue 12): a plain test guest (512 MiB,
 * TCG) with -object vmem-split-source is migrated with x-vmem-split onto
 * a split destination (vmem-split, -incoming) whose RAM [128M, 512M) is
 * homed on an nbdkit sub-host in a network namespace, local-limit 256M
 * (half the RAM).  Both ends read one vmemtrans.conf.
 *
 * The guest writes 96 MiB of random data once (cold) and 16 MiB that a
 * loop in the guest rewrites with the same bytes every second (hot), and
 * checksums both.  In order (Check runs a case's tests in order, and each
 * needs the one before):
 *   - the plan (query-vmem-split-plan) puts only sampled windows and
 *     unhomed RAM on the main host, under local-limit;
 *   - refusals, each with the source still running and its data intact:
 *     postcopy-ram, multifd and compress with x-vmem-split; a destination
 *     without vmem-split (a stock one as far as split migration goes); a
 *     destination whose config differs; a split destination from a plain
 *     migration; a migration cancelled half-way;
 *   - the sub-host killed (-9) mid-migration: the migration fails naming
 *     it, the source runs on, the destination exits nonzero;
 *   - with the sub-host back, the migration: the md5 of the source's RAM
 *     (its memory file, the source paused) equals the md5 of vmemfs `ram`
 *     on the paused destination; the memory file holds at most
 *     local-limit; no page is both in it and on the sub-host (NBD block
 *     status against SEEK_DATA); nothing outside the home range is on
 *     the sub-host; vmemfs's map puts exactly the plan's cold windows
 *     on the sub-host, its md5 read fetched them, and the non-zero bytes
 *     it reads there equal the source's cold non-zero bytes; the guest's
 *     own md5 of both files matches after it runs on; re-reading the hot
 *     set fetches little from the sub-host, and so does everything from
 *     cont until the guest re-read /tmp/hotsrc, which the source's guest
 *     only ever read (TCG read sampling, patch 0005).
 *
 * Expectations are the guest's own checksums, the source's memory file
 * (QEMU's RAM, read by the test), the destination's memory file's data
 * map (SEEK_DATA) and the sub-host's own allocation map.
 *
 * Stress modes (environment, for chasing a source/destination md5
 * mismatch by hand; make check sets none): VT_MIGRATE_CHURN=N migrates
 * at N MiB/s while a guest loop rewrites 8 MiB of page cache with new
 * random bytes; VT_MIGRATE_PLAIN=N makes the last test a plain migration
 * (no x-vmem-split, a plain destination) at N MiB/s with that loop,
 * comparing the two memory files; VT_MIGRATE_NO_VSS=1 starts the source
 * without vmem-split-source (stock QEMU as far as migration goes; only
 * with VT_MIGRATE_PLAIN, the other tests then fail).  When the md5s
 * differ the test prints the differing 4 KiB pages: plan window, home,
 * in the memory file or not, words that differ.  Measured with them
 * (2026-12-01): the default test matched 15 of 15 runs; with the churn
 * loop, split 2 of 8 and plain 2 of 10 runs differed, and plain with
 * VT_MIGRATE_NO_VSS 2 of 18: a few words in 1-13 main-host pages each
 * (kernel data), never a cold page.  So QEMU 7.2's own precopy under TCG
 * loses late writes here, with or without our code; the test's default
 * (no churn, 1 GiB/s) rarely meets it.
 *
 * Processes: everything is started by an unchecked fixture in the runner
 * (which outlives the forked tests) and killed by PID at teardown.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libnbd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/datamap.h"
#include "lib/guest.h"
#include "lib/guestck.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define MiB ((uint64_t)1 << 20)
#define RAM (512 * MiB)
#define HOME_START (128 * MiB)
#define LIMIT (256 * MiB)
#define CHUNK (64 * 1024)
#define NBD_PORT 10809
#define BALLAST_MIB 100
#define COLD_MIB 96
#define HOT_MIB 16

struct env {
	bool up;
	char err[2048];
	struct vt_guest src, dst;
	struct vt_nbdkit sub;
	struct vt_netns ns;
	struct vt_vmemfs fs;
	char dir[64];
	char conf[128], conf_bad[128], fsconf[128];
	char src_mem[128], dst_mem[128];
	char cold_sum[64], hot_sum[64];
	int port;
};

static struct env *E;
static pid_t runner_pid;

static void rm_mem(const char *mem)
{
	char path[160];

	if (!mem[0])
		return;
	unlink(mem);
	snprintf(path, sizeof(path), "%s.seq", mem);
	unlink(path);
}

static void dst_down(void)
{
	if (E->fs.pid > 0)
		vt_vmemfs_stop(&E->fs, 3000);
	vt_guest_stop_started(&E->dst, 3000);
	memset(&E->dst, 0, sizeof(E->dst));
	rm_mem(E->dst_mem);
}

static void env_down(void)
{
	static const char *const names[] = {
		"qemu.log", "dst/qemu.log", "dst", "vmemtrans.conf",
		"bad.conf", "vmemfs.conf", "mnt0", "vmemfs0.log",
	};
	char dir[64], mem[128];

	if (getpid() != runner_pid || !E)
		return;
	dst_down();
	vt_guest_stop_started(&E->src, 3000);
	vt_nbdkit_kill(&E->sub);
	vt_netns_delete(&E->ns);
	rm_mem(E->src_mem);
	snprintf(dir, sizeof(dir), "%s", E->dir);
	snprintf(mem, sizeof(mem), "%s", E->dst_mem);
	vt_run_dir_remove(dir, mem, names, sizeof(names) / sizeof(names[0]));
	E->dir[0] = '\0';
	E->up = false;
}

static int write_conf(const char *path, uint64_t limit)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fprintf(f, "[vm]\nmemory-file = %s\nram-size = %" PRIu64 "M\n"
		"chunk-size = %" PRIu64 "K\nlocal-limit = %" PRIu64 "M\n"
		"timeout = 2s\nbackend = direct\nlayout = flat\n"
		"tls = off\n"	/* a clear sub-host in its own netns */
		"subhost = %s %" PRIu64 "M-%" PRIu64 "M\n",
		E->dst_mem, RAM / MiB, (uint64_t)CHUNK / 1024, limit / MiB,
		E->sub.uri, HOME_START / MiB, RAM / MiB);
	return fclose(f);
}

static int gsh(struct vt_guest *g, const char *cmd, char *out, size_t len,
	       int timeout_ms)
{
	return vt_guest_run_logged(g, cmd, out, len, timeout_ms);
}

static void env_up(void)
{
	char path[256], err[1024], out[4096];
	static char vss[512];
	static const char *extra[3];
	struct vt_guest_opts o = { 0 };

	memset(E, 0, sizeof(*E));
	if (vt_guest_has("vmlinuz", R_OK, E->err, sizeof(E->err)) < 0)
		return;
	if (vt_run_dir("migrate", runner_pid, E->dir, E->src_mem, E->err,
		       sizeof(E->err)) < 0)
		return;
	snprintf(E->dst_mem, sizeof(E->dst_mem), "/dev/shm/vmt-migrate-dst-%d"
		 ".mem", (int)runner_pid);
	rm_mem(E->dst_mem);
	snprintf(path, sizeof(path), "%s/dst", E->dir);
	mkdir(path, 0700);
	snprintf(E->conf, sizeof(E->conf), "%s/vmemtrans.conf", E->dir);
	snprintf(E->conf_bad, sizeof(E->conf_bad), "%s/bad.conf", E->dir);
	E->port = 24500 + (int)(runner_pid % 400);

	snprintf(path, sizeof(path), "vmt-migrate-%d", (int)runner_pid);
	if (vt_subhost_in_netns(&E->ns, &E->sub, path,
				12000 + runner_pid % 384, NBD_PORT, RAM / MiB,
				E->err, sizeof(E->err)) < 0)
		return;
	if (write_conf(E->conf, LIMIT) < 0 ||
	    write_conf(E->conf_bad, LIMIT + 16 * MiB) < 0) {
		snprintf(E->err, sizeof(E->err), "writing %s: %s", E->conf,
			 strerror(errno));
		return;
	}

	snprintf(vss, sizeof(vss), "vmem-split-source,id=vss,memdev=ram0,"
		 "config=%s,vm=vm,sample-ms=500", E->conf);
	/* VT_MIGRATE_NO_VSS: a stock source (see "Stress modes"). */
	extra[0] = getenv("VT_MIGRATE_NO_VSS") ? NULL : "-object";
	extra[1] = vss;
	extra[2] = NULL;
	o.mem_path = E->src_mem;
	o.ram_size = RAM;
	o.run_dir = E->dir;
	o.boot_timeout_ms = 90000;
	o.extra_args = extra;
	if (vt_guest_start(&E->src, &o, err, sizeof(err)) < 0) {
		snprintf(E->err, sizeof(E->err), "boot: %s", err);
		return;
	}
	printf("info: source guest booted in %.1f s; sub-host %s in netns "
	       "%s\n", E->src.boot_ms / 1000, E->sub.uri, E->ns.name);
	/* Ballast first (the guest fills low RAM first), then the data. */
	if (gsh(&E->src, "dd if=/dev/zero of=/tmp/ballast bs=1M count=100 "
		"2>/dev/null && head -c 100663296 /dev/urandom >/tmp/cold && "
		"head -c 16777216 /dev/urandom >/tmp/hotsrc && "
		"cp /tmp/hotsrc /tmp/hot && md5sum /tmp/cold /tmp/hot", out,
		sizeof(out), 120000) != 0 ||
	    sscanf(out, "%63s", E->cold_sum) != 1 ||
	    !strstr(out, "/tmp/hot") ||
	    sscanf(strstr(out, "/tmp/cold") + 9, "%63s", E->hot_sum) != 1) {
		snprintf(E->err, sizeof(E->err), "writing data: %.1000s", out);
		return;
	}
	/* The hot set: rewritten with the same bytes every second. */
	if (gsh(&E->src, "(while :; do dd if=/tmp/hotsrc of=/tmp/hot bs=1M "
		"conv=notrunc 2>/dev/null; sleep 1; done) >/dev/null 2>&1 & "
		"echo $! >/tmp/hot.pid",
		out, sizeof(out), 10000) != 0) {
		snprintf(E->err, sizeof(E->err), "hot loop: %.1000s", out);
		return;
	}
	vt_sleep_ms(3000);	/* a few samples at 500 ms */
	E->up = true;
}

static void require_env(void)
{
	ck_assert_msg(E->up, "environment not up: %s", E->err);
}

/* ---- helpers -------------------------------------------------------- */

static json_object *qmp_on(struct vt_guest *g, const char *cmd, int *rc,
			   char *reply, size_t len)
{
	json_object *j;

	*rc = vt_guest_qmp(g, cmd, reply, len, 120000);
	j = json_tokener_parse(reply);
	return j;
}

static json_object *qmp_ok(struct vt_guest *g, const char *cmd)
{
	static char reply[1 << 21];
	json_object *j, *ret;
	int rc;

	j = qmp_on(g, cmd, &rc, reply, sizeof(reply));
	ck_assert_msg(rc == 0 && j && json_object_object_get_ex(j, "return",
								&ret),
		      "QMP %s: %.500s", cmd, reply);
	json_object_get(ret);
	json_object_put(j);
	return ret;
}

/* QMP @cmd must fail; its error description in @desc. */
static void qmp_fails(struct vt_guest *g, const char *cmd, char *desc,
		      size_t len)
{
	char reply[4096];
	int rc = vt_guest_qmp(g, cmd, reply, sizeof(reply), 60000);

	ck_assert_msg(rc == 1, "QMP %s did not fail: %s", cmd, reply);
	snprintf(desc, len, "%s", reply);
}

static uint64_t jget_u64(json_object *o, const char *key)
{
	json_object *v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no %s in %s",
		      key, json_object_to_json_string(o));
	return (uint64_t)json_object_get_int64(v);
}

static const char *jget_str(json_object *o, const char *key)
{
	json_object *v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no %s in %s",
		      key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

static void set_caps(struct vt_guest *g, const char *const *caps, bool on)
{
	char cmd[1024];
	size_t n = 0;

	n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, "{\"execute\":"
			      "\"migrate-set-capabilities\",\"arguments\":"
			      "{\"capabilities\":[");
	for (size_t i = 0; caps[i]; i++)
		n += (size_t)snprintf(cmd + n, sizeof(cmd) - n,
				      "%s{\"capability\":\"%s\",\"state\":%s}",
				      i ? "," : "", caps[i],
				      on ? "true" : "false");
	snprintf(cmd + n, sizeof(cmd) - n, "]}}");
	json_object_put(qmp_ok(g, cmd));
}

static void set_split(bool on)
{
	static const char *const caps[] = { "x-vmem-split", NULL };

	set_caps(&E->src, caps, on);
}

static void set_bandwidth(uint64_t bytes_per_s)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate-set-parameters\","
		 "\"arguments\":{\"max-bandwidth\":%" PRIu64 ","
		 "\"downtime-limit\":500}}", bytes_per_s);
	json_object_put(qmp_ok(&E->src, cmd));
}

/*
 * Start a destination: @split with vmem-split on @conf (plus @vmem_opts),
 * else a plain memory backend; -incoming on our port, -S.
 */
static void dst_start(bool split, const char *conf, const char *vmem_opts)
{
	static char inc[128], dir[96];
	static const char *extra[3];
	struct vt_guest_opts o = { 0 };
	char err[2048];

	dst_down();
	snprintf(inc, sizeof(inc), "tcp:127.0.0.1:%d", E->port);
	snprintf(dir, sizeof(dir), "%s/dst", E->dir);
	extra[0] = "-incoming";
	extra[1] = inc;
	extra[2] = NULL;
	o.mem_path = E->dst_mem;
	o.ram_size = RAM;
	o.run_dir = dir;
	o.paused = true;
	o.extra_args = extra;
	if (split) {
		o.vmem_config = conf;
		o.vmem_vm = "vm";
		o.vmem_opts = vmem_opts;
	}
	ck_assert_msg(vt_guest_start(&E->dst, &o, err, sizeof(err)) == 0,
		      "destination: %s", err);
}

static void migrate(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate\",\"arguments\":"
		 "{\"uri\":\"tcp:127.0.0.1:%d\"}}", E->port);
	json_object_put(qmp_ok(&E->src, cmd));
}

/* Wait for the source's migration to end: its status; error in @why. */
static const char *wait_migration(int timeout_ms, char *why, size_t len,
				  json_object **last)
{
	static char status[32];
	double t0 = vt_now_ms();

	why[0] = '\0';
	for (;;) {
		json_object *r = qmp_ok(&E->src,
					"{\"execute\":\"query-migrate\"}");
		json_object *v;

		snprintf(status, sizeof(status), "%s",
			 json_object_object_get_ex(r, "status", &v) ?
			 json_object_get_string(v) : "none");
		if (json_object_object_get_ex(r, "error-desc", &v))
			snprintf(why, len, "%s", json_object_get_string(v));
		if (!strcmp(status, "completed") || !strcmp(status, "failed") ||
		    !strcmp(status, "cancelled") ||
		    vt_now_ms() - t0 > timeout_ms) {
			if (last)
				*last = r;
			else
				json_object_put(r);
			return status;
		}
		json_object_put(r);
		vt_sleep_ms(200);
	}
}

/* The source guest still runs and its data is intact. */
static void source_intact(void)
{
	char out[1024];
	json_object *r = qmp_ok(&E->src, "{\"execute\":\"query-status\"}");

	ck_assert_str_eq(jget_str(r, "status"), "running");
	json_object_put(r);
	ck_assert_int_eq(gsh(&E->src, "md5sum /tmp/cold /tmp/hot", out,
			     sizeof(out), 60000), 0);
	ck_assert_msg(strstr(out, E->cold_sum) && strstr(out, E->hot_sum),
		      "source data changed: %s (want %s, %s)", out,
		      E->cold_sum, E->hot_sum);
}

/* The destination QEMU exits nonzero within @timeout_ms. */
static void dst_exits_nonzero(int timeout_ms)
{
	int st = vt_wait_pid(E->dst.pid, timeout_ms);

	ck_assert_msg(st != -1, "the destination did not exit");
	ck_assert_msg(!WIFEXITED(st) || WEXITSTATUS(st) != 0,
		      "the destination exited with 0");
	E->dst.pid = 0;
}

static bool dst_log_has(const char *what)
{
	char path[160], buf[1 << 16];

	snprintf(path, sizeof(path), "%s/dst/qemu.log", E->dir);
	if (vt_read_text(path, buf, sizeof(buf)) < 0)
		return false;
	if (!strstr(buf, what)) {
		printf("info: destination log:\n");
		vt_print_tail(path, 10, "  dst: ");
		return false;
	}
	return true;
}

static uint64_t dst_mem_bytes(void)
{
	struct vt_datamap m;
	char err[256];
	uint64_t b;

	ck_assert_msg(vt_datamap_get(E->dst_mem, 0, UINT64_MAX, &m, err,
				     sizeof(err)) == 0, "%s", err);
	b = m.bytes;
	vt_datamap_free(&m);
	return b;
}

/* ---- tests ---------------------------------------------------------- */

START_TEST(test_plan)
{
	json_object *r, *ws;
	uint64_t main = 0, hot = 0, sum = 0;
	size_t n;

	require_env();
	r = qmp_ok(&E->src, "{\"execute\":\"query-vmem-split-plan\"}");
	ck_assert(json_object_object_get_ex(r, "windows", &ws));
	n = json_object_array_length(ws);
	ck_assert_uint_gt(jget_u64(r, "samples"), 2);
	for (size_t i = 0; i < n; i++) {
		json_object *w = json_object_array_get_idx(ws, i);
		uint64_t start = jget_u64(w, "start");
		uint64_t len = jget_u64(w, "length");
		const char *host = jget_str(w, "host");
		const char *why = jget_str(w, "reason");

		ck_assert_uint_eq(start, sum);
		sum += len;
		if (start < HOME_START) {
			ck_assert_str_eq(host, "main");
			ck_assert_str_eq(why, "unhomed");
		} else if (!strcmp(host, "main")) {
			ck_assert_str_eq(why, "hot");
			ck_assert_uint_gt(jget_u64(w, "score"), 0);
			hot += len;
		} else {
			ck_assert_str_eq(host, E->sub.uri);
			ck_assert_str_eq(why, "cold");
		}
		if (!strcmp(host, "main"))
			main += len;
	}
	ck_assert_uint_eq(sum, RAM);
	ck_assert_uint_eq(main, jget_u64(r, "main-bytes"));
	ck_assert_uint_le(main + jget_u64(r, "headroom"), LIMIT);
	/* The hot loop's 16 MiB was seen. */
	ck_assert_uint_ge(hot, HOT_MIB * MiB);
	printf("info: plan after %" PRIu64 " samples: %" PRIu64 " MiB main "
	       "(%" PRIu64 " MiB hot homed), %" PRIu64 " MiB cold\n",
	       jget_u64(r, "samples"), main / MiB, hot / MiB,
	       jget_u64(r, "cold-bytes") / MiB);
	json_object_put(r);
}
END_TEST

START_TEST(test_refuse_capabilities)
{
	static const char *const with[][3] = {
		{ "x-vmem-split", "postcopy-ram", NULL },
		{ "x-vmem-split", "multifd", NULL },
		{ "x-vmem-split", "compress", NULL },
		{ "x-vmem-split", "xbzrle", NULL },
	};
	char cmd[512], desc[4096];

	require_env();
	for (size_t i = 0; i < sizeof(with) / sizeof(with[0]); i++) {
		snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate-set-"
			 "capabilities\",\"arguments\":{\"capabilities\":["
			 "{\"capability\":\"%s\",\"state\":true},"
			 "{\"capability\":\"%s\",\"state\":true}]}}",
			 with[i][0], with[i][1]);
		qmp_fails(&E->src, cmd, desc, sizeof(desc));
		ck_assert_msg(strstr(desc, "x-vmem-split is not compatible "
				     "with") && strstr(desc, with[i][1]),
			      "%s", desc);
	}
	source_intact();
}
END_TEST

/*
 * The destination refuses the migration before it loads a page: the
 * migration fails, the destination exits nonzero with @in_log in its
 * log, and its memory file holds none of the guest's data.  @why gets
 * the source's reason.
 */
static void migration_refused(bool split, const char *in_log, char *why,
			      size_t whylen)
{
	const char *st;

	set_split(split);
	migrate();
	st = wait_migration(60000, why, whylen, NULL);
	ck_assert_str_eq(st, "failed");
	dst_exits_nonzero(10000);
	ck_assert_msg(dst_log_has(in_log), "destination log lacks '%s'",
		      in_log);
	ck_assert_uint_lt(dst_mem_bytes(), 8 * MiB);
}

/* A destination without vmem-split does not know the section. */
START_TEST(test_refuse_stock_destination)
{
	char why[1024];

	require_env();
	dst_start(false, NULL, NULL);
	set_bandwidth(1ULL << 30);
	migration_refused(true, "vmem-split", why, sizeof(why));
	printf("info: stock destination: source says '%s'\n", why);
	source_intact();
}
END_TEST

START_TEST(test_refuse_config_mismatch)
{
	char why[1024];

	require_env();
	dst_start(true, E->conf_bad, NULL);
	migration_refused(true, "differs from this one", why, sizeof(why));
	source_intact();
}
END_TEST

/* A split destination refuses a migration that is not split. */
START_TEST(test_refuse_plain_into_split)
{
	char why[1024];

	require_env();
	dst_start(true, E->conf, NULL);
	migration_refused(false, "without a plan", why, sizeof(why));
	source_intact();
}
END_TEST

START_TEST(test_cancel_half_way)
{
	char why[1024];
	const char *st;

	require_env();
	dst_start(true, E->conf, NULL);
	set_split(true);
	set_bandwidth(20 * MiB);
	migrate();
	vt_sleep_ms(1500);
	json_object_put(qmp_ok(&E->src, "{\"execute\":\"migrate_cancel\"}"));
	st = wait_migration(30000, why, sizeof(why), NULL);
	ck_assert_str_eq(st, "cancelled");
	dst_exits_nonzero(10000);
	source_intact();
}
END_TEST

/* A sub-host that stops answering: the deadline, not a broken pipe. */
START_TEST(test_subhost_stopped)
{
	char why[1024];
	const char *st;
	double t0;

	require_env();
	dst_start(true, E->conf, NULL);
	set_split(true);
	set_bandwidth(20 * MiB);
	migrate();
	vt_sleep_ms(1500);
	ck_assert_int_eq(vt_stop_pid(E->sub.pid, 5000), 0);
	t0 = vt_now_ms();
	st = wait_migration(60000, why, sizeof(why), NULL);
	kill(E->sub.pid, SIGCONT);
	printf("info: sub-host stopped: migration %s after %.1f s: %s\n", st,
	       (vt_now_ms() - t0) / 1000, why);
	ck_assert_str_eq(st, "failed");
	ck_assert_msg(strstr(why, E->sub.uri), "'%s' does not name %s", why,
		      E->sub.uri);
	/* timeout = 2s per batch of writes, with room for a slow machine. */
	ck_assert_double_lt(vt_now_ms() - t0, 15000);
	dst_exits_nonzero(10000);
	source_intact();
}
END_TEST

START_TEST(test_subhost_killed)
{
	char why[1024], err[1024];
	const char *st;
	double t0;

	require_env();
	dst_start(true, E->conf, NULL);
	set_split(true);
	set_bandwidth(20 * MiB);
	migrate();
	vt_sleep_ms(1500);
	vt_nbdkit_kill(&E->sub);
	t0 = vt_now_ms();
	st = wait_migration(30000, why, sizeof(why), NULL);
	printf("info: sub-host killed: migration %s after %.1f s: %s\n", st,
	       (vt_now_ms() - t0) / 1000, why);
	ck_assert_str_eq(st, "failed");
	ck_assert_msg(strstr(why, E->sub.uri), "'%s' does not name %s", why,
		      E->sub.uri);
	/* timeout = 2s, with room for the retry and a slow machine. */
	ck_assert_double_lt(vt_now_ms() - t0, 10000);
	dst_exits_nonzero(10000);
	source_intact();
	/* The sub-host back, empty, for the retry: started from this
	 * forked test, so it daemonizes and the runner kills it by PID. */
	ck_assert_msg(vt_nbdkit_start(&E->sub, false, err, sizeof(err)) == 0,
		      "restarting the sub-host: %s", err);
}
END_TEST

/* Pages of the sub-host's export that hold data (block status). */
struct extents {
	struct vt_datamap *m;
	uint64_t end;		/* how far the server answered */
};

static int extent_cb(void *opaque, const char *metacontext,
		     uint64_t offset, uint32_t *entries, size_t nr,
		     int *error)
{
	struct extents *x = opaque;
	struct vt_datamap *m = x->m;

	(void)metacontext;
	(void)error;
	for (size_t i = 0; i + 1 < nr; i += 2) {
		uint64_t len = entries[i];

		if (!(entries[i + 1] & LIBNBD_STATE_HOLE)) {
			m->ext = realloc(m->ext, (m->n + 1) * sizeof(*m->ext));
			m->ext[m->n].start = offset;
			m->ext[m->n].end = offset + len;
			m->n++;
			m->bytes += len;
		}
		offset += len;
	}
	if (offset > x->end)
		x->end = offset;
	return 0;
}

static void subhost_data(struct vt_datamap *m)
{
	struct nbd_handle *h = nbd_create();
	struct extents x = { m, 0 };

	ck_assert(h);
	ck_assert_int_eq(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION),
			 0);
	ck_assert_msg(nbd_connect_uri(h, E->sub.uri) == 0, "%s: %s",
		      E->sub.uri, nbd_get_error());
	memset(m, 0, sizeof(*m));
	/* The server may answer for less than asked: ask on from there. */
	while (x.end < RAM) {
		uint64_t before = x.end;

		ck_assert_int_eq(nbd_block_status(h, RAM - x.end, x.end,
			(nbd_extent_callback){ .callback = extent_cb,
					       .user_data = &x }, 0), 0);
		ck_assert_uint_gt(x.end, before);
	}
	nbd_close(h);
}

/* The cold windows of the plan a running migration follows. */
#define MAX_COLD 4096
static uint64_t cold_s[MAX_COLD], cold_e[MAX_COLD];
static size_t n_cold;

static void keep_fixed_plan(void)
{
	double t0 = vt_now_ms();

	for (;; vt_sleep_ms(50)) {
		json_object *r = qmp_ok(&E->src,
			"{\"execute\":\"query-vmem-split-plan\"}"), *ws, *v;
		bool fixed = json_object_object_get_ex(r, "fixed", &v) &&
			     json_object_get_boolean(v);

		if (fixed) {
			ck_assert(json_object_object_get_ex(r, "windows", &ws));
			n_cold = 0;
			for (size_t i = 0; i < json_object_array_length(ws);
			     i++) {
				json_object *w = json_object_array_get_idx(ws,
									  i);

				if (!strcmp(jget_str(w, "host"), "main"))
					continue;
				ck_assert_uint_lt(n_cold, MAX_COLD);
				cold_s[n_cold] = jget_u64(w, "start");
				cold_e[n_cold] = cold_s[n_cold] +
						 jget_u64(w, "length");
				n_cold++;
			}
			json_object_put(r);
			return;
		}
		json_object_put(r);
		ck_assert_msg(vt_now_ms() - t0 < 30000, "the source never "
			      "reported its plan fixed for the migration");
	}
}

static bool in_cold(uint64_t off)
{
	for (size_t i = 0; i < n_cold; i++)
		if (off >= cold_s[i] && off < cold_e[i])
			return true;
	return false;
}

/* Non-zero 4 KiB pages of @path in [s, e). */
static uint64_t nonzero_bytes(const char *path, uint64_t s, uint64_t e)
{
	static char buf[1 << 20];
	int fd = open(path, O_RDONLY);
	uint64_t n = 0;

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	while (s < e) {
		size_t len = e - s < sizeof(buf) ? e - s : sizeof(buf);
		ssize_t got = pread(fd, buf, len, (off_t)s);

		ck_assert_msg(got == (ssize_t)len, "%s at %#" PRIx64 ": %s",
			      path, s, got < 0 ? strerror(errno) : "short");
		for (size_t k = 0; k < len; k += 4096) {
			const uint64_t *q = (const uint64_t *)(buf + k);
			bool z = true;

			for (size_t i = 0; i < 512 && z; i++)
				z = !q[i];
			if (!z)
				n += 4096;
		}
		s += len;
	}
	close(fd);
	return n;
}

/*
 * When the md5s differ: which 4 KiB pages, and where the plan put them
 * (cold window or main host, homed or not), whether the destination's
 * memory file holds them, and which side is zero.  What the next
 * engineer needs to tell a completion race from a test-side one.
 */
static void print_differing_pages(const char *src, const char *dst)
{
	static char a[1 << 20], b[1 << 20];
	int fa = open(src, O_RDONLY), fb = open(dst, O_RDONLY);
	struct vt_datamap mem;
	char err[512];
	uint64_t n = 0, n_cold = 0, n_local = 0;
	bool have_map;

	if (fa < 0 || fb < 0) {
		printf("info: differing pages: cannot open %s or %s: %s\n",
		       src, dst, strerror(errno));
		goto out;
	}
	have_map = vt_datamap_get(E->dst_mem, 0, UINT64_MAX, &mem, err,
				  sizeof(err)) == 0;
	for (uint64_t s = 0; s < RAM; s += sizeof(a)) {
		if (pread(fa, a, sizeof(a), (off_t)s) != (ssize_t)sizeof(a) ||
		    pread(fb, b, sizeof(b), (off_t)s) != (ssize_t)sizeof(b)) {
			printf("info: differing pages: short read at %#"
			       PRIx64 "\n", s);
			break;
		}
		for (size_t k = 0; k < sizeof(a); k += 4096) {
			uint64_t off = s + k;
			bool cold, local, za = true, zb = true;
			unsigned words = 0;

			if (!memcmp(a + k, b + k, 4096))
				continue;
			for (size_t i = 0; i < 4096 && (za || zb); i++) {
				za = za && !a[k + i];
				zb = zb && !b[k + i];
			}
			for (size_t i = 0; i < 4096; i += 8)
				words += !!memcmp(a + k + i, b + k + i, 8);
			cold = in_cold(off);
			local = have_map && vt_datamap_has(&mem, off);
			n++;
			n_cold += cold;
			n_local += local;
			if (n <= 64)
				printf("info: differs at %#" PRIx64 ": %s, %s, "
				       "%s the destination's memory file; "
				       "source %s, destination %s; %u of 512 "
				       "words differ, first %016" PRIx64
				       " vs %016" PRIx64 "\n", off,
				       cold ? "cold window" : "main host",
				       off >= HOME_START ? "homed" : "unhomed",
				       local ? "in" : "not in",
				       za ? "zero" : "data",
				       zb ? "zero" : "data", words,
				       *(const uint64_t *)(a + k),
				       *(const uint64_t *)(b + k));
		}
	}
	printf("info: %" PRIu64 " pages differ: %" PRIu64 " in cold windows, "
	       "%" PRIu64 " in the destination's memory file\n", n, n_cold,
	       n_local);
	if (have_map)
		vt_datamap_free(&mem);
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
}

static uint64_t fs_bytes_remote(void)
{
	static char text[1 << 16];
	json_object *o, *v;
	uint64_t b;

	vt_ck_read_text(vt_vmemfs_path(&E->fs, "stats"), text, sizeof(text));
	o = json_tokener_parse(text);
	ck_assert_msg(o && json_object_object_get_ex(o, "bytes_remote", &v),
		      "vmemfs stats without bytes_remote: %.200s", text);
	b = (uint64_t)json_object_get_int64(v);
	json_object_put(o);
	return b;
}

/*
 * Stress modes, not part of make check (see the header): a guest loop
 * rewriting 8 MiB of page cache with new random bytes twice a second,
 * started once the migration runs, so that pages are re-dirtied in every
 * iteration, the last one included.
 */
static void start_churn(void)
{
	char out[256];

	ck_assert_int_eq(gsh(&E->src, "(while :; do dd if=/dev/urandom "
			     "of=/tmp/churn bs=1M count=8 conv=notrunc "
			     "2>/dev/null; sleep 0.5; done) >/dev/null 2>&1 &",
			     out, sizeof(out), 30000), 0);
}

/* Bytes per second from an environment variable in MiB/s (>= 1). */
static uint64_t env_mib(const char *name)
{
	unsigned long long v = strtoull(getenv(name), NULL, 0);

	ck_assert_msg(v >= 1, "%s=%s: MiB/s, at least 1", name, getenv(name));
	return v * MiB;
}

START_TEST(test_split_migration)
{
	char why[1024], out[4096], cmd[512], src_sum[64] = "", dst_sum[64] = "";
	char err[512];
	struct vt_datamap sub, mem;
	json_object *info, *vs, *v;
	uint64_t sent = 0, local, both = 0, remote_before, remote_after_md5;
	uint64_t in_cont;
	const char *st;
	double t0;

	require_env();
	ck_assert_msg(E->sub.pid > 0, "the sub-host is not back");
	if (getenv("VT_MIGRATE_PLAIN")) {
		dst_start(false, NULL, NULL);
		set_split(false);
		set_bandwidth(env_mib("VT_MIGRATE_PLAIN"));
		migrate();
		start_churn();
		st = wait_migration(180000, why, sizeof(why), NULL);
		ck_assert_msg(!strcmp(st, "completed"), "migration %s: %s",
			      st, why);
		for (t0 = vt_now_ms();; vt_sleep_ms(100)) {
			json_object *d = qmp_ok(&E->dst, "{\"execute\":"
						"\"query-migrate\"}");
			bool done = json_object_object_get_ex(d, "status",
							      &v) &&
				    !strcmp(json_object_get_string(v),
					    "completed");

			json_object_put(d);
			if (done)
				break;
			ck_assert(vt_now_ms() - t0 < 60000);
		}
		snprintf(cmd, sizeof(cmd), "md5sum %s %s", E->src_mem,
			 E->dst_mem);
		{
			char *const argv[] = { "sh", "-c", cmd, NULL };
			char errout[512];

			ck_assert_int_eq(vt_run(argv, out, sizeof(out), errout,
						sizeof(errout), 120000), 0);
		}
		ck_assert_int_eq(sscanf(out, "%63s %*s %63s", src_sum,
					dst_sum), 2);
		printf("info: md5 source RAM %s, plain destination %s\n",
		       src_sum, dst_sum);
		if (strcmp(src_sum, dst_sum))
			print_differing_pages(E->src_mem, E->dst_mem);
		ck_assert_str_eq(src_sum, dst_sum);
		return;
	}
	dst_start(true, E->conf, NULL);
	set_split(true);
	set_bandwidth(getenv("VT_MIGRATE_CHURN") ?
		      env_mib("VT_MIGRATE_CHURN") : 1ULL << 30);
	t0 = vt_now_ms();
	migrate();
	if (getenv("VT_MIGRATE_CHURN"))
		start_churn();
	keep_fixed_plan();
	st = wait_migration(180000, why, sizeof(why), &info);
	if (strcmp(st, "completed")) {
		char path[160];

		snprintf(path, sizeof(path), "%s/dst/qemu.log", E->dir);
		vt_print_tail(path, 20, "  dst: ");
		snprintf(path, sizeof(path), "%s/qemu.log", E->dir);
		vt_print_tail(path, 20, "  src: ");
	}
	ck_assert_msg(!strcmp(st, "completed"), "migration %s: %s", st, why);
	ck_assert(json_object_object_get_ex(info, "vmem-split", &vs));
	ck_assert_uint_eq(json_object_array_length(vs), 1);
	v = json_object_array_get_idx(vs, 0);
	ck_assert_str_eq(jget_str(v, "uri"), E->sub.uri);
	sent = jget_u64(v, "bytes");
	printf("info: split migration in %.1f s (total-time %" PRIu64 " ms, "
	       "downtime %" PRIu64 " ms): %" PRIu64 " MiB to %s, %" PRIu64
	       " zero pages left out\n", (vt_now_ms() - t0) / 1000,
	       jget_u64(info, "total-time"), jget_u64(info, "downtime"),
	       sent / MiB, E->sub.uri, jget_u64(v, "zero-pages"));
	json_object_put(info);
	/*
	 * How much of /tmp/cold is cold depends on the guest's reads: the
	 * refusal tests' md5sum of it on the source are reads, which TCG
	 * read sampling counts, and recently read windows fill what is
	 * left of local-limit.  What must hold: the sub-host got at least
	 * every non-zero cold page (checked below), and the cold windows
	 * are at least what local-limit leaves.
	 */
	/* The source is done when it sent the last byte; the destination
	 * when it loaded it. */
	for (t0 = vt_now_ms();; vt_sleep_ms(100)) {
		json_object *d = qmp_ok(&E->dst,
					"{\"execute\":\"query-migrate\"}");
		bool done = json_object_object_get_ex(d, "status", &v) &&
			    !strcmp(json_object_get_string(v), "completed");

		json_object_put(d);
		if (done)
			break;
		ck_assert_msg(vt_now_ms() - t0 < 60000, "the destination did "
			      "not complete the migration");
	}
	ck_assert(dst_log_has("split migration committed"));

	/* The memory file: at most local-limit, nothing both here and on
	 * the sub-host, nothing outside the home on the sub-host. */
	local = dst_mem_bytes();
	ck_assert_uint_le(local, LIMIT);
	subhost_data(&sub);
	ck_assert_msg(vt_datamap_get(E->dst_mem, 0, UINT64_MAX, &mem, err,
				     sizeof(err)) == 0, "%s", err);
	for (size_t i = 0; i < sub.n; i++) {
		ck_assert_msg(sub.ext[i].start >= HOME_START, "the sub-host "
			      "holds [%#" PRIx64 ", %#" PRIx64 "), outside its "
			      "home", sub.ext[i].start, sub.ext[i].end);
		for (uint64_t off = sub.ext[i].start; off < sub.ext[i].end;
		     off += 4096)
			if (vt_datamap_has(&mem, off))
				both += 4096;
	}
	printf("info: destination: %" PRIu64 " MiB in the memory file "
	       "(local-limit %" PRIu64 " MiB), %" PRIu64 " MiB allocated on "
	       "the sub-host, %" PRIu64 " bytes in both\n", local / MiB,
	       LIMIT / MiB, sub.bytes / MiB, both);
	ck_assert_uint_eq(both, 0);
	vt_datamap_free(&mem);
	free(sub.ext);

	/* Source RAM (paused) against vmemfs ram on the paused destination. */
	snprintf(E->fsconf, sizeof(E->fsconf), "%s/vmemfs.conf", E->dir);
	vt_ck_copy_file(E->conf, E->fsconf);
	vt_ck_mount(&E->fs, E->dir, 0, "vmemfs.conf", RAM, 30000);
	remote_before = fs_bytes_remote();
	snprintf(cmd, sizeof(cmd), "md5sum %s %s", E->src_mem,
		 vt_vmemfs_path(&E->fs, "ram"));
	{
		char *const argv[] = { "sh", "-c", cmd, NULL };
		char errout[512];

		ck_assert_int_eq(vt_run(argv, out, sizeof(out), errout,
					sizeof(errout), 120000), 0);
	}
	ck_assert_int_eq(sscanf(out, "%63s %*s %63s", src_sum, dst_sum), 2);
	printf("info: md5 source RAM %s, vmemfs ram on the destination %s\n",
	       src_sum, dst_sum);
	if (strcmp(src_sum, dst_sum))
		print_differing_pages(E->src_mem,
				      vt_vmemfs_path(&E->fs, "ram"));
	ck_assert_str_eq(src_sum, dst_sum);
	remote_after_md5 = fs_bytes_remote();

	/*
	 * vmemfs's remote bytes are exactly the plan's cold windows: its
	 * map puts them, and only them, on the sub-host, and the md5 read
	 * of ram above fetched each of them once.  Their non-zero bytes,
	 * as vmemfs reads them, are the source's cold non-zero bytes.
	 */
	{
		static char text[1 << 20];
		json_object *map;
		uint64_t cold = 0, on_sub = 0, nz_src = 0, nz_fs = 0;

		for (size_t i = 0; i < n_cold; i++) {
			cold += cold_e[i] - cold_s[i];
			nz_src += nonzero_bytes(E->src_mem, cold_s[i],
						cold_e[i]);
		}
		vt_ck_read_text(vt_vmemfs_path(&E->fs, "map"), text,
				sizeof(text));
		map = json_tokener_parse(text);
		ck_assert_msg(map && json_object_is_type(map, json_type_array),
			      "map is not a JSON list: %.200s", text);
		for (size_t i = 0; i < json_object_array_length(map); i++) {
			json_object *x = json_object_array_get_idx(map, i);
			uint64_t xs = jget_u64(x, "start");
			uint64_t xe = jget_u64(x, "end");

			if (strcmp(jget_str(x, "where"), E->sub.uri))
				continue;
			for (uint64_t off = xs; off < xe; off += 4096)
				ck_assert_msg(in_cold(off), "vmemfs maps %#"
					      PRIx64 " to the sub-host, but "
					      "the plan kept it on the main "
					      "host", off);
			on_sub += xe - xs;
			nz_fs += nonzero_bytes(vt_vmemfs_path(&E->fs, "ram"),
					       xs, xe);
		}
		json_object_put(map);
		printf("info: vmemfs: %" PRIu64 " MiB on the sub-host by map "
		       "(plan's cold windows %" PRIu64 " MiB), %" PRIu64
		       " MiB fetched by the md5 read; non-zero: %" PRIu64
		       " KiB read through vmemfs, %" PRIu64 " KiB in the "
		       "source's cold windows\n", on_sub / MiB, cold / MiB,
		       (remote_after_md5 - remote_before) / MiB, nz_fs / 1024,
		       nz_src / 1024);
		ck_assert_uint_eq(on_sub, cold);
		ck_assert_uint_ge(cold, RAM - LIMIT);
		ck_assert_uint_ge(sent, nz_src);
		/* The md5 read fetched every cold byte; vmemfs's kernel
		 * recognition reads some guest memory of its own
		 * meanwhile (a few MiB). */
		ck_assert_uint_ge(remote_after_md5 - remote_before, cold);
		ck_assert_uint_le(remote_after_md5 - remote_before,
				  cold + 32 * MiB);
		ck_assert_uint_gt(nz_src, 0);
		ck_assert_uint_eq(nz_fs, nz_src);
	}
	vt_vmemfs_stop(&E->fs, 3000);

	/* The guest runs on at the destination with its data. */
	info = qmp_ok(&E->dst, "{\"execute\":\"query-vmem\"}");
	in_cont = jget_u64(info, "bytes-in");
	json_object_put(info);
	json_object_put(qmp_ok(&E->dst, "{\"execute\":\"cont\"}"));
	/* The hot loop reads /tmp/hotsrc and writes /tmp/hot every second;
	 * stop it, so that what is fetched next is the re-reads' own. */
	ck_assert_int_eq(gsh(&E->dst, "kill $(cat /tmp/hot.pid)", out,
			     sizeof(out), 30000), 0);
	vt_sleep_ms(2000);
	info = qmp_ok(&E->dst, "{\"execute\":\"query-vmem\"}");
	{
		uint64_t in0 = jget_u64(info, "bytes-in"), in1, in2, inr;

		json_object_put(info);
		ck_assert_int_eq(gsh(&E->dst, "md5sum /tmp/hot", out,
				     sizeof(out), 120000), 0);
		ck_assert_msg(strstr(out, E->hot_sum), "hot: %s", out);
		info = qmp_ok(&E->dst, "{\"execute\":\"query-vmem\"}");
		in1 = jget_u64(info, "bytes-in");
		json_object_put(info);
		/*
		 * /tmp/hotsrc was only ever read on the source (the loop's
		 * dd input): the TLB-fill sampling of patch 0005 saw it, so
		 * it is local.  Without read sampling most of it is cold,
		 * and the loop's last rounds after cont or this re-read
		 * fetch it: count from cont on (9.4 MiB measured on QEMU
		 * without 0005, about 1 MiB with it).
		 */
		ck_assert_int_eq(gsh(&E->dst, "md5sum /tmp/hotsrc", out,
				     sizeof(out), 120000), 0);
		ck_assert_msg(strstr(out, E->hot_sum), "hotsrc: %s", out);
		info = qmp_ok(&E->dst, "{\"execute\":\"query-vmem\"}");
		inr = jget_u64(info, "bytes-in");
		json_object_put(info);
		printf("info: from cont until the read-only set (%d MiB) was "
		       "re-read the destination fetched %" PRIu64 " KiB\n",
		       HOT_MIB, (inr - in_cont) / 1024);
		ck_assert_uint_lt(inr - in_cont, HOT_MIB * MiB / 4);
		ck_assert_int_eq(gsh(&E->dst, "md5sum /tmp/cold", out,
				     sizeof(out), 120000), 0);
		ck_assert_msg(strstr(out, E->cold_sum), "cold: %s", out);
		info = qmp_ok(&E->dst, "{\"execute\":\"query-vmem\"}");
		in2 = jget_u64(info, "bytes-in");
		json_object_put(info);
		printf("info: after migration the guest re-read its hot set "
		       "(%d MiB) fetching %" PRIu64 " KiB, its cold set (%d "
		       "MiB) fetching %" PRIu64 " KiB from the sub-host\n",
		       HOT_MIB, (in1 - in0) / 1024, COLD_MIB,
		       (in2 - inr) / 1024);
		/* Hot data is local: re-reading it fetches little. */
		ck_assert_uint_lt(in1 - in0, HOT_MIB * MiB / 4);
		ck_assert_uint_gt(in2 - inr, in1 - in0);
	}
}
END_TEST

static Suite *migrate_suite(void)
{
	Suite *s = suite_create("qemu_migrate");
	TCase *tc = vt_tcase_unchecked(s, "split_migration", env_up, env_down,
				       300);

	tcase_add_test(tc, test_plan);
	tcase_add_test(tc, test_refuse_capabilities);
	tcase_add_test(tc, test_refuse_stock_destination);
	tcase_add_test(tc, test_refuse_config_mismatch);
	tcase_add_test(tc, test_refuse_plain_into_split);
	tcase_add_test(tc, test_cancel_half_way);
	tcase_add_test(tc, test_subhost_stopped);
	tcase_add_test(tc, test_subhost_killed);
	tcase_add_test(tc, test_split_migration);
	return s;
}

VT_GUEST_MAIN("qemu_migrate", migrate_suite, E, runner_pid, env_down)
