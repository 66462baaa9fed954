// SPDX-License-Identifier: MIT
/* Learning the VM's layout from QEMU.  See qemu_info.h. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_info.h"

static json_object *str_args(const char *k1, const char *v1, const char *k2,
			     const char *v2)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, k1, json_object_new_string(v1));
	if (k2)
		json_object_object_add(a, k2, json_object_new_string(v2));
	return a;
}

/*
 * A QOM object id as QEMU makes them (id_wellformed: a letter, then
 * letters, digits, '-', '.', '_'): it goes into a QOM path and is matched
 * against `info mtree` names, so a '/' or a blank must not get through.
 */
static bool qom_id_ok(json_object *name)
{
	const char *s;

	if (!json_object_is_type(name, json_type_string))
		return false;
	s = json_object_get_string(name);
	if (!isalpha((unsigned char)*s) || json_object_get_string_len(name) > 127)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' &&
		    *s != '_')
			return false;
	return true;
}

char *vmem_qemu_memdev(struct vmem_qmp *q, const char *memory_file,
		       char *err, size_t errlen)
{
	char want[PATH_MAX], have[PATH_MAX], *found = NULL;
	json_object *list = NULL;
	size_t i, n;

	if (!realpath(memory_file, want)) {
		snprintf(err, errlen, "%s: %s", memory_file, strerror(errno));
		return NULL;
	}
	if (vmem_qmp_execute(q, "qom-list", str_args("path", "/objects", NULL, NULL),
			     &list, err, errlen) < 0)
		return NULL;
	n = json_object_is_type(list, json_type_array) ?
	    json_object_array_length(list) : 0;
	for (i = 0; i < n && !found; i++) {
		json_object *o = json_object_array_get_idx(list, i), *name, *type;
		json_object *mp = NULL;
		char path[300], e2[256];

		if (!json_object_object_get_ex(o, "name", &name) ||
		    !json_object_object_get_ex(o, "type", &type) ||
		    !json_object_is_type(type, json_type_string) ||
		    strcmp(json_object_get_string(type),
			   "child<memory-backend-file>") != 0 ||
		    !qom_id_ok(name))
			continue;
		snprintf(path, sizeof(path), "/objects/%s", json_object_get_string(name));
		if (vmem_qmp_execute(q, "qom-get", str_args("path", path, "property",
							    "mem-path"),
				     &mp, e2, sizeof(e2)) < 0)
			continue;
		if (json_object_is_type(mp, json_type_string) &&
		    realpath(json_object_get_string(mp), have) &&
		    strcmp(have, want) == 0)
			found = strdup(json_object_get_string(name));
		json_object_put(mp);
	}
	json_object_put(list);
	if (!found)
		snprintf(err, errlen, "QEMU has no memory-backend-file with mem-path %s",
			 want);
	return found;
}

int vmem_qemu_gpa_map(struct vmem_qmp *q, const char *memdev,
		      uint64_t ram_size, struct vmem_gpa_map *m,
		      char *err, size_t errlen)
{
	json_object *text = NULL;
	int rc;

	if (vmem_qmp_execute(q, "human-monitor-command",
			     str_args("command-line", "info mtree -f", NULL, NULL),
			     &text, err, errlen) < 0)
		return -1;
	if (!json_object_is_type(text, json_type_string)) {
		snprintf(err, errlen, "info mtree -f: QEMU answered no text");
		json_object_put(text);
		return -1;
	}
	rc = vmem_gpa_parse_mtree(m, json_object_get_string(text), memdev,
				  ram_size, err, errlen);
	json_object_put(text);
	return rc;
}

static int cmp_start(const void *a, const void *b)
{
	const struct vmem_subhost *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static uint64_t get_u64(json_object *o, const char *key, bool *ok)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int)) {
		*ok = false;
		return 0;
	}
	return json_object_get_uint64(v);
}

int vmem_qemu_learn_subhosts(struct vmem_qmp *q, struct vmem_vm *vm,
			     char *err, size_t errlen)
{
	json_object *info = NULL, *subs;
	struct vmem_subhost *all;
	size_t n, i, j, total;
	uint64_t ram;
	bool ok = true;
	int learned = 0;

	if (vmem_qmp_execute(q, "query-vmem", NULL, &info, err, errlen) < 0)
		return -1;
	ram = get_u64(info, "ram-size", &ok);
	if (!ok || !json_object_object_get_ex(info, "subhosts", &subs) ||
	    !json_object_is_type(subs, json_type_array)) {
		snprintf(err, errlen, "query-vmem: unexpected answer %s",
			 json_object_to_json_string(info));
		json_object_put(info);
		return -1;
	}
	if (ram != vm->ram_size) {
		snprintf(err, errlen, "QEMU says ram-size is %" PRIu64
			 " bytes, the config %" PRIu64, ram, vm->ram_size);
		json_object_put(info);
		return -1;
	}
	n = json_object_array_length(subs);
	if (n > VMEM_SUBHOSTS_MAX) {
		snprintf(err, errlen, "query-vmem: %zu sub-hosts, above the "
			 "largest supported number %d", n, VMEM_SUBHOSTS_MAX);
		json_object_put(info);
		return -1;
	}
	total = vm->n_subhosts + n;
	all = calloc(total ? total : 1, sizeof(*all));
	if (!all) {
		json_object_put(info);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(all, vm->subhosts, vm->n_subhosts * sizeof(*all));
	total = vm->n_subhosts;
	for (i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(subs, i), *uri;
		uint64_t start = get_u64(s, "start", &ok), end = get_u64(s, "end", &ok);
		bool overridden = false;
		const char *why;
		char a[32], b[32], r[32];

		if (!ok || !json_object_object_get_ex(s, "uri", &uri) ||
		    !json_object_is_type(uri, json_type_string)) {
			snprintf(err, errlen, "query-vmem: bad sub-host %s",
				 json_object_to_json_string(s));
			goto fail;
		}
		/* The checks of a subhost line, so QEMU gets no more
		 * through than the config would. */
		why = vmem_uri_problem(json_object_get_string(uri));
		if (why) {
			snprintf(err, errlen, "query-vmem: sub-host URI '%s' %s",
				 json_object_get_string(uri), why);
			goto fail;
		}
		vmem_format_size(start, a, sizeof(a));
		vmem_format_size(end, b, sizeof(b));
		why = vmem_range_problem(start, end);
		if (why) {
			snprintf(err, errlen, "query-vmem: sub-host %s range "
				 "%s-%s %s", json_object_get_string(uri), a, b,
				 why);
			goto fail;
		}
		if (end > vm->ram_size) {
			vmem_format_size(vm->ram_size, r, sizeof(r));
			snprintf(err, errlen, "query-vmem: sub-host %s range "
				 "%s-%s ends beyond ram-size %s",
				 json_object_get_string(uri), a, b, r);
			goto fail;
		}
		for (j = 0; j < vm->n_subhosts; j++)
			if (start < vm->subhosts[j].end && vm->subhosts[j].start < end)
				overridden = true;
		if (overridden)
			continue;
		all[total].uri = strdup(json_object_get_string(uri));
		if (!all[total].uri) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		all[total].start = start;
		all[total].end = end;
		all[total].line = 0;
		total++;
		learned++;
	}
	if (total > VMEM_SUBHOSTS_MAX) {
		snprintf(err, errlen, "query-vmem: %zu sub-hosts with the config's, "
			 "above the largest supported number %d", total,
			 VMEM_SUBHOSTS_MAX);
		goto fail;
	}
	qsort(all, total, sizeof(*all), cmp_start);
	for (i = 1; i < total; i++) {
		if (all[i].start < all[i - 1].end) {
			snprintf(err, errlen, "query-vmem: sub-host ranges overlap at 0x%"
				 PRIx64, all[i].start);
			goto fail;
		}
	}
	free(vm->subhosts);
	vm->subhosts = all;
	vm->n_subhosts = total;
	json_object_put(info);
	return learned;
fail:
	for (i = 0; i < total; i++)
		if (all[i].line == 0)
			free(all[i].uri);
	free(all);
	json_object_put(info);
	return -1;
}
