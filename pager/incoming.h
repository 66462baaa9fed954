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
 * refuses it.
 *
 * A fault on a cold window before the commit is an error, detected at
 * the commit record from the memory file's data map: tmpfs (/dev/shm)
 * allocates a page on any fault through a mapping, a read as well as a
 * write, so a page of a cold window that holds data was touched by this
 * QEMU (a device model, a zero check, a stray DMA) or written by someone
 * through the file, before the sub-host's copy was the one to read.
 * vmem_incoming_commit() then fails, naming the first such range, its
 * window and sub-host, and the bytes in all: the caller fails the
 * incoming migration.  What is not seen: the moment and the culprit
 * (the check runs once, at the commit), and a pread() of a hole by
 * another process (it allocates nothing and changes nothing).  On a
 * clean commit the caller starts the pager (which publishes the
 * eviction sequence file) so that normal paging begins.
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
 * The commit: 0 when no cold window holds data in the memory file
 * @mem_fd (*touched = 0); else -1, *touched the data bytes found in cold
 * windows and a message naming the first run, and the file unchanged.
 * -1 with *touched = 0 when the file cannot be examined.
 */
int vmem_incoming_commit(const struct vmem_plan *p, int mem_fd,
			 uint64_t *touched, char *err, size_t errlen);

/* Data bytes of the memory file in [s, e) (SEEK_DATA/SEEK_HOLE). */
uint64_t vmem_incoming_data_in(int mem_fd, uint64_t s, uint64_t e);

#endif
