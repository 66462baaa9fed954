/* SPDX-License-Identifier: MIT */
/*
 * Counters behind the mount's `stats` file.  Updated lock-free from every
 * FUSE thread; read (not atomically as a whole) when `stats` is opened.
 */
#ifndef VMEMFS_STATS_H
#define VMEMFS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"

/*
 * Latency histogram: log-linear buckets, VMEM_HIST_SUB per power of two
 * of nanoseconds, so a percentile is exact to within 1/VMEM_HIST_SUB.
 */
#define VMEM_HIST_SUB_BITS 3
#define VMEM_HIST_SUB (1u << VMEM_HIST_SUB_BITS)
#define VMEM_HIST_BUCKETS (64 * VMEM_HIST_SUB)

struct vmem_hist {
	uint64_t count[VMEM_HIST_BUCKETS];
	uint64_t n;
};

void vmem_hist_add(struct vmem_hist *h, uint64_t ns);
/* Upper bound of the bucket holding the @p-th percentile (0 < p <= 100); 0 if empty. */
uint64_t vmem_hist_percentile(const struct vmem_hist *h, double p);

struct vmem_subhost_stats {
	uint64_t requests;	/* NBD requests (commands) sent */
	uint64_t bytes;		/* bytes received */
	uint64_t errors;	/* requests failed or timed out */
	uint64_t connects;	/* successful (re)connections */
	/* Per run of adjacent chunks fetched together: one NBD request,
	 * or several where the server's maximum block size cut it. */
	struct vmem_hist latency;
};

/* Shadow /proc builds (fs_proc.c): the last VMEM_PROC_BUILDS_KEPT kept
 * for the median; written under fs_proc's lock. */
#define VMEM_PROC_BUILDS_KEPT 64
struct vmem_proc_stats {
	uint64_t builds;		/* snapshots built */
	uint64_t cut;			/* builds with a walk cut short */
	uint64_t last_ms;
	uint64_t last_local, last_remote; /* bytes the last build read */
	uint64_t kept_ms[VMEM_PROC_BUILDS_KEPT];
};

struct vmem_stats {
	uint64_t reads;			/* reads of `mem` */
	uint64_t read_errors;		/* reads answered with an error */
	uint64_t bytes_local;		/* served from the memory file */
	uint64_t bytes_remote;		/* served by the backend */
	uint64_t bytes_zero;		/* holes with no home, served as zeros */
	uint64_t retries;		/* re-reads because a page moved */
	struct vmem_hist latency;	/* whole `mem` reads */
	size_t n_subhosts;
	struct vmem_subhost_stats *sub;	/* n_subhosts entries */
	struct vmem_proc_stats proc;
};

/* 0 or -ENOMEM (read-path convention, common/errors.h). */
int vmem_stats_init(struct vmem_stats *st, size_t n_subhosts);
void vmem_stats_free(struct vmem_stats *st);

#define vmem_stat_add(field, v) \
	__atomic_fetch_add(&(field), (v), __ATOMIC_RELAXED)

struct json_object;

/*
 * The JSON text of `stats`; malloc'd, NUL-terminated; NULL on ENOMEM.
 * @more (may be NULL) adds the backend's own counters to the top-level
 * object, after the core's (vmem_backend_ops.stats_json).
 */
char *vmem_stats_json(const struct vmem_stats *st, const struct vmem_vm *vm,
		      void (*more)(void *arg, struct json_object *o),
		      void *arg);

#endif
