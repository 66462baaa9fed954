// SPDX-License-Identifier: MIT
/* One shadow /proc build out of guest kernel memory.  See snapshot.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../introspect/guard.h"
#include "../introspect/kernel.h"
#include "snapshot.h"

#define XA_CHUNK_SHIFT	6
#define XA_SLOTS	64
#define XA_NODES_MAX	(1u << 17)	/* > VP_PID_MAX / 64 * 2 */
#define TTY_DRIVERS_MAX	256
#define PF_KTHREAD	0x00200000u
#define PF_WQ_WORKER	0x00000020u
#define RLIMIT_RSS	5
#define PIDTYPE_PGID	2
#define PIDTYPE_SID	3
#define TASK_REPORT	0x7fu
#define TASK_NOLOAD	0x400u
#define TASK_RTLOCK_WAIT 0x1000u
#define TASK_UNINTERRUPTIBLE 2u
#define EXIT_DEAD	0x10
#define LOG_MSGS_PER_KIND 8		/* repeated complaints of one kind */

/* A counting, deadline-keeping reader in front of the daemon's. */
struct cphys {
	const struct vmi_phys *in;
	struct vmi_phys out;
	uint64_t local, remote;
	struct vmi_deadline dl;
	bool timed_out;
};

static int c_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	struct cphys *c = ctx;
	int rc;

	if (c->timed_out || vmi_deadline_passed(&c->dl)) {
		c->timed_out = true;
		return -ETIMEDOUT;
	}
	rc = c->in->read(c->in->ctx, gpa, buf, len);
	if (rc == 0) {
		if (vmi_phys_is_local(c->in, gpa, len))
			c->local += len;
		else
			c->remote += len;
	}
	return rc;
}

static int c_is_local(void *ctx, uint64_t gpa, uint64_t len)
{
	struct cphys *c = ctx;

	return vmi_phys_is_local(c->in, gpa, len);
}

/* Offsets of everything read, from the guest's BTF. */
struct offs {
	uint64_t t_size, t_state, t_flags, t_prio, t_static_prio, t_rt_prio;
	uint64_t t_policy, t_cpu, t_mm, t_exit_state, t_exit_code;
	uint64_t t_exit_signal, t_pid, t_tgid, t_real_parent, t_pid_links;
	uint64_t t_thread_pid, t_utime, t_stime, t_gtime, t_start_boottime;
	uint64_t t_min_flt, t_maj_flt, t_real_cred, t_comm, t_fs, t_signal;
	uint64_t t_blocked, t_pending, t_tasks, t_nvcsw, t_nivcsw, t_sum_exec;
	uint64_t p_tasks, p_numbers;
	uint64_t c_uid;
	uint64_t s_size, s_nr_threads, s_pids, s_tty, s_utime, s_stime;
	uint64_t s_cutime, s_cstime, s_gtime, s_cgtime, s_min_flt, s_maj_flt;
	uint64_t s_cmin_flt, s_cmaj_flt, s_sum_sched, s_rlim, s_shpending;
	uint64_t m_size, m_pgd, m_pgtables, m_hiwater_rss, m_hiwater_vm;
	uint64_t m_total_vm, m_locked_vm, m_pinned_vm, m_data_vm, m_exec_vm;
	uint64_t m_stack_vm, m_start_code, m_end_code, m_start_data;
	uint64_t m_end_data, m_start_brk, m_start_stack, m_arg_start;
	uint64_t m_arg_end, m_env_start, m_env_end, m_rss;
	uint64_t tty_driver, tty_index, tty_pgrp;
	uint64_t d_driver_name, d_name, d_major, d_minor_start, d_num;
	uint64_t d_type, d_subtype, d_list;
	uint64_t fs_umask;
	uint64_t xa_head, xn_shift, xn_slots, idr_next;
	/* kernel threads' names; 0 (not found) leaves comm as it is */
	uint64_t t_worker_private, k_data, k_full_name;
	/* signal dispositions (0: not found, masks stay 0) */
	uint64_t t_sighand, sh_action, ksa_size;
	bool have_sighand;
	uint64_t w_current_work, w_pool, w_desc;
	bool have_knames;
};

struct build {
	const struct vmi_kernel *k;
	struct cphys c;
	struct vmi_kernel_reader kr;
	const struct vp_build_opts *o;
	struct vp_snapshot *s;
	struct offs f;
	int levels;
	uint64_t init_pid_ns;
	unsigned int pid_max;
	/* every task found in the pid table */
	struct vp_task *all;
	size_t nall, capall;
	/* scratch for one task_struct / signal_struct / mm_struct */
	unsigned char *tbuf, *sbuf, *mbuf;
	unsigned int complaints[8];
	unsigned int nxnodes;
	uint64_t args_total;		/* cmdline + environ bytes kept */
	/* per-task sums, parallel to all[] */
	struct raw {
		uint64_t sum_exec, sig_utime, sig_stime, sig_gtime;
		uint64_t sig_min_flt, sig_maj_flt, sig_sum_exec;
		uint64_t pid_va, mm_va;
	} *raw;
};

void vp_snapshot_log(struct vp_snapshot *s, const struct vp_build_opts *o,
		     const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->cut++;
	if (s->nlog < VP_LOG_MAX) {
		s->log[s->nlog] = strdup(msg);
		if (s->log[s->nlog])
			s->nlog++;
	}
	if (o && o->log)
		o->log(o->logctx, msg);
}

/* A complaint of kind @kind, at most LOG_MSGS_PER_KIND of each. */
#define complain(b, kind, ...) do { \
	if ((b)->complaints[kind]++ < LOG_MSGS_PER_KIND) \
		vp_snapshot_log((b)->s, (b)->o, __VA_ARGS__); \
	else \
		(b)->s->cut++; \
} while (0)
enum { K_PIDTAB, K_TASK, K_COMM, K_ARGS, K_LIST, K_SYS, K_GONE, K_TIME };

static int kread(struct build *b, uint64_t va, void *buf, size_t len)
{
	return vmi_kernel_read(b->k, &b->c.out, va, buf, len);
}

static int kread_u64(struct build *b, uint64_t va, uint64_t *v)
{
	return kread(b, va, v, sizeof(*v));
}

static uint64_t get(const unsigned char *buf, uint64_t off, size_t size)
{
	uint64_t v = 0;

	memcpy(&v, buf + off, size);	/* little endian */
	return v;
}
#define G64(buf, off) get(buf, off, 8)
#define G32(buf, off) ((uint32_t)get(buf, off, 4))
#define GI32(buf, off) ((int32_t)get(buf, off, 4))

/* ---- offsets ---- */

static int member(struct build *b, const char *path, uint64_t *off,
		  char *err, size_t errlen)
{
	int rc = vmi_kernel_member(b->k, path, off, NULL);

	if (rc < 0)
		return vmi_err(err, errlen, -rc, "BTF has no %s", path);
	return 0;
}

static int load_offsets(struct build *b, char *err, size_t errlen)
{
	static const struct {
		const char *path;
		size_t at;
	} tab[] = {
#define O(field, path) { path, offsetof(struct offs, field) }
		O(t_state, "task_struct.__state"),
		O(t_flags, "task_struct.flags"),
		O(t_prio, "task_struct.prio"),
		O(t_static_prio, "task_struct.static_prio"),
		O(t_rt_prio, "task_struct.rt_priority"),
		O(t_policy, "task_struct.policy"),
		O(t_cpu, "task_struct.thread_info.cpu"),
		O(t_mm, "task_struct.mm"),
		O(t_exit_state, "task_struct.exit_state"),
		O(t_exit_code, "task_struct.exit_code"),
		O(t_exit_signal, "task_struct.exit_signal"),
		O(t_pid, "task_struct.pid"),
		O(t_tgid, "task_struct.tgid"),
		O(t_real_parent, "task_struct.real_parent"),
		O(t_pid_links, "task_struct.pid_links"),
		O(t_thread_pid, "task_struct.thread_pid"),
		O(t_utime, "task_struct.utime"),
		O(t_stime, "task_struct.stime"),
		O(t_gtime, "task_struct.gtime"),
		O(t_start_boottime, "task_struct.start_boottime"),
		O(t_min_flt, "task_struct.min_flt"),
		O(t_maj_flt, "task_struct.maj_flt"),
		O(t_real_cred, "task_struct.real_cred"),
		O(t_comm, "task_struct.comm"),
		O(t_fs, "task_struct.fs"),
		O(t_signal, "task_struct.signal"),
		O(t_blocked, "task_struct.blocked"),
		O(t_pending, "task_struct.pending.signal"),
		O(t_tasks, "task_struct.tasks"),
		O(t_nvcsw, "task_struct.nvcsw"),
		O(t_nivcsw, "task_struct.nivcsw"),
		O(t_sum_exec, "task_struct.se.sum_exec_runtime"),
		O(p_tasks, "pid.tasks"),
		O(p_numbers, "pid.numbers"),
		O(c_uid, "cred.uid"),
		O(s_nr_threads, "signal_struct.nr_threads"),
		O(s_pids, "signal_struct.pids"),
		O(s_tty, "signal_struct.tty"),
		O(s_utime, "signal_struct.utime"),
		O(s_stime, "signal_struct.stime"),
		O(s_cutime, "signal_struct.cutime"),
		O(s_cstime, "signal_struct.cstime"),
		O(s_gtime, "signal_struct.gtime"),
		O(s_cgtime, "signal_struct.cgtime"),
		O(s_min_flt, "signal_struct.min_flt"),
		O(s_maj_flt, "signal_struct.maj_flt"),
		O(s_cmin_flt, "signal_struct.cmin_flt"),
		O(s_cmaj_flt, "signal_struct.cmaj_flt"),
		O(s_sum_sched, "signal_struct.sum_sched_runtime"),
		O(s_rlim, "signal_struct.rlim"),
		O(s_shpending, "signal_struct.shared_pending.signal"),
		O(m_pgd, "mm_struct.pgd"),
		O(m_pgtables, "mm_struct.pgtables_bytes"),
		O(m_hiwater_rss, "mm_struct.hiwater_rss"),
		O(m_hiwater_vm, "mm_struct.hiwater_vm"),
		O(m_total_vm, "mm_struct.total_vm"),
		O(m_locked_vm, "mm_struct.locked_vm"),
		O(m_pinned_vm, "mm_struct.pinned_vm"),
		O(m_data_vm, "mm_struct.data_vm"),
		O(m_exec_vm, "mm_struct.exec_vm"),
		O(m_stack_vm, "mm_struct.stack_vm"),
		O(m_start_code, "mm_struct.start_code"),
		O(m_end_code, "mm_struct.end_code"),
		O(m_start_data, "mm_struct.start_data"),
		O(m_end_data, "mm_struct.end_data"),
		O(m_start_brk, "mm_struct.start_brk"),
		O(m_start_stack, "mm_struct.start_stack"),
		O(m_arg_start, "mm_struct.arg_start"),
		O(m_arg_end, "mm_struct.arg_end"),
		O(m_env_start, "mm_struct.env_start"),
		O(m_env_end, "mm_struct.env_end"),
		O(m_rss, "mm_struct.rss_stat"),
		O(tty_driver, "tty_struct.driver"),
		O(tty_index, "tty_struct.index"),
		O(tty_pgrp, "tty_struct.ctrl.pgrp"),
		O(d_driver_name, "tty_driver.driver_name"),
		O(d_name, "tty_driver.name"),
		O(d_major, "tty_driver.major"),
		O(d_minor_start, "tty_driver.minor_start"),
		O(d_num, "tty_driver.num"),
		O(d_type, "tty_driver.type"),
		O(d_subtype, "tty_driver.subtype"),
		O(d_list, "tty_driver.tty_drivers"),
		O(fs_umask, "fs_struct.umask"),
		O(xa_head, "xarray.xa_head"),
		O(xn_shift, "xa_node.shift"),
		O(xn_slots, "xa_node.slots"),
		O(idr_next, "idr.idr_next"),
#undef O
	};
	size_t i;
	int rc;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		rc = member(b, tab[i].path,
			    (uint64_t *)((char *)&b->f + tab[i].at), err, errlen);
		if (rc < 0)
			return rc;
	}
	b->f.have_knames =
		vmi_kernel_member(b->k, "task_struct.worker_private",
				  &b->f.t_worker_private, NULL) == 0 &&
		vmi_kernel_member(b->k, "kthread.data", &b->f.k_data,
				  NULL) == 0 &&
		vmi_kernel_member(b->k, "kthread.full_name", &b->f.k_full_name,
				  NULL) == 0 &&
		vmi_kernel_member(b->k, "worker.current_work",
				  &b->f.w_current_work, NULL) == 0 &&
		vmi_kernel_member(b->k, "worker.pool", &b->f.w_pool,
				  NULL) == 0 &&
		vmi_kernel_member(b->k, "worker.desc", &b->f.w_desc,
				  NULL) == 0;
	b->f.have_sighand =
		vmi_kernel_member(b->k, "task_struct.sighand", &b->f.t_sighand,
				  NULL) == 0 &&
		vmi_kernel_member(b->k, "sighand_struct.action",
				  &b->f.sh_action, NULL) == 0 &&
		vmi_kernel_type_size(b->k, "k_sigaction", &b->f.ksa_size) == 0 &&
		b->f.ksa_size >= 8 && b->f.ksa_size <= 64;
	if (vmi_kernel_type_size(b->k, "task_struct", &b->f.t_size) < 0 ||
	    vmi_kernel_type_size(b->k, "signal_struct", &b->f.s_size) < 0 ||
	    vmi_kernel_type_size(b->k, "mm_struct", &b->f.m_size) < 0)
		return vmi_err(err, errlen, ENOENT,
			       "BTF has no task_struct/signal_struct/mm_struct");
	if (b->f.t_size > 65536 || b->f.s_size > 65536 || b->f.m_size > 65536)
		return vmi_err(err, errlen, EINVAL, "implausible struct sizes");
	return 0;
}

/* ---- one task ---- */

static unsigned int state_index(unsigned int st, int exit_state,
				char *letter)
{
	static const char letters[] = "RSDTtXZPI";
	unsigned int state = (st | (unsigned int)exit_state) & TASK_REPORT;
	unsigned int idx = 0;

	if ((st & (TASK_UNINTERRUPTIBLE | TASK_NOLOAD)) ==
	    (TASK_UNINTERRUPTIBLE | TASK_NOLOAD))
		state = TASK_REPORT + 1;
	if (st & TASK_RTLOCK_WAIT)
		state = TASK_UNINTERRUPTIBLE;
	while (state) {		/* fls() */
		idx++;
		state >>= 1;
	}
	if (idx > 8)
		idx = 8;
	*letter = letters[idx];
	return idx;
}

/* The number of @pid_va in the initial namespace, or -1. */
static int pid_nr(struct build *b, uint64_t pid_va)
{
	uint32_t nr;

	if (!pid_va || !vmi_kernel_half(pid_va, b->levels))
		return -1;
	if (kread(b, pid_va + b->f.p_numbers, &nr, sizeof(nr)))
		return -1;
	return (int)nr;
}

static void parse_tty(struct build *b, uint64_t tty, struct vp_task *t)
{
	uint64_t drv, pgrp;
	int32_t index, major, minor_start;
	uint32_t dev, minor;

	if (!vmi_kernel_half(tty, b->levels) ||
	    kread_u64(b, tty + b->f.tty_driver, &drv) ||
	    kread(b, tty + b->f.tty_index, &index, 4) ||
	    kread_u64(b, tty + b->f.tty_pgrp, &pgrp) ||
	    !vmi_kernel_half(drv, b->levels) ||
	    kread(b, drv + b->f.d_major, &major, 4) ||
	    kread(b, drv + b->f.d_minor_start, &minor_start, 4)) {
		complain(b, K_TASK, "pid %d: controlling tty at 0x%llx "
			 "unreadable", t->pid, (unsigned long long)tty);
		return;
	}
	/* new_encode_dev(MKDEV(major, minor_start) + index) */
	dev = ((uint32_t)major << 20) + (uint32_t)minor_start + (uint32_t)index;
	minor = dev & 0xfffff;
	t->tty_nr = (int)((minor & 0xff) | ((dev >> 20) << 8) |
			  ((minor & ~0xffu) << 12));
	t->tty_pgrp = pgrp ? pid_nr(b, pgrp) : -1;
}

/*
 * The name /proc shows for a kernel thread (proc_task_name): a workqueue
 * worker's comm followed by "+desc" while it runs a work item, "-desc"
 * after; another kernel thread's full name when it has one.
 */
static void kthread_name(struct build *b, const unsigned char *tb,
			 struct vp_task *t)
{
	uint64_t kt = G64(tb, b->f.t_worker_private), p;
	char name[64];

	if (!b->f.have_knames || !vmi_kernel_half(kt, b->levels))
		return;
	if (t->flags & PF_WQ_WORKER) {
		uint64_t worker, pool, cur;
		char desc[24];

		if (kread_u64(b, kt + b->f.k_data, &worker) ||
		    !vmi_kernel_half(worker, b->levels) ||
		    kread_u64(b, worker + b->f.w_pool, &pool) ||
		    kread_u64(b, worker + b->f.w_current_work, &cur) ||
		    kread(b, worker + b->f.w_desc, desc, sizeof(desc)))
			return;
		desc[sizeof(desc) - 1] = '\0';
		if (pool && desc[0]) {
			size_t n = strlen(t->comm);

			snprintf(t->comm + n, sizeof(t->comm) - n, "%c%s",
				 cur ? '+' : '-', desc);
		}
		return;
	}
	if (kread_u64(b, kt + b->f.k_full_name, &p) || !p ||
	    !vmi_kernel_half(p, b->levels))
		return;
	if (vmi_read_cstr(vmi_kernel_kread, &b->kr, p, name, sizeof(name)) > 0 ||
	    name[0])
		snprintf(t->comm, sizeof(t->comm), "%s", name);
}

/* collect_sigign_sigcatch: SIG_IGN (1) and handled signals, 1..64. */
static void read_sigactions(struct build *b, const unsigned char *tb,
			    struct vp_task *t)
{
	uint64_t sh = G64(tb, b->f.t_sighand);
	unsigned char act[64 * 64];
	unsigned int i;

	if (!b->f.have_sighand || !vmi_kernel_half(sh, b->levels) ||
	    kread(b, sh + b->f.sh_action, act, 64 * b->f.ksa_size))
		return;
	for (i = 0; i < 64; i++) {
		uint64_t h = G64(act, i * b->f.ksa_size);	/* sa_handler */

		if (h == 1)
			t->sig_ignored |= 1ULL << i;
		else if (h != 0)
			t->sig_caught |= 1ULL << i;
	}
}

/*
 * Read and parse the task at @va whose pid entry is @pid_va (0 when it
 * comes from the task list).  0, or -errno when it cannot be shown.
 */
static int read_task(struct build *b, uint64_t va, uint64_t pid_va,
		     struct vp_task *t, struct raw *r)
{
	const struct offs *f = &b->f;
	unsigned char *tb = b->tbuf, *sb = b->sbuf, *mb = b->mbuf;
	uint64_t parent, cred, sig, mm, fs, tty;
	uint32_t ids[8];
	int rc, i;

	memset(t, 0, sizeof(*t));
	memset(r, 0, sizeof(*r));
	rc = kread(b, va, tb, f->t_size);
	if (rc)
		return rc;
	t->va = va;
	t->pid = GI32(tb, f->t_pid);
	t->tgid = GI32(tb, f->t_tgid);
	if (pid_va && G64(tb, f->t_thread_pid) != pid_va)
		return -ESTALE;		/* exited and reused */
	r->pid_va = t->pid_va = G64(tb, f->t_thread_pid);
	t->state_idx = state_index(G32(tb, f->t_state),
				   GI32(tb, f->t_exit_state), &t->state);
	if (GI32(tb, f->t_exit_state) & EXIT_DEAD)
		return -ESTALE;
	t->flags = G32(tb, f->t_flags);
	t->kthread = t->flags & PF_KTHREAD;
	memcpy(t->comm, tb + f->t_comm, 16);
	if (!memchr(t->comm, '\0', 16))
		complain(b, K_COMM, "pid %d: comm has no NUL, cut at 15 bytes",
			 t->pid);
	t->comm[15] = '\0';
	if (t->kthread)
		kthread_name(b, tb, t);
	t->prio = GI32(tb, f->t_prio) - 100;
	t->nice = GI32(tb, f->t_static_prio) - 120;
	t->rt_priority = G32(tb, f->t_rt_prio);
	t->policy = G32(tb, f->t_policy);
	t->cpu = GI32(tb, f->t_cpu);
	t->exit_signal = GI32(tb, f->t_exit_signal);
	t->exit_code = GI32(tb, f->t_exit_code);
	t->utime = G64(tb, f->t_utime);
	t->stime = G64(tb, f->t_stime);
	t->gtime = G64(tb, f->t_gtime);
	t->start_boottime = G64(tb, f->t_start_boottime);
	t->min_flt = G64(tb, f->t_min_flt);
	t->maj_flt = G64(tb, f->t_maj_flt);
	t->nvcsw = G64(tb, f->t_nvcsw);
	t->nivcsw = G64(tb, f->t_nivcsw);
	t->sig_pending = G64(tb, f->t_pending);
	t->sig_blocked = G64(tb, f->t_blocked);
	r->sum_exec = G64(tb, f->t_sum_exec);
	if (t->pid == t->tgid)
		read_sigactions(b, tb, t);

	parent = G64(tb, f->t_real_parent);
	if (!vmi_kernel_half(parent, b->levels) ||
	    kread(b, parent + f->t_tgid, &t->ppid, 4))
		return -EFAULT;
	cred = G64(tb, f->t_real_cred);
	if (!vmi_kernel_half(cred, b->levels) ||
	    kread(b, cred + f->c_uid, ids, sizeof(ids)))
		return -EFAULT;
	/* struct cred: uid gid suid sgid euid egid fsuid fsgid */
	for (i = 0; i < 4; i++) {
		static const int u[4] = { 0, 4, 2, 6 };

		t->uid[i] = ids[u[i]];
		t->gid[i] = ids[u[i] + 1];
	}
	t->umask = -1;
	fs = G64(tb, f->t_fs);
	if (fs && vmi_kernel_half(fs, b->levels)) {
		int32_t um;

		if (kread(b, fs + f->fs_umask, &um, 4) == 0)
			t->umask = um;
	}

	sig = G64(tb, f->t_signal);
	if (!vmi_kernel_half(sig, b->levels) || kread(b, sig, sb, f->s_size))
		return -EFAULT;
	t->num_threads = GI32(sb, f->s_nr_threads);
	t->pgrp = pid_nr(b, G64(sb, f->s_pids + 8 * PIDTYPE_PGID));
	t->sid = pid_nr(b, G64(sb, f->s_pids + 8 * PIDTYPE_SID));
	if (t->pgrp < 0)
		t->pgrp = 0;
	if (t->sid < 0)
		t->sid = 0;
	t->tty_pgrp = -1;
	tty = G64(sb, f->s_tty);
	if (tty)
		parse_tty(b, tty, t);
	r->sig_utime = G64(sb, f->s_utime);
	r->sig_stime = G64(sb, f->s_stime);
	r->sig_gtime = G64(sb, f->s_gtime);
	r->sig_min_flt = G64(sb, f->s_min_flt);
	r->sig_maj_flt = G64(sb, f->s_maj_flt);
	r->sig_sum_exec = G64(sb, f->s_sum_sched);
	t->cutime = G64(sb, f->s_cutime);
	t->cstime = G64(sb, f->s_cstime);
	t->cgtime = G64(sb, f->s_cgtime);
	t->cmin_flt = G64(sb, f->s_cmin_flt);
	t->cmaj_flt = G64(sb, f->s_cmaj_flt);
	t->rsslim = G64(sb, f->s_rlim + 16 * RLIMIT_RSS);
	t->sig_shpending = G64(sb, f->s_shpending);

	mm = G64(tb, f->t_mm);
	r->mm_va = t->mm_va = mm;
	if (mm) {
		if (!vmi_kernel_half(mm, b->levels) ||
		    kread(b, mm, mb, f->m_size))
			return -EFAULT;
		t->has_mm = true;
		t->total_vm = G64(mb, f->m_total_vm);
		t->hiwater_vm = G64(mb, f->m_hiwater_vm);
		t->hiwater_rss = G64(mb, f->m_hiwater_rss);
		t->locked_vm = G64(mb, f->m_locked_vm);
		t->pinned_vm = G64(mb, f->m_pinned_vm);
		t->data_vm = G64(mb, f->m_data_vm);
		t->exec_vm = G64(mb, f->m_exec_vm);
		t->stack_vm = G64(mb, f->m_stack_vm);
		t->pgtables_bytes = G64(mb, f->m_pgtables);
		for (i = 0; i < 4; i++) {
			int64_t v = (int64_t)G64(mb, f->m_rss + 8 * i);

			t->rss[i] = v < 0 ? 0 : (uint64_t)v;
		}
		t->start_code = G64(mb, f->m_start_code);
		t->end_code = G64(mb, f->m_end_code);
		t->start_data = G64(mb, f->m_start_data);
		t->end_data = G64(mb, f->m_end_data);
		t->start_brk = G64(mb, f->m_start_brk);
		t->start_stack = G64(mb, f->m_start_stack);
		t->arg_start = G64(mb, f->m_arg_start);
		t->arg_end = G64(mb, f->m_arg_end);
		t->env_start = G64(mb, f->m_env_start);
		t->env_end = G64(mb, f->m_env_end);
	}
	return 0;
}

/*
 * User memory [start, end) of the task through its own page tables, at
 * most VP_ARGS_MAX bytes.  Any page not present leaves it empty, as the
 * spec of the shadow says (the kernel would fault it in; we never can).
 */
static void read_user(struct build *b, const struct vp_task *t,
		      uint64_t mm_va, uint64_t start, uint64_t end,
		      char **out, size_t *outlen)
{
	uint64_t pgd, pgd_gpa, pos;
	size_t len;
	char *buf;

	*out = NULL;
	*outlen = 0;
	if (!t->has_mm || end <= start || (start >> 47) || (end >> 47))
		return;
	len = end - start > VP_ARGS_MAX ? VP_ARGS_MAX : end - start;
	if (b->args_total + len > VP_ARGS_TOTAL) {
		complain(b, K_ARGS, "pid %d: arguments not read: the snapshot "
			 "already holds %u MiB of them", t->pid,
			 VP_ARGS_TOTAL >> 20);
		return;
	}
	if (kread_u64(b, mm_va + b->f.m_pgd, &pgd) ||
	    vmi_kernel_vtop(b->k, &b->c.out, pgd, &pgd_gpa) < 0) {
		complain(b, K_ARGS, "pid %d: page table at 0x%llx unreadable",
			 t->pid, (unsigned long long)pgd);
		return;
	}
	buf = malloc(len);
	if (!buf)
		return;
	for (pos = 0; pos < len;) {
		uint64_t va = start + pos, pa;
		size_t n = 4096 - (va & 4095);

		if (n > len - pos)
			n = len - pos;
		if (vmi_kernel_uvtop(b->k, &b->c.out, pgd_gpa, va, &pa) < 0 ||
		    vmi_phys_read(&b->c.out, pa, buf + pos, n) < 0) {
			free(buf);
			return;		/* not present: empty */
		}
		pos += n;
	}
	*out = buf;
	*outlen = len;
	b->args_total += len;
}

/* As the kernel's get_mm_cmdline: a changed last byte means the program
 * rewrote its title (setproctitle): up to the first NUL. */
static void fix_cmdline(struct vp_task *t)
{
	if (t->cmdline_len && t->cmdline[t->cmdline_len - 1] != '\0')
		t->cmdline_len = strnlen(t->cmdline, t->cmdline_len);
}

/* ---- the pid table ---- */

/* Room for one more task in b->all and b->raw (grown together). */
static int grow_tasks(struct build *b)
{
	size_t cap = b->capall ? b->capall * 2 : 256;
	void *na = realloc(b->all, cap * sizeof(*b->all));
	void *nr;

	if (!na)
		return -ENOMEM;
	b->all = na;
	nr = realloc(b->raw, cap * sizeof(*b->raw));
	if (!nr)
		return -ENOMEM;
	b->raw = nr;
	b->capall = cap;
	return 0;
}

static int add_task(struct build *b, uint64_t pid_va, uint64_t index)
{
	uint64_t first;
	uint64_t ns;
	uint32_t nr;
	int rc;

	if (!vmi_kernel_half(pid_va, b->levels) || (pid_va & 7)) {
		complain(b, K_PIDTAB, "pid table: entry %llu points at "
			 "0x%llx, not a kernel address",
			 (unsigned long long)index, (unsigned long long)pid_va);
		return 0;
	}
	if (kread_u64(b, pid_va + b->f.p_tasks, &first) ||
	    kread(b, pid_va + b->f.p_numbers, &nr, 4) ||
	    kread_u64(b, pid_va + b->f.p_numbers + 8, &ns))
		return b->c.timed_out ? -ETIMEDOUT : 0;
	if (nr != index || ns != b->init_pid_ns) {
		complain(b, K_PIDTAB, "pid table: entry %llu holds pid %u of "
			 "namespace 0x%llx", (unsigned long long)index, nr,
			 (unsigned long long)ns);
		return 0;
	}
	if (!first)
		return 0;		/* allocated, no task (yet, or now) */
	if (b->nall >= VP_TASKS_MAX) {
		complain(b, K_PIDTAB, "pid table: more than %u tasks, the "
			 "rest left out", VP_TASKS_MAX);
		return -E2BIG;
	}
	if (b->nall == b->capall && grow_tasks(b))
		return -ENOMEM;
	rc = read_task(b, first - b->f.t_pid_links, pid_va, &b->all[b->nall],
		       &b->raw[b->nall]);
	if (rc == -ETIMEDOUT || b->c.timed_out)
		return -ETIMEDOUT;
	if (rc == -ESTALE)
		return 0;		/* exited during the walk */
	if (rc < 0 || b->all[b->nall].pid != (int)index) {
		complain(b, K_TASK, "pid %llu: task at 0x%llx unreadable (%s)",
			 (unsigned long long)index,
			 (unsigned long long)(first - b->f.t_pid_links),
			 rc < 0 ? strerror(-rc) : "pid differs");
		return 0;
	}
	b->nall++;
	return 0;
}

static bool xa_is_node(uint64_t e)
{
	return (e & 3) == 2 && e > 4096;
}

static int xa_walk(struct build *b, uint64_t entry, int parent_shift,
		   uint64_t base)
{
	uint64_t node, slots[XA_SLOTS];
	unsigned char shift;
	int i, rc;

	if (!entry)
		return 0;
	if (!xa_is_node(entry)) {
		if ((entry & 3) == 2 || (entry & 1))
			return 0;	/* internal (zero/retry) or value */
		if (base >= b->pid_max)
			return 0;
		return add_task(b, entry, base);
	}
	node = entry - 2;
	if (++b->nxnodes > XA_NODES_MAX) {
		complain(b, K_PIDTAB, "pid table: more than %u nodes, cut",
			 XA_NODES_MAX);
		return -ELOOP;
	}
	if (!vmi_kernel_half(node, b->levels) ||
	    kread(b, node + b->f.xn_shift, &shift, 1) ||
	    kread(b, node + b->f.xn_slots, slots, sizeof(slots))) {
		if (b->c.timed_out)
			return -ETIMEDOUT;
		complain(b, K_PIDTAB, "pid table: node 0x%llx unreadable, "
			 "its subtree skipped", (unsigned long long)node);
		return 0;
	}
	if (shift % XA_CHUNK_SHIFT || shift > 60 ||
	    (parent_shift >= 0 && shift != parent_shift - XA_CHUNK_SHIFT)) {
		complain(b, K_PIDTAB, "pid table: node 0x%llx has shift %u "
			 "under a parent of shift %d, skipped",
			 (unsigned long long)node, shift, parent_shift);
		return 0;
	}
	for (i = 0; i < XA_SLOTS; i++) {
		uint64_t idx = base + ((uint64_t)i << shift);

		if (!slots[i])
			continue;
		if (xa_is_node(slots[i]) && shift == 0) {
			complain(b, K_PIDTAB, "pid table: leaf node 0x%llx "
				 "points at a node", (unsigned long long)node);
			continue;
		}
		if (idx >= b->pid_max)
			break;
		rc = xa_walk(b, slots[i], shift, idx);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- the task list cross-check ---- */

struct list_ck {
	struct build *b;
	int *pids;
	size_t n, cap;
	int err;
};

static int list_visit(void *arg, uint64_t entry)
{
	struct list_ck *l = arg;
	struct build *b = l->b;
	int32_t pid;

	if (kread(b, entry - b->f.t_tasks + b->f.t_pid, &pid, 4))
		return b->c.timed_out ? -ETIMEDOUT : -EFAULT;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		int *np = realloc(l->pids, cap * sizeof(*np));

		if (!np)
			return -ENOMEM;
		l->pids = np;
		l->cap = cap;
	}
	l->pids[l->n++] = pid;
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return x < y ? -1 : x > y;
}

static void cross_check(struct build *b, uint64_t init_task)
{
	struct list_ck l = { .b = b };
	struct vmi_list_bad bad;
	long n;
	size_t i;

	n = vmi_walk_list_linked(vmi_kernel_kread, &b->kr,
				 init_task + b->f.t_tasks, b->levels,
				 b->pid_max, list_visit, &l, &bad);
	if (bad.entry && n == -ELOOP) {
		complain(b, K_LIST, "init_task.tasks: entry 0x%llx points "
			 "back at 0x%llx, not 0x%llx: walk cut",
			 (unsigned long long)bad.entry,
			 (unsigned long long)bad.prev,
			 (unsigned long long)bad.want);
		l.err = 1;
	} else if (bad.entry) {		/* its prev was unreadable */
		n = b->c.timed_out ? -ETIMEDOUT : -EFAULT;
	}
	if (n < 0 && !l.err) {
		if (b->c.timed_out)
			complain(b, K_TIME, "init_task.tasks: cut by the "
				 "build's time budget");
		else
			complain(b, K_LIST, "init_task.tasks: walk cut after "
				 "%zu entries: %s", l.n,
				 n == -ELOOP ? "a cycle or too many entries" :
				 n == -EFAULT ? "a non-canonical or unreadable "
						"pointer" : strerror((int)-n));
	}
	qsort(l.pids, l.n, sizeof(int), cmp_int);
	for (i = 0; i < b->s->ntasks; i++) {
		int pid = b->s->tasks[i].pid;

		if (n >= 0 && !bsearch(&pid, l.pids, l.n, sizeof(int), cmp_int))
			complain(b, K_LIST, "pid %d is in the pid table but "
				 "not in init_task.tasks", pid);
	}
	free(l.pids);
}

/* ---- grouping ---- */

static int cmp_task(const void *a, const void *b)
{
	const struct vp_task *x = a, *y = b;

	if (x->tgid != y->tgid)
		return x->tgid < y->tgid ? -1 : 1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* cputime_adjust: utime + stime made to add up to the precise runtime. */
static void adjust(uint64_t rtime, uint64_t *ut, uint64_t *st)
{
	uint64_t u = *ut, s = *st;

	if (!rtime)
		return;
	if (s == 0) {
		u = rtime;
	} else if (u == 0) {
		s = rtime;
	} else {
		s = (uint64_t)((unsigned __int128)s * rtime / (s + u));
		if (s > rtime)
			s = rtime;
		u = rtime - s;
	}
	*ut = u;
	*st = s;
}

static int group(struct build *b)
{
	size_t i, j, n = 0;
	struct vp_task *out;
	struct raw *raw2;

	/* sort all[], and raw[] along with it */
	raw2 = malloc((b->nall + 1) * sizeof(*raw2));
	out = calloc(b->nall + 1, sizeof(*out));
	if (!raw2 || !out) {
		free(raw2);
		free(out);
		return -ENOMEM;
	}
	for (i = 0; i < b->nall; i++)
		b->all[i].ntids = i;	/* original index, for raw[] */
	qsort(b->all, b->nall, sizeof(*b->all), cmp_task);
	for (i = 0; i < b->nall; i++) {
		raw2[i] = b->raw[b->all[i].ntids];
		b->all[i].ntids = 0;
	}
	for (i = 0; i < b->nall;) {
		size_t end = i;
		struct vp_task *lead = NULL;
		uint64_t ut = 0, st = 0, gt = 0, mi = 0, ma = 0, rt = 0;
		struct raw *lr = NULL;

		while (end < b->nall && b->all[end].tgid == b->all[i].tgid)
			end++;
		for (j = i; j < end; j++) {
			ut += b->all[j].utime;
			st += b->all[j].stime;
			gt += b->all[j].gtime;
			mi += b->all[j].min_flt;
			ma += b->all[j].maj_flt;
			rt += raw2[j].sum_exec;
			if (b->all[j].pid == b->all[j].tgid) {
				lead = &b->all[j];
				lr = &raw2[j];
			}
		}
		if (lead) {
			struct vp_task *t = &out[n++];

			*t = *lead;
			t->utime = ut + lr->sig_utime;
			t->stime = st + lr->sig_stime;
			adjust(rt + lr->sig_sum_exec, &t->utime, &t->stime);
			t->gtime = gt + lr->sig_gtime;
			t->min_flt = mi + lr->sig_min_flt;
			t->maj_flt = ma + lr->sig_maj_flt;
			t->ntids = end - i;
			t->tids = malloc(t->ntids * sizeof(int));
			t->thr = calloc(t->ntids, sizeof(*t->thr));
			if (t->tids && t->thr) {
				for (j = i; j < end; j++) {
					struct vp_task *th = &t->thr[j - i];

					t->tids[j - i] = b->all[j].pid;
					*th = b->all[j];
					th->is_thread = true;
					/* task_cputime_adjusted */
					adjust(raw2[j].sum_exec, &th->utime,
					       &th->stime);
					/* one sighand for the group */
					th->sig_ignored = lead->sig_ignored;
					th->sig_caught = lead->sig_caught;
				}
			} else {
				free(t->tids);
				free(t->thr);
				t->tids = NULL;
				t->thr = NULL;
				t->ntids = 0;
			}
		}
		i = end;
	}
	b->s->nthreads = b->nall;
	b->s->tasks = out;
	b->s->ntasks = n;
	free(raw2);
	return 0;
}

/* Leaders' cmdline and environ; then make sure each is still the task
 * its pid names (it did not exit while we read). */
static void read_args(struct build *b)
{
	size_t i, n = 0;

	for (i = 0; i < b->s->ntasks; i++) {
		struct vp_task *t = &b->s->tasks[i];
		uint64_t mm_va = t->mm_va, pid_va = t->pid_va, first = 0;
		int32_t pid = -1;

		if (!b->c.timed_out) {
			read_user(b, t, mm_va, t->arg_start, t->arg_end,
				  &t->cmdline, &t->cmdline_len);
			fix_cmdline(t);
			read_user(b, t, mm_va, t->env_start, t->env_end,
				  &t->environ, &t->environ_len);
		}
		if (!b->c.timed_out &&
		    (kread_u64(b, pid_va + b->f.p_tasks, &first) ||
		     first != t->va + b->f.t_pid_links ||
		     kread(b, t->va + b->f.t_pid, &pid, 4) || pid != t->pid)) {
			/* gone: dropped, not shown half */
			if (b->complaints[K_GONE]++ < LOG_MSGS_PER_KIND &&
			    b->o && b->o->log) {
				char msg[96];

				snprintf(msg, sizeof(msg), "pid %d exited "
					 "during the build: dropped", t->pid);
				b->o->log(b->o->logctx, msg);
			}
			free(t->cmdline);
			free(t->environ);
			free(t->tids);
			free(t->thr);
			continue;
		}
		b->s->tasks[n++] = *t;
	}
	b->s->ntasks = n;
}

/* Without a pid table: processes from the task list alone. */
struct list_fill {
	struct build *b;
};

static int fill_visit(void *arg, uint64_t entry)
{
	struct build *b = ((struct list_fill *)arg)->b;
	int rc;

	if (b->nall >= VP_TASKS_MAX)
		return -E2BIG;
	if (b->nall == b->capall && grow_tasks(b))
		return -ENOMEM;
	rc = read_task(b, entry - b->f.t_tasks, 0, &b->all[b->nall],
		       &b->raw[b->nall]);
	if (rc == 0)
		b->nall++;
	return b->c.timed_out ? -ETIMEDOUT : 0;
}

/* ---- system-wide counters ---- */

static bool sym(struct build *b, const char *name, uint64_t *addr)
{
	if (vmi_kernel_symbol(b->k, name, addr))
		return true;
	complain(b, K_SYS, "no symbol %s", name);
	return false;
}

static void cstr_at(struct build *b, uint64_t va, char *buf, size_t max)
{
	long n = vmi_read_cstr(vmi_kernel_kread, &b->kr, va, buf, max);

	if (n < 0 && n != -ENAMETOOLONG)
		buf[0] = '\0';
}

static void read_uts(struct build *b)
{
	uint64_t a, off;
	char u[6 * 65];

	if (!sym(b, "init_uts_ns", &a))
		return;
	if (vmi_kernel_member(b->k, "uts_namespace.name", &off, NULL) < 0)
		off = 0;
	if (kread(b, a + off, u, sizeof(u))) {
		complain(b, K_SYS, "init_uts_ns at 0x%llx unreadable",
			 (unsigned long long)a);
		return;
	}
	/* new_utsname: sysname nodename release version machine domain */
	memcpy(b->s->hostname, u + 65, 64);
	memcpy(b->s->release, u + 130, 64);
	memcpy(b->s->version, u + 195, 64);
}

static void read_time(struct build *b)
{
	uint64_t a, seq, size, o_sec, o_nsec, o_shift, o_real, o_boot, tk;
	unsigned char buf[1024];
	uint64_t sec, nsec, shift;
	int64_t real, boot;

	if (!sym(b, "tk_core", &a))
		return;
	if (vmi_kernel_type_size(b->k, "seqcount_raw_spinlock_t", &seq) < 0 ||
	    vmi_kernel_type_size(b->k, "timekeeper", &size) < 0 ||
	    size > sizeof(buf) ||
	    vmi_kernel_member(b->k, "timekeeper.xtime_sec", &o_sec, NULL) ||
	    vmi_kernel_member(b->k, "timekeeper.tkr_mono.xtime_nsec",
			      &o_nsec, NULL) ||
	    vmi_kernel_member(b->k, "timekeeper.tkr_mono.shift", &o_shift,
			      NULL) ||
	    vmi_kernel_member(b->k, "timekeeper.offs_real", &o_real, NULL) ||
	    vmi_kernel_member(b->k, "timekeeper.offs_boot", &o_boot, NULL)) {
		complain(b, K_SYS, "BTF has no timekeeper layout");
		return;
	}
	tk = a + ((seq + 7) & ~7ULL);	/* tk_core: { seq; timekeeper; } */
	if (kread(b, tk, buf, size)) {
		complain(b, K_SYS, "timekeeper at 0x%llx unreadable",
			 (unsigned long long)tk);
		return;
	}
	sec = G64(buf, o_sec);
	shift = G32(buf, o_shift);
	nsec = shift < 64 ? G64(buf, o_nsec) >> shift : 0;
	real = (int64_t)G64(buf, o_real);
	boot = (int64_t)G64(buf, o_boot);
	/* getboottime64: offs_real - offs_boot; uptime = realtime - that */
	b->s->btime = (real - boot) / 1000000000;
	b->s->uptime_ns = sec * 1000000000ULL + nsec - (uint64_t)(real - boot);
}

static void read_cpus(struct build *b)
{
	uint64_t a, pcpu, cs, ts = 0, o_idle = 0, model_off, vend_off;
	uint64_t o_fam, o_mod, o_step;
	uint32_t online;
	unsigned int cpu;
	bool have_ts;

	if (sym(b, "__num_online_cpus", &a) && kread(b, a, &online, 4) == 0)
		b->s->ncpus = online > VP_CPUS_MAX ? VP_CPUS_MAX : online;
	if (!b->s->ncpus)
		b->s->ncpus = 1;
	have_ts = vmi_kernel_symbol(b->k, "tick_cpu_sched", &ts) &&
		  vmi_kernel_member(b->k, "tick_sched.idle_sleeptime",
				    &o_idle, NULL) == 0;
	if (sym(b, "__per_cpu_offset", &pcpu) &&
	    sym(b, "kernel_cpustat", &cs)) {
		b->s->have_cpustat = true;
		for (cpu = 0; cpu < b->s->ncpus; cpu++) {
			uint64_t off, idle;

			if (kread_u64(b, pcpu + 8 * cpu, &off) ||
			    kread(b, cs + off, b->s->cpustat[cpu],
				  sizeof(b->s->cpustat[cpu]))) {
				complain(b, K_SYS, "kernel_cpustat of cpu %u "
					 "unreadable", cpu);
				b->s->have_cpustat = false;
				break;
			}
			/* With nohz the idle time is in tick_sched. */
			if (have_ts &&
			    kread_u64(b, ts + off + o_idle, &idle) == 0)
				b->s->cpustat[cpu][5] = idle;
			b->s->idle_ns += b->s->cpustat[cpu][5];
		}
	}
	if (sym(b, "boot_cpu_data", &a) &&
	    vmi_kernel_member(b->k, "cpuinfo_x86.x86_model_id", &model_off,
			      NULL) == 0 &&
	    vmi_kernel_member(b->k, "cpuinfo_x86.x86_vendor_id", &vend_off,
			      NULL) == 0 &&
	    vmi_kernel_member(b->k, "cpuinfo_x86.x86", &o_fam, NULL) == 0 &&
	    vmi_kernel_member(b->k, "cpuinfo_x86.x86_model", &o_mod,
			      NULL) == 0 &&
	    vmi_kernel_member(b->k, "cpuinfo_x86.x86_stepping", &o_step,
			      NULL) == 0) {
		uint8_t v;

		if (kread(b, a + model_off, b->s->cpu_model, 63) == 0)
			b->s->cpu_model[63] = '\0';
		if (kread(b, a + vend_off, b->s->cpu_vendor, 15) == 0)
			b->s->cpu_vendor[15] = '\0';
		if (kread(b, a + o_fam, &v, 1) == 0)
			b->s->cpu_family = v;
		if (kread(b, a + o_mod, &v, 1) == 0)
			b->s->cpu_model_nr = v;
		if (kread(b, a + o_step, &v, 1) == 0)
			b->s->cpu_stepping = v;
	}
}

static void read_mem(struct build *b)
{
	uint64_t a;

	if (sym(b, "_totalram_pages", &a))
		kread_u64(b, a, &b->s->mem_total_pages);
	if (sym(b, "vm_zone_stat", &a))	/* [NR_FREE_PAGES] is [0] */
		kread_u64(b, a, &b->s->mem_free_pages);
	if (sym(b, "avenrun", &a))
		kread(b, a, b->s->avenrun, sizeof(b->s->avenrun));
}

struct tty_walk {
	struct build *b;
};

static int tty_visit(void *arg, uint64_t entry)
{
	struct build *b = ((struct tty_walk *)arg)->b;
	struct vp_snapshot *s = b->s;
	uint64_t d = entry - b->f.d_list, dn, nm;
	struct vp_tty_driver *t;
	int32_t major, minor, num;
	int16_t type, subtype;
	void *nt;

	if (s->nttys >= TTY_DRIVERS_MAX)
		return -E2BIG;
	if (kread_u64(b, d + b->f.d_driver_name, &dn) ||
	    kread_u64(b, d + b->f.d_name, &nm) ||
	    kread(b, d + b->f.d_major, &major, 4) ||
	    kread(b, d + b->f.d_minor_start, &minor, 4) ||
	    kread(b, d + b->f.d_num, &num, 4) ||
	    kread(b, d + b->f.d_type, &type, 2) ||
	    kread(b, d + b->f.d_subtype, &subtype, 2))
		return -EFAULT;
	nt = realloc(s->ttys, (s->nttys + 1) * sizeof(*s->ttys));
	if (!nt)
		return -ENOMEM;
	s->ttys = nt;
	t = &s->ttys[s->nttys++];
	memset(t, 0, sizeof(*t));
	if (dn && vmi_kernel_half(dn, b->levels))
		cstr_at(b, dn, t->driver_name, sizeof(t->driver_name));
	if (nm && vmi_kernel_half(nm, b->levels))
		cstr_at(b, nm, t->name, sizeof(t->name));
	t->major = major;
	t->minor_start = minor;
	t->num = num;
	t->type = type;
	t->subtype = subtype;
	return 0;
}

static void read_ttys(struct build *b)
{
	struct tty_walk w = { b };
	uint64_t head;
	long n;

	if (!sym(b, "tty_drivers", &head))
		return;
	n = vmi_walk_list(vmi_kernel_kread, &b->kr, head, b->levels,
			  TTY_DRIVERS_MAX, tty_visit, &w);
	if (n < 0)
		complain(b, K_LIST, "tty_drivers: walk cut after %zu: %s",
			 b->s->nttys, strerror((int)-n));
}

/* ---- sockets and modules ---- */

static void coll_log(void *ctx, const char *msg)
{
	struct build *b = ctx;

	vp_snapshot_log(b->s, b->o, "%s", msg);
}

static void read_net_and_modules(struct build *b)
{
	struct vmi_sock_fd *fds;
	char e[256];
	size_t i;
	long n;

	if (vmi_sockets_collect(b->k, &b->c.out, &b->s->socks, coll_log, b,
				&b->c.dl, e, sizeof(e)) == 0)
		b->s->have_socks = true;
	else
		complain(b, K_SYS, "sockets not read: %s", e);
	if (b->c.timed_out)
		return;
	if (vmi_modules_collect(b->k, &b->c.out, &b->s->mods, coll_log, b,
				&b->c.dl, e, sizeof(e)) == 0)
		b->s->have_mods = true;
	else
		complain(b, K_SYS, "modules not read: %s", e);
	fds = malloc(VP_FDS_MAX * sizeof(*fds));
	if (!fds)
		return;
	for (i = 0; i < b->s->ntasks && !b->c.timed_out; i++) {
		struct vp_task *t = &b->s->tasks[i];

		if (t->kthread)
			continue;
		n = vmi_task_socket_fds(b->k, &b->c.out, t->va, fds,
					VP_FDS_MAX, e, sizeof(e));
		if (n == -E2BIG) {
			complain(b, K_ARGS, "pid %d: more than %u sockets, "
				 "the first kept", t->pid, VP_FDS_MAX);
			n = VP_FDS_MAX;
		} else if (n < 0) {
			if (!b->c.timed_out)
				complain(b, K_ARGS, "pid %d: fd table: %s",
					 t->pid, e);
			continue;
		}
		if (n == 0)
			continue;
		t->fds = malloc((size_t)n * sizeof(*fds));
		if (!t->fds)
			continue;
		memcpy(t->fds, fds, (size_t)n * sizeof(*fds));
		t->nfds = (size_t)n;
	}
	free(fds);
}

/* ---- the build ---- */

int vp_snapshot_build(const struct vmi_kernel *k, const struct vmi_phys *p,
		      const struct vp_build_opts *o, struct vp_snapshot **out,
		      char *err, size_t errlen)
{
	struct build b = { .k = k, .o = o };
	const struct vmi_kernel_info *ki = vmi_kernel_info(k);
	uint64_t t0 = vmi_now_ms(), head = 0, pid_max_va, init_task;
	int32_t pm;
	int rc;

	b.levels = ki->paging_levels;
	b.c.in = p;
	b.c.out = *p;
	b.c.out.read = c_read;
	b.c.out.is_local = c_is_local;
	b.c.out.ctx = &b.c;
	vmi_deadline_set(&b.c.dl, o ? o->timeout_ms : 0);
	b.kr.k = k;
	b.kr.p = &b.c.out;
	b.s = calloc(1, sizeof(*b.s));
	if (!b.s)
		return vmi_err(err, errlen, ENOMEM, "out of memory");
	rc = load_offsets(&b, err, errlen);
	if (rc < 0)
		goto fail;
	if (!vmi_kernel_symbol(k, "init_pid_ns", &b.init_pid_ns) ||
	    !vmi_kernel_symbol(k, "init_task", &init_task)) {
		rc = vmi_err(err, errlen, ENOENT,
			     "no symbol init_pid_ns or init_task");
		goto fail;
	}
	b.tbuf = malloc(b.f.t_size);
	b.sbuf = malloc(b.f.s_size);
	b.mbuf = malloc(b.f.m_size);
	if (!b.tbuf || !b.sbuf || !b.mbuf) {
		rc = vmi_err(err, errlen, ENOMEM, "out of memory");
		goto fail;
	}
	b.pid_max = VP_PID_MAX;
	if (vmi_kernel_symbol(k, "pid_max", &pid_max_va) &&
	    kread(&b, pid_max_va, &pm, 4) == 0 && pm > 0 && pm < VP_PID_MAX)
		b.pid_max = (unsigned int)pm;

	/* The pid table: every task the guest's /proc can name. */
	rc = kread_u64(&b, b.init_pid_ns + b.f.xa_head, &head);
	if (rc == 0)
		rc = xa_walk(&b, head, -1, 0);
	else
		complain(&b, K_PIDTAB, "pid table head unreadable: %s",
			 strerror(-rc));
	if (rc == -ENOMEM) {
		rc = vmi_err(err, errlen, ENOMEM, "out of memory");
		goto fail;
	}
	if (rc == -ETIMEDOUT || b.c.timed_out)
		complain(&b, K_TIME, "pid table walk cut by the build's time "
			 "budget (%llu ms) after %zu tasks",
			 (unsigned long long)(o ? o->timeout_ms : 0), b.nall);
	if (b.nall == 0 && !b.c.timed_out) {
		struct list_fill lf = { &b };
		long n;

		complain(&b, K_PIDTAB, "pid table gave no task: processes "
			 "from init_task.tasks instead");
		n = vmi_walk_list(vmi_kernel_kread, &b.kr,
				  init_task + b.f.t_tasks, b.levels,
				  b.pid_max, fill_visit, &lf);
		if (n < 0)
			complain(&b, K_LIST, "init_task.tasks: walk cut "
				 "after %zu tasks: %s", b.nall,
				 strerror((int)-n));
	}
	rc = group(&b);
	if (rc < 0) {
		rc = vmi_err(err, errlen, ENOMEM, "out of memory");
		goto fail;
	}
	read_args(&b);
	if (!b.c.timed_out)
		cross_check(&b, init_task);
	if (!b.c.timed_out) {
		uint64_t next32 = 0;
		uint32_t nx;

		read_uts(&b);
		read_time(&b);
		read_cpus(&b);
		read_mem(&b);
		read_ttys(&b);
		read_net_and_modules(&b);
		if (kread(&b, b.init_pid_ns + b.f.idr_next, &nx, 4) == 0)
			next32 = nx;
		b.s->last_pid = next32 ? (int)next32 - 1 : 0;
	}
	if (b.c.timed_out && !b.complaints[K_TIME])
		complain(&b, K_TIME, "build cut by its time budget (%llu ms)",
			 (unsigned long long)(o ? o->timeout_ms : 0));
	{
		size_t i;

		for (i = 0; i < b.s->ntasks; i++)
			if (b.s->tasks[i].state == 'R')
				b.s->nrunning++;
	}
	b.s->bytes_local = b.c.local;
	b.s->bytes_remote = b.c.remote;
	b.s->built_at_ms = vmi_now_ms();
	b.s->build_ms = b.s->built_at_ms - t0;
	*out = b.s;
	rc = 0;
	b.s = NULL;
fail:
	if (b.s)
		vp_snapshot_free(b.s);
	free(b.all);
	free(b.raw);
	free(b.tbuf);
	free(b.sbuf);
	free(b.mbuf);
	return rc;
}

void vp_snapshot_free(struct vp_snapshot *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->ntasks; i++) {
		free(s->tasks[i].cmdline);
		free(s->tasks[i].environ);
		free(s->tasks[i].tids);
		free(s->tasks[i].thr);
		free(s->tasks[i].fds);
	}
	vmi_socks_free(&s->socks);	/* zeroed when never collected */
	vmi_modules_free(&s->mods);
	for (i = 0; i < s->nlog; i++)
		free(s->log[i]);
	if (s->ext_free)
		s->ext_free(s->ext);
	free(s->tasks);
	free(s->ttys);
	free(s);
}

const struct vp_task *vp_snapshot_find(const struct vp_snapshot *s, int pid)
{
	size_t lo = 0, hi = s->ntasks;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->tasks[mid].pid == pid)
			return &s->tasks[mid];
		if (s->tasks[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
