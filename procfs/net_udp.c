// SPDX-License-Identifier: MIT
/*
 * /proc/net/udp and /proc/net/udp6 from socket records (see netmod.h).
 * The columns follow the guest kernel's udp4_format_sock() and
 * __ip6_dgram_sock_show() in 6.1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_table.h"

#define IPPROTO_UDP_	17
/* udp4_seq_show() pads every line to 127 columns. */
#define UDP4_WIDTH	127

static void line(FILE *f, const struct vmi_socks *s, const struct vmi_sock *r,
		 int i, bool show_ptr)
{
	bool v6 = r->family == PROCFS_AF_INET6;

	(void)s;
	(void)i;	/* udp's sl is the hash bucket */
	fprintf(f, "%5u: ", r->bucket);
	procfs_net_addr(f, v6, r->laddr, r->lport);
	fputc(' ', f);
	procfs_net_addr(f, v6, r->raddr, r->rport);
	fprintf(f, " %02X %08X:%08X %02X:%08lX %08X %5u %8d %llu %d "
		"%016llx %u", r->state, r->tx_queue, r->rx_queue, 0,
		0UL, 0, r->uid, 0, (unsigned long long)r->inode,
		r->refcnt,
		show_ptr ? (unsigned long long)r->addr : 0ULL,
		r->drops);
}

char *procfs_net_udp(const struct vmi_socks *s, int family, bool show_ptr)
{
	const char *header = family == PROCFS_AF_INET6 ?
		"  sl  local_address                         "
		"remote_address                        "
		"st tx_queue rx_queue tr tm->when retrnsmt"
		"   uid  timeout inode ref pointer drops" :
		"   sl  local_address rem_address   st tx_queue "
		"rx_queue tr tm->when retrnsmt   uid  timeout "
		"inode ref pointer drops";

	return procfs_net_table(s, IPPROTO_UDP_, family, header, UDP4_WIDTH,
				line, show_ptr);
}
