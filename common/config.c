// SPDX-License-Identifier: MIT
/*
 * vmemtrans.conf parser.  The contract is in config.h; the user-facing
 * description is doc/vmemtrans.conf.5.
 *
 * libc only: the QEMU glue and the pager link this file as it is.
 *
 * The parser works on a private, writable copy of the text and cuts it
 * into lines in place, so raw values can be quoted in error messages
 * without copying them.  Every error is "PATH:LINE: message" and the
 * whole config is thrown away on the first one: a config that loads is
 * consistent, there is no partly loaded state for callers to trip over.
 */
#include "config.h"
#include "memunits.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE_SIZE	(1U << 20)

#define DEFAULT_CACHE_SIZE	(4ULL << 20)
#define DEFAULT_CACHE_TTL_MS	100
#define DEFAULT_PROC_REFRESH_MS	1000
#define DEFAULT_TIMEOUT_MS	2000

enum key {
	K_MEMORY_FILE,
	K_RAM_SIZE,
	K_BACKEND,
	K_CHUNK_SIZE,
	K_CACHE_SIZE,
	K_CACHE_TTL,
	K_TIMEOUT,
	K_SUBHOST,
	K_LOCAL_LIMIT,
	K_QMP,
	K_LAYOUT,
	K_KERNEL_BTF,
	K_KERNEL_MAP,
	K_PROC_REFRESH,
	K_TLS,
	K_TLS_PSK,
	K_TLS_CERTS,
	K_TLS_USER,
	K_FETCH_MERGE,
	K_DOMAIN,
	K_LIBVIRT,
	N_KEYS
};

static const char *const key_names[N_KEYS] = {
	[K_MEMORY_FILE] = "memory-file",
	[K_RAM_SIZE] = "ram-size",
	[K_BACKEND] = "backend",
	[K_CHUNK_SIZE] = "chunk-size",
	[K_CACHE_SIZE] = "cache-size",
	[K_CACHE_TTL] = "cache-ttl",
	[K_TIMEOUT] = "timeout",
	[K_SUBHOST] = "subhost",
	[K_LOCAL_LIMIT] = "local-limit",
	[K_QMP] = "qmp",
	[K_LAYOUT] = "layout",
	[K_KERNEL_BTF] = "kernel-btf",
	[K_KERNEL_MAP] = "kernel-map",
	[K_PROC_REFRESH] = "proc-refresh",
	[K_TLS] = "tls",
	[K_TLS_PSK] = "tls-psk",
	[K_TLS_CERTS] = "tls-certificates",
	[K_TLS_USER] = "tls-username",
	[K_FETCH_MERGE] = "fetch-merge",
	[K_DOMAIN] = "domain",
	[K_LIBVIRT] = "libvirt",
};

static void verr(char *err, size_t errlen, const char *path, unsigned int line,
		 const char *fmt, va_list ap)
{
	int n;

	if (!err || !errlen)
		return;
	if (!path)
		path = "(config)";
	if (line)
		n = snprintf(err, errlen, "%s:%u: ", path, line);
	else
		n = snprintf(err, errlen, "%s: ", path);
	if (n < 0 || (size_t)n >= errlen)
		return;
	vsnprintf(err + n, errlen - n, fmt, ap);
}

__attribute__((format(printf, 5, 6)))
static void seterr(char *err, size_t errlen, const char *path,
		   unsigned int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(err, errlen, path, line, fmt, ap);
	va_end(ap);
}

/* ---- names of the config's choices --------------------------------- */

const char *vmem_layout_name(enum vmem_layout_kind k)
{
	return k == VMEM_LAYOUT_AUTO ? "auto" : "flat";
}

/*
 * The backend called @name in vmem_backend_table, or NULL.  Without a
 * table (no backends linked in) *known is false and any name passes.
 */
static const struct vmem_backend_info *backend_info(const char *name,
						    bool *known)
{
	*known = vmem_backend_table != NULL;
	if (!*known)
		return NULL;
	for (size_t i = 0; vmem_backend_table[i]; i++)
		if (strcmp(vmem_backend_table[i]->name, name) == 0)
			return vmem_backend_table[i];
	return NULL;
}

/* "direct, remote-paging": the table's names, for messages. */
static void backend_list(char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; vmem_backend_table[i] && used < len; i++) {
		int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
				 vmem_backend_table[i]->name);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* ---- the parser ---------------------------------------------------- */

struct parser {
	const char *path;
	char *err;
	size_t errlen;
	struct vmem_config *cfg;
	struct vmem_vm *vm;		/* section being read, or NULL */
	unsigned int key_line[N_KEYS];	/* where each key of @vm was set */
	const char *raw[N_KEYS];	/* its value as written */
};

__attribute__((format(printf, 3, 4)))
static int perr(struct parser *ps, unsigned int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(ps->err, ps->errlen, ps->path, line, fmt, ap);
	va_end(ap);
	return -1;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\v' ||
	       *s == '\f')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
			 e[-1] == '\v' || e[-1] == '\f'))
		e--;
	*e = '\0';
	return s;
}

static void vm_free(struct vmem_vm *vm)
{
	size_t i;

	free(vm->name);
	free(vm->memory_file);
	free(vm->backend);
	free(vm->qmp);
	free(vm->domain);
	free(vm->libvirt);
	free(vm->kernel_btf);
	free(vm->kernel_map);
	free(vm->tls_psk);
	free(vm->tls_certificates);
	free(vm->tls_username);
	for (i = 0; i < vm->n_subhosts; i++) {
		free(vm->subhosts[i].uri);
		free(vm->subhosts[i].opt_psk);
		free(vm->subhosts[i].opt_certs);
		free(vm->subhosts[i].opt_user);
	}
	free(vm->subhosts);
}

/* A number-like value: how it is read, how its limit is written. */
struct value_kind {
	int (*scan)(const char *s, uint64_t *out);
	void (*format)(uint64_t v, char *buf, size_t len);
	const char *shape;		/* for "is not %s" */
};

static const struct value_kind size_kind = {
	vmem_scan_size, vmem_format_size, "a size (e.g. 4096, 64K, 0x10000)",
};

static const struct value_kind duration_kind = {
	vmem_scan_duration, vmem_format_duration, "a duration (e.g. 500ms, 2s)",
};

/* A value of @kind of at most @max; the message names the limit. */
static int kind_value(struct parser *ps, unsigned int line, const char *key,
		      const char *val, const struct value_kind *kind,
		      uint64_t max, uint64_t *out)
{
	char m[32];
	uint64_t v;
	int r = kind->scan(val, &v);

	*out = 0;		/* on error too: callers need not guess */
	if (r == VMEM_VAL_BAD)
		return perr(ps, line, "%s '%s' is not %s", key, val,
			    kind->shape);
	if (r == VMEM_VAL_OVERFLOW || v > max) {
		kind->format(max, m, sizeof(m));
		return perr(ps, line,
			    "%s '%s' is above the largest supported value %s",
			    key, val, m);
	}
	*out = v;
	return 0;
}

static int size_value(struct parser *ps, unsigned int line, const char *key,
		      const char *val, uint64_t max, uint64_t *out)
{
	return kind_value(ps, line, key, val, &size_kind, max, out);
}

/* Durations are at most VMEM_DURATION_MAX_MS. */
static int duration_value(struct parser *ps, unsigned int line,
			  const char *key, const char *val, uint64_t *out)
{
	return kind_value(ps, line, key, val, &duration_kind,
			  VMEM_DURATION_MAX_MS, out);
}

/* A size above zero, a multiple of the page size, at most VMEM_RAM_MAX. */
static int pages_value(struct parser *ps, unsigned int line, const char *key,
		       const char *val, uint64_t *out)
{
	uint64_t v;

	if (size_value(ps, line, key, val, VMEM_RAM_MAX, &v))
		return -1;
	if (!v)
		return perr(ps, line, "%s '%s' must be greater than zero", key,
			    val);
	if (v % VMEM_PAGE_SIZE)
		return perr(ps, line, "%s '%s' is not a multiple of 4K", key,
			    val);
	*out = v;
	return 0;
}

static int cmp_subhost(const void *a, const void *b)
{
	const struct vmem_subhost *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* tls = require|prefer|off, as a key or a subhost option. */
static int tls_mode_value(struct parser *ps, unsigned int line,
			  const char *val, enum vmem_tls_mode *out)
{
	if (strcmp(val, "require") == 0)
		*out = VMEM_TLS_REQUIRE;
	else if (strcmp(val, "prefer") == 0)
		*out = VMEM_TLS_PREFER;
	else if (strcmp(val, "off") == 0)
		*out = VMEM_TLS_OFF;
	else
		return perr(ps, line,
			    "tls '%s' is not one of: require, prefer, off", val);
	return 0;
}

/*
 * The value of tls-psk, tls-certificates or tls-username, as a key or a
 * subhost option, into *@out (replacing nothing: duplicates are refused
 * before).  Paths must be absolute: vmemfs runs from / as a daemon.
 */
static int tls_string_value(struct parser *ps, unsigned int line,
			    enum key k, const char *val, char **out)
{
	if (k != K_TLS_USER && val[0] != '/')
		return perr(ps, line, "%s '%s' is not an absolute path",
			    key_names[k], val);
	if (k == K_TLS_USER && val[strcspn(val, ":@/ \t")])
		return perr(ps, line,
			    "tls-username '%s' may not contain ':', '@', '/' or blanks",
			    val);
	*out = strdup(val);
	if (!*out)
		return perr(ps, line, "out of memory");
	return 0;
}

/* One OPTION=VALUE after a subhost's range. */
static int subhost_option(struct parser *ps, unsigned int line,
			  struct vmem_subhost *sh, char *opt)
{
	char *eq = strchr(opt, '='), **str;
	enum key k;

	if (!eq || eq == opt || !eq[1])
		return perr(ps, line,
			    "subhost option '%s' is not OPTION=VALUE "
			    "(tls, tls-psk, tls-certificates, tls-username)",
			    opt);
	*eq++ = '\0';
	if (strcmp(opt, "tls") == 0) {
		if (sh->opt_tls)
			return perr(ps, line, "subhost option tls given twice");
		return tls_mode_value(ps, line, eq, &sh->opt_tls);
	}
	if (strcmp(opt, "tls-psk") == 0) {
		k = K_TLS_PSK;
		str = &sh->opt_psk;
	} else if (strcmp(opt, "tls-certificates") == 0) {
		k = K_TLS_CERTS;
		str = &sh->opt_certs;
	} else if (strcmp(opt, "tls-username") == 0) {
		k = K_TLS_USER;
		str = &sh->opt_user;
	} else {
		return perr(ps, line,
			    "unknown subhost option '%s' (tls, tls-psk, tls-certificates, tls-username)",
			    opt);
	}
	if (*str)
		return perr(ps, line, "subhost option %s given twice", opt);
	return tls_string_value(ps, line, k, eq, str);
}

/* The subhost line after its options were read into @opts, which it
 * takes on success. */
static int add_subhost_range(struct parser *ps, unsigned int line,
			     const char *uri, const char *range,
			     const struct vmem_subhost *opts)
{
	struct vmem_vm *vm = ps->vm;
	struct vmem_subhost *sh;
	const char *why;
	uint64_t start, end;
	size_t i;
	int r;

	why = vmem_uri_problem(uri);
	if (why)
		return perr(ps, line, "subhost URI '%s' %s", uri, why);
	r = vmem_scan_range(range, &start, &end);
	if (r == VMEM_VAL_BAD)
		return perr(ps, line,
			    "subhost range '%s' is not START-END (e.g. 1G-2G)",
			    range);
	if (r == VMEM_VAL_OVERFLOW)
		why = vmem_range_problem(0, UINT64_MAX);
	else
		why = vmem_range_problem(start, end);
	if (why)
		return perr(ps, line, "subhost range '%s' %s", range, why);
	if (vm->n_subhosts >= VMEM_SUBHOSTS_MAX)
		return perr(ps, line,
			    "subhost '%s %s' is above the largest supported number of sub-hosts per VM, %d",
			    uri, range, VMEM_SUBHOSTS_MAX);
	for (i = 0; i < vm->n_subhosts; i++) {
		struct vmem_subhost *o = &vm->subhosts[i];
		char s[32], e[32];

		if (start < o->end && o->start < end) {
			vmem_format_size(o->start, s, sizeof(s));
			vmem_format_size(o->end, e, sizeof(e));
			return perr(ps, line,
				    "subhost range %s overlaps line %u (%s-%s)",
				    range, o->line, s, e);
		}
	}
	sh = realloc(vm->subhosts, (vm->n_subhosts + 1) * sizeof(*sh));
	if (!sh)
		return perr(ps, line, "out of memory");
	vm->subhosts = sh;
	sh += vm->n_subhosts;
	sh->uri = strdup(uri);
	if (!sh->uri)
		return perr(ps, line, "out of memory");
	sh->start = start;
	sh->end = end;
	sh->line = line;
	sh->opt_tls = opts->opt_tls;
	sh->opt_psk = opts->opt_psk;
	sh->opt_certs = opts->opt_certs;
	sh->opt_user = opts->opt_user;
	memset(&sh->tls, 0, sizeof(sh->tls));
	vm->n_subhosts++;
	return 0;
}

static int add_subhost(struct parser *ps, unsigned int line, char *val)
{
	struct vmem_subhost opts = { 0 };
	char *uri = val, *range, *rest;
	int r;

	range = val + strcspn(val, " \t");
	if (*range) {
		*range++ = '\0';
		range = trim(range);
	}
	rest = range + strcspn(range, " \t");
	if (*rest) {
		*rest++ = '\0';
		rest = trim(rest);
	}
	/* Options are OPTION=VALUE; anything else is a malformed line. */
	if (!*range || (*rest && !strchr(rest, '=')))
		return perr(ps, line,
			    "subhost '%s%s%s%s%s' is not 'URI START-END [OPTION=VALUE...]' "
			    "(e.g. nbd://127.0.0.1:10809 1G-2G)",
			    uri, *range ? " " : "", range, *rest ? " " : "",
			    rest);
	while (*rest) {
		char *opt = rest;

		rest += strcspn(rest, " \t");
		if (*rest) {
			*rest++ = '\0';
			rest = trim(rest);
		}
		if (subhost_option(ps, line, &opts, opt)) {
			free(opts.opt_psk);
			free(opts.opt_certs);
			free(opts.opt_user);
			return -1;
		}
	}
	r = add_subhost_range(ps, line, uri, range, &opts);
	if (r) {
		free(opts.opt_psk);
		free(opts.opt_certs);
		free(opts.opt_user);
	}
	return r;
}

/*
 * A domain name as we take it: it becomes a mount point under
 * /run/vmemtrans and a systemd instance, so no '/' and no blanks.
 */
static bool valid_domain_name(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 200 || s[0] == '.' || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-+", *s))
			return false;
	return true;
}

static int set_key(struct parser *ps, unsigned int line, enum key k,
		   char *val)
{
	struct vmem_vm *vm = ps->vm;
	const char *key = key_names[k];
	uint64_t v;

	switch (k) {
	case K_MEMORY_FILE:
		vm->memory_file = strdup(val);
		if (!vm->memory_file)
			return perr(ps, line, "out of memory");
		vm->memory_file_line = line;
		return 0;
	case K_RAM_SIZE:
		if (pages_value(ps, line, key, val, &v))
			return -1;
		vm->ram_size = v;
		vm->ram_size_set = true;
		vm->ram_size_line = line;
		return 0;
	case K_BACKEND:
	{
		char list[256];
		bool known;
		char *name;

		if (!backend_info(val, &known) && known) {
			backend_list(list, sizeof(list));
			return perr(ps, line, "backend '%s' is not one of: %s",
				    val, list);
		}
		name = strdup(val);
		if (!name)
			return perr(ps, line, "out of memory");
		free(vm->backend);
		vm->backend = name;
		return 0;
	}
	case K_CHUNK_SIZE:
		/* Too large for 64 bits is outside 4K..16M as well: the one
		 * message below names the limits for both. */
		if (vmem_scan_size(val, &v) == VMEM_VAL_OVERFLOW)
			v = 0;
		else if (size_value(ps, line, key, val, UINT64_MAX, &v))
			return -1;
		if (!vmem_chunk_size_ok(v))
			return perr(ps, line,
				    "chunk-size '%s' is not a power of two between 4K and 16M",
				    val);
		vm->chunk_size = v;
		return 0;
	case K_CACHE_SIZE:
		return size_value(ps, line, key, val, VMEM_RAM_MAX,
				  &vm->cache_size);
	case K_CACHE_TTL:
		return duration_value(ps, line, key, val, &vm->cache_ttl_ms);
	case K_PROC_REFRESH:
		return duration_value(ps, line, key, val, &vm->proc_refresh_ms);
	case K_TIMEOUT:
		if (duration_value(ps, line, key, val, &v))
			return -1;
		if (!v)
			return perr(ps, line,
				    "timeout '%s' must be greater than zero",
				    val);
		vm->timeout_ms = v;
		return 0;
	case K_SUBHOST:
		return add_subhost(ps, line, val);
	case K_LOCAL_LIMIT:
		if (pages_value(ps, line, key, val, &v))
			return -1;
		vm->local_limit = v;
		vm->local_limit_set = true;
		vm->local_limit_line = line;
		return 0;
	case K_FETCH_MERGE:
		if (strcmp(val, "on") == 0)
			vm->fetch_merge_off = false;
		else if (strcmp(val, "off") == 0)
			vm->fetch_merge_off = true;
		else
			return perr(ps, line,
				    "fetch-merge '%s' is not one of: on, off", val);
		return 0;
	case K_LAYOUT:
		if (strcmp(val, "flat") == 0)
			vm->layout = VMEM_LAYOUT_FLAT;
		else if (strcmp(val, "auto") == 0)
			vm->layout = VMEM_LAYOUT_AUTO;
		else
			return perr(ps, line,
				    "layout '%s' is not one of: flat, auto", val);
		return 0;
	case K_QMP:
		if (val[0] != '/')
			return perr(ps, line,
				    "qmp '%s' is not an absolute path to a unix socket",
				    val);
		vm->qmp = strdup(val);
		if (!vm->qmp)
			return perr(ps, line, "out of memory");
		return 0;
	case K_DOMAIN:
	case K_LIBVIRT:
		if (k == K_DOMAIN && !valid_domain_name(val))
			return perr(ps, line, "domain '%s' is not a libvirt "
				    "domain name (letters, digits, '_', '.', "
				    "'-', '+')", val);
		if (k == K_DOMAIN)
			vm->domain = strdup(val);
		else
			vm->libvirt = strdup(val);
		if (!(k == K_DOMAIN ? vm->domain : vm->libvirt))
			return perr(ps, line, "out of memory");
		return 0;
	case K_KERNEL_BTF:
	case K_KERNEL_MAP:
		/* Absolute: vmemfs runs from / once it is a daemon. */
		if (val[0] != '/')
			return perr(ps, line, "%s '%s' is not an absolute path",
				    key, val);
		if (k == K_KERNEL_BTF) {
			vm->kernel_btf = strdup(val);
			vm->kernel_btf_line = line;
		} else {
			vm->kernel_map = strdup(val);
			vm->kernel_map_line = line;
		}
		if (!(k == K_KERNEL_BTF ? vm->kernel_btf : vm->kernel_map))
			return perr(ps, line, "out of memory");
		return 0;
	case K_TLS:
		if (tls_mode_value(ps, line, val, &vm->tls_mode))
			return -1;
		vm->tls_line = line;
		return 0;
	case K_TLS_PSK:
		vm->tls_psk_line = line;
		return tls_string_value(ps, line, k, val, &vm->tls_psk);
	case K_TLS_CERTS:
		vm->tls_certs_line = line;
		return tls_string_value(ps, line, k, val,
					&vm->tls_certificates);
	case K_TLS_USER:
		return tls_string_value(ps, line, k, val, &vm->tls_username);
	case N_KEYS:
		break;
	}
	return perr(ps, line, "internal error: key %d", (int)k);
}

/*
 * Do the sub-host ranges and local-limit fit in @ram?  Checked once: at
 * parse time when ram-size is given, else by resolve() against the size
 * of the memory file.  @ll_text is local-limit as the message quotes it.
 */
static int fits_ram(const struct vmem_vm *vm, uint64_t ram,
		    const char *ll_text, const char *path, char *err,
		    size_t errlen)
{
	const char *from_file = vm->ram_size_set ?
				"" : " (the size of memory-file)";
	char a[32], b[32], r[32];
	size_t i;

	vmem_format_size(ram, r, sizeof(r));
	if (vm->local_limit_set && vm->local_limit > ram) {
		seterr(err, errlen, path, vm->local_limit_line,
		       "local-limit '%s' is larger than ram-size %s%s", ll_text,
		       r, from_file);
		return -1;
	}
	for (i = 0; i < vm->n_subhosts; i++) {
		const struct vmem_subhost *sh = &vm->subhosts[i];

		if (sh->end <= ram)
			continue;
		vmem_format_size(sh->start, a, sizeof(a));
		vmem_format_size(sh->end, b, sizeof(b));
		seterr(err, errlen, path, sh->line,
		       "subhost range %s-%s ends beyond ram-size %s%s",
		       a, b, r, from_file);
		return -1;
	}
	return 0;
}

/* Checks that involve several keys, made once the section is complete. */
static int finish_vm(struct parser *ps)
{
	struct vmem_vm *vm = ps->vm;
	const struct vmem_backend_info *info;
	bool known;
	char a[32];

	if (!vm)
		return 0;
	ps->vm = NULL;
	if (vm->domain && (vm->memory_file || vm->qmp))
		return perr(ps, ps->key_line[vm->memory_file ? K_MEMORY_FILE :
					     K_QMP],
			    "VM '%s' is libvirt domain '%s': its memory-file "
			    "and qmp come from libvirt, drop this line",
			    vm->name, vm->domain);
	if (vm->libvirt && !vm->domain)
		return perr(ps, ps->key_line[K_LIBVIRT],
			    "libvirt = URI needs domain = NAME");
	if (!vm->memory_file && !vm->domain)
		return perr(ps, vm->line,
			    "VM '%s' has no memory-file (it is required, or "
			    "domain = NAME for a libvirt domain)", vm->name);
	if (!ps->key_line[K_LAYOUT])
		vm->layout = vmem_vm_has_qmp(vm) ? VMEM_LAYOUT_AUTO :
						   VMEM_LAYOUT_FLAT;
	else if (vm->layout == VMEM_LAYOUT_AUTO && !vmem_vm_has_qmp(vm))
		return perr(ps, ps->key_line[K_LAYOUT],
			    "layout 'auto' needs qmp = PATH (QEMU's memory map comes from it)");
	info = backend_info(vm->backend, &known);
	if (info && info->needs_qmp && !vmem_vm_has_qmp(vm))
		return perr(ps, ps->key_line[K_BACKEND],
			    "backend '%s' needs qmp = PATH (the VM's QMP socket)",
			    vm->backend);
	if (!ps->key_line[K_CACHE_SIZE]) {
		/*
		 * The default cache must hold at least one chunk, or large
		 * chunk sizes (the interesting end of a chunk-size sweep)
		 * would be refused for a key the user never wrote.
		 */
		if (vm->cache_size < vm->chunk_size)
			vm->cache_size = vm->chunk_size;
	} else if (vm->cache_size && vm->cache_size < vm->chunk_size) {
		vmem_format_size(vm->chunk_size, a, sizeof(a));
		return perr(ps, ps->key_line[K_CACHE_SIZE],
			    "cache-size '%s' is smaller than chunk-size %s "
			    "(use 0 for no cache, or at least %s)",
			    ps->raw[K_CACHE_SIZE], a, a);
	}
	if (vm->ram_size_set &&
	    fits_ram(vm, vm->ram_size, ps->raw[K_LOCAL_LIMIT], ps->path,
		     ps->err, ps->errlen))
		return -1;
	if (vm->n_subhosts > 1)
		qsort(vm->subhosts, vm->n_subhosts, sizeof(*vm->subhosts),
		      cmp_subhost);
	return 0;
}

static int valid_section_name(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' ||
		      *s == '-'))
			return 0;
	}
	return 1;
}

static int start_section(struct parser *ps, unsigned int line, char *s)
{
	struct vmem_config *cfg = ps->cfg;
	struct vmem_vm *vms, *vm;
	char *close = strchr(s, ']');
	char *name, *rest;
	size_t i;

	if (!close)
		return perr(ps, line, "section header '%s' lacks a closing ']'",
			    s);
	*close = '\0';
	name = trim(s + 1);
	rest = trim(close + 1);
	if (*rest)
		return perr(ps, line, "unexpected '%s' after section header [%s]",
			    rest, name);
	if (!*name)
		return perr(ps, line, "empty section name '[]'");
	if (!valid_section_name(name))
		return perr(ps, line,
			    "section name '%s' may only contain letters, digits, '_', '.' and '-'",
			    name);
	if (finish_vm(ps))
		return -1;
	for (i = 0; i < cfg->n_vms; i++) {
		if (strcmp(cfg->vms[i].name, name) == 0)
			return perr(ps, line,
				    "duplicate section '%s' (first on line %u)",
				    name, cfg->vms[i].line);
	}
	vms = realloc(cfg->vms, (cfg->n_vms + 1) * sizeof(*vms));
	if (!vms)
		return perr(ps, line, "out of memory");
	cfg->vms = vms;
	vm = &vms[cfg->n_vms];
	memset(vm, 0, sizeof(*vm));
	vm->name = strdup(name);
	if (!vm->name)
		return perr(ps, line, "out of memory");
	cfg->n_vms++;
	vm->line = line;
	vm->backend = strdup(VMEM_DEFAULT_BACKEND);
	if (!vm->backend)
		return perr(ps, line, "out of memory");
	vm->chunk_size = VMEM_CHUNK_DEFAULT;
	vm->cache_size = DEFAULT_CACHE_SIZE;
	vm->cache_ttl_ms = DEFAULT_CACHE_TTL_MS;
	vm->timeout_ms = DEFAULT_TIMEOUT_MS;
	vm->proc_refresh_ms = DEFAULT_PROC_REFRESH_MS;
	ps->vm = vm;
	memset(ps->key_line, 0, sizeof(ps->key_line));
	memset(ps->raw, 0, sizeof(ps->raw));
	return 0;
}

static int parse_line(struct parser *ps, unsigned int line, char *s)
{
	char *eq, *key, *val;
	int k;

	/* A comment starts at the first # or ; wherever it is. */
	s[strcspn(s, "#;")] = '\0';
	s = trim(s);
	if (!*s)
		return 0;
	if (*s == '[')
		return start_section(ps, line, s);
	eq = strchr(s, '=');
	if (!eq)
		return perr(ps, line,
			    "expected 'key = value' or '[section]', found '%s'",
			    s);
	*eq = '\0';
	key = trim(s);
	val = trim(eq + 1);
	if (!*key)
		return perr(ps, line, "missing key before '= %s'", val);
	if (!ps->vm)
		return perr(ps, line,
			    "key '%s' outside any [section]; start with [vmname]",
			    key);
	for (k = 0; k < N_KEYS; k++)
		if (strcmp(key, key_names[k]) == 0)
			break;
	if (k == N_KEYS)
		return perr(ps, line, "unknown key '%s'", key);
	if (ps->key_line[k] && k != K_SUBHOST)
		return perr(ps, line,
			    "duplicate key '%s' (already set on line %u)",
			    key, ps->key_line[k]);
	if (!*val)
		return perr(ps, line, "key '%s' has no value", key);
	if (set_key(ps, line, k, val))
		return -1;
	ps->key_line[k] = line;
	ps->raw[k] = val;
	return 0;
}

void vmem_config_free(struct vmem_config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	for (i = 0; i < cfg->n_vms; i++)
		vm_free(&cfg->vms[i]);
	free(cfg->vms);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

int vmem_config_parse(const char *text, const char *path,
		      struct vmem_config *cfg, char *err, size_t errlen)
{
	struct parser ps = {
		.path = path ? path : "(config)",
		.err = err,
		.errlen = errlen,
		.cfg = cfg,
	};
	unsigned int line = 1;
	char *copy, *p, *nl;
	int ret = 0;

	memset(cfg, 0, sizeof(*cfg));
	if (err && errlen)
		err[0] = '\0';
	copy = strdup(text ? text : "");
	cfg->path = strdup(ps.path);
	if (!copy || !cfg->path) {
		free(copy);
		vmem_config_free(cfg);
		seterr(err, errlen, ps.path, 0, "out of memory");
		return -1;
	}
	for (p = copy; ; p = nl + 1, line++) {
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (parse_line(&ps, line, p)) {
			ret = -1;
			break;
		}
		if (!nl)
			break;
	}
	if (!ret && finish_vm(&ps))
		ret = -1;
	free(copy);
	if (ret)
		vmem_config_free(cfg);
	return ret;
}

int vmem_config_load(const char *path, struct vmem_config *cfg,
		     char *err, size_t errlen)
{
	size_t len = 0, cap = 4096;
	char *buf, *nul;
	int fd, ret, e;

	memset(cfg, 0, sizeof(*cfg));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		seterr(err, errlen, path, 0, "%s", strerror(errno));
		return -1;
	}
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		seterr(err, errlen, path, 0, "out of memory");
		return -1;
	}
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			char *nb;

			/* Read one byte past the limit to detect it. */
			if (len > MAX_FILE_SIZE)
				break;
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				e = ENOMEM;
				goto fail;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			goto fail;
		}
		if (n == 0)
			break;
		len += n;
	}
	close(fd);
	if (len > MAX_FILE_SIZE) {
		free(buf);
		seterr(err, errlen, path, 0,
		       "file is larger than 1 MiB; refusing to read it");
		return -1;
	}
	buf[len] = '\0';
	nul = memchr(buf, '\0', len);
	if (nul) {
		unsigned int line = 1;
		char *q;

		for (q = buf; q < nul; q++)
			line += *q == '\n';
		free(buf);
		seterr(err, errlen, path, line,
		       "contains a NUL byte; not a text file");
		return -1;
	}
	ret = vmem_config_parse(buf, path, cfg, err, errlen);
	free(buf);
	return ret;

fail:
	close(fd);
	free(buf);
	seterr(err, errlen, path, 0, "%s", strerror(e));
	return -1;
}

struct vmem_vm *vmem_config_find(struct vmem_config *cfg, const char *name,
				 char *err, size_t errlen)
{
	char list[512];
	size_t i, used = 0;

	if (name) {
		for (i = 0; i < cfg->n_vms; i++)
			if (strcmp(cfg->vms[i].name, name) == 0)
				return &cfg->vms[i];
	} else if (cfg->n_vms == 1) {
		return &cfg->vms[0];
	}
	if (!cfg->n_vms) {
		if (name)
			seterr(err, errlen, cfg->path, 0,
			       "no VM named '%s' (have: none)", name);
		else
			seterr(err, errlen, cfg->path, 0, "no VM sections");
		return NULL;
	}
	list[0] = '\0';
	for (i = 0; i < cfg->n_vms && used < sizeof(list); i++) {
		int n = snprintf(list + used, sizeof(list) - used, "%s%s",
				 i ? ", " : "", cfg->vms[i].name);

		if (n < 0)
			break;
		used += n;
	}
	if (name)
		seterr(err, errlen, cfg->path, 0, "no VM named '%s' (have: %s)",
		       name, list);
	else
		seterr(err, errlen, cfg->path, 0,
		       "several VMs (%s): choose one with --vm", list);
	return NULL;
}

/* ---- TLS towards the sub-hosts ---------------------------------------- */

/*
 * A credential must be the operator's alone, as ssh wants of a private
 * key: a key others can read is no secret, one others can write lets
 * them choose it.  @what is the key's name for the message.
 */
static int secret_file_ok(const char *file, const char *what,
			  const char *path, unsigned int line, char *err,
			  size_t errlen)
{
	struct stat st;

	if (stat(file, &st) < 0) {
		seterr(err, errlen, path, line, "%s '%s': %s", what, file,
		       strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(err, errlen, path, line, "%s '%s' is not a regular file",
		       what, file);
		return -1;
	}
	if (st.st_mode & 077) {
		seterr(err, errlen, path, line,
		       "%s '%s' has mode %04o: group or others may read or write it; "
		       "refusing it (chmod 600 '%s')", what, file,
		       (unsigned int)(st.st_mode & 07777), file);
		return -1;
	}
	return 0;
}

/* tls-certificates = DIR: libnbd's layout; the client key if any is a
 * secret, the CA certificate is needed to trust the server. */
static int cert_dir_ok(const char *dir, const char *path, unsigned int line,
		       char *err, size_t errlen)
{
	char f[4096];
	struct stat st;

	if (stat(dir, &st) < 0) {
		seterr(err, errlen, path, line, "tls-certificates '%s': %s",
		       dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		seterr(err, errlen, path, line,
		       "tls-certificates '%s' is not a directory", dir);
		return -1;
	}
	snprintf(f, sizeof(f), "%s/ca-cert.pem", dir);
	if (access(f, R_OK) < 0) {
		seterr(err, errlen, path, line,
		       "tls-certificates '%s' has no readable ca-cert.pem "
		       "(the CA that signed the sub-host's certificate): %s",
		       dir, strerror(errno));
		return -1;
	}
	snprintf(f, sizeof(f), "%s/client-key.pem", dir);
	if (access(f, F_OK) == 0)
		return secret_file_ok(f, "tls-certificates key", path, line,
				      err, errlen);
	return 0;
}

static int subhost_tls(struct vmem_vm *vm, struct vmem_subhost *sh,
		       const char *path, char *err, size_t errlen)
{
	/* Learned from QEMU: no line of its own, the section's instead. */
	unsigned int line = sh->line ? sh->line : vm->line;
	const char *from = sh->line ? "" : " (learned from QEMU)";
	struct vmem_tls t = { 0 };
	unsigned int mode_line, cred_line;

	t.mode = sh->opt_tls ? sh->opt_tls : vm->tls_mode;
	mode_line = sh->opt_tls ? sh->line : vm->tls_line;
	/* A subhost's own credential replaces the VM's of either kind. */
	if (sh->opt_psk || sh->opt_certs) {
		t.psk_file = sh->opt_psk;
		t.certificates = sh->opt_certs;
		cred_line = sh->line;
	} else {
		t.psk_file = vm->tls_psk;
		t.certificates = vm->tls_certificates;
		cred_line = vm->tls_psk ? vm->tls_psk_line : vm->tls_certs_line;
	}
	t.username = sh->opt_user ? sh->opt_user : vm->tls_username;

	if (vmem_uri_is_tls(sh->uri)) {
		if (t.mode == VMEM_TLS_OFF) {
			seterr(err, errlen, path, mode_line ? mode_line : line,
			       "tls = off, but subhost URI '%s'%s is nbds:// (TLS); "
			       "write nbd:// for clear NBD, or drop tls = off",
			       sh->uri, from);
			return -1;
		}
		t.mode = VMEM_TLS_REQUIRE;	/* what libnbd does for nbds */
	} else if (t.mode == VMEM_TLS_UNSET) {
		if (!vmem_uri_is_loopback(sh->uri)) {
			seterr(err, errlen, path, line,
			       "subhost URI '%s'%s would send guest memory in clear NBD "
			       "to an address that is not loopback: use nbds:// with "
			       "tls-psk = FILE (or tls-certificates = DIR), or allow "
			       "clear NBD explicitly with tls = off", sh->uri, from);
			return -1;
		}
		t.mode = VMEM_TLS_OFF;
	}
	if (t.mode == VMEM_TLS_OFF) {
		sh->tls = (struct vmem_tls){ .mode = VMEM_TLS_OFF };
		return 0;
	}
	if (t.psk_file && t.certificates) {
		seterr(err, errlen, path, line,
		       "subhost URI '%s'%s has both tls-psk and tls-certificates; "
		       "choose one", sh->uri, from);
		return -1;
	}
	if (!t.psk_file && !t.certificates) {
		seterr(err, errlen, path, mode_line ? mode_line : line,
		       "subhost URI '%s'%s uses TLS (tls = %s) without credentials: "
		       "set tls-psk = FILE or tls-certificates = DIR",
		       sh->uri, from, vmem_tls_mode_name(t.mode));
		return -1;
	}
	if (t.psk_file &&
	    secret_file_ok(t.psk_file, "tls-psk", path, cred_line, err, errlen))
		return -1;
	if (t.certificates &&
	    cert_dir_ok(t.certificates, path, cred_line, err, errlen))
		return -1;
	sh->tls = t;
	return 0;
}

int vmem_vm_check_tls(struct vmem_vm *vm, const char *path, char *err,
		      size_t errlen)
{
	for (size_t i = 0; i < vm->n_subhosts; i++)
		if (subhost_tls(vm, &vm->subhosts[i], path, err, errlen))
			return -1;
	return 0;
}

/*
 * @unstarted: a memory file that does not exist is the VM not started yet
 * (QEMU creates the file), not an error: see vmem_vm_resolve_unstarted().
 */
static int resolve(struct vmem_vm *vm, const char *path, bool unstarted,
		   char *err, size_t errlen)
{
	unsigned int mf_line = vm->memory_file_line;
	char ll[32];
	struct stat st;
	bool missing = false;
	uint64_t ram;

	/* First: it needs no memory file, and a VM not started yet still
	 * must not be allowed to send its memory in clear. */
	if (vmem_vm_check_tls(vm, path, err, errlen))
		return -1;
	if (!vm->memory_file) {
		/* A domain whose file libvirt has not made (or we not
		 * asked for) yet: like a file that does not exist. */
		if (!unstarted) {
			seterr(err, errlen, path, vm->line, "domain '%s': its "
			       "memory file is not known yet", vm->domain);
			return -1;
		}
		if (vm->ram_size_set && !vm->local_limit_set)
			vm->local_limit = vm->ram_size;
		seterr(err, errlen, path, vm->line, "domain '%s': the memory "
		       "file is libvirt's, found over QMP when the domain "
		       "runs%s", vm->domain, vm->ram_size_set ? "" :
		       "; ram-size is its size");
		return 1;
	}
	if (stat(vm->memory_file, &st) < 0) {
		if (!unstarted || errno != ENOENT) {
			seterr(err, errlen, path, mf_line,
			       "memory-file '%s': %s", vm->memory_file,
			       strerror(errno));
			return -1;
		}
		missing = true;
		/* Without ram-size the size is the file's: unknown yet. */
		if (!vm->ram_size_set)
			goto warn;
	} else if (!S_ISREG(st.st_mode)) {
		seterr(err, errlen, path, mf_line,
		       "memory-file '%s' is not a regular file",
		       vm->memory_file);
		return -1;
	}
	/* Optional files for the guest kernel: a typo should fail the
	 * mount, not show up later as a kernel that is never recognised. */
	if (vm->kernel_btf && access(vm->kernel_btf, R_OK) < 0) {
		seterr(err, errlen, path, vm->kernel_btf_line, "kernel-btf '%s': %s",
		       vm->kernel_btf, strerror(errno));
		return -1;
	}
	if (vm->kernel_map && access(vm->kernel_map, R_OK) < 0) {
		seterr(err, errlen, path, vm->kernel_map_line, "kernel-map '%s': %s",
		       vm->kernel_map, strerror(errno));
		return -1;
	}
	if (vm->ram_size_set) {
		/* Parsing checked it, and the ranges and local-limit. */
		ram = vm->ram_size;
	} else {
		ram = st.st_size;
		if (!ram) {
			seterr(err, errlen, path, mf_line,
			       "memory-file '%s' is empty and no ram-size is given",
			       vm->memory_file);
			return -1;
		}
		if (ram % VMEM_PAGE_SIZE) {
			seterr(err, errlen, path, mf_line,
			       "memory-file '%s' size %" PRIu64
			       " is not a multiple of 4K; set ram-size",
			       vm->memory_file, ram);
			return -1;
		}
		if (ram > VMEM_RAM_MAX) {
			seterr(err, errlen, path, mf_line,
			       "memory-file '%s' size %" PRIu64
			       " is above the largest supported ram-size 4096T",
			       vm->memory_file, ram);
			return -1;
		}
		vmem_format_size(vm->local_limit, ll, sizeof(ll));
		if (fits_ram(vm, ram, ll, path, err, errlen))
			return -1;
	}
	/* All checks passed: only now change the VM. */
	vm->ram_size = ram;
	if (!vm->local_limit_set)
		vm->local_limit = ram;
	if (!missing)
		return 0;
warn:
	seterr(err, errlen, path, mf_line,
	       "memory-file '%s' does not exist yet (VM not started?); %s",
	       vm->memory_file, vm->ram_size_set ?
	       "checked against ram-size" :
	       "ram-size is its size, so ranges are checked when mounting");
	return 1;
}

int vmem_vm_resolve(struct vmem_vm *vm, const char *path,
		    char *err, size_t errlen)
{
	return resolve(vm, path, false, err, errlen);
}

int vmem_vm_resolve_unstarted(struct vmem_vm *vm, const char *path,
			      char *err, size_t errlen)
{
	return resolve(vm, path, true, err, errlen);
}

void vmem_vm_print(const struct vmem_vm *vm, FILE *out)
{
	char buf[32];
	size_t i;

	fprintf(out, "[%s]\n", vm->name ? vm->name : "");
	if (vm->domain) {
		fprintf(out, "domain      = %s\n", vm->domain);
		fprintf(out, "libvirt     = %s\n", vm->libvirt ? vm->libvirt :
			VMEM_DEFAULT_LIBVIRT);
	}
	if (vm->memory_file)
		fprintf(out, "memory-file = %s\n", vm->memory_file);
	else if (vm->domain)
		fprintf(out, "# memory-file: libvirt's, found when the domain runs\n");
	else
		fprintf(out, "# memory-file is not set (required)\n");
	if (vm->ram_size) {
		vmem_format_size(vm->ram_size, buf, sizeof(buf));
		fprintf(out, "ram-size    = %s\n", buf);
	} else {
		fprintf(out, "# ram-size: the size of memory-file\n");
	}
	fprintf(out, "backend     = %s\n", vm->backend);
	vmem_format_size(vm->chunk_size, buf, sizeof(buf));
	fprintf(out, "chunk-size  = %s\n", buf);
	vmem_format_size(vm->cache_size, buf, sizeof(buf));
	fprintf(out, "cache-size  = %s\n", buf);
	vmem_format_duration(vm->cache_ttl_ms, buf, sizeof(buf));
	fprintf(out, "cache-ttl   = %s\n", buf);
	vmem_format_duration(vm->timeout_ms, buf, sizeof(buf));
	fprintf(out, "timeout     = %s\n", buf);
	if (vm->proc_refresh_ms != DEFAULT_PROC_REFRESH_MS) {
		vmem_format_duration(vm->proc_refresh_ms, buf, sizeof(buf));
		fprintf(out, "proc-refresh = %s\n", buf);
	}
	if (vm->tls_mode)
		fprintf(out, "tls         = %s\n", vmem_tls_mode_name(vm->tls_mode));
	if (vm->tls_psk)
		fprintf(out, "tls-psk     = %s\n", vm->tls_psk);
	if (vm->tls_certificates)
		fprintf(out, "tls-certificates = %s\n", vm->tls_certificates);
	if (vm->tls_username)
		fprintf(out, "tls-username = %s\n", vm->tls_username);
	if (vm->fetch_merge_off)
		fprintf(out, "fetch-merge = off\n");
	for (i = 0; i < vm->n_subhosts; i++) {
		const struct vmem_subhost *sh = &vm->subhosts[i];
		char e[32];

		vmem_format_size(sh->start, buf, sizeof(buf));
		vmem_format_size(sh->end, e, sizeof(e));
		fprintf(out, "subhost     = %s %s-%s", sh->uri, buf, e);
		if (sh->opt_tls)
			fprintf(out, " tls=%s", vmem_tls_mode_name(sh->opt_tls));
		if (sh->opt_psk)
			fprintf(out, " tls-psk=%s", sh->opt_psk);
		if (sh->opt_certs)
			fprintf(out, " tls-certificates=%s", sh->opt_certs);
		if (sh->opt_user)
			fprintf(out, " tls-username=%s", sh->opt_user);
		/* What resolving decided, for the operator to see. */
		if (sh->tls.mode)
			fprintf(out, "  # TLS %s%s", vmem_tls_mode_name(sh->tls.mode),
				sh->tls.mode == VMEM_TLS_OFF ? " (clear NBD)" :
				sh->tls.psk_file ? ", PSK" : ", X.509");
		fputc('\n', out);
	}
	if (vm->local_limit) {
		vmem_format_size(vm->local_limit, buf, sizeof(buf));
		fprintf(out, "local-limit = %s\n", buf);
	} else {
		fprintf(out, "# local-limit: ram-size\n");
	}
	if (vm->qmp)
		fprintf(out, "qmp         = %s\n", vm->qmp);
	fprintf(out, "layout      = %s\n", vmem_layout_name(vm->layout));
	if (vm->kernel_btf)
		fprintf(out, "kernel-btf  = %s\n", vm->kernel_btf);
	if (vm->kernel_map)
		fprintf(out, "kernel-map  = %s\n", vm->kernel_map);
}
