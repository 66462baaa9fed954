// SPDX-License-Identifier: MIT
/*
 * The split-migration plan (plan.h): the shared window cut, the choice of
 * hot and cold windows, and the checks of the destination.
 */
#include "plan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vmem_fault_window(const struct vmem_home_set *h, uint64_t size,
		       uint64_t chunk, uint64_t off, uint64_t *ws,
		       uint64_t *we, long *home)
{
	uint64_t cs = off & ~(chunk - 1);
	uint64_t ce = cs + chunk < size ? cs + chunk : size;
	uint64_t s = cs, e = ce;

	*home = -1;
	for (size_t i = 0; i < h->n; i++) {
		uint64_t rs, re;

		h->range(h->ctx, i, &rs, &re);
		if (off >= rs && off < re) {
			*home = (long)i;
			s = rs > cs ? rs : cs;
			e = re < ce ? re : ce;
			break;
		}
		/* A homeless run ends at the next home, begins after the
		 * previous one. */
		if (re <= off && re > s)
			s = re;
		if (rs > off && rs < e)
			e = rs;
	}
	*ws = s;
	*we = e;
}

static void vm_range(const void *ctx, size_t i, uint64_t *s, uint64_t *e)
{
	const struct vmem_vm *vm = ctx;

	*s = vm->subhosts[i].start;
	*e = vm->subhosts[i].end;
}

void vmem_home_set_of_vm(struct vmem_home_set *h, const struct vmem_vm *vm)
{
	h->ctx = vm;
	h->n = vm->n_subhosts;
	h->range = vm_range;
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	return fnv(h, b, sizeof(b));
}

uint64_t vmem_plan_config_hash(const struct vmem_vm *vm)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	uint64_t limit = vm->local_limit ? vm->local_limit : vm->ram_size;

	h = fnv(h, "vmem-split-plan/1", 17);
	h = fnv_u64(h, vm->ram_size);
	h = fnv_u64(h, vm->chunk_size);
	h = fnv_u64(h, limit);
	h = fnv_u64(h, vm->n_subhosts);
	for (size_t i = 0; i < vm->n_subhosts; i++) {
		h = fnv(h, vm->subhosts[i].uri, strlen(vm->subhosts[i].uri) + 1);
		h = fnv_u64(h, vm->subhosts[i].start);
		h = fnv_u64(h, vm->subhosts[i].end);
	}
	return h;
}

uint64_t vmem_plan_headroom(uint64_t local_limit, uint64_t unhomed,
			    uint64_t chunk)
{
	uint64_t hr = local_limit / 16;
	uint64_t room = local_limit > unhomed ? local_limit - unhomed : 0;

	if (hr < 2 * chunk)
		hr = 2 * chunk;
	if (hr > room / 8)
		hr = room / 8;
	return hr;
}

int vmem_plan_init(struct vmem_plan *p, const struct vmem_vm *vm,
		   char *err, size_t errlen)
{
	struct vmem_home_set h;
	uint64_t off = 0, cap;

	memset(p, 0, sizeof(*p));
	if (!vm->ram_size || !vm->chunk_size ||
	    (vm->chunk_size & (vm->chunk_size - 1))) {
		snprintf(err, errlen, "[%s]: ram-size or chunk-size not "
			 "resolved", vm->name);
		errno = EINVAL;
		return -1;
	}
	vmem_home_set_of_vm(&h, vm);
	p->size = vm->ram_size;
	p->chunk = vm->chunk_size;
	p->local_limit = vm->local_limit ? vm->local_limit : vm->ram_size;
	p->config_hash = vmem_plan_config_hash(vm);
	/* At most one window per chunk plus two per home range. */
	cap = (p->size + p->chunk - 1) / p->chunk + 2 * vm->n_subhosts + 1;
	p->w = calloc(cap, sizeof(*p->w));
	if (!p->w) {
		snprintf(err, errlen, "out of memory for %" PRIu64
			 " plan windows", cap);
		errno = ENOMEM;
		return -1;
	}
	while (off < p->size) {
		struct vmem_plan_window *w = &p->w[p->n++];

		vmem_fault_window(&h, p->size, p->chunk, off, &w->start,
				  &w->end, &w->home);
		w->main = w->home < 0;
		w->why = w->home < 0 ? VMEM_WHY_UNHOMED : VMEM_WHY_COLD;
		if (w->home < 0)
			p->unhomed_bytes += w->end - w->start;
		off = w->end;
	}
	p->main_bytes = p->unhomed_bytes;
	p->cold_bytes = p->size - p->unhomed_bytes;
	p->headroom = vmem_plan_headroom(p->local_limit, p->unhomed_bytes,
					 p->chunk);
	return 0;
}

void vmem_plan_free(struct vmem_plan *p)
{
	free(p->w);
	memset(p, 0, sizeof(*p));
}

static const uint32_t *sort_score;
static const struct vmem_plan_window *sort_w;

static int by_score(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	uint32_t si = sort_score ? sort_score[i] : 0;
	uint32_t sj = sort_score ? sort_score[j] : 0;

	if (si != sj)
		return si > sj ? -1 : 1;
	return sort_w[i].start < sort_w[j].start ? -1 : 1;
}

int vmem_plan_choose(struct vmem_plan *p, const uint32_t *score,
		     char *err, size_t errlen)
{
	uint64_t budget, used = 0;
	size_t *idx, m = 0;

	if (p->unhomed_bytes + p->headroom > p->local_limit) {
		snprintf(err, errlen, "RAM without a home (%" PRIu64 " bytes) "
			 "plus the pager's headroom (%" PRIu64 ") does not "
			 "fit local-limit (%" PRIu64 "): it can only go to "
			 "the main host", p->unhomed_bytes, p->headroom,
			 p->local_limit);
		errno = EFBIG;
		return -1;
	}
	budget = p->local_limit - p->unhomed_bytes - p->headroom;
	idx = malloc((p->n + 1) * sizeof(*idx));
	if (!idx) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < p->n; i++) {
		p->w[i].score = score ? score[i] : 0;
		if (p->w[i].home >= 0) {
			p->w[i].main = false;
			p->w[i].why = VMEM_WHY_COLD;
			idx[m++] = i;
		}
	}
	/* qsort is not reentrant with a context; the plan is built by one
	 * thread (QEMU's main loop, a test). */
	sort_score = score;
	sort_w = p->w;
	qsort(idx, m, sizeof(*idx), by_score);
	sort_score = NULL;
	sort_w = NULL;
	for (size_t k = 0; k < m; k++) {
		struct vmem_plan_window *w = &p->w[idx[k]];
		uint64_t len = w->end - w->start;

		/*
		 * Never seen accessed: cold, even with room left.  Its zero
		 * pages would take main-host memory (a zero page in the
		 * stream allocates one in the memory file) for nothing.
		 */
		if (!w->score)
			break;
		if (used + len > budget)
			continue;	/* a smaller one may still fit */
		used += len;
		w->main = true;
		w->why = VMEM_WHY_HOT;
	}
	free(idx);
	p->main_bytes = p->unhomed_bytes + used;
	p->cold_bytes = p->size - p->main_bytes;
	return 0;
}

size_t vmem_plan_find(const struct vmem_plan *p, uint64_t off)
{
	size_t lo = 0, hi = p->n;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->w[mid].start <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

size_t vmem_plan_bits_len(const struct vmem_plan *p)
{
	return (p->n + 7) / 8;
}

void vmem_plan_get_bits(const struct vmem_plan *p, uint8_t *bits)
{
	memset(bits, 0, vmem_plan_bits_len(p));
	for (size_t i = 0; i < p->n; i++)
		if (p->w[i].main)
			bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

uint64_t vmem_plan_hash(const struct vmem_plan *p)
{
	uint64_t h = fnv_u64(0xcbf29ce484222325ULL, p->config_hash);

	for (size_t i = 0; i < p->n; i++)
		h = fnv_u64(h, (p->w[i].start << 1) | p->w[i].main);
	return h;
}

int vmem_plan_accept(struct vmem_plan *p, uint64_t src_config_hash,
		     uint64_t src_n, const uint8_t *bits, size_t bits_len,
		     char *err, size_t errlen)
{
	uint64_t main = 0;

	if (src_config_hash != p->config_hash) {
		snprintf(err, errlen, "the source's configuration (hash "
			 "%016" PRIx64 ") differs from this one's (%016"
			 PRIx64 "): ram-size, chunk-size, local-limit and "
			 "the subhost lines must be the same at both ends",
			 src_config_hash, p->config_hash);
		errno = EINVAL;
		return -1;
	}
	if (src_n != p->n || bits_len != vmem_plan_bits_len(p)) {
		snprintf(err, errlen, "the source's plan has %" PRIu64
			 " windows, this end cuts %zu", src_n, p->n);
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < p->n; i++) {
		bool m = bits[i / 8] >> (i % 8) & 1;

		if (p->w[i].home < 0 && !m) {
			snprintf(err, errlen, "the source's plan sends RAM "
				 "[%#" PRIx64 ", %#" PRIx64 "), which has no "
				 "home, away from the main host",
				 p->w[i].start, p->w[i].end);
			errno = EINVAL;
			return -1;
		}
		if (m)
			main += p->w[i].end - p->w[i].start;
	}
	if (main > p->local_limit) {
		snprintf(err, errlen, "the source's plan puts %" PRIu64
			 " bytes on the main host, over local-limit %" PRIu64,
			 main, p->local_limit);
		errno = EFBIG;
		return -1;
	}
	for (size_t i = 0; i < p->n; i++) {
		p->w[i].main = bits[i / 8] >> (i % 8) & 1;
		p->w[i].why = p->w[i].home < 0 ? VMEM_WHY_UNHOMED :
			      p->w[i].main ? VMEM_WHY_HOT : VMEM_WHY_COLD;
	}
	p->main_bytes = main;
	p->cold_bytes = p->size - main;
	return 0;
}

const char *vmem_plan_why_name(uint8_t why)
{
	switch (why) {
	case VMEM_WHY_UNHOMED:
		return "unhomed";
	case VMEM_WHY_HOT:
		return "hot";
	case VMEM_WHY_COLD:
		return "cold";
	}
	return "?";
}
