// SPDX-License-Identifier: MIT
/*
 * The recognised guest kernel: ties the note, the symbols, the types and
 * address translation together (see kernel.h for what validates a note).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../common/memunits.h"
#include "kernel.h"

#define BANNER_MAX	512
#define READ_MAX	(16u << 20)

struct vmi_kernel {
	unsigned char *note;
	size_t note_len;
	uint64_t note_gpa;
	struct vmi_vmcoreinfo vi;
	struct vmi_kallsyms *ks;
	struct vmi_btf *btf;
	struct vmi_kernel_info info;
	char banner[BANNER_MAX];
	uint64_t banner_pa;
	char *btf_source, *symbols_source;
	uint64_t image_va, image_pa, image_len;
	bool have_pob;	/* page_offset_base known: direct map is linear */
	bool ks_borrowed;	/* ks belongs to the recognition's cache */
	uint64_t kimage_size;	/* KERNEL_IMAGE_SIZE: modules start above */
	uint64_t ram_end;	/* end of the highest RAM range */
};

/*
 * The symbol table decoded for one candidate note, kept for the next one:
 * notes forged by copying the real one name the same tables, and a guest
 * process can write thousands of them; each must not cost a decode.
 */
struct ks_cache {
	bool valid;
	struct vmi_kallsyms_tables t;
	int64_t phys_base;
	struct vmi_kallsyms *ks;	/* NULL when that decode failed */
	int ret;
	char why[256];
};

/* ---- address translation ---- */

/*
 * The kernel image mapping translates linearly; the module area right
 * above it (at KERNEL_IMAGE_SIZE) does not.
 */
static bool in_image(const struct vmi_kernel *k, uint64_t va)
{
	return va >= VMI_KERNEL_MAP && va - VMI_KERNEL_MAP < k->kimage_size;
}

/*
 * The direct map is linear over guest RAM only: vmalloc space may follow
 * it closely (KASLR places the regions with random gaps), so nothing
 * beyond the highest RAM address is taken for direct map.
 */
static bool in_direct_map(const struct vmi_kernel *k, uint64_t va)
{
	return k->have_pob && va >= k->info.page_offset_base &&
	       va - k->info.page_offset_base < k->ram_end;
}

int vmi_kernel_vtop(const struct vmi_kernel *k, const struct vmi_phys *p,
		    uint64_t va, uint64_t *pa)
{
	const struct vmi_kernel_info *in = &k->info;
	struct vmi_xlate x;
	int ret;

	if (!vmi_kernel_half(va, in->paging_levels))
		return -EFAULT;
	if (in_image(k, va)) {
		*pa = va - VMI_KERNEL_MAP + (uint64_t)in->phys_base;
		return vmi_phys_contains(p, *pa, 1) ? 0 : -EFAULT;
	}
	if (in_direct_map(k, va)) {
		*pa = va - in->page_offset_base;
		return vmi_phys_contains(p, *pa, 1) ? 0 : -EFAULT;
	}
	ret = vmi_pgtable_walk(p, in->init_top_pgt_gpa, in->paging_levels, va,
			       &x);
	if (ret)
		return ret;
	*pa = x.pa;
	return 0;
}

int vmi_kernel_uvtop(const struct vmi_kernel *k, const struct vmi_phys *p,
		     uint64_t pgd_gpa, uint64_t va, uint64_t *pa)
{
	struct vmi_xlate x;
	int ret;

	if (!vmi_canonical(va, k->info.paging_levels) || (va >> 63))
		return -EFAULT;
	ret = vmi_pgtable_walk(p, pgd_gpa, k->info.paging_levels, va, &x);
	if (ret)
		return ret;
	if (!x.user)
		return -EFAULT;	/* a kernel page in a user table */
	*pa = x.pa;
	return 0;
}

int vmi_kernel_read(const struct vmi_kernel *k, const struct vmi_phys *p,
		    uint64_t va, void *buf, size_t len)
{
	const struct vmi_kernel_info *in = &k->info;
	uint64_t end;
	size_t done = 0;

	if (len > READ_MAX || !vmi_add_ok(va, len, &end))
		return -EFAULT;
	if (!len)
		return 0;
	if (!vmi_kernel_half(va, in->paging_levels) ||
	    !vmi_kernel_half(end - 1, in->paging_levels))
		return -EFAULT;
	while (done < len) {
		uint64_t a = va + done, pa, n = len - done;
		int ret;

		/* Linear regions are read in one piece; a walked page up to
		 * its end. */
		if (in_image(k, a)) {
			uint64_t left = VMI_KERNEL_MAP + k->kimage_size - a;

			if (n > left)
				n = left;
			pa = a - VMI_KERNEL_MAP + (uint64_t)in->phys_base;
		} else if (in_direct_map(k, a)) {
			pa = a - in->page_offset_base;
		} else {
			ret = vmi_kernel_vtop(k, p, a, &pa);
			if (ret)
				return ret;
			if (n > vmem_page_floor(a) + VMEM_PAGE_SIZE - a)
				n = vmem_page_floor(a) + VMEM_PAGE_SIZE - a;
		}
		ret = vmi_phys_read(p, pa, (char *)buf + done, n);
		if (ret)
			return ret;
		done += n;
	}
	return 0;
}

int vmi_kernel_kread(void *ctx, uint64_t va, void *buf, size_t len)
{
	const struct vmi_kernel_reader *r = ctx;

	return vmi_kernel_read(r->k, r->p, va, buf, len);
}

/* ---- validation of one candidate ---- */

static int need_symbol(const struct vmi_kernel *k, const char *name,
		       uint64_t *addr, char *err, size_t errlen)
{
	if (vmi_kallsyms_lookup(k->ks, name, addr))
		return 0;
	return vmi_err(err, errlen, EINVAL, "no symbol %s in kallsyms", name);
}

static int load_symbols(struct vmi_kernel *k, const struct vmi_phys *p,
			const struct vmi_kernel_options *o,
			const struct vmi_deadline *dl, struct ks_cache *c,
			char *err, size_t errlen)
{
	struct vmi_kernel_reader r = { k, p };
	struct vmi_kallsyms_tables t = { .absolute_percpu = true };
	const struct vmi_vmcoreinfo *vi = &k->vi;
	int ret;

	if (o && o->map_path) {
		k->symbols_source = strdup(o->map_path);
		if (!k->symbols_source)
			return vmi_err(err, errlen, ENOMEM, "out of memory");
		return vmi_kallsyms_from_map(o->map_path,
					     k->info.kaslr_offset, &k->ks,
					     err, errlen);
	}
	if (!vmi_vmcoreinfo_symbol(vi, "kallsyms_names", &t.names) ||
	    !vmi_vmcoreinfo_symbol(vi, "kallsyms_num_syms", &t.num_syms) ||
	    !vmi_vmcoreinfo_symbol(vi, "kallsyms_token_table",
				   &t.token_table) ||
	    !vmi_vmcoreinfo_symbol(vi, "kallsyms_token_index",
				   &t.token_index) ||
	    !vmi_vmcoreinfo_symbol(vi, "kallsyms_offsets", &t.offsets) ||
	    !vmi_vmcoreinfo_symbol(vi, "kallsyms_relative_base",
				   &t.relative_base))
		return vmi_err(err, errlen, ENOENT, "VMCOREINFO of %s has no "
			       "SYMBOL(kallsyms_*) (Linux before 6.0?): set "
			       "kernel-map to its System.map",
			       vi->osrelease);
	k->symbols_source = strdup("guest");
	if (!k->symbols_source)
		return vmi_err(err, errlen, ENOMEM, "out of memory");
	if (c->valid && !memcmp(&c->t, &t, sizeof(t)) &&
	    c->phys_base == k->info.phys_base) {
		if (!c->ks)
			return vmi_err(err, errlen, -c->ret, "%s (as for an "
				       "earlier note)", c->why);
		k->ks = c->ks;
		k->ks_borrowed = true;
		return 0;
	}
	vmi_kallsyms_free(c->ks);
	memset(c, 0, sizeof(*c));
	ret = vmi_kallsyms_decode(vmi_kernel_kread, &r, &t, dl, &c->ks, c->why,
				  sizeof(c->why));
	/* A timeout says nothing about the tables: do not remember it. */
	c->valid = ret != -ETIMEDOUT;
	c->t = t;
	c->phys_base = k->info.phys_base;
	c->ret = ret;
	if (ret)
		return vmi_err(err, errlen, -ret, "%s", c->why);
	k->ks = c->ks;
	k->ks_borrowed = true;
	return 0;
}

static int read_base(struct vmi_kernel *k, const struct vmi_phys *p,
		     const char *name, uint64_t dflt, uint64_t *out,
		     char *err, size_t errlen)
{
	uint64_t a, v;
	int ret;

	/* Without CONFIG_RANDOMIZE_MEMORY the bases are constants. */
	if (!vmi_kallsyms_lookup(k->ks, name, &a)) {
		*out = dflt;
		return 0;
	}
	ret = vmi_kernel_read(k, p, a, &v, sizeof(v));
	if (ret)
		return vmi_err(err, errlen, -ret, "%s at %#" PRIx64 ": "
			       "unreadable", name, a);
	if (!vmi_kernel_half(v, k->info.paging_levels) ||
	    vmem_page_floor(v) != v)
		return vmi_err(err, errlen, EINVAL, "%s = %#" PRIx64 ": not a "
			       "kernel address", name, v);
	*out = v;
	return 0;
}

static int load_btf(struct vmi_kernel *k, const struct vmi_phys *p,
		    const struct vmi_kernel_options *o, char *err,
		    size_t errlen)
{
	uint64_t start, stop;
	void *blob;
	int ret;

	if (o && o->btf_path) {
		k->btf_source = strdup(o->btf_path);
		if (!k->btf_source)
			return vmi_err(err, errlen, ENOMEM, "out of memory");
		return vmi_btf_from_file(o->btf_path, k->vi.build_id, &k->btf,
					 err, errlen);
	}
	/* No BTF in the guest (CONFIG_DEBUG_INFO_BTF off) is not an error:
	 * the kernel is still known, only types are not. */
	if (!vmi_kallsyms_lookup(k->ks, "__start_BTF", &start) ||
	    !vmi_kallsyms_lookup(k->ks, "__stop_BTF", &stop))
		return 0;
	if (stop <= start || stop - start > VMI_BTF_MAX)
		return vmi_err(err, errlen, E2BIG, "__start_BTF..__stop_BTF "
			       "[%#" PRIx64 ", %#" PRIx64 ") out of bounds",
			       start, stop);
	blob = malloc(stop - start);
	if (!blob)
		return vmi_err(err, errlen, ENOMEM, "out of memory");
	/* vmi_kernel_read takes at most READ_MAX at a time. */
	ret = 0;
	for (uint64_t at = start; !ret && at < stop; at += READ_MAX)
		ret = vmi_kernel_read(k, p, at, (char *)blob + (at - start),
				      stop - at < READ_MAX ? stop - at :
				      READ_MAX);
	if (ret) {
		free(blob);
		return vmi_err(err, errlen, -ret, "guest BTF at %#" PRIx64
			       ": unreadable", start);
	}
	ret = vmi_btf_from_blob(blob, stop - start, &k->btf, err, errlen);
	free(blob);
	if (ret)
		return ret;
	k->btf_source = strdup("guest");
	return k->btf_source ? 0 : vmi_err(err, errlen, ENOMEM, "no memory");
}

static void kernel_clear(struct vmi_kernel *k)
{
	free(k->note);
	vmi_vmcoreinfo_free(&k->vi);
	if (!k->ks_borrowed)
		vmi_kallsyms_free(k->ks);
	vmi_btf_free(k->btf);
	free(k->btf_source);
	free(k->symbols_source);
	memset(k, 0, sizeof(*k));
}

static int validate(struct vmi_kernel *k, const struct vmi_phys *p,
		    const struct vmi_kernel_options *o,
		    const struct vmi_deadline *dl, struct ks_cache *c,
		    uint64_t gpa,
		    const void *note, size_t len, char *err, size_t errlen)
{
	struct vmi_kernel_info *in = &k->info;
	struct vmi_vmcoreinfo *vi = &k->vi;
	uint64_t stext, stext_ks, top, a, ptr, pa, text, end, off, sz;
	int64_t num;
	char expect[160];
	int ret;
	long n;

	memset(k, 0, sizeof(*k));
	ret = vmi_vmcoreinfo_parse(note, len, vi, err, errlen);
	if (ret)
		return ret;
	k->note = malloc(len);
	if (!k->note)
		return vmi_err(err, errlen, ENOMEM, "out of memory");
	memcpy(k->note, note, len);
	k->note_len = len;
	k->note_gpa = gpa;
	in->vmcoreinfo_gpa = gpa;
	in->release = vi->osrelease;
	in->build_id = vi->build_id;
	in->kaslr_offset = vi->kerneloffset;
	if (!vmi_vmcoreinfo_number(vi, "phys_base", &in->phys_base))
		return vmi_err(err, errlen, EINVAL, "VMCOREINFO has no "
			       "NUMBER(phys_base)");
	if (vmi_vmcoreinfo_number(vi, "pgtable_l5_enabled", &num) && num)
		in->paging_levels = 5;
	else
		in->paging_levels = 4;
	if (!vmi_vmcoreinfo_symbol(vi, "init_top_pgt", &top) &&
	    !vmi_vmcoreinfo_symbol(vi, "swapper_pg_dir", &top))
		return vmi_err(err, errlen, EINVAL, "VMCOREINFO has no "
			       "SYMBOL(init_top_pgt)");
	if (!vmi_vmcoreinfo_symbol(vi, "_stext", &stext))
		return vmi_err(err, errlen, EINVAL, "VMCOREINFO has no "
			       "SYMBOL(_stext)");
	/* Kernels before 4.x had a 512 MiB image; 6.x with KASLR 1 GiB. */
	k->kimage_size = 512ULL << 20;
	if (vmi_vmcoreinfo_number(vi, "KERNEL_IMAGE_SIZE", &num) &&
	    num > 0 && (uint64_t)num <= VMI_KERNEL_IMAGE_MAX &&
	    vmem_page_multiple((uint64_t)num))
		k->kimage_size = (uint64_t)num;
	k->ram_end = p->nranges ? p->ranges[p->nranges - 1].end : 0;
	if (!in_image(k, top) || !in_image(k, stext) ||
	    vmem_page_floor(top) != top)
		return vmi_err(err, errlen, EINVAL, "VMCOREINFO: init_top_pgt "
			       "%#" PRIx64 " or _stext %#" PRIx64 " outside "
			       "the kernel image mapping", top, stext);
	in->init_top_pgt_gpa = top - VMI_KERNEL_MAP + (uint64_t)in->phys_base;
	if (!vmi_phys_contains(p, in->init_top_pgt_gpa, VMEM_PAGE_SIZE))
		return vmi_err(err, errlen, EINVAL, "init_top_pgt at GPA "
			       "%#" PRIx64 " (phys_base %" PRId64 ") is not "
			       "RAM", in->init_top_pgt_gpa, in->phys_base);

	/* A cheap check before the symbol table is decoded: the release in
	 * init_uts_ns (at the note's own address for it). */
	{
		uint64_t uts;
		int64_t name_off;
		char rel[65];
		struct vmi_kernel_reader r = { k, p };

		if (vmi_vmcoreinfo_symbol(vi, "init_uts_ns", &uts) &&
		    vmi_vmcoreinfo_decimal(vi, "OFFSET", "uts_namespace.name",
					   &name_off) &&
		    name_off >= 0 && name_off < 4096 && in_image(k, uts)) {
			/* struct new_utsname: sysname[65], nodename[65],
			 * release[65], ... */
			n = vmi_read_cstr(vmi_kernel_kread, &r,
					  uts + (uint64_t)name_off + 2 * 65,
					  rel, sizeof(rel));
			if (n < 0 || strcmp(rel, vi->osrelease))
				return vmi_err(err, errlen, EINVAL,
					       "init_uts_ns release \"%.64s\" "
					       "is not OSRELEASE %s",
					       n < 0 ? "(unreadable)" : rel,
					       vi->osrelease);
		}
	}

	ret = load_symbols(k, p, o, dl, c, err, errlen);
	if (ret)
		return ret;
	if ((ret = need_symbol(k, "_stext", &stext_ks, err, errlen)))
		return ret;
	if (stext_ks != stext)
		return vmi_err(err, errlen, EINVAL, "kallsyms _stext %#" PRIx64
			       " is not VMCOREINFO's %#" PRIx64, stext_ks,
			       stext);

	if ((ret = need_symbol(k, "linux_banner", &a, err, errlen)))
		return ret;
	{
		struct vmi_kernel_reader r = { k, p };

		n = vmi_read_cstr(vmi_kernel_kread, &r, a, k->banner,
				  sizeof(k->banner));
	}
	if (n < 0)
		return vmi_err(err, errlen, (int)-n, "linux_banner at %#"
			       PRIx64 ": unreadable", a);
	snprintf(expect, sizeof(expect), "Linux version %s ", vi->osrelease);
	if (strncmp(k->banner, expect, strlen(expect)))
		return vmi_err(err, errlen, EINVAL, "linux_banner \"%.60s\" "
			       "does not match OSRELEASE %s", k->banner,
			       vi->osrelease);
	vmi_kernel_vtop(k, p, a, &k->banner_pa);
	n = (long)strlen(k->banner);
	while (n > 0 && k->banner[n - 1] == '\n')
		k->banner[--n] = '\0';
	in->banner = k->banner;

	ret = read_base(k, p, "page_offset_base", in->paging_levels == 5 ?
			0xff11000000000000ULL : 0xffff888000000000ULL,
			&in->page_offset_base, err, errlen);
	if (!ret)
		ret = read_base(k, p, "vmemmap_base", in->paging_levels == 5 ?
				0xffd4000000000000ULL : 0xffffea0000000000ULL,
				&in->vmemmap_base, err, errlen);
	if (!ret)
		ret = read_base(k, p, "vmalloc_base", in->paging_levels == 5 ?
				0xffa0000000000000ULL : 0xffffc90000000000ULL,
				&in->vmalloc_base, err, errlen);
	if (ret)
		return ret;
	k->have_pob = true;

	/* The kernel's own pointer to its note: a forged copy elsewhere in
	 * RAM cannot make it point at itself. */
	if (vmi_kallsyms_lookup(k->ks, "vmcoreinfo_note", &a)) {
		ret = vmi_kernel_read(k, p, a, &ptr, sizeof(ptr));
		if (!ret)
			ret = vmi_kernel_vtop(k, p, ptr, &pa);
		if (ret)
			return vmi_err(err, errlen, EINVAL, "vmcoreinfo_note "
				       "pointer unreadable or untranslatable");
		if (pa != gpa)
			return vmi_err(err, errlen, EINVAL, "the kernel's "
				       "vmcoreinfo_note is at GPA %#" PRIx64
				       ", not at this candidate's %#" PRIx64,
				       pa, gpa);
	}

	ret = load_btf(k, p, o, err, errlen);
	if (ret)
		return ret;
	if (k->btf) {
		char comm[16];

		if (vmi_btf_member(k->btf, "task_struct.comm", &off, &sz) ||
		    sz != sizeof(comm))
			return vmi_err(err, errlen, EINVAL, "BTF (%s) has no "
				       "task_struct.comm[16]", k->btf_source);
		if ((ret = need_symbol(k, "init_task", &a, err, errlen)))
			return ret;
		ret = vmi_kernel_read(k, p, a + off, comm, sizeof(comm));
		if (ret)
			return vmi_err(err, errlen, -ret, "init_task.comm "
				       "unreadable");
		if (memcmp(comm, "swapper/0", 10))
			return vmi_err(err, errlen, EINVAL, "init_task.comm "
				       "at offset %" PRIu64 " (BTF %s) is "
				       "\"%.16s\", not \"swapper/0\"", off,
				       k->btf_source, comm);
	}
	in->btf_source = k->btf_source;
	in->symbols_source = k->symbols_source;

	/* The kernel-image mapping, _text to _end. */
	if (!vmi_kallsyms_lookup(k->ks, "_text", &text))
		text = stext;
	text = vmem_page_floor(text);
	if (vmi_kallsyms_lookup(k->ks, "_end", &end) && end > text &&
	    in_image(k, end - 1)) {
		end = vmem_page_ceil(end);
	} else {
		end = VMI_KERNEL_MAP + k->kimage_size;
	}
	k->image_va = text;
	k->image_pa = text - VMI_KERNEL_MAP + (uint64_t)in->phys_base;
	k->image_len = end > text ? end - text : 0;
	for (size_t i = 0; i < p->nranges; i++) {
		const struct vmi_phys_range *r = &p->ranges[i];

		if (k->image_pa >= r->start && k->image_pa < r->end &&
		    k->image_len > r->end - k->image_pa)
			k->image_len = r->end - k->image_pa;
	}
	return 0;
}

struct scan_ctx {
	struct vmi_kernel *k;
	const struct vmi_phys *p;
	const struct vmi_kernel_options *o;
	const struct vmi_deadline *dl;
	struct ks_cache cache;
	unsigned int candidates;
	int last_ret;
	char why[320];
};

static int on_candidate(void *arg, uint64_t gpa, const void *note,
			size_t len)
{
	struct scan_ctx *s = arg;
	char why[256];
	int ret;

	s->candidates++;
	ret = validate(s->k, s->p, s->o, s->dl, &s->cache, gpa, note, len,
		       why, sizeof(why));
	if (!ret)
		return 1;
	kernel_clear(s->k);
	s->last_ret = ret;
	snprintf(s->why, sizeof(s->why), "note at GPA %#" PRIx64 ": %s", gpa,
		 why);
	/* A wrong kernel-btf is the user's to fix: stop at once. */
	if (ret == -ESTALE || ret == -ETIMEDOUT)
		return ret;
	return 0;
}

int vmi_kernel_recognise(const struct vmi_phys *p,
			 const struct vmi_kernel_options *o,
			 struct vmi_kernel **out, char *err, size_t errlen)
{
	struct vmi_deadline dl;
	struct scan_ctx s = { .p = p, .o = o };
	uint64_t t0 = vmi_now_ms(), pages = 0;
	int ret;

	*out = NULL;
	vmi_deadline_set(&dl, o ? o->timeout_ms : 0);
	s.dl = &dl;
	s.k = calloc(1, sizeof(*s.k));
	if (!s.k)
		return vmi_err(err, errlen, ENOMEM, "out of memory");
	ret = vmi_vmcoreinfo_scan(p, &dl, on_candidate, &s, &pages);
	if (ret == 1) {
		/* The kernel takes the cached table over. */
		if (s.k->ks_borrowed) {
			s.k->ks_borrowed = false;
			s.cache.ks = NULL;
		}
		vmi_kallsyms_free(s.cache.ks);
		s.k->info.recognition_ms = vmi_now_ms() - t0;
		*out = s.k;
		return 0;
	}
	vmi_kallsyms_free(s.cache.ks);
	free(s.k);
	if (ret == -ETIMEDOUT)
		return vmi_err(err, errlen, ETIMEDOUT, "no kernel recognised "
			       "within %" PRIu64 " ms (%u candidate notes, %"
			       PRIu64 " pages looked at)%s%s",
			       o ? o->timeout_ms : 0, s.candidates, pages,
			       s.candidates ? "; last: " : "", s.why);
	if (ret == -ESTALE)
		return vmi_err(err, errlen, ESTALE, "%s", s.why);
	if (ret < 0)
		return vmi_err(err, errlen, -ret, "note scan failed: %s",
			       strerror(-ret));
	if (!s.candidates)
		return vmi_err(err, errlen, ENOENT, "no VMCOREINFO note in "
			       "%" PRIu64 " pages of guest memory (not Linux, "
			       "or not booted yet)", pages);
	return vmi_err(err, errlen, EINVAL, "%u VMCOREINFO note%s, none "
		       "validates; last: %s", s.candidates,
		       s.candidates == 1 ? "" : "s", s.why);
}

bool vmi_kernel_still_valid(const struct vmi_kernel *k,
			    const struct vmi_phys *p)
{
	unsigned char *buf;
	size_t blen = strlen(k->banner) + 1;
	bool ok;

	if (k->note_len > VMI_NOTE_MAX)
		return false;
	buf = malloc(k->note_len > blen ? k->note_len : blen);
	if (!buf)
		return false;
	ok = !vmi_phys_read(p, k->note_gpa, buf, k->note_len) &&
	     !memcmp(buf, k->note, k->note_len);
	/* The banner is linux_banner's first bytes (a newline was cut). */
	ok = ok && !vmi_phys_read(p, k->banner_pa, buf, blen - 1) &&
	     !memcmp(buf, k->banner, blen - 1);
	free(buf);
	return ok;
}

void vmi_kernel_free(struct vmi_kernel *k)
{
	if (!k)
		return;
	kernel_clear(k);
	free(k);
}

const void *vmi_kernel_note(const struct vmi_kernel *k, size_t *len,
			    uint64_t *gpa)
{
	if (len)
		*len = k->note_len;
	if (gpa)
		*gpa = k->note_gpa;
	return k->note;
}

const struct vmi_vmcoreinfo *vmi_kernel_vmcoreinfo(const struct vmi_kernel *k)
{
	return &k->vi;
}

void vmi_kernel_image(const struct vmi_kernel *k, uint64_t *vaddr,
		      uint64_t *paddr, uint64_t *len)
{
	*vaddr = k->image_va;
	*paddr = k->image_pa;
	*len = k->image_len;
}

const struct vmi_kernel_info *vmi_kernel_info(const struct vmi_kernel *k)
{
	return &k->info;
}

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static char *to_text(json_object *o)
{
	const char *s;
	char *r = NULL;

	if (!o)
		return NULL;
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					   JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s && asprintf(&r, "%s\n", s) < 0)
		r = NULL;
	json_object_put(o);
	return r;
}

char *vmi_kernel_json(const struct vmi_kernel *k)
{
	const struct vmi_kernel_info *in = &k->info;
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
#define ADD(key, val) json_object_object_add(o, key, val)
	ADD("release", json_object_new_string(in->release));
	ADD("banner", json_object_new_string(in->banner));
	ADD("build_id", json_object_new_string(in->build_id));
	ADD("kaslr_offset", json_object_new_uint64(in->kaslr_offset));
	ADD("phys_base", json_object_new_int64(in->phys_base));
	ADD("page_offset_base", json_object_new_uint64(in->page_offset_base));
	ADD("vmemmap_base", json_object_new_uint64(in->vmemmap_base));
	ADD("vmalloc_base", json_object_new_uint64(in->vmalloc_base));
	ADD("paging_levels", json_object_new_int(in->paging_levels));
	ADD("vmcoreinfo_gpa", json_object_new_uint64(in->vmcoreinfo_gpa));
	ADD("btf_source", str_or_null(in->btf_source));
	ADD("symbols", json_object_new_uint64(vmi_kallsyms_count(k->ks)));
	ADD("recognition_ms", json_object_new_uint64(in->recognition_ms));
	/* More than the issue asks, for tools and vmcore. */
	ADD("symbols_source", str_or_null(in->symbols_source));
	ADD("init_top_pgt_gpa", json_object_new_uint64(in->init_top_pgt_gpa));
	ADD("image_vaddr", json_object_new_uint64(k->image_va));
	ADD("image_paddr", json_object_new_uint64(k->image_pa));
	ADD("image_size", json_object_new_uint64(k->image_len));
#undef ADD
	return to_text(o);
}

char *vmi_kernel_error_json(const char *why)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "error", json_object_new_string(why ? why :
				"unknown"));
	return to_text(o);
}

bool vmi_kernel_symbol(const struct vmi_kernel *k, const char *name,
		       uint64_t *addr)
{
	return vmi_kallsyms_lookup(k->ks, name, addr);
}

const struct vmi_kallsyms *vmi_kernel_kallsyms(const struct vmi_kernel *k)
{
	return k->ks;
}

int vmi_kernel_member(const struct vmi_kernel *k, const char *path,
		      uint64_t *offset, uint64_t *size)
{
	return vmi_btf_member(k->btf, path, offset, size);
}

int vmi_kernel_members(const struct vmi_kernel *k,
		       const struct vmi_member_ref *m, const char **failed)
{
	int ret;

	for (; m->path; m++) {
		ret = vmi_kernel_member(k, m->path, m->off, NULL);
		if (ret) {
			*failed = m->path;
			return ret;
		}
	}
	return 0;
}

int vmi_kernel_type_size(const struct vmi_kernel *k, const char *name,
			 uint64_t *size)
{
	return vmi_btf_type_size(k->btf, name, size);
}

const struct btf *vmi_kernel_btf(const struct vmi_kernel *k)
{
	return vmi_btf_libbpf(k->btf);
}
