// SPDX-License-Identifier: MIT
/*
 * The guest-kernel library on small synthetic inputs, no guest: the note
 * header check and parser, the note scan's order and bounds, the x86-64
 * walk, the kallsyms decoder, list walks, System.map, BTF member paths.
 * Most cases are hostile: guest memory is written by the guest.
 */
#include <bpf/btf.h>
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../introspect/btf.h"
#include "../introspect/guard.h"
#include "../introspect/kallsyms.h"
#include "../introspect/pgtable.h"
#include "../introspect/phys.h"
#include "../introspect/vmcoreinfo.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define MiB ((uint64_t)1 << 20)

/* ---- a guest-physical memory in a buffer ---------------------------- */

struct mem {
	unsigned char *buf;
	uint64_t size;
	uint64_t local_from;	/* [local_from, size) is local */
	uint64_t bad_start, bad_end;	/* reads here fail with -EIO */
	uint64_t bad2_start, bad2_end;
	unsigned int delay_us;
	unsigned long reads;
	struct vmi_phys_range range;
	struct vmi_phys p;
};

static int mem_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	struct mem *m = ctx;

	m->reads++;
	if (m->delay_us)
		usleep(m->delay_us);
	if ((gpa < m->bad_end && gpa + len > m->bad_start) ||
	    (gpa < m->bad2_end && gpa + len > m->bad2_start))
		return -EIO;
	ck_assert_msg(gpa + len <= m->size, "read beyond RAM: the library "
		      "must check ranges before reading");
	memcpy(buf, m->buf + gpa, len);
	return 0;
}

static int mem_local(void *ctx, uint64_t gpa, uint64_t len)
{
	struct mem *m = ctx;

	(void)len;
	return gpa >= m->local_from;
}

static void mem_init(struct mem *m, uint64_t size)
{
	memset(m, 0, sizeof(*m));
	m->buf = calloc(1, size);
	ck_assert(m->buf);
	m->size = size;
	m->range.end = size;
	m->p.read = mem_read;
	m->p.ctx = m;
	m->p.ranges = &m->range;
	m->p.nranges = 1;
}

static void put64(struct mem *m, uint64_t gpa, uint64_t v)
{
	memcpy(m->buf + gpa, &v, 8);
}

/* ---- notes ---------------------------------------------------------- */

static size_t make_note(unsigned char *out, const char *text, uint32_t namesz,
			uint32_t type)
{
	uint32_t descsz = (uint32_t)strlen(text);

	memcpy(out, &namesz, 4);
	memcpy(out + 4, &descsz, 4);
	memcpy(out + 8, &type, 4);
	memcpy(out + 12, "VMCOREINFO\0\0", 12);
	memcpy(out + 24, text, descsz);
	return 24 + ((descsz + 3) & ~3u);
}

static const char good_text[] =
	"OSRELEASE=6.1.0-test\nBUILD-ID=0123abcd\nPAGESIZE=4096\n"
	"SYMBOL(init_top_pgt)=ffffffff8a000000\n"
	"NUMBER(phys_base)=-130023424\nNUMBER(pgtable_l5_enabled)=0\n"
	"OFFSET(page.flags)=0\nSIZE(page)=64\nLENGTH(zone.free_area)=11\n"
	"KERNELOFFSET=9000000\n";

START_TEST(test_note_header)
{
	unsigned char n[256];
	uint32_t v;
	size_t len;

	len = make_note(n, good_text, 11, 0);
	ck_assert_uint_eq(vmi_note_check_header(n, sizeof(n)), len);
	/* Too short to hold header and first key. */
	ck_assert_uint_eq(vmi_note_check_header(n, 33), 0);
	make_note(n, good_text, 10, 0);
	ck_assert_uint_eq(vmi_note_check_header(n, sizeof(n)), 0);
	make_note(n, good_text, 11, 1);
	ck_assert_uint_eq(vmi_note_check_header(n, sizeof(n)), 0);
	make_note(n, good_text, 11, 0);
	n[21] = 'X';		/* "VMCOREINXO" */
	ck_assert_uint_eq(vmi_note_check_header(n, sizeof(n)), 0);
	/* Hostile lengths: never more than the cap. */
	make_note(n, good_text, 11, 0);
	v = 0xffffffffu;
	memcpy(n + 4, &v, 4);
	ck_assert_uint_eq(vmi_note_check_header(n, sizeof(n)), 0);
	v = VMI_NOTE_DESC_MAX + 1;
	memcpy(n + 4, &v, 4);
	ck_assert_uint_eq(vmi_note_check_header(n, sizeof(n)), 0);
	v = 3;
	memcpy(n + 4, &v, 4);
	ck_assert_uint_eq(vmi_note_check_header(n, sizeof(n)), 0);
	/* The header-less copy and the format string are not notes. */
	make_note(n, "PAGESIZE=4096\nOSRELEASE=x\n", 11, 0);
	ck_assert_uint_eq(vmi_note_check_header(n, sizeof(n)), 0);
}
END_TEST

START_TEST(test_note_parse)
{
	static unsigned char n[VMI_NOTE_MAX + 64];
	static char text[VMI_NOTE_DESC_MAX];
	struct vmi_vmcoreinfo vi;
	char err[256];
	uint64_t u;
	int64_t i;
	size_t len, k;

	len = make_note(n, good_text, 11, 0);
	ck_assert_int_eq(vmi_vmcoreinfo_parse(n, len, &vi, err, sizeof(err)),
			 0);
	ck_assert_str_eq(vi.osrelease, "6.1.0-test");
	ck_assert_str_eq(vi.build_id, "0123abcd");
	ck_assert_uint_eq(vi.pagesize, 4096);
	ck_assert(vi.has_kerneloffset);
	ck_assert_uint_eq(vi.kerneloffset, 0x9000000);
	ck_assert(vmi_vmcoreinfo_symbol(&vi, "init_top_pgt", &u));
	ck_assert_uint_eq(u, 0xffffffff8a000000ULL);
	ck_assert(vmi_vmcoreinfo_number(&vi, "phys_base", &i));
	ck_assert_int_eq(i, -130023424);
	ck_assert(vmi_vmcoreinfo_decimal(&vi, "OFFSET", "page.flags", &i));
	ck_assert_int_eq(i, 0);
	ck_assert(vmi_vmcoreinfo_decimal(&vi, "SIZE", "page", &i));
	ck_assert_int_eq(i, 64);
	ck_assert(vmi_vmcoreinfo_decimal(&vi, "LENGTH", "zone.free_area", &i));
	ck_assert_int_eq(i, 11);
	ck_assert(!vmi_vmcoreinfo_symbol(&vi, "nothing", &u));
	ck_assert(!vmi_vmcoreinfo_get(&vi, "SYMBOL(init_top_pg"));
	vmi_vmcoreinfo_free(&vi);

	/* Malformed values are "absent", not garbage. */
	len = make_note(n, "OSRELEASE=x\nSYMBOL(a)=xyz\nNUMBER(b)=12abc\n"
			"SYMBOL(c)=-5\nNUMBER(d)=99999999999999999999\n", 11, 0);
	ck_assert_int_eq(vmi_vmcoreinfo_parse(n, len, &vi, err, sizeof(err)),
			 0);
	ck_assert(!vmi_vmcoreinfo_symbol(&vi, "a", &u));
	ck_assert(!vmi_vmcoreinfo_number(&vi, "b", &i));
	ck_assert(!vmi_vmcoreinfo_symbol(&vi, "c", &u));
	ck_assert(!vmi_vmcoreinfo_number(&vi, "d", &i));
	vmi_vmcoreinfo_free(&vi);

	/* Hostile text: refused with a reason. */
	len = make_note(n, "OSRELEASE=6.1\nPAGE\x01SIZE=4096\n", 11, 0);
	ck_assert_int_eq(vmi_vmcoreinfo_parse(n, len, &vi, err, sizeof(err)),
			 -EINVAL);
	ck_assert_msg(strstr(err, "not text"), "%s", err);
	len = make_note(n, "OSRELEASE=6.1\nNOEQUALS\n", 11, 0);
	ck_assert_int_eq(vmi_vmcoreinfo_parse(n, len, &vi, err, sizeof(err)),
			 -EINVAL);
	ck_assert_msg(strstr(err, "line 2"), "%s", err);
	len = make_note(n, "OSRELEASE=6.1\nBUILD-ID=xyz\n", 11, 0);
	ck_assert_int_eq(vmi_vmcoreinfo_parse(n, len, &vi, err, sizeof(err)),
			 -EINVAL);
	len = make_note(n, "OSRELEASE=0123456789012345678901234567890123456789"
			"01234567890123456789012345\n", 11, 0);
	ck_assert_int_eq(vmi_vmcoreinfo_parse(n, len, &vi, err, sizeof(err)),
			 -EINVAL);
	/* Too many lines. */
	k = (size_t)sprintf(text, "OSRELEASE=6.1\n");
	for (int l = 0; l < VMI_NOTE_KEYS_MAX + 1; l++)
		k += (size_t)sprintf(text + k, "A%d=1\n", l);
	ck_assert_uint_lt(k, sizeof(text));
	len = make_note(n, text, 11, 0);
	ck_assert_int_eq(vmi_vmcoreinfo_parse(n, len, &vi, err, sizeof(err)),
			 -E2BIG);
	/* A length beyond what the caller has. */
	len = make_note(n, good_text, 11, 0);
	ck_assert_int_eq(vmi_vmcoreinfo_parse(n, len - 4, &vi, err,
					      sizeof(err)), -EINVAL);
}
END_TEST

struct found {
	uint64_t gpa[8];
	int n;
	int stop_at;		/* return 1 at this call (1-based), 0: never */
};

static int on_found(void *arg, uint64_t gpa, const void *note, size_t len)
{
	struct found *f = arg;

	ck_assert_uint_eq(vmi_note_check_header(note, len), len);
	if (f->n < 8)
		f->gpa[f->n] = gpa;
	f->n++;
	return f->stop_at && f->n == f->stop_at;
}

START_TEST(test_note_scan)
{
	struct vmi_deadline dl = { 0 };
	struct found f = { .stop_at = 0 };
	unsigned char n[256];
	struct mem m;
	uint64_t pages;
	uint32_t big;
	size_t len;
	double t0;
	int rc;

	mem_init(&m, 8 * MiB);
	m.p.is_local = mem_local;
	m.local_from = 4 * MiB;
	len = make_note(n, good_text, 11, 0);
	memcpy(m.buf + 0x1234, n, len);		/* not at a page start */
	memcpy(m.buf + 0x3000, good_text, strlen(good_text));	/* no header */
	memcpy(m.buf + 0x5000, n, len);		/* remote */
	memcpy(m.buf + 0x500000, n, len);		/* local */
	memcpy(m.buf + 0x180000, n, len);		/* unreadable page */
	/* A note whose descsz runs past the end of RAM. */
	memcpy(m.buf + 8 * MiB - 4096, n, len);
	big = 8000;
	memcpy(m.buf + 8 * MiB - 4096 + 4, &big, 4);
	m.bad_start = 0x100000;
	m.bad_end = 0x200000;
	/* Local: a note in the same block as an unreadable page. */
	memcpy(m.buf + 0x602000, n, len);
	m.bad2_start = 0x600000;
	m.bad2_end = 0x601000;

	rc = vmi_vmcoreinfo_scan(&m.p, &dl, on_found, &f, &pages);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(f.n, 3);
	ck_assert_uint_eq(f.gpa[0], 0x500000);	/* local first */
	ck_assert_uint_eq(f.gpa[1], 0x602000);
	ck_assert_uint_eq(f.gpa[2], 0x5000);
	ck_assert_uint_eq(pages, 8 * MiB / 4096);
	/* Remote: one small read per page; local: one per 64 KiB block
	 * (16 pages, and that block's pages once more); plus the notes. */
	ck_assert_uint_le(m.reads, 1024 + 4 * MiB / (64 << 10) + 16 + 3);

	/* The callback accepts: the scan stops there. */
	memset(&f, 0, sizeof(f));
	f.stop_at = 1;
	ck_assert_int_eq(vmi_vmcoreinfo_scan(&m.p, &dl, on_found, &f, NULL), 1);
	ck_assert_int_eq(f.n, 1);

	/* Slow memory: the deadline ends the scan. */
	memset(&f, 0, sizeof(f));
	m.delay_us = 200;
	t0 = vt_now_ms();
	vmi_deadline_set(&dl, 50);
	rc = vmi_vmcoreinfo_scan(&m.p, &dl, on_found, &f, &pages);
	ck_assert_int_eq(rc, -ETIMEDOUT);
	ck_assert_msg(vt_now_ms() - t0 < 2000, "deadline of 50 ms took "
		      "%.0f ms", vt_now_ms() - t0);
	ck_assert_uint_lt(pages, 8 * MiB / 4096);
	free(m.buf);
}
END_TEST

/* ---- page tables ---------------------------------------------------- */

#define P VMI_PTE_PRESENT
#define RW VMI_PTE_RW
#define US VMI_PTE_USER
#define PS VMI_PTE_PS

START_TEST(test_pgtable)
{
	struct vmi_xlate x;
	struct mem m;
	const uint64_t pml4 = 0x1000, pdpt = 0x2000, pd = 0x3000, pt = 0x4000;
	const uint64_t pml5 = 0x5000;
	/* va 0xffffffff80000000: PML4 511, PDPT 510, PD 0, PT 0 */
	const uint64_t kva = 0xffffffff80000000ULL;

	mem_init(&m, 4 * MiB);
	put64(&m, pml4 + 511 * 8, pdpt | P | RW | US);
	put64(&m, pdpt + 510 * 8, pd | P | RW);
	put64(&m, pd + 0 * 8, pt | P | RW | VMI_PTE_NX);
	put64(&m, pt + 1 * 8, 0x9000 | P | RW);
	put64(&m, pt + 3 * 8, 0x0000000800000000ULL | P);	/* beyond RAM */
	put64(&m, pd + 1 * 8, 0x200000 | P | PS);		/* 2 MiB */
	put64(&m, pdpt + 1 * 8, 0 | P | PS | RW | US);		/* 1 GiB */
	put64(&m, pdpt + 2 * 8, 0x40000000 | P | PS);		/* 1 GiB */
	put64(&m, pml4 + 0 * 8, pml4 | P | RW | US);		/* itself */
	put64(&m, pml4 + 1 * 8, 0x7f0000000ULL | P);		/* table beyond */
	put64(&m, pml5 + 511 * 8, pml4 | P | RW);

	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 4, kva + 0x1abc, &x), 0);
	ck_assert_uint_eq(x.pa, 0x9abc);
	ck_assert_uint_eq(x.page_size, 4096);
	ck_assert(x.writable && x.nx && !x.user);
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 4, kva + 0x2000, &x),
			 -ENOENT);
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 4, kva + 0x3000, &x),
			 -EFAULT);
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 4, kva + 0x201234, &x),
			 0);
	ck_assert_uint_eq(x.pa, 0x201234);
	ck_assert_uint_eq(x.page_size, 2 * MiB);
	ck_assert(!x.writable && !x.nx);
	/* PML4 511, PDPT 1: a 1 GiB page at 0. */
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 4,
					  0xffffff8040000000ULL + 0x3456, &x),
			 0);
	ck_assert_uint_eq(x.pa, 0x3456);
	ck_assert_uint_eq(x.page_size, 1ULL << 30);
	ck_assert(x.user && x.writable);
	/* A 1 GiB page beyond RAM. */
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 4,
					  0xffffff8080000000ULL, &x), -EFAULT);
	/* A table address beyond RAM. */
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 4, 1ULL << 39, &x),
			 -EFAULT);
	/* Non-canonical addresses and bad levels. */
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 4, 0x0000800000000000ULL,
					  &x), -EINVAL);
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 4, 0xffff7fffffffffffULL,
					  &x), -EINVAL);
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 3, kva, &x), -EINVAL);
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 6, kva, &x), -EINVAL);
	/* A table that points at itself: the walk still ends after four
	 * reads (one per level), never loops. */
	m.reads = 0;
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml4, 4, 0x123, &x), 0);
	ck_assert_uint_eq(x.pa, pml4 + 0x123);
	ck_assert_uint_eq(m.reads, 4);
	/* 5 levels: PML5 511 leads to the same PML4. */
	ck_assert_int_eq(vmi_pgtable_walk(&m.p, pml5, 5, kva + 0x1abc, &x), 0);
	ck_assert_uint_eq(x.pa, 0x9abc);
	ck_assert(vmi_canonical(0xff00000000000000ULL, 5));
	ck_assert(!vmi_canonical(0xff00000000000000ULL, 4));
	ck_assert(vmi_kernel_half(kva, 4));
	ck_assert(!vmi_kernel_half(0x00007fffffffffffULL, 4));
	free(m.buf);
}
END_TEST

/* ---- kernel virtual memory in a buffer (for kallsyms and lists) ----- */

#define KBASE 0xffffffff81000000ULL

struct kmem {
	unsigned char *buf;
	size_t size;
	unsigned long reads;
};

static int kread(void *ctx, uint64_t va, void *buf, size_t len)
{
	struct kmem *k = ctx;

	k->reads++;
	if (va < KBASE || va - KBASE > k->size || len > k->size - (va - KBASE))
		return -EFAULT;
	memcpy(buf, k->buf + (va - KBASE), len);
	return 0;
}

/* Synthetic kallsyms: token i is the character i for printable ones,
 * token 0x80 is "ab", token 0x81 is "_sym", the others are empty. */
#define O_OFFS 0x0
#define O_RELBASE 0x1000
#define O_NUM 0x1008
#define O_NAMES 0x2000
#define O_TOKENS 0x8000
#define O_TINDEX 0x9000
#define KSIZE 0xa000

struct ksyn {
	struct kmem km;
	size_t names_len;
	uint32_t n;
	struct vmi_kallsyms_tables t;
};

static void ksyn_init(struct ksyn *s)
{
	uint16_t idx[256];
	size_t pos = 0;
	uint64_t relbase = KBASE;

	memset(s, 0, sizeof(*s));
	s->km.buf = calloc(1, KSIZE);
	s->km.size = KSIZE;
	ck_assert(s->km.buf);
	for (int i = 0; i < 256; i++) {
		char *t = (char *)s->km.buf + O_TOKENS + pos;

		idx[i] = (uint16_t)pos;
		if (i >= 0x20 && i < 0x7f)
			t[0] = (char)i;
		else if (i == 0x80)
			memcpy(t, "ab", 2);
		else if (i == 0x81)
			memcpy(t, "_sym", 4);
		pos += strlen(t) + 1;
	}
	memcpy(s->km.buf + O_TINDEX, idx, sizeof(idx));
	memcpy(s->km.buf + O_RELBASE, &relbase, 8);
	s->t.names = KBASE + O_NAMES;
	s->t.num_syms = KBASE + O_NUM;
	s->t.token_table = KBASE + O_TOKENS;
	s->t.token_index = KBASE + O_TINDEX;
	s->t.offsets = KBASE + O_OFFS;
	s->t.relative_base = KBASE + O_RELBASE;
	s->t.absolute_percpu = true;
}

/* Add a symbol: @enc is its token string (type first), @off its s32. */
static void ksyn_add(struct ksyn *s, const char *enc, size_t enclen,
		     int32_t off)
{
	unsigned char *p = s->km.buf + O_NAMES + s->names_len;

	if (enclen > 127) {
		p[0] = (unsigned char)(0x80 | (enclen & 0x7f));
		p[1] = (unsigned char)(enclen >> 7);
		p += 2;
		s->names_len += 2;
	} else {
		*p++ = (unsigned char)enclen;
		s->names_len++;
	}
	memcpy(p, enc, enclen);
	s->names_len += enclen;
	memcpy(s->km.buf + O_OFFS + 4 * s->n, &off, 4);
	s->n++;
	memcpy(s->km.buf + O_NUM, &s->n, 4);
}

static int ksyn_decode(struct ksyn *s, struct vmi_kallsyms **ks, char *err,
		       size_t errlen)
{
	return vmi_kallsyms_decode(kread, &s->km, &s->t, NULL, ks, err, errlen);
}

START_TEST(test_kallsyms)
{
	char long_name[300], err[256];
	struct vmi_kallsyms *ks;
	const struct vmi_ksym *y;
	struct ksyn s;
	uint64_t a;
	size_t cur;

	ksyn_init(&s);
	/* Absolute per-cpu symbol at 0x1000, then relative ones. */
	ksyn_add(&s, "Dfixed_percpu_data", 18, 0x1000);
	ksyn_add(&s, "T_text", 6, -1);			/* relbase */
	ksyn_add(&s, "T\x81_\x80", 4, -1 - 0x10);	/* "_sym_ab" */
	ksyn_add(&s, "tdup", 4, -1 - 0x20);
	ksyn_add(&s, "tdup", 4, -1 - 0x30);
	/* A "big" symbol: 200 one-character tokens plus the type. */
	long_name[0] = 'T';
	memset(long_name + 1, 'x', 200);
	ksyn_add(&s, long_name, 201, -1 - 0x40);
	ck_assert_int_eq(ksyn_decode(&s, &ks, err, sizeof(err)), 0);
	ck_assert_uint_eq(vmi_kallsyms_count(ks), 6);
	y = vmi_kallsyms_at(ks, 0);
	ck_assert_str_eq(y->name, "fixed_percpu_data");
	ck_assert_uint_eq(y->addr, 0x1000);
	ck_assert_int_eq(y->type, 'D');
	ck_assert(vmi_kallsyms_lookup(ks, "_text", &a));
	ck_assert_uint_eq(a, KBASE);
	ck_assert(vmi_kallsyms_lookup(ks, "_sym_ab", &a));
	ck_assert_uint_eq(a, KBASE + 0x10);
	ck_assert(vmi_kallsyms_lookup(ks, "dup", &a));
	ck_assert_uint_eq(a, KBASE + 0x20);	/* the first in table order */
	cur = 0;
	ck_assert_uint_eq(vmi_kallsyms_next(ks, "dup", &cur)->addr,
			  KBASE + 0x20);
	ck_assert_uint_eq(vmi_kallsyms_next(ks, "dup", &cur)->addr,
			  KBASE + 0x30);
	ck_assert_ptr_null(vmi_kallsyms_next(ks, "dup", &cur));
	y = vmi_kallsyms_at(ks, 5);
	ck_assert_uint_eq(strlen(y->name), 200);
	ck_assert(!vmi_kallsyms_lookup(ks, "nope", &a));
	ck_assert_ptr_null(vmi_kallsyms_at(ks, 6));
	vmi_kallsyms_free(ks);

	/* Without absolute per-cpu: relbase + (u32)offset. */
	s.t.absolute_percpu = false;
	memset(s.km.buf + O_OFFS, 0, 4 * s.n);
	ck_assert_int_eq(ksyn_decode(&s, &ks, err, sizeof(err)), 0);
	ck_assert_uint_eq(vmi_kallsyms_at(ks, 1)->addr, KBASE);
	vmi_kallsyms_free(ks);
	free(s.km.buf);
}
END_TEST

START_TEST(test_kallsyms_hostile)
{
	struct vmi_kallsyms *ks = NULL;
	char err[256], enc[600];
	struct ksyn s;
	uint32_t v;
	uint16_t idx;

	/* A huge count. */
	ksyn_init(&s);
	ksyn_add(&s, "T_text", 6, -1);
	v = 0xffffffffu;
	memcpy(s.km.buf + O_NUM, &v, 4);
	ck_assert_int_eq(ksyn_decode(&s, &ks, err, sizeof(err)), -E2BIG);
	ck_assert_ptr_null(ks);
	v = 0;
	memcpy(s.km.buf + O_NUM, &v, 4);
	ck_assert_int_eq(ksyn_decode(&s, &ks, err, sizeof(err)), -E2BIG);

	/* More symbols than the stream holds: the zeros after it are
	 * length 0, refused. */
	v = 50;
	memcpy(s.km.buf + O_NUM, &v, 4);
	ck_assert_int_eq(ksyn_decode(&s, &ks, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "length 0"), "%s", err);
	free(s.km.buf);

	/* A stream that runs off readable memory (truncated table). */
	ksyn_init(&s);
	ksyn_add(&s, "T_text", 6, -1);
	s.t.names = KBASE + KSIZE - 3;
	memcpy(s.km.buf + KSIZE - 3, "\x05T_t", 3);
	ck_assert_int_eq(ksyn_decode(&s, &ks, err, sizeof(err)), -EFAULT);
	ck_assert_msg(strstr(err, "unreadable"), "%s", err);
	free(s.km.buf);

	/* A name longer than KSYM_NAME_LEN: 300 tokens of "ab". */
	ksyn_init(&s);
	enc[0] = 'T';
	memset(enc + 1, 0x80, 299);
	ksyn_add(&s, enc, 300, -1);
	ck_assert_int_eq(ksyn_decode(&s, &ks, err, sizeof(err)), -E2BIG);
	free(s.km.buf);

	/* An encoded length beyond the cap (two-byte form). */
	ksyn_init(&s);
	s.km.buf[O_NAMES] = 0xff;
	s.km.buf[O_NAMES + 1] = 0x7f;
	v = 1;
	memcpy(s.km.buf + O_NUM, &v, 4);
	ck_assert_int_eq(ksyn_decode(&s, &ks, err, sizeof(err)), -EINVAL);
	free(s.km.buf);

	/* Addresses not sorted: not a real table. */
	ksyn_init(&s);
	ksyn_add(&s, "T_text", 6, -1 - 0x100);
	ksyn_add(&s, "Tb", 2, -1);
	ck_assert_int_eq(ksyn_decode(&s, &ks, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "sorted"), "%s", err);
	free(s.km.buf);

	/* A bad type letter. */
	ksyn_init(&s);
	ksyn_add(&s, "1_text", 6, -1);
	ck_assert_int_eq(ksyn_decode(&s, &ks, err, sizeof(err)), -EINVAL);
	free(s.km.buf);

	/* A token index past the table, where no NUL ever comes. */
	ksyn_init(&s);
	ksyn_add(&s, "T_text", 6, -1);
	memset(s.km.buf + O_TOKENS + 0x800, 'A', O_TINDEX - O_TOKENS - 0x800);
	idx = 0x900;
	memcpy(s.km.buf + O_TINDEX + 2 * 'Q', &idx, 2);
	ck_assert_int_eq(ksyn_decode(&s, &ks, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "not terminated"), "%s", err);
	free(s.km.buf);

	/* Unreadable tables. */
	ksyn_init(&s);
	ksyn_add(&s, "T_text", 6, -1);
	s.t.offsets = 0xffff800000000000ULL;
	ck_assert_int_lt(ksyn_decode(&s, &ks, err, sizeof(err)), 0);
	s.t.offsets = KBASE + O_OFFS;
	s.t.token_table = 0x1000;
	ck_assert_int_lt(ksyn_decode(&s, &ks, err, sizeof(err)), 0);
	free(s.km.buf);
}
END_TEST

START_TEST(test_system_map)
{
	char path[64], err[256];
	struct vmi_kallsyms *ks;
	uint64_t a;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/vmt-map-%d", (int)getpid());
	f = fopen(path, "w");
	ck_assert(f);
	fputs("ffffffff81000000 T _text\nffffffff81000100 t helper\n"
	      "0000000000001000 D fixed_percpu_data\n", f);
	fclose(f);
	ck_assert_int_eq(vmi_kallsyms_from_map(path, 0x4000000, &ks, err,
					       sizeof(err)), 0);
	ck_assert_uint_eq(vmi_kallsyms_count(ks), 3);
	ck_assert(vmi_kallsyms_lookup(ks, "_text", &a));
	ck_assert_uint_eq(a, 0xffffffff85000000ULL);
	/* Absolute per-cpu symbols do not move with KASLR. */
	ck_assert(vmi_kallsyms_lookup(ks, "fixed_percpu_data", &a));
	ck_assert_uint_eq(a, 0x1000);
	vmi_kallsyms_free(ks);

	/* Debian's stub. */
	f = fopen(path, "w");
	fputs("ffffffffffffffff B The real System.map is in the "
	      "linux-image-6.1.0-57-amd64-dbg package\n", f);
	fclose(f);
	ck_assert_int_eq(vmi_kallsyms_from_map(path, 0, &ks, err, sizeof(err)),
			 -EINVAL);
	ck_assert_msg(strstr(err, "stub"), "%s", err);
	/* Garbage. */
	f = fopen(path, "w");
	fputs("ffffffff81000000 T _text\nnot a map line\n", f);
	fclose(f);
	ck_assert_int_eq(vmi_kallsyms_from_map(path, 0, &ks, err, sizeof(err)),
			 -EINVAL);
	ck_assert_msg(strstr(err, ":2:"), "%s", err);
	unlink(path);
	ck_assert_int_eq(vmi_kallsyms_from_map(path, 0, &ks, err, sizeof(err)),
			 -ENOENT);
	ck_assert_msg(strstr(err, path), "%s", err);
}
END_TEST

/* ---- list walks and strings ----------------------------------------- */

static int count_visit(void *arg, uint64_t entry)
{
	(void)entry;
	(*(unsigned long *)arg)++;
	return 0;
}

static void link_at(struct kmem *k, uint64_t va, uint64_t next)
{
	memcpy(k->buf + (va - KBASE), &next, 8);
}

START_TEST(test_walk_list)
{
	struct kmem k = { calloc(1, 0x10000), 0x10000, 0 };
	const uint64_t h = KBASE + 0x100, a = KBASE + 0x200, b = KBASE + 0x300,
		       c = KBASE + 0x400;
	unsigned long n = 0;
	struct vmi_list_bad bad;
	char s[64];

	ck_assert(k.buf);
	link_at(&k, h, a);
	link_at(&k, a, b);
	link_at(&k, b, c);
	link_at(&k, c, h);
	ck_assert_int_eq(vmi_walk_list(kread, &k, h, 4, 100, count_visit, &n),
			 3);
	ck_assert_uint_eq(n, 3);
	/* The bound. */
	ck_assert_int_eq(vmi_walk_list(kread, &k, h, 4, 2, count_visit, &n),
			 -ELOOP);
	/* The checked walk: every prev right, then one wrong. */
	link_at(&k, a + 8, h);
	link_at(&k, b + 8, a);
	link_at(&k, c + 8, b);
	n = 0;
	ck_assert_int_eq(vmi_walk_list_linked(kread, &k, h, 4, 100,
					      count_visit, &n, &bad), 3);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(bad.entry, 0);
	link_at(&k, c + 8, a);
	n = 0;
	ck_assert_int_eq(vmi_walk_list_linked(kread, &k, h, 4, 100,
					      count_visit, &n, &bad), -ELOOP);
	ck_assert_uint_eq(n, 2);	/* c is not visited */
	ck_assert(bad.entry == c && bad.prev == a && bad.want == b);
	/* A cycle that never comes back to the head: found, even with a
	 * huge bound, in a few steps. */
	link_at(&k, c, a);
	k.reads = 0;
	ck_assert_int_eq(vmi_walk_list(kread, &k, h, 4, 1000000000UL,
				       count_visit, &n), -ELOOP);
	ck_assert_uint_lt(k.reads, 100);
	/* A self-loop. */
	link_at(&k, a, a);
	ck_assert_int_eq(vmi_walk_list(kread, &k, h, 4, 1000000000UL,
				       count_visit, &n), -ELOOP);
	/* Non-canonical, user-half and misaligned pointers. */
	link_at(&k, a, 0x0000900000000000ULL);
	ck_assert_int_eq(vmi_walk_list(kread, &k, h, 4, 100, count_visit, &n),
			 -EFAULT);
	link_at(&k, a, 0x00007f0000001000ULL);
	ck_assert_int_eq(vmi_walk_list(kread, &k, h, 4, 100, count_visit, &n),
			 -EFAULT);
	link_at(&k, a, b + 3);
	ck_assert_int_eq(vmi_walk_list(kread, &k, h, 4, 100, count_visit, &n),
			 -EFAULT);
	/* A pointer to unreadable memory. */
	link_at(&k, a, KBASE + 0x100000);
	ck_assert_int_eq(vmi_walk_list(kread, &k, h, 4, 100, count_visit, &n),
			 -EFAULT);

	/* Strings: bounded, and a NUL just before unreadable memory. */
	memcpy(k.buf + 0x10000 - 4, "abc", 4);
	ck_assert_int_eq(vmi_read_cstr(kread, &k, KBASE + 0x10000 - 4, s,
				       sizeof(s)), 3);
	ck_assert_str_eq(s, "abc");
	memset(k.buf + 0x800, 'z', 200);
	ck_assert_int_eq(vmi_read_cstr(kread, &k, KBASE + 0x800, s, sizeof(s)),
			 -ENAMETOOLONG);
	ck_assert_uint_eq(strlen(s), sizeof(s) - 1);
	memcpy(k.buf + 0x10000 - 2, "zz", 2);
	ck_assert_int_eq(vmi_read_cstr(kread, &k, KBASE + 0x10000 - 2, s,
				       sizeof(s)), -EFAULT);
	free(k.buf);
}
END_TEST

/* ---- BTF ------------------------------------------------------------ */

START_TEST(test_btf_members)
{
	struct btf *b = btf__new_empty();
	struct vmi_btf *vb;
	const void *raw;
	uint64_t off, size;
	char err[256], junk[64];
	int i32, inner, anon_s, anon_u, outer, td;
	__u32 rawlen;

	ck_assert(b);
	i32 = btf__add_int(b, "int", 4, BTF_INT_SIGNED);
	inner = btf__add_struct(b, "inner", 8);
	btf__add_field(b, "a", i32, 0, 0);
	btf__add_field(b, "b", i32, 32, 0);
	anon_s = btf__add_struct(b, NULL, 8);
	btf__add_field(b, "z", i32, 0, 0);
	btf__add_field(b, "w", i32, 32, 0);
	anon_u = btf__add_union(b, NULL, 8);
	btf__add_field(b, "y", i32, 0, 0);
	btf__add_field(b, NULL, anon_s, 0, 0);
	td = btf__add_typedef(b, "inner_t", inner);
	outer = btf__add_struct(b, "outer", 32);
	btf__add_field(b, "x", i32, 0, 0);
	btf__add_field(b, NULL, anon_u, 32, 0);
	btf__add_field(b, "in", td, 96, 0);
	btf__add_field(b, "bf", i32, 224, 3);
	ck_assert_int_gt(outer, 0);
	raw = btf__raw_data(b, &rawlen);
	ck_assert(raw);
	ck_assert_int_eq(vmi_btf_from_blob(raw, rawlen, &vb, err, sizeof(err)),
			 0);
	ck_assert_int_eq(vmi_btf_member(vb, "outer.x", &off, &size), 0);
	ck_assert_uint_eq(off, 0);
	ck_assert_uint_eq(size, 4);
	/* Members of anonymous unions and structs, as if direct. */
	ck_assert_int_eq(vmi_btf_member(vb, "outer.y", &off, NULL), 0);
	ck_assert_uint_eq(off, 4);
	ck_assert_int_eq(vmi_btf_member(vb, "outer.w", &off, NULL), 0);
	ck_assert_uint_eq(off, 8);
	/* A path through a typedef'd struct member. */
	ck_assert_int_eq(vmi_btf_member(vb, "outer.in.b", &off, &size), 0);
	ck_assert_uint_eq(off, 16);
	ck_assert_uint_eq(size, 4);
	ck_assert_int_eq(vmi_btf_member(vb, "outer.in", &off, &size), 0);
	ck_assert_uint_eq(size, 8);
	ck_assert_int_eq(vmi_btf_member(vb, "outer.bf", &off, NULL), -EDOM);
	ck_assert_int_eq(vmi_btf_member(vb, "outer.nope", &off, NULL), -ENOENT);
	ck_assert_int_eq(vmi_btf_member(vb, "outer.x.y", &off, NULL), -ENOENT);
	ck_assert_int_eq(vmi_btf_member(vb, "outer", &off, NULL), -ENOENT);
	ck_assert_int_eq(vmi_btf_member(vb, "nothing.x", &off, NULL), -ENOENT);
	ck_assert_int_eq(vmi_btf_type_size(vb, "outer", &size), 0);
	ck_assert_uint_eq(size, 32);
	ck_assert_int_eq(vmi_btf_type_size(vb, "inner_t", &size), 0);
	ck_assert_uint_eq(size, 8);
	vmi_btf_free(vb);

	/* Garbage and oversized blobs are refused. */
	memset(junk, 0x5a, sizeof(junk));
	ck_assert_int_eq(vmi_btf_from_blob(junk, sizeof(junk), &vb, err,
					   sizeof(err)), -EINVAL);
	ck_assert_int_eq(vmi_btf_from_blob(junk, VMI_BTF_MAX + 1ULL, &vb, err,
					   sizeof(err)), -E2BIG);
	/* Truncated: the header promises more than there is. */
	ck_assert_int_eq(vmi_btf_from_blob(raw, rawlen - 8, &vb, err,
					   sizeof(err)), -EINVAL);
	btf__free(b);
}
END_TEST

/* ---- the file reader ------------------------------------------------ */

START_TEST(test_phys_file)
{
	struct vmi_phys p;
	struct vmi_phys_range r[2] = { { 0, 4096 }, { 8192, 12288 } };
	char path[64], err[256], buf[16];
	FILE *f;

	snprintf(path, sizeof(path), "/dev/shm/vmt-phys-%d", (int)getpid());
	f = fopen(path, "w");
	ck_assert(f);
	for (int i = 0; i < 12288; i++)
		fputc(i & 0xff, f);
	fclose(f);
	ck_assert_int_eq(vmi_phys_file_open(&p, path, NULL, 0, err,
					    sizeof(err)), 0);
	ck_assert_uint_eq(p.ranges[0].end, 12288);
	ck_assert_int_eq(vmi_phys_read(&p, 12280, buf, 8), 0);
	ck_assert_int_eq((unsigned char)buf[0], 12280 & 0xff);
	ck_assert_int_eq(vmi_phys_read(&p, 12281, buf, 8), -EFAULT);
	ck_assert_int_eq(vmi_phys_read(&p, UINT64_MAX - 2, buf, 8), -EFAULT);
	vmi_phys_file_close(&p);
	ck_assert_int_eq(vmi_phys_file_open(&p, path, r, 2, err, sizeof(err)),
			 0);
	ck_assert(vmi_phys_contains(&p, 8192, 4096));
	ck_assert(!vmi_phys_contains(&p, 4000, 200));	/* across a gap */
	ck_assert_int_eq(vmi_phys_read(&p, 5000, buf, 4), -EFAULT);
	vmi_phys_file_close(&p);
	r[1].end = 20000;	/* beyond the file */
	ck_assert_int_eq(vmi_phys_file_open(&p, path, r, 2, err, sizeof(err)),
			 -EINVAL);
	unlink(path);
	ck_assert_int_eq(vmi_phys_file_open(&p, path, NULL, 0, err,
					    sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, path), "%s", err);
}
END_TEST

static Suite *unit_suite(void)
{
	Suite *s = suite_create("introspect_unit");
	TCase *tc = tcase_create("unit");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_note_header);
	tcase_add_test(tc, test_note_parse);
	tcase_add_test(tc, test_note_scan);
	tcase_add_test(tc, test_pgtable);
	tcase_add_test(tc, test_kallsyms);
	tcase_add_test(tc, test_kallsyms_hostile);
	tcase_add_test(tc, test_system_map);
	tcase_add_test(tc, test_walk_list);
	tcase_add_test(tc, test_btf_members);
	tcase_add_test(tc, test_phys_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return vt_run_suite(unit_suite());
}
