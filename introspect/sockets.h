/* SPDX-License-Identifier: MIT */
/*
 * The guest's TCP and UDP sockets (Linux 6.1, x86-64), read out of its
 * memory as records that procfs/net_tcp.c and procfs/net_udp.c format
 * like /proc/net/{tcp,tcp6,udp,udp6}.
 *
 * Where they are: TCP listeners in tcp_hashinfo.lhash2[0..lhash2_mask],
 * every other TCP socket (established, time-wait, request socks) in
 * tcp_hashinfo.ehash[0..ehash_mask] (hlist_nulls chains whose end marker
 * is an odd pointer), UDP in udp_table.hash[0..mask] (NULL-terminated
 * hlists).  Records come in the kernel's own /proc iteration order.
 * Only sockets of the initial network namespace (sock_net(sk) ==
 * &init_net) are kept: the shadow /proc is the init namespace's.  Every
 * offset comes from the guest's BTF, every global from its kallsyms.
 *
 * Guest memory is hostile: each chain is checked node by node
 * (node->pprev must point at the link that led to the node, which also
 * rules out cycles), counts are capped (VMI_SOCK_MAX sockets, a bucket
 * count of at most VMI_SOCK_BUCKETS_MAX), and a non-canonical or
 * misaligned pointer ends that chain.  Every chain cut is reported
 * through the log callback with the bucket and address at fault; the
 * rest of the table is still walked.
 */
#ifndef VMI_SOCKETS_H
#define VMI_SOCKETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "kernel.h"

#define VMI_SOCK_MAX		65536
#define VMI_SOCK_BUCKETS_MAX	(1u << 24)
#define VMI_SOCK_FDS_MAX	(1u << 20)	/* sysctl nr_open's maximum */

/* What a record is, which decides the line format /proc uses. */
enum vmi_sock_kind {
	VMI_SOCK_FULL,		/* struct sock (tcp_sock / udp_sock) */
	VMI_SOCK_TIMEWAIT,	/* struct inet_timewait_sock */
	VMI_SOCK_REQUEST,	/* struct request_sock (TCP_NEW_SYN_RECV) */
};

struct vmi_sock {
	uint64_t addr;		/* the socket's kernel address (%pK) */
	int family;		/* AF_INET or AF_INET6 */
	int protocol;		/* IPPROTO_TCP or IPPROTO_UDP */
	enum vmi_sock_kind kind;
	/* sk_state; tw_substate for time-wait; TCP_SYN_RECV for requests */
	unsigned int state;
	/* Addresses in network byte order as the kernel keeps them (AF_INET:
	 * the first 4 bytes); ports in host byte order. */
	uint8_t laddr[16], raddr[16];
	uint16_t lport, rport;
	uint32_t tx_queue, rx_queue;
	int timer_active;	/* 0 none, 1 retransmit, 2 keepalive, 3 tw, 4 probe0 */
	uint64_t timer_expires;	/* absolute jiffies (timer_active != 0) */
	unsigned int retransmits; /* icsk_retransmits; req->num_timeout */
	uint32_t uid;		/* owner of the socket's inode (0 without) */
	unsigned int probes_out;
	uint64_t inode;		/* socket inode number; 0 without a socket */
	int refcnt;		/* sk_refcnt */
	/* TCP, full sockets only (jiffies where the kernel keeps jiffies) */
	uint64_t rto, ato;
	unsigned int ack_flags;	/* (icsk_ack.quick << 1) | pingpong mode */
	uint32_t cwnd;
	int last;		/* listener: fastopen max_qlen; else ssthresh or -1 */
	/* UDP */
	unsigned int bucket;	/* udp_table slot (the "sl" column) */
	unsigned int drops;	/* sk_drops */
};

/* One cut or refusal during a walk: @msg names the table, bucket and
 * address at fault. */
typedef void (*vmi_sock_log_fn)(void *ctx, const char *msg);

struct vmi_socks {
	struct vmi_sock *v;
	size_t n;
	uint64_t jiffies;	/* the guest's jiffies when collected */
	unsigned int hz;	/* the guest's HZ (from tick_nsec; else 250) */
	unsigned int cut;	/* chains or tables that were cut short */
	unsigned int other_ns;	/* sockets of other namespaces, skipped */
};

/*
 * Collect every TCP and UDP socket of the init namespace, IPv4 and IPv6,
 * in /proc order (TCP: listeners then ehash; UDP: by slot).  @log may be
 * NULL (then messages go to stderr).  @dl (may be NULL: none) is the
 * build's time budget: when it passes, the walk stops there with a
 * logged message and ->cut set, keeping what it found.  Returns 0
 * (possibly with ->cut set), or -errno with @err set when nothing could
 * be walked (a symbol or BTF member missing, jiffies unreadable).  Free
 * with vmi_socks_free().
 */
int vmi_sockets_collect(const struct vmi_kernel *k, const struct vmi_phys *p,
			struct vmi_socks *out, vmi_sock_log_fn log,
			void *logctx, const struct vmi_deadline *dl,
			char *err, size_t errlen);
void vmi_socks_free(struct vmi_socks *s);

/* A socket behind a task's file descriptor: /proc/PID/fd/FD shows
 * "socket:[INODE]". */
struct vmi_sock_fd {
	unsigned int fd;
	uint64_t inode;
};

/*
 * Walk the fd table of the task at kernel address @task_va
 * (task->files->fdt->fd[0..max_fds)) and report each descriptor whose
 * file is a socket (f_op == &socket_file_ops): its number and socket
 * inode, in fd order, at most @max of them.  A task without files (a
 * kernel thread, an exiting task) has none.  Returns how many were
 * stored, or -errno with @err set (-E2BIG when more than @max; the first
 * @max are stored).  max_fds is capped at VMI_SOCK_FDS_MAX.
 */
long vmi_task_socket_fds(const struct vmi_kernel *k, const struct vmi_phys *p,
			 uint64_t task_va, struct vmi_sock_fd *out, size_t max,
			 char *err, size_t errlen);

#endif
