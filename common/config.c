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
	for (i = 0; i < vm->n_subhosts; i++)
		free(vm->subhosts[i].uri);
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

static int add_subhost(struct parser *ps, unsigned int line, char *val)
{
	struct vmem_vm *vm = ps->vm;
	struct vmem_subhost *sh;
	char *uri = val, *range;
	const char *why;
	uint64_t start, end;
	size_t i;
	int r;

	range = val + strcspn(val, " \t");
	if (*range) {
		*range++ = '\0';
		range = trim(range);
	}
	if (!*range || range[strcspn(range, " \t")])
		return perr(ps, line,
			    "subhost '%s%s%s' is not 'URI START-END' "
			    "(e.g. nbd://127.0.0.1:10809 1G-2G)",
			    uri, *range ? " " : "", range);
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
	vm->n_subhosts++;
	return 0;
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
	for (i = 0; i < vm->n_subhosts; i++) {
		char e[32];

		vmem_format_size(vm->subhosts[i].start, buf, sizeof(buf));
		vmem_format_size(vm->subhosts[i].end, e, sizeof(e));
		fprintf(out, "subhost     = %s %s-%s\n",
			vm->subhosts[i].uri, buf, e);
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
