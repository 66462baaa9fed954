/* SPDX-License-Identifier: MIT */
/*
 * The mount's proc/: a shadow of the guest's /proc for unmodified ps,
 * served from snapshots (procfs/snapshot.h) built over the guest kernel
 * the mount recognised (kernel_view.h).  fs.c only dispatches here: every
 * inode of the tree is at or above VMEM_PROC_INO_BASE.
 *
 *   proc/                 stat uptime meminfo cpuinfo loadavg self tty/
 *                         and one PID/ directory per guest process
 *   proc/PID/             stat status statm comm cmdline environ fd/
 *                         task/; owned by the
 *                         task's euid/egid (busybox ps shows the owner)
 *   proc/self             a symlink to the caller's pid (its tgid on this
 *                         host: FUSE names the calling thread)
 *   proc/CALLER/          the host process reading its own /proc/PID
 *                         (procps needs /proc/self/stat to parse): found by
 *                         lookup, never listed, holds a minimal `stat` and
 *                         an empty task/ (procps lists threads only then)
 *   proc/PID/task/TID/    stat status cmdline of each thread (ps -L)
 *   proc/tty/drivers      for ps's TTY column
 *   proc/sys/kernel/      hostname, osrelease (vmemfs-exec's hostname)
 *   proc/net/             tcp tcp6 udp udp6 (procfs/net_*.c), for netstat
 *   proc/modules          (procfs/modules.c), for lsmod
 *   proc/PID/fd/N         a link "socket:[INODE]" per socket descriptor
 *                         (only sockets: what netstat -p looks for)
 *   sys/module/NAME/      refcnt coresize initsize initstate taint and
 *                         holders/ (links ../../USER), for lsmod
 *
 * A snapshot is built at the first access after proc-refresh (0: at
 * every opendir of proc/), within the VM's timeout, and then served
 * unchanged.  Every file is direct_io with size 0, like /proc; its text
 * is made at open, so each open file is one consistent value.
 */
#ifndef VMEMFS_FS_PROC_H
#define VMEMFS_FS_PROC_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312	/* as fs.h */
#endif
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "kernel_view.h"
#include "stats.h"

#define VMEM_PROC_INO_BASE (1ULL << 40)

struct vmem_proc_snap;

struct vmem_proc {
	struct vmem_kernel_view *kv;
	struct vmem_proc_stats *st;
	uint64_t refresh_ms, timeout_ms;
	uid_t uid;
	gid_t gid;
	struct timespec mtime;
	pthread_mutex_t lock;		/* cur */
	pthread_mutex_t build_lock;	/* one build at a time */
	struct vmem_proc_snap *cur;
	uint64_t builds_started;	/* under build_lock; read atomically */
};

void vmem_proc_init(struct vmem_proc *pr, struct vmem_kernel_view *kv,
		    struct vmem_proc_stats *st, uint64_t refresh_ms,
		    uint64_t timeout_ms, uid_t uid, gid_t gid);
void vmem_proc_fini(struct vmem_proc *pr);

static inline bool vmem_proc_ino(fuse_ino_t ino)
{
	return ino >= VMEM_PROC_INO_BASE;
}

/* The root's "proc" and "sys" entries. */
void vmem_proc_lookup_root(struct vmem_proc *pr, fuse_req_t req,
			   const char *name);
fuse_ino_t vmem_proc_root_ino(const char *name);
/* The operations on inodes for which vmem_proc_ino() holds. */
void vmem_proc_lookup(struct vmem_proc *pr, fuse_req_t req,
		      fuse_ino_t parent, const char *name);
void vmem_proc_getattr(struct vmem_proc *pr, fuse_req_t req, fuse_ino_t ino);
void vmem_proc_readlink(struct vmem_proc *pr, fuse_req_t req, fuse_ino_t ino);
void vmem_proc_opendir(struct vmem_proc *pr, fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi);
void vmem_proc_readdir(struct vmem_proc *pr, fuse_req_t req, fuse_ino_t ino,
		       size_t size, off_t off, struct fuse_file_info *fi);
void vmem_proc_releasedir(struct vmem_proc *pr, fuse_req_t req,
			  fuse_ino_t ino, struct fuse_file_info *fi);
void vmem_proc_open(struct vmem_proc *pr, fuse_req_t req, fuse_ino_t ino,
		    struct fuse_file_info *fi);
void vmem_proc_read(struct vmem_proc *pr, fuse_req_t req, size_t size,
		    off_t off, struct fuse_file_info *fi);
void vmem_proc_release(struct vmem_proc *pr, fuse_req_t req,
		       struct fuse_file_info *fi);

#endif
