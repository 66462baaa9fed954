// SPDX-License-Identifier: MIT
/*
 * The direct backend against real NBD servers: two `nbdkit memory`
 * sub-hosts on Unix sockets, each holding a known pattern in its home
 * range and different bytes outside it.  Checks the bytes of unaligned
 * and multi-chunk fetches, that requests are whole chunks clipped to the
 * home, what a stalled, dead and restarted sub-host does to reads of its
 * range and of the other one, the cache (TTL, eviction token) and eight
 * threads reading at once.
 *
 * Every server is a child of the forked test process with a parent-death
 * signal of SIGKILL, so it dies with the test even when an assertion
 * ends the test half-way, when Check's timeout kills it, or when the
 * server is stopped (SIGSTOP) at that moment; teardown also kills them
 * by PID.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libnbd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../vmemfs/backend.h"
#include "../vmemfs/memfile.h"
#include "../vmemfs/stats.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)

#define RAM (8 * MiB)
#define CHUNK (16 * KiB)
/* Home edges deliberately not on chunk boundaries: the chunk around
 * 4M + 10K belongs half to each sub-host. */
#define H0_START (1 * MiB + 6 * KiB)
#define H0_END (4 * MiB + 10 * KiB)
#define H1_START H0_END
#define H1_END RAM

#define SEED_DATA 1000		/* what a home holds */
#define SEED_FOREIGN 999	/* what a sub-host holds outside its home */
#define SEED_NEW 2000		/* data rewritten during a test */

#define TIMEOUT_MS 400		/* for the tests of failures */
#define SLACK_MS 400		/* allowed lateness of an -EIO (busy CI) */
/* Tests of bytes must not fail because the machine is busy. */
#define RELAXED_TIMEOUT_MS 5000

static char dir[64];
static pid_t dir_owner;
static char sock[2][128];
static char uri[2][192];
static pid_t srv[2];
static struct nbd_handle *filler[2];

static struct vmem_subhost subs[2];
static struct vmem_vm vm;
static struct vmem_stats st;
static struct vmem_memfile mf;
static struct vmem_seq_map *seqmap;
static void *bh;

static const uint64_t home_start[2] = { H0_START, H1_START };
static const uint64_t home_end[2] = { H0_END, H1_END };

/* ---- servers -------------------------------------------------------- */

/*
 * What server 0 runs instead of `nbdkit memory 8M` when set: the
 * coalescing tests put filters in front of it (and must then fill the
 * memory through them), or serve a file with a script that refuses one
 * range.  NULL-terminated; "nbdkit -f -t 1 -U SOCK" comes first.
 */
static const char *srv0_args[16];

static void spawn_server(int i)
{
	char err[256];
	pid_t pid;

	unlink(sock[i]);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		/* SIGKILL, not nbdkit's --exit-with-parent (SIGTERM): a
		 * stopped server must die with us too. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);	/* it complains when we hang up on it */
		/* One thread per connection: nbdkit 1.32 with several can
		 * abort (raw_send_socket: sock >= 0) when it resumes from
		 * SIGSTOP and finds that a client hung up on a connection
		 * with two requests in flight, which is just what the
		 * backend does after a timeout. */
		if (i == 0 && srv0_args[0]) {
			const char *argv[24] = {
				"nbdkit", "-f", "-t", "1", "-U", sock[i],
			};
			size_t k = 6;

			for (size_t j = 0; srv0_args[j] && k < 23; j++)
				argv[k++] = srv0_args[j];
			execvp("nbdkit", (char *const *)argv);
			_exit(127);
		}
		execlp("nbdkit", "nbdkit", "-f", "-t", "1", "-U", sock[i],
		       "memory", "8M", (char *)NULL);
		_exit(127);
	}
	srv[i] = pid;
	filler[i] = vt_nbd_connect(uri[i], 5000, err, sizeof(err));
	ck_assert_msg(filler[i] != NULL, "nbdkit %d: %s", i, err);
}

/* Write @seed's pattern over [off, off + len) of sub-host @i. */
static void write_pattern(int i, uint64_t off, uint64_t len, uint64_t seed)
{
	unsigned char *buf = malloc(MiB);

	ck_assert_ptr_nonnull(buf);
	while (len) {
		/* 32K: what the servers of the coalescing tests accept. */
		uint64_t n = len < 32 * KiB ? len : 32 * KiB;

		vt_pattern_fill(buf, off, n, seed);
		ck_assert_msg(nbd_pwrite(filler[i], buf, n, off, 0) == 0,
			      "pwrite: %s", nbd_get_error());
		off += n;
		len -= n;
	}
	free(buf);
}

/* The whole export: foreign bytes everywhere, the home's data at home. */
static void fill_server(int i)
{
	write_pattern(i, 0, RAM, SEED_FOREIGN);
	write_pattern(i, home_start[i], home_end[i] - home_start[i],
		      SEED_DATA);
}

static void kill_server(int i)
{
	if (filler[i]) {
		nbd_close(filler[i]);
		filler[i] = NULL;
	}
	if (srv[i] > 0) {
		kill(srv[i], SIGKILL);
		waitpid(srv[i], NULL, 0);
		srv[i] = 0;
	}
}

/* SIGSTOP takes effect some time after kill() returns: wait until every
 * thread of @pid is stopped, or a request could still slip through. */
static void stop_server(int i)
{
	double t0 = vt_now_ms();

	ck_assert_int_eq(kill(srv[i], SIGSTOP), 0);
	for (;;) {
		char path[64], line[512];
		DIR *d;
		struct dirent *e;
		bool all = true;

		snprintf(path, sizeof(path), "/proc/%d/task", (int)srv[i]);
		d = opendir(path);
		ck_assert_ptr_nonnull(d);
		while ((e = readdir(d))) {
			char sp[384], *rp;
			FILE *f;

			if (e->d_name[0] == '.')
				continue;
			snprintf(sp, sizeof(sp), "%s/%s/stat", path, e->d_name);
			f = fopen(sp, "r");
			if (!f)
				continue;	/* thread gone */
			if (fgets(line, sizeof(line), f)) {
				rp = strrchr(line, ')');
				if (rp && rp[2] != 'T' && rp[2] != 't')
					all = false;
			}
			fclose(f);
		}
		closedir(d);
		if (all)
			return;
		ck_assert_double_lt(vt_now_ms() - t0, 2000);
		vt_sleep_ms(1);
	}
}

static void kill_servers(void)
{
	kill_server(0);
	kill_server(1);
}

/* ---- fixture -------------------------------------------------------- */

static bool srv0_prefilled;	/* its file holds fill_server()'s bytes */

static void setup(void)
{
	atexit(kill_servers);
	for (int i = 0; i < 2; i++) {
		spawn_server(i);
		if (i > 0 || !srv0_prefilled)
			fill_server(i);
		subs[i] = (struct vmem_subhost){
			.uri = uri[i],
			.start = home_start[i],
			.end = home_end[i],
		};
	}
	vm = (struct vmem_vm){
		.name = "t",
		.memory_file = "/nonexistent",
		.ram_size = RAM,
		.backend = "direct",
		.chunk_size = CHUNK,
		.cache_size = 0,
		.cache_ttl_ms = 100,
		.timeout_ms = RELAXED_TIMEOUT_MS,
		.subhosts = subs,
		.n_subhosts = 2,
	};
	ck_assert_int_eq(vmem_stats_init(&st, 2), 0);
	/* No memory file is read here: the backend only uses its seq, which
	 * the cache needs (no sequence, no cache: see no_seq_no_cache). */
	seqmap = calloc(1, sizeof(*seqmap));
	ck_assert_ptr_nonnull(seqmap);
	vmem_memfile_init_seq_only(&mf, seqmap);
	bh = NULL;
}

static void teardown(void)
{
	if (bh)
		vmem_backend_direct.close(bh);
	bh = NULL;
	kill_servers();
	vmem_stats_free(&st);
	free(seqmap);
}

/* One of the backend's own counters, as it adds them to `stats`. */
static uint64_t backend_stat(const char *key)
{
	json_object *o = json_object_new_object(), *v;
	uint64_t n;

	vmem_backend_direct.stats_json(bh, o);
	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no %s", key);
	n = json_object_get_uint64(v);
	json_object_put(o);
	return n;
}

static void be_open(void)
{
	char err[256] = "";

	bh = vmem_backend_direct.open(&vm, &mf, &st, NULL, err, sizeof(err));
	ck_assert_msg(bh != NULL, "open: %s", err);
}

/* ---- reading -------------------------------------------------------- */

static int fetch(void *h, unsigned int home, void *buf, uint64_t off,
		 size_t len, double *ms)
{
	double t0 = vt_now_ms();
	int rc = vmem_backend_direct.fetch(h, home, buf, off, len);

	if (ms)
		*ms = vt_now_ms() - t0;
	return rc;
}

/* Fetch and compare with @seed's pattern; returns the fetch's result. */
static int fetch_check(void *h, unsigned int home, uint64_t off, size_t len,
		       uint64_t seed)
{
	unsigned char *got = malloc(len), *want = malloc(len);
	int rc;

	ck_assert(got && want);
	memset(got, 0x5a, len);
	rc = fetch(h, home, got, off, len, NULL);
	if (rc == VMEM_FETCH_DATA) {
		vt_pattern_fill(want, off, len, seed);
		if (memcmp(got, want, len) != 0) {
			size_t k = 0;

			while (got[k] == want[k])
				k++;
			ck_abort_msg("home %u [%llu, +%zu): first wrong byte at %llu",
				     home, (unsigned long long)off, len,
				     (unsigned long long)(off + k));
		}
	}
	free(got);
	free(want);
	return rc;
}

#define ck_fetch_ok(h, home, off, len, seed) \
	ck_assert_int_eq(fetch_check(h, home, off, len, seed), VMEM_FETCH_DATA)

static uint64_t rnd(unsigned int *seed, uint64_t n)
{
	uint64_t r = ((uint64_t)rand_r(seed) << 31) ^ (uint64_t)rand_r(seed);

	return r % n;
}

/* A random range inside home @home, lengths from 1 byte to 300K. */
static void random_range(unsigned int *seed, unsigned int home,
			 uint64_t *off, size_t *len)
{
	static const size_t lens[] = {
		1, 100, 4096, CHUNK - 1, CHUNK, CHUNK + 1, 50000, 300 * KiB,
	};
	uint64_t hs = home_start[home], he = home_end[home];
	size_t l = lens[rnd(seed, sizeof(lens) / sizeof(lens[0]))];

	*off = hs + rnd(seed, he - hs - l + 1);
	if (rnd(seed, 3) == 0)		/* often exactly on a chunk */
		*off = (*off & ~(CHUNK - 1)) < hs ? hs : (*off & ~(CHUNK - 1));
	*len = l;
}

/* ---- tests: bytes and requests ------------------------------------- */

START_TEST(bytes_match_pattern)
{
	unsigned int seed = 42;

	be_open();
	for (int i = 0; i < 300; i++) {
		unsigned int home = i % 2;
		uint64_t off;
		size_t len;

		random_range(&seed, home, &off, &len);
		ck_fetch_ok(bh, home, off, len, SEED_DATA);
	}
	/* Whole homes in one fetch each, and their edges. */
	ck_fetch_ok(bh, 0, H0_START, H0_END - H0_START, SEED_DATA);
	ck_fetch_ok(bh, 1, H1_START, H1_END - H1_START, SEED_DATA);
	ck_fetch_ok(bh, 0, H0_START, 1, SEED_DATA);
	ck_fetch_ok(bh, 0, H0_END - 1, 1, SEED_DATA);
	ck_fetch_ok(bh, 0, H0_END - 5000, 5000, SEED_DATA);
	ck_fetch_ok(bh, 1, H1_START, 100, SEED_DATA);
	ck_fetch_ok(bh, 1, H1_END - CHUNK - 3, CHUNK + 3, SEED_DATA);
	ck_assert_uint_eq(st.sub[0].errors + st.sub[1].errors, 0);
}
END_TEST

START_TEST(requests_are_whole_chunks_clipped_to_home)
{
	unsigned char buf[64 * KiB];
	uint64_t r0, b0;

	be_open();
	/* 40K from 100 bytes into a chunk touches three chunks. */
	r0 = st.sub[0].requests;
	b0 = st.sub[0].bytes;
	ck_fetch_ok(bh, 0, 2 * MiB + 100, 40 * KiB, SEED_DATA);
	ck_assert_uint_eq(st.sub[0].requests - r0, 3);
	ck_assert_uint_eq(st.sub[0].bytes - b0, 3 * CHUNK);
	ck_assert_uint_eq(st.sub[0].latency.n, st.sub[0].requests);

	/* The home starts 6K into a chunk: only the home part is asked. */
	r0 = st.sub[0].requests;
	b0 = st.sub[0].bytes;
	ck_fetch_ok(bh, 0, H0_START, 100, SEED_DATA);
	ck_assert_uint_eq(st.sub[0].requests - r0, 1);
	ck_assert_uint_eq(st.sub[0].bytes - b0, CHUNK - 6 * KiB);

	/* The chunk at 4M is split 10K / 6K between the homes. */
	r0 = st.sub[1].requests;
	b0 = st.sub[1].bytes;
	ck_fetch_ok(bh, 1, H1_START, 6 * KiB, SEED_DATA);
	ck_assert_uint_eq(st.sub[1].requests - r0, 1);
	ck_assert_uint_eq(st.sub[1].bytes - b0, 6 * KiB);

	/* Ranges outside the home, or a home that does not exist. */
	ck_assert_int_eq(fetch(bh, 0, buf, H0_START - 1, 10, NULL), -EINVAL);
	ck_assert_int_eq(fetch(bh, 0, buf, H0_END - 5, 10, NULL), -EINVAL);
	ck_assert_int_eq(fetch(bh, 2, buf, H1_START, 10, NULL), -EINVAL);
	ck_assert_int_eq(fetch(bh, 0, buf, H0_START, 0, NULL),
			 VMEM_FETCH_DATA);
	ck_assert_uint_eq(backend_stat("cache_hits") +
			  backend_stat("cache_misses"), 0);
}
END_TEST

START_TEST(open_contacts_nobody)
{
	struct vmem_subhost gone[2] = {
		{ .uri = "nbd+unix:///?socket=/nonexistent/vmem.sock",
		  .start = H0_START, .end = H0_END },
		{ .uri = uri[1], .start = H1_START, .end = H1_END },
	};
	double t0, ms;
	char err[256];
	unsigned char buf[100];

	vm.subhosts = gone;
	vm.timeout_ms = TIMEOUT_MS;
	/* Servers that exist see no connection from open() either. */
	t0 = vt_now_ms();
	bh = vmem_backend_direct.open(&vm, &mf, &st, NULL, err, sizeof(err));
	ck_assert_ptr_nonnull(bh);
	ck_assert_double_lt(vt_now_ms() - t0, TIMEOUT_MS / 2);
	ck_assert_uint_eq(st.sub[0].connects + st.sub[1].connects, 0);

	ck_assert_int_eq(fetch(bh, 0, buf, H0_START, sizeof(buf), &ms), -EIO);
	ck_assert_double_lt(ms, TIMEOUT_MS / 2);	/* refused at once */
	ck_assert_uint_eq(st.sub[0].errors, 1);
	ck_fetch_ok(bh, 1, H1_START, sizeof(buf), SEED_DATA);
	ck_assert_uint_eq(st.sub[1].connects, 1);
}
END_TEST

/* ---- tests: failures ----------------------------------------------- */

struct bg_fetch {
	void *h;
	unsigned int home;
	uint64_t off;
	size_t len;
	int rc;
	double ms;
	unsigned char buf[32 * KiB];
};

static void *bg_fetch_run(void *arg)
{
	struct bg_fetch *b = arg;

	b->rc = fetch(b->h, b->home, b->buf, b->off, b->len, &b->ms);
	return NULL;
}

START_TEST(stalled_subhost_fails_alone_and_recovers)
{
	/* More readers than pooled connections: some wait for the pool. */
	enum { N_BG = 6 };
	struct bg_fetch *bg = calloc(N_BG, sizeof(*bg));
	pthread_t th[N_BG];
	char err[256];
	struct vmem_stats fresh_st;
	void *fresh;
	double t0, ms;
	int rc;

	ck_assert_ptr_nonnull(bg);
	vm.timeout_ms = TIMEOUT_MS;
	be_open();
	ck_fetch_ok(bh, 0, 2 * MiB, 32 * KiB, SEED_DATA);
	ck_fetch_ok(bh, 1, 5 * MiB, 32 * KiB, SEED_DATA);

	/* A server that stops answering (packets vanish, host hangs). */
	stop_server(0);
	for (int i = 0; i < N_BG; i++) {
		bg[i] = (struct bg_fetch){
			.h = bh, .home = 0, .len = 32 * KiB,
			.off = 2 * MiB + (uint64_t)i * 64 * KiB,
		};
		ck_assert_int_eq(pthread_create(&th[i], NULL, bg_fetch_run,
						&bg[i]), 0);
	}
	vt_sleep_ms(50);
	/* The other sub-host answers as fast as ever meanwhile. */
	for (int i = 0; i < 20; i++) {
		t0 = vt_now_ms();
		ck_fetch_ok(bh, 1, 5 * MiB + (uint64_t)i * 40000, 40000,
			    SEED_DATA);
		/* Far below the stalled one's timeout: it waits alone. */
		ck_assert_double_lt(vt_now_ms() - t0, TIMEOUT_MS / 2);
	}
	for (int i = 0; i < N_BG; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < N_BG; i++) {
		ck_assert_int_eq(bg[i].rc, -EIO);
		ck_assert_double_le(bg[i].ms, TIMEOUT_MS + SLACK_MS);
	}
	/* The one on the pooled connection waited for the answer until
	 * the timeout, not less. */
	ms = 0;
	for (int i = 0; i < N_BG; i++)
		ms = bg[i].ms > ms ? bg[i].ms : ms;
	ck_assert_double_ge(ms, TIMEOUT_MS - 5);
	ck_assert_uint_ge(st.sub[0].errors, N_BG);
	ck_assert_uint_eq(st.sub[1].errors, 0);

	/* A new connection to it hangs in the handshake: still bounded. */
	ck_assert_int_eq(vmem_stats_init(&fresh_st, 2), 0);
	fresh = vmem_backend_direct.open(&vm, &mf, &fresh_st, NULL, err,
					 sizeof(err));
	ck_assert_ptr_nonnull(fresh);
	rc = fetch(fresh, 0, bg[0].buf, 2 * MiB, 100, &ms);
	ck_assert_int_eq(rc, -EIO);
	ck_assert_double_le(ms, TIMEOUT_MS + SLACK_MS);
	vmem_backend_direct.close(fresh);
	vmem_stats_free(&fresh_st);

	/* Back: reads work again, without anyone reopening anything. */
	ck_assert_int_eq(kill(srv[0], SIGCONT), 0);
	t0 = vt_now_ms();
	do {
		rc = fetch_check(bh, 0, 2 * MiB, 32 * KiB, SEED_DATA);
		if (rc != VMEM_FETCH_DATA)
			vt_sleep_ms(10);
	} while (rc != VMEM_FETCH_DATA && vt_now_ms() - t0 < 3000);
	ck_assert_int_eq(rc, VMEM_FETCH_DATA);
	ck_assert_double_lt(vt_now_ms() - t0, 1000);
	ck_fetch_ok(bh, 0, H0_START, H0_END - H0_START, SEED_DATA);
	free(bg);
}
END_TEST

START_TEST(killed_subhost_fails_and_restart_recovers)
{
	unsigned char buf[4096];
	uint64_t connects;
	double t0, ms;
	int rc;

	vm.timeout_ms = TIMEOUT_MS;
	be_open();
	ck_fetch_ok(bh, 0, 3 * MiB, 64 * KiB, SEED_DATA);
	connects = st.sub[0].connects;
	ck_assert_uint_ge(connects, 1);

	kill_server(0);
	rc = fetch(bh, 0, buf, 3 * MiB, sizeof(buf), &ms);
	ck_assert_int_eq(rc, -EIO);
	ck_assert_double_le(ms, TIMEOUT_MS + SLACK_MS);
	ck_fetch_ok(bh, 1, 6 * MiB, 64 * KiB, SEED_DATA);

	/* A restarted server on the same socket, with the data put back
	 * (a memory server starts empty). */
	spawn_server(0);
	fill_server(0);
	t0 = vt_now_ms();
	do {
		rc = fetch_check(bh, 0, 3 * MiB, 64 * KiB, SEED_DATA);
		if (rc != VMEM_FETCH_DATA)
			vt_sleep_ms(10);
	} while (rc != VMEM_FETCH_DATA && vt_now_ms() - t0 < 3000);
	ck_assert_int_eq(rc, VMEM_FETCH_DATA);
	ck_assert_double_lt(vt_now_ms() - t0, 1000);
	ck_assert_uint_gt(st.sub[0].connects, connects);
	ck_fetch_ok(bh, 0, H0_START, H0_END - H0_START, SEED_DATA);

	/* Restarted under our feet with idle pooled connections: the first
	 * read after it must not fail on a stale connection. */
	kill_server(0);
	spawn_server(0);
	fill_server(0);
	ck_fetch_ok(bh, 0, 3 * MiB, 64 * KiB, SEED_DATA);
}
END_TEST

/* A "server" that accepts and hangs up at once, counting connections. */
struct hangup_server {
	int fd;
	volatile int stop;
	int accepted;
};

static void *hangup_run(void *arg)
{
	struct hangup_server *hs = arg;

	while (!hs->stop) {
		struct pollfd pfd = { .fd = hs->fd, .events = POLLIN };
		int c;

		if (poll(&pfd, 1, 10) <= 0)
			continue;
		c = accept(hs->fd, NULL, NULL);
		if (c >= 0) {
			hs->accepted++;
			close(c);
		}
	}
	return NULL;
}

START_TEST(failing_subhost_is_not_hammered)
{
	struct hangup_server hs = { .fd = -1 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[128], u[192];
	struct vmem_subhost hang[2] = {
		{ .uri = u, .start = H0_START, .end = H0_END },
		{ .uri = uri[1], .start = H1_START, .end = H1_END },
	};
	unsigned char buf[100];
	pthread_t th;
	int fetches = 0;
	double t0;

	snprintf(path, sizeof(path), "%s/hangup.sock", dir);
	snprintf(u, sizeof(u), "nbd+unix:///?socket=%s", path);
	unlink(path);
	strcpy(sa.sun_path, path);
	hs.fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(hs.fd, 0);
	ck_assert_int_eq(bind(hs.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(hs.fd, 64), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, hangup_run, &hs), 0);

	vm.subhosts = hang;
	vm.timeout_ms = TIMEOUT_MS;
	be_open();
	/* Readers keep asking for 350 ms: each fails fast, but the
	 * sub-host sees a new connection at most every ~100 ms. */
	t0 = vt_now_ms();
	while (vt_now_ms() - t0 < 350) {
		ck_assert_int_eq(fetch(bh, 0, buf, H0_START, sizeof(buf),
				       NULL), -EIO);
		fetches++;
	}
	hs.stop = 1;
	pthread_join(th, NULL);
	close(hs.fd);
	unlink(path);
	ck_assert_int_gt(fetches, 20);
	ck_assert_int_ge(hs.accepted, 1);
	ck_assert_int_le(hs.accepted, 5);
	ck_assert_uint_eq(st.sub[0].errors, (uint64_t)fetches);
	ck_assert_uint_eq(st.sub[0].connects, 0);
}
END_TEST

/* ---- tests: cache ----------------------------------------------- */

START_TEST(cache_serves_within_ttl_only)
{
	const uint64_t x = 2 * MiB, len = 4 * CHUNK;
	uint64_t h0, m0, b0;
	double t_fetch;

	vm.cache_size = 16 * CHUNK;
	vm.cache_ttl_ms = 300;
	be_open();

	t_fetch = vt_now_ms();
	ck_fetch_ok(bh, 0, x, len, SEED_DATA);
	ck_assert_uint_eq(backend_stat("cache_misses"), 4);
	ck_assert_uint_eq(backend_stat("cache_hits"), 0);
	/* Four adjacent chunks fetched: one request. */
	ck_assert_uint_eq(st.sub[0].bytes, 4 * CHUNK);
	ck_assert_uint_eq(st.sub[0].requests, 1);

	/* The sub-host's copy changes; within the TTL we still see what
	 * was fetched, which proves the bytes came from the cache. */
	write_pattern(0, x, len, SEED_NEW);
	ck_fetch_ok(bh, 0, x, len, SEED_DATA);
	ck_fetch_ok(bh, 0, x + 100, 1000, SEED_DATA);
	ck_assert_double_lt(vt_now_ms() - t_fetch, 300);
	ck_assert_uint_eq(backend_stat("cache_hits"), 5);
	ck_assert_uint_eq(backend_stat("cache_misses"), 4);
	ck_assert_uint_eq(st.sub[0].bytes, 4 * CHUNK);

	vt_sleep_ms(350);
	h0 = backend_stat("cache_hits");
	m0 = backend_stat("cache_misses");
	b0 = st.sub[0].bytes;
	ck_fetch_ok(bh, 0, x, len, SEED_NEW);
	ck_assert_uint_eq(backend_stat("cache_hits"), h0);
	ck_assert_uint_eq(backend_stat("cache_misses") - m0, 4);
	ck_assert_uint_eq(st.sub[0].bytes - b0, 4 * CHUNK);
}
END_TEST

/*
 * Without an eviction sequence a cached chunk could hold the hole a page
 * left on the sub-host while it was local, and be served after the page
 * moved out: the backend must not cache at all then.
 */
START_TEST(no_seq_no_cache)
{
	const uint64_t x = 2 * MiB, len = 4 * CHUNK;

	vmem_memfile_init_seq_only(&mf, NULL);
	vm.cache_size = 16 * CHUNK;
	vm.cache_ttl_ms = 10000;
	be_open();
	ck_fetch_ok(bh, 0, x, len, SEED_DATA);
	write_pattern(0, x, len, SEED_NEW);
	ck_fetch_ok(bh, 0, x, len, SEED_NEW);
	ck_assert_uint_eq(backend_stat("cache_hits"), 0);
	ck_assert_uint_eq(st.sub[0].bytes, 8 * CHUNK);
}
END_TEST

START_TEST(cache_obeys_eviction_sequence)
{
	const uint64_t x = 2 * MiB, len = 4 * CHUNK;
	uint64_t h0, m0, b0;

	vm.cache_size = 16 * CHUNK;
	vm.cache_ttl_ms = 10000;
	be_open();

	/* Counted in chunks fetched: what the sub-host sent. */
#define EXPECT(hits, misses, chunks) do {				\
	ck_assert_uint_eq(backend_stat("cache_hits") - h0, hits);		\
	ck_assert_uint_eq(backend_stat("cache_misses") - m0, misses);	\
	ck_assert_uint_eq(st.sub[0].bytes - b0, (chunks) * CHUNK);	\
	h0 = backend_stat("cache_hits");					\
	m0 = backend_stat("cache_misses");					\
	b0 = st.sub[0].bytes;				\
} while (0)

	h0 = m0 = b0 = 0;
	ck_fetch_ok(bh, 0, x, len, SEED_DATA);
	EXPECT(0, 4, 4);
	ck_fetch_ok(bh, 0, x, len, SEED_DATA);
	EXPECT(4, 0, 0);

	/* A page move in a far stripe does not concern these chunks. */
	vmem_seq_move_begin(seqmap, 6 * MiB, 4096);
	vmem_seq_move_end(seqmap, 6 * MiB, 4096);
	ck_fetch_ok(bh, 0, x, len, SEED_DATA);
	EXPECT(4, 0, 0);

	/* A move here begins: cached bytes are no longer trusted, and
	 * nothing fetched while it is in flight is kept. */
	write_pattern(0, x, len, SEED_NEW);
	vmem_seq_move_begin(seqmap, x + 4096, 4096);
	ck_fetch_ok(bh, 0, x, len, SEED_NEW);
	EXPECT(0, 4, 4);
	ck_fetch_ok(bh, 0, x, len, SEED_NEW);
	EXPECT(0, 4, 4);

	/* Once it is done, the next fetch is kept again. */
	vmem_seq_move_end(seqmap, x + 4096, 4096);
	ck_fetch_ok(bh, 0, x, len, SEED_NEW);
	EXPECT(0, 4, 4);
	ck_fetch_ok(bh, 0, x, len, SEED_NEW);
	EXPECT(4, 0, 0);
#undef EXPECT
}
END_TEST

START_TEST(cache_keeps_homes_apart)
{
	/* The chunk at 4M holds 10K of home 0 and 6K of home 1.  Its key
	 * must never serve one sub-host's bytes as the other's. */
	vm.cache_size = 16 * CHUNK;
	vm.cache_ttl_ms = 10000;
	be_open();
	for (int i = 0; i < 3; i++) {
		ck_fetch_ok(bh, 0, 4 * MiB, 10 * KiB, SEED_DATA);
		ck_fetch_ok(bh, 1, H1_START, 6 * KiB, SEED_DATA);
		ck_fetch_ok(bh, 0, 4 * MiB - 100, 200, SEED_DATA);
		ck_fetch_ok(bh, 1, H1_START, CHUNK, SEED_DATA);
	}
}
END_TEST

/* ---- tests: coalescing ------------------------------------------ */

static char log0[128];		/* server 0's nbdkit log filter output */
static char img0[128];		/* the file server 0's script serves */

/* Server 0 logs every request it gets (the log filter, outermost). */
static void setup_logged(void)
{
	static const char *a[] = { "--filter=log", "memory", "8M", NULL, NULL };

	snprintf(log0, sizeof(log0), "%s/log0.txt", dir);
	unlink(log0);
	a[3] = (char[160]){ 0 };
	snprintf((char *)a[3], 160, "logfile=%s", log0);
	memcpy(srv0_args, a, sizeof(a));
	setup();
}

/* ... and advertises a maximum block size of 32K, refusing (EINVAL)
 * any request longer than that. */
static void setup_small_max(void)
{
	static const char *a[] = {
		"--filter=log", "--filter=blocksize-policy", "memory", "8M",
		NULL, "blocksize-maximum=32K", "blocksize-error-policy=error",
		NULL,
	};

	snprintf(log0, sizeof(log0), "%s/log0.txt", dir);
	unlink(log0);
	a[4] = (char[160]){ 0 };
	snprintf((char *)a[4], 160, "logfile=%s", log0);
	memcpy(srv0_args, a, sizeof(a));
	setup();
}

/* The 32K chunk of server 0 at BAD_OFF fails every read that touches it
 * (EIO); the rest of the export reads as fill_server() leaves it. */
#define BAD_OFF (2 * MiB + 64 * KiB)

static void setup_refusing(void)
{
	static char pread_arg[512], size_arg[64];
	static const char *a[] = {
		"--filter=blocksize-policy", "eval", NULL, NULL,
		"blocksize-maximum=32K", "blocksize-error-policy=error", NULL,
	};
	unsigned char *buf = malloc(RAM);
	FILE *f;

	snprintf(img0, sizeof(img0), "%s/img0", dir);
	ck_assert_ptr_nonnull(buf);
	vt_pattern_fill(buf, 0, RAM, SEED_FOREIGN);
	vt_pattern_fill(buf + H0_START, H0_START, H0_END - H0_START, SEED_DATA);
	f = fopen(img0, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(buf, 1, RAM, f), RAM);
	ck_assert_int_eq(fclose(f), 0);
	free(buf);
	snprintf(size_arg, sizeof(size_arg), "get_size=echo %llu",
		 (unsigned long long)RAM);
	snprintf(pread_arg, sizeof(pread_arg),
		 "pread=if [ $4 -lt %llu ] && [ $(($4 + $3)) -gt %llu ]; then "
		 "echo 'EIO injected by check_direct' >&2; exit 1; fi; "
		 "exec dd if=%s skip=$4 count=$3 iflag=skip_bytes,count_bytes status=none",
		 (unsigned long long)(BAD_OFF + 32 * KiB),
		 (unsigned long long)BAD_OFF, img0);
	a[2] = size_arg;
	a[3] = pread_arg;
	memcpy(srv0_args, a, sizeof(a));
	srv0_prefilled = true;
	setup();
}

static void teardown_coalesce(void)
{
	teardown();
	if (log0[0])
		unlink(log0);
	if (img0[0])
		unlink(img0);
}

struct logged_read {
	uint64_t off, count;
};

/*
 * The reads server 0 got, as its log filter wrote them, from byte @from
 * of the log on (the filler's writes before are not reads anyway).
 * Returns how many; the first @max go to @out.
 */
static size_t server_reads(long from, struct logged_read *out, size_t max)
{
	char line[1024];
	size_t n = 0;
	FILE *f = fopen(log0, "r");

	ck_assert_msg(f != NULL, "%s: %s", log0, strerror(errno));
	ck_assert_int_eq(fseek(f, from, SEEK_SET), 0);
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, " Read id=");
		unsigned long long o, c;

		if (!p || strstr(line, "...Read"))
			continue;
		ck_assert_msg(sscanf(strstr(p, "offset="),
				     "offset=%llx count=%llx", &o, &c) == 2,
			      "log line: %s", line);
		if (n < max)
			out[n] = (struct logged_read){ o, c };
		n++;
	}
	fclose(f);
	return n;
}

static long log_size(void)
{
	struct stat sb;

	ck_assert_int_eq(stat(log0, &sb), 0);
	return (long)sb.st_size;
}

/* The log filter writes a request's line when it arrives: once the
 * fetch has returned, every line of it is there. */
#define ck_reads(from, want_n, ...) do {				\
	const struct logged_read want_[] = { __VA_ARGS__ };		\
	struct logged_read got_[32];					\
	size_t n_ = server_reads(from, got_, 32);			\
									\
	ck_assert_uint_eq(n_, want_n);					\
	for (size_t k_ = 0; k_ < sizeof(want_) / sizeof(want_[0]); k_++) { \
		ck_assert_uint_eq(got_[k_].off, want_[k_].off);		\
		ck_assert_uint_eq(got_[k_].count, want_[k_].count);	\
	}								\
} while (0)

/*
 * chunk-size is what is fetched, not the size of a request: adjacent
 * chunks of one fetch are one read on the wire (the server's own log
 * says so), and nothing beyond the chunks the fetch touches is asked.
 * The old backend sent one read per chunk.
 */
START_TEST(adjacent_chunks_are_one_request)
{
	long at;

	be_open();
	/* Eight aligned chunks: one read of 128K. */
	at = log_size();
	ck_fetch_ok(bh, 0, 2 * MiB, 8 * CHUNK, SEED_DATA);
	ck_reads(at, 1, { 2 * MiB, 8 * CHUNK });
	ck_assert_uint_eq(st.sub[0].requests, 1);
	ck_assert_uint_eq(st.sub[0].bytes, 8 * CHUNK);

	/* Unaligned, 40K from 100 bytes into a chunk: three chunks are
	 * touched and fetched, no more; the first and the last stick out
	 * of the caller's buffer, so they are requests of their own. */
	at = log_size();
	ck_fetch_ok(bh, 0, 3 * MiB + 100, 40 * KiB, SEED_DATA);
	ck_reads(at, 3, { 3 * MiB, CHUNK }, { 3 * MiB + CHUNK, CHUNK },
		 { 3 * MiB + 2 * CHUNK, CHUNK });

	/* Unaligned start, aligned end: the head on its own, the rest as
	 * one. */
	at = log_size();
	ck_fetch_ok(bh, 0, 3 * MiB + 5, 4 * CHUNK - 5, SEED_DATA);
	ck_reads(at, 2, { 3 * MiB, CHUNK }, { 3 * MiB + CHUNK, 3 * CHUNK });

	/* The home's first chunk is clipped (it starts 6K in): it is
	 * still one read with the chunks after it, starting at the home. */
	at = log_size();
	ck_fetch_ok(bh, 0, H0_START, CHUNK - 6 * KiB + 3 * CHUNK, SEED_DATA);
	ck_reads(at, 1, { H0_START, CHUNK - 6 * KiB + 3 * CHUNK });

	/* And the home's last chunk, clipped at 4M + 10K. */
	at = log_size();
	ck_fetch_ok(bh, 0, 4 * MiB - 2 * CHUNK, 2 * CHUNK + 10 * KiB,
		    SEED_DATA);
	ck_reads(at, 1, { 4 * MiB - 2 * CHUNK, 2 * CHUNK + 10 * KiB });
	ck_assert_uint_eq(st.sub[0].errors, 0);
}
END_TEST

/* fetch-merge = off: the paper's transfers, one request per chunk. */
START_TEST(fetch_merge_off_sends_one_request_per_chunk)
{
	long at;

	vm.fetch_merge_off = true;
	be_open();
	at = log_size();
	ck_fetch_ok(bh, 0, 2 * MiB, 3 * CHUNK, SEED_DATA);
	ck_reads(at, 3, { 2 * MiB, CHUNK }, { 2 * MiB + CHUNK, CHUNK },
		 { 2 * MiB + 2 * CHUNK, CHUNK });
	ck_assert_uint_eq(st.sub[0].requests, 3);
}
END_TEST

/* A chunk the cache serves is not asked for again: it splits the run in
 * two requests, and the bytes around it still come from the sub-host. */
START_TEST(cached_chunk_splits_the_request)
{
	const uint64_t x = 2 * MiB;
	long at;

	vm.cache_size = 16 * CHUNK;
	vm.cache_ttl_ms = 10000;
	be_open();
	ck_fetch_ok(bh, 0, x + 2 * CHUNK, CHUNK, SEED_DATA);
	at = log_size();
	ck_fetch_ok(bh, 0, x, 5 * CHUNK, SEED_DATA);
	ck_reads(at, 2, { x, 2 * CHUNK }, { x + 3 * CHUNK, 2 * CHUNK });
	ck_assert_uint_eq(backend_stat("cache_hits"), 1);
	/* Everything fetched is cached per chunk, merged or not. */
	at = log_size();
	ck_fetch_ok(bh, 0, x, 5 * CHUNK, SEED_DATA);
	ck_assert_uint_eq(server_reads(at, NULL, 0), 0);
	ck_assert_uint_eq(backend_stat("cache_hits"), 6);
}
END_TEST

/*
 * A server that advertises a maximum block size of 32K and refuses
 * anything longer: a 256K fetch of 16K chunks goes out as eight 32K
 * reads, pipelined, not as one (refused) nor as sixteen.
 */
START_TEST(server_maximum_block_size_is_obeyed)
{
	struct logged_read got[32];
	unsigned char *buf = malloc(64 * KiB);
	size_t n;
	long at;

	/* The server really refuses a longer read: the test means it. */
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(nbd_get_block_size(filler[0], LIBNBD_SIZE_MAXIMUM),
			 32 * KiB);
	ck_assert_int_eq(nbd_pread(filler[0], buf, 64 * KiB, 2 * MiB, 0), -1);
	free(buf);

	be_open();
	at = log_size();
	ck_fetch_ok(bh, 0, 2 * MiB, 16 * CHUNK, SEED_DATA);
	n = server_reads(at, got, 32);
	ck_assert_uint_eq(n, 8);
	for (size_t k = 0; k < n; k++) {
		ck_assert_uint_eq(got[k].off, 2 * MiB + k * 32 * KiB);
		ck_assert_uint_eq(got[k].count, 32 * KiB);
	}
	ck_assert_uint_eq(st.sub[0].requests, 8);
	ck_assert_uint_eq(st.sub[0].bytes, 16 * CHUNK);
	ck_assert_uint_eq(st.sub[0].errors, 0);

	/* An odd length: the last part is the rest. */
	at = log_size();
	ck_fetch_ok(bh, 0, H0_START, CHUNK - 6 * KiB + 2 * CHUNK, SEED_DATA);
	ck_reads(at, 2, { H0_START, 32 * KiB },
		 { H0_START + 32 * KiB, 10 * KiB });
}
END_TEST

/*
 * One refused part of a coalesced read fails the whole fetch with EIO:
 * its bytes are never served as data, whatever the other parts got.
 * Server 0 refuses reads of [BAD_OFF, +32K) and allows 32K at a time.
 */
START_TEST(refused_part_fails_the_fetch)
{
	unsigned char *buf = malloc(8 * CHUNK);

	ck_assert_ptr_nonnull(buf);
	be_open();
	/* Around the bad range: fine, so the server itself is sound. */
	ck_fetch_ok(bh, 0, BAD_OFF - 4 * CHUNK, 4 * CHUNK, SEED_DATA);
	ck_fetch_ok(bh, 0, BAD_OFF + 32 * KiB, 4 * CHUNK, SEED_DATA);
	/* 128K over it: four 32K parts, the third refused. */
	memset(buf, 0, 8 * CHUNK);
	ck_assert_int_eq(fetch(bh, 0, buf, BAD_OFF - 2 * CHUNK, 8 * CHUNK,
			       NULL), -EIO);
	/* The bad part last, and first. */
	ck_assert_int_eq(fetch(bh, 0, buf, BAD_OFF - 6 * CHUNK, 8 * CHUNK,
			       NULL), -EIO);
	ck_assert_int_eq(fetch(bh, 0, buf, BAD_OFF, 8 * CHUNK, NULL), -EIO);
	/* Unaligned, the bad chunk in a spare: still EIO. */
	ck_assert_int_eq(fetch(bh, 0, buf, BAD_OFF + 100, 100, NULL), -EIO);
	ck_assert_uint_ge(st.sub[0].errors, 4);
	/* An error reply is no failure of the sub-host: it still serves. */
	ck_fetch_ok(bh, 0, BAD_OFF + 32 * KiB, 4 * CHUNK, SEED_DATA);
	free(buf);
}
END_TEST

/* ---- tests: threads ------------------------------------------------- */

struct reader {
	unsigned int seed;
	int failures;
};

static void *reader_run(void *arg)
{
	struct reader *r = arg;

	for (int i = 0; i < 150; i++) {
		unsigned int home = rnd(&r->seed, 2);
		uint64_t off;
		size_t len;
		unsigned char *got, *want;

		random_range(&r->seed, home, &off, &len);
		got = malloc(len);
		want = malloc(len);
		vt_pattern_fill(want, off, len, SEED_DATA);
		if (!got || !want ||
		    vmem_backend_direct.fetch(bh, home, got, off, len) != 0 ||
		    memcmp(got, want, len) != 0)
			r->failures++;
		free(got);
		free(want);
	}
	return NULL;
}

START_TEST(eight_threads_read_right_bytes)
{
	pthread_t th[8];
	struct reader r[8];
	int failures = 0;

	/* A small cache with a short TTL: hits, misses and expiry race. */
	vm.cache_size = 8 * CHUNK;
	vm.cache_ttl_ms = 5;
	be_open();
	for (int i = 0; i < 8; i++) {
		r[i] = (struct reader){ .seed = 7u + (unsigned int)i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader_run,
						&r[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		failures += r[i].failures;
	}
	ck_assert_int_eq(failures, 0);
	ck_assert_uint_eq(st.sub[0].errors + st.sub[1].errors, 0);
	/* Eight readers share four connections per sub-host at most. */
	ck_assert_uint_le(st.sub[0].connects, 4);
	ck_assert_uint_le(st.sub[1].connects, 4);
	ck_assert_uint_gt(backend_stat("cache_hits"), 0);
}
END_TEST

static Suite *direct_suite(void)
{
	Suite *s = suite_create("direct");
	TCase *tc;

	tc = vt_tcase_checked(s, "data", setup, teardown, 20);
	tcase_add_test(tc, bytes_match_pattern);
	tcase_add_test(tc, requests_are_whole_chunks_clipped_to_home);
	tcase_add_test(tc, open_contacts_nobody);

	tc = vt_tcase_checked(s, "failures", setup, teardown, 20);
	tcase_add_test(tc, stalled_subhost_fails_alone_and_recovers);
	tcase_add_test(tc, killed_subhost_fails_and_restart_recovers);
	tcase_add_test(tc, failing_subhost_is_not_hammered);

	tc = vt_tcase_checked(s, "cache", setup, teardown, 20);
	tcase_add_test(tc, cache_serves_within_ttl_only);
	tcase_add_test(tc, cache_obeys_eviction_sequence);
	tcase_add_test(tc, no_seq_no_cache);
	tcase_add_test(tc, cache_keeps_homes_apart);

	tc = vt_tcase_checked(s, "coalesce", setup_logged, teardown_coalesce,
			      20);
	tcase_add_test(tc, adjacent_chunks_are_one_request);
	tcase_add_test(tc, cached_chunk_splits_the_request);
	tcase_add_test(tc, fetch_merge_off_sends_one_request_per_chunk);
	tc = vt_tcase_checked(s, "small_max", setup_small_max,
			      teardown_coalesce, 20);
	tcase_add_test(tc, server_maximum_block_size_is_obeyed);
	tc = vt_tcase_checked(s, "refused_part", setup_refusing,
			      teardown_coalesce, 30);
	tcase_add_test(tc, refused_part_fails_the_fetch);

	tc = vt_tcase_checked(s, "threads", setup, teardown, 20);
	tcase_add_test(tc, eight_threads_read_right_bytes);
	return s;
}

static void rm_dir(void)
{
	if (getpid() != dir_owner)
		return;
	char path[128];

	unlink(sock[0]);
	unlink(sock[1]);
	/* Left behind when failing_subhost_is_not_hammered fails. */
	snprintf(path, sizeof(path), "%s/hangup.sock", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	strcpy(dir, "/tmp/check_direct.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	dir_owner = getpid();
	atexit(rm_dir);
	for (int i = 0; i < 2; i++) {
		snprintf(sock[i], sizeof(sock[i]), "%s/sub%d.sock", dir, i);
		snprintf(uri[i], sizeof(uri[i]), "nbd+unix:///?socket=%s",
			 sock[i]);
	}

	return vt_run_suite(direct_suite());
}
