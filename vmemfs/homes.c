// SPDX-License-Identifier: MIT
/*
 * Homes of RAM ranges and the `map` file.  The subhost array is sorted and
 * disjoint (the config parser promises it), so a binary search finds the
 * home of any offset.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "homes.h"

int vmem_home_of(const struct vmem_vm *vm, uint64_t off, uint64_t *ext_end)
{
	size_t lo = 0, hi = vm->n_subhosts;

	/* First subhost whose end is past off. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (vm->subhosts[mid].end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == vm->n_subhosts) {
		*ext_end = vm->ram_size;
		return VMEM_HOME_NONE;
	}
	if (vm->subhosts[lo].start > off) {
		*ext_end = vm->subhosts[lo].start;
		return VMEM_HOME_NONE;
	}
	*ext_end = vm->subhosts[lo].end;
	return (int)lo;
}

static const char *where_of(const struct vmem_vm *vm, bool present, int home)
{
	if (present)
		return "local";
	if (home == VMEM_HOME_NONE)
		return "unmapped";
	return vm->subhosts[home].uri;
}

/*
 * The text is written here rather than through a json-c tree: one
 * object per extent cost ~1.5 KiB of heap, and a map of a fragmented
 * file has tens of thousands of them.
 */
struct out {
	char *buf;
	size_t len, cap;
	size_t n;		/* extents written */
	bool failed;
};

static void out_add(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void out_add(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = true;
			return;
		}
		if ((size_t)n < o->cap - o->len)
			break;
		size_t cap = o->cap * 2 + (size_t)n + 4096;
		char *b = realloc(o->buf, cap);

		if (!b) {
			o->failed = true;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
	o->len += (size_t)n;
}

/* @s as a JSON string (it comes from the config: escape it). */
static void out_str(struct out *o, const char *s)
{
	out_add(o, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			out_add(o, "\\%c", c);
		else if (c < 0x20)
			out_add(o, "\\u%04x", c);
		else
			out_add(o, "%c", c);
	}
	out_add(o, "\"");
}

static void add_one(struct out *o, uint64_t start, uint64_t end,
		    const char *where, const struct vmem_gpa_ext *g)
{
	out_add(o, "%s\n  {\n    \"start\": %" PRIu64 ",\n    \"end\": %" PRIu64
		",\n    \"where\": ", o->n ? "," : "", start, end);
	out_str(o, where);
	if (g)
		out_add(o, ",\n    \"gpa_start\": %" PRIu64 ",\n    \"gpa_end\": %"
			PRIu64 "\n  }", g->gpa + (start - g->ram),
			g->gpa + (end - g->ram));
	else
		out_add(o, ",\n    \"gpa_start\": null,\n    \"gpa_end\": null\n  }");
	o->n++;
}

/* Emit [start, end), cut at the edges of the GPA extents (sorted by RAM). */
static void add_extent(struct out *o, uint64_t start, uint64_t end,
		       const char *where, const struct vmem_gpa_ext *by_ram,
		       size_t n)
{
	size_t i;

	for (i = 0; i < n && start < end; i++) {
		const struct vmem_gpa_ext *g = &by_ram[i];
		uint64_t gs = g->ram, ge = g->ram + g->len;

		if (ge <= start || gs >= end)
			continue;
		if (gs > start) {
			add_one(o, start, gs, where, NULL);
			start = gs;
		}
		add_one(o, start, ge < end ? ge : end, where, g);
		start = ge < end ? ge : end;
	}
	if (start < end)
		add_one(o, start, end, where, NULL);
}

static int cmp_ram(const void *a, const void *b)
{
	const struct vmem_gpa_ext *x = a, *y = b;

	return x->ram < y->ram ? -1 : x->ram > y->ram;
}

/*
 * One pass over the file: each run is asked for once, from its start,
 * with SEEK_DATA/SEEK_HOLE, whose cost is that of the run itself (asking
 * "is all of [off, ram_size) present?" for every run made a map of a
 * fragmented file quadratic: 8 s for 128 MiB, 566 s for 1 GiB).  The
 * number of extents is capped, so one open of `map` costs at most
 * VMEM_MAP_MAX_EXTENTS runs, whoever opens it and however often.
 */
char *vmem_map_json(const struct vmem_vm *vm, const struct vmem_memfile *mf,
		    const struct vmem_gpa_map *gpa)
{
	struct vmem_gpa_ext *by_ram = NULL;
	struct out o = { 0 };
	const char *cur_where = NULL;
	uint64_t cur_start = 0, off = 0;
	size_t n = gpa ? gpa->n : 0;
	int err = ENOMEM;

	if (n) {
		/* Two GPA ranges may show the same RAM; the map shows the
		 * first.  QEMU's pc and q35 machines do not do that. */
		by_ram = malloc(n * sizeof(*by_ram));
		if (!by_ram)
			goto out;
		memcpy(by_ram, gpa->ext, n * sizeof(*by_ram));
		qsort(by_ram, n, sizeof(*by_ram), cmp_ram);
	}
	out_add(&o, "[");
	while (off < vm->ram_size && !o.failed) {
		uint64_t run_end, home_end, end;
		bool present;
		int home, rc;

		home = vmem_home_of(vm, off, &home_end);
		rc = vmem_memfile_seek_run(mf, off, home_end, &present,
					   &run_end);
		if (rc < 0) {
			err = -rc;
			goto out;
		}
		end = run_end;
		const char *where = where_of(vm, present, home);

		/* Pointer equality is enough: where is always "local",
		 * "unmapped" or one subhost's own uri string. */
		if (cur_where && where != cur_where) {
			if (o.n >= VMEM_MAP_MAX_EXTENTS)
				break;
			add_extent(&o, cur_start, off, cur_where, by_ram, n);
			cur_start = off;
		}
		cur_where = where;
		off = end;
	}
	if (off < vm->ram_size && !o.failed) {
		/* Cut short: say so, and cover the rest of RAM. */
		add_one(&o, cur_start, vm->ram_size, VMEM_MAP_TRUNCATED, NULL);
	} else if (cur_where) {
		add_extent(&o, cur_start, off, cur_where, by_ram, n);
	}
	out_add(&o, "%s]", o.n ? "\n" : "");
	if (o.failed)
		goto out;
	free(by_ram);
	return o.buf;
out:
	free(by_ram);
	free(o.buf);
	errno = err;
	return NULL;
}
