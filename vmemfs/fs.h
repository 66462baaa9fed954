/* SPDX-License-Identifier: MIT */
/* The FUSE front end: what a mount of one VM shows.  See fs.c. */
#ifndef VMEMFS_FS_H
#define VMEMFS_FS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <sys/types.h>
#include <time.h>

#include "physmem.h"
#include "reader.h"

/* Largest read we ask the kernel to send in one request. */
#define VMEM_FS_MAX_IO (1024 * 1024)

/*
 * Threads per sub-host that serve reads needing that sub-host.  FUSE's
 * own worker threads never wait on a remote peer: a read that needs one
 * is handed to the pool of the sub-host it needs first and answered from
 * there, so a hung sub-host can tie up only its own pool, never local
 * reads, opens or other sub-hosts.  More reads than threads wait in the
 * pool's queue; one that waited a whole timeout there fails with EIO.
 * 16 is four times the direct backend's connections per sub-host (a
 * fetch beyond those waits for one), so healthy sub-hosts never wait on
 * the queue for long.
 */
#define VMEM_FS_REMOTE_THREADS 16

struct vmem_fs_remote;

struct vmem_fs {
	struct vmem_reader reader;
	struct vmem_physmem physmem;
	uid_t uid;
	gid_t gid;
	struct timespec start_time;
	struct vmem_fs_remote *remote;	/* one pool per sub-host */
};

extern const struct fuse_lowlevel_ops vmem_fs_ops;

/*
 * Set up the remote-read pools (threads start on demand) before the
 * session loop runs, after any fork; 0, or -1 with a message.
 */
int vmem_fs_remote_start(struct vmem_fs *fs, char *err, size_t errlen);
/*
 * After the loop ended: answer what is still queued with EIO, wait for
 * the reads in progress (each ends within the timeout), free the pools.
 */
void vmem_fs_remote_stop(struct vmem_fs *fs);

#endif
