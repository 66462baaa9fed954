// SPDX-License-Identifier: MIT
/*
 * The table and address columns /proc/net/{tcp,udp}{,6} share (see
 * net_table.h).
 */
#include <stdlib.h>
#include <string.h>

#include "net_table.h"

static unsigned int word(const uint8_t *a, int i)
{
	uint32_t w;

	memcpy(&w, a + 4 * i, 4);
	return w;
}

void procfs_net_addr(FILE *f, bool v6, const uint8_t *a, unsigned int port)
{
	if (v6)
		fprintf(f, "%08X%08X%08X%08X:%04X", word(a, 0), word(a, 1),
			word(a, 2), word(a, 3), port);
	else
		fprintf(f, "%08X:%04X", word(a, 0), port);
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

/* The end of a line begun at @start. */
static void end_line(FILE *f, bool v6, long start, int width4)
{
	if (v6)
		fputc('\n', f);
	else
		pad(f, start, width4);
}

char *procfs_net_table(const struct vmi_socks *s, int protocol, int family,
		       const char *header, int width4, procfs_net_line_fn line,
		       bool show_ptr)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	bool v6 = family == PROCFS_AF_INET6;
	long start;
	int i = 0;

	if (!f)
		return NULL;
	fputs(header, f);
	end_line(f, v6, 0, width4);
	for (size_t k = 0; k < s->n; k++) {
		const struct vmi_sock *r = &s->v[k];

		if (r->protocol != protocol || r->family != family)
			continue;
		fflush(f);
		start = ftell(f);
		line(f, s, r, i++, show_ptr);
		end_line(f, v6, start, width4);
	}
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}
