// SPDX-License-Identifier: MIT
/*
 * The mount fixture shared by check_mount, check_mount_faults and
 * check_mover (see mount.h).
 */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../common/evictseq.h"
#include "suite.h"

struct mt_env *mt_e;
static pid_t runner_pid;
bool mt_use_netns;
char mt_netns_err[1024];
struct vt_netns mt_netns[2];

int mt_page_home(uint64_t pg)
{
	uint64_t off = pg * PAGE;

	if (off >= SUB0_START && off < SUB0_END)
		return 0;
	if (off >= SUB1_START && off < SUB1_END)
		return 1;
	return -1;
}

bool mt_page_initially_local(uint64_t pg)
{
	uint64_t off = pg * PAGE;

	if (off < SUB0_START)
		return !((off >= HOLE0_START && off < HOLE0_END) ||
			 (off >= HOLE1_START && off < HOLE1_END));
	if (off < SUB0_END)
		return pg % 37 == 0 || (off >= RUN0_START && off < RUN0_END);
	if (off < SUB1_START)
		return pg % 5 == 0;
	return pg % 41 == 3 || (off >= RUN1_START && off < RUN1_END);
}

void mt_ref_fill(void *buf, uint64_t off, size_t len)
{
	uint8_t *p = buf;
	uint64_t end = off + len;

	vt_pattern_fill(buf, off, len, SEED);
	for (uint64_t pg = off / PAGE; pg * PAGE < end; pg++) {
		uint64_t s = pg * PAGE, e = s + PAGE;

		if (mt_page_home(pg) >= 0 || mt_page_initially_local(pg))
			continue;
		if (s < off)
			s = off;
		if (e > end)
			e = end;
		memset(p + (s - off), 0, e - s);
	}
}

/* ---- the environment ------------------------------------------------ */

#define env_fail(...) vt_setup_failed(E->err, sizeof(E->err), __VA_ARGS__)

static int write_memfile(void)
{
	static uint8_t buf[MiB];
	int fd = open(E->memfile, O_RDWR | O_CREAT | O_EXCL, 0600);

	if (fd < 0) {
		env_fail("create %s: %s", E->memfile, strerror(errno));
		return -1;
	}
	if (ftruncate(fd, RAM) < 0)
		goto fail;
	/* Write runs of local pages, at most 1 MiB at a time. */
	for (uint64_t pg = 0; pg < NPAGES;) {
		uint64_t s = pg, e;

		if (!mt_page_initially_local(pg)) {
			pg++;
			continue;
		}
		for (e = s; e < NPAGES && mt_page_initially_local(e) &&
		     (e - s) * PAGE < sizeof(buf); e++)
			;
		vt_pattern_fill(buf, s * PAGE, (e - s) * PAGE, SEED);
		if (pwrite(fd, buf, (e - s) * PAGE, s * PAGE) !=
		    (ssize_t)((e - s) * PAGE))
			goto fail;
		pg = e;
	}
	close(fd);
	return 0;
fail:
	env_fail("write %s: %s", E->memfile, strerror(errno));
	close(fd);
	return -1;
}

/* Put the pattern on sub-host @i for the pages of its home not local. */
static int fill_subhost(int i, char *err, size_t errlen)
{
	static uint8_t buf[MiB];
	struct nbd_handle *h = vt_nbd_connect(E->sub[i].uri, 5000, err,
					      errlen);
	int ret = 0;

	if (!h)
		return -1;
	for (uint64_t pg = 0; pg < NPAGES && ret == 0;) {
		uint64_t s = pg, e;

		if (mt_page_home(pg) != i || mt_page_initially_local(pg)) {
			pg++;
			continue;
		}
		for (e = s; e < NPAGES && mt_page_home(e) == i &&
		     !mt_page_initially_local(e) &&
		     (e - s) * PAGE < sizeof(buf); e++)
			;
		vt_pattern_fill(buf, s * PAGE, (e - s) * PAGE, SEED);
		if (nbd_pwrite(h, buf, (e - s) * PAGE, s * PAGE, 0) < 0) {
			snprintf(err, errlen, "nbd_pwrite %s: %s",
				 E->sub[i].uri, nbd_get_error());
			ret = -1;
		}
		pg = e;
	}
	if (ret == 0 && nbd_flush(h, 0) < 0 && nbd_can_flush(h) > 0) {
		snprintf(err, errlen, "nbd_flush: %s", nbd_get_error());
		ret = -1;
	}
	nbd_shutdown(h, 0);
	nbd_close(h);
	return ret;
}

int mt_start_subhost(int i, bool exit_with_parent, char *err,
		     size_t errlen)
{
	struct vt_nbdkit *n = &E->sub[i];

	if (vt_nbdkit_start(n, exit_with_parent, err, errlen) < 0)
		return -1;
	return fill_subhost(i, err, errlen);
}

void mt_env_down(void)
{
	if (!E || !E->up)
		return;
	if (E->fs.pid > 0 || E->fs.mnt[0]) {
		int st = vt_vmemfs_stop(&E->fs, 5000);

		if (st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			printf("note: vmemfs ended with status 0x%x\n", st);
		else if (st == -1)
			printf("note: vmemfs did not exit on SIGTERM\n");
		E->fs.mnt[0] = '\0';
	}
	if (E->fs2.pid > 0 || E->fs2.mnt[0])
		vt_vmemfs_stop(&E->fs2, 3000);
	if (E->mnt2[0])
		rmdir(E->mnt2);
	if (E->log[0]) {
		vt_print_tail(E->log, 12, "  vmemfs log: ");
		unlink(E->log);
	}
	for (int i = 0; i < 2; i++) {
		vt_nbdkit_kill(&E->sub[i]);
		if (mt_use_netns)
			vt_netns_kill_all(&mt_netns[i]);
	}
	if (E->seq)
		munmap(E->seq, VMEM_SEQ_FILE_SIZE);
	E->seq = NULL;
	if (E->memfile[0])
		unlink(E->memfile);
	if (E->seqfile[0])
		unlink(E->seqfile);
	if (E->config[0])
		unlink(E->config);
	if (E->mnt[0])
		rmdir(E->mnt);
	/* Orphans a test left (none expected): reap without blocking. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	fflush(stdout);
	memset(E, 0, sizeof(*E));
}

static int write_config(const char *path, const struct mt_opts *o)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fprintf(f,
		"# written by check_mount\n"
		"[vmt]\n"
		"memory-file = %s\n"
		"ram-size    = 256M\n"
		"backend     = direct\n"
		"chunk-size  = 64K\n"
		"cache-size  = %" PRIu64 "\n"
		"cache-ttl   = %ums\n"
		"timeout     = %ums\n"
		"subhost     = %s 96M-160M\n"
		"subhost     = %s 176M-256M\n"
		/* The test's own namespaces: clear NBD on purpose. */
		"tls         = off\n",
		E->memfile, o->cache_size, o->cache_ttl_ms, o->timeout_ms,
		E->sub[0].uri, E->sub[1].uri);
	return fclose(f);
}

void mt_env_up(const struct mt_opts *o)
{
	char err[1024];
	pid_t pid = getpid();

	memset(E, 0, sizeof(*E));
	E->up = true;
	E->opt = *o;
	snprintf(E->memfile, sizeof(E->memfile), "/dev/shm/vmt-%d-%s.mem",
		 pid, o->tag);
	snprintf(E->config, sizeof(E->config), "/tmp/vmt-%d-%s.conf", pid,
		 o->tag);
	snprintf(E->log, sizeof(E->log), "/tmp/vmt-%d-%s.log", pid, o->tag);
	snprintf(E->mnt, sizeof(E->mnt), "/tmp/vmt-%d-%s.mnt", pid, o->tag);

	if (write_memfile() < 0)
		return;
	if (o->with_seq) {
		int fd;

		snprintf(E->seqfile, sizeof(E->seqfile), "%s%s", E->memfile,
			 VMEM_SEQ_SUFFIX);
		fd = open(E->seqfile, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || ftruncate(fd, VMEM_SEQ_FILE_SIZE) < 0) {
			env_fail("create %s: %s", E->seqfile, strerror(errno));
			if (fd >= 0)
				close(fd);
			return;
		}
		E->seq = mmap(NULL, VMEM_SEQ_FILE_SIZE,
			      PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (E->seq == MAP_FAILED) {
			E->seq = NULL;
			env_fail("mmap %s: %s", E->seqfile, strerror(errno));
			return;
		}
	}

	for (int i = 0; i < 2; i++) {
		struct vt_nbdkit *n = &E->sub[i];

		snprintf(n->size, sizeof(n->size), "256M");
		if (mt_use_netns) {
			_Static_assert(sizeof(n->netns) ==
				       sizeof(mt_netns[i].name), "netns name");
			_Static_assert(sizeof(n->addr) ==
				       sizeof(mt_netns[i].ns_addr), "address");
			memcpy(n->netns, mt_netns[i].name, sizeof(n->netns));
			memcpy(n->addr, mt_netns[i].ns_addr, sizeof(n->addr));
			n->port = 10809;
		} else {
			snprintf(n->addr, sizeof(n->addr), "127.0.0.1");
			n->port = vt_free_tcp_port();
		}
		if (mt_start_subhost(i, true, err, sizeof(err)) < 0) {
			env_fail("sub-host %d: %s", i, err);
			return;
		}
	}

	if (write_config(E->config, o) < 0) {
		env_fail("write %s: %s", E->config, strerror(errno));
		return;
	}
	if (mkdir(E->mnt, 0755) < 0) {
		env_fail("mkdir %s: %s", E->mnt, strerror(errno));
		return;
	}
	if (vt_vmemfs_start(&E->fs, E->config, NULL, NULL, E->mnt, E->log,
			    RAM, 15000, err, sizeof(err)) < 0) {
		env_fail("vmemfs: %s", err);
		vt_print_tail(E->log, 20, "  vmemfs log: ");
		return;
	}
	E->ok = true;
	vt_vmemfs_wait_kernel_scan(E->mnt);
}

static void cleanup_all(void)
{
	/* Check's forked tests inherit atexit handlers: only the runner. */
	if (getpid() != runner_pid)
		return;
	mt_env_down();
	for (int i = 0; i < 2; i++)
		vt_netns_delete(&mt_netns[i]);
}

/* ---- assertions ----------------------------------------------------- */

char *mt_path(const char *name)
{
	static __thread char p[300];

	snprintf(p, sizeof(p), "%s/%s", E->mnt, name);
	return p;
}

bool mt_verify(const uint8_t *got, uint64_t off, size_t len, uint64_t *bad)
{
	uint8_t *want = malloc(len ? len : 1);
	bool ok;

	ck_assert_ptr_nonnull(want);
	mt_ref_fill(want, off, len);
	ok = memcmp(got, want, len) == 0;
	if (!ok) {
		size_t i = 0;

		while (got[i] == want[i])
			i++;
		*bad = off + i;
	}
	free(want);
	return ok;
}

ssize_t mt_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

static char *read_whole(const char *path)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
		n = read(fd, buf + len, cap - len - 1);
		ck_assert_msg(n >= 0, "read %s: %s", path, strerror(errno));
		if (n == 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

json_object *mt_read_json(const char *name)
{
	char *text = read_whole(mt_path(name));
	json_object *j = json_tokener_parse(text);

	ck_assert_msg(j != NULL, "%s is not JSON: %.200s", name, text);
	free(text);
	return j;
}

double mt_jnum(json_object *o, const char *key)
{
	json_object *v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v),
		      "key \"%s\" missing", key);
	ck_assert_msg(json_object_is_type(v, json_type_int) ||
		      json_object_is_type(v, json_type_double),
		      "key \"%s\" is not a number", key);
	return json_object_get_double(v);
}

int64_t mt_jint(json_object *o, const char *key)
{
	json_object *v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v),
		      "key \"%s\" missing", key);
	ck_assert_msg(json_object_is_type(v, json_type_int),
		      "key \"%s\" is not an integer", key);
	return json_object_get_int64(v);
}

void mt_read_verify(int fd, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	ssize_t n;
	uint64_t bad = 0;

	ck_assert_ptr_nonnull(buf);
	n = mt_pread_full(fd, buf, len, off);
	ck_assert_msg(n == (ssize_t)len,
		      "pread(%zu @ 0x%" PRIx64 ") = %zd (%s)", len, off, n,
		      n < 0 ? strerror(errno) : "short");
	ck_assert_msg(mt_verify(buf, off, len, &bad),
		      "wrong byte at 0x%" PRIx64 " in read of %zu @ 0x%" PRIx64,
		      bad, len, off);
	free(buf);
}

/* {"p50","p90","p99","max"}: numbers in order. */
static void assert_percentiles(json_object *lat)
{
	ck_assert(mt_jnum(lat, "p50") >= 0);
	ck_assert(mt_jnum(lat, "p50") <= mt_jnum(lat, "p90"));
	ck_assert(mt_jnum(lat, "p90") <= mt_jnum(lat, "p99"));
	ck_assert(mt_jnum(lat, "p99") <= mt_jnum(lat, "max"));
}

void mt_stats_get(struct mt_stats *s, bool check_shape)
{
	json_object *j = mt_read_json("stats"), *subs, *lat;

	ck_assert(json_object_is_type(j, json_type_object));
	s->reads = mt_jint(j, "reads");
	s->read_errors = mt_jint(j, "read_errors");
	s->local = mt_jint(j, "bytes_local");
	s->remote = mt_jint(j, "bytes_remote");
	s->zero = mt_jint(j, "bytes_zero");
	s->retries = mt_jint(j, "retries");
	s->hits = mt_jint(j, "cache_hits");
	s->misses = mt_jint(j, "cache_misses");
	ck_assert_msg(json_object_object_get_ex(j, "subhosts", &subs) &&
		      json_object_is_type(subs, json_type_array),
		      "stats has no subhosts array");
	ck_assert_uint_eq(json_object_array_length(subs), 2);
	for (int i = 0; i < 2; i++) {
		json_object *x = json_object_array_get_idx(subs, i), *u;

		s->req[i] = mt_jint(x, "requests");
		s->bytes[i] = mt_jint(x, "bytes");
		s->errors[i] = mt_jint(x, "errors");
		s->connects[i] = mt_jint(x, "connects");
		if (!check_shape)
			continue;
		ck_assert(json_object_object_get_ex(x, "uri", &u));
		ck_assert_str_eq(json_object_get_string(u), E->sub[i].uri);
		ck_assert_int_eq(mt_jint(x, "start"), i ? SUB1_START : SUB0_START);
		ck_assert_int_eq(mt_jint(x, "end"), i ? SUB1_END : SUB0_END);
		ck_assert(json_object_object_get_ex(x, "latency_us", &lat));
		assert_percentiles(lat);
	}
	if (check_shape) {
		ck_assert(json_object_object_get_ex(j, "latency_us", &lat));
		assert_percentiles(lat);
	}
	json_object_put(j);
}

void *mt_reader_thread(void *p)
{
	struct mt_reader *a = p;
	uint8_t *buf = malloc(a->maxlen), *want = malloc(a->maxlen);
	uint64_t x = 0x1234567ULL * (a->id + 1);

	while (vt_now_ms() < a->until) {
		uint64_t r = vt_splitmix64(x++);
		size_t len = 1 + (r >> 40) % a->maxlen;
		uint64_t off = a->lo + r % (a->hi - a->lo - len);
		ssize_t n = mt_pread_full(a->fd, buf, len, off);

		a->reads++;
		if (n < 0) {
			if (errno == EIO)
				a->eio++;
			else
				a->other_err++;
			continue;
		}
		if (n != (ssize_t)len) {
			a->other_err++;
			continue;
		}
		a->bytes += len;
		mt_ref_fill(want, off, len);
		if (memcmp(buf, want, len)) {
			size_t i = 0;

			while (buf[i] == want[i])
				i++;
			if (!a->bad)
				a->first_bad = off + i;
			a->bad++;
		}
	}
	free(buf);
	free(want);
	return NULL;
}

void mt_run_readers(struct mt_reader *args, int n, int fd, uint64_t lo,
		    uint64_t hi, size_t maxlen, double ms)
{
	pthread_t th[16];
	double until = vt_now_ms() + ms;

	for (int i = 0; i < n; i++) {
		args[i] = (struct mt_reader){
			.id = i, .until = until, .lo = lo, .hi = hi,
			.maxlen = maxlen, .fd = fd,
		};
		ck_assert_int_eq(pthread_create(&th[i], NULL, mt_reader_thread,
						&args[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

int mt_main(Suite *(*make)(void))
{
	char err[1024];
	int rc;

	runner_pid = getpid();
	E = vt_runner_env(sizeof(*E), cleanup_all);
	if (!E)
		return 1;

	/* VMT_NO_NETNS=1 runs the loopback fallback on purpose. */
	mt_use_netns = !getenv("VMT_NO_NETNS");
	if (!mt_use_netns)
		printf("note: VMT_NO_NETNS set; sub-hosts run on loopback\n");
	for (int i = 0; i < 2 && mt_use_netns; i++) {
		char name[32];

		snprintf(name, sizeof(name), "vmt-%d-%d", (int)runner_pid,
			 i + 1);
		if (vt_netns_create(&mt_netns[i], name,
				    (runner_pid % 8000) * 2 + i, err,
				    sizeof(err)) < 0) {
			printf("note: cannot make network namespaces (%s); sub-hosts run on loopback\n",
			       err);
			snprintf(mt_netns_err, sizeof(mt_netns_err), "%s", err);
			mt_use_netns = false;
			vt_netns_delete(&mt_netns[0]);
		}
	}
	if (mt_use_netns)
		printf("info: sub-hosts in network namespaces %s (%s) and %s (%s)\n",
		       mt_netns[0].name, mt_netns[0].ns_addr, mt_netns[1].name,
		       mt_netns[1].ns_addr);

	rc = vt_run_suite(make());
	cleanup_all();
	return rc;
}
