// SPDX-License-Identifier: MIT
/*
 * The checks every introspect module shares (see guard.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../common/memunits.h"
#include "../common/timeutil.h"
#include "guard.h"

bool vmi_canonical(uint64_t va, int levels)
{
	int bits = levels == 5 ? 57 : 48;
	/* Bits 63..bits-1 must all equal bit bits-1. */
	int64_t s = (int64_t)(va << (64 - bits)) >> (64 - bits);

	return (uint64_t)s == va;
}

bool vmi_kernel_half(uint64_t va, int levels)
{
	return vmi_canonical(va, levels) && (va >> 63);
}

uint64_t vmi_now_ms(void)
{
	return vmem_now_ms();
}

void vmi_deadline_set(struct vmi_deadline *d, uint64_t timeout_ms)
{
	d->at_ms = timeout_ms ? vmi_now_ms() + timeout_ms : 0;
}

bool vmi_deadline_passed(const struct vmi_deadline *d)
{
	return d && d->at_ms && vmi_now_ms() >= d->at_ms;
}

int vmi_err(char *err, size_t errlen, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -errnum;
}

void vmi_cut_log(unsigned int *cut, vmi_log_fn log, void *logctx,
		 const char *who, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	(*cut)++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log)
		log(logctx, msg);
	else
		fprintf(stderr, "vmemfs: %s: %s\n", who, msg);
}

long vmi_walk_list(vmi_kread_fn read, void *ctx, uint64_t head, int levels,
		   unsigned long max,
		   int (*visit)(void *arg, uint64_t entry), void *arg)
{
	/* Brent: remember a node, compare, move it at powers of two. */
	uint64_t saved = head, cur = head, next;
	unsigned long power = 1, lam = 0, n = 0;
	int ret;

	if (!vmi_kernel_half(head, levels))
		return -EFAULT;
	for (;;) {
		/* list_head.next is the first word. */
		ret = read(ctx, cur, &next, sizeof(next));
		if (ret)
			return ret;
		if (!vmi_kernel_half(next, levels) || (next & 7))
			return -EFAULT;
		if (next == head)
			return (long)n;
		if (n >= max)
			return -ELOOP;
		ret = visit(arg, next);
		if (ret)
			return ret;
		n++;
		cur = next;
		if (cur == saved)
			return -ELOOP;	/* a cycle that misses head */
		if (++lam == power) {
			saved = cur;
			power *= 2;
			lam = 0;
		}
	}
}

struct linked {
	vmi_kread_fn read;
	void *ctx;
	uint64_t prev;		/* the entry visited last, or the head */
	int (*visit)(void *arg, uint64_t entry);
	void *arg;
	struct vmi_list_bad *bad;
};

static int linked_visit(void *arg, uint64_t entry)
{
	struct linked *l = arg;
	uint64_t back = 0;
	int ret;

	/* list_head.prev is the second word. */
	ret = l->read(l->ctx, entry + 8, &back, sizeof(back));
	if (ret || back != l->prev) {
		*l->bad = (struct vmi_list_bad){ entry, ret ? 0 : back,
						 l->prev };
		return ret ? ret : -ELOOP;
	}
	l->prev = entry;
	return l->visit(l->arg, entry);
}

long vmi_walk_list_linked(vmi_kread_fn read, void *ctx, uint64_t head,
			  int levels, unsigned long max,
			  int (*visit)(void *arg, uint64_t entry), void *arg,
			  struct vmi_list_bad *bad)
{
	struct vmi_list_bad ignored;
	struct linked l = { read, ctx, head, visit, arg,
			    bad ? bad : &ignored };

	*l.bad = (struct vmi_list_bad){ 0 };
	return vmi_walk_list(read, ctx, head, levels, max, linked_visit, &l);
}

long vmi_read_cstr(vmi_kread_fn read, void *ctx, uint64_t va, char *buf,
		   size_t max)
{
	size_t got = 0;
	int ret;

	if (!max)
		return -EINVAL;
	buf[0] = '\0';
	/* Read in small pieces that never cross a page: the string may end
	 * just before an unmapped page. */
	while (got < max - 1) {
		uint64_t a;
		size_t n = max - 1 - got, room;
		char *nul;

		if (!vmi_add_ok(va, got, &a))
			return -EFAULT;
		room = vmem_page_floor(a) + VMEM_PAGE_SIZE - a;
		if (n > room)
			n = room;
		ret = read(ctx, a, buf + got, n);
		if (ret)
			return ret;
		nul = memchr(buf + got, '\0', n);
		if (nul)
			return (long)(nul - buf);
		got += n;
	}
	buf[max - 1] = '\0';
	return -ENAMETOOLONG;
}
