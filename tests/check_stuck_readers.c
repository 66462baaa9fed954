// SPDX-License-Identifier: MIT
/*
 * Readers stuck on a silent sub-host must not stall anything else
 * (issue 7, fault 4).  libfuse runs at most 10 worker threads; when reads
 * that wait on a sub-host held them, a dozen such readers made every
 * open and every local 4 KiB read wait the whole timeout.
 *
 * The setup: a 96M memory file in /dev/shm whose [0,32M) holds the test
 * pattern, two nbdkit sub-hosts (loopback) holding the pattern for their
 * homes [32M,64M) and [64M,96M), which the memory file leaves a hole,
 * and a vmemfs mount with timeout = 4s and no cache.  The first sub-host
 * is then stopped (SIGSTOP: its sockets accept and never answer) and 64
 * threads read its range over and over, while a probe keeps opening
 * `mem`, reading local pages, a page of the other sub-host, and `stats`.
 * Expected, from the promise that other ranges keep working and from the
 * timeout alone:
 *   - every probe (stat + open + 4 KiB local read + close, a 4 KiB read
 *     from the live sub-host, an open and read of stats) completes in
 *     under a tenth of the timeout, and serves the pattern;
 *   - every stuck read ends with EIO, within two timeouts and a margin
 *     (at most one in the queue of the sub-host's remote-read threads,
 *     one at the sub-host);
 *   - readers killed while they wait go away within the same bound, and
 *     the daemon stays up;
 *   - once the sub-host runs again, its range reads right.
 *
 * The second case does the same with the other files whose reads or
 * opens reach sub-hosts: 48 readers of `vmcore` at file offsets that map
 * into the silent range (found from the vmcore's own program headers:
 * the memory file holds no kernel, vmcore still has its PT_LOADs) - more
 * than libfuse's threads, unless the reads go through the sub-host's
 * gate as `mem` does - and 32 threads that open `kernel` and list
 * `proc/` (which wait for a kernel scan or a proc/ build) over and over.
 * Expected: the same probes, and a stat of vmcore, under a tenth of the
 * timeout; every vmcore read of the silent range EIO within the same
 * bound as above; every open of kernel or proc/ answered (its text,
 * EAGAIN or EIO, as doc/vmemfs.8 says) within that bound; the daemon up.
 */
#include <check.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/hosts.h"

#define MiB ((uint64_t)1024 * 1024)
#define PAGE ((uint64_t)4096)
#define RAM (96 * MiB)
#define HOME_START (32 * MiB)		/* the silent sub-host's home ... */
#define HOME_END (64 * MiB)		/* ... and then the live one's */
#define CHUNK (64 * 1024)
#define SEED 0x737475636b726473ULL	/* "stuckrds" */
/* Long enough that a tenth of it is far above what a loaded 2-CPU machine
 * adds to a local read, short enough that a stall of the whole timeout
 * cannot be mistaken for one. */
#define TIMEOUT_MS 4000
#define PROBE_MS (2 * TIMEOUT_MS)	/* two whole stuck cycles */
#define STUCK_READERS 64
#define KILLED_READERS 8
#define VMCORE_READERS 48
#define OPENERS 32

struct env {
	bool ok;
	char err[1024];
	char memfile[128];
	char config[128];
	char mnt[128];
	char log[128];
	struct vt_nbdkit sub;		/* [32M,64M): made silent */
	struct vt_nbdkit live;		/* [64M,96M): stays up */
	struct vt_vmemfs fs;
};

static struct env *E;		/* shared with the forked test */

static int write_memfile(void)
{
	static uint8_t buf[MiB];
	int fd = open(E->memfile, O_RDWR | O_CREAT | O_EXCL, 0600);

	if (fd < 0 || ftruncate(fd, RAM) < 0)
		goto fail;
	for (uint64_t off = 0; off < HOME_START; off += sizeof(buf)) {
		vt_pattern_fill(buf, off, sizeof(buf), SEED);
		if (pwrite(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf))
			goto fail;
	}
	close(fd);
	return 0;
fail:
	vt_set_err(E->err, sizeof(E->err), "write %s: %s", E->memfile,
		   strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Start sub-host @n holding the pattern for its home [start, end). */
static int start_subhost(struct vt_nbdkit *n, uint64_t start, uint64_t end)
{
	static uint8_t buf[MiB];
	struct nbd_handle *h;
	int ret = 0;

	snprintf(n->size, sizeof(n->size), "96M");
	snprintf(n->addr, sizeof(n->addr), "127.0.0.1");
	n->port = vt_free_tcp_port();
	if (vt_nbdkit_start(n, true, E->err, sizeof(E->err)) < 0)
		return -1;
	h = vt_nbd_connect(n->uri, 5000, E->err, sizeof(E->err));
	if (!h)
		return -1;
	for (uint64_t off = start; off < end && ret == 0; off += sizeof(buf)) {
		vt_pattern_fill(buf, off, sizeof(buf), SEED);
		if (nbd_pwrite(h, buf, sizeof(buf), off, 0) < 0) {
			vt_set_err(E->err, sizeof(E->err), "nbd_pwrite %s: %s",
				   n->uri, nbd_get_error());
			ret = -1;
		}
	}
	nbd_shutdown(h, 0);
	nbd_close(h);
	return ret;
}

static void env_down(void)
{
	if (E->sub.pid > 0)
		kill(E->sub.pid, SIGCONT);
	if (E->fs.pid > 0 || E->fs.mnt[0]) {
		int st = vt_vmemfs_stop(&E->fs, 3 * TIMEOUT_MS + 2000);

		if (st == -1)
			printf("note: vmemfs did not exit on SIGTERM\n");
		else if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			printf("note: vmemfs ended with status 0x%x\n", st);
		E->fs.pid = 0;
		E->fs.mnt[0] = '\0';
	}
	if (E->log[0]) {
		vt_print_tail(E->log, 12, "  vmemfs log: ");
		unlink(E->log);
	}
	vt_nbdkit_kill(&E->sub);
	vt_nbdkit_kill(&E->live);
	if (E->memfile[0])
		unlink(E->memfile);
	if (E->config[0])
		unlink(E->config);
	if (E->mnt[0])
		rmdir(E->mnt);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	fflush(stdout);
	memset(E, 0, sizeof(*E));
}

static void env_up(void)
{
	pid_t pid = getpid();
	FILE *f;

	memset(E, 0, sizeof(*E));
	snprintf(E->memfile, sizeof(E->memfile), "/dev/shm/vmt-%d-stuck.mem",
		 (int)pid);
	snprintf(E->config, sizeof(E->config), "/tmp/vmt-%d-stuck.conf",
		 (int)pid);
	snprintf(E->log, sizeof(E->log), "/tmp/vmt-%d-stuck.log", (int)pid);
	snprintf(E->mnt, sizeof(E->mnt), "/tmp/vmt-%d-stuck.mnt", (int)pid);
	if (write_memfile() < 0)
		return;
	if (start_subhost(&E->sub, HOME_START, HOME_END) < 0 ||
	    start_subhost(&E->live, HOME_END, RAM) < 0)
		return;
	f = fopen(E->config, "w");
	if (!f) {
		vt_set_err(E->err, sizeof(E->err), "%s: %s", E->config,
			   strerror(errno));
		return;
	}
	fprintf(f,
		"# written by check_stuck_readers\n"
		"[vmt]\n"
		"memory-file = %s\n"
		"ram-size    = 96M\n"
		"backend     = direct\n"
		"chunk-size  = 64K\n"
		"cache-size  = 0\n"
		"timeout     = %dms\n"
		"subhost     = %s 32M-64M\n"
		"subhost     = %s 64M-96M\n",
		E->memfile, TIMEOUT_MS, E->sub.uri, E->live.uri);
	if (fclose(f) != 0 || mkdir(E->mnt, 0700) < 0) {
		vt_set_err(E->err, sizeof(E->err), "%s: %s", E->config,
			   strerror(errno));
		return;
	}
	if (vt_vmemfs_start(&E->fs, E->config, NULL, NULL, E->mnt, E->log,
			    RAM, 15000, E->err, sizeof(E->err)) < 0) {
		vt_print_tail(E->log, 20, "  vmemfs log: ");
		return;
	}
	E->ok = true;
}

/* Per thread: the openers and the probe build paths at the same time. */
static const char *in_mnt(const char *name)
{
	static __thread char path[256];

	snprintf(path, sizeof(path), "%s/%s", E->mnt, name);
	return path;
}

static bool is_pattern(const uint8_t *buf, uint64_t off, size_t len)
{
	static uint8_t want[PAGE];

	vt_pattern_fill(want, off, len, SEED);
	return memcmp(buf, want, len) == 0;
}

/* ---- the stuck readers ---------------------------------------------- */

struct stuck {
	pthread_t tid;
	unsigned int idx;
	volatile bool *stop;
	unsigned int reads, eio, other, ok;
	unsigned int fast;		/* openers: answered in a tenth */
	int other_errno;
	double worst_ms;
};

/* Read @k of reader @idx: the readers ask for different chunks (and the
 * mount keeps no cache), so each read is a request of its own. */
static uint64_t stuck_off(unsigned int idx, unsigned int k)
{
	uint64_t n = (uint64_t)k * STUCK_READERS + idx;

	return HOME_START + (n % ((HOME_END - HOME_START) / CHUNK)) * CHUNK;
}

static void *stuck_reader(void *arg)
{
	struct stuck *s = arg;
	uint8_t buf[PAGE];
	int fd = open(in_mnt("mem"), O_RDONLY);

	if (fd < 0) {
		s->other++;
		s->other_errno = errno;
		return NULL;
	}
	for (unsigned int k = 0; !*s->stop; k++) {
		double t0 = vt_now_ms(), ms;
		ssize_t n = pread(fd, buf, sizeof(buf), stuck_off(s->idx, k));
		int e = errno;

		ms = vt_now_ms() - t0;
		s->reads++;
		if (ms > s->worst_ms)
			s->worst_ms = ms;
		if (n < 0 && e == EIO) {
			s->eio++;
		} else if (n < 0) {
			s->other++;
			s->other_errno = e;
		} else {
			s->ok++;
		}
		/* Failed fast (the sub-host's quiet time after a failure):
		 * wait a little, to be stuck again rather than spin. */
		if (ms < 100)
			vt_sleep_ms(20);
	}
	close(fd);
	return NULL;
}

/* A process that reads the silent range once, to be killed meanwhile. */
static pid_t spawn_doomed_reader(unsigned int idx)
{
	const char *path = in_mnt("mem");	/* before fork: threads run */
	pid_t pid = fork();

	if (pid == 0) {
		uint8_t buf[PAGE];
		int fd = open(path, O_RDONLY);

		if (fd >= 0)
			(void)pread(fd, buf, sizeof(buf),
				    stuck_off(STUCK_READERS - 1 - idx, 1000));
		_exit(0);
	}
	return pid;
}

/* ---- the probe ------------------------------------------------------ */

struct probe_result {
	unsigned int n, bad;
	const char *bad_what;		/* the last step that failed */
	int bad_errno;
	double worst_ms;		/* slowest single step ... */
	const char *worst_what;		/* ... and which */
	double worst_probe_ms;		/* slowest whole probe */
};

static void probe_note(struct probe_result *r, double ms, const char *what)
{
	if (ms > r->worst_ms) {
		r->worst_ms = ms;
		r->worst_what = what;
	}
}

/* stat, open, read a local page, close; then open and read stats. */
static void probe_bad(struct probe_result *r, const char *what)
{
	r->bad++;
	r->bad_what = what;
	r->bad_errno = errno;
}

static void probe_once(struct probe_result *r, unsigned int i)
{
	uint64_t off = (vt_splitmix64(i) % (HOME_START / PAGE)) * PAGE;
	uint8_t buf[PAGE];
	char text[8192];
	struct stat st;
	double t0 = vt_now_ms(), t1;
	ssize_t n;
	int fd;

	if (stat(in_mnt("mem"), &st) < 0 || (uint64_t)st.st_size != RAM)
		probe_bad(r, "stat mem");
	t1 = vt_now_ms();
	probe_note(r, t1 - t0, "stat mem");
	fd = open(in_mnt("mem"), O_RDONLY);
	probe_note(r, vt_now_ms() - t1, "open mem");
	if (fd < 0) {
		probe_bad(r, "open mem");
	} else {
		double t2 = vt_now_ms();

		n = pread(fd, buf, sizeof(buf), off);
		probe_note(r, vt_now_ms() - t2, "4 KiB local read");
		if (n != (ssize_t)sizeof(buf) || !is_pattern(buf, off, PAGE))
			probe_bad(r, "local read");
		/* A chunk of the live sub-host's not read before: no cache. */
		off = HOME_END + (i % ((RAM - HOME_END) / CHUNK)) * CHUNK + PAGE;
		t2 = vt_now_ms();
		n = pread(fd, buf, sizeof(buf), off);
		probe_note(r, vt_now_ms() - t2, "4 KiB read of the live sub-host");
		if (n != (ssize_t)sizeof(buf) || !is_pattern(buf, off, PAGE))
			probe_bad(r, "live sub-host read");
		close(fd);
	}
	t1 = vt_now_ms();
	fd = open(in_mnt("stats"), O_RDONLY);
	if (fd < 0) {
		probe_bad(r, "open stats");
	} else {
		n = read(fd, text, sizeof(text) - 1);
		if (n <= 0 || text[0] != '{')
			probe_bad(r, "read stats");
		close(fd);
	}
	probe_note(r, vt_now_ms() - t1, "open+read stats");
	r->n++;
	if (vt_now_ms() - t0 > r->worst_probe_ms)
		r->worst_probe_ms = vt_now_ms() - t0;
}

static int count_threads(pid_t pid)
{
	char dir[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

START_TEST(test_stuck_readers)
{
	/* A tenth of the timeout, as the issue asks. */
	const double probe_limit = TIMEOUT_MS / 10.0;
	const double stuck_limit = 2.0 * TIMEOUT_MS + 1000;
	static struct stuck s[STUCK_READERS];
	volatile bool stop = false;
	struct probe_result pr = { 0 }, base = { 0 };
	unsigned int reads = 0, eio = 0, ok = 0, other = 0, i;
	double worst = 0, t0, t_kill, ms;
	pid_t doomed[KILLED_READERS];
	uint8_t buf[PAGE];
	int fd, threads;

	ck_assert_msg(E->ok, "setup failed: %s", E->err);
	fd = open(in_mnt("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	/* Up: the sub-host's range reads right. */
	ck_assert_int_eq(pread(fd, buf, PAGE, HOME_START + 5 * PAGE), PAGE);
	ck_assert_msg(is_pattern(buf, HOME_START + 5 * PAGE, PAGE),
		      "remote page read wrong before the sub-host stopped");
	/* The live one too (so its connection is made before the clock runs). */
	ck_assert_int_eq(pread(fd, buf, PAGE, HOME_END + 3 * PAGE), PAGE);
	ck_assert_msg(is_pattern(buf, HOME_END + 3 * PAGE, PAGE),
		      "page of the live sub-host read wrong");

	/* For the record: what probes cost on this machine right now. */
	t0 = vt_now_ms();
	for (i = 0; vt_now_ms() - t0 < 1000; i++) {
		probe_once(&base, 100000 + i);
		vt_sleep_ms(20);
	}
	ck_assert_msg(base.bad == 0, "%u probes failed before any sub-host stopped",
		      base.bad);

	ck_assert_int_eq(vt_stop_pid(E->sub.pid, 2000), 0);
	for (i = 0; i < STUCK_READERS; i++) {
		s[i].idx = i;
		s[i].stop = &stop;
		ck_assert_int_eq(pthread_create(&s[i].tid, NULL, stuck_reader,
						&s[i]), 0);
	}
	vt_sleep_ms(300);	/* all of them are waiting now */

	/* Probe every 20 ms for three timeouts. */
	t0 = vt_now_ms();
	for (i = 0; vt_now_ms() - t0 < PROBE_MS; i++) {
		probe_once(&pr, i);
		vt_sleep_ms(20);
	}
	/* Killed while they wait: no leak, no crash, gone in time. */
	for (i = 0; i < KILLED_READERS; i++)
		doomed[i] = spawn_doomed_reader(i);
	vt_sleep_ms(300);
	for (i = 0; i < KILLED_READERS; i++)
		if (doomed[i] > 0)
			kill(doomed[i], SIGKILL);
	t_kill = vt_now_ms();
	threads = count_threads(E->fs.pid);

	for (i = 0; i < KILLED_READERS; i++) {
		double left = stuck_limit - (vt_now_ms() - t_kill);
		int st = doomed[i] > 0 && left > 0 ?
			 vt_wait_pid(doomed[i], (int)left) : -1;

		ck_assert_msg(st != -1, "a killed reader (pid %d) still waits %.0f ms after SIGKILL",
			      (int)doomed[i], vt_now_ms() - t_kill);
	}
	printf("info: %d readers killed while they waited were gone within %.0f ms\n",
	       KILLED_READERS, vt_now_ms() - t_kill);
	stop = true;
	for (i = 0; i < STUCK_READERS; i++) {
		pthread_join(s[i].tid, NULL);
		reads += s[i].reads;
		eio += s[i].eio;
		ok += s[i].ok;
		other += s[i].other;
		if (s[i].worst_ms > worst)
			worst = s[i].worst_ms;
	}
	printf("info: %u probes before: worst step %.1f ms (%s), worst probe %.1f ms\n",
	       base.n, base.worst_ms, base.worst_what ? base.worst_what : "-",
	       base.worst_probe_ms);
	printf("info: %u probes with %d stuck readers: worst step %.1f ms (%s), worst probe %.1f ms, limit %.0f ms\n",
	       pr.n, STUCK_READERS, pr.worst_ms,
	       pr.worst_what ? pr.worst_what : "-", pr.worst_probe_ms,
	       probe_limit);
	printf("info: stuck readers: %u reads, %u EIO, worst %.0f ms (timeout %d ms); vmemfs had %d threads\n",
	       reads, eio, worst, TIMEOUT_MS, threads);

	ck_assert_msg(pr.bad == 0, "%u of %u probes failed or read wrong bytes",
		      pr.bad, pr.n);
	ck_assert_msg(pr.worst_ms < probe_limit && pr.worst_probe_ms < probe_limit,
		      "with %d readers stuck on a silent sub-host, a probe's %s took %.0f ms, a whole probe %.0f ms (limit %.0f ms, a tenth of the timeout)",
		      STUCK_READERS, pr.worst_what, pr.worst_ms,
		      pr.worst_probe_ms, probe_limit);
	/* 20 ms apart for 3 timeouts: a probe that waited shows here too. */
	ck_assert_msg(pr.n >= PROBE_MS / 20 / 3,
		      "only %u probes in %d ms", pr.n, PROBE_MS);
	ck_assert_msg(ok == 0 && other == 0,
		      "reads of a silent sub-host's range: %u succeeded, %u failed with other errors (last %s)",
		      ok, other, strerror(s[0].other_errno));
	ck_assert_msg(eio >= STUCK_READERS,
		      "only %u stuck reads ended (EIO) in %d ms", eio,
		      PROBE_MS);
	ck_assert_msg(worst <= stuck_limit,
		      "a stuck read took %.0f ms to fail (timeout %d ms, limit %.0f ms)",
		      worst, TIMEOUT_MS, stuck_limit);
	ck_assert_msg(kill(E->fs.pid, 0) == 0, "vmemfs died");
	/* libfuse's main thread, 10, the kernel view's 4 + 1 and proc/'s 4
	 * waiters, 16 per sub-host. */
	ck_assert_msg(threads > 0 && threads <= 1 + 10 + 9 + 2 * 16,
		      "vmemfs ran %d threads for one stuck sub-host", threads);

	/* The sub-host runs again: its range reads right. */
	ck_assert_int_eq(kill(E->sub.pid, SIGCONT), 0);
	t0 = vt_now_ms();
	for (;;) {
		ssize_t n = pread(fd, buf, PAGE, HOME_START + 7 * PAGE);

		if (n == (ssize_t)PAGE)
			break;
		ck_assert_msg(vt_now_ms() - t0 < 5000 + 2 * TIMEOUT_MS,
			      "sub-host range did not recover: %s",
			      n < 0 ? strerror(errno) : "short read");
		vt_sleep_ms(50);
	}
	ck_assert_msg(is_pattern(buf, HOME_START + 7 * PAGE, PAGE),
		      "remote page read wrong after the sub-host came back");
	ms = vt_now_ms() - t0;
	printf("info: sub-host continued: reads recovered after %.0f ms\n", ms);
	close(fd);
}
END_TEST

/* ---- vmcore readers and kernel / proc/ openers ----------------------- */

/* The file offset in vmcore of guest-physical @gpa, from its PT_LOADs;
 * 0 when none holds it. */
static uint64_t vmcore_off_of(int fd, uint64_t gpa)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;

	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_phentsize != sizeof(ph) || eh.e_phnum > 4096)
		return 0;
	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph))
			return 0;
		if (ph.p_type == PT_LOAD && gpa >= ph.p_paddr &&
		    gpa - ph.p_paddr < ph.p_filesz)
			return ph.p_offset + (gpa - ph.p_paddr);
	}
	return 0;
}

static uint64_t vmcore_silent_off;	/* of GPA HOME_START */
static int vmcore_fd[VMCORE_READERS];	/* opened before the sub-host stops */

static void *vmcore_reader(void *arg)
{
	struct stuck *s = arg;
	uint8_t buf[PAGE];
	int fd = vmcore_fd[s->idx];

	for (unsigned int k = 0; !*s->stop; k++) {
		double t0 = vt_now_ms(), ms;
		ssize_t n = pread(fd, buf, sizeof(buf), (off_t)(vmcore_silent_off +
				  stuck_off(s->idx, k) - HOME_START));
		int e = errno;

		ms = vt_now_ms() - t0;
		s->reads++;
		if (ms > s->worst_ms)
			s->worst_ms = ms;
		if (n < 0 && e == EIO) {
			s->eio++;
		} else if (n < 0) {
			s->other++;
			s->other_errno = e;
		} else {
			s->ok++;
		}
		if (ms < 100)
			vt_sleep_ms(20);
	}
	return NULL;
}

/* Opens kernel (and reads it) or lists proc/, by turns. */
static void *opener(void *arg)
{
	struct stuck *s = arg;
	char text[4096];

	for (unsigned int k = 0; !*s->stop; k++) {
		double t0 = vt_now_ms(), ms;
		bool ok = false;
		int e = 0;

		if ((k + s->idx) % 2 == 0) {
			int fd = open(in_mnt("kernel"), O_RDONLY);

			e = errno;
			if (fd >= 0) {
				ssize_t n = read(fd, text, sizeof(text) - 1);

				e = errno;
				ok = n > 0 && text[0] == '{';
				close(fd);
			}
		} else {
			DIR *d = opendir(in_mnt("proc"));

			e = errno;
			if (d) {
				while (readdir(d))
					;
				ok = true;
				closedir(d);
			}
		}
		ms = vt_now_ms() - t0;
		s->reads++;
		if (ms > s->worst_ms)
			s->worst_ms = ms;
		if (ms < TIMEOUT_MS / 10.0)
			s->fast++;
		if (ok)
			s->ok++;
		else if (e == EAGAIN || e == EIO)
			s->eio++;
		else {
			s->other++;
			s->other_errno = e;
		}
		if (ms < 100)
			vt_sleep_ms(20);
	}
	return NULL;
}

START_TEST(test_stuck_vmcore_kernel_proc)
{
	const double probe_limit = TIMEOUT_MS / 10.0;
	const double stuck_limit = 2.0 * TIMEOUT_MS + 1000;
	/* kernel_view.c: an open waits at most 60 s for a scan. */
	const double open_limit = 60000 + 5000;
	static struct stuck v[VMCORE_READERS], o[OPENERS];
	volatile bool stop = false;
	struct probe_result pr = { 0 };
	unsigned int reads = 0, eio = 0, ok = 0, other = 0, i;
	unsigned int oreads = 0, ofail = 0, ook = 0, oother = 0, ofast = 0;
	double worst = 0, oworst = 0, stat_worst = 0, t0;
	int other_errno = 0, oother_errno = 0, threads;
	uint8_t buf[PAGE];
	struct stat st;
	int fd;

	ck_assert_msg(E->ok, "setup failed: %s", E->err);
	fd = open(in_mnt("vmcore"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open vmcore: %s", strerror(errno));
	vmcore_silent_off = vmcore_off_of(fd, HOME_START);
	ck_assert_msg(vmcore_silent_off != 0,
		      "no PT_LOAD of vmcore holds GPA 0x%llx",
		      (unsigned long long)HOME_START);
	ck_assert_int_eq(pread(fd, buf, PAGE, (off_t)(vmcore_silent_off + 5 * PAGE)),
			 PAGE);
	ck_assert_msg(is_pattern(buf, HOME_START + 5 * PAGE, PAGE),
		      "vmcore read the silent sub-host's page wrong before it stopped");
	close(fd);
	fd = open(in_mnt("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	ck_assert_int_eq(pread(fd, buf, PAGE, HOME_END + 3 * PAGE), PAGE);
	close(fd);

	/*
	 * Opened now: an open of vmcore waits for a kernel scan in progress,
	 * and with the sub-host silent the scan is slow and opens beyond
	 * the few that may wait get EAGAIN (doc/vmemfs.8).  The reads are
	 * what this case is about.
	 */
	for (i = 0; i < VMCORE_READERS; i++) {
		vmcore_fd[i] = open(in_mnt("vmcore"), O_RDONLY);
		ck_assert_msg(vmcore_fd[i] >= 0, "open vmcore: %s",
			      strerror(errno));
	}
	ck_assert_int_eq(vt_stop_pid(E->sub.pid, 2000), 0);
	for (i = 0; i < VMCORE_READERS; i++) {
		v[i].idx = i;
		v[i].stop = &stop;
		ck_assert_int_eq(pthread_create(&v[i].tid, NULL, vmcore_reader,
						&v[i]), 0);
	}
	for (i = 0; i < OPENERS; i++) {
		o[i].idx = i;
		o[i].stop = &stop;
		ck_assert_int_eq(pthread_create(&o[i].tid, NULL, opener, &o[i]),
				 0);
	}
	vt_sleep_ms(300);

	t0 = vt_now_ms();
	for (i = 0; vt_now_ms() - t0 < PROBE_MS; i++) {
		double t1 = vt_now_ms();

		if (stat(in_mnt("vmcore"), &st) < 0)
			probe_bad(&pr, "stat vmcore");
		if (vt_now_ms() - t1 > stat_worst)
			stat_worst = vt_now_ms() - t1;
		probe_once(&pr, i);
		vt_sleep_ms(20);
	}
	threads = count_threads(E->fs.pid);
	stop = true;
	for (i = 0; i < VMCORE_READERS; i++) {
		pthread_join(v[i].tid, NULL);
		reads += v[i].reads;
		eio += v[i].eio;
		ok += v[i].ok;
		other += v[i].other;
		if (v[i].other)
			other_errno = v[i].other_errno;
		if (v[i].worst_ms > worst)
			worst = v[i].worst_ms;
	}
	for (i = 0; i < VMCORE_READERS; i++)
		close(vmcore_fd[i]);
	for (i = 0; i < OPENERS; i++) {
		pthread_join(o[i].tid, NULL);
		oreads += o[i].reads;
		ofail += o[i].eio;
		ook += o[i].ok;
		oother += o[i].other;
		if (o[i].other)
			oother_errno = o[i].other_errno;
		if (o[i].worst_ms > oworst)
			oworst = o[i].worst_ms;
		ofast += o[i].fast;
	}
	printf("info: %u probes with %d vmcore readers and %d kernel/proc openers stuck: worst step %.1f ms (%s), worst probe %.1f ms, stat vmcore %.1f ms, limit %.0f ms\n",
	       pr.n, VMCORE_READERS, OPENERS, pr.worst_ms,
	       pr.worst_what ? pr.worst_what : "-", pr.worst_probe_ms,
	       stat_worst, probe_limit);
	printf("info: vmcore readers: %u reads, %u EIO, worst %.0f ms; openers: %u opens, %u answered, %u EAGAIN/EIO, %u in a tenth of the timeout, worst %.0f ms; vmemfs had %d threads\n",
	       reads, eio, worst, oreads, ook, ofail, ofast, oworst, threads);

	ck_assert_msg(pr.bad == 0, "%u of %u probes failed or read wrong bytes (last: %s, %s)",
		      pr.bad, pr.n, pr.bad_what, strerror(pr.bad_errno));
	ck_assert_msg(pr.worst_ms < probe_limit && pr.worst_probe_ms < probe_limit &&
		      stat_worst < probe_limit,
		      "with %d vmcore readers and %d kernel/proc openers on a silent sub-host, a probe's %s took %.0f ms, a whole probe %.0f ms, a stat of vmcore %.0f ms (limit %.0f ms, a tenth of the timeout)",
		      VMCORE_READERS, OPENERS, pr.worst_what, pr.worst_ms,
		      pr.worst_probe_ms, stat_worst, probe_limit);
	ck_assert_msg(pr.n >= PROBE_MS / 20 / 3,
		      "only %u probes in %d ms", pr.n, PROBE_MS);
	ck_assert_msg(ok == 0 && other == 0,
		      "vmcore reads of a silent sub-host's range: %u succeeded, %u failed with other errors (last %s)",
		      ok, other, strerror(other_errno));
	ck_assert_msg(eio >= VMCORE_READERS,
		      "only %u stuck vmcore reads ended (EIO) in %d ms", eio,
		      PROBE_MS);
	ck_assert_msg(worst <= stuck_limit,
		      "a stuck vmcore read took %.0f ms to fail (timeout %d ms, limit %.0f ms)",
		      worst, TIMEOUT_MS, stuck_limit);
	ck_assert_msg(oother == 0,
		      "%u opens of kernel or proc/ failed with another error than EAGAIN or EIO (last %s)",
		      oother, strerror(oother_errno));
	/*
	 * A few opens may wait for the scan (or build) in progress, up to
	 * the documented 60 s; every other is answered at once, so the
	 * openers get through many.
	 */
	ck_assert_msg(oworst <= open_limit,
		      "an open of kernel or proc/ took %.0f ms (limit %.0f ms)",
		      oworst, open_limit);
	ck_assert_msg(ofast >= PROBE_MS / 20 / 3,
		      "only %u of %u opens of kernel or proc/ were answered within a tenth of the timeout in %d ms",
		      ofast, oreads, PROBE_MS);
	ck_assert_msg(kill(E->fs.pid, 0) == 0, "vmemfs died");
	ck_assert_msg(threads > 0 && threads <= 1 + 10 + 9 + 2 * 16,
		      "vmemfs ran %d threads for one stuck sub-host", threads);

	/* The sub-host runs again: vmcore reads its range right. */
	ck_assert_int_eq(kill(E->sub.pid, SIGCONT), 0);
	fd = open(in_mnt("vmcore"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open vmcore: %s", strerror(errno));
	t0 = vt_now_ms();
	for (;;) {
		ssize_t n = pread(fd, buf, PAGE,
				  (off_t)(vmcore_silent_off + 7 * PAGE));

		if (n == (ssize_t)PAGE)
			break;
		ck_assert_msg(vt_now_ms() - t0 < 5000 + 2 * TIMEOUT_MS,
			      "vmcore of the sub-host's range did not recover: %s",
			      n < 0 ? strerror(errno) : "short read");
		vt_sleep_ms(50);
	}
	ck_assert_msg(is_pattern(buf, HOME_START + 7 * PAGE, PAGE),
		      "vmcore read a remote page wrong after the sub-host came back");
	close(fd);
}
END_TEST

static Suite *stuck_suite(void)
{
	Suite *s = suite_create("stuck_readers");
	TCase *tc = tcase_create("silent_subhost");

	tcase_add_unchecked_fixture(tc, env_up, env_down);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_stuck_readers);
	suite_add_tcase(s, tc);
	tc = tcase_create("silent_subhost_vmcore");
	tcase_add_unchecked_fixture(tc, env_up, env_down);
	tcase_set_timeout(tc, 150);	/* openers may wait out a scan */
	tcase_add_test(tc, test_stuck_vmcore_kernel_proc);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	E = vt_runner_env(sizeof(*E), env_down);
	if (!E)
		return 1;
	sr = srunner_create(stuck_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	env_down();
	return failed ? 1 : 0;
}
