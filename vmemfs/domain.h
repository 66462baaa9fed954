/* SPDX-License-Identifier: MIT */
/*
 * A libvirt domain's memory file.  libvirt chooses its path
 * (memory_backing_dir/libvirt/qemu/ID-NAME/pc.ram, a new ID at every
 * start) and the domain XML does not hold it, so it is asked of QEMU over
 * QMP: the machine's memory-backend (or, with NUMA cells, the one memdev
 * of query-memdev), then that object's mem-path.  What QEMU says is then
 * held against what the domain's QEMU process maps (device and inode in
 * /proc/PID/maps), so that a file put at that path by anyone else is not
 * served as the VM's memory.  The pid is the thread group of a vCPU
 * thread (query-cpus-fast): libvirt's API has no call that gives it.
 */
#ifndef VMEMFS_DOMAIN_H
#define VMEMFS_DOMAIN_H

#include <stddef.h>
#include <sys/types.h>

#include "qmp.h"

/*
 * The memory file of the QEMU behind @q (malloc'd into *@path) and the
 * pid of that QEMU.  0, or -1 with a message (-EIO class errors: the
 * domain is not running).
 */
int vmem_domain_memory_file(struct vmem_qmp *q, char **path, pid_t *pid,
			    char *err, size_t errlen);

/* Does process @pid map the file @dev/@ino?  0, or -1 with a message. */
int vmem_domain_check_mapped(pid_t pid, dev_t dev, ino_t ino,
			     const char *path, char *err, size_t errlen);

#endif
