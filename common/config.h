/* SPDX-License-Identifier: MIT */
/*
 * vmemtrans.conf: the one file that describes a split VM, read by vmemfs
 * and (later) by the QEMU side.  This module depends on libc only so the
 * QEMU glue and the pager can link it as they are.
 *
 * Format (INI):
 *   # or ; starts a comment (anywhere on a line)
 *   [vmname]                   one section per VM
 *   key = value                see struct vmem_vm for the keys
 *
 * Sizes:     decimal or 0x-hex, optional K/M/G/T suffix (powers of 1024)
 * Ranges:    START-END, both sizes, END exclusive
 * Durations: NUMBERms or NUMBERs
 *
 * Promise: a config that loads is consistent.  Every error names the
 * file, the line and the value at fault, and nothing is partly loaded.
 */
#ifndef VMEM_CONFIG_H
#define VMEM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define VMEM_DEFAULT_CONFIG "/etc/vmemtrans.conf"

enum vmem_backend_kind {
	VMEM_BACKEND_DIRECT,
	VMEM_BACKEND_REMOTE_PAGING,
};

/* One `subhost = URI START-END` line: the home of RAM range [start, end). */
/* How `mem` is addressed: RAM offset (flat) or guest-physical (auto). */
enum vmem_layout_kind {
	VMEM_LAYOUT_FLAT,
	VMEM_LAYOUT_AUTO,
};

struct vmem_subhost {
	char *uri;
	uint64_t start;
	uint64_t end;
	unsigned int line;
};

struct vmem_vm {
	char *name;
	unsigned int line;		/* line of the [section] header */

	char *memory_file;		/* required */
	uint64_t ram_size;		/* 0 until set or resolved */
	bool ram_size_set;		/* given in the file */
	enum vmem_backend_kind backend;	/* default direct */
	uint64_t chunk_size;		/* default 64K; power of 2, 4K..16M */
	uint64_t cache_size;		/* default 4M; 0 = no cache */
	uint64_t cache_ttl_ms;		/* default 100 */
	uint64_t timeout_ms;		/* default 2000; must be > 0 */
	uint64_t local_limit;		/* QEMU side: cap on main-host RAM;
					 * default (0 until resolved) = ram-size;
					 * vmemfs ignores it */
	bool local_limit_set;
	char *qmp;			/* the VM's QMP unix socket, or NULL;
					 * required by remote-paging */
	enum vmem_layout_kind layout;	/* default auto with qmp, else flat;
					 * auto needs qmp */
	char *kernel_btf;		/* kernel-btf: a vmlinux with .BTF or
					 * raw BTF used instead of the guest's
					 * own; NULL = the guest's */
	char *kernel_map;		/* kernel-map: a System.map for kernels
					 * without kallsyms in VMCOREINFO */

	/* Lines of some keys (0 = not in the file), so that checks made
	 * after parsing (vmem_vm_resolve) can point at the right line. */
	unsigned int memory_file_line;
	unsigned int ram_size_line;
	unsigned int local_limit_line;
	unsigned int kernel_btf_line;
	unsigned int kernel_map_line;

	struct vmem_subhost *subhosts;	/* sorted by start, disjoint */
	size_t n_subhosts;
};

struct vmem_config {
	char *path;			/* as given, for messages */
	struct vmem_vm *vms;
	size_t n_vms;
};

/*
 * Parse @text (NUL-terminated) as if read from @path.  On error returns -1
 * and writes "PATH:LINE: message" into @err; @cfg is then empty and needs
 * no vmem_config_free().  Checks that need the memory file (ram-size
 * default, ranges inside ram-size) are done by vmem_vm_resolve().
 */
int vmem_config_parse(const char *text, const char *path,
		      struct vmem_config *cfg, char *err, size_t errlen);

/* Read and parse @path.  Errors as for vmem_config_parse(). */
int vmem_config_load(const char *path, struct vmem_config *cfg,
		     char *err, size_t errlen);

void vmem_config_free(struct vmem_config *cfg);

/*
 * The VM called @name, or the only VM when @name is NULL.  Returns NULL
 * with a message in @err when there is no such VM, or when @name is NULL
 * and the file has zero or several sections.
 */
struct vmem_vm *vmem_config_find(struct vmem_config *cfg, const char *name,
				 char *err, size_t errlen);

/*
 * Finish a VM's settings against the real memory file: ram-size defaults
 * to the file's size; every subhost range must lie inside ram-size.  The
 * memory file must exist.  Errors name the config path and line.
 */
int vmem_vm_resolve(struct vmem_vm *vm, const char *path,
		    char *err, size_t errlen);

/*
 * Value parsers, exposed for tests and for other tools.  Each returns 0 on
 * success and -1 on a malformed or overflowing value.
 */
int vmem_parse_size(const char *s, uint64_t *out);
int vmem_parse_range(const char *s, uint64_t *start, uint64_t *end);
int vmem_parse_duration_ms(const char *s, uint64_t *out_ms);

/* Format @v as the shortest exact "64K"/"2G"/"12345" for messages. */
void vmem_format_size(uint64_t v, char *buf, size_t len);

const char *vmem_backend_name(enum vmem_backend_kind k);
const char *vmem_layout_name(enum vmem_layout_kind k);

/* Print the effective settings of @vm in config syntax (--check-config). */
void vmem_vm_print(const struct vmem_vm *vm, FILE *out);

#endif
