/* SPDX-License-Identifier: MIT */
/*
 * The kernel's VMCOREINFO ELF note: find candidates in guest-physical
 * memory, check their header, parse their KEY=VALUE text.
 *
 * The note the kernel keeps (vmcoreinfo_note) starts a page: Elf64_Nhdr
 * {namesz 11, descsz, type 0}, "VMCOREINFO\0" padded to 12 bytes, then
 * descsz bytes of text beginning "OSRELEASE=".  The same text occurs
 * elsewhere without the header, and any guest process can write a whole
 * forged note into its own pages: a candidate found here is only a
 * candidate.  kernel.c decides which one is the kernel's.
 */
#ifndef VMI_VMCOREINFO_H
#define VMI_VMCOREINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "phys.h"

#define VMI_NOTE_HDR		24	/* Nhdr (12) + "VMCOREINFO\0" padded */
#define VMI_NOTE_DESC_MAX	65536	/* the kernel's is one page */
#define VMI_NOTE_MAX		(VMI_NOTE_HDR + VMI_NOTE_DESC_MAX)
#define VMI_NOTE_KEYS_MAX	1024	/* lines kept from one note */

struct vmi_vmcoreinfo_kv {
	char *key;		/* e.g. "SYMBOL(init_top_pgt)", "OSRELEASE" */
	char *value;		/* text after '=' up to the end of line */
};

struct vmi_vmcoreinfo {
	struct vmi_vmcoreinfo_kv *kv;
	size_t nkv;
	/* Convenience copies of keys every user needs ("" / 0 if absent). */
	char osrelease[65];
	char build_id[129];	/* hex text */
	uint64_t pagesize;
	uint64_t kerneloffset;	/* KERNELOFFSET (hex) */
	bool has_kerneloffset;
};

/*
 * Check a note's header: @buf holds at least VMI_NOTE_HDR + 10 bytes at
 * a page start.  Returns the note's total length (header + descsz,
 * padded to 4), or 0 when this is not a well-formed VMCOREINFO note
 * starting with "OSRELEASE=" (also when descsz exceeds the cap).
 */
size_t vmi_note_check_header(const void *buf, size_t len);

/*
 * Parse a whole note (header + text, as vmi_note_check_header accepted).
 * Lines without '=' or with an empty key, or more than
 * VMI_NOTE_KEYS_MAX lines, are refused: 0, or -EINVAL with a message.
 * The text must be printable ASCII and newlines.
 */
int vmi_vmcoreinfo_parse(const void *note, size_t len,
			 struct vmi_vmcoreinfo *out, char *err, size_t errlen);
void vmi_vmcoreinfo_free(struct vmi_vmcoreinfo *vi);

/* The value text of @key, or NULL. */
const char *vmi_vmcoreinfo_get(const struct vmi_vmcoreinfo *vi,
			       const char *key);
/* SYMBOL(name)=hex.  false when absent or malformed. */
bool vmi_vmcoreinfo_symbol(const struct vmi_vmcoreinfo *vi, const char *name,
			   uint64_t *val);
/* NUMBER(name)=decimal (may be negative). */
bool vmi_vmcoreinfo_number(const struct vmi_vmcoreinfo *vi, const char *name,
			   int64_t *val);
/* @kind is "OFFSET", "SIZE" or "LENGTH": KIND(name)=decimal. */
bool vmi_vmcoreinfo_decimal(const struct vmi_vmcoreinfo *vi, const char *kind,
			    const char *name, int64_t *val);

/*
 * Scan page starts of guest-physical memory for candidate notes: the
 * local parts of the ranges first, then the remote ones.  For each page
 * whose header checks, the whole note is read and @found is called; a
 * nonzero return from @found stops the scan and is returned.  Returns 0
 * when the scan ended without @found accepting one, -ETIMEDOUT when
 * @dl passed, -ENOMEM.  A page that cannot be read is skipped (a remote
 * failure must not hide the local note).  *@pages_read counts the pages
 * looked at (may be NULL).
 */
int vmi_vmcoreinfo_scan(const struct vmi_phys *p,
			const struct vmi_deadline *dl,
			int (*found)(void *arg, uint64_t gpa,
				     const void *note, size_t len),
			void *arg, uint64_t *pages_read);

#endif
