/* SPDX-License-Identifier: MIT */
/* The FUSE front end: what a mount of one VM shows.  See fs.c. */
#ifndef VMEMFS_FS_H
#define VMEMFS_FS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <sys/types.h>
#include <time.h>

#include "kernel_view.h"
#include "physmem.h"
#include "reader.h"

/* Largest read we ask the kernel to send in one request. */
#define VMEM_FS_MAX_IO (1024 * 1024)

struct vmem_fs {
	struct vmem_reader reader;
	struct vmem_physmem physmem;
	struct vmem_kernel_view kview;	/* `kernel` and `vmcore` */
	uid_t uid;
	gid_t gid;
	struct timespec start_time;
};

extern const struct fuse_lowlevel_ops vmem_fs_ops;

#endif
