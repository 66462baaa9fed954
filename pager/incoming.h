/* SPDX-License-Identifier: MIT */
/*
 * The destination side of a split migration (plan.h): what the split
 * VM's QEMU does between the source's plan and the commit record.
 *
 * Incoming mode: while RAM loads, the pager is not running (no fetch, no
 * eviction, no userfaultfd): the migration stream writes the main host's
 * windows into the memory file, and the cold windows must stay holes,
 * since their data is on the sub-hosts.  A page of a cold window that
 * arrives in the stream breaks the plan: vmem_incoming_check_page()
 * refuses it.  At the commit record, vmem_incoming_commit() punches
 * whatever of the cold windows reached the memory file anyway (QEMU's
 * own reads of guest memory, e.g. a zero check, allocate shmem pages),
 * and then the caller starts the pager (which publishes the eviction
 * sequence file) so that normal paging begins.
 *
 * Errors: -1 and a message (common/errors.h's set-up convention).
 */
#ifndef VMEM_INCOMING_H
#define VMEM_INCOMING_H

#include <stddef.h>
#include <stdint.h>

#include "plan.h"

/* 0 when the stream may carry RAM offset @off, else -1 and a message. */
int vmem_incoming_check_page(const struct vmem_plan *p, uint64_t off,
			     char *err, size_t errlen);

/*
 * Punch every data run of the cold windows from the memory file @mem_fd
 * (fallocate PUNCH_HOLE|KEEP_SIZE).  *punched: bytes that were there.
 * 0, or -1 with a message.
 */
int vmem_incoming_commit(const struct vmem_plan *p, int mem_fd,
			 uint64_t *punched, char *err, size_t errlen);

/* Data bytes of the memory file in [s, e) (SEEK_DATA/SEEK_HOLE). */
uint64_t vmem_incoming_data_in(int mem_fd, uint64_t s, uint64_t e);

#endif
