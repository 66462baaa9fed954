/* SPDX-License-Identifier: MIT */
/*
 * One recognised guest kernel, found in its own memory without profile
 * or configuration (Linux 6.0+, x86-64): its VMCOREINFO note, symbols
 * (kallsyms decoded from guest memory, or a System.map), types (BTF from
 * guest memory, or a file) and address translation.
 *
 * Recognition scans page starts for VMCOREINFO notes (local memory
 * first) and accepts the first candidate that validates against the rest
 * of the guest's memory:
 *   - init_uts_ns (when the note names it) holds the note's OSRELEASE
 *     (cheap, before anything is decoded);
 *   - the kallsyms tables it names decode, and kallsyms' _stext equals
 *     the note's SYMBOL(_stext);
 *   - linux_banner, at its kallsyms address, reads "Linux version
 *     <OSRELEASE> ";
 *   - the kernel's own vmcoreinfo_note pointer (when the symbol exists)
 *     points at the candidate's guest-physical address;
 *   - init_task.comm, at its BTF offset, reads "swapper/0".
 * A note written by a guest process into its own pages fails these.
 *
 * The object is a value: built once, then only read; thread-safe for
 * concurrent readers.  Functions that read guest memory take the reader,
 * which must be the one recognition used (or one over the same memory).
 */
#ifndef VMI_KERNEL_H
#define VMI_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "btf.h"
#include "kallsyms.h"
#include "phys.h"
#include "pgtable.h"
#include "vmcoreinfo.h"

struct vmi_kernel;	/* opaque */

struct vmi_kernel_options {
	const char *btf_path;	/* kernel-btf: NULL = the guest's own BTF */
	const char *map_path;	/* kernel-map: NULL = kallsyms from memory */
	uint64_t timeout_ms;	/* whole recognition; 0 = no limit */
};

/*
 * Find and validate the guest's kernel.  Returns 0 with *@out set, or
 * -errno with a one-line reason in @err: -ENOENT no candidate note found,
 * -EINVAL candidates found but none validated (the reason of the last
 * rejection), -ETIMEDOUT, -ESTALE a kernel-btf whose build id differs.
 */
int vmi_kernel_recognise(const struct vmi_phys *p,
			 const struct vmi_kernel_options *o,
			 struct vmi_kernel **out, char *err, size_t errlen);

/*
 * Cheap re-validation: the note at the remembered GPA is still byte for
 * byte the one recognised, and linux_banner still reads the same.  False
 * means: recognise again (the guest rebooted, KASLR moved everything).
 */
bool vmi_kernel_still_valid(const struct vmi_kernel *k,
			    const struct vmi_phys *p);

void vmi_kernel_free(struct vmi_kernel *k);

/* The guest's VMCOREINFO note byte for byte (Nhdr + name + desc, padded
 * to 4) and its guest-physical address. */
const void *vmi_kernel_note(const struct vmi_kernel *k, size_t *len,
			    uint64_t *gpa);
/* The parsed note. */
const struct vmi_vmcoreinfo *vmi_kernel_vmcoreinfo(const struct vmi_kernel *k);

/*
 * The kernel-image mapping, for a vmcore PT_LOAD: from _text to _end
 * (page-aligned), its virtual address (KASLR included), the
 * guest-physical address it maps (va - __START_KERNEL_map + phys_base)
 * and its length.  Without _end in the symbols, the length is
 * NUMBER(KERNEL_IMAGE_SIZE) less _text's offset in it, cut at the end of
 * the RAM range holding _text.
 */
void vmi_kernel_image(const struct vmi_kernel *k, uint64_t *vaddr,
		      uint64_t *paddr, uint64_t *len);

/* The `kernel` file: a malloc'd JSON object (keys in doc/vmemfs-kernel.8):
 * release, banner, build_id, kaslr_offset, phys_base, page_offset_base,
 * vmemmap_base, vmalloc_base, paging_levels, vmcoreinfo_gpa, btf_source,
 * symbols, recognition_ms.  NULL on allocation failure. */
char *vmi_kernel_json(const struct vmi_kernel *k);
/* {"error": why}, malloc'd. */
char *vmi_kernel_error_json(const char *why);

/* Facts about the kernel. */
struct vmi_kernel_info {
	const char *release;	/* OSRELEASE */
	const char *banner;	/* linux_banner without the trailing newline */
	const char *build_id;	/* hex */
	uint64_t kaslr_offset;
	int64_t phys_base;
	uint64_t page_offset_base, vmemmap_base, vmalloc_base;
	int paging_levels;	/* 4 or 5 */
	uint64_t init_top_pgt_gpa;
	uint64_t vmcoreinfo_gpa;
	const char *btf_source;	/* "guest" or the file's path */
	const char *symbols_source; /* "guest" or the System.map's path */
	uint64_t recognition_ms;
};
const struct vmi_kernel_info *vmi_kernel_info(const struct vmi_kernel *k);

/* ---- symbols (for shadow /proc and friends) ---- */

/* Address of the first symbol called @name.  false when unknown. */
bool vmi_kernel_symbol(const struct vmi_kernel *k, const char *name,
		       uint64_t *addr);
/* The whole table (table order, like /proc/kallsyms). */
const struct vmi_kallsyms *vmi_kernel_kallsyms(const struct vmi_kernel *k);

/* ---- types ---- */

/* See vmi_btf_member / vmi_btf_type_size.  -ENOENT without BTF. */
int vmi_kernel_member(const struct vmi_kernel *k, const char *path,
		      uint64_t *offset, uint64_t *size);
int vmi_kernel_type_size(const struct vmi_kernel *k, const char *name,
			 uint64_t *size);
/*
 * A table of member offsets to look up, ended by a NULL path; on the
 * first that fails, -errno as vmi_kernel_member with *@failed = its path
 * (for the caller's message), else 0.
 */
struct vmi_member_ref {
	const char *path;	/* "struct.member.member" */
	uint64_t *off;
};
int vmi_kernel_members(const struct vmi_kernel *k,
		       const struct vmi_member_ref *m, const char **failed);
/* libbpf's BTF object, or NULL. */
const struct btf *vmi_kernel_btf(const struct vmi_kernel *k);

/* ---- addresses ---- */

/*
 * Kernel virtual -> guest-physical: the kernel image and the direct map
 * translate arithmetically, everything else (vmalloc, vmemmap, modules)
 * by walking init_top_pgt.  0 or -errno as vmi_pgtable_walk.
 */
int vmi_kernel_vtop(const struct vmi_kernel *k, const struct vmi_phys *p,
		    uint64_t va, uint64_t *pa);
/* User virtual -> guest-physical through the page table at @pgd_gpa
 * (e.g. vmi_kernel_vtop of mm->pgd). */
int vmi_kernel_uvtop(const struct vmi_kernel *k, const struct vmi_phys *p,
		     uint64_t pgd_gpa, uint64_t va, uint64_t *pa);
/*
 * Checked read of kernel virtual memory: @va must be in the kernel half
 * and canonical, [va, va+len) must not wrap, @len at most 16 MiB; pages
 * are translated one by one.  0 or -errno (never a partial read).
 */
int vmi_kernel_read(const struct vmi_kernel *k, const struct vmi_phys *p,
		    uint64_t va, void *buf, size_t len);

/* The same as a vmi_kread_fn, for guard.h's walks: @ctx is a
 * struct vmi_kernel_reader. */
struct vmi_kernel_reader {
	const struct vmi_kernel *k;
	const struct vmi_phys *p;
};
int vmi_kernel_kread(void *ctx, uint64_t va, void *buf, size_t len);

#endif
