// SPDX-License-Identifier: MIT
/*
 * The remote-paging backend: instead of fetching a hole's data itself, ask
 * the VM to page it in (QMP vmem-page-in, one command per chunk, as the
 * VMemTrans paper's second method does), then let the core read it from
 * the memory file.  The VM's own pager moves the data, so what we serve is
 * always the VM's current memory, and the chunks we touched stay on the
 * main host afterwards, at the cost of one command round trip per chunk
 * and of main-host memory.
 *
 * This backend never holds guest data: fetch() only returns
 * VMEM_FETCH_LOCAL.  If the VM evicts the range again before the core's
 * read, the core comes back here (bounded by its retry limit).
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../common/timeutil.h"
#include "backend.h"
#include "log.h"
#include "qmp.h"
#include "stats.h"

struct rp {
	const struct vmem_vm *vm;
	struct vmem_qmp *qmp;		/* shared, not ours to free */
	struct vmem_stats *stats;
};

static void *rp_open(const struct vmem_vm *vm, const struct vmem_memfile *mf,
		     struct vmem_stats *stats, struct vmem_qmp *qmp,
		     char *err, size_t errlen)
{
	struct rp *rp;

	(void)mf;
	if (!qmp) {
		snprintf(err, errlen, "backend 'remote-paging' needs qmp = PATH");
		return NULL;
	}
	rp = calloc(1, sizeof(*rp));
	if (!rp) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rp->qmp = qmp;
	rp->vm = vm;
	rp->stats = stats;
	return rp;
}

static void rp_close(void *h)
{
	free(h);
}

static int rp_fetch(void *h, unsigned int home, void *buf, uint64_t off,
		    size_t len)
{
	struct rp *rp = h;
	const struct vmem_subhost *sh;
	struct vmem_subhost_stats *st;
	uint64_t chunk = rp->vm->chunk_size;
	uint64_t start = off & ~(chunk - 1), end = off + len, c;

	(void)buf;
	/* The same guards as the direct backend: nothing to ask for is no
	 * command (and no division by zero chunks below); a range must lie
	 * in the home it names. */
	if (home >= rp->vm->n_subhosts)
		return -EINVAL;
	sh = &rp->vm->subhosts[home];
	st = &rp->stats->sub[home];
	if (len == 0)
		return VMEM_FETCH_DATA;
	if (off < sh->start || end > sh->end || end < off)
		return -EINVAL;
	/* Whole chunks, as the config promises, but never outside the home:
	 * the VM would refuse a range that crosses into another one. */
	end = (end + chunk - 1) & ~(chunk - 1);
	if (start < sh->start)
		start = sh->start;
	if (end > sh->end)
		end = sh->end;

	/*
	 * One command per chunk, as the method is defined, but queued on the
	 * monitor together: QEMU runs them one after the other anyway, and
	 * we save a round trip per chunk.
	 */
	size_t n = (size_t)((end - start + chunk - 1) / chunk), i;
	json_object *stack_args[16], **args = stack_args;
	uint64_t t0 = vmem_now_ns(), dt;
	char err[256];
	int rc;

	if (n > sizeof(stack_args) / sizeof(stack_args[0]))
		args = calloc(n, sizeof(*args));
	if (!args)
		return -ENOMEM;
	for (i = 0, c = start; c < end; c += chunk, i++) {
		uint64_t len = end - c < chunk ? end - c : chunk;

		args[i] = json_object_new_object();
		json_object_object_add(args[i], "offset", json_object_new_uint64(c));
		json_object_object_add(args[i], "length", json_object_new_uint64(len));
	}
	rc = vmem_qmp_execute_batch(rp->qmp, "vmem-page-in", n, args, err,
				    sizeof(err));
	if (args != stack_args)
		free(args);
	vmem_stat_add(st->requests, n);
	if (rc < 0) {
		vmem_stat_add(st->errors, 1);
		vmem_log_ratelimited(LOG_ERR, "remote paging of [0x%llx, 0x%llx) failed: %s",
				     (unsigned long long)start,
				     (unsigned long long)end, err);
		return -EIO;
	}
	vmem_stat_add(st->bytes, end - start);
	dt = (vmem_now_ns() - t0) / n;
	for (i = 0; i < n; i++)
		vmem_hist_add(&st->latency, dt);
	__atomic_store_n(&st->connects, vmem_qmp_connects(rp->qmp),
			 __ATOMIC_RELAXED);
	return VMEM_FETCH_LOCAL;
}

const struct vmem_backend_ops vmem_backend_remote_paging = {
	.info = { .name = "remote-paging", .needs_qmp = true },
	.open = rp_open,
	.close = rp_close,
	.fetch = rp_fetch,
};
