// SPDX-License-Identifier: MIT
/*
 * The guest's TCP and UDP sockets (see sockets.h).  Layouts come from the
 * guest's BTF; the code below only knows which member means what, as the
 * kernel's own /proc/net seq_show functions use them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "sockets.h"

#define AF_INET_		2
#define AF_INET6_		10
#define IPPROTO_TCP_		6
#define IPPROTO_UDP_		17
#define TCP_LISTEN_		10
#define TCP_TIME_WAIT_		6
#define TCP_NEW_SYN_RECV_	12
#define TCP_SYN_RECV_		3
/* inet_connection_sock.icsk_pending values (include/net/inet_connection_sock.h) */
#define ICSK_TIME_RETRANS	1
#define ICSK_TIME_PROBE0	3
#define ICSK_TIME_LOSS_PROBE	5
#define ICSK_TIME_REO_TIMEOUT	6
#define TCP_INFINITE_SSTHRESH	0x7fffffff
/* inet_csk_in_pingpong_mode(): pingpong >= TCP_PINGPONG_THRESH (6.1: 1) */
#define TCP_PINGPONG_THRESH	1
/* Bytes read per step of a bucket array. */
#define BUCKET_CHUNK		4096
#define OBJ_MAX			(64u << 10)

/* Offsets of everything used, from BTF. */
struct sock_layout {
	/* struct sock_common, at the start of sock, timewait and request */
	uint64_t daddr, rcv_saddr, dport, num, family, state, net, v6_daddr,
		 v6_rcv_saddr, nulls_node, refcnt, listener;
	uint64_t common_size;
	/* struct sock */
	uint64_t ack_backlog, timer, socket, wmem_alloc, rmem_alloc, drops;
	/* struct timer_list */
	uint64_t timer_pprev, timer_expires;
	/* inet_sock, inet_connection_sock, tcp_sock, udp_sock */
	uint64_t inet_sport, icsk_pending, icsk_timeout, icsk_retransmits,
		 icsk_probes_out, icsk_rto, icsk_ack_quick, icsk_ack_pingpong,
		 icsk_ack_ato, fastopen_max_qlen;
	uint64_t write_seq, snd_una, rcv_nxt, copied_seq, snd_cwnd,
		 snd_ssthresh, forward_deficit;
	uint64_t tcp_size, udp_size;
	/* inet_timewait_sock, request_sock */
	uint64_t tw_substate, tw_sport, tw_timer, tw_size;
	uint64_t rsk_timer, rsk_num_retrans, rsk_size;
	/* socket -> inode */
	uint64_t vfs_inode, i_ino, i_uid;
	/* tables */
	uint64_t ehash, ehash_mask, lhash2, lhash2_mask, ehash_bucket_size,
		 lhb_head, lhb_size;
	uint64_t udp_hash, udp_mask, hslot_head, hslot_size;
};

struct ctx {
	const struct vmi_kernel *k;
	const struct vmi_phys *p;
	struct sock_layout L;
	int levels;
	uint64_t init_net;
	struct vmi_socks *out;
	size_t cap;
	vmi_sock_log_fn log;
	void *logctx;
	unsigned char *obj;	/* scratch for one socket object */
	const char *table;	/* for messages */
	bool full;		/* VMI_SOCK_MAX reached, or out of time */
	const struct vmi_deadline *dl;
};

static int member(const struct vmi_kernel *k, const char *path, uint64_t *off,
		  char *err, size_t errlen)
{
	int ret = vmi_kernel_member(k, path, off, NULL);

	if (ret)
		return vmi_err(err, errlen, -ret, "BTF: no member %s (%s)",
			       path, strerror(-ret));
	return 0;
}

static int tsize(const struct vmi_kernel *k, const char *name, uint64_t *sz,
		 char *err, size_t errlen)
{
	int ret = vmi_kernel_type_size(k, name, sz);

	if (ret)
		return vmi_err(err, errlen, -ret, "BTF: no type %s", name);
	if (*sz == 0 || *sz > OBJ_MAX)
		return vmi_err(err, errlen, EINVAL,
			       "BTF: size %" PRIu64 " of %s out of range",
			       *sz, name);
	return 0;
}

static int load_layout(const struct vmi_kernel *k, struct sock_layout *L,
		       char *err, size_t errlen)
{
	const struct vmi_member_ref m[] = {
		{ "sock_common.skc_daddr", &L->daddr },
		{ "sock_common.skc_rcv_saddr", &L->rcv_saddr },
		{ "sock_common.skc_dport", &L->dport },
		{ "sock_common.skc_num", &L->num },
		{ "sock_common.skc_family", &L->family },
		{ "sock_common.skc_state", &L->state },
		{ "sock_common.skc_net", &L->net },
		{ "sock_common.skc_v6_daddr", &L->v6_daddr },
		{ "sock_common.skc_v6_rcv_saddr", &L->v6_rcv_saddr },
		{ "sock_common.skc_nulls_node", &L->nulls_node },
		{ "sock_common.skc_refcnt", &L->refcnt },
		{ "sock_common.skc_listener", &L->listener },
		{ "sock.sk_ack_backlog", &L->ack_backlog },
		{ "sock.sk_timer", &L->timer },
		{ "sock.sk_socket", &L->socket },
		{ "sock.sk_wmem_alloc", &L->wmem_alloc },
		{ "sock.sk_backlog.rmem_alloc", &L->rmem_alloc },
		{ "sock.sk_drops", &L->drops },
		{ "timer_list.entry.pprev", &L->timer_pprev },
		{ "timer_list.expires", &L->timer_expires },
		{ "inet_sock.inet_sport", &L->inet_sport },
		{ "inet_connection_sock.icsk_pending", &L->icsk_pending },
		{ "inet_connection_sock.icsk_timeout", &L->icsk_timeout },
		{ "inet_connection_sock.icsk_retransmits",
		  &L->icsk_retransmits },
		{ "inet_connection_sock.icsk_probes_out", &L->icsk_probes_out },
		{ "inet_connection_sock.icsk_rto", &L->icsk_rto },
		{ "inet_connection_sock.icsk_ack.quick", &L->icsk_ack_quick },
		{ "inet_connection_sock.icsk_ack.pingpong",
		  &L->icsk_ack_pingpong },
		{ "inet_connection_sock.icsk_ack.ato", &L->icsk_ack_ato },
		{ "inet_connection_sock.icsk_accept_queue.fastopenq.max_qlen",
		  &L->fastopen_max_qlen },
		{ "tcp_sock.write_seq", &L->write_seq },
		{ "tcp_sock.snd_una", &L->snd_una },
		{ "tcp_sock.rcv_nxt", &L->rcv_nxt },
		{ "tcp_sock.copied_seq", &L->copied_seq },
		{ "tcp_sock.snd_cwnd", &L->snd_cwnd },
		{ "tcp_sock.snd_ssthresh", &L->snd_ssthresh },
		{ "udp_sock.forward_deficit", &L->forward_deficit },
		{ "inet_timewait_sock.tw_substate", &L->tw_substate },
		{ "inet_timewait_sock.tw_sport", &L->tw_sport },
		{ "inet_timewait_sock.tw_timer", &L->tw_timer },
		{ "request_sock.rsk_timer", &L->rsk_timer },
		{ "request_sock.num_retrans", &L->rsk_num_retrans },
		{ "socket_alloc.vfs_inode", &L->vfs_inode },
		{ "inode.i_ino", &L->i_ino },
		{ "inode.i_uid", &L->i_uid },
		{ "inet_hashinfo.ehash", &L->ehash },
		{ "inet_hashinfo.ehash_mask", &L->ehash_mask },
		{ "inet_hashinfo.lhash2", &L->lhash2 },
		{ "inet_hashinfo.lhash2_mask", &L->lhash2_mask },
		{ "inet_listen_hashbucket.nulls_head", &L->lhb_head },
		{ "udp_table.hash", &L->udp_hash },
		{ "udp_table.mask", &L->udp_mask },
		{ "udp_hslot.head", &L->hslot_head },
		{ NULL, NULL },
	};
	const char *failed;
	uint64_t sk_common, sz;
	int ret;

	ret = vmi_kernel_members(k, m, &failed);
	if (ret)
		return vmi_err(err, errlen, -ret, "BTF: no member %s (%s)",
			       failed, strerror(-ret));
	/* The code below reads sock_common at the start of every object
	 * found in a chain, as the kernel does. */
	ret = member(k, "sock.__sk_common", &sk_common, err, errlen);
	if (ret)
		return ret;
	if (sk_common != 0)
		return vmi_err(err, errlen, EINVAL,
			       "BTF: sock.__sk_common at %" PRIu64 ", not 0",
			       sk_common);
	if ((ret = tsize(k, "sock_common", &L->common_size, err, errlen)) ||
	    (ret = tsize(k, "tcp_sock", &L->tcp_size, err, errlen)) ||
	    (ret = tsize(k, "udp_sock", &L->udp_size, err, errlen)) ||
	    (ret = tsize(k, "inet_timewait_sock", &L->tw_size, err, errlen)) ||
	    (ret = tsize(k, "request_sock", &L->rsk_size, err, errlen)) ||
	    (ret = tsize(k, "inet_ehash_bucket", &L->ehash_bucket_size, err,
			 errlen)) ||
	    (ret = tsize(k, "inet_listen_hashbucket", &L->lhb_size, err,
			 errlen)) ||
	    (ret = tsize(k, "udp_hslot", &L->hslot_size, err, errlen)))
		return ret;
	/* The socket inode is found from struct socket the way SOCK_INODE()
	 * does: both live in one struct socket_alloc. */
	ret = member(k, "socket_alloc.socket", &sz, err, errlen);
	if (ret)
		return ret;
	L->vfs_inode -= sz;
	return 0;
}

/* ---- little helpers over a read object ---- */

static uint64_t get(const unsigned char *b, uint64_t off, size_t n)
{
	uint64_t v = 0;

	memcpy(&v, b + off, n);	/* x86-64 guests only: little endian */
	return v;
}

#define logf_(c, ...) \
	vmi_cut_log(&(c)->out->cut, (c)->log, (c)->logctx, "sockets", \
		    __VA_ARGS__)

static int kread(struct ctx *c, uint64_t va, void *buf, size_t len)
{
	return vmi_kernel_read(c->k, c->p, va, buf, len);
}

static bool good_ptr(struct ctx *c, uint64_t va)
{
	return vmi_kernel_half(va, c->levels) && !(va & 7);
}

static struct vmi_sock *new_rec(struct ctx *c)
{
	struct vmi_socks *s = c->out;

	if (s->n >= VMI_SOCK_MAX) {
		if (!c->full)
			logf_(c, "%s: more than %u sockets, the rest cut",
			      c->table, VMI_SOCK_MAX);
		c->full = true;
		return NULL;
	}
	if (s->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 64;
		struct vmi_sock *v = realloc(s->v, ncap * sizeof(*v));

		if (!v)
			return NULL;
		s->v = v;
		c->cap = ncap;
	}
	memset(&s->v[s->n], 0, sizeof(s->v[0]));
	return &s->v[s->n++];
}

/* sock_i_ino() and sock_i_uid(): through sk->sk_socket's inode. */
static int sock_inode(struct ctx *c, uint64_t sock, uint64_t *ino,
		      uint32_t *uid)
{
	uint64_t inode;
	int ret;

	*ino = 0;
	*uid = 0;
	if (!sock)
		return 0;
	if (!good_ptr(c, sock))
		return -EFAULT;
	inode = sock + c->L.vfs_inode;
	ret = kread(c, inode + c->L.i_ino, ino, sizeof(*ino));
	if (!ret)
		ret = kread(c, inode + c->L.i_uid, uid, sizeof(*uid));
	return ret;
}

static void copy_addrs(struct ctx *c, struct vmi_sock *r,
		       const unsigned char *o)
{
	const struct sock_layout *L = &c->L;

	if (r->family == AF_INET6_) {
		memcpy(r->laddr, o + L->v6_rcv_saddr, 16);
		memcpy(r->raddr, o + L->v6_daddr, 16);
	} else {
		memcpy(r->laddr, o + L->rcv_saddr, 4);
		memcpy(r->raddr, o + L->daddr, 4);
	}
	r->rport = __builtin_bswap16((uint16_t)get(o, L->dport, 2));
}

/* A full TCP socket, as get_tcp4_sock()/get_tcp6_sock() see it. */
static int tcp_full(struct ctx *c, struct vmi_sock *r, const unsigned char *o)
{
	const struct sock_layout *L = &c->L;
	unsigned int pending = (unsigned int)get(o, L->icsk_pending, 1);
	uint32_t ssthresh;
	int ret;

	r->lport = __builtin_bswap16((uint16_t)get(o, L->inet_sport, 2));
	if (pending == ICSK_TIME_RETRANS || pending == ICSK_TIME_REO_TIMEOUT ||
	    pending == ICSK_TIME_LOSS_PROBE) {
		r->timer_active = 1;
		r->timer_expires = get(o, L->icsk_timeout, 8);
	} else if (pending == ICSK_TIME_PROBE0) {
		r->timer_active = 4;
		r->timer_expires = get(o, L->icsk_timeout, 8);
	} else if (get(o, L->timer + L->timer_pprev, 8)) {
		/* timer_pending(&sk->sk_timer) */
		r->timer_active = 2;
		r->timer_expires = get(o, L->timer + L->timer_expires, 8);
	}
	if (r->state == TCP_LISTEN_) {
		r->rx_queue = (uint32_t)get(o, L->ack_backlog, 4);
	} else {
		int32_t d = (int32_t)((uint32_t)get(o, L->rcv_nxt, 4) -
				      (uint32_t)get(o, L->copied_seq, 4));

		r->rx_queue = d > 0 ? (uint32_t)d : 0;
	}
	r->tx_queue = (uint32_t)get(o, L->write_seq, 4) -
		      (uint32_t)get(o, L->snd_una, 4);
	r->retransmits = (unsigned int)get(o, L->icsk_retransmits, 1);
	r->probes_out = (unsigned int)get(o, L->icsk_probes_out, 1);
	r->rto = (uint32_t)get(o, L->icsk_rto, 4);
	r->ato = (uint32_t)get(o, L->icsk_ack_ato, 4);
	r->ack_flags = ((unsigned int)get(o, L->icsk_ack_quick, 1) << 1) |
		       (get(o, L->icsk_ack_pingpong, 1) >= TCP_PINGPONG_THRESH);
	r->cwnd = (uint32_t)get(o, L->snd_cwnd, 4);
	ssthresh = (uint32_t)get(o, L->snd_ssthresh, 4);
	if (r->state == TCP_LISTEN_)
		r->last = (int)get(o, L->fastopen_max_qlen, 4);
	else
		r->last = ssthresh >= TCP_INFINITE_SSTHRESH ? -1 : (int)ssthresh;
	ret = sock_inode(c, get(o, L->socket, 8), &r->inode, &r->uid);
	if (ret)
		logf_(c, "%s: sock 0x%" PRIx64 ": sk_socket unreadable (%s)",
		      c->table, r->addr, strerror(-ret));
	return 0;
}

static int tcp_timewait(struct ctx *c, struct vmi_sock *r,
			const unsigned char *o)
{
	const struct sock_layout *L = &c->L;

	r->kind = VMI_SOCK_TIMEWAIT;
	r->state = (unsigned int)get(o, L->tw_substate, 1);
	r->lport = __builtin_bswap16((uint16_t)get(o, L->tw_sport, 2));
	r->timer_active = 3;
	r->timer_expires = get(o, L->tw_timer + L->timer_expires, 8);
	return 0;
}

static int tcp_request(struct ctx *c, struct vmi_sock *r,
		       const unsigned char *o)
{
	const struct sock_layout *L = &c->L;
	uint64_t listener = get(o, L->listener, 8);
	uint64_t lsock = 0, ino;

	r->kind = VMI_SOCK_REQUEST;
	r->state = TCP_SYN_RECV_;
	r->lport = (uint16_t)get(o, L->num, 2);	/* ir_num: host order */
	r->timer_active = 1;
	r->timer_expires = get(o, L->rsk_timer + L->timer_expires, 8);
	/* num_timeout:7 sits above syncookie:1 in the byte after
	 * num_retrans (a bitfield: BTF gives no byte offset for it). */
	r->retransmits = (unsigned int)get(o, L->rsk_num_retrans + 1, 1) >> 1;
	/* The owner is the listener's (sock_i_uid(req->rsk_listener)). */
	if (good_ptr(c, listener) &&
	    !kread(c, listener + L->socket, &lsock, sizeof(lsock)) &&
	    sock_inode(c, lsock, &ino, &r->uid))
		r->uid = 0;
	return 0;
}

static int udp_full(struct ctx *c, struct vmi_sock *r, const unsigned char *o)
{
	const struct sock_layout *L = &c->L;
	int ret;

	r->lport = __builtin_bswap16((uint16_t)get(o, L->inet_sport, 2));
	/* sk_wmem_alloc_get() and udp_rqueue_get() */
	r->tx_queue = (uint32_t)get(o, L->wmem_alloc, 4) - 1;
	r->rx_queue = (uint32_t)get(o, L->rmem_alloc, 4) -
		      (uint32_t)get(o, L->forward_deficit, 4);
	r->drops = (uint32_t)get(o, L->drops, 4);
	ret = sock_inode(c, get(o, L->socket, 8), &r->inode, &r->uid);
	if (ret)
		logf_(c, "%s: sock 0x%" PRIx64 ": sk_socket unreadable (%s)",
		      c->table, r->addr, strerror(-ret));
	return 0;
}

/*
 * One socket found in a chain (its sock_common at @sk).  Returns 0 (the
 * socket was stored or skipped: other namespace), or -errno when it
 * could not be read (the chain must end: its next pointer is suspect).
 */
static int one_sock(struct ctx *c, uint64_t sk, int protocol,
		    unsigned int bucket)
{
	const struct sock_layout *L = &c->L;
	unsigned char *o = c->obj;
	struct vmi_sock *r;
	unsigned int family, state;
	uint64_t size;
	int ret;

	ret = kread(c, sk, o, L->common_size);
	if (ret)
		return ret;
	if (get(o, L->net, 8) != c->init_net) {
		c->out->other_ns++;
		return 0;
	}
	family = (unsigned int)get(o, L->family, 2);
	state = (unsigned int)get(o, L->state, 1);
	if (family != AF_INET_ && family != AF_INET6_)
		return 0;
	if (protocol == IPPROTO_UDP_)
		size = L->udp_size;
	else if (state == TCP_TIME_WAIT_)
		size = L->tw_size;
	else if (state == TCP_NEW_SYN_RECV_)
		size = L->rsk_size;
	else
		size = L->tcp_size;
	ret = kread(c, sk, o, size);
	if (ret)
		return ret;
	r = new_rec(c);
	if (!r)
		return c->full ? -ENOSPC : -ENOMEM;
	r->addr = sk;
	r->family = (int)family;
	r->protocol = protocol;
	r->kind = VMI_SOCK_FULL;
	r->state = state;
	r->bucket = bucket;
	r->refcnt = (int)get(o, L->refcnt, 4);
	copy_addrs(c, r, o);
	if (protocol == IPPROTO_UDP_)
		return udp_full(c, r, o);
	if (state == TCP_TIME_WAIT_)
		return tcp_timewait(c, r, o);
	if (state == TCP_NEW_SYN_RECV_)
		return tcp_request(c, r, o);
	return tcp_full(c, r, o);
}

/*
 * Walk one hash chain: @headp is the address of the head's first
 * pointer; nodes are sock_common.skc_nulls_node (TCP) or the skc_node in
 * the same place (UDP).  With @nulls the chain ends at an odd pointer
 * (the nulls marker), else at NULL.  Each node's pprev must be the
 * address of the link that led to it: a chain pointing back into itself
 * or anywhere else fails this at the first wrong node.
 */
static void walk_chain(struct ctx *c, uint64_t headp, bool nulls,
		       int protocol, unsigned int bucket)
{
	uint64_t link = headp, node, nd[2];
	unsigned long n = 0;
	int ret;

	ret = kread(c, headp, &node, sizeof(node));
	if (ret) {
		logf_(c, "%s: bucket %u: head 0x%" PRIx64 " unreadable (%s)",
		      c->table, bucket, headp, strerror(-ret));
		return;
	}
	for (;;) {
		if (nulls ? (node & 1) : !node)
			return;
		if (!good_ptr(c, node)) {
			logf_(c, "%s: bucket %u: bad pointer 0x%" PRIx64
			      " after %lu sockets, chain cut", c->table,
			      bucket, node, n);
			return;
		}
		if (n >= VMI_SOCK_MAX) {
			logf_(c, "%s: bucket %u: more than %u sockets, chain cut",
			      c->table, bucket, VMI_SOCK_MAX);
			return;
		}
		ret = kread(c, node, nd, sizeof(nd));
		if (ret) {
			logf_(c, "%s: bucket %u: node 0x%" PRIx64
			      " unreadable (%s), chain cut", c->table, bucket,
			      node, strerror(-ret));
			return;
		}
		if (nd[1] != link) {
			logf_(c, "%s: bucket %u: node 0x%" PRIx64 " has pprev 0x%"
			      PRIx64 ", not 0x%" PRIx64 " (a cycle or a stray "
			      "pointer), chain cut after %lu sockets",
			      c->table, bucket, node, nd[1], link, n);
			return;
		}
		if (c->dl && vmi_deadline_passed(c->dl)) {
			logf_(c, "%s: bucket %u: time budget spent, walk cut "
			      "after %zu sockets", c->table, bucket, c->out->n);
			c->full = true;
			return;
		}
		ret = one_sock(c, node - c->L.nulls_node, protocol, bucket);
		if (ret == -ENOSPC || ret == -ENOMEM)
			return;
		if (ret) {
			logf_(c, "%s: bucket %u: socket 0x%" PRIx64
			      " unreadable (%s), chain cut", c->table, bucket,
			      node - c->L.nulls_node, strerror(-ret));
			return;
		}
		n++;
		link = node;	/* hlist_nulls_node.next is the first word */
		node = nd[0];
	}
}

/*
 * Walk a bucket array at @array: @count buckets of @bsize bytes, each
 * with its chain head at @headoff.  The array is read in chunks only to
 * see which heads are empty; each chain is then read on its own.
 */
static int walk_buckets(struct ctx *c, uint64_t array, uint64_t count,
			uint64_t bsize, uint64_t headoff, bool nulls,
			int protocol)
{
	unsigned char buf[BUCKET_CHUNK];
	uint64_t per = sizeof(buf) / bsize, i = 0;
	int ret;

	if (!good_ptr(c, array) || bsize == 0 || bsize > sizeof(buf) ||
	    headoff + 8 > bsize) {
		logf_(c, "%s: bucket array 0x%" PRIx64 " refused", c->table,
		      array);
		return -EFAULT;
	}
	if (count > VMI_SOCK_BUCKETS_MAX) {
		logf_(c, "%s: %" PRIu64 " buckets, only %u walked", c->table,
		      count, VMI_SOCK_BUCKETS_MAX);
		count = VMI_SOCK_BUCKETS_MAX;
	}
	while (i < count && !c->full) {
		uint64_t n = count - i < per ? count - i : per;

		if (c->dl && vmi_deadline_passed(c->dl)) {
			logf_(c, "%s: time budget spent at bucket %" PRIu64
			      " of %" PRIu64 ", walk cut", c->table, i, count);
			c->full = true;
			return -ETIMEDOUT;
		}
		ret = kread(c, array + i * bsize, buf, n * bsize);
		if (ret) {
			logf_(c, "%s: buckets %" PRIu64 "..%" PRIu64
			      " at 0x%" PRIx64 " unreadable (%s)", c->table,
			      i, i + n - 1, array + i * bsize, strerror(-ret));
			return ret;
		}
		for (uint64_t j = 0; j < n && !c->full; j++) {
			uint64_t first = get(buf, j * bsize + headoff, 8);

			if (nulls ? (first & 1) : !first)
				continue;
			walk_chain(c, array + (i + j) * bsize + headoff, nulls,
				   protocol, (unsigned int)(i + j));
		}
		i += n;
	}
	return 0;
}

/*
 * Walk the hash table named @table whose bucket array pointer is at
 * @array_va and whose (u32) mask is at @mask_va; see walk_buckets.
 */
static void walk_table(struct ctx *c, const char *table, uint64_t array_va,
		       uint64_t mask_va, uint64_t bsize, uint64_t headoff,
		       bool nulls, int protocol)
{
	uint64_t array;
	uint32_t mask;
	int ret;

	c->table = table;
	if ((ret = kread(c, array_va, &array, 8)) ||
	    (ret = kread(c, mask_va, &mask, 4))) {
		logf_(c, "%s unreadable (%s)", c->table, strerror(-ret));
		return;
	}
	walk_buckets(c, array, (uint64_t)mask + 1, bsize, headoff, nulls,
		     protocol);
}

static int need_sym(const struct vmi_kernel *k, const char *name,
		    uint64_t *addr, char *err, size_t errlen)
{
	if (vmi_kernel_symbol(k, name, addr))
		return 0;
	return vmi_err(err, errlen, ENOENT, "no symbol %s in kallsyms", name);
}

/* HZ from tick_nsec (NSEC_PER_SEC / HZ, nudged by NTP by a few ppm). */
static unsigned int guest_hz(struct ctx *c)
{
	uint64_t a, tick;

	if (vmi_kernel_symbol(c->k, "tick_nsec", &a) &&
	    !kread(c, a, &tick, sizeof(tick)) && tick >= 100000 &&
	    tick <= 100000000)
		return (unsigned int)((1000000000ULL + tick / 2) / tick);
	return 250;
}

int vmi_sockets_collect(const struct vmi_kernel *k, const struct vmi_phys *p,
			struct vmi_socks *out, vmi_sock_log_fn log,
			void *logctx, const struct vmi_deadline *dl,
			char *err, size_t errlen)
{
	struct ctx c = { .k = k, .p = p, .out = out, .log = log,
			 .logctx = logctx, .dl = dl };
	uint64_t tcp, udp, jif, v[2];
	int ret;

	memset(out, 0, sizeof(*out));
	c.levels = vmi_kernel_info(k)->paging_levels;
	ret = load_layout(k, &c.L, err, errlen);
	if (ret)
		return ret;
	if ((ret = need_sym(k, "tcp_hashinfo", &tcp, err, errlen)) ||
	    (ret = need_sym(k, "udp_table", &udp, err, errlen)) ||
	    (ret = need_sym(k, "init_net", &c.init_net, err, errlen)) ||
	    (ret = need_sym(k, "jiffies_64", &jif, err, errlen)))
		return ret;
	ret = kread(&c, jif, &out->jiffies, sizeof(out->jiffies));
	if (ret)
		return vmi_err(err, errlen, -ret, "jiffies_64 at 0x%" PRIx64
			       " unreadable", jif);
	out->hz = guest_hz(&c);
	c.obj = malloc(OBJ_MAX);
	if (!c.obj)
		return vmi_err(err, errlen, ENOMEM, "out of memory");

	/* TCP: listeners first, then the established hash (tcp4_seq_show's
	 * order; tcp6 walks the same tables).  Since 6.1 a child namespace
	 * may have its own ehash (net.ipv4.tcp_child_ehash_entries): the
	 * kernel's /proc reads the namespace's tcp_death_row.hashinfo,
	 * which for init_net is &tcp_hashinfo; follow it where BTF has it.
	 * UDP's table is still the global udp_table (per-netns from 6.2). */
	if (!vmi_kernel_member(k, "net.ipv4.tcp_death_row.hashinfo", &v[1],
			       NULL) &&
	    !kread(&c, c.init_net + v[1], &v[0], 8) && v[0] != tcp) {
		if (good_ptr(&c, v[0]))
			tcp = v[0];
		else
			logf_(&c, "init_net tcp_death_row.hashinfo 0x%" PRIx64
			      " refused, tcp_hashinfo used", v[0]);
	}
	walk_table(&c, "tcp_hashinfo.lhash2", tcp + c.L.lhash2,
		   tcp + c.L.lhash2_mask, c.L.lhb_size, c.L.lhb_head, true,
		   IPPROTO_TCP_);
	walk_table(&c, "tcp_hashinfo.ehash", tcp + c.L.ehash,
		   tcp + c.L.ehash_mask, c.L.ehash_bucket_size, 0, true,
		   IPPROTO_TCP_);
	walk_table(&c, "udp_table.hash", udp + c.L.udp_hash,
		   udp + c.L.udp_mask, c.L.hslot_size, c.L.hslot_head, false,
		   IPPROTO_UDP_);
	free(c.obj);
	return 0;
}

void vmi_socks_free(struct vmi_socks *s)
{
	if (!s)
		return;
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* ---- a task's socket descriptors ---- */

long vmi_task_socket_fds(const struct vmi_kernel *k, const struct vmi_phys *p,
			 uint64_t task_va, struct vmi_sock_fd *out, size_t max,
			 char *err, size_t errlen)
{
	uint64_t o_files, o_fdt, o_max, o_fd, o_fop, o_priv, o_vfs, o_sock,
		 o_ino, sfops, files, fdt, fdarr;
	uint64_t chunk[512];
	unsigned int maxfds;
	int levels = vmi_kernel_info(k)->paging_levels, ret;
	size_t n = 0;
	bool more = false;

	if ((ret = member(k, "task_struct.files", &o_files, err, errlen)) ||
	    (ret = member(k, "files_struct.fdt", &o_fdt, err, errlen)) ||
	    (ret = member(k, "fdtable.max_fds", &o_max, err, errlen)) ||
	    (ret = member(k, "fdtable.fd", &o_fd, err, errlen)) ||
	    (ret = member(k, "file.f_op", &o_fop, err, errlen)) ||
	    (ret = member(k, "file.private_data", &o_priv, err, errlen)) ||
	    (ret = member(k, "socket_alloc.vfs_inode", &o_vfs, err, errlen)) ||
	    (ret = member(k, "socket_alloc.socket", &o_sock, err, errlen)) ||
	    (ret = member(k, "inode.i_ino", &o_ino, err, errlen)) ||
	    (ret = need_sym(k, "socket_file_ops", &sfops, err, errlen)))
		return ret;
	if (!vmi_kernel_half(task_va, levels))
		return vmi_err(err, errlen, EFAULT, "task 0x%" PRIx64
			       " is not a kernel address", task_va);
	ret = vmi_kernel_read(k, p, task_va + o_files, &files, 8);
	if (ret)
		return vmi_err(err, errlen, -ret, "task 0x%" PRIx64
			       ": files unreadable", task_va);
	if (!files)
		return 0;
	if (!vmi_kernel_half(files, levels) || (files & 7))
		return vmi_err(err, errlen, EFAULT, "task 0x%" PRIx64
			       ": bad files pointer 0x%" PRIx64, task_va, files);
	ret = vmi_kernel_read(k, p, files + o_fdt, &fdt, 8);
	if (!ret && (!vmi_kernel_half(fdt, levels) || (fdt & 7)))
		ret = -EFAULT;
	if (!ret)
		ret = vmi_kernel_read(k, p, fdt + o_max, &maxfds, 4);
	if (!ret)
		ret = vmi_kernel_read(k, p, fdt + o_fd, &fdarr, 8);
	if (!ret && (!vmi_kernel_half(fdarr, levels) || (fdarr & 7)))
		ret = -EFAULT;
	if (ret)
		return vmi_err(err, errlen, -ret, "task 0x%" PRIx64
			       ": fd table (files 0x%" PRIx64 ", fdt 0x%" PRIx64
			       ") unreadable", task_va, files, fdt);
	if (maxfds > VMI_SOCK_FDS_MAX)
		return vmi_err(err, errlen, E2BIG, "task 0x%" PRIx64
			       ": max_fds %u above %u", task_va, maxfds,
			       VMI_SOCK_FDS_MAX);
	for (unsigned int i = 0; i < maxfds;) {
		unsigned int cn = maxfds - i;

		if (cn > 512)
			cn = 512;
		ret = vmi_kernel_read(k, p, fdarr + (uint64_t)i * 8, chunk,
				      cn * 8ul);
		if (ret)
			return vmi_err(err, errlen, -ret, "task 0x%" PRIx64
				       ": fd[%u..%u] at 0x%" PRIx64
				       " unreadable", task_va, i, i + cn - 1,
				       fdarr + (uint64_t)i * 8);
		for (unsigned int j = 0; j < cn; j++) {
			uint64_t f = chunk[j], fop, sock, ino;

			if (!f)
				continue;
			/* A bad file pointer or a file we cannot read is
			 * not a socket we can show: skip that fd only. */
			if (!vmi_kernel_half(f, levels) || (f & 7) ||
			    vmi_kernel_read(k, p, f + o_fop, &fop, 8) ||
			    fop != sfops ||
			    vmi_kernel_read(k, p, f + o_priv, &sock, 8) ||
			    !vmi_kernel_half(sock, levels) ||
			    vmi_kernel_read(k, p, sock - o_sock + o_vfs + o_ino,
					    &ino, 8))
				continue;
			if (n == max) {
				more = true;
				break;
			}
			out[n].fd = i + j;
			out[n].inode = ino;
			n++;
		}
		if (more)
			return vmi_err(err, errlen, E2BIG, "task 0x%" PRIx64
				       ": more than %zu sockets", task_va, max);
		i += cn;
	}
	return (long)n;
}
