// SPDX-License-Identifier: MIT
/* The ELF core view of guest memory.  See vmcore.h. */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmcore.h"

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

/* Runs of GPA-contiguous extents: the PT_LOADs of RAM.  Count or -1. */
static ssize_t merge_extents(const struct vmem_gpa_map *m,
			     struct vmem_vmcore_seg *out)
{
	size_t i, n = 0;

	for (i = 0; i < m->n; i++) {
		const struct vmem_gpa_ext *e = &m->ext[i];

		if (!e->len)
			continue;
		if (e->gpa + e->len < e->gpa)
			return -1;
		if (n && out[n - 1].gpa + out[n - 1].len == e->gpa) {
			out[n - 1].len += e->len;
			continue;
		}
		if (n && e->gpa < out[n - 1].gpa + out[n - 1].len)
			return -1;	/* not sorted or overlapping */
		out[n].gpa = e->gpa;
		out[n].len = e->len;
		out[n].off = 0;
		n++;
	}
	return (ssize_t)n;
}

static void put_phdr(unsigned char *at, uint32_t type, uint64_t off,
		     uint64_t vaddr, uint64_t paddr, uint64_t len)
{
	Elf64_Phdr ph;

	memset(&ph, 0, sizeof(ph));
	ph.p_type = type;
	/* kdump's PT_LOADs say RWX: memory, not a program's segments. */
	ph.p_flags = type == PT_LOAD ? PF_R | PF_W | PF_X : 0;
	ph.p_offset = off;
	ph.p_vaddr = vaddr;
	ph.p_paddr = paddr;
	ph.p_filesz = len;
	ph.p_memsz = len;
	ph.p_align = 0;
	memcpy(at, &ph, sizeof(ph));
}

int vmem_vmcore_build(struct vmem_vmcore *vc,
		      const struct vmem_vmcore_info *in,
		      char *err, size_t errlen)
{
	const struct vmem_vmcore_seg *img = NULL;
	uint64_t data, img_len = 0;
	size_t note_len = in->note ? in->note_len : 0, nphdr, note_off, i;
	unsigned char *p;
	Elf64_Ehdr eh;
	ssize_t nseg;

	memset(vc, 0, sizeof(*vc));
	if (!in->map || !in->map->n) {
		set_err(err, errlen, "no guest-physical RAM to show");
		return -1;
	}
	if (in->map->n > VMEM_VMCORE_MAX_PHDRS - 2) {
		set_err(err, errlen, "more RAM ranges than an ELF core holds");
		return -1;
	}
	if (note_len > VMEM_VMCORE_NOTE_MAX) {
		set_err(err, errlen, "VMCOREINFO note larger than 128 KiB");
		return -1;
	}
	vc->seg = calloc(in->map->n, sizeof(*vc->seg));
	if (!vc->seg) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	nseg = merge_extents(in->map, vc->seg);
	if (nseg <= 0) {
		set_err(err, errlen, nseg ? "guest-physical map not sorted" :
			"no guest-physical RAM to show");
		goto fail;
	}
	vc->nseg = (size_t)nseg;

	/* Where the image's bytes are: inside the run that holds its start. */
	if (in->kernel_known && in->image_len) {
		for (i = 0; i < vc->nseg; i++) {
			const struct vmem_vmcore_seg *s = &vc->seg[i];

			if (in->image_paddr >= s->gpa &&
			    in->image_paddr - s->gpa < s->len) {
				img = s;
				img_len = s->gpa + s->len - in->image_paddr;
				if (img_len > in->image_len)
					img_len = in->image_len;
				break;
			}
		}
	}

	nphdr = (note_len ? 1 : 0) + (img ? 1 : 0) + vc->nseg;
	note_off = sizeof(Elf64_Ehdr) + nphdr * sizeof(Elf64_Phdr);
	vc->hdr_len = (note_off + note_len + VMEM_VMCORE_ALIGN - 1) /
		      VMEM_VMCORE_ALIGN * VMEM_VMCORE_ALIGN;
	vc->nphdr = nphdr;
	data = vc->hdr_len;
	for (i = 0; i < vc->nseg; i++) {
		vc->seg[i].off = data;
		data += vc->seg[i].len;
		if (data < vc->seg[i].len) {
			set_err(err, errlen, "guest RAM larger than a file");
			goto fail;
		}
	}
	vc->size = data;

	vc->hdr = calloc(1, vc->hdr_len);
	if (!vc->hdr) {
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
	eh.e_type = ET_CORE;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	/* Right after the ELF header: makedumpfile expects them there. */
	eh.e_phoff = sizeof(Elf64_Ehdr);
	eh.e_ehsize = sizeof(Elf64_Ehdr);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (Elf64_Half)nphdr;
	eh.e_shstrndx = SHN_UNDEF;
	memcpy(vc->hdr, &eh, sizeof(eh));

	/* kdump's order: the note, the kernel image, then RAM by address. */
	p = vc->hdr + sizeof(Elf64_Ehdr);
	if (note_len) {
		put_phdr(p, PT_NOTE, note_off, 0, 0, note_len);
		memcpy(vc->hdr + note_off, in->note, note_len);
		p += sizeof(Elf64_Phdr);
	}
	if (img) {
		put_phdr(p, PT_LOAD, img->off + (in->image_paddr - img->gpa),
			 in->image_vaddr, in->image_paddr, img_len);
		p += sizeof(Elf64_Phdr);
	}
	for (i = 0; i < vc->nseg; i++) {
		const struct vmem_vmcore_seg *s = &vc->seg[i];
		/* The direct map, as kdump does; without a kernel, the GPA. */
		uint64_t va = in->kernel_known ? in->page_offset + s->gpa :
						 s->gpa;

		put_phdr(p, PT_LOAD, s->off, va, s->gpa, s->len);
		p += sizeof(Elf64_Phdr);
	}
	return 0;
fail:
	vmem_vmcore_free(vc);
	return -1;
}

void vmem_vmcore_free(struct vmem_vmcore *vc)
{
	free(vc->hdr);
	free(vc->seg);
	memset(vc, 0, sizeof(*vc));
}

uint64_t vmem_vmcore_size(const struct vmem_vmcore_info *in)
{
	struct vmem_vmcore vc;
	uint64_t size;

	if (vmem_vmcore_build(&vc, in, NULL, 0) < 0)
		return 0;
	size = vc.size;
	vmem_vmcore_free(&vc);
	return size;
}

/* The segment holding file offset @off (>= hdr_len, < size). */
static const struct vmem_vmcore_seg *seg_at(const struct vmem_vmcore *vc,
					    uint64_t off)
{
	size_t lo = 0, hi = vc->nseg;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (vc->seg[mid].off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return &vc->seg[lo];
}

ssize_t vmem_vmcore_read(const struct vmem_vmcore *vc,
			 vmem_vmcore_read_fn *read, void *ctx,
			 void *buf, size_t len, uint64_t off)
{
	unsigned char *p = buf;
	uint64_t end, pos = off;

	if (off >= vc->size)
		return 0;
	end = len > vc->size - off ? vc->size : off + len;
	if (pos < vc->hdr_len) {
		uint64_t n = (end < vc->hdr_len ? end : vc->hdr_len) - pos;

		memcpy(p, vc->hdr + pos, n);
		pos += n;
	}
	while (pos < end) {
		const struct vmem_vmcore_seg *s = seg_at(vc, pos);
		uint64_t in_seg = pos - s->off;
		uint64_t n = s->len - in_seg;
		ssize_t rc;

		if (n > end - pos)
			n = end - pos;
		rc = read(ctx, p + (pos - off), n, s->gpa + in_seg);
		if (rc < 0)
			return rc;
		if ((uint64_t)rc != n)
			return -EIO;
		pos += n;
	}
	return (ssize_t)(end - off);
}
