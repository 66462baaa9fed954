/* SPDX-License-Identifier: MIT */
/*
 * The source side of a split migration's cold pages: writes each cold
 * page (plan.h) of the VM's RAM straight to its home sub-host over NBD.
 *
 * What it promises:
 *  - At setup, the home range of every sub-host is zeroed (NBD write
 *    zeroes, which may punch holes; not a trim, which a server may
 *    ignore), so a page left out is zero there, and nothing the sub-host
 *    held before (an earlier VM, a failed migration) survives.  A
 *    sub-host without write zeroes fails the setup.
 *  - A zero page that was never written since is not sent; a page sent
 *    before that has become zero is written again (as zeros).
 *  - Writes are copied at once (the guest may go on writing the page;
 *    migration's dirty log sends it again), coalesced while pages are
 *    contiguous (up to 1 MiB a request) and sent pipelined, 16 requests
 *    at a time per sub-host.  Two writes of the same page are never in
 *    flight together, so the later one always wins on the sub-host.
 *  - vmem_cold_sender_drain() returns once every page handed over is
 *    acknowledged by its sub-host and then flushed there (NBD FLUSH, on
 *    the connection that carried the writes, after their replies): a
 *    commit record that follows it names only pages on stable storage.
 *    A failed or unanswered flush fails the drain like a failed write.
 *  - Every NBD request has the config's timeout as its deadline.  The
 *    first failure (refusal, broken connection, deadline) is kept: every
 *    later call fails with the same message, which names the sub-host.
 *
 * Not thread safe: one thread (QEMU's migration thread) calls it.
 * Errors: -1 and a message (common/errors.h's set-up convention).
 */
#ifndef VMEM_MIGSEND_H
#define VMEM_MIGSEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "plan.h"

struct vmem_cold_sender;

struct vmem_cold_sender_stats {
	const char *uri;	/* borrowed */
	uint64_t bytes;		/* page bytes written */
	uint64_t pages;		/* pages written (re-sends counted again) */
	uint64_t zero_skipped;	/* zero pages not sent */
	uint64_t requests;	/* NBD writes */
	uint64_t flushes;	/* NBD flushes answered (0: server has none) */
};

/*
 * Connect to every sub-host of @vm and zero its home range.  @plan
 * (and @vm) must outlive the sender.  NULL with a message on failure.
 */
struct vmem_cold_sender *vmem_cold_sender_new(const struct vmem_plan *plan,
					      const struct vmem_vm *vm,
					      char *err, size_t errlen);
void vmem_cold_sender_free(struct vmem_cold_sender *s);

/*
 * Page at RAM offset @off (page aligned), contents @page (4 KiB): 1 when
 * it is cold and was taken (queued, sent or skipped as zero), 0 when it
 * is hot (the caller sends it in the stream), -1 with a message.
 */
int vmem_cold_sender_page(struct vmem_cold_sender *s, uint64_t off,
			  const void *page, char *err, size_t errlen);

/*
 * Send what is queued, wait for every acknowledgement, then flush every
 * sub-host.  0 or -1 (naming the sub-host).
 */
int vmem_cold_sender_drain(struct vmem_cold_sender *s, char *err,
			   size_t errlen);

/* Bytes queued but not yet acknowledged (for rate accounting). */
uint64_t vmem_cold_sender_take_new_bytes(struct vmem_cold_sender *s);

size_t vmem_cold_sender_n(const struct vmem_cold_sender *s);
void vmem_cold_sender_get_stats(const struct vmem_cold_sender *s, size_t i,
				struct vmem_cold_sender_stats *st);

#endif
