// SPDX-License-Identifier: MIT
/*
 * The kernel's symbol table (see kallsyms.h).
 *
 * The format (scripts/kallsyms.c in the kernel): kallsyms_num_syms
 * entries; for entry i, kallsyms_names holds a length (one byte, or two
 * when the first has bit 7 set: low 7 bits, then the next byte times 128)
 * and that many token numbers; token t is the NUL-terminated string at
 * kallsyms_token_table + kallsyms_token_index[t] (u16).  The expanded
 * string is the type letter followed by the name.  kallsyms_offsets[i] is
 * an s32: with absolute per-cpu symbols a value >= 0 is the address
 * itself and a negative one means relative_base - 1 - value; without,
 * the address is relative_base + (u32)value.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kallsyms.h"

struct vmi_kallsyms {
	struct vmi_ksym *syms;
	size_t nsyms;
	char *pool;
	uint32_t *by_name;	/* indices sorted by (name, index) */
};

/* Buffered sequential reader of the names stream, capped. */
struct stream {
	vmi_kread_fn read;
	void *ctx;
	uint64_t base;		/* va of kallsyms_names */
	unsigned char *buf;
	size_t pos, len;	/* consumed / filled */
	size_t cap;		/* allocated */
};

static int stream_byte(struct stream *s, unsigned char *c)
{
	if (s->pos == s->len) {
		size_t chunk = 64 << 10;
		int ret;

		if (s->len + chunk > VMI_KSYM_STREAM_MAX)
			chunk = VMI_KSYM_STREAM_MAX - s->len;
		if (!chunk)
			return -E2BIG;
		if (s->len + chunk > s->cap) {
			size_t ncap = s->cap ? s->cap * 2 : 1 << 20;
			void *n;

			while (ncap < s->len + chunk)
				ncap *= 2;
			n = realloc(s->buf, ncap);
			if (!n)
				return -ENOMEM;
			s->buf = n;
			s->cap = ncap;
		}
		ret = s->read(s->ctx, s->base + s->len, s->buf + s->len, chunk);
		/* The stream may end just before unreadable memory: the
		 * last bytes are read in ever smaller pieces. */
		while (ret && chunk > 1) {
			chunk /= 2;
			ret = s->read(s->ctx, s->base + s->len,
				      s->buf + s->len, chunk);
		}
		if (ret)
			return ret;
		s->len += chunk;
	}
	*c = s->buf[s->pos++];
	return 0;
}

static int by_name_cmp(const void *a, const void *b, void *arg)
{
	const struct vmi_kallsyms *ks = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	int c = strcmp(ks->syms[x].name, ks->syms[y].name);

	if (c)
		return c;
	return x < y ? -1 : x > y;
}

/* Finish a table whose names are offsets into pool: make pointers, sort. */
static int finish(struct vmi_kallsyms *ks)
{
	for (size_t i = 0; i < ks->nsyms; i++)
		ks->syms[i].name = ks->pool + (uintptr_t)ks->syms[i].name;
	ks->by_name = malloc((ks->nsyms ? ks->nsyms : 1) * sizeof(uint32_t));
	if (!ks->by_name)
		return -ENOMEM;
	for (size_t i = 0; i < ks->nsyms; i++)
		ks->by_name[i] = (uint32_t)i;
	qsort_r(ks->by_name, ks->nsyms, sizeof(uint32_t), by_name_cmp, ks);
	return 0;
}

/* Append @n bytes to the pool (which grows), returning their offset. */
static int pool_add(char **pool, size_t *len, size_t *cap, const char *s,
		    size_t n, size_t *off)
{
	if (*len + n + 1 > *cap) {
		size_t ncap = *cap ? *cap * 2 : 1 << 20;
		char *p;

		while (ncap < *len + n + 1)
			ncap *= 2;
		p = realloc(*pool, ncap);
		if (!p)
			return -ENOMEM;
		*pool = p;
		*cap = ncap;
	}
	memcpy(*pool + *len, s, n);
	(*pool)[*len + n] = '\0';
	*off = *len;
	*len += n + 1;
	return 0;
}

static bool type_ok(char c)
{
	/* nm's letters; /proc/kallsyms uses a subset. */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '?';
}

int vmi_kallsyms_decode(vmi_kread_fn read, void *ctx,
			const struct vmi_kallsyms_tables *t,
			const struct vmi_deadline *dl,
			struct vmi_kallsyms **out, char *err, size_t errlen)
{
	struct vmi_kallsyms *ks = NULL;
	struct stream s = { .read = read, .ctx = ctx, .base = t->names };
	uint16_t tidx[256];
	char *tokens = NULL;
	size_t tokens_len, pool_len = 0, pool_cap = 0;
	int32_t *offs = NULL;
	uint64_t relbase = 0;
	uint32_t num = 0;
	int ret;

	*out = NULL;
	ret = read(ctx, t->num_syms, &num, sizeof(num));
	if (ret)
		return vmi_err(err, errlen, -ret, "kallsyms_num_syms at "
			       "%#" PRIx64 ": unreadable", t->num_syms);
	if (!num || num > VMI_KSYM_MAX)
		return vmi_err(err, errlen, E2BIG, "kallsyms_num_syms %u "
			       "out of bounds (1..%u)", num, VMI_KSYM_MAX);
	ret = read(ctx, t->token_index, tidx, sizeof(tidx));
	if (ret)
		return vmi_err(err, errlen, -ret, "kallsyms_token_index at "
			       "%#" PRIx64 ": unreadable", t->token_index);
	tokens_len = 0;
	for (int i = 0; i < 256; i++)
		if (tidx[i] > tokens_len)
			tokens_len = tidx[i];
	/* The last token starts at the largest index; allow it a name. */
	tokens_len += VMI_KSYM_NAME_MAX;
	if (tokens_len > VMI_KSYM_TOKENS_MAX)
		tokens_len = VMI_KSYM_TOKENS_MAX;
	tokens = malloc(tokens_len + 1);
	offs = malloc((size_t)num * sizeof(*offs));
	ks = calloc(1, sizeof(*ks));
	if (!tokens || !offs || !ks) {
		ret = vmi_err(err, errlen, ENOMEM, "out of memory");
		goto fail;
	}
	ret = read(ctx, t->token_table, tokens, tokens_len);
	while (ret && tokens_len > 4096) {
		tokens_len -= 4096;
		ret = read(ctx, t->token_table, tokens, tokens_len);
	}
	if (ret) {
		ret = vmi_err(err, errlen, -ret, "kallsyms_token_table at "
			      "%#" PRIx64 ": unreadable", t->token_table);
		goto fail;
	}
	tokens[tokens_len] = '\0';
	for (int i = 0; i < 256; i++) {
		if (tidx[i] >= tokens_len ||
		    !memchr(tokens + tidx[i], '\0', tokens_len - tidx[i])) {
			ret = vmi_err(err, errlen, EINVAL, "kallsyms token %d "
				      "(index %u) is not terminated within "
				      "%zu bytes", i, tidx[i], tokens_len);
			goto fail;
		}
	}
	ret = read(ctx, t->offsets, offs, (size_t)num * sizeof(*offs));
	if (!ret)
		ret = read(ctx, t->relative_base, &relbase, sizeof(relbase));
	if (ret) {
		ret = vmi_err(err, errlen, -ret, "kallsyms_offsets or "
			      "kallsyms_relative_base unreadable");
		goto fail;
	}
	ks->syms = calloc(num, sizeof(*ks->syms));
	if (!ks->syms) {
		ret = vmi_err(err, errlen, ENOMEM, "out of memory");
		goto fail;
	}
	for (uint32_t i = 0; i < num; i++) {
		char name[VMI_KSYM_NAME_MAX + 1];
		size_t nlen = 0, off;
		unsigned char b, b2;
		unsigned int len;

		if (!(i & 4095) && vmi_deadline_passed(dl)) {
			ret = vmi_err(err, errlen, ETIMEDOUT, "kallsyms: "
				      "timed out at symbol %u of %u", i, num);
			goto fail;
		}
		ret = stream_byte(&s, &b);
		if (!ret && (b & 0x80)) {
			ret = stream_byte(&s, &b2);
			len = (b & 0x7fu) | (unsigned int)b2 << 7;
		} else {
			len = b;
		}
		if (ret)
			goto stream_fail;
		if (!len || len > VMI_KSYM_NAME_MAX) {
			ret = vmi_err(err, errlen, EINVAL, "kallsyms symbol "
				      "%u: encoded length %u out of bounds",
				      i, len);
			goto fail;
		}
		for (unsigned int j = 0; j < len; j++) {
			const char *tok;
			size_t tl;

			ret = stream_byte(&s, &b);
			if (ret)
				goto stream_fail;
			tok = tokens + tidx[b];
			tl = strlen(tok);
			if (nlen + tl > VMI_KSYM_NAME_MAX) {
				ret = vmi_err(err, errlen, E2BIG, "kallsyms "
					      "symbol %u: name longer than %d",
					      i, VMI_KSYM_NAME_MAX);
				goto fail;
			}
			memcpy(name + nlen, tok, tl);
			nlen += tl;
		}
		if (nlen < 2 || !type_ok(name[0]) ||
		    memchr(name, '\0', nlen)) {
			ret = vmi_err(err, errlen, EINVAL, "kallsyms symbol "
				      "%u: bad type or empty name", i);
			goto fail;
		}
		ret = pool_add(&ks->pool, &pool_len, &pool_cap, name + 1,
			       nlen - 1, &off);
		if (ret) {
			ret = vmi_err(err, errlen, ENOMEM, "out of memory");
			goto fail;
		}
		ks->syms[i].type = name[0];
		ks->syms[i].name = (const char *)(uintptr_t)off;
		if (!t->absolute_percpu)
			ks->syms[i].addr = relbase + (uint32_t)offs[i];
		else if (offs[i] >= 0)
			ks->syms[i].addr = (uint64_t)offs[i];
		else
			ks->syms[i].addr = relbase - 1 - (uint64_t)(int64_t)offs[i];
		/* The table is sorted by address: a check that it is real. */
		if (i && ks->syms[i].addr < ks->syms[i - 1].addr) {
			ret = vmi_err(err, errlen, EINVAL, "kallsyms symbol "
				      "%u: address %#" PRIx64 " below the "
				      "previous one (not sorted)", i,
				      ks->syms[i].addr);
			goto fail;
		}
		ks->nsyms = i + 1;
	}
	ret = finish(ks);
	if (ret) {
		ret = vmi_err(err, errlen, ENOMEM, "out of memory");
		goto fail;
	}
	free(s.buf);
	free(tokens);
	free(offs);
	*out = ks;
	return 0;
stream_fail:
	ret = vmi_err(err, errlen, -ret, "kallsyms_names: %s after %zu bytes",
		      ret == -E2BIG ? "longer than the cap" : "unreadable",
		      s.pos);
fail:
	free(s.buf);
	free(tokens);
	free(offs);
	if (ks) {
		ks->nsyms = 0;
		vmi_kallsyms_free(ks);
	}
	return ret;
}

int vmi_kallsyms_from_map(const char *path, uint64_t offset,
			  struct vmi_kallsyms **out, char *err, size_t errlen)
{
	struct vmi_kallsyms *ks;
	size_t cap = 0, pool_len = 0, pool_cap = 0, lineno = 0;
	char line[VMI_KSYM_NAME_MAX + 64];
	FILE *f;
	int ret = 0;

	*out = NULL;
	f = fopen(path, "re");
	if (!f)
		return vmi_err(err, errlen, errno, "%s: %s", path,
			       strerror(errno));
	ks = calloc(1, sizeof(*ks));
	if (!ks) {
		fclose(f);
		return vmi_err(err, errlen, ENOMEM, "out of memory");
	}
	while (fgets(line, sizeof(line), f)) {
		char type, name[VMI_KSYM_NAME_MAX + 1];
		unsigned long long addr;
		size_t off;
		int n;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			ret = vmi_err(err, errlen, EINVAL, "%s:%zu: line too "
				      "long", path, lineno);
			goto fail;
		}
		if (strstr(line, "The real System.map")) {
			ret = vmi_err(err, errlen, EINVAL, "%s: a stub (%s"
				      "): give the real System.map", path,
				      "Debian ships it in the -dbg package");
			goto fail;
		}
		n = sscanf(line, "%llx %c %512s", &addr, &type, name);
		if (n != 3 || !type_ok(type)) {
			ret = vmi_err(err, errlen, EINVAL, "%s:%zu: not "
				      "\"ADDR TYPE NAME\"", path, lineno);
			goto fail;
		}
		if (ks->nsyms >= VMI_KSYM_MAX) {
			ret = vmi_err(err, errlen, E2BIG, "%s: more than %u "
				      "symbols", path, VMI_KSYM_MAX);
			goto fail;
		}
		if (ks->nsyms == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			void *p = realloc(ks->syms, ncap * sizeof(*ks->syms));

			if (!p) {
				ret = vmi_err(err, errlen, ENOMEM, "out of "
					      "memory");
				goto fail;
			}
			ks->syms = p;
			cap = ncap;
		}
		if (pool_add(&ks->pool, &pool_len, &pool_cap, name,
			     strlen(name), &off)) {
			ret = vmi_err(err, errlen, ENOMEM, "out of memory");
			goto fail;
		}
		/* Absolute (per-cpu) symbols do not move with KASLR. */
		ks->syms[ks->nsyms].addr = addr >= 0xffffffff80000000ULL ?
					   addr + offset : addr;
		ks->syms[ks->nsyms].type = type;
		ks->syms[ks->nsyms].name = (const char *)(uintptr_t)off;
		ks->nsyms++;
	}
	if (ferror(f)) {
		ret = vmi_err(err, errlen, EIO, "%s: read error", path);
		goto fail;
	}
	if (!ks->nsyms) {
		ret = vmi_err(err, errlen, EINVAL, "%s: no symbols", path);
		goto fail;
	}
	fclose(f);
	if (finish(ks)) {
		ks->nsyms = 0;
		vmi_kallsyms_free(ks);
		return vmi_err(err, errlen, ENOMEM, "out of memory");
	}
	*out = ks;
	return 0;
fail:
	fclose(f);
	ks->nsyms = 0;
	vmi_kallsyms_free(ks);
	return ret;
}

void vmi_kallsyms_free(struct vmi_kallsyms *ks)
{
	if (!ks)
		return;
	free(ks->syms);
	free(ks->pool);
	free(ks->by_name);
	free(ks);
}

size_t vmi_kallsyms_count(const struct vmi_kallsyms *ks)
{
	return ks ? ks->nsyms : 0;
}

const struct vmi_ksym *vmi_kallsyms_at(const struct vmi_kallsyms *ks,
				       size_t i)
{
	return ks && i < ks->nsyms ? &ks->syms[i] : NULL;
}

/* First position in by_name whose name is >= @name. */
static size_t lower_bound(const struct vmi_kallsyms *ks, const char *name)
{
	size_t lo = 0, hi = ks->nsyms;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(ks->syms[ks->by_name[mid]].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct vmi_ksym *vmi_kallsyms_next(const struct vmi_kallsyms *ks,
					 const char *name, size_t *cursor)
{
	size_t pos;

	if (!ks || !ks->nsyms)
		return NULL;
	/* cursor: 0 = start, else 1 + position in by_name of the next. */
	pos = *cursor ? *cursor - 1 : lower_bound(ks, name);
	if (pos >= ks->nsyms || strcmp(ks->syms[ks->by_name[pos]].name, name))
		return NULL;
	*cursor = pos + 2;
	return &ks->syms[ks->by_name[pos]];
}

bool vmi_kallsyms_lookup(const struct vmi_kallsyms *ks, const char *name,
			 uint64_t *addr)
{
	size_t cur = 0;
	const struct vmi_ksym *s = vmi_kallsyms_next(ks, name, &cur);

	if (!s)
		return false;
	*addr = s->addr;
	return true;
}
