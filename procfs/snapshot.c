// SPDX-License-Identifier: MIT
/* One shadow /proc build out of guest kernel memory.  See snapshot.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/btf.h>

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
#define RLIMIT_SIGPENDING 11
#define UCOUNT_RLIMIT_SIGPENDING 2
#define MMF_DISABLE_THP	(1ULL << 24)
#define NBUGINTS_DEFAULT 2	/* 6.1 stable; x86_bug_flags says */
#define X86_BUG_SPECTRE_V2 16
#define X86_BUG_SPEC_STORE_BYPASS 17
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
	int rc, local;

	if (c->timed_out || vmi_deadline_passed(&c->dl)) {
		c->timed_out = true;
		return -ETIMEDOUT;
	}
	/*
	 * Where the bytes are before the read: with remote paging the read
	 * itself brings them into the memory file, and asking afterwards
	 * would count every byte as local.
	 */
	local = vmi_phys_is_local(c->in, gpa, len);
	rc = c->in->read(c->in->ctx, gpa, buf, len);
	if (rc == 0) {
		if (local)
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
	/* the rest of status; each 0 / false when BTF lacks it (the line
	 * then shows 0 and the snapshot's log says so once) */
	struct {
		uint64_t t_files, f_fdt, fdt_max_fds;
		uint64_t t_ptrace, t_parent;
		uint64_t c_group_info, gi_ngroups, gi_gid;
		uint64_t c_ucounts, uc_rlimit;
		uint64_t c_cap[5];
		uint64_t t_atomic_flags, t_sc_mode, t_sc_filters;
		uint64_t t_cpus_mask, cpus_size, t_mems, mems_size;
		uint64_t m_hugetlb, m_core_state, m_flags;
		bool files, ptrace, groups, ucounts, caps, seccomp;
		bool cpus, mems, hugetlb, core, mflags;
	} st;
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

static bool opt(struct build *b, const char *path, uint64_t *off)
{
	return vmi_kernel_member(b->k, path, off, NULL) == 0;
}

/* Optional: a kernel without one of these still gets the rest. */
static void load_status_offsets(struct build *b)
{
	static const char *const caps[5] = {
		"cred.cap_inheritable", "cred.cap_permitted",
		"cred.cap_effective", "cred.cap_bset", "cred.cap_ambient",
	};
	typeof(b->f.st) *o = &b->f.st;
	int i;

	o->files = opt(b, "task_struct.files", &o->t_files) &&
		   opt(b, "files_struct.fdt", &o->f_fdt) &&
		   opt(b, "fdtable.max_fds", &o->fdt_max_fds);
	o->ptrace = opt(b, "task_struct.ptrace", &o->t_ptrace) &&
		    opt(b, "task_struct.parent", &o->t_parent);
	o->groups = opt(b, "cred.group_info", &o->c_group_info) &&
		    opt(b, "group_info.ngroups", &o->gi_ngroups) &&
		    opt(b, "group_info.gid", &o->gi_gid);
	o->ucounts = opt(b, "cred.ucounts", &o->c_ucounts) &&
		     opt(b, "ucounts.rlimit", &o->uc_rlimit);
	o->caps = true;
	for (i = 0; i < 5; i++)
		o->caps = o->caps && opt(b, caps[i], &o->c_cap[i]);
	o->seccomp = opt(b, "task_struct.atomic_flags", &o->t_atomic_flags) &&
		     opt(b, "task_struct.seccomp.mode", &o->t_sc_mode) &&
		     opt(b, "task_struct.seccomp.filter_count",
			 &o->t_sc_filters);
	o->cpus = vmi_kernel_member(b->k, "task_struct.cpus_mask",
				    &o->t_cpus_mask, &o->cpus_size) == 0;
	if (o->cpus_size > VP_CPUS_MAX / 8)
		o->cpus_size = VP_CPUS_MAX / 8;
	o->mems = vmi_kernel_member(b->k, "task_struct.mems_allowed",
				    &o->t_mems, &o->mems_size) == 0;
	if (o->mems_size > VP_NODES_MAX / 8)
		o->mems_size = VP_NODES_MAX / 8;
	o->hugetlb = opt(b, "mm_struct.hugetlb_usage", &o->m_hugetlb);
	o->core = opt(b, "mm_struct.core_state", &o->m_core_state);
	o->mflags = opt(b, "mm_struct.flags", &o->m_flags);
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
	load_status_offsets(b);
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
 * The status lines beyond the stat fields, from the task @tb and its
 * credentials at @cred (task_state, task_sig, task_cap, task_seccomp,
 * task_cpus_allowed, cpuset_task_status_allowed).  What cannot be read
 * stays 0.
 */
static void read_status_extra(struct build *b, const unsigned char *tb,
			      uint64_t cred, struct vp_task *t)
{
	typeof(b->f.st) *o = &b->f.st;
	uint64_t p, q;
	int32_t n;
	int i;

	if (o->files) {
		uint32_t max;

		p = G64(tb, o->t_files);
		if (p && vmi_kernel_half(p, b->levels) &&
		    kread_u64(b, p + o->f_fdt, &q) == 0 &&
		    vmi_kernel_half(q, b->levels) &&
		    kread(b, q + o->fdt_max_fds, &max, 4) == 0)
			t->fdsize = max;
	}
	if (o->ptrace && G32(tb, o->t_ptrace)) {
		int32_t tp;

		/* ptrace_parent: the tracer is task->parent */
		p = G64(tb, o->t_parent);
		if (vmi_kernel_half(p, b->levels) &&
		    kread(b, p + b->f.t_pid, &tp, 4) == 0)
			t->tracer_pid = tp;
	}
	if (o->groups && kread_u64(b, cred + o->c_group_info, &p) == 0 &&
	    vmi_kernel_half(p, b->levels) &&
	    kread(b, p + o->gi_ngroups, &n, 4) == 0 && n > 0) {
		if (n > VP_GROUPS_MAX) {
			complain(b, K_TASK, "pid %d: %d groups, the first %d "
				 "shown", t->pid, n, VP_GROUPS_MAX);
			n = VP_GROUPS_MAX;
		}
		if (kread(b, p + o->gi_gid, t->groups, 4 * (size_t)n) == 0)
			t->ngroups = (unsigned int)n;
	}
	/* task_sig: the user's pending signals, ucounts'
	 * rlimit[UCOUNT_RLIMIT_SIGPENDING] */
	if (o->ucounts && kread_u64(b, cred + o->c_ucounts, &p) == 0 &&
	    vmi_kernel_half(p, b->levels))
		kread_u64(b, p + o->uc_rlimit + 8 * UCOUNT_RLIMIT_SIGPENDING,
			  &t->sigq);
	/* kernel_cap_t of 6.1: two u32 words, low first: one u64 */
	for (i = 0; o->caps && i < 5; i++)
		kread_u64(b, cred + o->c_cap[i], &t->cap[i]);
	if (o->seccomp) {
		t->atomic_flags = G64(tb, o->t_atomic_flags);
		t->seccomp_mode = GI32(tb, o->t_sc_mode);
		t->seccomp_filters = GI32(tb, o->t_sc_filters);
	}
	if (o->cpus)
		memcpy(t->cpus_mask, tb + o->t_cpus_mask, o->cpus_size);
	if (o->mems)
		memcpy(t->mems_allowed, tb + o->t_mems, o->mems_size);
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

	read_status_extra(b, tb, cred, t);

	sig = G64(tb, f->t_signal);
	if (!vmi_kernel_half(sig, b->levels) || kread(b, sig, sb, f->s_size))
		return -EFAULT;
	t->sigq_lim = G64(sb, f->s_rlim + 16 * RLIMIT_SIGPENDING);
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
		if (f->st.hugetlb)
			t->hugetlb_pages = G64(mb, f->st.m_hugetlb);
		if (f->st.core)
			t->core_dumping = G64(mb, f->st.m_core_state) != 0;
		/* task_thp_status: CONFIG_TRANSPARENT_HUGEPAGE (Debian's)
		 * and not MMF_DISABLE_THP */
		t->thp_enabled = f->st.mflags &&
				 !(G64(mb, f->st.m_flags) & MMF_DISABLE_THP);
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
	uint64_t o_iowait = 0;
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
	if (have_ts && vmi_kernel_member(b->k, "tick_sched.iowait_sleeptime",
					 &o_iowait, NULL) < 0)
		o_iowait = 0;
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
			/* and the iowait time (get_iowait_time) */
			if (have_ts && o_iowait &&
			    kread_u64(b, ts + off + o_iowait, &idle) == 0)
				b->s->cpustat[cpu][6] = idle;
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

/* What status' cpus/mems lines and speculation lines need. */
static void read_spec(struct build *b)
{
	static const struct {
		const char *name;
		size_t at;
	} modes[] = {
		{ "ssb_mode", offsetof(struct vp_snapshot, ssb_mode) },
		{ "spectre_v2_user_ibpb",
		  offsetof(struct vp_snapshot, v2_user_ibpb) },
		{ "spectre_v2_user_stibp",
		  offsetof(struct vp_snapshot, v2_user_stibp) },
	};
	uint64_t a, cap_off, cap_size, capf, bugf, nbug = NBUGINTS_DEFAULT;
	uint64_t off, size;
	uint32_t v, word[2];
	size_t i;

	if (vmi_kernel_symbol(b->k, "nr_cpu_ids", &a) && kread(b, a, &v, 4) == 0)
		b->s->nr_cpu_ids = v > VP_CPUS_MAX ? VP_CPUS_MAX : v;
	if (!b->s->nr_cpu_ids)
		b->s->nr_cpu_ids = b->s->ncpus;
	if (vmi_kernel_member(b->k, "task_struct.mems_allowed", &off,
			      &size) == 0)
		b->s->node_bits = size * 8 > VP_NODES_MAX ? VP_NODES_MAX :
				  (unsigned int)size * 8;
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		int *m = (int *)((char *)b->s + modes[i].at);

		*m = -1;
		if (vmi_kernel_symbol(b->k, modes[i].name, &a) &&
		    kread(b, a, &v, 4) == 0)
			*m = (int)v;
	}
	b->s->bug_ssb = b->s->bug_spectre_v2 = -1;
	/* The bug words follow the NCAPINTS feature words in
	 * x86_capability; capflags.c puts x86_bug_flags[NBUGINTS * 32]
	 * right before x86_cap_flags, which tells NBUGINTS. */
	if (vmi_kernel_symbol(b->k, "x86_cap_flags", &capf) &&
	    vmi_kernel_symbol(b->k, "x86_bug_flags", &bugf) && capf > bugf &&
	    (capf - bugf) % 256 == 0 && (capf - bugf) / 256 <= 4)
		nbug = (capf - bugf) / 256;
	if (vmi_kernel_symbol(b->k, "boot_cpu_data", &a) &&
	    vmi_kernel_member(b->k, "cpuinfo_x86.x86_capability", &cap_off,
			      &cap_size) == 0 && cap_size / 4 > nbug &&
	    kread(b, a + cap_off + cap_size - 4 * nbug, word, 4) == 0) {
		b->s->bug_spectre_v2 = !!(word[0] & (1u << X86_BUG_SPECTRE_V2));
		b->s->bug_ssb = !!(word[0] & (1u << X86_BUG_SPEC_STORE_BYPASS));
	}
}

/* The entry at @index of the xarray whose head is @head (xa_load), or
 * 0.  Each level's shift must be 6 less than its parent's. */
static uint64_t xa_load_entry(struct build *b, uint64_t head, uint64_t index)
{
	uint64_t e = head;
	int last = -1, depth;

	for (depth = 0; depth < 12; depth++) {
		uint8_t shift;

		if ((e & 3) != 2 || e < 4096)	/* not a node */
			return depth || index == 0 ? e : 0;
		e -= 2;
		if (!vmi_kernel_half(e, b->levels) ||
		    kread(b, e + b->f.xn_shift, &shift, 1) ||
		    shift % XA_CHUNK_SHIFT || shift > 60 ||
		    (last >= 0 && shift != last - XA_CHUNK_SHIFT) ||
		    (last < 0 && (index >> shift) >= XA_SLOTS))
			return 0;
		last = shift;
		if (kread_u64(b, e + b->f.xn_slots +
			      8 * ((index >> shift) & (XA_SLOTS - 1)), &e))
			return 0;
		if (shift == 0)
			return (e & 3) == 2 ? 0 : e;
	}
	return 0;
}

/* The per-irq counts of the intr line: kstat_irqs_usr for 0..nr_irqs-1
 * (sparse irqs: irq_desc_tree).  A per-cpu or NMI interrupt is the sum
 * over the CPUs, the others desc->tot_count. */
#define IRQ_PER_CPU		(1u << 9)
#define IRQ_PER_CPU_DEVID	(1u << 17)
#define IRQS_NMI		0x2000u
static void read_irqs(struct build *b, uint64_t pcpu)
{
	uint64_t tree, nra, o_kstat, o_status, o_istate, o_tot, head;
	int32_t nr;
	unsigned int i, cpu;

	if (!vmi_kernel_symbol(b->k, "irq_desc_tree", &tree) ||
	    !sym(b, "nr_irqs", &nra) || kread(b, nra, &nr, 4) ||
	    vmi_kernel_member(b->k, "irq_desc.kstat_irqs", &o_kstat, NULL) ||
	    vmi_kernel_member(b->k, "irq_desc.status_use_accessors",
			      &o_status, NULL) ||
	    vmi_kernel_member(b->k, "irq_desc.core_internal_state__do_not_mess_with_it",
			      &o_istate, NULL) ||
	    vmi_kernel_member(b->k, "irq_desc.tot_count", &o_tot, NULL) ||
	    kread_u64(b, tree + b->f.xa_head, &head)) {
		complain(b, K_SYS, "per-irq counts not read (no sparse irq "
			 "table)");
		return;
	}
	if (nr <= 0 || nr > VP_IRQS_MAX) {
		complain(b, K_SYS, "nr_irqs %d implausible", nr);
		return;
	}
	b->s->irqs = calloc((size_t)nr, sizeof(*b->s->irqs));
	if (!b->s->irqs)
		return;
	for (i = 0; i < (unsigned int)nr && !b->c.timed_out; i++) {
		uint64_t d = xa_load_entry(b, head, i), kp;
		uint32_t st, is, tot, v, sum = 0;

		if (!d || !vmi_kernel_half(d, b->levels) ||
		    kread_u64(b, d + o_kstat, &kp) || !kp ||
		    kread(b, d + o_status, &st, 4) ||
		    kread(b, d + o_istate, &is, 4) ||
		    kread(b, d + o_tot, &tot, 4))
			continue;
		if (!(st & (IRQ_PER_CPU | IRQ_PER_CPU_DEVID)) &&
		    !(is & IRQS_NMI)) {
			b->s->irqs[i] = tot;
			continue;
		}
		for (cpu = 0; cpu < b->s->nr_cpu_ids; cpu++) {
			uint64_t off;

			if (kread_u64(b, pcpu + 8 * cpu, &off) ||
			    kread(b, kp + off, &v, 4))
				break;
			sum += v;
		}
		b->s->irqs[i] = sum;
	}
	if (b->c.timed_out) {
		free(b->s->irqs);
		b->s->irqs = NULL;
		return;
	}
	b->s->nirqs = (unsigned int)nr;
	b->s->have_irqs = true;
}

/*
 * show_stat's counters: per CPU kstat (irqs_sum, softirqs[]), irq_stat
 * (arch_irq_stat_cpu: the x86 vectors' counts) and the run queue
 * (nr_switches, nr_running, nr_iowait); irq_err_count; total_forks.
 * Summed over 0..nr_cpu_ids-1 (the possible CPUs of a guest without CPU
 * hot-plug), procs_running/blocked over the online ones as nr_running()
 * and nr_iowait() do.
 */
static void read_sched(struct build *b)
{
	/* arch_irq_stat_cpu's fields (x86_platform_ipis only with a
	 * platform IPI callback); kvm_posted_* and irq_tlb_count are not
	 * in the sum */
	static const char *const vec[] = {
		"__nmi_count", "apic_timer_irqs", "irq_spurious_count",
		"apic_perf_irqs", "apic_irq_work_irqs", "icr_read_retry_count",
		"irq_resched_count", "irq_call_count", "irq_thermal_count",
		"irq_threshold_count", "irq_deferred_error_count",
		"irq_hv_callback_count", "irq_hv_reenlightenment_count",
		"hyperv_stimer0_count", "x86_platform_ipis",
	};
	uint64_t pcpu, kst, o_irqs_sum, o_soft, irq_stat, rq, o_sw, o_run, o_io;
	uint64_t voff[sizeof(vec) / sizeof(vec[0])], a, cb = 0, mce[2];
	bool vok[sizeof(vec) / sizeof(vec[0])], have_mce[2];
	unsigned int cpu, j, nv = sizeof(vec) / sizeof(vec[0]);
	bool ok_k, ok_i, ok_r;

	if (!sym(b, "__per_cpu_offset", &pcpu))
		return;
	ok_k = sym(b, "kstat", &kst) &&
	       vmi_kernel_member(b->k, "kernel_stat.irqs_sum", &o_irqs_sum,
				 NULL) == 0 &&
	       vmi_kernel_member(b->k, "kernel_stat.softirqs", &o_soft,
				 NULL) == 0;
	ok_i = sym(b, "irq_stat", &irq_stat);
	for (j = 0; j < nv; j++) {
		char path[64];

		snprintf(path, sizeof(path), "irq_cpustat_t.%s", vec[j]);
		vok[j] = vmi_kernel_member(b->k, path, &voff[j], NULL) == 0;
	}
	/* x86_platform_ipis counts only with x86_platform_ipi_callback */
	if (!vmi_kernel_symbol(b->k, "x86_platform_ipi_callback", &a) ||
	    kread_u64(b, a, &cb) || !cb)
		vok[nv - 1] = false;
	have_mce[0] = vmi_kernel_symbol(b->k, "mce_exception_count", &mce[0]);
	have_mce[1] = vmi_kernel_symbol(b->k, "mce_poll_count", &mce[1]);
	ok_r = sym(b, "runqueues", &rq) &&
	       vmi_kernel_member(b->k, "rq.nr_switches", &o_sw, NULL) == 0 &&
	       vmi_kernel_member(b->k, "rq.nr_running", &o_run, NULL) == 0 &&
	       vmi_kernel_member(b->k, "rq.nr_iowait", &o_io, NULL) == 0;
	b->s->have_intr = ok_k && ok_i;
	b->s->have_softirq = ok_k;
	b->s->have_sched = ok_r;
	for (cpu = 0; cpu < b->s->nr_cpu_ids; cpu++) {
		uint64_t off, v64;
		uint32_t v, soft[10];

		if (kread_u64(b, pcpu + 8 * cpu, &off)) {
			b->s->have_intr = b->s->have_softirq = false;
			b->s->have_sched = false;
			break;
		}
		if (ok_k) {
			if (kread_u64(b, kst + off + o_irqs_sum, &v64) ||
			    kread(b, kst + off + o_soft, soft, sizeof(soft))) {
				b->s->have_intr = b->s->have_softirq = false;
			} else {
				b->s->intr_sum += v64;
				for (j = 0; j < 10; j++) {
					b->s->softirqs[j] += soft[j];
					b->s->softirq_sum += soft[j];
				}
			}
		}
		for (j = 0; ok_i && j < nv; j++)
			if (vok[j] && kread(b, irq_stat + off + voff[j], &v,
					    4) == 0)
				b->s->intr_sum += v;
		for (j = 0; j < 2; j++)
			if (have_mce[j] && kread(b, mce[j] + off, &v, 4) == 0)
				b->s->intr_sum += v;
		if (ok_r) {
			int32_t io;

			if (kread_u64(b, rq + off + o_sw, &v64) ||
			    kread(b, rq + off + o_run, &v, 4) ||
			    kread(b, rq + off + o_io, &io, 4)) {
				b->s->have_sched = false;
			} else {
				b->s->ctxt += v64;
				if (cpu < b->s->ncpus) {
					b->s->procs_running += v;
					b->s->procs_blocked += io > 0 ?
						(unsigned int)io : 0;
				}
			}
		}
	}
	if (vmi_kernel_symbol(b->k, "irq_err_count", &a)) {
		int32_t v;

		if (kread(b, a, &v, 4) == 0)
			b->s->intr_sum += (uint64_t)(int64_t)v;
	}
	if (vmi_kernel_symbol(b->k, "total_forks", &a) &&
	    kread_u64(b, a, &b->s->forks) == 0)
		b->s->have_forks = true;
	read_irqs(b, pcpu);
}

/* The value of enumerator @name of enum @type in the guest's BTF, or -1. */
static long enum_val(struct build *b, const char *type, const char *name)
{
	const struct btf *btf = vmi_kernel_btf(b->k);
	const struct btf_type *t;
	const struct btf_enum *e;
	__s32 id;
	int i;

	if (!btf)
		return -1;
	id = btf__find_by_name_kind(btf, type, BTF_KIND_ENUM);
	if (id < 0)
		return -1;
	t = btf__type_by_id(btf, id);
	e = btf_enum(t);
	for (i = 0; i < btf_vlen(t); i++)
		if (strcmp(btf__name_by_offset(btf, e[i].name_off), name) == 0)
			return e[i].val;
	return -1;
}

struct vmstat {
	struct build *b;
	uint64_t node, zone;		/* vm_node_stat, vm_zone_stat */
	bool ok;
};

/* global_node_page_state / global_zone_page_state: the global atomic,
 * negative (per-cpu diffs not folded yet) shown as 0 */
static uint64_t vmstat(struct vmstat *v, bool zone, const char *item)
{
	long i = enum_val(v->b, zone ? "zone_stat_item" : "node_stat_item",
			  item);
	int64_t val;

	if (i < 0 || i > 256 ||
	    kread(v->b, (zone ? v->zone : v->node) + 8 * (uint64_t)i, &val, 8)) {
		complain(v->b, K_SYS, "meminfo: no %s", item);
		v->ok = false;
		return 0;
	}
	return val < 0 ? 0 : (uint64_t)val;
}

static bool rd_sym(struct build *b, const char *name, void *buf, size_t len)
{
	uint64_t a;

	return vmi_kernel_symbol(b->k, name, &a) && kread(b, a, buf, len) == 0;
}

/* sum of low_wmark_pages over every zone of every node (for_each_zone) */
static uint64_t wmark_low(struct build *b)
{
	uint64_t nd, o_zones, zsize, o_wm, o_boost, zones_size, sum = 0;
	uint32_t nn = 1, n, z;

	if (!vmi_kernel_symbol(b->k, "node_data", &nd) ||
	    vmi_kernel_member(b->k, "pglist_data.node_zones", &o_zones,
			      &zones_size) ||
	    vmi_kernel_type_size(b->k, "zone", &zsize) || !zsize ||
	    vmi_kernel_member(b->k, "zone._watermark", &o_wm, NULL) ||
	    vmi_kernel_member(b->k, "zone.watermark_boost", &o_boost, NULL)) {
		complain(b, K_SYS, "meminfo: zone watermarks not found");
		return 0;
	}
	rd_sym(b, "nr_node_ids", &nn, 4);
	if (nn > VP_NODES_MAX)
		nn = VP_NODES_MAX;
	for (n = 0; n < nn; n++) {
		uint64_t pg;

		if (kread_u64(b, nd + 8 * n, &pg) || !pg ||
		    !vmi_kernel_half(pg, b->levels))
			continue;
		for (z = 0; z < zones_size / zsize && z < 8; z++) {
			uint64_t zone = pg + o_zones + z * zsize, wm, boost;

			/* _watermark[WMARK_MIN, WMARK_LOW, ...] */
			if (kread_u64(b, zone + o_wm + 8, &wm) == 0 &&
			    kread_u64(b, zone + o_boost, &boost) == 0)
				sum += wm + boost;
		}
	}
	return sum;
}

/* nr_blockdev_pages: the page cache of every block device inode */
struct bdev_walk {
	struct build *b;
	uint64_t o_sb_list, o_mapping, o_nrpages, sum;
};

static int bdev_visit(void *arg, uint64_t entry)
{
	struct bdev_walk *w = arg;
	uint64_t mapping, nr;

	if (kread_u64(w->b, entry - w->o_sb_list + w->o_mapping, &mapping) ||
	    !vmi_kernel_half(mapping, w->b->levels) ||
	    kread_u64(w->b, mapping + w->o_nrpages, &nr))
		return -EFAULT;
	w->sum += nr;
	return 0;
}

static uint64_t blockdev_pages(struct build *b)
{
	struct bdev_walk w = { .b = b };
	uint64_t sb, o_inodes;
	long n;

	if (!rd_sym(b, "blockdev_superblock", &sb, 8) ||
	    !vmi_kernel_half(sb, b->levels) ||
	    vmi_kernel_member(b->k, "super_block.s_inodes", &o_inodes, NULL) ||
	    vmi_kernel_member(b->k, "inode.i_sb_list", &w.o_sb_list, NULL) ||
	    vmi_kernel_member(b->k, "inode.i_mapping", &w.o_mapping, NULL) ||
	    vmi_kernel_member(b->k, "address_space.nrpages", &w.o_nrpages,
			      NULL)) {
		complain(b, K_SYS, "meminfo: block device inodes not found");
		return 0;
	}
	n = vmi_walk_list(vmi_kernel_kread, &b->kr, sb + o_inodes, b->levels,
			  1u << 16, bdev_visit, &w);	/* block devices */
	if (n < 0)
		complain(b, K_LIST, "blockdev_superblock inodes: walk cut: %s",
			 strerror((int)-n));
	return w.sum;
}

/* hugetlb_report_meminfo: the default hstate's counts, all hstates'
 * total */
static void read_hugetlb(struct build *b, struct vp_meminfo *m)
{
	uint64_t hs, hsize, o_order, o_nr, o_free, o_rsvd, o_surp;
	uint32_t max = 0, def = 0, i;

	if (!vmi_kernel_symbol(b->k, "hstates", &hs) ||
	    !rd_sym(b, "hugetlb_max_hstate", &max, 4) ||
	    !rd_sym(b, "default_hstate_idx", &def, 4) ||
	    vmi_kernel_type_size(b->k, "hstate", &hsize) ||
	    vmi_kernel_member(b->k, "hstate.order", &o_order, NULL) ||
	    vmi_kernel_member(b->k, "hstate.nr_huge_pages", &o_nr, NULL) ||
	    vmi_kernel_member(b->k, "hstate.free_huge_pages", &o_free, NULL) ||
	    vmi_kernel_member(b->k, "hstate.resv_huge_pages", &o_rsvd, NULL) ||
	    vmi_kernel_member(b->k, "hstate.surplus_huge_pages", &o_surp,
			      NULL) || max > 8 || def >= 8)
		return;
	m->have_huge = true;
	for (i = 0; i < max || i == def; i++) {
		uint64_t h = hs + i * hsize, nr = 0;
		uint32_t order = 0;

		if (kread(b, h + o_order, &order, 4) || order > 30 ||
		    kread_u64(b, h + o_nr, &nr)) {
			m->have_huge = false;
			return;
		}
		m->hugetlb_kb += nr << (order + 2);
		if (i == def) {
			m->huge_total = nr;
			m->huge_kb = 4ULL << order;
			kread_u64(b, h + o_free, &m->huge_free);
			kread_u64(b, h + o_rsvd, &m->huge_rsvd);
			kread_u64(b, h + o_surp, &m->huge_surp);
		}
	}
}

/*
 * /proc/meminfo's values, as meminfo_proc_show computes them from the
 * global counters (vm_node_stat, vm_zone_stat: read without folding the
 * per-cpu diffs, as the kernel does too).  Not exact: SwapCached is
 * NR_SWAPCACHE (the kernel sums the swap address spaces: the same pages);
 * SwapFree leaves out swap areas being swapped off (nr_to_be_unused).
 */
static void read_meminfo(struct build *b)
{
	static const char *const lru[5] = {
		"NR_INACTIVE_ANON", "NR_ACTIVE_ANON", "NR_INACTIVE_FILE",
		"NR_ACTIVE_FILE", "NR_UNEVICTABLE",
	};
	struct vp_meminfo *m = calloc(1, sizeof(*m));
	struct vmstat v = { .b = b, .ok = true };
	uint64_t file, reclaimable, pagecache, wl, misc, a, ratio = 0, kbytes = 0;
	int64_t avail, sw = 0, committed = 0;
	uint32_t cap1 = 0, u32;
	int i;

	if (!m)
		return;
	if (!vmi_kernel_symbol(b->k, "vm_node_stat", &v.node) ||
	    !vmi_kernel_symbol(b->k, "vm_zone_stat", &v.zone) ||
	    !rd_sym(b, "_totalram_pages", &m->total, 8)) {
		complain(b, K_SYS, "meminfo: no vm_node_stat/vm_zone_stat");
		free(m);
		return;
	}
	m->free = vmstat(&v, true, "NR_FREE_PAGES");
	m->mlocked = vmstat(&v, true, "NR_MLOCK");
	m->bounce = vmstat(&v, true, "NR_BOUNCE");
	for (i = 0; i < 5; i++)
		m->lru[i] = vmstat(&v, false, lru[i]);
	file = vmstat(&v, false, "NR_FILE_PAGES");
	m->swapcached = vmstat(&v, false, "NR_SWAPCACHE");
	m->dirty = vmstat(&v, false, "NR_FILE_DIRTY");
	m->writeback = vmstat(&v, false, "NR_WRITEBACK");
	m->anon = vmstat(&v, false, "NR_ANON_MAPPED");
	m->mapped = vmstat(&v, false, "NR_FILE_MAPPED");
	m->shmem = vmstat(&v, false, "NR_SHMEM");
	m->sreclaimable = vmstat(&v, false, "NR_SLAB_RECLAIMABLE_B");
	m->sunreclaim = vmstat(&v, false, "NR_SLAB_UNRECLAIMABLE_B");
	misc = vmstat(&v, false, "NR_KERNEL_MISC_RECLAIMABLE");
	m->kernel_stack_kb = vmstat(&v, false, "NR_KERNEL_STACK_KB");
	m->pagetables = vmstat(&v, false, "NR_PAGETABLE");
	/* SecPageTables (6.2, in Debian's 6.1 too): with its counter */
	m->have_secpt = enum_val(b, "node_stat_item",
				 "NR_SECONDARY_PAGETABLE") >= 0;
	if (m->have_secpt)
		m->sec_pagetables = vmstat(&v, false, "NR_SECONDARY_PAGETABLE");
	m->writeback_tmp = vmstat(&v, false, "NR_WRITEBACK_TEMP");
	m->have_thp = vmi_kernel_symbol(b->k, "transparent_hugepage_flags", &a);
	if (m->have_thp) {	/* counted in pages since 5.13 */
		m->anon_thp = vmstat(&v, false, "NR_ANON_THPS");
		m->shmem_thp = vmstat(&v, false, "NR_SHMEM_THPS");
		m->shmem_pmd = vmstat(&v, false, "NR_SHMEM_PMDMAPPED");
		m->file_thp = vmstat(&v, false, "NR_FILE_THPS");
		m->file_pmd = vmstat(&v, false, "NR_FILE_PMDMAPPED");
	}
	/* totalcma_pages exists without CONFIG_CMA too; cma_areas not */
	m->have_cma = vmi_kernel_symbol(b->k, "cma_areas", &a) &&
		      rd_sym(b, "totalcma_pages", &m->cma_total, 8);
	if (m->have_cma)
		m->cma_free = vmstat(&v, true, "NR_FREE_CMA_PAGES");
	if (!v.ok) {
		free(m);
		return;
	}
	m->buffers = blockdev_pages(b);
	/* Cached: the file pages less swap cache and buffers */
	m->cached = file > m->swapcached + m->buffers ?
		    file - m->swapcached - m->buffers : 0;
	m->kreclaimable = m->sreclaimable + misc;
	/* si_mem_available */
	wl = wmark_low(b);
	u32 = 0;
	a = 0;
	rd_sym(b, "totalreserve_pages", &a, 8);
	avail = (int64_t)m->free - (int64_t)a;
	pagecache = m->lru[2] + m->lru[3];
	pagecache -= pagecache / 2 < wl ? pagecache / 2 : wl;
	avail += (int64_t)pagecache;
	reclaimable = m->sreclaimable + misc;
	avail += (int64_t)(reclaimable - (reclaimable / 2 < wl ?
					   reclaimable / 2 : wl));
	m->available = avail < 0 ? 0 : (uint64_t)avail;
	/* si_swapinfo */
	rd_sym(b, "total_swap_pages", &m->swap_total, 8);
	rd_sym(b, "nr_swap_pages", &sw, 8);
	m->swap_free = sw < 0 ? 0 : (uint64_t)sw;
	/* vm_commit_limit, vm_memory_committed (percpu_counter's count) */
	rd_sym(b, "sysctl_overcommit_kbytes", &kbytes, 8);
	rd_sym(b, "sysctl_overcommit_ratio", &u32, 4);
	ratio = u32;
	if (kbytes)
		m->commit_limit = kbytes >> 2;
	else
		m->commit_limit = (m->total - m->hugetlb_kb / 4) * ratio / 100;
	m->commit_limit += m->swap_total;
	/* percpu_counter_sum_positive: count plus the CPUs' deltas */
	{
		uint64_t pc, o_count, o_ctrs, ctrs, pcpu, off;
		unsigned int cpu;
		int32_t d;

		if (vmi_kernel_symbol(b->k, "vm_committed_as", &pc) &&
		    vmi_kernel_member(b->k, "percpu_counter.count", &o_count,
				      NULL) == 0 &&
		    vmi_kernel_member(b->k, "percpu_counter.counters",
				      &o_ctrs, NULL) == 0 &&
		    kread(b, pc + o_count, &committed, 8) == 0 &&
		    kread_u64(b, pc + o_ctrs, &ctrs) == 0 &&
		    vmi_kernel_symbol(b->k, "__per_cpu_offset", &pcpu))
			for (cpu = 0; cpu < b->s->ncpus; cpu++)
				if (kread_u64(b, pcpu + 8 * cpu, &off) == 0 &&
				    kread(b, ctrs + off, &d, 4) == 0)
					committed += d;
	}
	m->committed = committed < 0 ? 0 : (uint64_t)committed;
	/* VMALLOC_SIZE_TB: 32 with 4 paging levels, 12800 with 5 */
	m->vmalloc_total_kb = ((b->levels == 5 ? 12800ULL : 32ULL) << 30) - 1;
	rd_sym(b, "nr_vmalloc_pages", &m->vmalloc_used, 8);
	{
		int32_t units = 0;
		uint64_t pop = 0;

		if (rd_sym(b, "pcpu_nr_populated", &pop, 8) &&
		    rd_sym(b, "pcpu_nr_units", &units, 4) && units > 0)
			m->percpu = pop * (uint64_t)units;
	}
	m->have_hwcorrupt = rd_sym(b, "num_poisoned_pages", &m->hwcorrupt, 8);
	m->have_zswap = vmi_kernel_symbol(b->k, "zswap_stored_pages", &a);
	if (m->have_zswap) {
		uint64_t bytes = 0;
		int32_t stored = 0;

		rd_sym(b, "zswap_pool_total_size", &bytes, 8);
		rd_sym(b, "zswap_stored_pages", &stored, 4);
		m->zswap = bytes >> 12;
		m->zswapped = stored < 0 ? 0 : (uint64_t)stored;
	}
	read_hugetlb(b, m);
	if (!kbytes)	/* hugetlb_total_pages, now that it is known */
		m->commit_limit = (m->total - m->hugetlb_kb / 4) * ratio / 100 +
				  m->swap_total;
	/* arch_report_meminfo: direct_pages_count[PG_LEVEL_4K..1G];
	 * DirectMap1G only with X86_FEATURE_GBPAGES (word 1, bit 26) */
	{
		uint64_t dpc[4], off;

		if (rd_sym(b, "direct_pages_count", dpc, sizeof(dpc))) {
			m->have_direct = true;
			memcpy(m->direct, dpc + 1, sizeof(m->direct));
		}
		if (vmi_kernel_symbol(b->k, "boot_cpu_data", &a) &&
		    vmi_kernel_member(b->k, "cpuinfo_x86.x86_capability",
				      &off, NULL) == 0 &&
		    kread(b, a + off + 4, &cap1, 4) == 0)
			m->have_gbpages = cap1 >> 26 & 1;
	}
	b->s->mi = m;
}

/* Append " name" for each set bit of @words (@nbits) that the guest's
 * table at @table (an array of char *) names; *@out malloc'd. */
static void bit_names(struct build *b, const uint32_t *words,
		      unsigned int nbits, uint64_t table, unsigned int tabn,
		      bool power, char **out)
{
	char *buf = NULL, name[64];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	unsigned int i;

	if (!f)
		return;
	for (i = 0; i < nbits; i++) {
		uint64_t p = 0;

		if (!(words[i / 32] >> (i % 32) & 1))
			continue;
		if (i < tabn && table && kread_u64(b, table + 8 * i, &p) == 0 &&
		    p && vmi_kernel_half(p, b->levels) &&
		    vmi_read_cstr(vmi_kernel_kread, &b->kr, p, name,
				  sizeof(name)) >= 0) {
			/* x86_power_flags: "" names print nothing */
			if (!power || name[0])
				fprintf(f, " %s", name);
		} else if (power) {
			fprintf(f, " [%u]", i);
		}
	}
	if (fclose(f) != 0) {
		free(buf);
		return;
	}
	*out = buf;
}

/* HZ, from jiffies_64 against the uptime: INITIAL_JIFFIES is
 * (unsigned int)(-300 * HZ) */
static unsigned int guess_hz(struct build *b)
{
	static const unsigned int cand[] = { 100, 250, 300, 1000 };
	uint64_t j, best = 0, err, best_err = UINT64_MAX;
	size_t i;

	if (!rd_sym(b, "jiffies_64", &j, 8) || !b->s->uptime_ns)
		return 250;
	for (i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		uint64_t ticks = j - (uint32_t)(-300 * (int)cand[i]);
		uint64_t want = b->s->uptime_ns / (1000000000 / cand[i]);

		err = ticks > want ? ticks - want : want - ticks;
		if (err < best_err) {
			best_err = err;
			best = cand[i];
		}
	}
	return (unsigned int)best;
}

#define X86_FEATURE_TSC		4	/* word 0 */
#define X86_FEATURE_VMX		(4 * 32 + 5)
/*
 * show_cpuinfo's data for each online CPU.  cpu MHz is cpu_khz: the
 * kernel prints arch_freq_get_on_cpu, which is cpu_khz on a CPU without
 * APERF/MPERF (TCG, most VMs) or a cpufreq driver; with those it
 * samples the clock, which the shadow cannot.
 */
static void read_cpuinfo(struct build *b)
{
	static const struct {
		const char *name;
		size_t at;
		int size;
	} fld[] = {
#define F(name, field, size) { name, offsetof(struct vp_cpu, field), size }
		F("x86", family, 1), F("x86_model", model, 1),
		F("x86_stepping", stepping, 1), F("microcode", microcode, 4),
		F("x86_cache_size", cache_kb, 4),
		F("cpuid_level", cpuid_level, 4), F("x86_tlbsize", tlbsize, 4),
		F("x86_cache_alignment", cache_alignment, 4),
		F("phys_proc_id", phys_id, 2), F("cpu_core_id", core_id, 2),
		F("booted_cores", cores, 2), F("apicid", apicid, 2),
		F("initial_apicid", init_apicid, 2),
		F("x86_clflush_size", clflush, 2),
		F("x86_phys_bits", phys_bits, 1),
		F("x86_virt_bits", virt_bits, 1),
		F("cpu_index", index, 2),
#undef F
	};
	uint64_t off[sizeof(fld) / sizeof(fld[0])], pcpu, ci, core_map;
	uint64_t o_cap, cap_size, o_vmx, vmx_size, o_vendor, o_model, o_lpj;
	uint64_t o_power, capf = 0, bugf = 0, vmxf = 0, powf = 0, csize;
	uint64_t online[VP_CPUS_MAX / 64] = { 0 }, a;
	unsigned int ncap, nbug = NBUGINTS_DEFAULT, cpu, n = 0, i;
	unsigned char *cb;
	struct vp_cpu *cpus;

	if (!vmi_kernel_symbol(b->k, "__per_cpu_offset", &pcpu) ||
	    !vmi_kernel_symbol(b->k, "cpu_info", &ci) ||
	    vmi_kernel_type_size(b->k, "cpuinfo_x86", &csize) ||
	    csize > 4096 ||
	    vmi_kernel_member(b->k, "cpuinfo_x86.x86_capability", &o_cap,
			      &cap_size) || cap_size > 64 * 4 ||
	    vmi_kernel_member(b->k, "cpuinfo_x86.x86_vendor_id", &o_vendor,
			      NULL) ||
	    vmi_kernel_member(b->k, "cpuinfo_x86.x86_model_id", &o_model,
			      NULL) ||
	    vmi_kernel_member(b->k, "cpuinfo_x86.loops_per_jiffy", &o_lpj,
			      NULL) ||
	    vmi_kernel_member(b->k, "cpuinfo_x86.x86_power", &o_power,
			      NULL) ||
	    !vmi_kernel_symbol(b->k, "__cpu_online_mask", &a) ||
	    kread(b, a, online, sizeof(online))) {
		complain(b, K_SYS, "cpuinfo: cpu_info layout not found");
		return;
	}
	for (i = 0; i < sizeof(fld) / sizeof(fld[0]); i++) {
		char path[64];

		snprintf(path, sizeof(path), "cpuinfo_x86.%s", fld[i].name);
		if (vmi_kernel_member(b->k, path, &off[i], NULL)) {
			complain(b, K_SYS, "cpuinfo: BTF has no %s", path);
			return;
		}
	}
	if (vmi_kernel_member(b->k, "cpuinfo_x86.vmx_capability", &o_vmx,
			      &vmx_size) || vmx_size > 64)
		vmx_size = 0;
	vmi_kernel_symbol(b->k, "x86_cap_flags", &capf);
	vmi_kernel_symbol(b->k, "x86_bug_flags", &bugf);
	vmi_kernel_symbol(b->k, "x86_vmx_flags", &vmxf);
	vmi_kernel_symbol(b->k, "x86_power_flags", &powf);
	if (capf > bugf && bugf && (capf - bugf) % 256 == 0 &&
	    (capf - bugf) / 256 <= 4)
		nbug = (unsigned int)((capf - bugf) / 256);
	if (cap_size / 4 <= nbug)
		return;
	ncap = (unsigned int)(cap_size / 4) - nbug;
	if (!vmi_kernel_symbol(b->k, "cpu_core_map", &core_map))
		core_map = 0;
	cpus = calloc(b->s->ncpus, sizeof(*cpus));
	cb = malloc(csize);
	if (!cpus || !cb) {
		free(cpus);
		free(cb);
		return;
	}
	for (cpu = 0; cpu < VP_CPUS_MAX && n < b->s->ncpus; cpu++) {
		struct vp_cpu *c = &cpus[n];
		uint64_t po, mask[VP_CPUS_MAX / 64], mp;
		uint32_t caps[64];

		if (!(online[cpu / 64] >> (cpu % 64) & 1))
			continue;
		if (kread_u64(b, pcpu + 8 * cpu, &po) ||
		    kread(b, ci + po, cb, csize)) {
			complain(b, K_SYS, "cpuinfo: cpu %u unreadable", cpu);
			break;
		}
		for (i = 0; i < sizeof(fld) / sizeof(fld[0]); i++) {
			uint64_t v = get(cb, off[i], (size_t)fld[i].size);

			if (fld[i].size == 4)
				*(int *)((char *)c + fld[i].at) = (int)v;
			else
				*(unsigned int *)((char *)c + fld[i].at) =
					(unsigned int)v;
		}
		memcpy(c->vendor, cb + o_vendor, 15);
		memcpy(c->model_name, cb + o_model, 63);
		c->lpj = G64(cb, o_lpj);
		memcpy(caps, cb + o_cap, cap_size);
		c->tsc = caps[0] >> X86_FEATURE_TSC & 1;
		bit_names(b, caps, ncap * 32, capf, ncap * 32, false,
			  &c->flags);
		bit_names(b, caps + ncap, nbug * 32, bugf, nbug * 32, false,
			  &c->bugs);
		if (vmx_size && vmxf && (caps[X86_FEATURE_VMX / 32] >>
					 (X86_FEATURE_VMX % 32) & 1)) {
			uint32_t vw[16];

			memcpy(vw, cb + o_vmx, vmx_size);
			if (vw[0])
				bit_names(b, vw, (unsigned int)vmx_size * 8,
					  vmxf, (unsigned int)vmx_size * 8,
					  false, &c->vmx);
		}
		{
			uint32_t pw = G32(cb, o_power);

			bit_names(b, &pw, 32, powf, 32, true, &c->power);
		}
		/* siblings: cpumask_weight(topology_core_cpumask(cpu));
		 * cpu_core_map is a cpumask_var_t (a pointer with
		 * CPUMASK_OFFSTACK) */
		/* an off-stack mask is allocated for nr_cpu_ids bits
		 * only: read no further */
		c->siblings = 1;
		memset(mask, 0, sizeof(mask));
		if (core_map && kread_u64(b, core_map + po, &mp) == 0 &&
		    vmi_kernel_half(mp, b->levels) &&
		    kread(b, mp, mask, (b->s->nr_cpu_ids + 63) / 64 * 8) == 0) {
			c->siblings = 0;
			for (i = 0; i < b->s->nr_cpu_ids; i++)
				c->siblings += mask[i / 64] >> (i % 64) & 1;
		}
		n++;
	}
	free(cb);
	b->s->cpus = cpus;
	b->s->ncpuinfo = n;
	b->s->hz = guess_hz(b);
	rd_sym(b, "cpu_khz", &b->s->cpu_khz, 4);
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
		read_spec(&b);
		read_sched(&b);
		read_mem(&b);
		read_meminfo(&b);
		read_cpuinfo(&b);
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
	free(s->irqs);
	free(s->mi);
	for (i = 0; s->cpus && i < s->ncpuinfo; i++) {
		free(s->cpus[i].flags);
		free(s->cpus[i].vmx);
		free(s->cpus[i].bugs);
		free(s->cpus[i].power);
	}
	free(s->cpus);
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
