/* SPDX-License-Identifier: MIT */
/*
 * A backend fetches guest memory that is not in the memory file.  The core
 * (reader.c) knows nothing of any one backend: it finds the holes, asks
 * the backend for them, and re-validates what comes back.  One small
 * struct of callbacks per backend, in the manner of nbdkit plugins, that
 * also says what the backend is called and needs.
 *
 * Adding a backend: write backend_NAME.c with its vmem_backend_ops, and
 * list it in backend.c's table.  The config takes its name from there.
 *
 * Errors: as the rest of vmemfs's read path (common/errors.h), -errno.
 */
#ifndef VMEMFS_BACKEND_H
#define VMEMFS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"

struct json_object;
struct vmem_stats;
struct vmem_memfile;
struct vmem_qmp;

/* What fetch() made of a request. */
enum vmem_fetch_result {
	VMEM_FETCH_DATA = 0,	/* buf holds the bytes */
	VMEM_FETCH_LOCAL = 1,	/* range is in the memory file now: read it there */
};

struct vmem_backend_ops {
	/* The `backend` key's value, and whether the config must have qmp
	 * for it.  First, so that vmem_backend_table can point at it. */
	struct vmem_backend_info info;

	/*
	 * Set up for @vm (already resolved).  Must not block on remote
	 * peers: a sub-host that is down at start is only an error for
	 * reads of its ranges.  @mf is the open memory file (for its
	 * eviction sequence).  @stats (not NULL, one entry per sub-host at
	 * least) takes the per-sub-host counters.  @qmp is the VM's monitor connection, shared
	 * with the rest of vmemfs (QEMU serves one client per socket), or
	 * NULL when the config has no qmp.  Returns NULL and a message in
	 * @err.
	 */
	void *(*open)(const struct vmem_vm *vm, const struct vmem_memfile *mf,
		      struct vmem_stats *stats, struct vmem_qmp *qmp,
		      char *err, size_t errlen);
	void (*close)(void *h);

	/*
	 * Fill @buf with RAM range [@off, @off + @len), which lies inside
	 * the home of sub-host @home (an index into vm->subhosts) and was a
	 * hole in the memory file when the core looked.  Called from many
	 * threads at once.  Returns a vmem_fetch_result, or -errno (-EIO for
	 * a sub-host that failed or did not answer within the timeout).
	 * Must return within the VM's timeout.
	 */
	int (*fetch)(void *h, unsigned int home, void *buf, uint64_t off,
		     size_t len);

	/*
	 * Optional: add the backend's own counters (those the core has no
	 * notion of, such as a cache's hits) to the `stats` object @o.
	 * Called from any thread while fetches run; counters are read
	 * one by one, as the core's are.
	 */
	void (*stats_json)(void *h, struct json_object *o);
};

extern const struct vmem_backend_ops vmem_backend_direct;
extern const struct vmem_backend_ops vmem_backend_remote_paging;

/*
 * The ops of the backend called @name (vm->backend), or NULL with a
 * message when this build has none of that name.  The config refuses
 * such names already; this is for VMs that did not come from it.
 */
const struct vmem_backend_ops *vmem_backend_lookup(const char *name,
						   char *err, size_t errlen);

#endif
