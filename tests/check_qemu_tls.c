// SPDX-License-Identifier: MIT
/*
 * TLS on the wire of a split guest (issue 14): the pager inside QEMU and
 * vmemfs both reach the sub-hosts through nbds:// with a PSK, and a
 * packet capture shows that the guest's memory does not cross the
 * network in clear.
 *
 * The test guest (512 MiB under TCG) has its RAM [256M, 384M) homed on
 * an nbdkit served with `--tls=require --tls-psk=FILE`, and [384M, 512M)
 * on a clear nbdkit (`tls=off` on that subhost line: the positive control
 * of the capture), both in one network namespace, one vmemtrans.conf for
 * QEMU and vmemfs.  In order:
 *   1. the guest writes a ballast, then 192 MiB of a random 32-byte
 *      marker line, and checksums it;
 *   2. tcpdump starts on the namespace's veth, one capture per port;
 *   3. the guest is paused, QMP vmem-page-out evicts the homed half
 *      through both sub-hosts (the pager's writes);
 *   4. vmemfs (direct backend, the same sub-host lines) reads the whole
 *      homed half: what it shows of each range equals what a libnbd
 *      client reads from that export (over TLS for the TLS one), and
 *      both ranges hold the marker (else the check would be vacuous);
 *   5. the guest runs again and checksums its data: equal to the
 *      checksum of step 1 and to the host's own, so every page came back
 *      intact through the pager's page-ins;
 *   6. the captures: the marker is in the clear port's capture many
 *      times, and not once in the TLS port's.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libnbd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/guest.h"
#include "lib/guestck.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define MiB ((uint64_t)1 << 20)

#define RAM (512 * MiB)
#define TLS_START (256 * MiB)
#define TLS_END (384 * MiB)
#define CLEAR_START TLS_END
#define CLEAR_END RAM
#define BALLAST_MIB 128
#define DATA_BYTES (192 * MiB)
#define TIMEOUT_MS 5000
#define PORT_TLS 23201
#define PORT_CLEAR 23202

struct env {
	bool up;
	char err[2048];
	struct vt_guest guest;
	struct vt_netns ns;
	struct vt_nbdkit sub_tls, sub_clear;
	struct vt_vmemfs vfs[1];
	pid_t tcpdump[2];
	pid_t qemu2;		/* a second QEMU of a forked test */
	char mem2[128];
	char dir[64];
	char mem[128];
	char qemu_conf[160];
	char vmemfs_conf[160];
	char psk[128];
	char marker[40];	/* 31 characters; yes(1) adds the newline */
	char md5[40];		/* the host's md5 of the guest's data */
};

static struct env *E;
static pid_t runner_pid;

static const char *const dir_files[] = {
	"qemu.log", "qemu.conf", "vmemfs.conf", "vmt.psk", "vmemfs0.log",
	"bad.conf", "wrongkey.conf", "wrong.psk", "q2",
	"tls.pcap", "clear.pcap", "mnt0",
};

#define env_fail(...) vt_set_err(E->err, sizeof(E->err), __VA_ARGS__)

static void stop_tcpdumps(void)
{
	for (int i = 0; i < 2; i++) {
		if (E->tcpdump[i] > 0) {
			kill(E->tcpdump[i], SIGINT);
			if (vt_wait_pid(E->tcpdump[i], 5000) == -1) {
				kill(E->tcpdump[i], SIGKILL);
				vt_wait_pid(E->tcpdump[i], 3000);
			}
		}
		E->tcpdump[i] = 0;
	}
}

static void env_down(void)
{
	if (getpid() != runner_pid || !E)
		return;
	stop_tcpdumps();
	if (E->qemu2 > 0) {
		kill(E->qemu2, SIGKILL);
		vt_wait_pid(E->qemu2, 5000);
	}
	if (E->mem2[0]) {
		char seq[160];

		snprintf(seq, sizeof(seq), "%s.seq", E->mem2);
		unlink(E->mem2);
		unlink(seq);
	}
	vt_vmemfs_stop_all(E->vfs, 1);
	vt_guest_stop_started(&E->guest, 5000);
	vt_nbdkit_kill(&E->sub_tls);
	vt_nbdkit_kill(&E->sub_clear);
	vt_netns_delete(&E->ns);
	vt_run_dir_remove(E->dir, E->mem, dir_files,
			  sizeof(dir_files) / sizeof(dir_files[0]));
	E->up = false;
}

static int write_conf(const char *path, const char *head)
{
	char text[2048];

	/* One set of sub-host lines for QEMU and vmemfs: the TLS one with
	 * the VM's key, the clear one allowed for itself alone. */
	snprintf(text, sizeof(text),
		 "%stimeout = %dms\ntls-psk = %s\n"
		 "subhost = %s %" PRIu64 "M-%" PRIu64 "M\n"
		 "subhost = %s %" PRIu64 "M-%" PRIu64 "M tls=off\n",
		 head, TIMEOUT_MS, E->psk, E->sub_tls.uri, TLS_START / MiB,
		 TLS_END / MiB, E->sub_clear.uri, CLEAR_START / MiB,
		 CLEAR_END / MiB);
	return vt_write_file(path, text, strlen(text), E->err,
			     sizeof(E->err));
}

/* The host's md5 of what the guest writes: yes MARKER | head -c N. */
static int host_md5(void)
{
	char cmd[256], out[256], errout[256];
	char *argv[] = { "sh", "-c", cmd, NULL };

	snprintf(cmd, sizeof(cmd), "yes %s | head -c %" PRIu64 " | md5sum",
		 E->marker, DATA_BYTES);
	if (vt_run(argv, out, sizeof(out), errout, sizeof(errout), 60000) != 0 ||
	    sscanf(out, "%32s", E->md5) != 1) {
		env_fail("host md5sum: %s %s", out, errout);
		return -1;
	}
	return 0;
}

static void env_up(void)
{
	struct vt_guest_opts go = { 0 };
	char netns[32], err[2048], head[512];
	uint64_t rnd;

	memset(E, 0, sizeof(*E));
	if (vt_guest_has("vmlinuz", R_OK, E->err, sizeof(E->err)) < 0 ||
	    vt_run_dir("tls", runner_pid, E->dir, E->mem, E->err,
		       sizeof(E->err)) < 0)
		return;
	snprintf(E->qemu_conf, sizeof(E->qemu_conf), "%s/qemu.conf", E->dir);
	snprintf(E->vmemfs_conf, sizeof(E->vmemfs_conf), "%s/vmemfs.conf",
		 E->dir);
	snprintf(E->psk, sizeof(E->psk), "%s/vmt.psk", E->dir);
	if (vt_write_psk(E->psk, "vmt", E->err, sizeof(E->err)) < 0)
		return;
	rnd = vt_splitmix64((uint64_t)runner_pid * 0x9e3779b97f4a7c15ULL ^
			    (uint64_t)(vt_now_ms() * 1000));
	snprintf(E->marker, sizeof(E->marker), "vmt-tls-%016" PRIx64 "%07" PRIx64,
		 rnd, vt_splitmix64(rnd) & 0xfffffff);
	if (host_md5() < 0)
		return;

	snprintf(netns, sizeof(netns), "vmt-qtls-%d", (int)runner_pid % 100000);
	if (vt_netns_create(&E->ns, netns, 13600 + runner_pid % 512, err,
			    sizeof(err)) < 0) {
		env_fail("netns: %s", err);
		return;
	}
	for (int i = 0; i < 2; i++) {
		struct vt_nbdkit *n = i ? &E->sub_clear : &E->sub_tls;

		snprintf(n->netns, sizeof(n->netns), "%s", E->ns.name);
		snprintf(n->addr, sizeof(n->addr), "%s", E->ns.ns_addr);
		n->port = i ? PORT_CLEAR : PORT_TLS;
		snprintf(n->size, sizeof(n->size), "%" PRIu64 "M", RAM / MiB);
		if (!i) {
			snprintf(n->tls_psk, sizeof(n->tls_psk), "%s", E->psk);
			snprintf(n->tls_user, sizeof(n->tls_user), "vmt");
		}
		if (vt_nbdkit_start(n, true, err, sizeof(err)) < 0) {
			env_fail("nbdkit: %s", err);
			return;
		}
	}
	snprintf(head, sizeof(head), "[vm]\nmemory-file = %s\nram-size = %"
		 PRIu64 "M\nchunk-size = 64K\n", E->mem, RAM / MiB);
	if (write_conf(E->qemu_conf, head) < 0)
		return;
	snprintf(head, sizeof(head), "[vm]\nmemory-file = %s\n"
		 "chunk-size = 64K\nbackend = direct\nlayout = flat\n", E->mem);
	if (write_conf(E->vmemfs_conf, head) < 0)
		return;
	go.mem_path = E->mem;
	go.ram_size = RAM;
	go.vmem_config = E->qemu_conf;
	go.vmem_vm = "vm";
	go.run_dir = E->dir;
	go.boot_timeout_ms = 180000;
	if (vt_guest_start(&E->guest, &go, err, sizeof(err)) < 0) {
		env_fail("boot: %s", err);
		return;
	}
	printf("info: guest booted in %.1f s (TCG, 512 MiB; [256M, 384M) on "
	       "%s, [384M, 512M) on %s)\n", E->guest.boot_ms / 1000,
	       E->sub_tls.uri, E->sub_clear.uri);
	E->up = true;
}

/* ---- helpers -------------------------------------------------------- */

static pid_t start_tcpdump(const char *pcap, int port)
{
	char filter[64];
	pid_t pid;

	snprintf(filter, sizeof(filter), "tcp port %d", port);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		execlp("tcpdump", "tcpdump", "-i", E->ns.veth_host, "-n", "-U",
		       "-s", "0", "-w", pcap, filter, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		struct stat st;

		if (stat(pcap, &st) == 0 && st.st_size >= 24)
			return pid;
		ck_assert_msg(vt_wait_pid(pid, 0) == -1,
			      "tcpdump exited (is it installed? make deps)");
		vt_sleep_ms(10);
	}
	ck_abort_msg("tcpdump did not start on %s", E->ns.veth_host);
	return -1;
}

/* Count the first 16 bytes of the marker in @len bytes at @p. */
static size_t count_marker(const char *p, size_t len)
{
	const char *end = p + len;
	size_t n = 0;

	while (p < end && (p = memmem(p, (size_t)(end - p), E->marker, 16))) {
		n++;
		p++;
	}
	return n;
}

static size_t count_file(const char *path, size_t *bytes)
{
	static char buf[1 << 20];
	size_t n = 0, total = 0;
	int fd = open(path, O_RDONLY);
	ssize_t r;

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	/* A marker cut by a buffer boundary is lost: few, and the same for
	 * no file in the comparisons below. */
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		n += count_marker(buf, (size_t)r);
		total += (size_t)r;
	}
	ck_assert_int_eq(r, 0);
	close(fd);
	if (bytes)
		*bytes = total;
	return n;
}

/* vmemfs's bytes of [start, end) against a libnbd read of the export;
 * returns the markers in it. */
static size_t compare_range(const char *mem, const struct vt_nbdkit *n,
			    uint64_t start, uint64_t end)
{
	static char a[4 * 1 << 20], b[4 * 1 << 20];
	struct nbd_handle *h;
	char err[512];
	size_t markers = 0;
	int fd = open(mem, O_RDONLY);

	ck_assert_msg(fd >= 0, "%s: %s", mem, strerror(errno));
	h = vt_nbd_connect_psk(n->uri, n->tls_psk[0] ? n->tls_psk : NULL,
			       5000, err, sizeof(err));
	ck_assert_msg(h != NULL, "%s", err);
	for (uint64_t off = start; off < end; off += sizeof(a)) {
		ck_assert_int_eq(pread(fd, a, sizeof(a), (off_t)off),
				 (ssize_t)sizeof(a));
		ck_assert_msg(nbd_pread(h, b, sizeof(b), off, 0) == 0,
			      "nbd_pread %s: %s", n->uri, nbd_get_error());
		ck_assert_msg(memcmp(a, b, sizeof(a)) == 0,
			      "vmemfs and %s differ in [%" PRIu64 ", +4M)",
			      n->uri, off);
		markers += count_marker(a, sizeof(a));
	}
	nbd_shutdown(h, 0);
	nbd_close(h);
	close(fd);
	return markers;
}

/* ---- the test ------------------------------------------------------- */

START_TEST(tls_split_guest_on_the_wire)
{
	char cmd[512], out[4096], sum1[40] = "", sum2[40] = "", reply[1024];
	char pcap_tls[160], pcap_clear[160];
	size_t in_tls, in_clear, cap_tls, cap_clear, len_tls, len_clear;
	double t0;

	ck_assert_msg(E->up, "environment not up: %s", E->err);
	/* 1. Ballast low, then the marker into the upper (homed) half. */
	snprintf(cmd, sizeof(cmd), "dd if=/dev/zero of=/tmp/ballast bs=1M "
		 "count=%d 2>/dev/null && yes %s | head -c %" PRIu64
		 " > /tmp/data && md5sum /tmp/data", BALLAST_MIB, E->marker,
		 DATA_BYTES);
	vt_ck_grun(&E->guest, cmd, out, sizeof(out), 600000);
	ck_assert(sscanf(out, "%32s", sum1) == 1);
	ck_assert_str_eq(sum1, E->md5);

	/* 2. The captures, one per sub-host port. */
	snprintf(pcap_tls, sizeof(pcap_tls), "%s/tls.pcap", E->dir);
	snprintf(pcap_clear, sizeof(pcap_clear), "%s/clear.pcap", E->dir);
	E->tcpdump[0] = start_tcpdump(pcap_tls, PORT_TLS);
	E->tcpdump[1] = start_tcpdump(pcap_clear, PORT_CLEAR);

	/* 3. Paused, the homed half evicted through both sub-hosts. */
	vt_ck_qmp(&E->guest, "{\"execute\":\"stop\"}");
	t0 = vt_now_ms();
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"vmem-page-out\",\"arguments"
		 "\":{\"offset\":%" PRIu64 ",\"length\":%" PRIu64 "}}",
		 TLS_START, RAM - TLS_START);
	ck_assert_msg(vt_guest_qmp(&E->guest, cmd, reply, sizeof(reply),
				   300000) == 0, "vmem-page-out: %s", reply);
	printf("info: vmem-page-out of 256 MiB (half over TLS) took %.2f s\n",
	       (vt_now_ms() - t0) / 1000);

	/* 4. vmemfs reads both ranges, as the exports hold them. */
	vt_ck_mount(&E->vfs[0], E->dir, 0, "vmemfs.conf", RAM, 30000);
	t0 = vt_now_ms();
	in_tls = compare_range(vt_vmemfs_path(&E->vfs[0], "mem"), &E->sub_tls,
			       TLS_START, TLS_END);
	in_clear = compare_range(vt_vmemfs_path(&E->vfs[0], "mem"),
				 &E->sub_clear, CLEAR_START, CLEAR_END);
	printf("info: vmemfs read 256 MiB in %.2f s, equal to the exports; "
	       "marker lines: %zu in the TLS range, %zu in the clear one\n",
	       (vt_now_ms() - t0) / 1000, in_tls, in_clear);
	vt_vmemfs_stop(&E->vfs[0], 5000);
	/* Both ranges hold guest data of the marker: a capture without it
	 * would prove nothing. */
	ck_assert_uint_gt(in_tls, 1000);
	ck_assert_uint_gt(in_clear, 1000);

	/* 5. The guest pages everything back in and finds it intact. */
	vt_ck_qmp(&E->guest, "{\"execute\":\"cont\"}");
	vt_ck_grun(&E->guest, "md5sum /tmp/data", out, sizeof(out), 600000);
	ck_assert(sscanf(out, "%32s", sum2) == 1);
	ck_assert_str_eq(sum2, sum1);

	/* 6. What crossed the wire. */
	vt_sleep_ms(300);
	stop_tcpdumps();
	cap_tls = count_file(pcap_tls, &len_tls);
	cap_clear = count_file(pcap_clear, &len_clear);
	printf("info: captures: TLS port %zu bytes, marker %zu times; clear "
	       "port %zu bytes, marker %zu times\n", len_tls, cap_tls,
	       len_clear, cap_clear);
	/* The TLS capture saw the traffic (page-out, vmemfs, page-in of
	 * 128 MiB each way at least) ... */
	ck_assert_uint_gt(len_tls, 64 * MiB);
	/* ... and not one marker in it, where the clear one is full. */
	ck_assert_uint_gt(cap_clear, in_clear);
	ck_assert_uint_eq(cap_tls, 0);
}
END_TEST

/*
 * A second QEMU, paused, on a memory file of its own with config @conf
 * (a file in the run directory): 0 with @g started, or -1 with QEMU's
 * message in @err.
 */
static int start_qemu2(struct vt_guest *g, const char *conf, char *err,
		       size_t errlen)
{
	struct vt_guest_opts go = { 0 };
	char path[256], rd[256];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", E->dir, conf);
	snprintf(rd, sizeof(rd), "%s/q2", E->dir);
	mkdir(rd, 0700);
	snprintf(E->mem2, sizeof(E->mem2), "/dev/shm/vmt-tls2-%d.mem",
		 (int)runner_pid);
	go.mem_path = E->mem2;
	go.ram_size = RAM;
	go.vmem_config = path;
	go.vmem_vm = "vm";
	go.run_dir = rd;
	go.paused = true;
	memset(g, 0, sizeof(*g));
	rc = vt_guest_start(g, &go, err, errlen);
	E->qemu2 = g->pid;
	return rc;
}

static void stop_qemu2(struct vt_guest *g)
{
	char path[256];

	vt_guest_stop_started(g, 5000);
	E->qemu2 = 0;
	snprintf(path, sizeof(path), "%s/q2/qemu.log", E->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/q2", E->dir);
	rmdir(path);
}

/* QEMU refuses, at start, a config that sends guest memory in clear to a
 * sub-host that is not loopback: the same rule as vmemfs's. */
START_TEST(qemu_refuses_clear_nbd_to_network)
{
	char text[1024], path[256], err[4096];
	struct vt_guest g;

	ck_assert_msg(E->up, "environment not up: %s", E->err);
	snprintf(text, sizeof(text), "[vm]\nmemory-file = /dev/shm/vmt-tls2-%d.mem\n"
		 "ram-size = 512M\nsubhost = %s 384M-512M\n", (int)runner_pid,
		 E->sub_clear.uri);
	snprintf(path, sizeof(path), "%s/bad.conf", E->dir);
	ck_assert_int_eq(vt_write_file(path, text, strlen(text), NULL, 0), 0);
	ck_assert_msg(start_qemu2(&g, "bad.conf", err, sizeof(err)) < 0,
		      "QEMU started with clear NBD to %s", E->sub_clear.uri);
	printf("info: QEMU refused: %.300s\n", err);
	ck_assert_msg(strstr(err, "bad.conf:4: subhost URI") &&
		      strstr(err, "would send guest memory in clear NBD") &&
		      strstr(err, "tls = off"), "QEMU said: %s", err);
	stop_qemu2(&g);
}
END_TEST

/*
 * The pager with a wrong key: vmem-page-in of the TLS sub-host's range
 * fails within the timeout (with the TLS reason), the clear sub-host's
 * range pages in, and query-vmem shows the TLS one down.
 */
START_TEST(pager_wrong_key_fails_in_time)
{
	char text[1024], path[256], psk[256], err[4096], reply[4096];
	struct vt_guest g;
	double t0, ms;
	int rc;

	ck_assert_msg(E->up, "environment not up: %s", E->err);
	snprintf(psk, sizeof(psk), "%s/wrong.psk", E->dir);
	ck_assert_int_eq(vt_write_psk(psk, "vmt", NULL, 0), 0);
	snprintf(text, sizeof(text), "[vm]\nmemory-file = /dev/shm/vmt-tls2-%d.mem\n"
		 "ram-size = 512M\ntimeout = %dms\ntls-psk = %s\n"
		 "subhost = %s 256M-384M\nsubhost = %s 384M-512M tls=off\n",
		 (int)runner_pid, TIMEOUT_MS, psk, E->sub_tls.uri,
		 E->sub_clear.uri);
	snprintf(path, sizeof(path), "%s/wrongkey.conf", E->dir);
	ck_assert_int_eq(vt_write_file(path, text, strlen(text), NULL, 0), 0);
	ck_assert_msg(start_qemu2(&g, "wrongkey.conf", err, sizeof(err)) == 0,
		      "QEMU: %s", err);
	t0 = vt_now_ms();
	rc = vt_guest_qmp(&g, "{\"execute\":\"vmem-page-in\",\"arguments\":"
			  "{\"offset\":268435456,\"length\":1048576}}", reply,
			  sizeof(reply), 60000);
	ms = vt_now_ms() - t0;
	printf("info: vmem-page-in over a wrong key: %d after %.0f ms "
	       "(timeout %d ms): %.300s\n", rc, ms, TIMEOUT_MS, reply);
	ck_assert_msg(rc == 1, "vmem-page-in over a wrong key: %d %s", rc,
		      reply);
	/* page_in retries for the timeout, then gives up: bounded. */
	ck_assert_msg(ms < 2 * TIMEOUT_MS + 2000, "took %.0f ms", ms);
	ck_assert_msg(vt_guest_qmp(&g, "{\"execute\":\"vmem-page-in\","
				   "\"arguments\":{\"offset\":402653184,"
				   "\"length\":1048576}}", reply, sizeof(reply),
				   60000) == 0,
		      "the clear sub-host's range: %s", reply);
	ck_assert_int_eq(vt_guest_qmp(&g, "{\"execute\":\"query-vmem\"}",
				      reply, sizeof(reply), 10000), 0);
	ck_assert_msg(strstr(reply, "\"up\": false"), "query-vmem: %s", reply);
	{
		size_t len = 0;
		char lp[256], *log;
		FILE *f;

		snprintf(lp, sizeof(lp), "%s/q2/qemu.log", E->dir);
		f = fopen(lp, "r");
		ck_assert_ptr_nonnull(f);
		log = calloc(1, 1 << 20);
		ck_assert_ptr_nonnull(log);
		len = fread(log, 1, (1 << 20) - 1, f);
		fclose(f);
		log[len] = '\0';
		ck_assert_msg(strstr(log, "gnutls_handshake") &&
			      strstr(log, "TLS (require, PSK "),
			      "QEMU's log says nothing of TLS: %.2000s", log);
		free(log);
	}
	stop_qemu2(&g);
	unlink(psk);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("qemu_tls");
	TCase *tc = tcase_create("split_tls");

	tcase_add_unchecked_fixture(tc, env_up, env_down);
	tcase_set_timeout(tc, 1200);
	tcase_add_test(tc, tls_split_guest_on_the_wire);
	tcase_add_test(tc, qemu_refuses_clear_nbd_to_network);
	tcase_add_test(tc, pager_wrong_key_fails_in_time);
	suite_add_tcase(s, tc);
	return s;
}

VT_GUEST_MAIN("check_qemu_tls", tls_suite, E, runner_pid, env_down)
