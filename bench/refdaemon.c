// SPDX-License-Identifier: MIT
/*
 * refdaemon: the "minimal libfuse daemon" the speed targets of vmemfs are
 * measured against.  It serves one existing file, read-only, as `mem` in
 * the root of a FUSE mount, and does nothing else: no stats, no holes, no
 * remote fetches.  Its read path is deliberately the cheapest a low-level
 * libfuse daemon can have while keeping vmemfs's design constraints
 * (pread, never mmap): pread into a per-thread buffer, fuse_reply_buf.
 *
 * It uses the same mount setup as vmemfs (direct_io, max_read 1 MiB,
 * multithreaded loop) so that any difference measured between the two is
 * the cost of vmemfs's own read path and not of a different FUSE setup.
 *
 * Usage: refdaemon [-d] [-o FUSEOPTS] FILE MOUNTPOINT
 * Always runs in the foreground; SIGTERM/SIGINT unmount and exit.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REF_MAX_IO (1u << 20)
#define REF_INO_MEM 2
#define REF_NAME "mem"

static int ref_fd = -1;
static off_t ref_size;

/*
 * One buffer per FUSE worker thread, allocated on first use and kept
 * while the thread lives: a malloc per request would be part of what we
 * measure, and a minimal daemon would not do it either.  The key's
 * destructor frees it when libfuse retires an idle worker.
 */
static __thread char *ref_buf;
static __thread size_t ref_buf_len;
static pthread_key_t ref_buf_key;

static void ref_fill_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0400;
		st->st_nlink = 1;
		st->st_size = ref_size;
	}
}

static void ref_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/*
	 * Without these the kernel splits a 1 MiB read(2) into 128 KiB FUSE
	 * requests, and the per-request cost would dominate the measurement.
	 * libfuse clips max_write to its receive buffer size itself.
	 */
	conn->max_write = REF_MAX_IO;
	conn->max_read = REF_MAX_IO;
	conn->max_readahead = REF_MAX_IO;
}

static void ref_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	if (parent != FUSE_ROOT_ID || strcmp(name, REF_NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = REF_INO_MEM;
	e.attr_timeout = 1.0;
	e.entry_timeout = 1.0;
	ref_fill_stat(e.ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void ref_getattr(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != REF_INO_MEM) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	ref_fill_stat(ino, &st);
	fuse_reply_attr(req, &st, 1.0);
}

static void ref_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != REF_INO_MEM) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	/* Same as vmemfs: no page cache, one request per read(2). */
	fi->direct_io = 1;
	fuse_reply_open(req, fi);
}

static void ref_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	size_t done = 0;

	(void)ino;
	(void)fi;
	if (off >= ref_size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if ((off_t)size > ref_size - off)
		size = ref_size - off;
	if (size > ref_buf_len) {
		char *nb = realloc(ref_buf, size);

		if (!nb) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		ref_buf = nb;
		ref_buf_len = size;
		pthread_setspecific(ref_buf_key, nb);
	}
	while (done < size) {
		ssize_t n = pread(ref_fd, ref_buf + done, size - done,
				  off + done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fuse_reply_err(req, errno);
			return;
		}
		if (n == 0)
			break;
		done += n;
	}
	fuse_reply_buf(req, ref_buf, done);
}

static void ref_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			off_t off, struct fuse_file_info *fi)
{
	static const char *const names[] = { ".", "..", REF_NAME };
	static const fuse_ino_t inos[] = { FUSE_ROOT_ID, FUSE_ROOT_ID,
					   REF_INO_MEM };
	char buf[512];
	size_t used = 0;

	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (size > sizeof(buf))
		size = sizeof(buf);
	for (off_t i = off; i < 3; i++) {
		struct stat st;
		size_t n;

		ref_fill_stat(inos[i], &st);
		n = fuse_add_direntry(req, buf + used, size - used, names[i],
				      &st, i + 1);
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

static const struct fuse_lowlevel_ops ref_ops = {
	.init = ref_init,
	.lookup = ref_lookup,
	.getattr = ref_getattr,
	.open = ref_open,
	.read = ref_read,
	.readdir = ref_readdir,
};

static void ref_usage(FILE *out)
{
	fprintf(out, "usage: refdaemon [-d] [-o FUSEOPTS] FILE MOUNTPOINT\n");
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lc = NULL;
	struct fuse_session *se = NULL;
	const char *file, *mnt;
	struct stat st;
	int opt, ret = 1;

	/* argv[0] and our fixed options come first; user -o may add more. */
	if (fuse_opt_add_arg(&args, argv[0]) ||
	    fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, "max_read=1048576,ro,fsname=refdaemon,"
				    "subtype=refdaemon"))
		goto out;
	while ((opt = getopt(argc, argv, "do:h")) != -1) {
		switch (opt) {
		case 'd':
			if (fuse_opt_add_arg(&args, "-d"))
				goto out;
			break;
		case 'o':
			if (fuse_opt_add_arg(&args, "-o") ||
			    fuse_opt_add_arg(&args, optarg))
				goto out;
			break;
		case 'h':
			ref_usage(stdout);
			ret = 0;
			goto out;
		default:
			ref_usage(stderr);
			goto out;
		}
	}
	if (argc - optind != 2) {
		ref_usage(stderr);
		goto out;
	}
	file = argv[optind];
	mnt = argv[optind + 1];

	ref_fd = open(file, O_RDONLY | O_CLOEXEC);
	if (ref_fd < 0 || fstat(ref_fd, &st) < 0) {
		fprintf(stderr, "refdaemon: %s: %s\n", file, strerror(errno));
		goto out;
	}
	ref_size = st.st_size;
	if (pthread_key_create(&ref_buf_key, free))
		goto out;

	se = fuse_session_new(&args, &ref_ops, sizeof(ref_ops), NULL);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se))
		goto out_destroy;
	if (fuse_session_mount(se, mnt))
		goto out_signals;

	lc = fuse_loop_cfg_create();
	if (!lc)
		goto out_unmount;
	ret = fuse_session_loop_mt(se, lc) < 0 ? 1 : 0;
	fuse_loop_cfg_destroy(lc);
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
out:
	fuse_opt_free_args(&args);
	if (ref_fd >= 0)
		close(ref_fd);
	return ret;
}
