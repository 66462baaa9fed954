/* SPDX-License-Identifier: MIT */
/*
 * What /proc/net/{tcp,tcp6,udp,udp6} share (internal to procfs/): the
 * table around the lines and the address:port columns, written the way
 * the guest kernel's seq_file code writes them in 6.1.  net_tcp.c and
 * net_udp.c keep only what their lines say.
 */
#ifndef PROCFS_NET_TABLE_H
#define PROCFS_NET_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "netmod.h"

#define PROCFS_AF_INET6	10

/*
 * "ADDR:PORT" as the kernel prints it: __be32 and s6_addr32[] words
 * with %08X (the bytes as they sit in memory, read as a little-endian
 * word), the port with %04X.
 */
void procfs_net_addr(FILE *f, bool v6, const uint8_t *a, unsigned int port);

/*
 * Write one line of a record without its end: @i counts the lines
 * written before it.
 */
typedef void (*procfs_net_line_fn)(FILE *f, const struct vmi_socks *s,
				   const struct vmi_sock *r, int i,
				   bool show_ptr);

/*
 * The table of @s's records of @protocol and @family: @header, then a
 * line a record.  IPv4 lines (and the header) are padded with spaces to
 * @width4 columns, as seq_pad() does; IPv6 ones are not.  A malloc'd
 * string, or NULL when out of memory.
 */
char *procfs_net_table(const struct vmi_socks *s, int protocol, int family,
		       const char *header, int width4, procfs_net_line_fn line,
		       bool show_ptr);

#endif
