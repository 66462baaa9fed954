/* SPDX-License-Identifier: MIT */
/*
 * One shadow /proc build: the guest's processes and system counters, read
 * once out of guest kernel memory (Linux 6.1, x86-64) and then only read.
 * The views (pid_stat.c, pid_status.c, pid_cmdline.c, sys_stat.c) format
 * a snapshot; they never go back to guest memory, so one `ps` run sees
 * one consistent picture.
 *
 * Where the processes come from, as the guest's own /proc lists them:
 * the pid table (init_pid_ns.idr, an xarray walked node by node: each
 * child's shift must be its parent's less 6, so the walk is a bounded
 * tree) gives every task; a task whose pid equals its tgid is a process,
 * the others are its threads.  init_task.tasks is walked too, as a
 * cross-check (each entry's next->prev must point back): a process
 * found in only one of them is logged.  If the pid table cannot be read
 * at all, the task list is used instead.
 *
 * Guest memory is hostile: every walk is capped (pid_max entries, xarray
 * nodes, string lengths) and cycle-checked; a non-canonical or
 * unreadable pointer ends that walk with a message in the snapshot's
 * log (and the log callback); a task whose pid entry no longer points
 * back at it once it was read (it exited meanwhile) is dropped, never
 * shown half; the whole build has a time budget, after which what was
 * complete is kept and the cut is logged.  User pages that are not
 * present (never touched, swapped out) leave cmdline/environ empty.
 */
#ifndef VMT_PROCFS_SNAPSHOT_H
#define VMT_PROCFS_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../introspect/modules.h"
#include "../introspect/sockets.h"

struct vmi_kernel;
struct vmi_phys;

#define VP_PID_MAX	4194304		/* PID_MAX_LIMIT on 64-bit */
#define VP_ARGS_MAX	(256u << 10)	/* cmdline / environ kept, bytes */
#define VP_ARGS_TOTAL	(64u << 20)	/* all of a snapshot's, bytes */
#define VP_TASKS_MAX	131072		/* tasks (threads included) kept */
#define VP_LOG_MAX	32		/* messages kept per snapshot */
#define VP_CPUS_MAX	256
#define VP_IRQS_MAX	65536		/* nr_irqs shown */
#define VP_FDS_MAX	4096		/* socket fds kept per process */
#define VP_GROUPS_MAX	64		/* supplementary groups kept */
#define VP_NODES_MAX	1024		/* MAX_NUMNODES, NODES_SHIFT 10 */

/* One thread-group leader (a /proc/PID directory), or one thread. */
struct vp_task {
	uint64_t va;			/* task_struct's kernel address */
	uint64_t mm_va, pid_va;		/* its mm_struct and struct pid */
	int pid, tgid, ppid, pgrp, sid;
	int tty_nr, tty_pgrp;		/* 0 / -1 without a controlling tty */
	char state;			/* R S D T t X Z P I */
	unsigned int state_idx;		/* index in the kernel's state names */
	unsigned int flags;		/* PF_* */
	/* as /proc shows it: task->comm, a kernel thread's full name, a
	 * workqueue worker's comm with "+desc" or "-desc" */
	char comm[64];
	uint32_t uid[4], gid[4];	/* real, effective, saved, fs */
	int umask;			/* -1 without fs */
	uint64_t min_flt, maj_flt, cmin_flt, cmaj_flt;
	uint64_t utime, stime, cutime, cstime, gtime, cgtime; /* ns */
	int prio, nice;
	unsigned int rt_priority, policy;
	int num_threads;
	uint64_t start_boottime;	/* ns since boot */
	int exit_signal, exit_code, cpu;
	uint64_t rsslim;
	uint64_t sig_pending, sig_blocked, sig_shpending;
	uint64_t sig_ignored, sig_caught;	/* from sighand->action[] */
	uint64_t nvcsw, nivcsw;
	bool kthread;

	bool has_mm;
	uint64_t total_vm, hiwater_vm, hiwater_rss, locked_vm, pinned_vm;
	uint64_t data_vm, exec_vm, stack_vm, pgtables_bytes;
	uint64_t rss[4];		/* file, anon, swapents, shmem (pages) */
	uint64_t start_code, end_code, start_data, end_data, start_brk;
	uint64_t start_stack, arg_start, arg_end, env_start, env_end;

	char *cmdline;			/* as /proc/PID/cmdline: NULs inside */
	size_t cmdline_len;
	char *environ;
	size_t environ_len;

	int *tids;			/* the group's thread ids, sorted */
	size_t ntids;
	/* the group's threads (leader included), as /proc/PID/task/TID
	 * shows each: its own times, faults and state (no cmdline, tids or
	 * threads of their own); NULL in the copies themselves */
	struct vp_task *thr;
	bool is_thread;			/* one of those copies */

	/* the rest of /proc/PID/status (task_state, task_sig, task_cap,
	 * task_seccomp, task_cpus_allowed, cpuset_task_status_allowed) */
	int tracer_pid;			/* 0 when not ptraced */
	unsigned int fdsize;		/* files->fdt->max_fds */
	uint32_t groups[VP_GROUPS_MAX];	/* supplementary groups */
	unsigned int ngroups;
	uint64_t sigq, sigq_lim;	/* queued signals of the user, rlimit */
	uint64_t cap[5];		/* inh prm eff bnd amb */
	uint64_t atomic_flags;		/* PFA_* */
	int seccomp_mode, seccomp_filters;
	uint64_t cpus_mask[VP_CPUS_MAX / 64];
	uint64_t mems_allowed[VP_NODES_MAX / 64];
	uint64_t hugetlb_pages;		/* mm->hugetlb_usage */
	bool core_dumping, thp_enabled;

	/* its file descriptors that are sockets (introspect/sockets.h) */
	struct vmi_sock_fd *fds;
	size_t nfds;
};

struct vp_tty_driver {
	char driver_name[32], name[32];
	int major, minor_start, num;
	int type, subtype;
};

/* /proc/meminfo's values (fs/proc/meminfo.c), pages unless said; a
 * have_* false leaves that line out. */
struct vp_meminfo {
	uint64_t total, free, available, buffers, cached, swapcached;
	uint64_t lru[5];	/* inactive/active anon, inactive/active file,
				 * unevictable */
	uint64_t mlocked, swap_total, swap_free, zswap, zswapped;
	uint64_t dirty, writeback, anon, mapped, shmem, kreclaimable;
	uint64_t sreclaimable, sunreclaim, kernel_stack_kb, pagetables;
	uint64_t sec_pagetables;
	uint64_t bounce, writeback_tmp, commit_limit, committed;
	uint64_t vmalloc_total_kb, vmalloc_used, percpu, hwcorrupt;
	uint64_t anon_thp, shmem_thp, shmem_pmd, file_thp, file_pmd;
	uint64_t cma_total, cma_free;
	uint64_t huge_total, huge_free, huge_rsvd, huge_surp, huge_kb;
	uint64_t hugetlb_kb;
	uint64_t direct[3];	/* DirectMap 4k 2M 1G, pages of that size */
	bool have_zswap, have_cma, have_hwcorrupt, have_thp, have_huge;
	bool have_direct, have_gbpages, have_secpt;
};

/* One online CPU as /proc/cpuinfo shows it (show_cpuinfo): its
 * cpuinfo_x86 (per_cpu(cpu_info)); flags, vmx, bugs and power are the
 * names of its set bits from the kernel's own tables, each " name". */
struct vp_cpu {
	unsigned int index, family, model, stepping, microcode, cache_kb;
	int cpuid_level, tlbsize, cache_alignment;
	unsigned int phys_id, siblings, core_id, cores, apicid, init_apicid;
	unsigned int clflush, phys_bits, virt_bits;
	unsigned long long lpj;
	bool tsc;
	char vendor[16], model_name[64];
	char *flags, *vmx, *bugs, *power;
};

struct vp_snapshot {
	struct vp_task *tasks;		/* processes, sorted by pid */
	size_t ntasks;
	size_t nthreads;		/* tasks of all groups */

	char hostname[65];		/* init_uts_ns nodename */
	char release[65], version[65];
	uint64_t uptime_ns;		/* CLOCK_BOOTTIME when built */
	int64_t btime;			/* boot time, seconds since the epoch */
	uint64_t idle_ns;		/* sum of the CPUs' idle time */
	unsigned int ncpus;
	uint64_t cpustat[VP_CPUS_MAX][10]; /* kernel_cpustat, ns */
	bool have_cpustat;
	char cpu_vendor[16], cpu_model[64];
	unsigned int cpu_family, cpu_model_nr, cpu_stepping;
	/* /proc/stat beyond the cpu lines (fs/proc/stat.c show_stat):
	 * intr's total and per-irq counts (kstat_irqs_usr of 0..nr_irqs-1),
	 * ctxt, processes (total_forks), procs_running, procs_blocked and
	 * the softirq counts; have_* false when they could not be read */
	uint64_t intr_sum;
	unsigned int *irqs, nirqs;
	uint64_t ctxt, forks;
	unsigned int procs_running, procs_blocked;
	uint64_t softirq_sum, softirqs[10];
	bool have_intr, have_irqs, have_sched, have_softirq, have_forks;
	uint64_t mem_total_pages, mem_free_pages;
	struct vp_meminfo *mi;		/* NULL: only MemTotal, MemFree */
	struct vp_cpu *cpus;		/* NULL: identification lines only */
	unsigned int ncpuinfo, hz, cpu_khz;
	/* for status: nr_cpu_ids, bits of nodemask_t, the mitigation
	 * modes of arch/x86/kernel/cpu/bugs.c and the two bugs they test
	 * (-1: unknown, the line then says "unknown") */
	unsigned int nr_cpu_ids, node_bits;
	int ssb_mode, v2_user_ibpb, v2_user_stibp;
	int bug_ssb, bug_spectre_v2;
	uint64_t avenrun[3];		/* fixed point, FSHIFT 11 */
	int last_pid;
	size_t nrunning;
	struct vp_tty_driver *ttys;
	size_t nttys;

	/* TCP and UDP sockets of the init namespace, loaded modules
	 * (introspect/sockets.h, modules.h); have_* false when they could
	 * not be read at all (the log says why). */
	struct vmi_socks socks;
	struct vmi_modules mods;
	bool have_socks, have_mods;

	/* The build itself. */
	uint64_t build_ms;
	uint64_t bytes_local, bytes_remote;
	uint64_t built_at_ms;		/* monotonic, for proc-refresh */
	unsigned int cut;		/* walks that were cut short */
	char *log[VP_LOG_MAX];		/* what was cut, and why */
	unsigned int nlog;
	void *ext;			/* more data of other collectors */
	void (*ext_free)(void *ext);
};

typedef void (*vp_log_fn)(void *ctx, const char *msg);

struct vp_build_opts {
	uint64_t timeout_ms;		/* the whole build; 0 = none */
	vp_log_fn log;			/* every cut, as it happens; may be NULL */
	void *logctx;
};

/*
 * Build a snapshot over the kernel @k recognised through @p.  Returns 0
 * with *@out set (cuts are in ->log, not errors), or -errno with @err set
 * when nothing could be read (a symbol or type missing).
 */
int vp_snapshot_build(const struct vmi_kernel *k, const struct vmi_phys *p,
		      const struct vp_build_opts *o, struct vp_snapshot **out,
		      char *err, size_t errlen);
void vp_snapshot_free(struct vp_snapshot *s);

/* The process @pid (a thread-group leader), or NULL. */
const struct vp_task *vp_snapshot_find(const struct vp_snapshot *s, int pid);

/* Record a cut in @s and pass it to the log callback. */
void vp_snapshot_log(struct vp_snapshot *s, const struct vp_build_opts *o,
		     const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
