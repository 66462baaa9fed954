/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel's types (BTF), parsed by libbpf: from the blob the
 * kernel keeps in its own memory (__start_BTF..__stop_BTF), or from a file
 * (config key kernel-btf: a vmlinux with a .BTF section, or raw BTF).
 *
 * A vmlinux file is refused when its .note.gnu.build-id differs from the
 * guest's VMCOREINFO BUILD-ID (or when either is missing).  Raw BTF has
 * no build id: it is accepted, and kernel.c then checks it against the
 * guest like any other source (init_task.comm must read "swapper/0").
 */
#ifndef VMI_BTF_H
#define VMI_BTF_H

#include <stddef.h>
#include <stdint.h>

#define VMI_BTF_MAX	(64u << 20)	/* 6.1's is 4.3 MB */

struct btf;		/* libbpf */
struct vmi_btf;		/* opaque */

/* Parse a BTF blob (copied).  -E2BIG beyond VMI_BTF_MAX, -EINVAL bad. */
int vmi_btf_from_blob(const void *blob, size_t len, struct vmi_btf **out,
		      char *err, size_t errlen);
/*
 * Load a vmlinux (ELF with .BTF) or a raw BTF file.  @build_id: the
 * guest's BUILD-ID as hex text; a vmlinux whose build id differs is
 * refused with -ESTALE and a message giving both.
 */
int vmi_btf_from_file(const char *path, const char *build_id,
		      struct vmi_btf **out, char *err, size_t errlen);
void vmi_btf_free(struct vmi_btf *b);

/* libbpf's object, for callers who need more than the helpers below. */
const struct btf *vmi_btf_libbpf(const struct vmi_btf *b);

/*
 * Byte offset and size of a member: "struct.member" or a path through
 * named members ("task_struct.se.vruntime"); members of anonymous structs
 * and unions are found as if they were direct members.  The first word
 * is a struct or union name.  Returns 0, -ENOENT when a name is not
 * found, -EDOM for a bitfield (no whole-byte offset).  @size may be NULL.
 */
int vmi_btf_member(const struct vmi_btf *b, const char *path,
		   uint64_t *offset, uint64_t *size);
/* sizeof(struct/union/typedef/int name).  -ENOENT when unknown. */
int vmi_btf_type_size(const struct vmi_btf *b, const char *name,
		      uint64_t *size);

#endif
