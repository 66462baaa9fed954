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

static int add_extent(json_object *arr, uint64_t start, uint64_t end,
		      const char *where)
{
	json_object *o = json_object_new_object();

	if (!o)
		return -1;
	json_object_object_add(o, "start", json_object_new_uint64(start));
	json_object_object_add(o, "end", json_object_new_uint64(end));
	json_object_object_add(o, "where", json_object_new_string(where));
	return json_object_array_add(arr, o);
}

char *vmem_map_json(const struct vmem_vm *vm, const struct vmem_memfile *mf)
{
	json_object *arr = json_object_new_array();
	const char *cur_where = NULL;
	uint64_t cur_start = 0, off = 0;
	char *text = NULL;

	if (!arr)
		return NULL;
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
			if (add_extent(arr, cur_start, off, cur_where) < 0)
				goto out;
			cur_start = off;
		}
		cur_where = where;
		off = end;
	}
	if (cur_where && add_extent(arr, cur_start, off, cur_where) < 0)
		goto out;
	text = strdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
						     JSON_C_TO_STRING_SPACED |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(arr);
	return text;
}
