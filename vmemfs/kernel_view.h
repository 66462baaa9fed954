/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel as the mount knows it: the guest-kernel library
 * (introspect/) run over vmemfs's own validated read path, and what the
 * `kernel` and `vmcore` files show of its result.
 *
 * Recognition runs on a thread of its own, started once the mount is up:
 * it never delays the mount or any other file.  The result is remembered
 * and re-validated cheaply (vmi_kernel_still_valid) whenever `kernel` or
 * `vmcore` is opened.  It is dropped, and guest memory scanned again,
 * when it no longer validates or QEMU reported a guest reset (QMP RESET,
 * counted by physmem).  After a reset the old kernel's note is still in
 * RAM until the new kernel overwrites it; the scanner sees such a page as
 * zeros while it still holds exactly the dead kernel's note, so the new
 * kernel is found and never the ghost of the old one.  While no kernel is
 * known, each open of `kernel` or `vmcore` (at most one a second) scans
 * again; nothing is scanned periodically.
 */
#ifndef VMEMFS_KERNEL_VIEW_H
#define VMEMFS_KERNEL_VIEW_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "physmem.h"
#include "vmcore.h"

struct vmi_kernel;
struct kv_phys;

#define VMEM_KV_DEAD_MAX 4	/* dead kernels' notes kept hidden */

/*
 * The most FUSE threads that may wait in the view at once (for its lock,
 * held by a build or a re-validation reading guest memory, or for a scan
 * in progress): a scan or build stuck on a silent sub-host must not take
 * the threads that local reads need.  One more may hold the lock.  A call
 * that would wait beyond these fails at once with -EAGAIN (and a line in
 * the log).  The shadow /proc bounds the openers waiting for its build
 * the same way (VMEM_PROC_WAITERS, fs_proc.c); fs.c adds both to
 * libfuse's threads.
 */
#define VMEM_KV_WAITERS 4
#define VMEM_PROC_WAITERS 4

struct vmem_kv_dead {
	uint64_t gpa;
	size_t len;
	unsigned char *bytes;
};

struct vmem_kernel_view {
	struct vmem_physmem *pm;
	const char *btf_path;		/* kernel-btf, or NULL */
	const char *map_path;		/* kernel-map, or NULL */

	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t cond;
	pthread_t thread;
	bool started;
	bool stop;
	bool want_scan;			/* a scan was asked for */
	bool scanning;
	unsigned int scans;		/* finished scans */
	uint64_t last_ask_ms;		/* an open last asked for a scan */
	uint64_t resets_seen;		/* pm->resets at the last scan */
	struct vmi_kernel *k;		/* NULL while not known */
	struct kv_phys *kp;		/* the reader k was recognised over */
	char why[256];			/* why k is NULL */
	unsigned int waiting;		/* callers waiting (atomic), at most
					 * VMEM_KV_WAITERS */
	uint64_t size_seen;		/* the vmcore's size last computed
					 * (atomic), for a stat while busy */
	struct vmem_kv_dead dead[VMEM_KV_DEAD_MAX];
	unsigned int ndead;
};

/* Set up (no thread yet, nothing read).  @btf_path/@map_path may be
 * NULL; they must outlive the view. */
void vmem_kernel_view_init(struct vmem_kernel_view *kv,
			   struct vmem_physmem *pm, const char *btf_path,
			   const char *map_path);
/* Start the recognition thread: call after fuse_daemonize (a fork would
 * lose it).  0 or -errno. */
int vmem_kernel_view_start(struct vmem_kernel_view *kv);
/* Stop the thread (a scan in progress is cut short) and free all. */
void vmem_kernel_view_fini(struct vmem_kernel_view *kv);

/*
 * The text of `kernel`: vmi_kernel_json of the current kernel after a
 * cheap re-validation, or {"error": why} (not recognised yet, or the
 * library's reason).  Waits at most 60 s for a scan in progress.
 * malloc'd, NULL on allocation failure (errno ENOMEM) or when
 * VMEM_KV_WAITERS callers wait already (errno EAGAIN).
 */
char *vmem_kernel_view_json(struct vmem_kernel_view *kv);

/*
 * Build the `vmcore` of the current map and (re-validated) kernel into
 * @vc; without a kernel, the PT_LOADs only.  Waits for a scan in progress
 * as vmem_kernel_view_json does.  0 or -errno.
 */
int vmem_kernel_view_vmcore(struct vmem_kernel_view *kv,
			    struct vmem_vmcore *vc);
/*
 * Run @fn over the current (re-validated) kernel and the reader it was
 * recognised through, with the view locked: the kernel stays valid while
 * @fn runs (the shadow /proc builds its snapshots this way).  Waits for a
 * scan in progress as vmem_kernel_view_json does.  Returns @fn's result,
 * or -EAGAIN with the reason in @why when no kernel is known, or -EBUSY
 * (and why) when VMEM_KV_WAITERS callers wait already.
 */
struct vmi_phys;
int vmem_kernel_view_with(struct vmem_kernel_view *kv,
			  int (*fn)(void *arg, const struct vmi_kernel *k,
				    const struct vmi_phys *p),
			  void *arg, char *why, size_t whylen);

/* Its size as it would be now (for stat; nothing is re-validated).  While
 * the view is busy, the size last computed (none yet: waits as one of
 * VMEM_KV_WAITERS, or 0). */
uint64_t vmem_kernel_view_vmcore_size(struct vmem_kernel_view *kv);
/* Read from @vc; data through physmem, the path `mem` reads. */
ssize_t vmem_kernel_view_vmcore_read(struct vmem_kernel_view *kv,
				     const struct vmem_vmcore *vc, void *buf,
				     size_t len, uint64_t off);
/*
 * The same through a gate (vmem_read_gated()): when the gate says no, it
 * stops with -EWOULDBLOCK and gate->stopped, gate->done counted from
 * @off; the rest is vmem_kernel_view_vmcore_read() of [off + done,
 * off + len).
 */
ssize_t vmem_kernel_view_vmcore_read_gated(struct vmem_kernel_view *kv,
					   const struct vmem_vmcore *vc,
					   void *buf, size_t len, uint64_t off,
					   struct vmem_read_gate *gate);

#endif
