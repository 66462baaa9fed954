// SPDX-License-Identifier: MIT
/* Counters and latency histograms behind `stats`. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/*
 * Bucket of @ns: values below VMEM_HIST_SUB map to themselves; above, the
 * power of two picks a group and the next VMEM_HIST_SUB_BITS bits the
 * bucket inside it.
 */
static unsigned int bucket_of(uint64_t ns)
{
	unsigned int msb, shift;

	if (ns < VMEM_HIST_SUB)
		return (unsigned int)ns;
	msb = 63 - __builtin_clzll(ns);
	shift = msb - VMEM_HIST_SUB_BITS;
	return ((msb - VMEM_HIST_SUB_BITS + 1) << VMEM_HIST_SUB_BITS) +
	       (unsigned int)((ns >> shift) & (VMEM_HIST_SUB - 1));
}

/* Largest value that falls in bucket @b. */
static uint64_t bucket_max(unsigned int b)
{
	unsigned int group = b >> VMEM_HIST_SUB_BITS;
	uint64_t sub = b & (VMEM_HIST_SUB - 1);
	unsigned int shift;

	if (group == 0)
		return sub;
	shift = group - 1;
	if (shift + VMEM_HIST_SUB_BITS >= 63)
		return UINT64_MAX;
	return (((VMEM_HIST_SUB | sub) + 1) << shift) - 1;
}

void vmem_hist_add(struct vmem_hist *h, uint64_t ns)
{
	vmem_stat_add(h->count[bucket_of(ns)], 1);
	vmem_stat_add(h->n, 1);
}

uint64_t vmem_hist_percentile(const struct vmem_hist *h, double p)
{
	uint64_t n = __atomic_load_n(&h->n, __ATOMIC_RELAXED), want, seen = 0;
	unsigned int b, last = 0;

	if (n == 0)
		return 0;
	want = (uint64_t)((double)n * p / 100.0 + 0.999999);
	if (want == 0)
		want = 1;
	for (b = 0; b < VMEM_HIST_BUCKETS; b++) {
		uint64_t c = __atomic_load_n(&h->count[b], __ATOMIC_RELAXED);

		if (!c)
			continue;
		seen += c;
		last = b;
		if (seen >= want)
			return bucket_max(b);
	}
	/* Counts raced the total: the highest bucket seen is the answer. */
	return bucket_max(last);
}

int vmem_stats_init(struct vmem_stats *st, size_t n_subhosts)
{
	memset(st, 0, sizeof(*st));
	st->n_subhosts = n_subhosts;
	if (n_subhosts) {
		st->sub = calloc(n_subhosts, sizeof(*st->sub));
		if (!st->sub)
			return -ENOMEM;
	}
	return 0;
}

void vmem_stats_free(struct vmem_stats *st)
{
	free(st->sub);
	memset(st, 0, sizeof(*st));
}

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Microseconds with one decimal: the buckets are not finer than that. */
static json_object *us_json(uint64_t ns)
{
	char s[32];

	snprintf(s, sizeof(s), "%.1f", ns / 1e3);
	return json_object_new_double_s(ns / 1e3, s);
}

static json_object *latency_json(const struct vmem_hist *h)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "count", json_object_new_uint64(ld(&h->n)));
	json_object_object_add(o, "p50", us_json(vmem_hist_percentile(h, 50)));
	json_object_object_add(o, "p90", us_json(vmem_hist_percentile(h, 90)));
	json_object_object_add(o, "p99", us_json(vmem_hist_percentile(h, 99)));
	json_object_object_add(o, "max", us_json(vmem_hist_percentile(h, 100)));
	return o;
}

#define ADD_U64(obj, key, val) \
	json_object_object_add(obj, key, json_object_new_uint64(ld(&(val))))

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* "proc": the shadow /proc's builds. */
static json_object *proc_json(const struct vmem_proc_stats *p)
{
	json_object *o = json_object_new_object();
	uint64_t kept[VMEM_PROC_BUILDS_KEPT], n = ld(&p->builds), i;

	if (n > VMEM_PROC_BUILDS_KEPT)
		n = VMEM_PROC_BUILDS_KEPT;
	for (i = 0; i < n; i++)
		kept[i] = ld(&p->kept_ms[i]);
	qsort(kept, n, sizeof(kept[0]), cmp_u64);
	ADD_U64(o, "builds", p->builds);
	ADD_U64(o, "builds_cut", p->cut);
	ADD_U64(o, "last_build_ms", p->last_ms);
	json_object_object_add(o, "median_build_ms",
			       json_object_new_uint64(n ? kept[n / 2] : 0));
	ADD_U64(o, "last_bytes_local", p->last_local);
	ADD_U64(o, "last_bytes_remote", p->last_remote);
	return o;
}

char *vmem_stats_json(const struct vmem_stats *st, const struct vmem_vm *vm,
		      void (*more)(void *arg, struct json_object *o),
		      void *arg)
{
	json_object *o = json_object_new_object(), *subs;
	char *text;
	size_t i;

	if (!o)
		return NULL;
	json_object_object_add(o, "vm", json_object_new_string(vm->name));
	json_object_object_add(o, "backend",
			       json_object_new_string(vm->backend));
	ADD_U64(o, "reads", st->reads);
	ADD_U64(o, "read_errors", st->read_errors);
	ADD_U64(o, "bytes_local", st->bytes_local);
	ADD_U64(o, "bytes_remote", st->bytes_remote);
	ADD_U64(o, "bytes_zero", st->bytes_zero);
	ADD_U64(o, "retries", st->retries);
	if (more)
		more(arg, o);
	json_object_object_add(o, "latency_us", latency_json(&st->latency));

	subs = json_object_new_array();
	for (i = 0; i < st->n_subhosts; i++) {
		const struct vmem_subhost_stats *s = &st->sub[i];
		json_object *so = json_object_new_object();

		json_object_object_add(so, "uri",
				       json_object_new_string(vm->subhosts[i].uri));
		json_object_object_add(so, "start",
				       json_object_new_uint64(vm->subhosts[i].start));
		json_object_object_add(so, "end",
				       json_object_new_uint64(vm->subhosts[i].end));
		ADD_U64(so, "requests", s->requests);
		ADD_U64(so, "bytes", s->bytes);
		ADD_U64(so, "errors", s->errors);
		ADD_U64(so, "connects", s->connects);
		json_object_object_add(so, "latency_us", latency_json(&s->latency));
		json_object_array_add(subs, so);
	}
	json_object_object_add(o, "subhosts", subs);
	json_object_object_add(o, "proc", proc_json(&st->proc));

	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						     JSON_C_TO_STRING_SPACED |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return text;
}
