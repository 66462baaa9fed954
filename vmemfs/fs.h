/* SPDX-License-Identifier: MIT */
/* The FUSE front end: what a mount of one VM shows.  See fs.c. */
#ifndef VMEMFS_FS_H
#define VMEMFS_FS_H

#define FUSE_USE_VERSION 312	/* fuse_loop_cfg_set_max_threads() */
#include <fuse_lowlevel.h>
#include <sys/types.h>
#include <time.h>

#include "fs_proc.h"
#include "kernel_view.h"
#include "physmem.h"
#include "reader.h"

/* Largest read we ask the kernel to send in one request. */
#define VMEM_FS_MAX_IO (1024 * 1024)

/*
 * A read whose rest needs a sub-host waits for it on one of at most this
 * many threads per sub-host; more such reads wait in the sub-host's queue
 * (served by those threads when they are done) and fail with EIO when
 * they waited a whole timeout there.  libfuse runs VMEM_FS_LOCAL_THREADS
 * threads more than all the sub-hosts may hold, so readers stuck on a
 * silent sub-host cannot hold up local reads, opens, stats or map, nor
 * the other sub-hosts.  16 is four times the direct backend's connections
 * per sub-host (a fetch beyond those waits for one anyway).
 */
#define VMEM_FS_REMOTE_THREADS 16
#define VMEM_FS_LOCAL_THREADS 10	/* libfuse's own default */

struct vmem_fs_remote;

struct vmem_fs {
	struct vmem_reader reader;
	struct vmem_physmem physmem;
	struct vmem_kernel_view kview;	/* `kernel` and `vmcore` */
	struct vmem_proc proc;		/* proc/ (fs_proc.c) */
	uid_t uid;
	gid_t gid;
	struct timespec start_time;
	int allow_mmap;		/* -o allow_mmap: serve page-cache reads */
	struct vmem_fs_remote *remote;	/* one per sub-host */
	struct fuse_session *se;	/* set before the loop runs */
};

extern const struct fuse_lowlevel_ops vmem_fs_ops;

/* The most threads the session loop needs (its max_threads). */
unsigned int vmem_fs_max_threads(const struct vmem_fs *fs);

/* Set up the sub-hosts' queues before the session loop; 0, or -1 with a
 * message.  Free them after the loop has ended. */
int vmem_fs_remote_start(struct vmem_fs *fs, char *err, size_t errlen);
void vmem_fs_remote_stop(struct vmem_fs *fs);

#endif
