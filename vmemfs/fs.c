// SPDX-License-Identifier: MIT
/*
 * The FUSE front end (low-level API): a flat directory of four files.
 *   mem    the VM's memory by guest-physical address (physmem.c); with
 *          layout = flat that is the RAM offset
 *   ram    the VM's RAM by RAM offset (= memory file offset), reader.c
 *   stats  counters as JSON, generated at open
 *   map    where each RAM range lives, as JSON, generated at open
 *   kernel the guest kernel recognised in guest memory, as JSON, generated
 *          at open (kernel_view.c)
 *   vmcore `mem` as an ELF core for drgn, crash and makedumpfile: header
 *          built at open, data read like `mem` (vmcore.c)
 *   proc/  a shadow of the guest's /proc, and sys/ (sys/module/ for
 *   sys/   lsmod): every inode of those trees is fs_proc.c's, this file
 *          only dispatches to it
 * Every file is direct_io: the page cache must never hold guest memory,
 * which changes under us and which we promised to keep no copy of.
 *
 * Readers stuck on a silent sub-host must not take the threads that local
 * reads, opens and the other sub-hosts need: a read of `mem`, `ram` or
 * `vmcore` may wait on a sub-host only as one of at most
 * VMEM_FS_REMOTE_THREADS per sub-host (fs.h), and libfuse runs 10
 * threads more than those.  A read
 * that finds its sub-host's places taken leaves the rest of it, with what
 * it read so far, in the sub-host's queue, and its thread returns.
 * Opens of `kernel`, `vmcore` and proc/ that wait for a kernel scan or a
 * proc/ build (which may wait on a sub-host) do so as one of a few
 * (kernel_view.h: VMEM_KV_WAITERS, VMEM_PROC_WAITERS), with threads of
 * their own in the count; the rest fail at once with EAGAIN.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/timeutil.h"
#include "fs.h"
#include "homes.h"
#include "log.h"

enum {
	INO_ROOT = FUSE_ROOT_ID,
	INO_MEM,
	INO_RAM,
	INO_STATS,
	INO_MAP,
	INO_KERNEL,
	INO_VMCORE,
	INO_END,
};

static const char *const names[INO_END] = {
	[INO_MEM] = "mem",
	[INO_RAM] = "ram",
	[INO_STATS] = "stats",
	[INO_MAP] = "map",
	[INO_KERNEL] = "kernel",
	[INO_VMCORE] = "vmcore",
};

/* A generated file's text, owned by one open file handle. */
struct gen_file {
	size_t len;
	char text[];
};

static struct vmem_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void fill_attr(struct vmem_fs *fs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_atim = st->st_mtim = st->st_ctim = fs->start_time;
	if (ino == INO_ROOT) {
		st->st_mode = S_IFDIR | 0500;
		st->st_nlink = 2;
		return;
	}
	st->st_mode = S_IFREG | 0400;
	st->st_nlink = 1;
	/* Generated files say 0 like /proc: their length is known only
	 * once opened, and direct_io makes readers go to EOF anyway. */
	if (ino == INO_MEM)
		st->st_size = (off_t)vmem_physmem_size(&fs->physmem);
	else if (ino == INO_RAM)
		st->st_size = (off_t)fs->reader.vm->ram_size;
	else if (ino == INO_VMCORE)
		st->st_size = (off_t)vmem_kernel_view_vmcore_size(&fs->kview);
	st->st_blksize = 4096;
	/* cp and cat read st_blksize at a time (at least 128 KiB): let a
	 * copy of vmcore come in requests as large as FUSE takes. */
	if (ino == INO_VMCORE)
		st->st_blksize = VMEM_FS_MAX_IO;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* libfuse derives max_pages from max_write; 1 MiB requests need both. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want &= ~FUSE_CAP_SPLICE_WRITE;
	conn->max_write = VMEM_FS_MAX_IO;
	conn->max_read = VMEM_FS_MAX_IO;
	conn->max_readahead = 0;
	conn->want &= ~FUSE_CAP_ASYNC_READ;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	fuse_ino_t ino;

	if (vmem_proc_ino(parent)) {
		vmem_proc_lookup(&fs_of(req)->proc, req, parent, name);
		return;
	}
	if (parent != INO_ROOT) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (strcmp(name, "proc") == 0 || strcmp(name, "sys") == 0) {
		vmem_proc_lookup_root(&fs_of(req)->proc, req, name);
		return;
	}
	for (ino = INO_MEM; ino < INO_END; ino++)
		if (strcmp(name, names[ino]) == 0)
			break;
	if (ino == INO_END) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr_timeout = 1.0;
	e.entry_timeout = 1.0;
	fill_attr(fs_of(req), ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (vmem_proc_ino(ino)) {
		vmem_proc_getattr(&fs_of(req)->proc, req, ino);
		return;
	}
	if (ino < INO_ROOT || ino >= INO_END) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(fs_of(req), ino, &st);
	fuse_reply_attr(req, &st, 1.0);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	char buf[512];
	size_t used = 0;
	fuse_ino_t i;

	if (vmem_proc_ino(ino)) {
		vmem_proc_readdir(&fs_of(req)->proc, req, ino, size, off, fi);
		return;
	}
	if (ino != INO_ROOT) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	/* Entries: 0 ".", 1 "..", then one per file, then proc/ and sys/;
	 * off is the next index. */
	for (i = (fuse_ino_t)off; i < 4 + (INO_END - INO_MEM); i++) {
		struct stat st = { 0 };
		const char *name;
		size_t n;

		if (i < 2) {
			name = i == 0 ? "." : "..";
			st.st_ino = INO_ROOT;
			st.st_mode = S_IFDIR;
		} else if (i >= 2 + (INO_END - INO_MEM)) {
			name = i == 2 + (INO_END - INO_MEM) ? "proc" : "sys";
			st.st_ino = vmem_proc_root_ino(name);
			st.st_mode = S_IFDIR;
		} else {
			st.st_ino = INO_MEM + (i - 2);
			st.st_mode = S_IFREG;
			name = names[st.st_ino];
		}
		n = fuse_add_direntry(req, buf + used,
				      (size < sizeof(buf) ? size : sizeof(buf)) - used,
				      name, &st, (off_t)i + 1);
		if (n > (size < sizeof(buf) ? size : sizeof(buf)) - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

/* The vmcore's header is built once per open file: one consistent view. */
static void open_vmcore(fuse_req_t req, struct vmem_fs *fs,
			struct fuse_file_info *fi)
{
	struct vmem_vmcore *vc = malloc(sizeof(*vc));
	int rc;

	if (!vc) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = vmem_kernel_view_vmcore(&fs->kview, vc);
	if (rc < 0) {
		free(vc);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)vc;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		vmem_vmcore_free(vc);
		free(vc);
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmem_fs *fs = fs_of(req);
	struct gen_file *g;
	char *text;

	if (vmem_proc_ino(ino)) {
		vmem_proc_open(&fs->proc, req, ino, fi);
		return;
	}
	if (ino == INO_ROOT) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (ino >= INO_END) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->fh = 0;
	if (ino == INO_MEM || ino == INO_RAM || ino == INO_MAP)
		vmem_reader_check(&fs->reader);
	if (ino == INO_MEM || ino == INO_MAP)
		vmem_physmem_refresh(&fs->physmem);
	if (ino == INO_MEM || ino == INO_RAM) {
		fuse_reply_open(req, fi);
		return;
	}
	if (ino == INO_VMCORE) {
		open_vmcore(req, fs, fi);
		return;
	}
	if (ino == INO_STATS) {
		text = vmem_reader_stats_json(&fs->reader);
	} else if (ino == INO_KERNEL) {
		text = vmem_kernel_view_json(&fs->kview);
		if (!text && errno == EAGAIN) {
			fuse_reply_err(req, EAGAIN);	/* logged */
			return;
		}
	} else {
		struct vmem_gpa_map snap;

		text = NULL;
		if (vmem_physmem_snapshot(&fs->physmem, &snap) == 0)
			text = vmem_reader_map_json(&fs->reader, &snap);
		vmem_gpa_free(&snap);
	}
	if (!text) {
		fuse_reply_err(req, vmem_reader_dead(&fs->reader) ? EIO :
				    ENOMEM);
		return;
	}
	g = malloc(sizeof(*g) + strlen(text) + 2);
	if (!g) {
		free(text);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	g->len = strlen(text);
	memcpy(g->text, text, g->len);
	g->text[g->len++] = '\n';
	free(text);
	fi->fh = (uintptr_t)g;
	if (fuse_reply_open(req, fi) == -ENOENT)
		free(g);	/* the opener was interrupted */
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	if (vmem_proc_ino(ino)) {
		vmem_proc_release(&fs_of(req)->proc, req, fi);
		return;
	}
	if (ino == INO_VMCORE && fi->fh)
		vmem_vmcore_free((struct vmem_vmcore *)(uintptr_t)fi->fh);
	free((void *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/*
 * One buffer per FUSE worker thread, grown to the largest request seen and
 * freed when libfuse retires the thread.
 */
struct read_buf {
	size_t len;
	unsigned char data[];
};

static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;

static void make_buf_key(void)
{
	if (pthread_key_create(&buf_key, free) != 0)
		abort();
}

static unsigned char *thread_buf(size_t size)
{
	struct read_buf *b;

	pthread_once(&buf_once, make_buf_key);
	b = pthread_getspecific(buf_key);
	if (b && b->len >= size)
		return b->data;
	free(b);
	b = malloc(sizeof(*b) + size);
	if (b)
		b->len = size;
	pthread_setspecific(buf_key, b);
	return b ? b->data : NULL;
}

static void reply_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       const unsigned char *buf, ssize_t n)
{
	if (n < 0) {
		vmem_log_ratelimited(LOG_WARNING, "%s: read of %zu bytes at 0x%llx: %s",
				     names[ino], size, (unsigned long long)off,
				     strerror((int)-n));
		fuse_reply_err(req, (int)-n);
		return;
	}
	fuse_reply_buf(req, (const char *)buf, (size_t)n);
}

/* ---- reads that need a remote peer ---------------------------------- */

/*
 * A read waiting for one of its sub-host's threads, with the bytes
 * op_read had already read locally.
 */
struct remote_job {
	struct remote_job *next;
	fuse_req_t req;
	fuse_ino_t ino;
	const struct vmem_vmcore *vc;	/* vmcore: the open file's */
	size_t size;
	off_t off;
	uint64_t queued_ns;
	size_t done;			/* bytes in prefix[] */
	unsigned char prefix[];
};

/* The remote reads of one sub-host. */
struct vmem_fs_remote {
	const char *uri;
	pthread_mutex_t lock;		/* guards the fields below */
	unsigned int busy;		/* threads reading from it now */
	struct remote_job *head, **tail;	/* waiting for one */
};

/* Read [off + done, off + size) whatever it takes, and answer. */
static void read_rest(struct vmem_fs *fs, fuse_req_t req, fuse_ino_t ino,
		      const struct vmem_vmcore *vc, size_t size, off_t off,
		      unsigned char *buf, size_t done)
{
	ssize_t n;

	if (ino == INO_VMCORE)
		n = vmem_kernel_view_vmcore_read(&fs->kview, vc, buf + done,
						 size - done,
						 (uint64_t)off + done);
	else if (ino == INO_MEM)
		n = vmem_physmem_read(&fs->physmem, buf + done, size - done,
				      (uint64_t)off + done);
	else
		n = vmem_read(&fs->reader, buf + done, size - done,
			      (uint64_t)off + done);
	reply_read(req, ino, size, off, buf, n < 0 ? n : n + (ssize_t)done);
}

static void serve_queued(struct vmem_fs *fs, struct vmem_fs_remote *p,
			 struct remote_job *j)
{
	unsigned char *buf;

	if (fuse_req_interrupted(j->req)) {
		/* The reader gave up (a signal; killed) while it waited. */
		fuse_reply_err(j->req, EINTR);
		return;
	}
	if (fs->se && fuse_session_exited(fs->se)) {
		fuse_reply_err(j->req, EIO);	/* unmounting */
		return;
	}
	/* As in the reader: a whole timeout without progress is EIO. */
	if (vmem_now_ns() - j->queued_ns > fs->reader.vm->timeout_ms * VMEM_NS_PER_MS) {
		vmem_reader_count_error(&fs->reader);
		vmem_log_ratelimited(LOG_WARNING,
				     "read of %zu bytes at 0x%llx: all %d threads for sub-host %s were busy for the whole timeout",
				     j->size, (unsigned long long)j->off,
				     VMEM_FS_REMOTE_THREADS, p->uri);
		fuse_reply_err(j->req, EIO);
		return;
	}
	buf = thread_buf(j->size);
	if (!buf) {
		fuse_reply_err(j->req, ENOMEM);
		return;
	}
	memcpy(buf, j->prefix, j->done);
	read_rest(fs, j->req, j->ino, j->vc, j->size, j->off, buf, j->done);
}

/*
 * The gate of a read (vmem_read_gated()): this thread may wait on
 * sub-host @home if fewer than VMEM_FS_REMOTE_THREADS do (libfuse has
 * threads enough for that, see vmem_fs_max_threads()).
 */
static bool remote_take(void *arg, unsigned int home)
{
	struct vmem_fs_remote *p = &((struct vmem_fs *)arg)->remote[home];
	bool ok;

	pthread_mutex_lock(&p->lock);
	ok = p->busy < VMEM_FS_REMOTE_THREADS;
	if (ok)
		p->busy++;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

/*
 * Done with sub-host @home: serve the reads that queued for it meanwhile,
 * then give the place back.
 */
static void remote_give_back(struct vmem_fs *fs, unsigned int home)
{
	struct vmem_fs_remote *p = &fs->remote[home];
	struct remote_job *j;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		j = p->head;
		if (!j) {
			/* Under the same lock as the queueing: none is left
			 * behind with nobody to serve it. */
			p->busy--;
			pthread_mutex_unlock(&p->lock);
			return;
		}
		p->head = j->next;
		if (!p->head)
			p->tail = &p->head;
		pthread_mutex_unlock(&p->lock);
		serve_queued(fs, p, j);
		free(j);
	}
}

/*
 * The reader of a read that waits in @arg's queue gave up (a signal, or
 * it was killed): answer it now, not when its turn comes.  libfuse calls
 * this with the request's own lock held, never ours.
 */
static void remote_interrupted(fuse_req_t req, void *arg)
{
	struct vmem_fs_remote *p = arg;
	struct remote_job **jp, *j = NULL;

	pthread_mutex_lock(&p->lock);
	for (jp = &p->head; *jp; jp = &(*jp)->next) {
		if ((*jp)->req == req) {
			j = *jp;
			if (!j->next)
				p->tail = jp;
			*jp = j->next;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (j) {
		fuse_reply_err(req, EINTR);
		free(j);
	}
}

/*
 * The gate said no: the rest of the read, from gate->done on, waits in
 * the queue of sub-host gate->home and this thread returns at once -
 * unless a place came free meanwhile.
 */
static void remote_queue(struct vmem_fs *fs, fuse_req_t req, fuse_ino_t ino,
			 const struct vmem_vmcore *vc, size_t size, off_t off,
			 unsigned char *buf, const struct vmem_read_gate *gate)
{
	struct vmem_fs_remote *p = &fs->remote[gate->home];
	struct remote_job *j = NULL;

	/* Not under p->lock: libfuse may call it at once, and it takes it. */
	fuse_req_interrupt_func(req, remote_interrupted, p);
	pthread_mutex_lock(&p->lock);
	if (p->busy < VMEM_FS_REMOTE_THREADS) {
		p->busy++;
		pthread_mutex_unlock(&p->lock);
		read_rest(fs, req, ino, vc, size, off, buf, gate->done);
		remote_give_back(fs, gate->home);
		return;
	}
	j = malloc(sizeof(*j) + gate->done);
	if (j) {
		j->next = NULL;
		j->req = req;
		j->ino = ino;
		j->vc = vc;
		j->size = size;
		j->off = off;
		j->queued_ns = vmem_now_ns();
		j->done = gate->done;
		memcpy(j->prefix, buf, gate->done);
		*p->tail = j;
		p->tail = &j->next;
	}
	pthread_mutex_unlock(&p->lock);
	if (!j)
		fuse_reply_err(req, ENOMEM);
}

unsigned int vmem_fs_max_threads(const struct vmem_fs *fs)
{
	/* The view's waiters and holder, and the proc/ build's waiters. */
	return VMEM_FS_LOCAL_THREADS + VMEM_KV_WAITERS + 1 +
	       VMEM_PROC_WAITERS +
	       VMEM_FS_REMOTE_THREADS * (unsigned int)fs->reader.vm->n_subhosts;
}

int vmem_fs_remote_start(struct vmem_fs *fs, char *err, size_t errlen)
{
	size_t i, n = fs->reader.vm->n_subhosts;

	fs->remote = calloc(n ? n : 1, sizeof(*fs->remote));
	if (!fs->remote) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct vmem_fs_remote *p = &fs->remote[i];

		p->uri = fs->reader.vm->subhosts[i].uri;
		pthread_mutex_init(&p->lock, NULL);
		p->tail = &p->head;
	}
	return 0;
}

void vmem_fs_remote_stop(struct vmem_fs *fs)
{
	size_t i, n = fs->reader.vm->n_subhosts;

	if (!fs->remote)
		return;
	/* libfuse joined its threads, which leave no queue behind. */
	for (i = 0; i < n; i++)
		pthread_mutex_destroy(&fs->remote[i].lock);
	free(fs->remote);
	fs->remote = NULL;
}

/* ---- read ------------------------------------------------------------ */

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct vmem_fs *fs = fs_of(req);
	struct vmem_read_gate gate = { .may_wait = remote_take, .arg = fs };
	const struct vmem_vmcore *vc;
	unsigned char *buf;
	ssize_t n;

	if (vmem_proc_ino(ino)) {
		vmem_proc_read(&fs->proc, req, size, off, fi);
		return;
	}
	if (ino != INO_MEM && ino != INO_RAM && ino != INO_VMCORE) {
		const struct gen_file *g = (const struct gen_file *)(uintptr_t)fi->fh;

		if (!g || off < 0 || (size_t)off >= g->len) {
			fuse_reply_buf(req, NULL, 0);
			return;
		}
		if (size > g->len - (size_t)off)
			size = g->len - (size_t)off;
		fuse_reply_buf(req, g->text + off, size);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/*
	 * read(2) and its kin come here by the kernel's direct-I/O path,
	 * which always names the reader's file table as lock owner
	 * (FUSE_READ_LOCKOWNER).  A request without one fills the page
	 * cache: a fault on a MAP_PRIVATE mapping (the kernel refuses
	 * MAP_SHARED of a direct_io file with ENODEV itself), or
	 * sendfile/splice, which read through the page cache even here.
	 * Guest memory must not be kept there, stale, after the read: EIO,
	 * so a touch of the mapping gets SIGBUS and nothing is cached.
	 */
	/*
	 * vmcore is exempt: makedumpfile maps core files (and would die of
	 * SIGBUS), and the kernel drops a direct_io file's cached pages at
	 * every mmap, so a mapping never sees an older mapping's pages.
	 */
	if (!fi->lock_owner && !fs->allow_mmap && ino != INO_VMCORE) {
		vmem_log_ratelimited(LOG_WARNING, "%s: refused a page-cache read "
				     "(mmap, sendfile or splice) at 0x%llx: use "
				     "read(2), or mount with -o allow_mmap",
				     names[ino], (unsigned long long)off);
		fuse_reply_err(req, EIO);
		return;
	}
	/* vmcore: the header from the open file, the data as `mem`. */
	vc = ino == INO_VMCORE ? (const void *)(uintptr_t)fi->fh : NULL;
	if (ino == INO_VMCORE && !vc) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	buf = thread_buf(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Waits on a sub-host only where remote_take() lets it. */
	if (ino == INO_VMCORE)
		n = vmem_kernel_view_vmcore_read_gated(&fs->kview, vc, buf, size,
						       (uint64_t)off, &gate);
	else if (ino == INO_MEM)
		n = vmem_physmem_read_gated(&fs->physmem, buf, size,
					    (uint64_t)off, &gate);
	else
		n = vmem_read_gated(&fs->reader, buf, size, (uint64_t)off,
				    &gate);
	if (gate.stopped) {
		remote_queue(fs, req, ino, vc, size, off, buf, &gate);
		return;
	}
	reply_read(req, ino, size, off, buf, n);
	if (gate.granted)
		remote_give_back(fs, gate.home);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	if (vmem_proc_ino(ino)) {
		vmem_proc_opendir(&fs_of(req)->proc, req, ino, fi);
		return;
	}
	if (ino != INO_ROOT) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	if (vmem_proc_ino(ino)) {
		vmem_proc_releasedir(&fs_of(req)->proc, req, ino, fi);
		return;
	}
	fuse_reply_err(req, 0);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	if (vmem_proc_ino(ino)) {
		vmem_proc_readlink(&fs_of(req)->proc, req, ino);
		return;
	}
	fuse_reply_err(req, EINVAL);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = { 0 };

	(void)ino;
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops vmem_fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.opendir = op_opendir,
	.releasedir = op_releasedir,
	.readlink = op_readlink,
	.open = op_open,
	.release = op_release,
	.read = op_read,
	.statfs = op_statfs,
};
