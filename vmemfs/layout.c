// SPDX-License-Identifier: MIT
/*
 * Homes of RAM ranges and the `map` file.  The subhost array is sorted and
 * disjoint (the config parser promises it), so a binary search finds the
 * home of any offset.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"

int vmem_layout_home(const struct vmem_vm *vm, uint64_t off,
		     uint64_t *ext_end)
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

static int add_one(json_object *arr, uint64_t start, uint64_t end,
		   const char *where, const struct vmem_gpa_ext *g)
{
	json_object *o = json_object_new_object();

	if (!o)
		return -1;
	json_object_object_add(o, "start", json_object_new_uint64(start));
	json_object_object_add(o, "end", json_object_new_uint64(end));
	json_object_object_add(o, "where", json_object_new_string(where));
	json_object_object_add(o, "gpa_start", g ?
			       json_object_new_uint64(g->gpa + (start - g->ram)) : NULL);
	json_object_object_add(o, "gpa_end", g ?
			       json_object_new_uint64(g->gpa + (end - g->ram)) : NULL);
	return json_object_array_add(arr, o);
}

/* Emit [start, end), cut at the edges of the GPA extents (sorted by RAM). */
static int add_extent(json_object *arr, uint64_t start, uint64_t end,
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
			if (add_one(arr, start, gs, where, NULL) < 0)
				return -1;
			start = gs;
		}
		if (add_one(arr, start, ge < end ? ge : end, where, g) < 0)
			return -1;
		start = ge < end ? ge : end;
	}
	if (start < end)
		return add_one(arr, start, end, where, NULL);
	return 0;
}

static int cmp_ram(const void *a, const void *b)
{
	const struct vmem_gpa_ext *x = a, *y = b;

	return x->ram < y->ram ? -1 : x->ram > y->ram;
}

char *vmem_map_json(const struct vmem_vm *vm, const struct vmem_memfile *mf,
		    const struct vmem_gpa_map *gpa)
{
	json_object *arr = json_object_new_array();
	struct vmem_gpa_ext *by_ram = NULL;
	const char *cur_where = NULL;
	uint64_t cur_start = 0, off = 0;
	size_t n = gpa ? gpa->n : 0;
	char *text = NULL;

	if (!arr)
		return NULL;
	if (n) {
		/* Two GPA ranges may show the same RAM; the map shows the
		 * first.  QEMU's pc and q35 machines do not do that. */
		by_ram = malloc(n * sizeof(*by_ram));
		if (!by_ram)
			goto out;
		memcpy(by_ram, gpa->ext, n * sizeof(*by_ram));
		qsort(by_ram, n, sizeof(*by_ram), cmp_ram);
	}
	while (off < vm->ram_size) {
		uint64_t run_end, home_end, end;
		bool present;
		int home;

		if (vmem_memfile_run(mf, off, vm->ram_size, &present, &run_end) < 0)
			goto out;
		home = vmem_layout_home(vm, off, &home_end);
		end = run_end < home_end ? run_end : home_end;
		const char *where = where_of(vm, present, home);

		/* Pointer equality is enough: where is always "local",
		 * "unmapped" or one subhost's own uri string. */
		if (cur_where && where != cur_where) {
			if (add_extent(arr, cur_start, off, cur_where, by_ram, n) < 0)
				goto out;
			cur_start = off;
		}
		cur_where = where;
		off = end;
	}
	if (cur_where && add_extent(arr, cur_start, off, cur_where, by_ram, n) < 0)
		goto out;
	text = strdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
						     JSON_C_TO_STRING_SPACED |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	free(by_ram);
	json_object_put(arr);
	return text;
}
