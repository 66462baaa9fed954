/* SPDX-License-Identifier: MIT */
/*
 * The eviction sequence file: how whoever moves pages between the memory
 * file and the sub-hosts (the pager inside QEMU, or a test's mover) tells a
 * reader that a read may have raced a move.
 *
 * Why: a reader that preads a present page and then sees it still present
 * cannot tell whether it was punched and put back in between (ABA), and a
 * pread that overlaps a punch returns zeros for the punched part.  A
 * counter that every move bumps closes both gaps.
 *
 * File: by default the memory file's path with ".seq" appended, at least
 * VMEM_SEQ_FILE_SIZE bytes, created and written by the mover.  Two
 * native-endian 64-bit counters, each in its own cache line:
 *   offset 0:   begun  - moves started
 *   offset 64:  done   - moves finished
 * A mover calls vmem_seq_move_begin() before it changes where any page
 * lives (copy out + punch, or install + trim) and vmem_seq_move_end()
 * after.  Several movers may run at once.
 *
 * A reader takes a token with vmem_seq_read_begin(); if it says a move is
 * in flight, the reader may still read but the result will not validate.
 * After the read, vmem_seq_read_valid() says whether any move began since.
 */
#ifndef VMEM_EVICTSEQ_H
#define VMEM_EVICTSEQ_H

#include <stdbool.h>
#include <stdint.h>

#define VMEM_SEQ_SUFFIX ".seq"
#define VMEM_SEQ_FILE_SIZE 4096
#define VMEM_SEQ_BEGUN_OFF 0
#define VMEM_SEQ_DONE_OFF 64

struct vmem_seq_map {
	uint64_t begun;
	char pad0[56];
	uint64_t done;
	char pad1[56];
};

_Static_assert(__builtin_offsetof(struct vmem_seq_map, done) == VMEM_SEQ_DONE_OFF,
	       "seq file layout");

static inline void vmem_seq_move_begin(struct vmem_seq_map *m)
{
	__atomic_fetch_add(&m->begun, 1, __ATOMIC_SEQ_CST);
}

static inline void vmem_seq_move_end(struct vmem_seq_map *m)
{
	__atomic_fetch_add(&m->done, 1, __ATOMIC_SEQ_CST);
}

/* Returns the token; *quiet is false when a move is in flight right now. */
static inline uint64_t vmem_seq_read_begin(const struct vmem_seq_map *m,
					   bool *quiet)
{
	uint64_t done = __atomic_load_n(&m->done, __ATOMIC_ACQUIRE);
	uint64_t begun = __atomic_load_n(&m->begun, __ATOMIC_ACQUIRE);

	*quiet = begun == done;
	return begun;
}

static inline bool vmem_seq_read_valid(const struct vmem_seq_map *m,
				       uint64_t token)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&m->begun, __ATOMIC_ACQUIRE) == token;
}

#endif
