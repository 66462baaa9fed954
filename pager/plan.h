/* SPDX-License-Identifier: MIT */
/*
 * The split-migration plan: which part of a VM's RAM a split migration
 * sends to the main host (in QEMU's migration stream) and which straight
 * to its home sub-host (over NBD), and the checks both ends make on it.
 * Design in pager/README.md, "Split migration".
 *
 * The unit is the pager's fault window: the chunk-size aligned chunk
 * around a page, clipped to that page's home range (or to the run of RAM
 * without a home).  vmem_fault_window() is the one function that cuts
 * RAM into windows; the pager's fault path (fault.c) and the plan both
 * call it.  If the two ends cut differently, a fault on the destination
 * could page in part of a window the source is still writing to the
 * sub-host, and that write would be lost.
 *
 * What a plan promises: every byte of RAM is in exactly one window;
 * windows are sorted and contiguous; a window without a home is always
 * on the main host; the main host's windows add up to at most
 * local-limit minus the pager's headroom, else building the plan fails.
 *
 * No QEMU in here: the QEMU glue (vmem-split-source, vmem-split) feeds it
 * access scores and the bytes it received, and the tests drive it alone
 * (tests/check_plan.c).  Errors: -1 and a message (common/errors.h's
 * set-up convention).
 */
#ifndef VMEM_PLAN_H
#define VMEM_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"

/*
 * Home ranges as the caller keeps them: @range(ctx, i, &start, &end)
 * gives range i of n, sorted by start and disjoint.
 */
struct vmem_home_set {
	const void *ctx;
	size_t n;
	void (*range)(const void *ctx, size_t i, uint64_t *start,
		      uint64_t *end);
};

/*
 * The window of RAM offset @off (< @size): [*ws, *we), and in *home the
 * index of its home range or -1.  @chunk is a power of two.
 */
void vmem_fault_window(const struct vmem_home_set *h, uint64_t size,
		       uint64_t chunk, uint64_t off, uint64_t *ws,
		       uint64_t *we, long *home);

/* A vmem_home_set over a resolved VM's subhost lines. */
void vmem_home_set_of_vm(struct vmem_home_set *h, const struct vmem_vm *vm);

enum vmem_plan_why {
	VMEM_WHY_UNHOMED,	/* no home: always main host */
	VMEM_WHY_HOT,		/* accessed, and fits the main host's share */
	VMEM_WHY_COLD,		/* not seen accessed, or no room: its home */
};

struct vmem_plan_window {
	uint64_t start, end;
	long home;		/* index of the VM's subhost, or -1 */
	bool main;		/* goes to the main host */
	uint8_t why;		/* enum vmem_plan_why */
	uint32_t score;		/* access score the choice used */
};

struct vmem_plan {
	uint64_t size, chunk, local_limit, headroom;
	uint64_t config_hash;	/* vmem_plan_config_hash() */
	size_t n;
	struct vmem_plan_window *w;
	/* Sums over the windows. */
	uint64_t unhomed_bytes, main_bytes, cold_bytes;
};

/*
 * Hash of what both ends must agree on: ram-size, chunk-size,
 * local-limit and every subhost line (URI and range).  FNV-1a 64.
 */
uint64_t vmem_plan_config_hash(const struct vmem_vm *vm);

/* Cut @vm's RAM into windows, none chosen yet (all cold, unhomed
 * main).  0, or -1 with a message. */
int vmem_plan_init(struct vmem_plan *p, const struct vmem_vm *vm,
		   char *err, size_t errlen);
void vmem_plan_free(struct vmem_plan *p);

/*
 * The main host's headroom the plan leaves free: the pager's eviction
 * thread keeps max(limit/16, 2 chunks) free, but never more than an
 * eighth of what homed memory has (pager/README.md); the plan leaves
 * the same, so the pager starts with nothing to evict.
 */
uint64_t vmem_plan_headroom(uint64_t local_limit, uint64_t unhomed,
			    uint64_t chunk);

/*
 * Choose: unhomed windows to the main host (refused when they do not fit
 * local-limit), then homed windows with a score above zero, hottest first
 * (one score per window; ties by address), while they fit local-limit
 * minus headroom.  Windows never seen accessed stay cold.  @score may be
 * NULL (all zero: everything homed is cold).  0, or -1 with a message.
 */
int vmem_plan_choose(struct vmem_plan *p, const uint32_t *score,
		     char *err, size_t errlen);

/* The index of the window holding @off (< size). */
size_t vmem_plan_find(const struct vmem_plan *p, uint64_t off);

/* Is RAM offset @off sent to its sub-host (cold)? */
static inline bool vmem_plan_is_cold(const struct vmem_plan *p,
				     uint64_t off)
{
	return !p->w[vmem_plan_find(p, off)].main;
}

/*
 * The choice as bits, one per window (1 = main host), LSB first:
 * (n + 7) / 8 bytes into @bits.  Hash of config and bits together in
 * *plan_hash when not NULL.
 */
size_t vmem_plan_bits_len(const struct vmem_plan *p);
void vmem_plan_get_bits(const struct vmem_plan *p, uint8_t *bits);
uint64_t vmem_plan_hash(const struct vmem_plan *p);

/*
 * The destination's check of what the source sent, against its own
 * plan @p made from its own config: the config hash, the number of
 * windows, every homeless window on the main host, the main host's
 * share under local-limit.  On success @p takes the source's choice.
 * 0, or -1 with a message saying what differs.
 */
int vmem_plan_accept(struct vmem_plan *p, uint64_t src_config_hash,
		     uint64_t src_n, const uint8_t *bits, size_t bits_len,
		     char *err, size_t errlen);

const char *vmem_plan_why_name(uint8_t why);

#endif
