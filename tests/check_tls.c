// SPDX-License-Identifier: MIT
/*
 * TLS towards the sub-hosts (issue 14), without a guest:
 *
 *  - the config: clear NBD to an address that is not loopback is refused
 *    (by the parser's resolve step, so at vmemfs's start, at
 *    --check-config and at QEMU's start alike) with the line and the way
 *    to allow it; loopback and unix sockets stay clear; nbds:// with
 *    tls = off, TLS without credentials or with both kinds are refused;
 *    subhost options override the VM's keys; a PSK file that group or
 *    others may read is refused, naming the file and its mode.
 *  - `vmemfs --check-config` itself refusing such a config (exit 1).
 *  - a sub-host in a network namespace of its own served by
 *    `nbdkit --tls=require --tls-psk=FILE`: the direct backend (vmemfs's
 *    read path) reads its whole range right through nbds://; a wrong key,
 *    a clear URI to that server, an nbds:// URI to a clear server each
 *    fail that sub-host's reads with EIO within the timeout and log their
 *    own reason, while the other sub-host reads right; after the key is
 *    fixed the reads work again once the quiet time is over (the retry of
 *    a down sub-host).
 *  - a packet capture (tcpdump on the namespace's veth, the server's port
 *    only) while pages full of a random marker are written to the export
 *    and read back through the backend: the marker is in the capture of
 *    the clear run and nowhere in the capture of the TLS run.
 *
 * Servers and tcpdump are children of the forked test with a parent-death
 * signal, and their PIDs are in the shared state for the runner's
 * cleanup, which also deletes the namespace and the run directory.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/config.h"
#include "../vmemfs/backend.h"
#include "../vmemfs/stats.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)

#define RAM (8 * MiB)
#define H0_START (1 * MiB)
#define H0_END (4 * MiB)
#define H1_START H0_END
#define H1_END RAM
#define SEED 1414
#define TIMEOUT_MS 1500
#define SLACK_MS 700		/* allowed lateness of an EIO (busy CI) */
#define QUIET_MS 100		/* the direct backend's retry quiet time */

/* Ports of the tls helper's range. */
#define PORT_BASE 23100

struct env {
	pid_t srv[3];
	pid_t tcpdump;
};

static struct env *E;
static pid_t runner_pid;
static char dir[64];
static struct vt_netns ns;
static char psk_good[128], psk_other[128];

/* ---- helpers ---------------------------------------------------------- */

static void kill_pid(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		vt_wait_pid(*pid, 3000);
	}
	*pid = 0;
}

static void teardown(void)
{
	for (int i = 0; i < 3; i++)
		kill_pid(&E->srv[i]);
	kill_pid(&E->tcpdump);
}

static void capture_stderr(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(dup2(fd, 2), 0);
	close(fd);
}

/* The file's bytes (NUL-terminated); *@len its length; free() it. */
static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = calloc(1, (size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	ck_assert_int_eq(n, st.st_size);
	if (len)
		*len = (size_t)n;
	return buf;
}

/*
 * nbdkit memory in the namespace on port PORT_BASE + @i; TLS with @psk
 * (NULL: clear).  Dies with this test; PID in the shared state.
 */
static void start_server(struct vt_nbdkit *n, int i, const char *psk)
{
	char err[1024];

	memset(n, 0, sizeof(*n));
	snprintf(n->netns, sizeof(n->netns), "%s", ns.name);
	snprintf(n->addr, sizeof(n->addr), "%s", ns.ns_addr);
	n->port = PORT_BASE + i;
	snprintf(n->size, sizeof(n->size), "%lluM", RAM / MiB);
	if (psk) {
		snprintf(n->tls_psk, sizeof(n->tls_psk), "%s", psk);
		snprintf(n->tls_user, sizeof(n->tls_user), "vmt");
	}
	ck_assert_msg(vt_nbdkit_start(n, true, err, sizeof(err)) == 0,
		      "nbdkit: %s", err);
	E->srv[i] = n->pid;
}

/* Write the pattern (or @fill when not NULL) to [start, end) of @n's
 * export, over TLS when it serves TLS. */
static void fill_export(const struct vt_nbdkit *n, uint64_t start,
			uint64_t end, const unsigned char *fill)
{
	unsigned char *buf = malloc(end - start);
	char err[512];
	struct nbd_handle *h;

	ck_assert_ptr_nonnull(buf);
	if (fill)
		memcpy(buf, fill, end - start);
	else
		vt_pattern_fill(buf, start, end - start, SEED);
	h = vt_nbd_connect_psk(n->uri, n->tls_psk[0] ? n->tls_psk : NULL,
			       3000, err, sizeof(err));
	ck_assert_msg(h != NULL, "%s", err);
	ck_assert_msg(nbd_pwrite(h, buf, end - start, start, 0) == 0,
		      "pwrite: %s", nbd_get_error());
	nbd_shutdown(h, 0);
	nbd_close(h);
	free(buf);
}

/* The direct backend, as vmemfs opens it, over the given sub-hosts. */
struct be {
	struct vmem_subhost subs[2];
	struct vmem_vm vm;
	struct vmem_stats st;
	void *h;
};

static const uint64_t home_start[2] = { H0_START, H1_START };
static const uint64_t home_end[2] = { H0_END, H1_END };

static void be_open(struct be *b, size_t n, const char *const *uris,
		    const struct vmem_tls *tls)
{
	char err[256] = "";

	memset(b, 0, sizeof(*b));
	for (size_t i = 0; i < n; i++)
		b->subs[i] = (struct vmem_subhost){
			.uri = (char *)uris[i], .start = home_start[i],
			.end = home_end[i], .tls = tls[i],
		};
	b->vm = (struct vmem_vm){
		.name = "t", .memory_file = "/nonexistent", .ram_size = RAM,
		.backend = "direct", .chunk_size = 64 * KiB,
		.timeout_ms = TIMEOUT_MS, .subhosts = b->subs,
		.n_subhosts = n,
	};
	ck_assert_int_eq(vmem_stats_init(&b->st, n), 0);
	b->h = vmem_backend_direct.open(&b->vm, NULL, &b->st, NULL, err,
					sizeof(err));
	ck_assert_msg(b->h != NULL, "open: %s", err);
}

static void be_close(struct be *b)
{
	vmem_backend_direct.close(b->h);
	vmem_stats_free(&b->st);
}

/* Fetch [off, +len) of home @home: VMEM_FETCH_DATA (checked against the
 * pattern) or -EIO; *@ms how long it took. */
static int fetch(struct be *b, unsigned int home, uint64_t off, size_t len,
		 double *ms)
{
	unsigned char *got = malloc(len), *want = malloc(len);
	double t0 = vt_now_ms();
	int rc;

	ck_assert(got && want);
	rc = vmem_backend_direct.fetch(b->h, home, got, off, len);
	if (ms)
		*ms = vt_now_ms() - t0;
	ck_assert_msg(rc == VMEM_FETCH_DATA || rc == -EIO,
		      "fetch [%" PRIu64 ", +%zu): %d", off, len, rc);
	if (rc == VMEM_FETCH_DATA) {
		vt_pattern_fill(want, off, len, SEED);
		ck_assert_msg(memcmp(got, want, len) == 0,
			      "wrong bytes at [%" PRIu64 ", +%zu)", off, len);
	}
	free(got);
	free(want);
	return rc;
}

static const struct vmem_tls clear_tls = { .mode = VMEM_TLS_OFF };

static struct vmem_tls psk_tls(const char *file)
{
	return (struct vmem_tls){ .mode = VMEM_TLS_REQUIRE,
				  .psk_file = file };
}

/* Print the log's line about the sub-host going down: the message an
 * operator gets, in the test's output. */
static void show_down_line(const char *name, const char *log)
{
	const char *l = strstr(log, "reads of its range fail");

	if (!l)
		return;
	while (l > log && l[-1] != '\n')
		l--;
	printf("%s: log: %.*s\n", name, (int)strcspn(l, "\n"), l);
}

/* ---- the config --------------------------------------------------------- */

/* Parse @text as "tls.conf" and resolve its VM (not started): the rc of
 * the resolve (-1 on a parse error too), message in @err. */
static int check_text(const char *text, struct vmem_config *cfg, char *err,
		      size_t errlen)
{
	struct vmem_vm *vm;

	if (vmem_config_parse(text, "tls.conf", cfg, err, errlen) < 0)
		return -1;
	vm = vmem_config_find(cfg, NULL, err, errlen);
	ck_assert_ptr_nonnull(vm);
	return vmem_vm_resolve_unstarted(vm, "tls.conf", err, errlen);
}

static void expect_refused(const char *text, const char *const *parts)
{
	struct vmem_config cfg;
	char err[1024] = "";

	ck_assert_msg(check_text(text, &cfg, err, sizeof(err)) < 0,
		      "accepted:\n%s", text);
	/* Parsed and then refused by resolve: there is a config to free
	 * (after a parse error it is empty, which frees as well). */
	vmem_config_free(&cfg);
	for (; *parts; parts++)
		ck_assert_msg(strstr(err, *parts), "'%s' not in: %s", *parts,
			      err);
}

/* Accepted (warning about the memory file at most); the VM stays in
 * @cfg for the caller to look at and free. */
static struct vmem_vm *expect_ok(const char *text, struct vmem_config *cfg)
{
	char err[1024] = "";

	ck_assert_msg(check_text(text, cfg, err, sizeof(err)) >= 0,
		      "refused: %s\n%s", err, text);
	return &cfg->vms[0];
}

#define VM "[vm]\nmemory-file = /dev/shm/vmt-tls-none.mem\nram-size = 8M\n"

START_TEST(config_clear_to_network_refused)
{
	struct vmem_config cfg;
	struct vmem_vm *vm;
	char text[1024];

	/* Line 4: the subhost line is named, and the way out. */
	expect_refused(VM "subhost = nbd://10.0.0.2:10809 1M-4M\n",
		       (const char *[]){ "tls.conf:4: ",
			       "would send guest memory in clear NBD",
			       "tls = off", "nbds://", NULL });
	/* Host names too: whatever they resolve to later. */
	expect_refused(VM "subhost = nbd://sub.example 1M-4M\n",
		       (const char *[]){ "tls.conf:4: ", "clear NBD", NULL });
	/* Explicitly allowed. */
	vm = expect_ok(VM "tls = off\nsubhost = nbd://10.0.0.2 1M-4M\n", &cfg);
	ck_assert_int_eq(vm->subhosts[0].tls.mode, VMEM_TLS_OFF);
	vmem_config_free(&cfg);
	/* ... or for that sub-host alone. */
	vm = expect_ok(VM "subhost = nbd://10.0.0.2 1M-4M tls=off\n"
		       "subhost = nbd://127.0.0.1 4M-8M\n", &cfg);
	ck_assert_int_eq(vm->subhosts[0].tls.mode, VMEM_TLS_OFF);
	ck_assert_int_eq(vm->subhosts[1].tls.mode, VMEM_TLS_OFF);
	vmem_config_free(&cfg);
	/* Loopback and unix sockets stay clear by default. */
	vm = expect_ok(VM "subhost = nbd://127.0.0.1:1 1M-2M\n"
		       "subhost = nbd://[::1]:2 2M-3M\n"
		       "subhost = nbd://localhost 3M-4M\n"
		       "subhost = nbd+unix:///?socket=/run/s 4M-5M\n", &cfg);
	for (size_t i = 0; i < 4; i++)
		ck_assert_int_eq(vm->subhosts[i].tls.mode, VMEM_TLS_OFF);
	vmem_config_free(&cfg);
	/* 127.x is loopback, 127.example is a name. */
	expect_refused(VM "subhost = nbd://127.example 1M-4M\n",
		       (const char *[]){ "clear NBD", NULL });

	/* nbds:// with PSK: TLS required, the user from the URI. */
	snprintf(text, sizeof(text), VM "tls-psk = %s\n"
		 "subhost = nbds://alice@10.0.0.2:10809/x 1M-4M\n", psk_good);
	vm = expect_ok(text, &cfg);
	ck_assert_int_eq(vm->subhosts[0].tls.mode, VMEM_TLS_REQUIRE);
	ck_assert_str_eq(vm->subhosts[0].tls.psk_file, psk_good);
	vmem_config_free(&cfg);
	/* tls = require upgrades nbd:// (libnbd keeps the mode for it). */
	snprintf(text, sizeof(text), VM "tls = require\ntls-psk = %s\n"
		 "tls-username = bob\nsubhost = nbd://10.0.0.2 1M-4M\n",
		 psk_good);
	vm = expect_ok(text, &cfg);
	ck_assert_int_eq(vm->subhosts[0].tls.mode, VMEM_TLS_REQUIRE);
	ck_assert_str_eq(vm->subhosts[0].tls.username, "bob");
	vmem_config_free(&cfg);
	/* A sub-host's own key and mode override the VM's. */
	snprintf(text, sizeof(text), VM "tls = prefer\ntls-psk = %s\n"
		 "subhost = nbds://10.0.0.2 1M-4M tls-psk=%s tls-username=carol\n"
		 "subhost = nbd://10.0.0.3 4M-8M\n", psk_good, psk_other);
	vm = expect_ok(text, &cfg);
	ck_assert_str_eq(vm->subhosts[0].tls.psk_file, psk_other);
	ck_assert_str_eq(vm->subhosts[0].tls.username, "carol");
	ck_assert_int_eq(vm->subhosts[0].tls.mode, VMEM_TLS_REQUIRE);
	ck_assert_str_eq(vm->subhosts[1].tls.psk_file, psk_good);
	ck_assert_int_eq(vm->subhosts[1].tls.mode, VMEM_TLS_PREFER);
	vmem_config_free(&cfg);

	/* Contradictions, each its own message and line. */
	snprintf(text, sizeof(text), VM "tls = off\ntls-psk = %s\n"
		 "subhost = nbds://10.0.0.2 1M-4M\n", psk_good);
	expect_refused(text, (const char *[]){ "tls.conf:4: ", "tls = off",
			       "nbds://", NULL });
	expect_refused(VM "subhost = nbds://10.0.0.2 1M-4M\n",
		       (const char *[]){ "tls.conf:4: ", "without credentials",
			       "tls-psk = FILE", NULL });
	snprintf(text, sizeof(text), VM "tls-psk = %s\ntls-certificates = %s\n"
		 "subhost = nbds://10.0.0.2 1M-4M\n", psk_good, dir);
	expect_refused(text, (const char *[]){ "both tls-psk and tls-certificates",
			       NULL });
	expect_refused(VM "tls = maybe\n",
		       (const char *[]){ "tls.conf:4: tls 'maybe' is not one of: require, prefer, off",
			       NULL });
	expect_refused(VM "tls-psk = relative.psk\n",
		       (const char *[]){ "tls.conf:4: tls-psk 'relative.psk' is not an absolute path",
			       NULL });
	expect_refused(VM "subhost = nbds://h 1M-4M tls-key=/x\n",
		       (const char *[]){ "tls.conf:4: unknown subhost option 'tls-key'",
			       NULL });
	expect_refused(VM "tls-psk = /nonexistent/k.psk\n"
		       "subhost = nbds://h 1M-4M\n",
		       (const char *[]){ "tls.conf:4: tls-psk '/nonexistent/k.psk'",
			       "No such file", NULL });
	/* A certificate directory needs the CA. */
	snprintf(text, sizeof(text), VM "tls-certificates = %s\n"
		 "subhost = nbds://h 1M-4M\n", dir);
	expect_refused(text, (const char *[]){ "ca-cert.pem", NULL });
}
END_TEST

START_TEST(config_loose_psk_refused)
{
	char path[160], text[1024], want[256];
	static const mode_t loose[] = { 0644, 0640, 0604, 0620, 0602 };
	struct vmem_config cfg;

	snprintf(path, sizeof(path), "%s/loose.psk", dir);
	ck_assert_int_eq(vt_write_psk(path, "vmt", NULL, 0), 0);
	snprintf(text, sizeof(text), VM "tls-psk = %s\n"
		 "subhost = nbds://10.0.0.2 1M-4M\n", path);
	for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
		ck_assert_int_eq(chmod(path, loose[i]), 0);
		snprintf(want, sizeof(want), "tls-psk '%s' has mode %04o",
			 path, (unsigned int)loose[i]);
		expect_refused(text, (const char *[]){ "tls.conf:4: ", want,
				       "chmod 600", NULL });
	}
	/* The same for a subhost's own file, on the subhost's line. */
	snprintf(text, sizeof(text), VM "subhost = nbds://10.0.0.2 1M-4M tls-psk=%s\n",
		 path);
	expect_refused(text, (const char *[]){ "tls.conf:4: ", "has mode 0602",
			       NULL });
	ck_assert_int_eq(chmod(path, 0600), 0);
	expect_ok(text, &cfg);
	vmem_config_free(&cfg);
	ck_assert_int_eq(chmod(path, 0400), 0);
	expect_ok(text, &cfg);
	vmem_config_free(&cfg);
	unlink(path);
}
END_TEST

/* The real binary: exit status and stderr of --check-config. */
START_TEST(check_config_cli_refuses_clear_nbd)
{
	char conf[160], out[4096], errout[4096];
	char *argv[] = { (char *)vt_vmemfs_bin(), "--check-config", "-c", conf,
			 NULL };
	int st;

	snprintf(conf, sizeof(conf), "%s/cli.conf", dir);
	ck_assert_int_eq(vt_write_file(conf, VM "backend = direct\n"
		"subhost = nbd://10.0.0.2:10809 1M-4M\n",
		strlen(VM "backend = direct\nsubhost = nbd://10.0.0.2:10809 1M-4M\n"),
		NULL, 0), 0);
	st = vt_run(argv, out, sizeof(out), errout, sizeof(errout), 10000);
	ck_assert_msg(st == 1, "--check-config exit %d: %s", st, errout);
	ck_assert_msg(strstr(errout, "cli.conf:5: subhost URI 'nbd://10.0.0.2:10809' would send guest memory in clear NBD") &&
		      strstr(errout, "tls = off"), "stderr: %s", errout);
	/* Allowed explicitly: passes, and says what it decided. */
	ck_assert_int_eq(vt_write_file(conf, VM "tls = off\n"
		"subhost = nbd://10.0.0.2:10809 1M-4M\n",
		strlen(VM "tls = off\nsubhost = nbd://10.0.0.2:10809 1M-4M\n"),
		NULL, 0), 0);
	st = vt_run(argv, out, sizeof(out), errout, sizeof(errout), 10000);
	ck_assert_msg(st == 0, "--check-config exit %d: %s", st, errout);
	ck_assert_msg(strstr(out, "tls         = off") &&
		      strstr(out, "# TLS off (clear NBD)"), "stdout: %s", out);
	unlink(conf);
}
END_TEST

/* ---- a TLS sub-host in a namespace ---------------------------------- */

START_TEST(tls_subhost_reads_right)
{
	struct vt_nbdkit n;
	struct vmem_tls tls[1];
	const char *uris[1];
	struct be b;
	double ms;

	start_server(&n, 0, psk_good);
	fill_export(&n, H0_START, H0_END, NULL);
	tls[0] = psk_tls(psk_good);
	uris[0] = n.uri;
	be_open(&b, 1, uris, tls);
	/* The whole home, in 1 MiB reads (16 chunks each) and 4K ones. */
	for (uint64_t off = H0_START; off < H0_END; off += MiB)
		ck_assert_int_eq(fetch(&b, 0, off, MiB, &ms), VMEM_FETCH_DATA);
	for (uint64_t off = H0_START; off < H0_END; off += 61 * 4 * KiB)
		ck_assert_int_eq(fetch(&b, 0, off, 4 * KiB, &ms),
				 VMEM_FETCH_DATA);
	ck_assert_uint_le(b.st.sub[0].connects, 4);
	be_close(&b);
}
END_TEST

/*
 * Sub-host 1 fails in the way @bad sets up; sub-host 0 (TLS, right key)
 * keeps reading right.  Returns the log of the run.
 */
static char *bad_subhost(const char *name, const char *uri1,
			 struct vmem_tls tls1)
{
	struct vt_nbdkit good;
	struct vmem_tls tls[2] = { psk_tls(psk_good), tls1 };
	const char *uris[2];
	char logf[160];
	struct be b;
	double ms;

	snprintf(logf, sizeof(logf), "%s/%s.log", dir, name);
	capture_stderr(logf);
	start_server(&good, 0, psk_good);
	fill_export(&good, H0_START, H0_END, NULL);
	uris[0] = good.uri;
	uris[1] = uri1;
	be_open(&b, 2, uris, tls);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(fetch(&b, 1, H1_START + (uint64_t)i * MiB,
				       64 * KiB, &ms), -EIO);
		printf("%s: EIO after %.0f ms (timeout %d ms)\n", name, ms,
		       TIMEOUT_MS);
		ck_assert_msg(ms < TIMEOUT_MS + SLACK_MS,
			      "%s: EIO after %.0f ms", name, ms);
		ck_assert_int_eq(fetch(&b, 0, H0_START + (uint64_t)i * MiB,
				       64 * KiB, &ms), VMEM_FETCH_DATA);
		vt_sleep_ms(QUIET_MS + 20);
	}
	be_close(&b);
	fflush(stderr);
	{
		char *log = slurp(logf, NULL);

		show_down_line(name, log);
		return log;
	}
}

START_TEST(wrong_psk_eio_then_retry)
{
	struct vt_nbdkit srv;
	struct vmem_tls tls[2] = { psk_tls(psk_good), psk_tls(psk_other) };
	const char *uris[2];
	char logf[160], *log;
	struct vt_nbdkit good;
	struct be b;
	double ms;

	snprintf(logf, sizeof(logf), "%s/wrongpsk.log", dir);
	capture_stderr(logf);
	start_server(&good, 0, psk_good);
	fill_export(&good, H0_START, H0_END, NULL);
	start_server(&srv, 1, psk_good);
	fill_export(&srv, H1_START, H1_END, NULL);
	/* The client's key file holds another key for the same user. */
	ck_assert_int_eq(vt_write_psk(psk_other, "vmt", NULL, 0), 0);
	uris[0] = good.uri;
	uris[1] = srv.uri;
	be_open(&b, 2, uris, tls);
	ck_assert_int_eq(fetch(&b, 1, H1_START, 64 * KiB, &ms), -EIO);
	printf("wrong PSK: EIO after %.0f ms\n", ms);
	ck_assert_msg(ms < TIMEOUT_MS + SLACK_MS, "EIO after %.0f ms", ms);
	ck_assert_int_eq(fetch(&b, 0, H0_START, 64 * KiB, &ms),
			 VMEM_FETCH_DATA);
	/* Fixed (the sub-host's key copied in): the next read after the
	 * quiet time connects again and gets the data. */
	{
		size_t len;
		char *key = slurp(psk_good, &len);

		ck_assert_int_eq(vt_write_file(psk_other, key, len, NULL, 0), 0);
		free(key);
	}
	vt_sleep_ms(QUIET_MS + 20);
	ck_assert_int_eq(fetch(&b, 1, H1_START, 64 * KiB, &ms),
			 VMEM_FETCH_DATA);
	be_close(&b);
	fflush(stderr);
	log = slurp(logf, NULL);
	show_down_line("wrong PSK", log);
	ck_assert_msg(strstr(log, "TLS (require, PSK ") &&
		      strstr(log, "gnutls_handshake") &&
		      strstr(log, "reads of its range fail until it answers again"),
		      "log: %s", log);
	ck_assert_msg(strstr(log, "answers again\n") || strstr(log, "answers again"),
		      "no recovery logged: %s", log);
	free(log);
}
END_TEST

START_TEST(clear_uri_to_tls_server)
{
	struct vt_nbdkit tlsonly;
	char uri[96], *log;

	start_server(&tlsonly, 1, psk_good);
	snprintf(uri, sizeof(uri), "nbd://%s:%d", tlsonly.addr, tlsonly.port);
	log = bad_subhost("clear2tls", uri, clear_tls);
	ck_assert_msg(strstr(log, "server requires TLS") &&
		      strstr(log, "use nbds:// with tls-psk"), "log: %s", log);
	free(log);
}
END_TEST

START_TEST(tls_uri_to_clear_server)
{
	struct vt_nbdkit clear;
	char uri[96], *log;

	start_server(&clear, 1, NULL);
	snprintf(uri, sizeof(uri), "nbds://vmt@%s:%d", clear.addr, clear.port);
	log = bad_subhost("tls2clear", uri, psk_tls(psk_good));
	ck_assert_msg(strstr(log, "TLS (require, PSK ") &&
		      strstr(log, "server refused TLS"), "log: %s", log);
	free(log);
}
END_TEST

/* tls = prefer: TLS where the sub-host offers it, clear where it does not;
 * the bytes right either way. */
START_TEST(prefer_takes_tls_or_clear)
{
	struct vt_nbdkit tlsonly, clear;
	struct vmem_tls tls[2];
	const char *uris[2];
	char u0[96], u1[96];
	struct be b;
	double ms;

	start_server(&tlsonly, 0, psk_good);
	fill_export(&tlsonly, H0_START, H0_END, NULL);
	start_server(&clear, 1, NULL);
	fill_export(&clear, H1_START, H1_END, NULL);
	/* nbd:// URIs: with prefer, libnbd upgrades when it can. */
	snprintf(u0, sizeof(u0), "nbd://vmt@%s:%d", tlsonly.addr, tlsonly.port);
	snprintf(u1, sizeof(u1), "nbd://%s:%d", clear.addr, clear.port);
	uris[0] = u0;
	uris[1] = u1;
	for (int i = 0; i < 2; i++)
		tls[i] = (struct vmem_tls){ .mode = VMEM_TLS_PREFER,
					    .psk_file = psk_good };
	be_open(&b, 2, uris, tls);
	ck_assert_int_eq(fetch(&b, 0, H0_START, MiB, &ms), VMEM_FETCH_DATA);
	ck_assert_int_eq(fetch(&b, 1, H1_START, MiB, &ms), VMEM_FETCH_DATA);
	be_close(&b);
}
END_TEST

/* ---- X.509 ---------------------------------------------------------------- */

/* sh -c @cmd, which must exit 0. */
static void sh(const char *cmd)
{
	char out[4096], errout[4096];
	char *argv[] = { "sh", "-c", (char *)cmd, NULL };
	int st = vt_run(argv, out, sizeof(out), errout, sizeof(errout), 60000);

	ck_assert_msg(st == 0, "`%s` -> %d: %s %s", cmd, st, out, errout);
}

/*
 * A CA in @dir/@ca (ca-key.pem, ca-cert.pem) and, when @server, a server
 * certificate it signed for the namespace's address in @dir/@ca too
 * (server-cert.pem, server-key.pem), as nbdkit wants the directory.
 * certtool(1) from gnutls-bin, ECDSA keys (fast to make).
 */
static void make_ca(const char *ca, bool server)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd),
		 "set -e; d=%s/%s; mkdir -p $d; cd $d; umask 077; "
		 "certtool --generate-privkey --key-type=ecdsa --outfile ca-key.pem 2>/dev/null; "
		 "printf 'cn = vmt test CA %s\nca\ncert_signing_key\nexpiration_days = 2\n' > ca.info; "
		 "certtool --generate-self-signed --load-privkey ca-key.pem "
		 "--template ca.info --outfile ca-cert.pem 2>/dev/null; "
		 "if [ %d = 1 ]; then "
		 "certtool --generate-privkey --key-type=ecdsa --outfile server-key.pem 2>/dev/null; "
		 "printf 'cn = %s\nip_address = %s\ntls_www_server\nsigning_key\nexpiration_days = 2\n' > server.info; "
		 "certtool --generate-certificate --load-ca-certificate ca-cert.pem "
		 "--load-ca-privkey ca-key.pem --load-privkey server-key.pem "
		 "--template server.info --outfile server-cert.pem 2>/dev/null; fi",
		 dir, ca, ca, server ? 1 : 0, ns.ns_addr, ns.ns_addr);
	sh(cmd);
}

/* The client's directory: only the CA's certificate, as vmemfs needs. */
static void client_dir(const char *name, const char *ca)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "set -e; mkdir -p %s/%s; cp %s/%s/ca-cert.pem %s/%s/",
		 dir, name, dir, ca, dir, name);
	sh(cmd);
}

START_TEST(x509_trusted_reads_untrusted_refused)
{
	struct vt_nbdkit srv, good;
	struct vmem_tls tls[2];
	char certs_ok[128], certs_bad[128], srvdir[128], logf[160], *log;
	const char *uris[2];
	struct vmem_config cfg;
	char text[1024];
	struct be b;
	double ms;

	make_ca("ca-a", true);
	make_ca("ca-b", false);
	client_dir("client-a", "ca-a");
	client_dir("client-b", "ca-b");
	snprintf(srvdir, sizeof(srvdir), "%s/ca-a", dir);
	snprintf(certs_ok, sizeof(certs_ok), "%s/client-a", dir);
	snprintf(certs_bad, sizeof(certs_bad), "%s/client-b", dir);

	/* The config takes the directory (the CA is there). */
	snprintf(text, sizeof(text), VM "tls-certificates = %s\n"
		 "subhost = nbds://%s:%d 1M-4M\n", certs_ok, ns.ns_addr,
		 PORT_BASE + 1);
	expect_ok(text, &cfg);
	vmem_config_free(&cfg);

	snprintf(logf, sizeof(logf), "%s/x509.log", dir);
	capture_stderr(logf);
	memset(&srv, 0, sizeof(srv));
	snprintf(srv.netns, sizeof(srv.netns), "%s", ns.name);
	snprintf(srv.addr, sizeof(srv.addr), "%s", ns.ns_addr);
	srv.port = PORT_BASE + 1;
	snprintf(srv.size, sizeof(srv.size), "%lluM", RAM / MiB);
	snprintf(srv.tls_certs, sizeof(srv.tls_certs), "%s", srvdir);
	{
		char err[1024];

		ck_assert_msg(vt_nbdkit_start(&srv, true, err, sizeof(err)) == 0,
			      "nbdkit: %s", err);
	}
	E->srv[1] = srv.pid;
	{
		/* Its data, written over TLS with the trusted CA. */
		unsigned char *buf = malloc(H1_END - H1_START);
		char err[512];
		struct nbd_handle *h;

		ck_assert_ptr_nonnull(buf);
		vt_pattern_fill(buf, H1_START, H1_END - H1_START, SEED);
		h = vt_nbd_connect_tls(srv.uri, NULL, certs_ok, 3000, err,
				       sizeof(err));
		ck_assert_msg(h != NULL, "%s", err);
		ck_assert_int_eq(nbd_pwrite(h, buf, H1_END - H1_START,
					    H1_START, 0), 0);
		nbd_shutdown(h, 0);
		nbd_close(h);
		free(buf);
	}
	start_server(&good, 0, psk_good);
	fill_export(&good, H0_START, H0_END, NULL);
	uris[0] = good.uri;
	uris[1] = srv.uri;

	/* Trusted: the whole home reads right. */
	tls[0] = psk_tls(psk_good);
	tls[1] = (struct vmem_tls){ .mode = VMEM_TLS_REQUIRE,
				    .certificates = certs_ok };
	be_open(&b, 2, uris, tls);
	for (uint64_t off = H1_START; off < H1_END; off += MiB)
		ck_assert_int_eq(fetch(&b, 1, off, MiB, &ms), VMEM_FETCH_DATA);
	be_close(&b);

	/* A CA that did not sign the server's certificate: EIO in time. */
	tls[1].certificates = certs_bad;
	be_open(&b, 2, uris, tls);
	ck_assert_int_eq(fetch(&b, 1, H1_START, 64 * KiB, &ms), -EIO);
	printf("untrusted certificate: EIO after %.0f ms\n", ms);
	ck_assert_msg(ms < TIMEOUT_MS + SLACK_MS, "EIO after %.0f ms", ms);
	ck_assert_int_eq(fetch(&b, 0, H0_START, 64 * KiB, &ms),
			 VMEM_FETCH_DATA);
	be_close(&b);
	fflush(stderr);
	log = slurp(logf, NULL);
	show_down_line("untrusted certificate", log);
	ck_assert_msg(strstr(log, "TLS (require, X.509 ") &&
		      strstr(log, certs_bad), "log: %s", log);
	free(log);
}
END_TEST

/* ---- the capture ----------------------------------------------------- */

/* tcpdump on the host side of the veth, the server's port only. */
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
		/* -U: each packet written as it comes, -s 0: whole. */
		execlp("tcpdump", "tcpdump", "-i", ns.veth_host, "-n", "-U",
		       "-s", "0", "-w", pcap, filter, (char *)NULL);
		dprintf(2, "exec tcpdump: %s\n", strerror(errno));
		_exit(127);
	}
	E->tcpdump = pid;
	/* Listening once the file has its header. */
	for (int i = 0; i < 300; i++) {
		struct stat st;

		if (stat(pcap, &st) == 0 && st.st_size >= 24)
			return pid;
		ck_assert_msg(vt_wait_pid(pid, 0) == -1, "tcpdump exited");
		vt_sleep_ms(10);
	}
	ck_abort_msg("tcpdump did not start on %s", ns.veth_host);
	return -1;
}

static void stop_tcpdump(void)
{
	/* SIGINT: it flushes and exits. */
	kill(E->tcpdump, SIGINT);
	ck_assert_int_ge(vt_wait_pid(E->tcpdump, 5000), 0);
	E->tcpdump = 0;
}

/*
 * Pages full of a random 32-byte marker written to the sub-host, read
 * back through the direct backend, all captured.  Returns how many times
 * the marker is in the capture.
 */
static size_t capture_run(const char *name, int slot, const char *psk)
{
	unsigned char marker[32], *pages;
	const size_t len = 256 * KiB;
	struct vt_nbdkit srv;
	struct vmem_tls tls[1];
	const char *uris[1];
	char pcap[160], *cap;
	size_t caplen, hits = 0;
	struct be b;

	ck_assert_int_eq(getrandom(marker, sizeof(marker), 0),
			 (ssize_t)sizeof(marker));
	pages = malloc(len);
	ck_assert_ptr_nonnull(pages);
	for (size_t i = 0; i < len; i += sizeof(marker))
		memcpy(pages + i, marker, sizeof(marker));
	snprintf(pcap, sizeof(pcap), "%s/%s.pcap", dir, name);
	start_server(&srv, slot, psk);
	start_tcpdump(pcap, srv.port);
	/* The write: what the pager's eviction sends. */
	fill_export(&srv, H0_START, H0_START + len, pages);
	tls[0] = psk ? psk_tls(psk) : clear_tls;
	uris[0] = srv.uri;
	be_open(&b, 1, uris, tls);
	{
		unsigned char *got = malloc(len);

		ck_assert_ptr_nonnull(got);
		ck_assert_int_eq(vmem_backend_direct.fetch(b.h, 0, got,
							   H0_START, len),
				 VMEM_FETCH_DATA);
		ck_assert_msg(memcmp(got, pages, len) == 0,
			      "%s: wrong bytes read back", name);
		free(got);
	}
	be_close(&b);
	vt_sleep_ms(200);
	stop_tcpdump();
	cap = slurp(pcap, &caplen);
	/* Any 16 bytes of it would do: a packet boundary may cut one copy,
	 * never all of them. */
	for (char *p = cap; (p = memmem(p, caplen - (size_t)(p - cap),
					marker, 16)); p++)
		hits++;
	printf("%s: capture of %zu bytes, marker found %zu times\n", name,
	       caplen, hits);
	/* The pages crossed the wire (twice, but a capture stopped by a
	 * signal may miss the last packets): at least once is in it. */
	ck_assert_uint_gt(caplen, len);
	free(cap);
	free(pages);
	unlink(pcap);
	return hits;
}

START_TEST(capture_clear_shows_marker_tls_does_not)
{
	size_t clear = capture_run("clear", 1, NULL);
	size_t tls = capture_run("tls", 2, psk_good);

	/* The capture works: in clear, every copy of the marker is there
	 * (256 KiB of it written and read: thousands). */
	ck_assert_uint_gt(clear, 1000);
	ck_assert_uint_eq(tls, 0);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc;

	tc = vt_tcase_checked(s, "config", NULL, NULL, 30);
	tcase_add_test(tc, config_clear_to_network_refused);
	tcase_add_test(tc, config_loose_psk_refused);
	tcase_add_test(tc, check_config_cli_refuses_clear_nbd);

	tc = vt_tcase_checked(s, "netns", NULL, teardown, 60);
	tcase_add_test(tc, tls_subhost_reads_right);
	tcase_add_test(tc, wrong_psk_eio_then_retry);
	tcase_add_test(tc, clear_uri_to_tls_server);
	tcase_add_test(tc, tls_uri_to_clear_server);
	tcase_add_test(tc, x509_trusted_reads_untrusted_refused);
	tcase_add_test(tc, prefer_takes_tls_or_clear);
	tcase_add_test(tc, capture_clear_shows_marker_tls_does_not);
	return s;
}

static void runner_cleanup(void)
{
	char path[320];

	if (getpid() != runner_pid)
		return;
	teardown();
	vt_netns_delete(&ns);
	if (!dir[0])
		return;
	static const char *const files[] = {
		"good.psk", "other.psk", "loose.psk", "cli.conf",
		"wrongpsk.log", "clear2tls.log", "tls2clear.log",
		"clear.pcap", "tls.pcap", "x509.log",
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	/* The certificate directories of the X.509 test. */
	snprintf(path, sizeof(path), "rm -rf %s/ca-a %s/ca-b %s/client-a %s/client-b",
		 dir, dir, dir, dir);
	if (system(path) != 0)
		fprintf(stderr, "check_tls: could not remove %s's certificates\n", dir);
	rmdir(dir);
	dir[0] = '\0';
}

int main(void)
{
	char err[1024], name[32];

	runner_pid = getpid();
	strcpy(dir, "/tmp/check_tls.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	E = vt_runner_env(sizeof(*E), runner_cleanup);
	if (!E)
		return 1;
	snprintf(psk_good, sizeof(psk_good), "%s/good.psk", dir);
	snprintf(psk_other, sizeof(psk_other), "%s/other.psk", dir);
	if (vt_write_psk(psk_good, "vmt", err, sizeof(err)) < 0 ||
	    vt_write_psk(psk_other, "vmt", err, sizeof(err)) < 0) {
		fprintf(stderr, "check_tls: %s\n", err);
		return 1;
	}
	/* The namespace is the runner's: the forked tests only use it.  A
	 * failure here fails every test that needs it (no skip). */
	snprintf(name, sizeof(name), "vmt-tls-%d", (int)runner_pid % 100000);
	if (vt_netns_create(&ns, name, 13000 + (unsigned int)runner_pid % 512,
			    err, sizeof(err)) < 0)
		fprintf(stderr, "check_tls: netns: %s\n", err);
	return vt_run_suite(tls_suite());
}
