/* SPDX-License-Identifier: MIT */
/*
 * Following a libvirt domain's life under one mount.  At stop libvirt
 * deletes the memory file, and the memfile dies (reads fail with EIO,
 * memfile.h); when libvirt says the domain started again, a thread of
 * ours finds the new memory file over QMP (domain.h), checks it is the
 * one the new QEMU maps, and brings the memfile back on it
 * (vmem_memfile_revive), then marks the guest-physical map stale and
 * counts a reset, so the layout and the guest kernel are learned afresh.
 * The sub-hosts learned at mount are kept: a domain restarted with other
 * homes needs a remount.
 */
#ifndef VMEMFS_DOMAIN_FOLLOW_H
#define VMEMFS_DOMAIN_FOLLOW_H

#include <stddef.h>

#include "physmem.h"
#include "reader.h"

struct vmem_domain_follow;

/* NULL without a message when @r is not a libvirt domain's. */
struct vmem_domain_follow *vmem_domain_follow_start(struct vmem_reader *r,
						    struct vmem_physmem *pm,
						    char *err, size_t errlen);
void vmem_domain_follow_stop(struct vmem_domain_follow *f);

#endif
