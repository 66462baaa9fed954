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

#include "netmod.h"

#define AF_INET6_	10
#define IPPROTO_UDP_	17
/* udp4_seq_show() pads every line to 127 columns. */
#define UDP4_WIDTH	127

static unsigned int word(const uint8_t *a, int i)
{
	uint32_t w;

	memcpy(&w, a + 4 * i, 4);
	return w;
}

static void addr(FILE *f, bool v6, const uint8_t *a, unsigned int port)
{
	if (v6)
		fprintf(f, "%08X%08X%08X%08X:%04X", word(a, 0), word(a, 1),
			word(a, 2), word(a, 3), port);
	else
		fprintf(f, "%08X:%04X", word(a, 0), port);
}

static void pad(FILE *f, long start, int width)
{
	long n;

	fflush(f);
	n = ftell(f) - start;
	for (; n < width; n++)
		fputc(' ', f);
	fputc('\n', f);
}

char *procfs_net_udp(const struct vmi_socks *s, int family, bool show_ptr)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	bool v6 = family == AF_INET6_;
	long start = 0;

	if (!f)
		return NULL;
	if (v6)
		fputs("  sl  local_address                         "
		      "remote_address                        "
		      "st tx_queue rx_queue tr tm->when retrnsmt"
		      "   uid  timeout inode ref pointer drops\n", f);
	else {
		fputs("   sl  local_address rem_address   st tx_queue "
		      "rx_queue tr tm->when retrnsmt   uid  timeout "
		      "inode ref pointer drops", f);
		pad(f, start, UDP4_WIDTH);
	}
	for (size_t k = 0; k < s->n; k++) {
		const struct vmi_sock *r = &s->v[k];

		if (r->protocol != IPPROTO_UDP_ || r->family != family)
			continue;
		fflush(f);
		start = ftell(f);
		fprintf(f, "%5u: ", r->bucket);
		addr(f, v6, r->laddr, r->lport);
		fputc(' ', f);
		addr(f, v6, r->raddr, r->rport);
		fprintf(f, " %02X %08X:%08X %02X:%08lX %08X %5u %8d %llu %d "
			"%016llx %u", r->state, r->tx_queue, r->rx_queue, 0,
			0UL, 0, r->uid, 0, (unsigned long long)r->inode,
			r->refcnt,
			show_ptr ? (unsigned long long)r->addr : 0ULL,
			r->drops);
		if (v6)
			fputc('\n', f);
		else
			pad(f, start, UDP4_WIDTH);
	}
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}
