/* SPDX-License-Identifier: MIT */
/*
 * vmemtrans.conf: the one file that describes a split VM, read by vmemfs
 * and by the QEMU side (the vmem-split object and its pager).  This
 * module depends on libc only so the QEMU glue and the pager can link it
 * as they are.
 *
 * Format (INI):
 *   # or ; starts a comment (anywhere on a line)
 *   [vmname]                   one section per VM
 *   key = value                see struct vmem_vm for the keys
 *
 * Values (sizes, ranges, durations): config_values.h.
 *
 * Promise: a config that loads is consistent.  Every error names the
 * file, the line and the value at fault, and nothing is partly loaded
 * (-1 and a message: the set-up convention of common/errors.h).
 */
#ifndef VMEM_CONFIG_H
#define VMEM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config_values.h"
#include "tls.h"

#define VMEM_DEFAULT_CONFIG "/etc/vmemtrans.conf"

/*
 * The largest values accepted, so that nothing that loads breaks later
 * (a size that does not fit in off_t, a duration that wraps or turns into
 * poll(-1)).  Everything learned from QEMU is held to the same limits.
 *
 * VMEM_RAM_MAX: 2^52 bytes (4096T), the widest guest-physical address
 * space of x86-64 (5-level paging) and arm64 (LPA): no guest has more
 * RAM, or RAM higher up.  It bounds ram-size, sub-host ranges,
 * local-limit, cache-size and guest-physical addresses, and keeps the sum
 * of any two offsets far inside off_t.
 *
 * VMEM_DURATION_MAX_MS: 1 hour, for timeout and cache-ttl.  Durations
 * become poll() milliseconds (an int: 24.8 days) and nanosecond deadlines
 * (uint64_t: 584 years); an hour is far inside both, and a read that
 * waits longer for a sub-host, or a cached copy of guest memory older
 * than that, is a hang or a stale view in all but name.
 *
 * VMEM_SUBHOSTS_MAX: sub-hosts per VM.  Each may hold 4 NBD connections
 * (vmemfs) plus the pager's in QEMU; 128 keeps them inside half of the
 * usual 1024 open files.
 */
#define VMEM_RAM_MAX		(1ULL << 52)
#define VMEM_DURATION_MAX_MS	3600000ULL
#define VMEM_SUBHOSTS_MAX	128

#define VMEM_DEFAULT_BACKEND "direct"
#define VMEM_DEFAULT_LIBVIRT "qemu:///system"

/* Has the VM a QMP monitor: its own socket, or libvirt's for a domain. */
#define vmem_vm_has_qmp(vm) ((vm)->qmp || (vm)->domain)

/*
 * What the parser knows of a backend: its name, and whether it needs the
 * VM's QMP socket.  The backends are not the config's: vmemfs has them
 * (vmemfs/backend.c) and defines vmem_backend_table, a NULL-terminated
 * list of the ones it is built with.  The `backend` key is checked
 * against it while parsing, so a typo names its line.  A program without
 * backends (QEMU's glue, the pager, the config fuzzer) does not define
 * the table (it is weak), and keeps whatever name is written, unread.
 */
struct vmem_backend_info {
	const char *name;
	bool needs_qmp;		/* refused without qmp = PATH */
};

extern const struct vmem_backend_info *const vmem_backend_table[]
	__attribute__((weak));

/*
 * How `mem` is addressed (the key `layout`): by RAM offset (flat) or by
 * guest-physical address (auto).  Not to be confused with vmemfs/homes.c,
 * which says where each byte of RAM lives (local, a sub-host's home) and
 * writes the `map` file.
 */
enum vmem_layout_kind {
	VMEM_LAYOUT_FLAT,
	VMEM_LAYOUT_AUTO,
};

/*
 * One `subhost = URI START-END [OPTION=VALUE...]` line: the home of RAM
 * range [start, end).  The options (tls, tls-psk, tls-certificates,
 * tls-username) override the VM's keys of the same name for this
 * sub-host only.  A sub-host learned from QEMU has line 0 and no options.
 */
struct vmem_subhost {
	char *uri;
	uint64_t start;
	uint64_t end;
	unsigned int line;
	enum vmem_tls_mode opt_tls;	/* UNSET: the VM's */
	char *opt_psk, *opt_certs, *opt_user;	/* NULL: the VM's */
	/* What to connect with, set by vmem_vm_check_tls(); the strings
	 * are borrowed from this line or from the VM. */
	struct vmem_tls tls;
};

struct vmem_vm {
	char *name;
	unsigned int line;		/* line of the [section] header */

	char *memory_file;		/* required unless domain is set */
	uint64_t ram_size;		/* 0 until set or resolved */
	bool ram_size_set;		/* given in the file */
	char *backend;			/* a backend's name; default direct */
	uint64_t chunk_size;		/* default 64K; power of 2, 4K..16M */
	bool fetch_merge_off;		/* fetch-merge = off: one request per
					 * chunk, as the paper's methods send
					 * them; default on (false here) */
	uint64_t cache_size;		/* default 4M; 0 = no cache */
	uint64_t cache_ttl_ms;		/* default 100 */
	uint64_t timeout_ms;		/* default 2000; must be > 0 */
	uint64_t proc_refresh_ms;	/* proc-refresh: age at which the
					 * shadow /proc is rebuilt; default
					 * 1000; 0 = at every open of proc/ */
	uint64_t local_limit;		/* QEMU side: cap on main-host RAM;
					 * default (0 until resolved) = ram-size;
					 * vmemfs ignores it */
	bool local_limit_set;
	char *qmp;			/* the VM's QMP unix socket, or NULL;
					 * required by remote-paging */
	enum vmem_layout_kind layout;	/* default auto with qmp, else flat;
					 * auto needs qmp */
	char *domain;			/* a libvirt domain's name, instead of
					 * memory-file and qmp: both come from
					 * libvirt (vmemfs/qmp_libvirt.c); for
					 * QEMU, memory-file is the memdev's */
	char *libvirt;			/* libvirt URI; NULL = the default
					 * VMEM_DEFAULT_LIBVIRT */
	char *kernel_btf;		/* kernel-btf: a vmlinux with .BTF or
					 * raw BTF used instead of the guest's
					 * own; NULL = the guest's */
	char *kernel_map;		/* kernel-map: a System.map for kernels
					 * without kallsyms in VMCOREINFO */

	/* Lines of the keys that checks after parsing (vmem_vm_resolve,
	 * the QEMU glue) point at; 0 = not in the file.  The parser's own
	 * key_line[] covers every key, but lives only while parsing. */
	unsigned int memory_file_line;
	unsigned int ram_size_line;
	unsigned int local_limit_line;
	unsigned int kernel_btf_line;
	unsigned int kernel_map_line;

	/* TLS towards every sub-host (tls, tls-psk, tls-certificates,
	 * tls-username); a subhost line may override each. */
	enum vmem_tls_mode tls_mode;	/* UNSET: off for loopback and unix
					 * sockets, refused for others */
	char *tls_psk, *tls_certificates, *tls_username;
	unsigned int tls_line, tls_psk_line, tls_certs_line;

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
 * Finish the settings of @vm (from vmem_config_parse/load) against the
 * real memory file: ram-size defaults to the file's size; every subhost
 * range and local-limit must then lie inside it (with a ram-size given,
 * parsing checked that already).  The memory file must exist.  Errors
 * name the config path and line.
 */
int vmem_vm_resolve(struct vmem_vm *vm, const char *path,
		    char *err, size_t errlen);

/*
 * As vmem_vm_resolve(), for a VM that may not be started yet
 * (--check-config): a memory file that does not exist is no error but
 * returns 1 with a warning in @err.  A given ram-size is then still
 * checked, and the ranges and local-limit against it; without ram-size
 * those checks wait for the file.  Any other error returns -1.
 */
int vmem_vm_resolve_unstarted(struct vmem_vm *vm, const char *path,
			      char *err, size_t errlen);

/*
 * Decide TLS for every sub-host of @vm (sets each subhost's tls) and
 * check it; vmem_vm_resolve() calls it, and vmemfs again once it learned
 * sub-hosts from QEMU.  Refused, with the line at fault and the way out:
 * clear NBD to an address that is not loopback without an explicit
 * tls = off; an nbds:// URI with tls = off; TLS without credentials or
 * with both kinds; a credential file that is missing, or readable or
 * writable by group or others (the message gives its mode).
 */
int vmem_vm_check_tls(struct vmem_vm *vm, const char *path, char *err,
		      size_t errlen);

/* The value parsers and checks (vmem_parse_size(), vmem_uri_problem(),
 * vmem_format_size(), ...) are in config_values.h. */

const char *vmem_layout_name(enum vmem_layout_kind k);

/* Print the effective settings of @vm in config syntax (--check-config). */
void vmem_vm_print(const struct vmem_vm *vm, FILE *out);

#endif
