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

#include "netmod.h"

#define AF_INET_	2
#define AF_INET6_	10
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

/* The kernel prints __be32 and s6_addr32[] words with %08X: the bytes
 * as they sit in memory, read as a little-endian word. */
static unsigned int word(const uint8_t *a, int i)
{
	uint32_t w;

	memcpy(&w, a + 4 * i, 4);
	return w;
}

static void addr(FILE *f, const struct vmi_sock *r, const uint8_t *a,
		 unsigned int port)
{
	if (r->family == AF_INET6_)
		fprintf(f, "%08X%08X%08X%08X:%04X", word(a, 0), word(a, 1),
			word(a, 2), word(a, 3), port);
	else
		fprintf(f, "%08X:%04X", word(a, 0), port);
}

static unsigned long long ptr(const struct vmi_sock *r, bool show)
{
	return show ? (unsigned long long)r->addr : 0;
}

static void line(FILE *f, const struct vmi_socks *s, const struct vmi_sock *r,
		 int i, bool show_ptr)
{
	unsigned int hz = s->hz;

	fprintf(f, "%4d: ", i);
	addr(f, r, r->laddr, r->lport);
	fputc(' ', f);
	addr(f, r, r->raddr, r->rport);
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

/* seq_pad(): spaces up to @width columns since @start, then newline. */
static void pad(FILE *f, long start, int width)
{
	long n;

	fflush(f);
	n = ftell(f) - start;
	for (; n < width; n++)
		fputc(' ', f);
	fputc('\n', f);
}

char *procfs_net_tcp(const struct vmi_socks *s, int family, bool show_ptr)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	bool v6 = family == AF_INET6_;
	long start;
	int i = 0;

	if (!f)
		return NULL;
	start = 0;
	if (v6)
		fputs("  sl  local_address                         "
		      "remote_address                        "
		      "st tx_queue rx_queue tr tm->when retrnsmt"
		      "   uid  timeout inode\n", f);
	else {
		fputs("  sl  local_address rem_address   st tx_queue "
		      "rx_queue tr tm->when retrnsmt   uid  timeout inode", f);
		pad(f, start, TCP4_WIDTH);
	}
	for (size_t k = 0; k < s->n; k++) {
		const struct vmi_sock *r = &s->v[k];

		if (r->protocol != IPPROTO_TCP_ || r->family != family)
			continue;
		fflush(f);
		start = ftell(f);
		line(f, s, r, i++, show_ptr);
		if (v6)
			fputc('\n', f);
		else
			pad(f, start, TCP4_WIDTH);
	}
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}
