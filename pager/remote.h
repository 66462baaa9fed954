/* SPDX-License-Identifier: MIT */
/*
 * Internal to the pager: one sub-host's NBD export, reached through a
 * small pool of libnbd handles so that fault threads, the eviction thread
 * and page_in/page_out callers never queue behind each other's requests.
 * Every call is bounded by a deadline: libnbd's synchronous calls can
 * block for as long as the kernel's TCP timeouts, which a pager that must
 * report a dead sub-host cannot afford.
 */
#ifndef VMEM_PAGER_REMOTE_H
#define VMEM_PAGER_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vp_remote;

struct vp_remote *vp_remote_new(const char *uri);
void vp_remote_free(struct vp_remote *r);

/*
 * Each returns 0, or -1 with errno (ETIMEDOUT when @timeout_ms ran out)
 * and a message in @err.  A handle that failed is closed, not reused.
 */
int vp_remote_pread(struct vp_remote *r, void *buf, uint64_t len,
		    uint64_t off, uint64_t timeout_ms, char *err,
		    size_t errlen);

/* Write @n runs [offs[i], offs[i] + lens[i]) from bufs[i], pipelined. */
int vp_remote_pwritev(struct vp_remote *r, void *const *bufs,
		      const uint64_t *offs, const uint64_t *lens, size_t n,
		      uint64_t timeout_ms, char *err, size_t errlen);

/*
 * Discard [off, off + len) so it reads as zeros and holds no space: NBD
 * trim when the export can, else write-zeroes allowing holes.  Trim is
 * only advisory in NBD, so an export that keeps data after trim is
 * handled by the zero fallback (see vp_remote_new).
 */
int vp_remote_discard(struct vp_remote *r, uint64_t len, uint64_t off,
		      uint64_t timeout_ms, char *err, size_t errlen);

const char *vp_remote_uri(const struct vp_remote *r);

#endif
