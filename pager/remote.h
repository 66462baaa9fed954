/* SPDX-License-Identifier: MIT */
/*
 * Internal to the pager: one sub-host's NBD export, reached through the
 * shared NBD client (common/nbdconn.h, which states the promises: bounded
 * by the deadline, name lookups included; a server's error reply fails
 * that request only; an export smaller than the home range's end is
 * refused at connect).  A pool of handles per sub-host, no limit on how
 * many are busy, so that fault threads, the eviction thread and
 * page_in/page_out callers never queue behind each other's requests.
 */
#ifndef VMEM_PAGER_REMOTE_H
#define VMEM_PAGER_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/tls.h"

struct vp_remote;

/*
 * @home_end: the end of the sub-host's home range (smallest export).
 * @tls: how to connect (copied; NULL: clear NBD), see common/tls.h.
 */
struct vp_remote *vp_remote_new(const char *uri, uint64_t home_end,
				const struct vmem_tls *tls);
void vp_remote_free(struct vp_remote *r);

/*
 * Each returns 0, or -1 with errno (ETIMEDOUT when @timeout_ms ran out,
 * EIO, EINVAL, ... when the server refused a request) and a message in
 * @err that names the URI.
 */
int vp_remote_pread(struct vp_remote *r, void *buf, uint64_t len,
		    uint64_t off, uint64_t timeout_ms, char *err,
		    size_t errlen);

/* Write @n runs [offs[i], offs[i] + lens[i]) from bufs[i], pipelined. */
int vp_remote_pwritev(struct vp_remote *r, void *const *bufs,
		      const uint64_t *offs, const uint64_t *lens, size_t n,
		      uint64_t timeout_ms, char *err, size_t errlen);

/* Read @n runs into bufs[i], pipelined on one handle (one round trip
 * for all of them when they fit the window). */
int vp_remote_preadv(struct vp_remote *r, void *const *bufs,
		     const uint64_t *offs, const uint64_t *lens, size_t n,
		     uint64_t timeout_ms, char *err, size_t errlen);

/* Discard @n runs, pipelined, as vp_remote_discard() does one. */
int vp_remote_discardv(struct vp_remote *r, const uint64_t *offs,
		       const uint64_t *lens, size_t n, uint64_t timeout_ms,
		       char *err, size_t errlen);

/*
 * Discard [off, off + len) so it holds no space: NBD trim when the
 * export can, else write-zeroes allowing holes.  Trim is only advisory
 * in NBD; an export that keeps the data is harmless, because the pager
 * never reads a range back before it evicted (wrote) it again.
 */
int vp_remote_discard(struct vp_remote *r, uint64_t len, uint64_t off,
		      uint64_t timeout_ms, char *err, size_t errlen);

#endif
