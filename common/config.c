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

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE_SZ		4096ULL
#define CHUNK_MIN	(4ULL << 10)
#define CHUNK_MAX	(16ULL << 20)
#define MAX_FILE_SIZE	(1U << 20)

#define DEFAULT_CHUNK_SIZE	(64ULL << 10)
#define DEFAULT_CACHE_SIZE	(4ULL << 20)
#define DEFAULT_CACHE_TTL_MS	100
#define DEFAULT_TIMEOUT_MS	2000

/* Internal parse results; the public parsers fold them into -1. */
enum {
	VAL_OK = 0,
	VAL_BAD = -1,		/* not a number of the expected shape */
	VAL_OVERFLOW = -2,	/* does not fit in 64 bits */
	VAL_EMPTY_RANGE = -3,	/* START >= END */
};

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

/* ---- value parsers ------------------------------------------------- */

/*
 * Digits of a decimal or 0x-hex number.  Own loop rather than strtoull:
 * strtoull accepts signs and leading blanks and folds overflow into
 * ULLONG_MAX, none of which a config value should get away with.
 * Garbage wins over overflow so "99999999999999999999zz" is reported as
 * malformed, not as too large.
 */
static int parse_number(const char *s, const char **endp, uint64_t *out)
{
	unsigned int base = 10;
	uint64_t v = 0;
	bool overflow = false;
	const char *p = s;
	const char *digits;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	digits = p;
	for (;; p++) {
		unsigned int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			overflow = true;
		else
			v = v * base + d;
	}
	if (p == digits)
		return VAL_BAD;
	*endp = p;
	*out = v;
	return overflow ? VAL_OVERFLOW : VAL_OK;
}

static int size_parse(const char *s, uint64_t *out)
{
	const char *p;
	uint64_t v;
	unsigned int shift = 0;
	int r;

	r = parse_number(s, &p, &v);
	if (r == VAL_BAD)
		return r;
	switch (*p) {
	case 'K': case 'k':
		shift = 10;
		break;
	case 'M': case 'm':
		shift = 20;
		break;
	case 'G': case 'g':
		shift = 30;
		break;
	case 'T': case 't':
		shift = 40;
		break;
	}
	if (shift)
		p++;
	if (*p)
		return VAL_BAD;
	if (r == VAL_OVERFLOW || (shift && v > (UINT64_MAX >> shift)))
		return VAL_OVERFLOW;
	*out = v << shift;
	return VAL_OK;
}

static int range_parse(const char *s, uint64_t *start, uint64_t *end)
{
	const char *dash = strchr(s, '-');
	char first[64];
	uint64_t a, b;
	size_t n;
	int r1, r2;

	if (!dash || (size_t)(dash - s) >= sizeof(first))
		return VAL_BAD;
	n = dash - s;
	memcpy(first, s, n);
	first[n] = '\0';
	r1 = size_parse(first, &a);
	r2 = size_parse(dash + 1, &b);
	if (r1 == VAL_BAD || r2 == VAL_BAD)
		return VAL_BAD;
	if (r1 || r2)
		return VAL_OVERFLOW;
	if (a >= b)
		return VAL_EMPTY_RANGE;
	*start = a;
	*end = b;
	return VAL_OK;
}

static int duration_parse(const char *s, uint64_t *out_ms)
{
	const char *p;
	uint64_t v;
	int r;

	/* Decimal only: a hex duration would only ever be a typo. */
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		return VAL_BAD;
	r = parse_number(s, &p, &v);
	if (r == VAL_BAD)
		return r;
	if (strcmp(p, "ms") == 0) {
		if (r)
			return r;
		*out_ms = v;
		return VAL_OK;
	}
	if (strcmp(p, "s") == 0) {
		if (r || v > UINT64_MAX / 1000)
			return VAL_OVERFLOW;
		*out_ms = v * 1000;
		return VAL_OK;
	}
	return VAL_BAD;
}

int vmem_parse_size(const char *s, uint64_t *out)
{
	return s && size_parse(s, out) == VAL_OK ? 0 : -1;
}

int vmem_parse_range(const char *s, uint64_t *start, uint64_t *end)
{
	return s && range_parse(s, start, end) == VAL_OK ? 0 : -1;
}

int vmem_parse_duration_ms(const char *s, uint64_t *out_ms)
{
	return s && duration_parse(s, out_ms) == VAL_OK ? 0 : -1;
}

void vmem_format_size(uint64_t v, char *buf, size_t len)
{
	static const struct {
		unsigned int shift;
		char suffix;
	} units[] = { { 40, 'T' }, { 30, 'G' }, { 20, 'M' }, { 10, 'K' } };
	size_t i;

	if (!buf || !len)
		return;
	for (i = 0; v && i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t mask = (1ULL << units[i].shift) - 1;

		if (!(v & mask)) {
			snprintf(buf, len, "%" PRIu64 "%c",
				 v >> units[i].shift, units[i].suffix);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, v);
}

static void format_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms && ms % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "ms", ms);
}

const char *vmem_layout_name(enum vmem_layout_kind k)
{
	return k == VMEM_LAYOUT_AUTO ? "auto" : "flat";
}

const char *vmem_backend_name(enum vmem_backend_kind k)
{
	switch (k) {
	case VMEM_BACKEND_DIRECT:
		return "direct";
	case VMEM_BACKEND_REMOTE_PAGING:
		return "remote-paging";
	}
	return "unknown";
}

/*
 * Light NBD URI check: right scheme, something to connect to.  libnbd
 * does the real parsing at connect time; this only catches typos early,
 * with the config line at hand.  Returns NULL when fine, else the reason.
 */
static const char *uri_problem(const char *uri)
{
	const char *p, *q;

	if (strncmp(uri, "nbds", 4) == 0 &&
	    (uri[4] == ':' || uri[4] == '+'))
		return "uses TLS (nbds), which is not supported; "
		       "use nbd:// or nbd+unix://";
	if (strncmp(uri, "nbd://", 6) == 0) {
		p = uri + 6;
		if (*p == '[') {	/* [IPv6] */
			q = strchr(p, ']');
			if (!q || q == p + 1)
				return "has a malformed [IPv6] host";
			p = q + 1;
		} else {
			q = p + strcspn(p, ":/?");
			if (q == p)
				return "has no host (nbd://HOST[:PORT][/EXPORT])";
			p = q;
		}
		if (*p == ':') {
			unsigned long port = 0;

			for (q = ++p; *q >= '0' && *q <= '9' && port <= 65535;
			     q++)
				port = port * 10 + (*q - '0');
			if (q == p || port == 0 || port > 65535 ||
			    (*q && *q != '/' && *q != '?'))
				return "has a bad port (1..65535)";
			p = q;
		}
		if (*p && *p != '/' && *p != '?')
			return "has junk after the host";
		return NULL;
	}
	if (strncmp(uri, "nbd+unix://", 11) == 0) {
		p = uri + 11;
		if (*p != '/')
			return "must have an empty host "
			       "(nbd+unix:///EXPORT?socket=PATH)";
		q = strchr(p, '?');
		while (q) {
			q++;
			if (strncmp(q, "socket=", 7) == 0 &&
			    q[7] && q[7] != '&')
				return NULL;
			q = strchr(q, '&');
		}
		return "lacks ?socket=PATH";
	}
	return "is not an nbd:// or nbd+unix:// URI";
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
	free(vm->qmp);
	free(vm->kernel_btf);
	free(vm->kernel_map);
	for (i = 0; i < vm->n_subhosts; i++)
		free(vm->subhosts[i].uri);
	free(vm->subhosts);
}

static int size_value(struct parser *ps, unsigned int line, const char *key,
		      const char *val, uint64_t *out)
{
	int r = size_parse(val, out);

	if (r == VAL_OVERFLOW)
		return perr(ps, line, "%s '%s' is too large", key, val);
	if (r)
		return perr(ps, line,
			    "%s '%s' is not a size (e.g. 4096, 64K, 0x10000)",
			    key, val);
	return 0;
}

static int duration_value(struct parser *ps, unsigned int line,
			  const char *key, const char *val, uint64_t *out)
{
	int r = duration_parse(val, out);

	if (r == VAL_OVERFLOW)
		return perr(ps, line, "%s '%s' is too large", key, val);
	if (r)
		return perr(ps, line,
			    "%s '%s' is not a duration (e.g. 500ms, 2s)",
			    key, val);
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
	why = uri_problem(uri);
	if (why)
		return perr(ps, line, "subhost URI '%s' %s", uri, why);
	r = range_parse(range, &start, &end);
	if (r == VAL_OVERFLOW)
		return perr(ps, line, "subhost range '%s' is too large", range);
	if (r == VAL_EMPTY_RANGE)
		return perr(ps, line,
			    "subhost range '%s' is empty (START must be below END)",
			    range);
	if (r)
		return perr(ps, line,
			    "subhost range '%s' is not START-END (e.g. 1G-2G)",
			    range);
	if (start % PAGE_SZ || end % PAGE_SZ)
		return perr(ps, line,
			    "subhost range '%s' is not 4K-aligned", range);
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
		if (size_value(ps, line, key, val, &v))
			return -1;
		if (!v)
			return perr(ps, line,
				    "ram-size '%s' must be greater than zero",
				    val);
		if (v % PAGE_SZ)
			return perr(ps, line,
				    "ram-size '%s' is not a multiple of 4K", val);
		vm->ram_size = v;
		vm->ram_size_set = true;
		vm->ram_size_line = line;
		return 0;
	case K_BACKEND:
		if (strcmp(val, "direct") == 0)
			vm->backend = VMEM_BACKEND_DIRECT;
		else if (strcmp(val, "remote-paging") == 0)
			vm->backend = VMEM_BACKEND_REMOTE_PAGING;
		else
			return perr(ps, line,
				    "backend '%s' is not one of: direct, remote-paging",
				    val);
		return 0;
	case K_CHUNK_SIZE:
		if (size_value(ps, line, key, val, &v))
			return -1;
		if (v < CHUNK_MIN || v > CHUNK_MAX || (v & (v - 1)))
			return perr(ps, line,
				    "chunk-size '%s' is not a power of two between 4K and 16M",
				    val);
		vm->chunk_size = v;
		return 0;
	case K_CACHE_SIZE:
		return size_value(ps, line, key, val, &vm->cache_size);
	case K_CACHE_TTL:
		return duration_value(ps, line, key, val, &vm->cache_ttl_ms);
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
		if (size_value(ps, line, key, val, &v))
			return -1;
		if (!v)
			return perr(ps, line,
				    "local-limit '%s' must be greater than zero",
				    val);
		if (v % PAGE_SZ)
			return perr(ps, line,
				    "local-limit '%s' is not a multiple of 4K",
				    val);
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

/* Checks that involve several keys, made once the section is complete. */
static int finish_vm(struct parser *ps)
{
	struct vmem_vm *vm = ps->vm;
	char a[32], b[32];
	size_t i;

	if (!vm)
		return 0;
	ps->vm = NULL;
	if (!vm->memory_file)
		return perr(ps, vm->line,
			    "VM '%s' has no memory-file (it is required)",
			    vm->name);
	if (!ps->key_line[K_LAYOUT])
		vm->layout = vm->qmp ? VMEM_LAYOUT_AUTO : VMEM_LAYOUT_FLAT;
	else if (vm->layout == VMEM_LAYOUT_AUTO && !vm->qmp)
		return perr(ps, ps->key_line[K_LAYOUT],
			    "layout 'auto' needs qmp = PATH (QEMU's memory map comes from it)");
	if (vm->backend == VMEM_BACKEND_REMOTE_PAGING && !vm->qmp)
		return perr(ps, ps->key_line[K_BACKEND],
			    "backend 'remote-paging' needs qmp = PATH (the VM's QMP socket)");
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
	if (vm->ram_size_set && vm->local_limit_set &&
	    vm->local_limit > vm->ram_size) {
		vmem_format_size(vm->ram_size, a, sizeof(a));
		return perr(ps, vm->local_limit_line,
			    "local-limit '%s' is larger than ram-size %s",
			    ps->raw[K_LOCAL_LIMIT], a);
	}
	if (vm->ram_size_set) {
		for (i = 0; i < vm->n_subhosts; i++) {
			struct vmem_subhost *sh = &vm->subhosts[i];
			char r[32];

			if (sh->end <= vm->ram_size)
				continue;
			vmem_format_size(sh->start, a, sizeof(a));
			vmem_format_size(sh->end, b, sizeof(b));
			vmem_format_size(vm->ram_size, r, sizeof(r));
			return perr(ps, sh->line,
				    "subhost range %s-%s ends beyond ram-size %s",
				    a, b, r);
		}
	}
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
	vm->backend = VMEM_BACKEND_DIRECT;
	vm->chunk_size = DEFAULT_CHUNK_SIZE;
	vm->cache_size = DEFAULT_CACHE_SIZE;
	vm->cache_ttl_ms = DEFAULT_CACHE_TTL_MS;
	vm->timeout_ms = DEFAULT_TIMEOUT_MS;
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

int vmem_vm_resolve(struct vmem_vm *vm, const char *path,
		    char *err, size_t errlen)
{
	unsigned int mf_line = vm->memory_file_line ?
			       vm->memory_file_line : vm->line;
	char a[32], b[32], r[32];
	struct stat st;
	uint64_t ram;
	size_t i;

	if (!vm->memory_file) {
		seterr(err, errlen, path, vm->line,
		       "VM '%s' has no memory-file (it is required)", vm->name);
		return -1;
	}
	if (stat(vm->memory_file, &st) < 0) {
		seterr(err, errlen, path, mf_line, "memory-file '%s': %s",
		       vm->memory_file, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
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
		ram = vm->ram_size;
		if (!ram || ram % PAGE_SZ) {
			vmem_format_size(ram, a, sizeof(a));
			seterr(err, errlen, path,
			       vm->ram_size_line ? vm->ram_size_line : vm->line,
			       "ram-size %s is not a positive multiple of 4K",
			       a);
			return -1;
		}
	} else {
		ram = st.st_size;
		if (!ram) {
			seterr(err, errlen, path, mf_line,
			       "memory-file '%s' is empty and no ram-size is given",
			       vm->memory_file);
			return -1;
		}
		if (ram % PAGE_SZ) {
			seterr(err, errlen, path, mf_line,
			       "memory-file '%s' size %" PRIu64
			       " is not a multiple of 4K; set ram-size",
			       vm->memory_file, ram);
			return -1;
		}
	}
	vmem_format_size(ram, r, sizeof(r));
	for (i = 0; i < vm->n_subhosts; i++) {
		const struct vmem_subhost *sh = &vm->subhosts[i];

		if (sh->end <= ram)
			continue;
		vmem_format_size(sh->start, a, sizeof(a));
		vmem_format_size(sh->end, b, sizeof(b));
		seterr(err, errlen, path, sh->line,
		       "subhost range %s-%s ends beyond ram-size %s%s",
		       a, b, r,
		       vm->ram_size_set ? "" : " (the size of memory-file)");
		return -1;
	}
	if (vm->local_limit_set && vm->local_limit > ram) {
		vmem_format_size(vm->local_limit, a, sizeof(a));
		seterr(err, errlen, path,
		       vm->local_limit_line ? vm->local_limit_line : vm->line,
		       "local-limit '%s' is larger than ram-size %s%s", a, r,
		       vm->ram_size_set ? "" : " (the size of memory-file)");
		return -1;
	}
	/* All checks passed: only now change the VM. */
	vm->ram_size = ram;
	if (!vm->local_limit_set)
		vm->local_limit = ram;
	return 0;
}

void vmem_vm_print(const struct vmem_vm *vm, FILE *out)
{
	char buf[32];
	size_t i;

	fprintf(out, "[%s]\n", vm->name ? vm->name : "");
	if (vm->memory_file)
		fprintf(out, "memory-file = %s\n", vm->memory_file);
	else
		fprintf(out, "# memory-file is not set (required)\n");
	if (vm->ram_size) {
		vmem_format_size(vm->ram_size, buf, sizeof(buf));
		fprintf(out, "ram-size    = %s\n", buf);
	} else {
		fprintf(out, "# ram-size: the size of memory-file\n");
	}
	fprintf(out, "backend     = %s\n", vmem_backend_name(vm->backend));
	vmem_format_size(vm->chunk_size, buf, sizeof(buf));
	fprintf(out, "chunk-size  = %s\n", buf);
	vmem_format_size(vm->cache_size, buf, sizeof(buf));
	fprintf(out, "cache-size  = %s\n", buf);
	format_duration(vm->cache_ttl_ms, buf, sizeof(buf));
	fprintf(out, "cache-ttl   = %s\n", buf);
	format_duration(vm->timeout_ms, buf, sizeof(buf));
	fprintf(out, "timeout     = %s\n", buf);
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
