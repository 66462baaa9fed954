// SPDX-License-Identifier: MIT
/*
 * /proc/net/tcp and /proc/net/tcp6 from socket records (see netmod.h).
 * The columns follow the guest kernel's get_tcp4_sock(), get_openreq4(),
 * get_timewait4_sock() and their IPv6 counterparts in 6.1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_table.h"

#define IPPROTO_TCP_	6
#define TCP_LISTEN_	10
/* tcp4_seq_show() pads every line to TMPSZ - 1 = 149 columns. */
#define TCP4_WIDTH	149

unsigned long procfs_jiffies_to_clock_t(unsigned long j, unsigned int hz)
{
	const uint64_t user_tick = 1000000000ULL / 100;	/* USER_HZ 100 */
	uint64_t tick;

	if (!hz)
		hz = 250;
	tick = (1000000000ULL + hz / 2) / hz;		/* TICK_NSEC */
	if (tick % user_tick == 0)
		return hz < 100 ? j * (100 / hz) : j / (hz / 100);
	return (unsigned long)((unsigned __int128)j * tick / user_tick);
}

/* jiffies_delta_to_clock_t(expires - now): negative deltas are 0. */
static unsigned long delta_clock(uint64_t expires, uint64_t now,
				 unsigned int hz)
{
	long d = (long)(expires - now);

	return procfs_jiffies_to_clock_t(d > 0 ? (unsigned long)d : 0, hz);
}

static unsigned long long ptr(const struct vmi_sock *r, bool show)
{
	return show ? (unsigned long long)r->addr : 0;
}

static void line(FILE *f, const struct vmi_socks *s, const struct vmi_sock *r,
		 int i, bool show_ptr)
{
	unsigned int hz = s->hz;
	bool v6 = r->family == PROCFS_AF_INET6;

	fprintf(f, "%4d: ", i);
	procfs_net_addr(f, v6, r->laddr, r->lport);
	fputc(' ', f);
	procfs_net_addr(f, v6, r->raddr, r->rport);
	switch (r->kind) {
	case VMI_SOCK_TIMEWAIT:
		fprintf(f, " %02X %08X:%08X %02X:%08lX %08X %5d %8d %d %d "
			"%016llx", r->state, 0, 0, 3,
			delta_clock(r->timer_expires, s->jiffies, hz), 0, 0, 0,
			0, r->refcnt, ptr(r, show_ptr));
		break;
	case VMI_SOCK_REQUEST:
		fprintf(f, " %02X %08X:%08X %02X:%08lX %08X %5u %8d %u %d "
			"%016llx", r->state, 0, 0, 1,
			delta_clock(r->timer_expires, s->jiffies, hz),
			r->retransmits, r->uid, 0, 0, 0, ptr(r, show_ptr));
		break;
	default:
		fprintf(f, " %02X %08X:%08X %02X:%08lX %08X %5u %8d %llu %d "
			"%016llx %lu %lu %u %u %d", r->state, r->tx_queue,
			r->rx_queue, r->timer_active,
			r->timer_active ? delta_clock(r->timer_expires,
						      s->jiffies, hz) : 0,
			r->retransmits, r->uid, (int)r->probes_out,
			(unsigned long long)r->inode, r->refcnt,
			ptr(r, show_ptr),
			procfs_jiffies_to_clock_t(r->rto, hz),
			procfs_jiffies_to_clock_t(r->ato, hz), r->ack_flags,
			r->cwnd, r->last);
	}
}

char *procfs_net_tcp(const struct vmi_socks *s, int family, bool show_ptr)
{
	const char *header = family == PROCFS_AF_INET6 ?
		"  sl  local_address                         "
		"remote_address                        "
		"st tx_queue rx_queue tr tm->when retrnsmt"
		"   uid  timeout inode" :
		"  sl  local_address rem_address   st tx_queue "
		"rx_queue tr tm->when retrnsmt   uid  timeout inode";

	return procfs_net_table(s, IPPROTO_TCP_, family, header, TCP4_WIDTH,
				line, show_ptr);
}
