/* SPDX-License-Identifier: MIT */
/*
 * The pager's control socket protocol: a page-in command channel that
 * the pager serves itself, on its own threads inside the QEMU process,
 * off QEMU's main loop and big lock (pager/ctl.c serves it, vmemfs's
 * remote-paging backend speaks it; QEMU announces the path in
 * query-vmem's "control-socket").
 *
 * A unix stream socket, mode 0600, that also refuses any peer whose uid
 * (SO_PEERCRED) is neither root nor the pager's own.  Frames are in host
 * byte order (the socket is local).  One request, one reply, in order;
 * a client may keep the connection for many requests.
 *
 *   request: struct vmem_ctl_req, then n x struct vmem_ctl_range
 *   reply:   struct vmem_ctl_reply (fixed size)
 *
 * VMEM_CTL_PAGE_IN makes every range resident (vmem_pager_page_in_ranges:
 * all of them or an error; one reply when all are in).  VMEM_CTL_PING
 * (n = 0) answers at once.  A reply's err is 0 or a positive errno, with
 * a message.  A frame with a bad magic or n > VMEM_CTL_MAX_RANGES gets
 * a reply (EPROTO, E2BIG) and the connection is closed; so is one whose
 * frame does not arrive within VMEM_CTL_FRAME_MS of its first byte.
 */
#ifndef VMEM_PAGERCTL_H
#define VMEM_PAGERCTL_H

#include <stdint.h>

#define VMEM_CTL_MAGIC		0x31434d56u	/* "VMC1" */
#define VMEM_CTL_PAGE_IN	1
#define VMEM_CTL_PING		2
#define VMEM_CTL_MAX_RANGES	256
#define VMEM_CTL_FRAME_MS	5000
#define VMEM_CTL_MAX_CONNS	16

struct vmem_ctl_req {
	uint32_t magic;
	uint16_t op;
	uint16_t n;		/* ranges that follow */
	uint64_t tag;		/* echoed in the reply */
};

struct vmem_ctl_range {
	uint64_t offset, length;
};

struct vmem_ctl_reply {
	uint32_t magic;
	int32_t err;		/* 0, or a positive errno */
	uint64_t tag;
	char msg[240];		/* NUL-terminated */
};

_Static_assert(sizeof(struct vmem_ctl_req) == 16, "request header size");
_Static_assert(sizeof(struct vmem_ctl_reply) == 256, "reply size");

#endif
