// SPDX-License-Identifier: MIT
/* The mount's proc/ tree.  See fs_proc.h. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../introspect/kernel.h"
#include "../procfs/netmod.h"
#include "../procfs/snapshot.h"
#include "../procfs/views.h"
#include "fs_proc.h"
#include "log.h"

/*
 * Inodes: VMEM_PROC_INO_BASE + v.  v < 256: the top-level entries below;
 * v >= 256: (pid << 8) | one of the pid entries.
 */
enum {
	T_DIR, T_STAT, T_UPTIME, T_MEMINFO, T_CPUINFO, T_LOADAVG, T_SELF,
	T_TTY, T_SYS, T_NET, T_MODULES, T_TTY_DRIVERS, T_SYS_KERNEL,
	T_HOSTNAME, T_OSRELEASE, T_NET_TCP, T_NET_TCP6, T_NET_UDP, T_NET_UDP6,
	T_SYSROOT, T_SYSMODULE, T_END
};
/* Name, parent and type of each top-level entry, in listing order. */
static const struct {
	const char *name;
	int parent;
	mode_t mode;
} top[T_END] = {
	[T_DIR] = { "proc", -1, S_IFDIR | 0555 },
	[T_STAT] = { "stat", T_DIR, S_IFREG | 0444 },
	[T_UPTIME] = { "uptime", T_DIR, S_IFREG | 0444 },
	[T_MEMINFO] = { "meminfo", T_DIR, S_IFREG | 0444 },
	[T_CPUINFO] = { "cpuinfo", T_DIR, S_IFREG | 0444 },
	[T_LOADAVG] = { "loadavg", T_DIR, S_IFREG | 0444 },
	[T_SELF] = { "self", T_DIR, S_IFLNK | 0777 },
	[T_TTY] = { "tty", T_DIR, S_IFDIR | 0555 },
	[T_SYS] = { "sys", T_DIR, S_IFDIR | 0555 },
	[T_TTY_DRIVERS] = { "drivers", T_TTY, S_IFREG | 0444 },
	[T_SYS_KERNEL] = { "kernel", T_SYS, S_IFDIR | 0555 },
	[T_HOSTNAME] = { "hostname", T_SYS_KERNEL, S_IFREG | 0444 },
	[T_OSRELEASE] = { "osrelease", T_SYS_KERNEL, S_IFREG | 0444 },
	[T_NET] = { "net", T_DIR, S_IFDIR | 0555 },
	[T_MODULES] = { "modules", T_DIR, S_IFREG | 0444 },
	[T_NET_TCP] = { "tcp", T_NET, S_IFREG | 0444 },
	[T_NET_TCP6] = { "tcp6", T_NET, S_IFREG | 0444 },
	[T_NET_UDP] = { "udp", T_NET, S_IFREG | 0444 },
	[T_NET_UDP6] = { "udp6", T_NET, S_IFREG | 0444 },
	/* the mount's sys/module/, what lsmod reads */
	[T_SYSROOT] = { "sys", -1, S_IFDIR | 0555 },
	[T_SYSMODULE] = { "module", T_SYSROOT, S_IFDIR | 0555 },
};

enum { P_DIR, P_STAT, P_STATUS, P_CMDLINE, P_ENVIRON, P_FD, P_TASK,
       P_STATM, P_COMM, P_END };
static const char *const pid_names[P_END] = {
	[P_STAT] = "stat", [P_STATUS] = "status", [P_CMDLINE] = "cmdline",
	[P_ENVIRON] = "environ", [P_FD] = "fd", [P_TASK] = "task",
	[P_STATM] = "statm", [P_COMM] = "comm",
};
/* proc/PID/task/TID/: v = TASK_V + (pid << 26) + (tid << 4) + one of
 * these (stat, status and cmdline, as in the process directory) */
#define TASK_V (1ULL << 50)
#define TASK_FILES 4			/* P_DIR .. P_CMDLINE */
#define TASK_INO(pid, tid, f) INO(TASK_V + ((uint64_t)(pid) << 26) + \
				  ((uint64_t)(tid) << 4) + (f))
#define TASK_PID(v) ((int)(((v) - TASK_V) >> 26))
#define TASK_TID(v) ((int)((((v) - TASK_V) >> 4) & 0x3fffff))
#define TASK_F(v) ((int)(((v) - TASK_V) & 0xf))

/*
 * sys/module/NAME/ entries: v = MOD_V + (module index << 8) + M_*; a
 * holder j of holders/ is M_HOLDER + j.  The index is the module's in
 * the snapshot the lookup saw (the list rarely changes between two).
 * proc/PID/fd/N: v = FD_V + (pid << 20) + N (N < VMI_SOCK_FDS_MAX).
 */
#define MOD_V (1ULL << 32)
#define FD_V (1ULL << 40)
enum { M_DIR, M_REFCNT, M_CORESIZE, M_INITSIZE, M_INITSTATE, M_TAINT,
       M_HOLDERS, M_END, M_HOLDER = 16 };
static const char *const mod_names[M_END] = {
	[M_REFCNT] = "refcnt", [M_CORESIZE] = "coresize",
	[M_INITSIZE] = "initsize", [M_INITSTATE] = "initstate",
	[M_TAINT] = "taint", [M_HOLDERS] = "holders",
};
#define M_HOLDERS_SHOWN (256 - M_HOLDER)
#define MOD_INO(idx, m) INO(MOD_V + ((uint64_t)(idx) << 8) + (m))
#define FD_INO(pid, fd) INO(FD_V + ((uint64_t)(pid) << 20) + (fd))

#define INO(v) ((fuse_ino_t)(VMEM_PROC_INO_BASE + (v)))
#define PID_INO(pid, f) INO(((uint64_t)(pid) << 8) | (f))

struct vmem_proc_snap {
	struct vp_snapshot *s;
	int refs;
};

/* What an open file or directory holds. */
struct proc_fh {
	struct vmem_proc_snap *sn;	/* directories */
	size_t len;			/* files */
	char text[];
};

static void snap_put(struct vmem_proc_snap *sn)
{
	if (sn && __atomic_sub_fetch(&sn->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		vp_snapshot_free(sn->s);
		free(sn);
	}
}

void vmem_proc_init(struct vmem_proc *pr, struct vmem_kernel_view *kv,
		    struct vmem_proc_stats *st, uint64_t refresh_ms,
		    uint64_t timeout_ms, uid_t uid, gid_t gid)
{
	memset(pr, 0, sizeof(*pr));
	pr->kv = kv;
	pr->st = st;
	pr->refresh_ms = refresh_ms;
	pr->timeout_ms = timeout_ms;
	pr->uid = uid;
	pr->gid = gid;
	clock_gettime(CLOCK_REALTIME, &pr->mtime);
	pthread_mutex_init(&pr->lock, NULL);
	pthread_mutex_init(&pr->build_lock, NULL);
}

void vmem_proc_fini(struct vmem_proc *pr)
{
	if (!pr->kv)
		return;
	snap_put(pr->cur);
	pthread_mutex_destroy(&pr->lock);
	pthread_mutex_destroy(&pr->build_lock);
	memset(pr, 0, sizeof(*pr));
}

/*
 * What the new build @s cut, in the log: only messages the previous
 * build @old did not have, so that a guest that stays corrupt does not
 * fill the log once per proc-refresh.
 */
static void log_cuts(const struct vp_snapshot *s, const struct vp_snapshot *old)
{
	unsigned int i, j;

	for (i = 0; i < s->nlog; i++) {
		bool seen = false;

		for (j = 0; old && j < old->nlog && !seen; j++)
			seen = strcmp(s->log[i], old->log[j]) == 0;
		if (!seen)
			vmem_log(LOG_WARNING, "proc: %s", s->log[i]);
	}
	if (s->cut > s->nlog && (!old || old->cut <= old->nlog))
		vmem_log(LOG_WARNING, "proc: %u more cuts in this build",
			 s->cut - s->nlog);
}

struct build_arg {
	struct vmem_proc *pr;
	struct vp_snapshot *s;
	char err[256];
};

static int build_cb(void *arg, const struct vmi_kernel *k,
		    const struct vmi_phys *p)
{
	struct build_arg *a = arg;
	struct vp_build_opts o = {
		.timeout_ms = a->pr->timeout_ms,
	};

	return vp_snapshot_build(k, p, &o, &a->s, a->err, sizeof(a->err));
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void count_build(struct vmem_proc *pr, const struct vp_snapshot *s)
{
	struct vmem_proc_stats *st = pr->st;
	uint64_t n = st->builds;

	st->kept_ms[n % VMEM_PROC_BUILDS_KEPT] = s->build_ms;
	st->last_ms = s->build_ms;
	st->last_local = s->bytes_local;
	st->last_remote = s->bytes_remote;
	if (s->cut)
		st->cut++;
	__atomic_store_n(&st->builds, n + 1, __ATOMIC_RELEASE);
}

static struct vmem_proc_snap *take_cur(struct vmem_proc *pr,
				       uint64_t newer_than, bool any)
{
	struct vmem_proc_snap *sn = NULL;

	pthread_mutex_lock(&pr->lock);
	if (pr->cur && (any || pr->cur->s->built_at_ms >= newer_than)) {
		sn = pr->cur;
		__atomic_add_fetch(&sn->refs, 1, __ATOMIC_ACQ_REL);
	}
	pthread_mutex_unlock(&pr->lock);
	return sn;
}

/*
 * pr->build_lock, waiting for a build in progress (which may wait on a
 * silent sub-host) only as one of VMEM_PROC_WAITERS FUSE threads; false
 * (logged) when those are all taken.
 */
static bool build_lock_bounded(struct vmem_proc *pr)
{
	static unsigned int waiting;	/* one proc/ per process */

	if (pthread_mutex_trylock(&pr->build_lock) == 0)
		return true;
	if (__atomic_add_fetch(&waiting, 1, __ATOMIC_ACQ_REL) >
	    VMEM_PROC_WAITERS) {
		__atomic_sub_fetch(&waiting, 1, __ATOMIC_ACQ_REL);
		vmem_log_ratelimited(LOG_WARNING, "proc: %d callers already "
				     "wait for a snapshot build (reading guest "
				     "memory, maybe a silent sub-host): the "
				     "last snapshot, or EAGAIN",
				     VMEM_PROC_WAITERS);
		return false;
	}
	pthread_mutex_lock(&pr->build_lock);
	__atomic_sub_fetch(&waiting, 1, __ATOMIC_ACQ_REL);
	return true;
}

/*
 * The snapshot to serve: the current one while younger than proc-refresh
 * (with 0, only until the next opendir of proc/: @fresh), else a new one.
 * Concurrent callers share one build.  NULL when no kernel is known and
 * nothing was built before; then errno is EAGAIN if a build was in
 * progress with VMEM_PROC_WAITERS callers waiting for it already, or the
 * kernel view was as busy.
 */
static struct vmem_proc_snap *get_snap(struct vmem_proc *pr, bool fresh)
{
	uint64_t now = mono_ms(), cutoff;
	uint64_t started = __atomic_load_n(&pr->builds_started,
					   __ATOMIC_ACQUIRE);
	struct vmem_proc_snap *sn;
	struct build_arg a = { .pr = pr };
	int rc;

	/*
	 * With proc-refresh 0 an opendir needs a build that started after
	 * it arrived (counted, not timed: builds are faster than the clock's
	 * milliseconds); anything else takes the current snapshot.
	 */
	if (pr->refresh_ms)
		cutoff = now >= pr->refresh_ms ? now - pr->refresh_ms : 0;
	else
		cutoff = 0;
	if (!fresh || pr->refresh_ms) {
		sn = take_cur(pr, cutoff, false);
		if (sn)
			return sn;
	}
	if (!build_lock_bounded(pr)) {
		sn = take_cur(pr, 0, true);	/* the old one, if any */
		if (!sn)
			errno = EAGAIN;
		return sn;
	}
	/* built while we waited? */
	sn = fresh && !pr->refresh_ms ?
	     (pr->builds_started > started ? take_cur(pr, 0, false) : NULL) :
	     take_cur(pr, cutoff, false);
	if (sn) {
		pthread_mutex_unlock(&pr->build_lock);
		return sn;
	}
	__atomic_add_fetch(&pr->builds_started, 1, __ATOMIC_RELEASE);
	rc = vmem_kernel_view_with(pr->kv, build_cb, &a, a.err, sizeof(a.err));
	if (rc < 0) {
		vmem_log_ratelimited(LOG_WARNING, "proc: no snapshot: %s",
				     a.err);
		pthread_mutex_unlock(&pr->build_lock);
		sn = take_cur(pr, 0, true);	/* the old one, if any */
		if (!sn)
			errno = rc == -EBUSY ? EAGAIN : 0;
		return sn;
	}
	sn = calloc(1, sizeof(*sn));
	if (!sn) {
		vp_snapshot_free(a.s);
		pthread_mutex_unlock(&pr->build_lock);
		return take_cur(pr, 0, true);
	}
	sn->s = a.s;
	sn->refs = 2;			/* pr->cur and the caller */
	count_build(pr, a.s);
	pthread_mutex_lock(&pr->lock);
	log_cuts(a.s, pr->cur ? pr->cur->s : NULL);
	snap_put(pr->cur);
	pr->cur = sn;
	pthread_mutex_unlock(&pr->lock);
	pthread_mutex_unlock(&pr->build_lock);
	return sn;
}

/* ---- the caller ---- */

/* The tgid of host thread @tid, and its comm; -1 when unknown. */
static int host_tgid(pid_t tid, char *comm, size_t commlen)
{
	char path[64], line[256];
	int tgid = -1;
	FILE *f;

	if (comm && commlen)
		snprintf(comm, commlen, "?");
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (comm && strncmp(line, "Name:\t", 6) == 0) {
			size_t n = strcspn(line + 6, "\n");

			if (n >= commlen)
				n = commlen - 1;
			memcpy(comm, line + 6, n);
			comm[n] = '\0';
		} else if (sscanf(line, "Tgid:\t%d", &tgid) == 1) {
			break;
		}
	}
	fclose(f);
	return tgid;
}

static int caller_tgid(fuse_req_t req)
{
	return host_tgid(fuse_req_ctx(req)->pid, NULL, 0);
}

/* ---- attributes ---- */

/* The socket behind fd @fd of @t, or NULL. */
static const struct vmi_sock_fd *task_fd(const struct vp_task *t,
					 unsigned int fd)
{
	size_t i;

	for (i = 0; i < t->nfds; i++)
		if (t->fds[i].fd == fd)
			return &t->fds[i];
	return NULL;
}

/* Thread @tid of process @pid in @s, or NULL. */
static const struct vp_task *thread_of(const struct vp_snapshot *s, int pid,
				       int tid, const struct vp_task **lead)
{
	const struct vp_task *t = s ? vp_snapshot_find(s, pid) : NULL;
	size_t i;

	if (lead)
		*lead = t;
	for (i = 0; t && t->thr && i < t->ntids; i++)
		if (t->thr[i].pid == tid)
			return &t->thr[i];
	return NULL;
}

/* Module @idx of @s (NULL when none, or still unformed). */
static const struct vmi_module *mod_at(const struct vp_snapshot *s,
				       uint64_t idx)
{
	if (!s || idx >= s->mods.n ||
	    s->mods.v[idx].state == VMI_MODULE_UNFORMED)
		return NULL;
	return &s->mods.v[idx];
}

static void attr_of(struct vmem_proc *pr, fuse_ino_t ino, mode_t mode,
		    uid_t uid, gid_t gid, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = uid;
	st->st_gid = gid;
	st->st_blksize = 4096;
	st->st_atim = st->st_mtim = st->st_ctim = pr->mtime;
}

/*
 * The attributes of @ino under snapshot @s (may be NULL) for a request of
 * @req.  0, or -ENOENT.
 */
static int stat_ino(struct vmem_proc *pr, const struct vp_snapshot *s,
		    fuse_req_t req, fuse_ino_t ino, struct stat *st)
{
	uint64_t v = ino - VMEM_PROC_INO_BASE;
	const struct vp_task *t;
	int pid, f;

	if (v < 256) {
		if (v >= T_END)
			return -ENOENT;
		attr_of(pr, ino, top[v].mode, pr->uid, pr->gid, st);
		return 0;
	}
	if (v >= TASK_V) {
		t = thread_of(s, TASK_PID(v), TASK_TID(v), NULL);
		if (!t || TASK_F(v) >= TASK_FILES)
			return -ENOENT;
		attr_of(pr, ino, TASK_F(v) == P_DIR ? S_IFDIR | 0555 :
			S_IFREG | 0444, t->uid[1], t->gid[1], st);
		return 0;
	}
	if (v >= FD_V) {
		unsigned int fd = (unsigned int)((v - FD_V) & 0xfffff);

		t = s ? vp_snapshot_find(s, (int)((v - FD_V) >> 20)) : NULL;
		if (!t || !task_fd(t, fd))
			return -ENOENT;
		attr_of(pr, ino, S_IFLNK | 0700, t->uid[1], t->gid[1], st);
		return 0;
	}
	if (v >= MOD_V) {
		const struct vmi_module *m = mod_at(s, (v - MOD_V) >> 8);
		unsigned int mf = (unsigned int)((v - MOD_V) & 0xff);

		if (!m || (mf >= M_END && mf < M_HOLDER) ||
		    (mf >= M_HOLDER && mf - M_HOLDER >= m->nholders))
			return -ENOENT;
		attr_of(pr, ino, mf == M_DIR || mf == M_HOLDERS ?
			S_IFDIR | 0555 : mf >= M_HOLDER ? S_IFLNK | 0777 :
			S_IFREG | 0444, pr->uid, pr->gid, st);
		return 0;
	}
	pid = (int)(v >> 8);
	f = (int)(v & 0xff);
	if (f >= P_END)
		return -ENOENT;
	t = s ? vp_snapshot_find(s, pid) : NULL;
	if (!t) {
		/* the caller's own entry: a directory with a stat, and an
		 * empty task/ (procps reads threads only when
		 * /proc/self/task exists) */
		if ((f != P_DIR && f != P_STAT && f != P_TASK) ||
		    caller_tgid(req) != pid)
			return -ENOENT;
		attr_of(pr, ino, f == P_STAT ? S_IFREG | 0444 : S_IFDIR | 0555,
			pr->uid, pr->gid, st);
		return 0;
	}
	attr_of(pr, ino, f == P_DIR || f == P_TASK ? S_IFDIR | 0555 :
		f == P_FD ? S_IFDIR | 0500 :
		f == P_ENVIRON ? S_IFREG | 0400 : S_IFREG | 0444,
		t->uid[1], t->gid[1], st);
	return 0;
}

static void reply_entry(struct vmem_proc *pr, fuse_req_t req,
			const struct vp_snapshot *s, fuse_ino_t ino)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	if (stat_ino(pr, s, req, ino, &e.attr) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.ino = ino;
	/* Processes come and go with each snapshot: no caching. */
	e.attr_timeout = 0;
	e.entry_timeout = 0;
	fuse_reply_entry(req, &e);
}

fuse_ino_t vmem_proc_root_ino(const char *name)
{
	return strcmp(name, "sys") == 0 ? INO(T_SYSROOT) : INO(T_DIR);
}

void vmem_proc_lookup_root(struct vmem_proc *pr, fuse_req_t req,
			   const char *name)
{
	reply_entry(pr, req, NULL, vmem_proc_root_ino(name));
}

static bool all_digits(const char *s, int *out)
{
	long v = 0;

	if (!*s || *s == '0' || strlen(s) > 7)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (*s - '0');
	}
	*out = (int)v;
	return true;
}

void vmem_proc_lookup(struct vmem_proc *pr, fuse_req_t req,
		      fuse_ino_t parent, const char *name)
{
	uint64_t v = parent - VMEM_PROC_INO_BASE;
	struct vmem_proc_snap *sn;
	int i, pid;

	if (v < T_END) {
		for (i = 1; i < T_END; i++)
			if (top[i].parent == (int)v &&
			    strcmp(name, top[i].name) == 0) {
				reply_entry(pr, req, NULL, INO(i));
				return;
			}
		if (v == T_SYSMODULE) {
			const struct vmi_module *m;

			sn = get_snap(pr, false);
			m = sn ? procfs_module_find(&sn->s->mods, name) : NULL;
			if (m)
				reply_entry(pr, req, sn->s, MOD_INO(m -
							sn->s->mods.v, M_DIR));
			else
				fuse_reply_err(req, ENOENT);
			snap_put(sn);
			return;
		}
		if (v != T_DIR || !all_digits(name, &pid)) {
			fuse_reply_err(req, S_ISDIR(top[v].mode) ? ENOENT :
					    ENOTDIR);
			return;
		}
		sn = get_snap(pr, false);
		reply_entry(pr, req, sn ? sn->s : NULL, PID_INO(pid, P_DIR));
		snap_put(sn);
		return;
	}
	if (v >= MOD_V && v < FD_V) {
		uint64_t idx = (v - MOD_V) >> 8;
		unsigned int mf = (unsigned int)((v - MOD_V) & 0xff);
		const struct vmi_module *m;
		size_t j;

		sn = get_snap(pr, false);
		m = sn ? mod_at(sn->s, idx) : NULL;
		if (m && mf == M_DIR) {
			for (i = 1; i < M_END; i++)
				if (strcmp(name, mod_names[i]) == 0)
					break;
			if (i < M_END) {
				reply_entry(pr, req, sn->s, MOD_INO(idx, i));
				snap_put(sn);
				return;
			}
		} else if (m && mf == M_HOLDERS) {
			for (j = 0; j < m->nholders && j < M_HOLDERS_SHOWN; j++)
				if (strcmp(name, m->holders[j]) == 0) {
					reply_entry(pr, req, sn->s,
						    MOD_INO(idx, M_HOLDER + j));
					snap_put(sn);
					return;
				}
		}
		fuse_reply_err(req, m && (mf == M_DIR || mf == M_HOLDERS) ?
				    ENOENT : ENOTDIR);
		snap_put(sn);
		return;
	}
	if (v >= TASK_V) {
		int tpid = TASK_PID(v), tid = TASK_TID(v);

		if (TASK_F(v) != P_DIR) {
			fuse_reply_err(req, ENOTDIR);
			return;
		}
		for (i = 1; i < TASK_FILES; i++)
			if (strcmp(name, pid_names[i]) == 0)
				break;
		if (i == TASK_FILES) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		sn = get_snap(pr, false);
		reply_entry(pr, req, sn ? sn->s : NULL, TASK_INO(tpid, tid, i));
		snap_put(sn);
		return;
	}
	if (v >= 256 && v < MOD_V && (v & 0xff) == P_TASK) {
		if (!all_digits(name, &i)) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		sn = get_snap(pr, false);
		reply_entry(pr, req, sn ? sn->s : NULL,
			    TASK_INO(v >> 8, i, P_DIR));
		snap_put(sn);
		return;
	}
	if (v >= 256 && v < MOD_V && (v & 0xff) == P_FD) {
		if (!all_digits(name, &i) && strcmp(name, "0") != 0) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		if (strcmp(name, "0") == 0)
			i = 0;
		sn = get_snap(pr, false);
		if (i < (int)VMI_SOCK_FDS_MAX)
			reply_entry(pr, req, sn ? sn->s : NULL,
				    FD_INO(v >> 8, i));
		else
			fuse_reply_err(req, ENOENT);
		snap_put(sn);
		return;
	}
	if (v < 256 || v >= MOD_V || (v & 0xff) != P_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	for (i = 1; i < P_END; i++)
		if (strcmp(name, pid_names[i]) == 0)
			break;
	if (i == P_END) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	sn = get_snap(pr, false);
	reply_entry(pr, req, sn ? sn->s : NULL, parent | (fuse_ino_t)i);
	snap_put(sn);
}

void vmem_proc_getattr(struct vmem_proc *pr, fuse_req_t req, fuse_ino_t ino)
{
	struct vmem_proc_snap *sn = NULL;
	struct stat st;
	int rc;

	if (ino - VMEM_PROC_INO_BASE >= 256)
		sn = get_snap(pr, false);
	rc = stat_ino(pr, sn ? sn->s : NULL, req, ino, &st);
	snap_put(sn);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, 0);
}

void vmem_proc_readlink(struct vmem_proc *pr, fuse_req_t req, fuse_ino_t ino)
{
	char link[32];
	int tgid;

	uint64_t v = ino - VMEM_PROC_INO_BASE;

	if (v >= MOD_V && v < TASK_V) {
		struct vmem_proc_snap *sn = get_snap(pr, false);
		const struct vp_snapshot *s = sn ? sn->s : NULL;
		char target[VMI_MODULE_NAME + 16];
		const struct vp_task *t;
		const struct vmi_sock_fd *sf;
		const struct vmi_module *m;
		unsigned int mf;

		target[0] = '\0';
		if (v >= FD_V) {
			t = s ? vp_snapshot_find(s, (int)((v - FD_V) >> 20)) :
				NULL;
			sf = t ? task_fd(t, (unsigned int)((v - FD_V) &
							   0xfffff)) : NULL;
			if (sf)
				snprintf(target, sizeof(target),
					 "socket:[%llu]",
					 (unsigned long long)sf->inode);
		} else {
			m = mod_at(s, (v - MOD_V) >> 8);
			mf = (unsigned int)((v - MOD_V) & 0xff);
			if (m && mf >= M_HOLDER && mf - M_HOLDER < m->nholders)
				snprintf(target, sizeof(target), "../../%s",
					 m->holders[mf - M_HOLDER]);
		}
		snap_put(sn);
		if (target[0])
			fuse_reply_readlink(req, target);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	if (ino != INO(T_SELF)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	tgid = caller_tgid(req);
	if (tgid <= 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	snprintf(link, sizeof(link), "%d", tgid);
	fuse_reply_readlink(req, link);
}

/* ---- directories ---- */

void vmem_proc_opendir(struct vmem_proc *pr, fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	uint64_t v = ino - VMEM_PROC_INO_BASE;
	struct proc_fh *h;

	if (!((v < T_END && S_ISDIR(top[v].mode)) ||
	      (v >= 256 && v < MOD_V && ((v & 0xff) == P_DIR ||
					  (v & 0xff) == P_FD ||
					  (v & 0xff) == P_TASK)) ||
	      (v >= TASK_V && TASK_F(v) == P_DIR) ||
	      (v >= MOD_V && v < FD_V && ((v - MOD_V) & 0xff) == M_DIR) ||
	      (v >= MOD_V && v < FD_V && ((v - MOD_V) & 0xff) == M_HOLDERS))) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* The listing of proc/ is the snapshot this open saw. */
	errno = 0;
	h->sn = get_snap(pr, v == T_DIR || v == T_SYSMODULE);
	if (!h->sn && errno == EAGAIN) {
		/* Too many wait for a build already (logged). */
		free(h);
		fuse_reply_err(req, EAGAIN);
		return;
	}
	fi->fh = (uintptr_t)h;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		snap_put(h->sn);
		free(h);
	}
}

void vmem_proc_releasedir(struct vmem_proc *pr, fuse_req_t req,
			  fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct proc_fh *h = (struct proc_fh *)(uintptr_t)fi->fh;

	(void)pr;
	(void)ino;
	if (h) {
		snap_put(h->sn);
		free(h);
	}
	fuse_reply_err(req, 0);
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
};

/* Add one entry; false when the reply buffer is full. */
static bool add(struct dirbuf *d, const char *name, fuse_ino_t ino,
		mode_t mode, off_t next)
{
	struct stat st = { .st_ino = ino, .st_mode = mode };
	size_t n = fuse_add_direntry(d->req, d->buf + d->used,
				     d->size - d->used, name, &st, next);

	if (n > d->size - d->used)
		return false;
	d->used += n;
	return true;
}

void vmem_proc_readdir(struct vmem_proc *pr, fuse_req_t req, fuse_ino_t ino,
		       size_t size, off_t off, struct fuse_file_info *fi)
{
	struct proc_fh *h = (struct proc_fh *)(uintptr_t)fi->fh;
	const struct vp_snapshot *s = h && h->sn ? h->sn->s : NULL;
	uint64_t v = ino - VMEM_PROC_INO_BASE;
	struct dirbuf d = { .req = req, .size = size > 65536 ? 65536 : size };
	off_t i;
	char name[16];

	(void)pr;
	d.buf = malloc(d.size);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (i = off; ; i++) {
		const char *nm = NULL;
		fuse_ino_t eino = ino;
		mode_t mode = S_IFDIR;

		if (i == 0) {
			nm = ".";
		} else if (i == 1) {
			nm = "..";
		} else if (v < T_END) {
			/* the children of v in table order, then (proc/
			 * only) the processes */
			off_t k = i - 2;
			int t;

			for (t = 1; t < T_END; t++)
				if (top[t].parent == (int)v && k-- == 0)
					break;
			if (t < T_END) {
				nm = top[t].name;
				eino = INO(t);
				mode = top[t].mode & S_IFMT;
			} else {
				size_t n = 0, p;

				for (t = 1; t < T_END; t++)
					n += top[t].parent == (int)v;
				p = (size_t)(i - 2) - n;
				if (v == T_SYSMODULE && s) {
					/* modules, skipping unformed ones */
					while (p < s->mods.n && !mod_at(s, p))
						p++;
					if (p >= s->mods.n)
						break;
					nm = s->mods.v[p].name;
					eino = MOD_INO(p, M_DIR);
				} else {
					if (v != T_DIR || !s || p >= s->ntasks)
						break;
					snprintf(name, sizeof(name), "%d",
						 s->tasks[p].pid);
					nm = name;
					eino = PID_INO(s->tasks[p].pid, P_DIR);
				}
			}
		} else if (v >= TASK_V) {
			if (i - 1 >= TASK_FILES)
				break;
			nm = pid_names[i - 1];
			eino = ino + (fuse_ino_t)(i - 1);
			mode = S_IFREG;
		} else if (v < MOD_V && (v & 0xff) == P_TASK) {
			const struct vp_task *t = s ?
				vp_snapshot_find(s, (int)(v >> 8)) : NULL;
			size_t k = (size_t)(i - 2);

			if (!t || !t->thr || k >= t->ntids)
				break;
			snprintf(name, sizeof(name), "%d", t->thr[k].pid);
			nm = name;
			eino = TASK_INO(v >> 8, t->thr[k].pid, P_DIR);
		} else if (v >= MOD_V) {
			uint64_t idx = (v - MOD_V) >> 8;
			const struct vmi_module *m = mod_at(s, idx);
			size_t k = (size_t)(i - 2);

			if (!m)
				break;
			if (((v - MOD_V) & 0xff) == M_DIR) {
				if (k + 1 >= M_END)
					break;
				nm = mod_names[k + 1];
				eino = MOD_INO(idx, k + 1);
				mode = k + 1 == M_HOLDERS ? S_IFDIR : S_IFREG;
			} else {
				if (k >= m->nholders || k >= M_HOLDERS_SHOWN)
					break;
				nm = m->holders[k];
				eino = MOD_INO(idx, M_HOLDER + k);
				mode = S_IFLNK;
			}
		} else if ((v & 0xff) == P_FD) {
			const struct vp_task *t = s ?
				vp_snapshot_find(s, (int)(v >> 8)) : NULL;
			size_t k = (size_t)(i - 2);

			if (!t || k >= t->nfds)
				break;
			snprintf(name, sizeof(name), "%u", t->fds[k].fd);
			nm = name;
			eino = FD_INO(v >> 8, t->fds[k].fd);
			mode = S_IFLNK;
		} else {
			if (i - 1 >= P_END)
				break;
			nm = pid_names[i - 1];
			eino = ino | (fuse_ino_t)(i - 1);
			mode = i - 1 == P_FD || i - 1 == P_TASK ? S_IFDIR :
							       S_IFREG;
		}
		if (!add(&d, nm, eino, mode, i + 1))
			break;
	}
	fuse_reply_buf(req, d.buf, d.used);
	free(d.buf);
}

/* ---- files ---- */

static char *line_of(const char *str, size_t *len)
{
	char *t = NULL;
	int n = asprintf(&t, "%s\n", str);

	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return t;
}

static char *make_text(struct vmem_proc *pr, fuse_req_t req, fuse_ino_t ino,
		       size_t *len, int *err)
{
	uint64_t v = ino - VMEM_PROC_INO_BASE;
	struct vmem_proc_snap *sn = get_snap(pr, false);
	const struct vp_snapshot *s = sn ? sn->s : NULL;
	const struct vp_task *t;
	char *text = NULL, comm[64];
	int pid, f;

	*err = ENOENT;
	if (v < 256) {
		*err = EIO;	/* no kernel known: the log says why */
		if (!s)
			goto out;
		switch (v) {
		case T_STAT: text = vp_sys_stat(s, len); break;
		case T_UPTIME: text = vp_sys_uptime(s, len); break;
		case T_MEMINFO: text = vp_sys_meminfo(s, len); break;
		case T_CPUINFO: text = vp_sys_cpuinfo(s, len); break;
		case T_LOADAVG: text = vp_sys_loadavg(s, len); break;
		case T_TTY_DRIVERS: text = vp_sys_tty_drivers(s, len); break;
		case T_HOSTNAME: text = line_of(s->hostname, len); break;
		case T_NET_TCP:
		case T_NET_TCP6:
			text = procfs_net_tcp(&s->socks, v == T_NET_TCP ?
					      AF_INET : AF_INET6, false);
			if (text)
				*len = strlen(text);
			break;
		case T_NET_UDP:
		case T_NET_UDP6:
			text = procfs_net_udp(&s->socks, v == T_NET_UDP ?
					      AF_INET : AF_INET6, false);
			if (text)
				*len = strlen(text);
			break;
		case T_MODULES:
			text = procfs_modules(&s->mods, false);
			if (text)
				*len = strlen(text);
			break;
		case T_OSRELEASE: text = line_of(s->release, len); break;
		default: *err = EISDIR; goto out;
		}
		if (!text) {
			*err = ENOMEM;
		} else if ((v >= T_NET_TCP && v <= T_NET_UDP6 &&
			    !s->have_socks) ||
			   (v == T_MODULES && !s->have_mods)) {
			/* not read at all: the log says why */
			free(text);
			text = NULL;
			*err = EIO;
		}
		goto out;
	}
	if (v >= TASK_V) {
		const struct vp_task *lead;

		t = thread_of(s, TASK_PID(v), TASK_TID(v), &lead);
		if (!t)
			goto out;
		switch (TASK_F(v)) {
		case P_STAT: text = vp_pid_stat(s, t, len); break;
		case P_STATUS: text = vp_pid_status(s, t, len); break;
		case P_CMDLINE: text = vp_pid_cmdline(lead, len); break;
		default: *err = EISDIR; goto out;
		}
		if (!text)
			*err = ENOMEM;
		goto out;
	}
	if (v >= MOD_V && v < FD_V) {
		const struct vmi_module *m = mod_at(s, (v - MOD_V) >> 8);

		*err = EISDIR;
		if (!m)
			goto out;
		switch ((v - MOD_V) & 0xff) {
		case M_REFCNT: text = procfs_sys_module_refcnt(m); break;
		case M_CORESIZE: text = procfs_sys_module_coresize(m); break;
		case M_INITSIZE: text = procfs_sys_module_initsize(m); break;
		case M_INITSTATE: text = procfs_sys_module_initstate(m); break;
		case M_TAINT: text = procfs_sys_module_taint(m); break;
		default: goto out;
		}
		if (text)
			*len = strlen(text);
		else
			*err = ENOMEM;
		goto out;
	}
	if (v >= FD_V) {
		*err = ELOOP;	/* a link: opened through its target */
		goto out;
	}
	pid = (int)(v >> 8);
	f = (int)(v & 0xff);
	t = s ? vp_snapshot_find(s, pid) : NULL;
	if (!t) {
		if (f == P_STAT && host_tgid(fuse_req_ctx(req)->pid, comm,
					     sizeof(comm)) == pid)
			text = vp_caller_stat(pid, comm, len);
		goto out;
	}
	switch (f) {
	case P_STAT: text = vp_pid_stat(s, t, len); break;
	case P_STATUS: text = vp_pid_status(s, t, len); break;
	case P_CMDLINE: text = vp_pid_cmdline(t, len); break;
	case P_ENVIRON: text = vp_pid_environ(t, len); break;
	case P_STATM: text = vp_pid_statm(t, len); break;
	case P_COMM: text = vp_pid_comm(t, len); break;
	default: *err = EISDIR; goto out;
	}
	if (!text)
		*err = ENOMEM;
out:
	snap_put(sn);
	return text;
}

void vmem_proc_open(struct vmem_proc *pr, fuse_req_t req, fuse_ino_t ino,
		    struct fuse_file_info *fi)
{
	struct proc_fh *h;
	size_t len = 0;
	char *text;
	int err;

	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	errno = 0;
	text = make_text(pr, req, ino, &len, &err);
	if (!text) {
		/* No snapshot as too many wait for a build (logged). */
		if (errno == EAGAIN && err == EIO)
			err = EAGAIN;
		fuse_reply_err(req, err);
		return;
	}
	h = malloc(sizeof(*h) + len);
	if (!h) {
		free(text);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->sn = NULL;
	h->len = len;
	memcpy(h->text, text, len);
	free(text);
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->fh = (uintptr_t)h;
	if (fuse_reply_open(req, fi) == -ENOENT)
		free(h);
}

void vmem_proc_read(struct vmem_proc *pr, fuse_req_t req, size_t size,
		    off_t off, struct fuse_file_info *fi)
{
	const struct proc_fh *h = (const struct proc_fh *)(uintptr_t)fi->fh;

	(void)pr;
	if (!h || off < 0 || (size_t)off >= h->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > h->len - (size_t)off)
		size = h->len - (size_t)off;
	fuse_reply_buf(req, h->text + off, size);
}

void vmem_proc_release(struct vmem_proc *pr, fuse_req_t req,
		       struct fuse_file_info *fi)
{
	(void)pr;
	free((void *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}
