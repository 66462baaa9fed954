// SPDX-License-Identifier: MIT
/*
 * The remote-paging backend through the real read path (reader.c), with a
 * stand-in VM: a QMP server whose vmem-page-in writes the range's pages
 * into the memory file, bracketed by the eviction sequence, as the pager
 * does.  The bytes vmemfs serves must be the pattern; the memory file must
 * grow by exactly the chunks paged in; a VM that fails, goes silent, or
 * evicts the range again at once must give EIO, not zeros.
 *
 * With a control socket announced in query-vmem (a stand-in for the
 * pager's, common/pagerctl.h): one command per read, one range per chunk,
 * no QMP page-in; an error reply is EIO; a socket that breaks falls back
 * to QMP and still serves the right bytes.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/evictseq.h"
#include "../common/pagerctl.h"
#include "../vmemfs/reader.h"
#include "lib/fakeqmp.h"
#include "lib/suite.h"

#define K 1024ull
#define M (1024ull * K)
#define RAM (8 * M)
#define CHUNK (64 * K)

enum vm_mode { PAGE_IN, FAIL, SILENT, EVICT_AGAIN };

/* The stand-in control socket: what it does with a command. */
enum ctl_mode { CTL_NONE, CTL_OK, CTL_ERR, CTL_DROP };

struct vm {
	enum vm_mode mode;
	int memfd;
	struct vmem_seq_map *seq;
	int commands;		/* QMP vmem-page-in */
	uint64_t last_len;
	enum ctl_mode ctl;	/* CTL_NONE: query-vmem names no socket */
	int ctl_commands, ctl_ranges;	/* atomics */
	uint64_t ctl_first_off, ctl_last_len;
};

static char mem_path[64], seq_path[80], conf_text[1024], ctl_path[80];
static pid_t runner;	/* names the scratch files; main removes them */
static struct vm vm;
static struct fakeqmp qmp;

/* The guest's memory: 8 bytes of a pattern that depends on the offset. */
static uint64_t pat(uint64_t off)
{
	uint64_t x = (off / 8) * 0x9e3779b97f4a7c15ull;

	x ^= x >> 31;
	return x * 0xbf58476d1ce4e5b9ull;
}

static void fill(unsigned char *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = pat(off + i);

		memcpy(buf + i, &v, 8);
	}
}

static void page_in_range(struct vm *v, uint64_t off, uint64_t len);

static bool vm_command(struct fakeqmp *s, int fd, json_object *cmd, void *opaque)
{
	struct vm *v = opaque;
	json_object *args, *o;
	uint64_t off, len;

	(void)s;
	ck_assert(json_object_object_get_ex(cmd, "execute", &o));
	if (strcmp(json_object_get_string(o), "query-vmem") == 0) {
		json_object *ret = json_object_new_object();

		if (v->ctl != CTL_NONE)
			json_object_object_add(ret, "control-socket",
					       json_object_new_string(ctl_path));
		fakeqmp_reply(fd, cmd, ret);
		json_object_put(cmd);
		return true;
	}
	__atomic_fetch_add(&v->commands, 1, __ATOMIC_RELAXED);
	ck_assert_str_eq(json_object_get_string(o), "vmem-page-in");
	ck_assert(json_object_object_get_ex(cmd, "arguments", &args));
	ck_assert(json_object_object_get_ex(args, "offset", &o));
	off = json_object_get_uint64(o);
	ck_assert(json_object_object_get_ex(args, "length", &o));
	len = json_object_get_uint64(o);
	v->last_len = len;

	switch (v->mode) {
	case FAIL:
		fakeqmp_error(fd, cmd, "sub-host did not answer");
		break;
	case SILENT:
		break;
	case PAGE_IN:
	case EVICT_AGAIN:
		page_in_range(v, off, len);
		if (v->mode == EVICT_AGAIN) {
			/* The VM needed the room back before our reader got
			 * to it (done before the reply, to be deterministic). */
			vmem_seq_move_begin(v->seq, off, len);
			ck_assert_int_eq(fallocate(v->memfd, FALLOC_FL_PUNCH_HOLE |
						   FALLOC_FL_KEEP_SIZE, (off_t)off,
						   (off_t)len), 0);
			vmem_seq_move_end(v->seq, off, len);
		}
		fakeqmp_reply(fd, cmd, NULL);
		break;
	}
	json_object_put(cmd);
	return true;
}

/* Page [off, off + len) in as the pager would (pattern, bracketed). */
static void page_in_range(struct vm *v, uint64_t off, uint64_t len)
{
	unsigned char *buf = malloc(len);

	fill(buf, off, len);
	vmem_seq_move_begin(v->seq, off, len);
	ck_assert_int_eq(pwrite(v->memfd, buf, len, (off_t)off), (ssize_t)len);
	vmem_seq_move_end(v->seq, off, len);
	free(buf);
}

static int ctl_lfd = -1;
static pthread_t ctl_thr;

static bool read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t r = read(fd, p, len);

		if (r <= 0)
			return false;
		p += r;
		len -= (size_t)r;
	}
	return true;
}

/* The stand-in control socket: one connection at a time is enough. */
static void *ctl_server(void *arg)
{
	struct vm *v = arg;
	int fd;

	while ((fd = accept(ctl_lfd, NULL, NULL)) >= 0) {
		struct vmem_ctl_req rq;
		struct vmem_ctl_range rg[VMEM_CTL_MAX_RANGES];

		while (read_all(fd, &rq, sizeof(rq)) && rq.n &&
		       rq.n <= VMEM_CTL_MAX_RANGES &&
		       read_all(fd, rg, rq.n * sizeof(rg[0]))) {
			struct vmem_ctl_reply rp = { .magic = VMEM_CTL_MAGIC,
						     .tag = rq.tag };

			__atomic_fetch_add(&v->ctl_commands, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&v->ctl_ranges, rq.n, __ATOMIC_RELAXED);
			v->ctl_first_off = rg[0].offset;
			v->ctl_last_len = rg[rq.n - 1].length;
			if (v->ctl == CTL_DROP)
				break;
			if (v->ctl == CTL_ERR) {
				rp.err = EIO;
				snprintf(rp.msg, sizeof(rp.msg), "sub-host down");
			} else {
				for (unsigned int i = 0; i < rq.n; i++)
					page_in_range(v, rg[i].offset,
						      rg[i].length);
			}
			if (write(fd, &rp, sizeof(rp)) != (ssize_t)sizeof(rp))
				break;
		}
		close(fd);
	}
	return NULL;
}

static void ctl_start(enum ctl_mode mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	vm.ctl = mode;
	unlink(ctl_path);
	ctl_lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(ctl_lfd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ctl_path);
	ck_assert_int_eq(bind(ctl_lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(ctl_lfd, 4), 0);
	ck_assert_int_eq(pthread_create(&ctl_thr, NULL, ctl_server, &vm), 0);
}

static void ctl_stop(void)
{
	if (ctl_lfd < 0)
		return;
	shutdown(ctl_lfd, SHUT_RDWR);
	pthread_join(ctl_thr, NULL);
	close(ctl_lfd);
	ctl_lfd = -1;
	unlink(ctl_path);
}

static void setup_paths(void)
{
	snprintf(mem_path, sizeof(mem_path), "/dev/shm/vmt-rp-%d.mem", (int)runner);
	snprintf(seq_path, sizeof(seq_path), "%s" VMEM_SEQ_SUFFIX, mem_path);
	snprintf(ctl_path, sizeof(ctl_path), "%s.ctl", mem_path);
}

/* The mount's config: the fake VM's QMP socket, and @extra lines. */
static void write_conf(const char *extra)
{
	snprintf(conf_text, sizeof(conf_text),
		 "[rp]\nmemory-file = %s\nbackend = remote-paging\nqmp = %s\n"
		 "chunk-size = 64K\ntimeout = 500ms\n"
		 "subhost = nbd://192.0.2.1:1 2M-8M tls=off  # never contacted\n%s",
		 mem_path, qmp.path, extra);
}

static void setup(void)
{
	unsigned char *buf = malloc(2 * M);
	int sfd;

	setup_paths();
	vm.memfd = open(mem_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(vm.memfd, 0);
	ck_assert_int_eq(ftruncate(vm.memfd, RAM), 0);
	/* [0, 2M) is on the main host; [2M, 8M) is homed on a sub-host. */
	fill(buf, 0, 2 * M);
	ck_assert_int_eq(pwrite(vm.memfd, buf, 2 * M, 0), (ssize_t)(2 * M));
	free(buf);
	vm.ctl = CTL_NONE;
	vm.ctl_commands = vm.ctl_ranges = 0;
	vm.commands = 0;
	sfd = open(seq_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(sfd, 0);
	ck_assert_int_eq(ftruncate(sfd, VMEM_SEQ_FILE_SIZE), 0);
	vm.seq = mmap(NULL, VMEM_SEQ_FILE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_SHARED, sfd, 0);
	ck_assert(vm.seq != MAP_FAILED);
	close(sfd);
	memset(&qmp, 0, sizeof(qmp));
	fakeqmp_start(&qmp, vm_command, &vm, 1);
	write_conf("");
}

static void teardown(void)
{
	ctl_stop();
	munmap(vm.seq, VMEM_SEQ_FILE_SIZE);
	close(vm.memfd);
	unlink(mem_path);
	unlink(seq_path);
}

static void open_reader(struct vmem_config *cfg, struct vmem_reader *r)
{
	char err[256];

	ck_assert_msg(vmem_config_parse(conf_text, "rp.conf", cfg, err,
					sizeof(err)) == 0, "%s", err);
	ck_assert_msg(vmem_vm_resolve(&cfg->vms[0], "rp.conf", err,
				      sizeof(err)) == 0, "%s", err);
	ck_assert_msg(vmem_reader_open(r, &cfg->vms[0], err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_ptr_nonnull(r->mf.seq);
}

static void close_all(struct vmem_config *cfg, struct vmem_reader *r)
{
	vmem_reader_close(r);	/* closes the QMP connection first */
	fakeqmp_stop(&qmp);
	vmem_config_free(cfg);
}

static uint64_t allocated(void)
{
	struct stat st;

	ck_assert_int_eq(fstat(vm.memfd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

START_TEST(pages_in_then_reads_locally)
{
	struct vmem_config cfg;
	struct vmem_reader r;
	unsigned char *got = malloc(RAM), *want = malloc(RAM);
	uint64_t before;

	vm.mode = PAGE_IN;
	open_reader(&cfg, &r);
	fill(want, 0, RAM);
	before = allocated();
	ck_assert_uint_eq(before, 2 * M);

	/* An unaligned read inside one chunk pages in that whole chunk. */
	ck_assert_int_eq(vmem_read(&r, got, 100, 3 * M + 5000), 100);
	ck_assert_mem_eq(got, want + 3 * M + 5000, 100);
	ck_assert_int_eq(vm.commands, 1);
	ck_assert_uint_eq(vm.last_len, CHUNK);
	ck_assert_uint_eq(allocated(), before + CHUNK);

	/* Again: it is local now, no command. */
	ck_assert_int_eq(vmem_read(&r, got, 100, 3 * M + 5000), 100);
	ck_assert_int_eq(vm.commands, 1);

	/* The whole memory: one command per chunk still absent. */
	ck_assert_int_eq(vmem_read(&r, got, RAM, 0), (ssize_t)RAM);
	ck_assert_mem_eq(got, want, RAM);
	ck_assert_int_eq(vm.commands, 1 + (int)(6 * M / CHUNK) - 1);
	ck_assert_uint_eq(allocated(), RAM);
	ck_assert_uint_eq(r.stats.sub[0].requests, (uint64_t)vm.commands);
	ck_assert_uint_eq(r.stats.bytes_remote, 0);	/* all read locally */
	ck_assert_uint_eq(r.stats.bytes_local, 200 + RAM);
	close_all(&cfg, &r);
	free(got);
	free(want);
}
END_TEST

START_TEST(vm_error_is_eio)
{
	struct vmem_config cfg;
	struct vmem_reader r;
	unsigned char buf[4096];

	vm.mode = FAIL;
	open_reader(&cfg, &r);
	ck_assert_int_eq(vmem_read(&r, buf, sizeof(buf), 4 * M), -EIO);
	/* Local memory is still served. */
	ck_assert_int_eq(vmem_read(&r, buf, sizeof(buf), 1 * M), (ssize_t)sizeof(buf));
	ck_assert_uint_eq(r.stats.sub[0].errors, 1);
	ck_assert_uint_eq(allocated(), 2 * M);
	close_all(&cfg, &r);
}
END_TEST

START_TEST(silent_vm_is_eio_within_timeout)
{
	struct vmem_config cfg;
	struct vmem_reader r;
	unsigned char buf[4096];
	struct timespec a, b;
	double dt;

	vm.mode = SILENT;
	open_reader(&cfg, &r);
	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(vmem_read(&r, buf, sizeof(buf), 4 * M), -EIO);
	clock_gettime(CLOCK_MONOTONIC, &b);
	dt = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	ck_assert_msg(dt >= 0.45 && dt < 1.5, "EIO after %.3f s", dt);
	printf("info: silent VM: EIO after %.3f s (timeout 0.5 s)\n", dt);
	close_all(&cfg, &r);
}
END_TEST

START_TEST(evicted_again_is_bounded)
{
	struct vmem_config cfg;
	struct vmem_reader r;
	unsigned char buf[4096];

	vm.mode = EVICT_AGAIN;
	open_reader(&cfg, &r);
	ck_assert_int_eq(vmem_read(&r, buf, sizeof(buf), 5 * M), -EIO);
	ck_assert_int_ge(vm.commands, 2);	/* asked again ... */
	ck_assert_int_le(vm.commands, VMEM_MAX_RETRIES + 1);	/* ... bounded */
	ck_assert_uint_eq(allocated(), 2 * M);
	close_all(&cfg, &r);
}
END_TEST

/*
 * The backend's own guards, called as the core would never call it: a
 * zero-length request asks the VM nothing (it used to divide the time by
 * its zero chunks), and a home that is not one of the VM's sub-hosts is
 * refused (it used to index past the sub-host array).
 */
START_TEST(empty_request_and_bad_home)
{
	struct vmem_config cfg;
	struct vmem_reader r;
	unsigned char buf[4096];

	vm.mode = PAGE_IN;
	open_reader(&cfg, &r);
	ck_assert_int_eq(r.ops->fetch(r.bh, 0, buf, 3 * M, 0),
			 VMEM_FETCH_DATA);
	ck_assert_int_eq(r.ops->fetch(r.bh, 1, buf, 3 * M, sizeof(buf)),
			 -EINVAL);
	ck_assert_int_eq(r.ops->fetch(r.bh, 0, buf, 1 * M, sizeof(buf)),
			 -EINVAL);	/* not inside home 0 (2M-8M) */
	ck_assert_int_eq(vm.commands, 0);
	ck_assert_uint_eq(allocated(), 2 * M);
	close_all(&cfg, &r);
}
END_TEST

/* One read, one control-socket command with a range per chunk. */
START_TEST(control_socket_one_command_per_read)
{
	struct vmem_config cfg;
	struct vmem_reader r;
	unsigned char *got = malloc(M), *want = malloc(M);

	vm.mode = FAIL;		/* QMP page-in must not be used */
	ctl_start(CTL_OK);
	open_reader(&cfg, &r);
	fill(want, 3 * M, M);
	/* 1 MiB from an unaligned start: 17 chunks, one command. */
	ck_assert_int_eq(vmem_read(&r, got, M - 4096, 3 * M + 4096),
			 (ssize_t)(M - 4096));
	ck_assert_mem_eq(got, want + 4096, M - 4096);
	ck_assert_int_eq(vm.ctl_commands, 1);
	ck_assert_int_eq(vm.ctl_ranges, 16);
	ck_assert_uint_eq(vm.ctl_first_off, 3 * M);
	ck_assert_uint_eq(vm.ctl_last_len, CHUNK);
	ck_assert_int_eq(vm.commands, 0);
	ck_assert_uint_eq(allocated(), 2 * M + M);
	ck_assert_uint_eq(r.stats.sub[0].requests, 16);
	close_all(&cfg, &r);
	free(got);
	free(want);
}
END_TEST

/* fetch-merge = off: the paper's method, one command per chunk. */
START_TEST(control_socket_fetch_merge_off_one_command_per_chunk)
{
	struct vmem_config cfg;
	struct vmem_reader r;
	unsigned char *got = malloc(M), *want = malloc(M);

	vm.mode = FAIL;		/* QMP page-in must not be used */
	write_conf("fetch-merge = off\n");
	ctl_start(CTL_OK);
	open_reader(&cfg, &r);
	fill(want, 3 * M, M);
	ck_assert_int_eq(vmem_read(&r, got, M - 4096, 3 * M + 4096),
			 (ssize_t)(M - 4096));
	ck_assert_mem_eq(got, want + 4096, M - 4096);
	ck_assert_int_eq(vm.ctl_commands, 16);
	ck_assert_int_eq(vm.ctl_ranges, 16);
	ck_assert_uint_eq(vm.ctl_last_len, CHUNK);
	ck_assert_int_eq(vm.commands, 0);
	ck_assert_uint_eq(allocated(), 2 * M + M);
	ck_assert_uint_eq(r.stats.sub[0].requests, 16);
	close_all(&cfg, &r);
	free(got);
	free(want);
}
END_TEST

/* The pager said no: EIO, never zeros, and no fallback that would hide
 * it. */
START_TEST(control_socket_error_is_eio)
{
	struct vmem_config cfg;
	struct vmem_reader r;
	unsigned char buf[4096];

	vm.mode = PAGE_IN;
	ctl_start(CTL_ERR);
	open_reader(&cfg, &r);
	ck_assert_int_eq(vmem_read(&r, buf, sizeof(buf), 4 * M), -EIO);
	ck_assert_int_eq(vm.ctl_commands, 1);
	ck_assert_int_eq(vm.commands, 0);
	ck_assert_uint_eq(r.stats.sub[0].errors, 1);
	ck_assert_uint_eq(allocated(), 2 * M);
	close_all(&cfg, &r);
}
END_TEST

/* A socket that breaks mid-command: the read still gets the right bytes,
 * by QMP. */
START_TEST(control_socket_broken_falls_back_to_qmp)
{
	struct vmem_config cfg;
	struct vmem_reader r;
	unsigned char *got = malloc(4096), *want = malloc(4096);

	vm.mode = PAGE_IN;
	ctl_start(CTL_DROP);
	open_reader(&cfg, &r);
	fill(want, 5 * M, 4096);
	ck_assert_int_eq(vmem_read(&r, got, 4096, 5 * M), 4096);
	ck_assert_mem_eq(got, want, 4096);
	ck_assert_int_eq(vm.ctl_commands, 1);
	ck_assert_int_eq(vm.commands, 1);
	/* And it stays on QMP for a while rather than retry the socket. */
	ck_assert_int_eq(vmem_read(&r, got, 4096, 6 * M), 4096);
	ck_assert_int_eq(vm.ctl_commands, 1);
	ck_assert_int_eq(vm.commands, 2);
	close_all(&cfg, &r);
	free(got);
	free(want);
}
END_TEST

/*
 * Whose socket is used: one owned by the memory file's owner (a QEMU
 * running as a user of its own, as under libvirt) is; one owned by some
 * other user is not, and QMP pages in instead.
 */
START_TEST(control_socket_owner_must_match)
{
	struct vmem_config cfg;
	struct vmem_reader r;
	unsigned char *got = malloc(4096), *want = malloc(4096);

	vm.mode = PAGE_IN;
	ctl_start(CTL_OK);
	ck_assert_int_eq(fchown(vm.memfd, 65534, 65534), 0);
	ck_assert_int_eq(chown(ctl_path, 65534, 65534), 0);
	open_reader(&cfg, &r);
	fill(want, 5 * M, 4096);
	ck_assert_int_eq(vmem_read(&r, got, 4096, 5 * M), 4096);
	ck_assert_mem_eq(got, want, 4096);
	ck_assert_int_eq(vm.ctl_commands, 1);
	ck_assert_int_eq(vm.commands, 0);
	close_all(&cfg, &r);

	/* The same socket owned by a user who is not the file's. */
	memset(&qmp, 0, sizeof(qmp));
	fakeqmp_start(&qmp, vm_command, &vm, 1);
	write_conf("");
	ck_assert_int_eq(chown(ctl_path, 65533, 65533), 0);
	open_reader(&cfg, &r);
	fill(want, 6 * M, 4096);
	ck_assert_int_eq(vmem_read(&r, got, 4096, 6 * M), 4096);
	ck_assert_mem_eq(got, want, 4096);
	ck_assert_int_eq(vm.ctl_commands, 1);
	ck_assert_int_eq(vm.commands, 1);
	close_all(&cfg, &r);
	free(got);
	free(want);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("remote-paging");
	TCase *tc = vt_tcase_checked(s, "backend", setup, teardown, 30);
	int rc;

	runner = getpid();

	tcase_add_test(tc, pages_in_then_reads_locally);
	tcase_add_test(tc, vm_error_is_eio);
	tcase_add_test(tc, silent_vm_is_eio_within_timeout);
	tcase_add_test(tc, evicted_again_is_bounded);
	tcase_add_test(tc, empty_request_and_bad_home);
	tcase_add_test(tc, control_socket_one_command_per_read);
	tcase_add_test(tc, control_socket_fetch_merge_off_one_command_per_chunk);
	tcase_add_test(tc, control_socket_error_is_eio);
	tcase_add_test(tc, control_socket_broken_falls_back_to_qmp);
	tcase_add_test(tc, control_socket_owner_must_match);
	rc = vt_run_suite(s);
	/* Check skips a failed test's teardown: clean up here too. */
	setup_paths();
	unlink(mem_path);
	unlink(seq_path);
	unlink(ctl_path);
	return rc;
}
