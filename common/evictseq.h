/* SPDX-License-Identifier: MIT */
/*
 * The eviction sequence file: how whoever moves pages between the memory
 * file and the sub-hosts (the pager inside QEMU, or a test's mover) tells a
 * reader that a read may have raced a move.
 *
 * Why: a reader that preads a present page and then sees it still present
 * cannot tell whether it was punched and put back in between (ABA), and a
 * pread that overlaps a punch returns zeros for the punched part.  Counters
 * that every move bumps close both gaps.
 *
 * Why stripes: with one global counter, a VM that pages steadily would
 * make every long remote read fail validation even when no move touched
 * it.  RAM is cut into 2 MiB stripes; stripe i of RAM uses counter pair
 * (i mod VMEM_SEQ_STRIPES), so a move only disturbs readers of ranges that
 * share a counter with it.  False sharing costs a retry, never correctness.
 *
 * File: by default the memory file's path with ".seq" appended, exactly
 * VMEM_SEQ_FILE_SIZE bytes or more, created and written by the mover.
 * VMEM_SEQ_STRIPES pairs of native-endian 64-bit counters, each counter in
 * its own cache line:  pair i at offset 128*i: begun (+0), done (+64).
 * A mover calls vmem_seq_move_begin() for the range before it changes
 * where any page in it lives (copy out + punch, or install + trim) and
 * vmem_seq_move_end() for the same range after.  Several movers may run
 * at once.
 *
 * A reader takes a token with vmem_seq_read_begin() for its range; if it
 * says a move is in flight there, the reader may still read but must not
 * trust the result.  After the read, vmem_seq_read_valid() with the same
 * range says whether any move there began since.
 */
#ifndef VMEM_EVICTSEQ_H
#define VMEM_EVICTSEQ_H

#include <stdbool.h>
#include <stdint.h>

#define VMEM_SEQ_SUFFIX ".seq"
#define VMEM_SEQ_FILE_SIZE 4096
#define VMEM_SEQ_STRIPE_SHIFT 21
#define VMEM_SEQ_STRIPES 32

struct vmem_seq_pair {
	uint64_t begun;
	char pad0[56];
	uint64_t done;
	char pad1[56];
};

struct vmem_seq_map {
	struct vmem_seq_pair pair[VMEM_SEQ_STRIPES];
};

_Static_assert(sizeof(struct vmem_seq_map) == VMEM_SEQ_FILE_SIZE,
	       "seq file layout");

/*
 * Runs @body with @p at each counter pair covering [off, off + len); a range of
 * VMEM_SEQ_STRIPES stripes or more covers all of them once.
 */
#define vmem_seq_for_each(m, off, len, p, body) do {				\
	uint64_t first_ = (off) >> VMEM_SEQ_STRIPE_SHIFT;			\
	uint64_t last_ = ((off) + ((len) ? (len) : 1) - 1) >>			\
			 VMEM_SEQ_STRIPE_SHIFT;					\
	uint64_t n_ = last_ - first_ + 1;					\
	if (n_ > VMEM_SEQ_STRIPES)						\
		n_ = VMEM_SEQ_STRIPES;						\
	for (uint64_t i_ = 0; i_ < n_; i_++) {					\
		p = &(m)->pair[(first_ + i_) % VMEM_SEQ_STRIPES];		\
		body;								\
	}									\
} while (0)

static inline void vmem_seq_move_begin(struct vmem_seq_map *m, uint64_t off,
				       uint64_t len)
{
	struct vmem_seq_pair *p;

	vmem_seq_for_each(m, off, len, p,
			  __atomic_fetch_add(&p->begun, 1, __ATOMIC_SEQ_CST));
}

static inline void vmem_seq_move_end(struct vmem_seq_map *m, uint64_t off,
				     uint64_t len)
{
	struct vmem_seq_pair *p;

	vmem_seq_for_each(m, off, len, p,
			  __atomic_fetch_add(&p->done, 1, __ATOMIC_SEQ_CST));
}

/*
 * Returns the token for [off, off + len): the sum of the begun counters,
 * which changes whenever any of them does.  *quiet is false when a move
 * is in flight in the range right now.
 */
static inline uint64_t vmem_seq_read_begin(const struct vmem_seq_map *m,
					   uint64_t off, uint64_t len,
					   bool *quiet)
{
	const struct vmem_seq_pair *p;
	uint64_t begun = 0, done = 0;

	/* done before begun: a move that starts between the loads makes
	 * begun > done, never the other way round. */
	vmem_seq_for_each(m, off, len, p,
			  done += __atomic_load_n(&p->done, __ATOMIC_ACQUIRE));
	vmem_seq_for_each(m, off, len, p,
			  begun += __atomic_load_n(&p->begun, __ATOMIC_ACQUIRE));
	*quiet = begun == done;
	return begun;
}

static inline bool vmem_seq_read_valid(const struct vmem_seq_map *m,
				       uint64_t off, uint64_t len,
				       uint64_t token)
{
	const struct vmem_seq_pair *p;
	uint64_t begun = 0;

	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	vmem_seq_for_each(m, off, len, p,
			  begun += __atomic_load_n(&p->begun, __ATOMIC_ACQUIRE));
	return begun == token;
}

/*
 * Every counter of the file summed: it stands still only while no mover
 * begins or ends anything.  A reader that finds a move in flight and this
 * sum unchanged for a long time knows the mover died mid-move.
 */
static inline uint64_t vmem_seq_total(const struct vmem_seq_map *m)
{
	uint64_t sum = 0;

	for (int i = 0; i < VMEM_SEQ_STRIPES; i++)
		sum += __atomic_load_n(&m->pair[i].begun, __ATOMIC_ACQUIRE) +
		       __atomic_load_n(&m->pair[i].done, __ATOMIC_ACQUIRE);
	return sum;
}

#endif
