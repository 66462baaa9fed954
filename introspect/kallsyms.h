/* SPDX-License-Identifier: MIT */
/*
 * The kernel's symbol table, decoded from guest memory (the compressed
 * kallsyms tables, whose addresses VMCOREINFO gives since Linux 6.0), or
 * read from a System.map file (older kernels: config key kernel-map).
 *
 * Decoding is bounded: at most VMI_KSYM_MAX symbols, names of at most
 * VMI_KSYM_NAME_MAX bytes, a names stream of at most VMI_KSYM_STREAM_MAX
 * bytes, a token table of 256 tokens in at most VMI_KSYM_TOKENS_MAX
 * bytes.  Anything outside those bounds is refused, not truncated.
 */
#ifndef VMI_KALLSYMS_H
#define VMI_KALLSYMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"

#define VMI_KSYM_MAX		(1u << 21)	/* 2 M symbols (6.1: ~100 k) */
#define VMI_KSYM_NAME_MAX	512		/* KSYM_NAME_LEN is 512 */
#define VMI_KSYM_STREAM_MAX	(64u << 20)
#define VMI_KSYM_TOKENS_MAX	(64u << 10)

/* Kernel virtual addresses of the tables (VMCOREINFO SYMBOL(...)). */
struct vmi_kallsyms_tables {
	uint64_t names, num_syms, token_table, token_index;
	uint64_t offsets, relative_base;
	/* CONFIG_KALLSYMS_ABSOLUTE_PERCPU: x86-64 SMP kernels have it. */
	bool absolute_percpu;
};

struct vmi_ksym {
	uint64_t addr;
	const char *name;	/* points into the table's string pool */
	char type;		/* 'T', 't', 'D', ... as in /proc/kallsyms */
};

struct vmi_kallsyms;	/* opaque */

/*
 * Decode the tables through @read (kernel virtual memory).  Returns 0
 * with *@out set, or -errno with a message (-E2BIG for a bound exceeded,
 * -EINVAL for tables that do not decode or are not sorted by address,
 * -ETIMEDOUT when @dl passes (@dl may be NULL), or @read's -errno for
 * a table that cannot be read).
 */
int vmi_kallsyms_decode(vmi_kread_fn read, void *ctx,
			const struct vmi_kallsyms_tables *t,
			const struct vmi_deadline *dl,
			struct vmi_kallsyms **out, char *err, size_t errlen);

/*
 * Read a System.map ("ADDR TYPE NAME" per line).  Addresses are link-time
 * ones: @offset (the KASLR offset) is added to those in the kernel image
 * mapping (absolute per-cpu symbols stay as they are).  Refuses the
 * Debian stub ("ffffffffffffffff B The real System.map is in the
 * linux-image-<version>-dbg package") and files with no symbols.
 */
int vmi_kallsyms_from_map(const char *path, uint64_t offset,
			  struct vmi_kallsyms **out, char *err, size_t errlen);

void vmi_kallsyms_free(struct vmi_kallsyms *ks);

size_t vmi_kallsyms_count(const struct vmi_kallsyms *ks);
/* Symbol @i in table order (the order of /proc/kallsyms), or NULL. */
const struct vmi_ksym *vmi_kallsyms_at(const struct vmi_kallsyms *ks,
				       size_t i);
/*
 * Address of the first symbol called @name in table order.  Names are not
 * unique (static functions): vmi_kallsyms_next() gives the others.
 */
bool vmi_kallsyms_lookup(const struct vmi_kallsyms *ks, const char *name,
			 uint64_t *addr);
/*
 * All symbols called @name: start with *@cursor = 0; each call returns
 * the next one or NULL.
 */
const struct vmi_ksym *vmi_kallsyms_next(const struct vmi_kallsyms *ks,
					 const char *name, size_t *cursor);

#endif
