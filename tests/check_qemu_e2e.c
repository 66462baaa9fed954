// SPDX-License-Identifier: MIT
/*
 * End to end: the patched QEMU (scripts/build-qemu.sh) runs the test guest
 * (scripts/guest/build-guest.sh) with 512 MiB of RAM whose upper half,
 * [256M, 512M), is homed on an nbdkit sub-host in a network namespace of
 * its own, and local-limit = 320M.  The guest writes 128 MiB of random
 * data into tmpfs and checksums it; the host pages its upper half out
 * with QMP, confirms with query-vmem, with its own SEEK_DATA scan of the
 * memory file and by reading the sub-host directly that the data left the
 * main host; then the guest re-reads the file and must get the same sum.
 * Then vmemfs (direct backend, RAM-offset addressing, the VM's own config
 * file) is mounted on the same, paused VM and must find a file the guest wrote,
 * page by page, also where those pages are only on the sub-host, without
 * changing the memory file's data map.
 *
 * Why local-limit is 320M and not the 256M of the issue text: the guest
 * kernel fills its low RAM first, so its data reaches the homed upper half
 * only once the unhomed lower half is full, and unhomed memory never
 * leaves.  With local-limit = 256M that leaves homed memory about 10 MiB
 * (what the kernel keeps free in its DMA zone), i.e. ten 1 MiB chunks, and
 * the guest's scattered accesses to homed RAM (data pages, slab, page
 * tables) cycle through more than ten: writing 128 MiB then fetched
 * and evicted 74 GiB in 120 s.  The extra 64 MiB of room is the homed
 * working set.  With 64K chunks the same 10 MiB are 160 chunks and 256M
 * works, so a second guest runs the round trip with the issue's 256M and
 * 64K chunks: the regime in which the pager used to livelock.  See README,
 * "Sizing local-limit".  Both guests together take about 40 s.
 *
 * Fails (one test naming what to build) when QEMU or the guest is missing.
 *
 * Processes: the sub-host, its namespace and QEMU are started by an
 * unchecked fixture, i.e. in the runner process, which outlives the
 * forked tests and kills everything by PID at teardown, at exit and on
 * SIGINT/SIGTERM.  QEMU also dies with the runner (PR_SET_PDEATHSIG).
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/pagerctl.h"

#include "lib/datamap.h"
#include "lib/guest.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define MiB ((uint64_t)1 << 20)
#define RAM (512 * MiB)
#define HOME_START (256 * MiB)
#define HOME_END RAM
/*
 * Two configurations, each with a guest of its own: the one all tests
 * run on (320M, 1M chunks), and the issue's local-limit = 256M, where
 * homed memory has ~10 MiB of room and only 64K chunks fit the guest's
 * working set into it (see above); only the page-out round trip runs
 * there, as a check that the pager stays live in that regime.
 */
struct cfg {
	uint64_t limit, chunk;
};

static const struct cfg CFG_ROOMY = { 320 * MiB, MiB };
static const struct cfg CFG_TIGHT = { 256 * MiB, 64 * 1024 };
#define DATA_MIB 128
/* Written first, to fill the unhomed lower half (see above). */
#define BALLAST_MIB 160
/* The file vmemfs must find: MARK_PAGES pages, each naming itself. */
#define MARK_PAGES 8192
#define PAGE 4096
/* What an idle guest may fault back in right after a page-out. */
#define SLACK (4 * MiB)
#define NBD_PORT 10809

/* Shared between the runner and the forked tests (MAP_SHARED). */
struct env {
	bool up;
	char err[2048];
	struct vt_guest guest;
	struct vt_nbdkit sub;
	struct vt_netns ns;
	struct cfg cfg;
	struct vt_vmemfs fs;
	bool paused;		/* QMP stop sent, cont not yet */
	char dir[64];
	char mnt[96];
	char conf[128];
	char mem[128];
	char sum[64];		/* guest's md5 of the data file */
};

static struct env *E;
static pid_t runner_pid;

static void env_down(void)
{
	char path[256];

	if (getpid() != runner_pid || !E)
		return;
	/* A test that failed half-way may leave its mount behind. */
	if (E->fs.pid > 0)
		vt_vmemfs_stop(&E->fs, 3000);
	if (E->mnt[0]) {
		rmdir(E->mnt);
		E->mnt[0] = '\0';
	}
	if (E->guest.pid > 0) {
		pid_t qemu = E->guest.pid;
		int st = vt_guest_stop(&E->guest, 5000);

		/* A QEMU that crashed after the last test must not go unseen. */
		if (st != 0) {
			printf("WARNING: QEMU (pid %d) ended with status %#x "
			       "(-1: killed); its log:\n", (int)qemu, st);
			snprintf(path, sizeof(path), "%s/qemu.log", E->dir);
			vt_print_tail(path, 20, "  qemu: ");
		}
	}
	vt_nbdkit_kill(&E->sub);
	vt_netns_delete(&E->ns);
	if (E->mem[0]) {
		unlink(E->mem);
		snprintf(path, sizeof(path), "%s.seq", E->mem);
		unlink(path);
		snprintf(path, sizeof(path), "%s.ctl", E->mem);
		unlink(path);
	}
	if (E->dir[0]) {
		snprintf(path, sizeof(path), "%s/qemu.log", E->dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/vmemfs.log", E->dir);
		unlink(path);
		unlink(E->conf);
		rmdir(E->dir);
		E->dir[0] = '\0';
	}
	E->up = false;
}

static bool file_exists(const char *path)
{
	return access(path, R_OK) == 0;
}

static void env_up(const struct cfg *cfg)
{
	char path[512], err[1024];
	struct vt_guest_opts o = { 0 };
	FILE *f;

	memset(E, 0, sizeof(*E));
	E->cfg = *cfg;
	snprintf(path, sizeof(path), "%s/vmlinuz", vt_guest_dir());
	if (!file_exists(path)) {
		snprintf(E->err, sizeof(E->err), "guest missing: %s (run "
			 "scripts/guest/build-guest.sh)", path);
		return;
	}
	snprintf(E->dir, sizeof(E->dir), "/tmp/vmt-e2e.XXXXXX");
	if (!mkdtemp(E->dir)) {
		snprintf(E->err, sizeof(E->err), "mkdtemp: %s",
			 strerror(errno));
		E->dir[0] = '\0';
		return;
	}
	snprintf(E->mem, sizeof(E->mem), "/dev/shm/vmt-e2e-%d.mem",
		 (int)runner_pid);
	unlink(E->mem);
	snprintf(E->conf, sizeof(E->conf), "%s/vmemtrans.conf", E->dir);

	/* The sub-host: its own namespace, reached over a veth pair. */
	snprintf(path, sizeof(path), "vmt-e2e-%d", (int)runner_pid);
	if (vt_subhost_in_netns(&E->ns, &E->sub, path,
				16000 + runner_pid % 384, NBD_PORT, RAM / MiB,
				E->err, sizeof(E->err)) < 0)
		return;

	f = fopen(E->conf, "w");
	if (!f) {
		snprintf(E->err, sizeof(E->err), "%s: %s", E->conf,
			 strerror(errno));
		return;
	}
	/*
	 * One file for QEMU and for vmemfs: QEMU reads the limit and the
	 * sub-host, vmemfs the backend and the addressing (`layout = flat`:
	 * RAM offsets, as there is no QMP socket for it to learn the
	 * guest-physical map from).
	 */
	fprintf(f, "[e2e]\nmemory-file = %s\nram-size = %" PRIu64 "M\n"
		"chunk-size = %" PRIu64 "K\nlocal-limit = %" PRIu64 "M\n"
		"backend = direct\nlayout = flat\ntls = off\n"
		"subhost = %s %" PRIu64 "M-%" PRIu64 "M\n",
		E->mem, RAM / MiB, cfg->chunk / 1024, cfg->limit / MiB, E->sub.uri,
		HOME_START / MiB, HOME_END / MiB);
	fclose(f);

	o.mem_path = E->mem;
	o.ram_size = RAM;
	o.vmem_config = E->conf;
	o.vmem_vm = "e2e";
	o.run_dir = E->dir;
	o.boot_timeout_ms = 90000;
	if (vt_guest_start(&E->guest, &o, err, sizeof(err)) < 0) {
		snprintf(E->err, sizeof(E->err), "boot: %s", err);
		return;
	}
	printf("info: guest booted in %.1f s (TCG, 512 MiB, local-limit %"
	       PRIu64 "M, chunk %" PRIu64 "K, sub-host %s in netns %s)\n",
	       E->guest.boot_ms / 1000, cfg->limit / MiB, cfg->chunk / 1024,
	       E->sub.uri, E->ns.name);
	E->up = true;
}

static int grun(const char *cmd, char *out, size_t len, int timeout_ms);

static void env_up_roomy(void)
{
	env_up(&CFG_ROOMY);
}

static void env_up_tight(void)
{
	env_up(&CFG_TIGHT);
}

static void require_env(void)
{
	char reply[512];

	ck_assert_msg(E->up, "environment not up: %s", E->err);
	/* A test that failed while the guest was paused leaves it so. */
	if (E->paused) {
		ck_assert_int_eq(vt_guest_qmp(&E->guest, "{\"execute\":\"cont\"}",
					      reply, sizeof(reply), 10000), 0);
		E->paused = false;
	}
}

/* ---- helpers -------------------------------------------------------- */

static json_object *qmp_return(const char *cmd)
{
	char reply[1 << 14];
	json_object *j, *ret;
	int rc = vt_guest_qmp(&E->guest, cmd, reply, sizeof(reply), 120000);

	ck_assert_msg(rc == 0, "QMP %s failed (%d): %s", cmd, rc, reply);
	j = json_tokener_parse(reply);
	ck_assert_msg(j && json_object_object_get_ex(j, "return", &ret),
		      "bad QMP reply %s", reply);
	json_object_get(ret);
	json_object_put(j);
	return ret;
}

static uint64_t jget(json_object *o, const char *key)
{
	json_object *v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v),
		      "query-vmem has no %s", key);
	return (uint64_t)json_object_get_int64(v);
}

static json_object *query_vmem(void)
{
	return qmp_return("{\"execute\":\"query-vmem\"}");
}

static json_object *subhost0(json_object *q)
{
	json_object *arr;

	ck_assert(json_object_object_get_ex(q, "subhosts", &arr));
	ck_assert_int_eq(json_object_array_length(arr), 1);
	return json_object_array_get_idx(arr, 0);
}

/* Our own view of residency: data bytes of the memory file in [s, e). */
static uint64_t file_data_bytes(uint64_t s, uint64_t e)
{
	struct vt_datamap m;
	uint64_t total;
	char err[512];

	ck_assert_msg(vt_datamap_get(E->mem, s, e, &m, err, sizeof(err)) == 0,
		      "%s", err);
	total = m.bytes;
	vt_datamap_free(&m);
	return total;
}

/* Bytes in [s, e) of the sub-host that are in non-zero 4K pages. */
static uint64_t subhost_nonzero_bytes(uint64_t s, uint64_t e)
{
	static char buf[1 << 20];
	char err[512];
	struct nbd_handle *h = vt_nbd_connect(E->sub.uri, 5000, err,
					      sizeof(err));
	uint64_t total = 0;

	ck_assert_msg(h, "connect to sub-host: %s", err);
	for (uint64_t off = s; off < e; off += sizeof(buf)) {
		ck_assert_msg(nbd_pread(h, buf, sizeof(buf), off, 0) == 0,
			      "nbd_pread: %s", nbd_get_error());
		for (size_t p = 0; p < sizeof(buf); p += 4096) {
			static const char zero[4096];

			if (memcmp(buf + p, zero, 4096))
				total += 4096;
		}
	}
	nbd_close(h);
	return total;
}

static int grun(const char *cmd, char *out, size_t len, int timeout_ms)
{
	return vt_guest_run_logged(&E->guest, cmd, out, len, timeout_ms);
}

/* ---- tests ---------------------------------------------------------- */

/* The console really runs commands: output and exit status come back. */
START_TEST(test_console)
{
	char out[4096], kver[128] = "", path[512];
	FILE *f;

	require_env();
	ck_assert_int_eq(grun("echo hello; echo world >&2", out, sizeof(out),
			      10000), 0);
	ck_assert_str_eq(out, "hello\nworld\n");
	ck_assert_int_eq(grun("exit_code() { return 7; }; exit_code", out,
			      sizeof(out), 10000), 7);
	ck_assert_int_eq(grun("echo 'it'\"'\"'s'", out, sizeof(out), 10000), 0);
	ck_assert_str_eq(out, "it's\n");
	/* The kernel is the one the build script fetched. */
	snprintf(path, sizeof(path), "%s/kernel-version", vt_guest_dir());
	f = fopen(path, "r");
	ck_assert_msg(f, "%s", path);
	ck_assert(fscanf(f, "vmlinuz-%127s", kver) == 1);
	fclose(f);
	ck_assert_int_eq(grun("uname -r", out, sizeof(out), 10000), 0);
	ck_assert_msg(strncmp(out, kver, strlen(kver)) == 0,
		      "uname -r %s, expected %s", out, kver);
}
END_TEST

/* query-vmem reflects the configuration. */
START_TEST(test_query_config)
{
	json_object *q, *s;
	char want[160];

	require_env();
	q = query_vmem();
	ck_assert_uint_eq(jget(q, "ram-size"), RAM);
	ck_assert_uint_eq(jget(q, "local-limit"), E->cfg.limit);
	ck_assert_uint_eq(jget(q, "chunk-size"), E->cfg.chunk);
	s = subhost0(q);
	ck_assert_uint_eq(jget(s, "start"), HOME_START);
	ck_assert_uint_eq(jget(s, "end"), HOME_END);
	snprintf(want, sizeof(want), "%s",
		 json_object_get_string(json_object_object_get(s, "uri")));
	ck_assert_str_eq(want, E->sub.uri);

	/* The pager's control socket: beside the memory file, 0600, ours,
	 * and it answers. */
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		struct vmem_ctl_req rq = { .magic = VMEM_CTL_MAGIC,
					   .op = VMEM_CTL_PING, .tag = 9 };
		struct vmem_ctl_reply rp;
		struct stat st;
		json_object *cs;
		size_t got = 0;
		int fd;

		ck_assert_msg(json_object_object_get_ex(q, "control-socket",
							&cs),
			      "query-vmem has no control-socket");
		snprintf(want, sizeof(want), "%s.ctl", E->mem);
		ck_assert_str_eq(json_object_get_string(cs), want);
		ck_assert_int_eq(lstat(want, &st), 0);
		ck_assert(S_ISSOCK(st.st_mode));
		ck_assert_uint_eq(st.st_mode & 0777, 0600);
		ck_assert_uint_eq(st.st_uid, geteuid());
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", want);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa,
					 sizeof(sa)), 0);
		ck_assert_int_eq(write(fd, &rq, sizeof(rq)),
				 (ssize_t)sizeof(rq));
		while (got < sizeof(rp)) {
			ssize_t r = read(fd, (char *)&rp + got,
					 sizeof(rp) - got);

			ck_assert_int_gt(r, 0);
			got += (size_t)r;
		}
		close(fd);
		ck_assert_uint_eq(rp.magic, VMEM_CTL_MAGIC);
		ck_assert_uint_eq(rp.tag, 9);
		ck_assert_int_eq(rp.err, 0);
	}
	json_object_put(q);
}
END_TEST

/* Bad requests are refused, not crashed on. */
START_TEST(test_qmp_errors)
{
	char reply[2048];

	require_env();
	ck_assert_int_eq(vt_guest_qmp(&E->guest,
		"{\"execute\":\"query-vmem\",\"arguments\":{\"id\":\"nope\"}}",
		reply, sizeof(reply), 10000), 1);
	ck_assert_msg(strstr(reply, "nope"), "%s", reply);
	/* Beyond the end of RAM. */
	ck_assert_int_eq(vt_guest_qmp(&E->guest,
		"{\"execute\":\"vmem-page-in\",\"arguments\":"
		"{\"offset\":1073741824,\"length\":4096}}",
		reply, sizeof(reply), 10000), 1);
	/* Split migration itself is not implemented: QEMU must refuse to
	 * migrate rather than pull every sub-host's pages through the pager. */
	ck_assert_int_eq(vt_guest_qmp(&E->guest,
		"{\"execute\":\"migrate\",\"arguments\":"
		"{\"uri\":\"exec:cat >/dev/null\"}}",
		reply, sizeof(reply), 10000), 1);
	ck_assert_msg(strstr(reply, "split across hosts"), "%s", reply);
}
END_TEST

START_TEST(test_pageout_roundtrip)
{
	char out[4096], sum1[64] = "", sum2[64] = "";
	uint64_t before_file, after_file, moved, sub_nz;
	uint64_t out0, in0, in1, res_q;
	json_object *q, *s;
	double t0;

	require_env();
	/* 1. The data, and the guest's checksum of it. */
	/*
	 * The guest kernel fills its low memory first; a ballast file
	 * written before the data fills the unhomed lower half, so that the
	 * data lands in the homed upper half.
	 */
	ck_assert_int_eq(vt_guest_write_data(&E->guest, BALLAST_MIB, DATA_MIB,
					     "md5sum /tmp/data", out,
					     sizeof(out), 240000), 0);
	ck_assert(sscanf(out, "%32s", sum1) == 1);
	ck_assert_int_eq(strlen(sum1), 32);

	q = query_vmem();
	before_file = file_data_bytes(HOME_START, HOME_END);
	out0 = jget(q, "bytes-out");
	res_q = jget(subhost0(q), "resident-bytes");
	printf("info: before page-out: %" PRIu64 " MiB of the homed half "
	       "resident (query-vmem: %" PRIu64 " MiB), %" PRIu64
	       " MiB resident in all\n", before_file / MiB, res_q / MiB,
	       jget(q, "resident-bytes") / MiB);
	json_object_put(q);

	/* 2. Page the homed half out. */
	t0 = vt_now_ms();
	json_object_put(qmp_return("{\"execute\":\"vmem-page-out\","
		"\"arguments\":{\"offset\":268435456,\"length\":268435456}}"));
	printf("info: vmem-page-out of 256 MiB took %.2f s\n",
	       (vt_now_ms() - t0) / 1000);
	after_file = file_data_bytes(HOME_START, HOME_END);
	q = query_vmem();
	s = subhost0(q);
	moved = before_file > after_file ? before_file - after_file : 0;
	printf("info: after page-out: %" PRIu64 " KiB of the homed half "
	       "resident; query-vmem says %" PRIu64 " KiB resident, %" PRIu64
	       " MiB remote, %" PRIu64 " MiB written to the sub-host\n",
	       after_file / 1024, jget(s, "resident-bytes") / 1024,
	       jget(s, "remote-bytes") / MiB,
	       (jget(q, "bytes-out") - out0) / MiB);
	/* An idle guest may fault a chunk or two back in; no more. */
	ck_assert_msg(after_file <= SLACK, "%" PRIu64 " bytes still "
		      "resident after page-out", after_file);
	ck_assert_uint_le(jget(s, "resident-bytes"), SLACK);
	ck_assert_uint_eq(jget(s, "remote-bytes") + jget(s, "resident-bytes"),
			  HOME_END - HOME_START);
	ck_assert_uint_ge(jget(q, "bytes-out") - out0 + SLACK, moved);
	ck_assert_uint_ge(jget(q, "page-outs"), 1);
	in0 = jget(q, "bytes-in");
	json_object_put(q);

	/* 3. The data is on the sub-host now (random data is not zero). */
	sub_nz = subhost_nonzero_bytes(HOME_START, HOME_END);
	printf("info: sub-host holds %" PRIu64 " MiB of non-zero pages\n",
	       sub_nz / MiB);
	/*
	 * Where the guest put its data is the guest's business, and the
	 * limit already evicted part of it while it was written; but with
	 * 128 MiB of random data in a 512 MiB guest whose upper half is
	 * homed remotely, tens of MiB of it must be there.
	 */
	ck_assert_uint_ge(sub_nz, 16 * MiB);
	/*
	 * The data went to the homed half, and part of it was resident
	 * there (the rest was evicted by the limit while being written;
	 * with 256M, homed memory only ever has ~10 MiB of room).
	 */
	ck_assert_uint_ge(before_file, E->cfg.limit == CFG_ROOMY.limit ?
			  16 * MiB : 2 * MiB);

	/* 4. The guest reads it back through remote paging. */
	ck_assert_int_eq(grun("md5sum /tmp/data", out, sizeof(out), 240000),
			 0);
	ck_assert(sscanf(out, "%32s", sum2) == 1);
	ck_assert_str_eq(sum2, sum1);
	q = query_vmem();
	in1 = jget(q, "bytes-in");
	printf("info: re-read fetched %" PRIu64 " MiB from the sub-host; "
	       "faults %" PRIu64 ", evictions %" PRIu64 "\n",
	       (in1 - in0) / MiB, jget(q, "faults"), jget(q, "evictions"));
	/* The re-read really went to the sub-host for its data ... */
	ck_assert_uint_ge(in1 - in0, 16 * MiB);
	/*
	 * ... and fetched about what it read, not the same chunks over and
	 * over: re-reading 128 MiB fetched 949 MiB when the limit left homed
	 * memory no room.  With 256M, homed memory has ~10 MiB of room, so
	 * chunks evicted while the guest still reads them come back: 226-258
	 * MiB were measured (one run over 2x on a loaded machine), hence 3x
	 * there, still far from the 7x of no room at all.
	 */
	ck_assert_uint_le(in1 - in0, (E->cfg.limit == CFG_ROOMY.limit ? 2 : 3) *
			  DATA_MIB * MiB);
	/*
	 * The main host kept under its limit all along: the pager goes over
	 * it only when nothing is evictable, and counts that.  With 256M,
	 * unhomed memory may come close enough to the limit for that; then
	 * only by the young chunks and those being installed.
	 */
	printf("info: over-limit %" PRIu64 ", resident %" PRIu64 " MiB\n",
	       jget(q, "over-limit"), file_data_bytes(0, RAM) / MiB);
	if (E->cfg.limit == CFG_ROOMY.limit) {
		ck_assert_uint_eq(jget(q, "over-limit"), 0);
		ck_assert_uint_le(file_data_bytes(0, RAM), E->cfg.limit);
	} else {
		ck_assert_uint_le(file_data_bytes(0, RAM),
				  E->cfg.limit + 10 * E->cfg.chunk);
	}
	json_object_put(q);
	snprintf(E->sum, sizeof(E->sum), "%s", sum1);
}
END_TEST

/* ---- vmemfs on the running split VM ------------------------------- */

/*
 * Page @i of the guest's marker file: it names itself, so that a page
 * found anywhere in RAM tells which page of the file it is, and the test
 * knows every byte of it without asking the guest.
 */
#define MARK_HDR "VMTE2E-%05u-PAGE-%08u-"
#define MARK_HDR_LEN 27

static void mark_page(char *buf, unsigned int tag, unsigned int i)
{
	int n = snprintf(buf, PAGE, MARK_HDR, tag, i);

	memset(buf + n, 'x', PAGE - 1 - n);
	buf[PAGE - 1] = '\n';
}

/* The memory file's data map and allocation, to compare before/after. */
static void datamap_take(struct vt_datamap *m)
{
	char err[512];

	ck_assert_msg(vt_datamap_get(E->mem, 0, RAM, m, err, sizeof(err)) == 0,
		      "%s", err);
}

/* The whole of a file of unknown size (FUSE files report 0). */
static char *slurp(const char *path)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	for (;;) {
		if (len + 1 >= cap)
			buf = realloc(buf, cap *= 2);
		n = read(fd, buf + len, cap - 1 - len);
		ck_assert_msg(n >= 0, "%s: %s", path, strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* `where` of the map extent holding RAM offset @off. */
static const char *map_where(json_object *map, uint64_t off)
{
	for (size_t i = 0; i < json_object_array_length(map); i++) {
		json_object *e = json_object_array_get_idx(map, i);

		if (off >= jget(e, "start") && off < jget(e, "end"))
			return json_object_get_string(
				json_object_object_get(e, "where"));
	}
	return "(none)";
}

START_TEST(test_vmemfs_on_split_vm)
{
	struct vt_datamap before, after;
	static unsigned char found[MARK_PAGES];	/* 1 local, 2 remote */
	unsigned int tag = (unsigned int)runner_pid % 100000;
	char cmd[512], out[4096], path[256], err[1024], sum1[64], sum2[64];
	char want[PAGE], *buf, *text;
	uint64_t n_local = 0, n_remote = 0, n_found = 0, checked = 0;
	struct nbd_handle *h;
	json_object *map, *st;
	int fd;

	require_env();
	/* 1. A 32 MiB file whose every page names itself. */
	snprintf(cmd, sizeof(cmd), "awk 'BEGIN { p = \"\"; "
		 "for (j = 0; j < %d; j++) p = p \"x\"; "
		 "for (i = 0; i < %d; i++) printf \"VMTE2E-%%05d-PAGE-%%08d-%%s\\n\", "
		 "%u, i, p }' > /tmp/mark && md5sum /tmp/mark",
		 PAGE - 1 - MARK_HDR_LEN, MARK_PAGES, tag);
	ck_assert_int_eq(grun(cmd, out, sizeof(out), 120000), 0);
	ck_assert(sscanf(out, "%32s", sum1) == 1);
	ck_assert_int_eq(grun("wc -c < /tmp/mark", out, sizeof(out), 10000),
			 0);
	ck_assert_uint_eq(strtoull(out, NULL, 10), (uint64_t)MARK_PAGES * PAGE);

	/*
	 * 2. Quiesce the guest (its own faults would change the data map
	 * under us), then move the homed half to the sub-host.
	 */
	json_object_put(qmp_return("{\"execute\":\"stop\"}"));
	E->paused = true;
	json_object_put(qmp_return("{\"execute\":\"vmem-page-out\","
		"\"arguments\":{\"offset\":268435456,\"length\":268435456}}"));
	datamap_take(&before);
	ck_assert_uint_eq(file_data_bytes(HOME_START, HOME_END), 0);

	/* 3. vmemfs with the VM's own config file. */
	snprintf(E->mnt, sizeof(E->mnt), "%s/mnt", E->dir);
	ck_assert_int_eq(mkdir(E->mnt, 0700), 0);
	snprintf(path, sizeof(path), "%s/vmemfs.log", E->dir);
	ck_assert_msg(vt_vmemfs_start(&E->fs, E->conf, "e2e", NULL, E->mnt,
				      path, RAM, 20000, err, sizeof(err)) == 0,
		      "vmemfs: %s", err);

	/* 4. Find the file's pages in `ram`, wherever they live. */
	snprintf(path, sizeof(path), "%s/ram", E->mnt);
	fd = open(path, O_RDONLY);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	buf = malloc(MiB);
	for (uint64_t off = 0; off < RAM; off += MiB) {
		ck_assert_int_eq(pread(fd, buf, MiB, (off_t)off), (ssize_t)MiB);
		for (size_t p = 0; p < MiB; p += PAGE) {
			unsigned int t, i;

			if (memcmp(buf + p, "VMTE2E-", 7) ||
			    sscanf(buf + p, "VMTE2E-%5u-PAGE-%8u-", &t,
				   &i) != 2 || t != tag || i >= MARK_PAGES)
				continue;
			mark_page(want, tag, i);
			ck_assert_msg(memcmp(buf + p, want, PAGE) == 0,
				      "page %u of the file at %#" PRIx64
				      " is corrupt", i, off + p);
			found[i] |= vt_datamap_has(&before, off + p) ? 1 : 2;
			if (vt_datamap_has(&before, off + p)) {
				n_local++;
				continue;
			}
			n_remote++;
			/* Only on the sub-host: check there, directly. */
			if (checked < 64) {
				static char page[PAGE];

				h = vt_nbd_connect(E->sub.uri, 5000, err,
						   sizeof(err));
				ck_assert_msg(h, "sub-host: %s", err);
				ck_assert_int_eq(nbd_pread(h, page, PAGE,
							   off + p, 0), 0);
				nbd_close(h);
				ck_assert_msg(memcmp(page, want, PAGE) == 0,
					      "sub-host lacks page %u at %#"
					      PRIx64, i, off + p);
				checked++;
			}
		}
	}
	close(fd);
	free(buf);
	for (unsigned int i = 0; i < MARK_PAGES; i++)
		n_found += found[i] != 0;
	printf("info: vmemfs found %" PRIu64 " of %d pages of the guest's "
	       "file: %" PRIu64 " copies in the memory file, %" PRIu64
	       " only on the sub-host (%" PRIu64 " checked there)\n", n_found,
	       MARK_PAGES, n_local, n_remote, checked);
	/* Every page of the file, and a good part of it from the sub-host
	 * (the file was written after the lower half was full). */
	ck_assert_uint_eq(n_found, MARK_PAGES);
	ck_assert_uint_ge(n_remote, MARK_PAGES / 4);

	/* 5. map says the same: sub-host where the memory file has holes. */
	snprintf(path, sizeof(path), "%s/map", E->mnt);
	text = slurp(path);
	map = json_tokener_parse(text);
	ck_assert_msg(map && json_object_is_type(map, json_type_array),
		      "map: %.200s", text);
	free(text);
	for (size_t i = 0; i < before.n; i++)
		ck_assert_str_eq(map_where(map, before.ext[i].start), "local");
	for (uint64_t off = HOME_START; off < HOME_END; off += 16 * MiB)
		ck_assert_str_eq(map_where(map, off), E->sub.uri);
	json_object_put(map);
	snprintf(path, sizeof(path), "%s/stats", E->mnt);
	text = slurp(path);
	st = json_tokener_parse(text);
	ck_assert_msg(st, "stats: %.200s", text);
	free(text);
	printf("info: vmemfs stats: %" PRIu64 " MiB local, %" PRIu64
	       " MiB remote, %" PRIu64 " MiB zeros, %" PRIu64 " retries\n",
	       jget(st, "bytes_local") / MiB, jget(st, "bytes_remote") / MiB,
	       jget(st, "bytes_zero") / MiB, jget(st, "retries"));
	/* The homed half came from the sub-host, all of it. */
	ck_assert_uint_ge(jget(st, "bytes_remote"), HOME_END - HOME_START);
	json_object_put(st);

	/* 6. Reading changed nothing in the memory file. */
	datamap_take(&after);
	ck_assert_uint_eq(after.blocks, before.blocks);
	ck_assert_uint_eq(after.n, before.n);
	ck_assert(memcmp(after.ext, before.ext,
			 before.n * sizeof(before.ext[0])) == 0);
	vt_datamap_free(&before);
	vt_datamap_free(&after);

	/* 7. Unmount, let the guest run: its file is intact. */
	ck_assert_int_eq(vt_vmemfs_stop(&E->fs, 5000), 0);
	ck_assert_int_eq(rmdir(E->mnt), 0);
	E->mnt[0] = '\0';
	json_object_put(qmp_return("{\"execute\":\"cont\"}"));
	E->paused = false;
	ck_assert_int_eq(grun("md5sum /tmp/mark && rm /tmp/mark", out,
			      sizeof(out), 120000), 0);
	ck_assert(sscanf(out, "%32s", sum2) == 1);
	ck_assert_str_eq(sum2, sum1);
}
END_TEST

/* vmem-page-in brings a range back, all of it, before it returns. */
START_TEST(test_pagein)
{
	uint64_t off = HOME_START + 64 * MiB, len = 32 * MiB;
	char cmd[256];

	require_env();
	json_object_put(qmp_return("{\"execute\":\"vmem-page-out\","
		"\"arguments\":{\"offset\":268435456,\"length\":268435456}}"));
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"vmem-page-in\",\"arguments"
		 "\":{\"offset\":%" PRIu64 ",\"length\":%" PRIu64 "}}", off, len);
	json_object_put(qmp_return(cmd));
	ck_assert_uint_eq(file_data_bytes(off, off + len), len);
}
END_TEST

/* QEMU is still alive and running its guest after everything above. */
START_TEST(test_still_running)
{
	json_object *q, *v;

	require_env();
	q = qmp_return("{\"execute\":\"query-status\"}");
	ck_assert(json_object_object_get_ex(q, "running", &v));
	ck_assert(json_object_get_boolean(v));
	json_object_put(q);
}
END_TEST

static Suite *e2e_suite(void)
{
	Suite *s = suite_create("qemu_e2e");
	TCase *tc = vt_tcase_unchecked(s, "split_vm", env_up_roomy, env_down,
				       300);
	TCase *tight = vt_tcase_unchecked(s, "limit_256m_64k", env_up_tight,
					  env_down, 300);

	tcase_add_test(tc, test_console);
	tcase_add_test(tc, test_query_config);
	tcase_add_test(tc, test_qmp_errors);
	tcase_add_test(tc, test_pageout_roundtrip);
	tcase_add_test(tc, test_vmemfs_on_split_vm);
	tcase_add_test(tc, test_pagein);
	tcase_add_test(tc, test_still_running);
	tcase_add_test(tight, test_query_config);
	tcase_add_test(tight, test_pageout_roundtrip);
	tcase_add_test(tight, test_still_running);
	return s;
}

static void set_env(void *env)
{
	E = env;
}

int main(void)
{
	runner_pid = getpid();
	return vt_guest_suite_main("check_qemu_e2e", e2e_suite, set_env, sizeof(*E), env_down);
}
