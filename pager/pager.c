// SPDX-License-Identifier: MIT
/*
 * The userfaultfd remote pager.  Contract in pager.h, design in README.md,
 * locking, accounting and the map of the other files in pager_int.h.
 *
 * This file is the public API: parameters, new/start/stop/free,
 * page_in/page_out and the counters; and the small services every other
 * file uses (messages, sub-host health, naps, buffers).
 */
#include "pager_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/evictseq.h"
#include "../common/presence.h"
#include "../common/timeutil.h"
#include "remote.h"

/* ---- messages, sub-host health, naps ---- */

void vp_logmsg(struct vmem_pager *pg, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (pg->quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vmempager: %s\n", line);
}

/*
 * A sub-host failure: say so at once, then at most every LOG_EVERY_MS with
 * the number of failures in between, so a dead sub-host is loud but does
 * not flood the log while vCPUs retry.
 */
void vp_sub_failed(struct vmem_pager *pg, struct sub *s, const char *msg)
{
	uint64_t now = vmem_now_ms(), n = 0;
	bool say = false;

	ADD(s->errors, 1);
	STORE(s->up, false);
	pthread_mutex_lock(&s->log_mu);
	if (s->last_log_ms == 0 || now - s->last_log_ms >= LOG_EVERY_MS) {
		say = true;
		n = s->suppressed;
		s->suppressed = 0;
		s->last_log_ms = now;
	} else {
		s->suppressed++;
	}
	pthread_mutex_unlock(&s->log_mu);
	if (say)
		vp_logmsg(pg, "SUB-HOST FAILING: %s (%" PRIu64
			  " more failures not shown); retrying", msg, n);
}

void vp_sub_ok(struct vmem_pager *pg, struct sub *s)
{
	if (LOAD(s->up))
		return;
	if (__atomic_exchange_n(&s->up, true, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&s->log_mu);
	if (s->last_log_ms) {
		vp_logmsg(pg, "sub-host %s is answering again", s->uri);
		s->last_log_ms = 0;
		s->suppressed = 0;
	}
	pthread_mutex_unlock(&s->log_mu);
}

/* Sleep @ms or until stop; true when stopping. */
bool vp_nap(struct vmem_pager *pg, uint64_t ms)
{
	struct pollfd p = { .fd = pg->stop_efd, .events = POLLIN };

	if (LOAD(pg->stopping))
		return true;
	poll(&p, 1, (int)ms);
	return LOAD(pg->stopping);
}

/* ---- buffers ---- */

struct buf *vp_buf_get(struct vmem_pager *pg)
{
	struct buf *b;

	pthread_mutex_lock(&pg->buf_mu);
	b = pg->free_bufs;
	if (b)
		pg->free_bufs = b->next;
	pthread_mutex_unlock(&pg->buf_mu);
	if (b)
		return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	if (posix_memalign((void **)&b->data, PAGE, pg->cs)) {
		free(b);
		return NULL;
	}
	return b;
}

void vp_buf_put(struct vmem_pager *pg, struct buf *b)
{
	pthread_mutex_lock(&pg->buf_mu);
	b->next = pg->free_bufs;
	pg->free_bufs = b;
	pthread_mutex_unlock(&pg->buf_mu);
}

/* ---- setup ---- */

static int open_seq(struct vmem_pager *pg, const struct vmem_pager_params *p,
		    char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	void *m;
	int fd;

	if (p->seq_path)
		snprintf(path, sizeof(path), "%s", p->seq_path);
	else if (p->mem_path)
		snprintf(path, sizeof(path), "%s%s", p->mem_path,
			 VMEM_SEQ_SUFFIX);
	else {
		snprintf(err, errlen, "need seq_path or mem_path");
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) == -1 ||
	    (st.st_size < VMEM_SEQ_FILE_SIZE &&
	     ftruncate(fd, VMEM_SEQ_FILE_SIZE) == -1)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	m = mmap(NULL, VMEM_SEQ_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		 fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "mmap %s: %s", path, strerror(errno));
		return -1;
	}
	pg->seq = m;
	/*
	 * We are the only mover.  A pair left with begun != done by a mover
	 * that died mid-move would make readers retry forever; the counters
	 * stay monotonic, so this cannot validate a stale token.
	 */
	for (int i = 0; i < VMEM_SEQ_STRIPES; i++) {
		struct vmem_seq_pair *sp = &pg->seq->pair[i];
		uint64_t b = __atomic_load_n(&sp->begun, __ATOMIC_ACQUIRE);

		if (__atomic_load_n(&sp->done, __ATOMIC_ACQUIRE) != b)
			__atomic_store_n(&sp->done, b, __ATOMIC_RELEASE);
	}
	return 0;
}

static int cmp_sub(const void *a, const void *b)
{
	const struct sub *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

void vmem_pager_params_from_vm(struct vmem_pager_params *p,
			       const struct vmem_vm *vm,
			       struct vmem_pager_subhost *subs)
{
	p->size = vm->ram_size;
	p->chunk_size = vm->chunk_size;
	p->local_limit = vm->local_limit >= vm->ram_size ? 0 : vm->local_limit;
	p->timeout_ms = vm->timeout_ms;
	p->mem_path = vm->memory_file;
	p->seq_path = NULL;
	p->ctl_path = NULL;
	p->ctl_beside_mem = true;
	for (size_t i = 0; i < vm->n_subhosts; i++) {
		subs[i].uri = vm->subhosts[i].uri;
		subs[i].start = vm->subhosts[i].start;
		subs[i].end = vm->subhosts[i].end;
		subs[i].tls = &vm->subhosts[i].tls;
	}
	p->subhosts = subs;
	p->n_subhosts = vm->n_subhosts;
}

static int check_params(const struct vmem_pager_params *p, char *err,
			size_t errlen)
{
	uint64_t cs = p->chunk_size ? p->chunk_size : DEFAULT_CHUNK;
	unsigned int nt = p->n_fault_threads ? p->n_fault_threads : 2;
	struct stat st;

	if (!p->host_addr || (uintptr_t)p->host_addr % PAGE) {
		snprintf(err, errlen, "host_addr must be page aligned");
		return -1;
	}
	if (!p->size || p->size % PAGE) {
		snprintf(err, errlen, "size must be a non-zero multiple of %llu",
			 PAGE);
		return -1;
	}
	if (!vmem_chunk_size_ok(cs)) {
		snprintf(err, errlen, "chunk size %" PRIu64 " is not a power "
			 "of two in 4K..16M", cs);
		return -1;
	}
	if (p->local_limit && p->local_limit < (uint64_t)(nt + 2) * cs) {
		snprintf(err, errlen, "local limit %" PRIu64 " is below "
			 "(fault threads + 2) * chunk size = %" PRIu64,
			 p->local_limit, (uint64_t)(nt + 2) * cs);
		return -1;
	}
	if (nt > MAX_FAULT_THREADS) {
		snprintf(err, errlen, "at most %d fault threads",
			 MAX_FAULT_THREADS);
		return -1;
	}
	if (fstat(p->mem_fd, &st) == -1 || (uint64_t)st.st_size < p->size) {
		snprintf(err, errlen, "memory file fd: %s",
			 errno ? strerror(errno) : "smaller than size");
		return -1;
	}
	for (size_t i = 0; i < p->n_subhosts; i++) {
		const struct vmem_pager_subhost *s = &p->subhosts[i];

		if (!s->uri || s->start >= s->end || s->end > p->size ||
		    s->start % PAGE || s->end % PAGE) {
			snprintf(err, errlen, "sub-host %zu (%s): range must be "
				 "page aligned, non-empty and inside RAM", i,
				 s->uri ? s->uri : "no URI");
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			const struct vmem_pager_subhost *t = &p->subhosts[j];

			if (s->start < t->end && t->start < s->end) {
				snprintf(err, errlen, "sub-hosts %s and %s "
					 "overlap", t->uri, s->uri);
				return -1;
			}
		}
	}
	return 0;
}

struct vmem_pager *vmem_pager_new(const struct vmem_pager_params *p,
				  char *err, size_t errlen)
{
	struct vmem_pager *pg;
	int e;

	errno = 0;
	if (check_params(p, err, errlen))
		return NULL;
	pg = calloc(1, sizeof(*pg));
	if (!pg)
		goto nomem;
	pg->fd = pg->uffd = pg->stop_efd = -1;
	pg->base = p->host_addr;
	pg->size = p->size;
	pg->cs = p->chunk_size ? p->chunk_size : DEFAULT_CHUNK;
	pg->cshift = (unsigned int)__builtin_ctzll(pg->cs);
	pg->nchunks = (pg->size + pg->cs - 1) >> pg->cshift;
	pg->limit = p->local_limit < p->size ? p->local_limit : 0;
	pg->headroom = pg->limit / 16 > 2 * pg->cs ? pg->limit / 16 :
		       2 * pg->cs;
	pg->timeout_ms = p->timeout_ms ? p->timeout_ms : DEFAULT_TIMEOUT_MS;
	pg->quiet = p->quiet;
	pg->n_threads = p->n_fault_threads ? p->n_fault_threads : 2;
	pthread_mutex_init(&pg->acct_mu, NULL);
	/* The eviction thread's timed sleeps must not follow the wall clock.
	 * (Zeroed mutexes and condition variables are valid to destroy, so
	 * vmem_pager_free() may clean up from here.) */
	e = vmem_cond_init_monotonic(&pg->acct_cv);
	if (e) {
		snprintf(err, errlen, "pthread_cond_init: %s", strerror(e));
		goto fail;
	}
	pthread_mutex_init(&pg->buf_mu, NULL);
	pthread_mutex_init(&pg->trim_mu, NULL);
	e = vmem_cond_init_monotonic(&pg->trim_cv);
	if (!e)
		e = vmem_cond_init_monotonic(&pg->trim_done_cv);
	if (e) {
		snprintf(err, errlen, "pthread_cond_init: %s", strerror(e));
		goto fail;
	}
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&pg->stripes[i], NULL);

	pg->chunk_res = calloc(pg->nchunks, sizeof(*pg->chunk_res));
	pg->chunk_ref = calloc(pg->nchunks, 1);
	pg->chunk_pin = calloc(pg->nchunks, sizeof(*pg->chunk_pin));
	pg->chunk_homed = calloc(pg->nchunks, 1);
	pg->chunk_stamp = calloc(pg->nchunks, sizeof(*pg->chunk_stamp));
	pg->chunk_evgen = calloc(pg->nchunks, sizeof(*pg->chunk_evgen));
	pg->chunk_trimming = calloc(pg->nchunks,
				    sizeof(*pg->chunk_trimming));
	pg->trim_q = calloc(TRIM_QMAX, sizeof(*pg->trim_q));
	/* Chunks resident from before we started are not young. */
	pg->pagein_seq = 1ULL << 31;
	pg->zeros = aligned_alloc(PAGE, pg->cs);
	pg->subs = calloc(p->n_subhosts ? p->n_subhosts : 1,
			  sizeof(*pg->subs));
	if (!pg->chunk_res || !pg->chunk_ref || !pg->chunk_pin ||
	    !pg->chunk_homed || !pg->chunk_stamp || !pg->zeros || !pg->subs ||
	    !pg->chunk_evgen || !pg->chunk_trimming || !pg->trim_q)
		goto nomem;
	memset(pg->zeros, 0, pg->cs);
	pg->n_subs = p->n_subhosts;
	for (size_t i = 0; i < pg->n_subs; i++) {
		struct sub *s = &pg->subs[i];

		s->uri = strdup(p->subhosts[i].uri);
		s->orig = i;
		s->start = p->subhosts[i].start;
		s->end = p->subhosts[i].end;
		s->up = true;
		pthread_mutex_init(&s->log_mu, NULL);
		if (!s->uri)
			goto nomem;
	}
	qsort(pg->subs, pg->n_subs, sizeof(*pg->subs), cmp_sub);
	for (size_t i = 0; i < pg->n_subs; i++) {
		struct sub *s = &pg->subs[i];

		s->remote = vp_remote_new(s->uri, s->end,
					  p->subhosts[s->orig].tls);
		if (!s->remote)
			goto nomem;
		for (uint64_t c = s->start >> pg->cshift;
		     c < pg->nchunks && (c << pg->cshift) < s->end; c++)
			pg->chunk_homed[c] = 1;
	}

	pg->fd = fcntl(p->mem_fd, F_DUPFD_CLOEXEC, 0);
	pg->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pg->fd < 0 || pg->stop_efd < 0) {
		snprintf(err, errlen, "fd: %s", strerror(errno));
		goto fail;
	}
	/* next_data() trusts cachestat, which is the data map on tmpfs
	 * only (common/presence.h). */
	{
		enum vmem_datamap_kind kind;

		if (vmem_datamap_kind(pg->fd, p->mem_path ? p->mem_path :
				      "memory file", &kind, err, errlen) < 0)
			goto fail;
		if (kind != VMEM_DATAMAP_SHMEM) {
			snprintf(err, errlen, "%s: the pager needs the memory "
				 "file on tmpfs", p->mem_path ? p->mem_path :
				 "memory file");
			goto fail;
		}
	}
	if (open_seq(pg, p, err, errlen) || vp_uffd_setup(pg, err, errlen))
		goto fail;
	vp_count_initial(pg);
	if (p->ctl_path) {
		pg->ctl = vp_ctl_new(pg, p->ctl_path, err, errlen);
		if (!pg->ctl)
			goto fail;
	} else if (p->ctl_beside_mem && p->mem_path) {
		/* Optional: without it, QMP still pages in. */
		char path[4096], why[256];

		snprintf(path, sizeof(path), "%s%s", p->mem_path,
			 VMEM_PAGER_CTL_SUFFIX);
		pg->ctl = vp_ctl_new(pg, path, why, sizeof(why));
		if (!pg->ctl)
			vp_logmsg(pg, "no control socket: %s", why);
	}
	pg->st.ram_size = pg->size;
	pg->st.local_limit = pg->limit;
	pg->st.chunk_size = pg->cs;
	pg->st.n_subhosts = pg->n_subs;
	return pg;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	vmem_pager_free(pg);
	return NULL;
}

int vmem_pager_start(struct vmem_pager *pg)
{
	uint64_t v;
	int e;

	if (pg->running)
		return 0;
	/* Drain a stop request left from a previous vmem_pager_stop(). */
	while (read(pg->stop_efd, &v, sizeof(v)) > 0)
		;
	STORE(pg->stopping, false);
	for (unsigned int i = 0; i < pg->n_threads; i++) {
		e = pthread_create(&pg->fault_thr[i], NULL, vp_fault_thread,
				   pg);
		if (e) {
			STORE(pg->stopping, true);
			v = 1;
			if (write(pg->stop_efd, &v, sizeof(v)) < 0)
				vp_logmsg(pg, "stop: %s", strerror(errno));
			while (i-- > 0)
				pthread_join(pg->fault_thr[i], NULL);
			errno = e;
			return -1;
		}
	}
	pg->has_evictor = false;
	if (pg->limit) {
		e = pthread_create(&pg->evict_thr, NULL, vp_evict_thread, pg);
		if (e == 0)
			pg->has_evictor = true;
		else
			vp_logmsg(pg, "no eviction thread (%s); faults will "
				  "evict for themselves", strerror(e));
	}
	/* No trim thread: movers discard synchronously, as they used to. */
	e = pthread_create(&pg->trim_thr, NULL, vp_trim_thread, pg);
	pthread_mutex_lock(&pg->trim_mu);
	pg->has_trimmer = e == 0;
	pthread_mutex_unlock(&pg->trim_mu);
	if (e)
		vp_logmsg(pg, "no trim thread (%s); moves discard at once",
			  strerror(e));
	if (pg->ctl && vp_ctl_start(pg->ctl))
		vp_logmsg(pg, "control socket %s not served: %s",
			  vp_ctl_path(pg->ctl), strerror(errno));
	pg->running = true;
	return 0;
}

void vmem_pager_stop(struct vmem_pager *pg)
{
	uint64_t one = 1;

	if (!pg || !pg->running)
		return;
	STORE(pg->stopping, true);
	if (write(pg->stop_efd, &one, sizeof(one)) < 0)
		vp_logmsg(pg, "stop: %s", strerror(errno));
	pthread_mutex_lock(&pg->acct_mu);
	pthread_cond_broadcast(&pg->acct_cv);
	pthread_mutex_unlock(&pg->acct_mu);
	/* The control socket first: its requests may wait on faults. */
	if (pg->ctl)
		vp_ctl_stop(pg->ctl);
	pthread_mutex_lock(&pg->trim_mu);
	pthread_cond_broadcast(&pg->trim_cv);
	pthread_mutex_unlock(&pg->trim_mu);
	if (pg->has_trimmer) {
		pthread_join(pg->trim_thr, NULL);
		pthread_mutex_lock(&pg->trim_mu);
		pg->has_trimmer = false;
		pthread_mutex_unlock(&pg->trim_mu);
	}
	for (unsigned int i = 0; i < pg->n_threads; i++)
		pthread_join(pg->fault_thr[i], NULL);
	if (pg->has_evictor)
		pthread_join(pg->evict_thr, NULL);
	pg->running = false;
}

void vmem_pager_free(struct vmem_pager *pg)
{
	struct buf *b;

	if (!pg)
		return;
	vmem_pager_stop(pg);
	/* Queued discards are dropped: stale copies are harmless. */
	vp_ctl_free(pg->ctl);
	if (pg->uffd >= 0) {
		struct uffdio_range r = {
			.start = (uintptr_t)pg->base, .len = pg->size,
		};

		ioctl(pg->uffd, UFFDIO_UNREGISTER, &r);
		close(pg->uffd);
	}
	if (pg->stop_efd >= 0)
		close(pg->stop_efd);
	if (pg->fd >= 0)
		close(pg->fd);
	if (pg->seq)
		munmap(pg->seq, VMEM_SEQ_FILE_SIZE);
	for (size_t i = 0; pg->subs && i < pg->n_subs; i++) {
		vp_remote_free(pg->subs[i].remote);
		pthread_mutex_destroy(&pg->subs[i].log_mu);
		free(pg->subs[i].uri);
	}
	while ((b = pg->free_bufs)) {
		pg->free_bufs = b->next;
		free(b->data);
		free(b);
	}
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_destroy(&pg->stripes[i]);
	pthread_mutex_destroy(&pg->acct_mu);
	pthread_cond_destroy(&pg->acct_cv);
	pthread_mutex_destroy(&pg->buf_mu);
	pthread_mutex_destroy(&pg->trim_mu);
	pthread_cond_destroy(&pg->trim_cv);
	pthread_cond_destroy(&pg->trim_done_cv);
	free(pg->trim_q);
	free(pg->chunk_evgen);
	free(pg->chunk_trimming);
	free(pg->subs);
	free(pg->zeros);
	free(pg->chunk_res);
	free(pg->chunk_ref);
	free(pg->chunk_pin);
	free(pg->chunk_homed);
	free(pg->chunk_stamp);
	free(pg);
}

/* ---- page_in / page_out ---- */

static int clip(struct vmem_pager *pg, uint64_t *off, uint64_t *len,
		char *err, size_t errlen)
{
	uint64_t s = *off & ~(PAGE - 1), e;

	if (*len == 0 || *off >= pg->size || *len > pg->size - *off) {
		snprintf(err, errlen, "range %#" PRIx64 "+%#" PRIx64
			 " is not inside RAM (%#" PRIx64 ")", *off, *len,
			 pg->size);
		errno = EINVAL;
		return -1;
	}
	e = (*off + *len + PAGE - 1) & ~(PAGE - 1);
	*off = s;
	*len = e - s;
	return 0;
}

int vmem_pager_page_out(struct vmem_pager *pg, uint64_t offset,
			uint64_t length, char *err, size_t errlen)
{
	uint64_t deadline = vmem_deadline_ns(pg->timeout_ms), end, pos;
	uint64_t backoff = 10;

	if (clip(pg, &offset, &length, err, errlen))
		return -1;
	end = offset + length;
	for (pos = offset; pos < end;) {
		uint64_t c = pos >> pg->cshift;
		uint64_t ce = (c + 1) << pg->cshift;
		uint64_t e = vp_home_run_end(pg, pos, ce < end ? ce : end);
		struct sub *sh = vp_home_of(pg, pos);
		int64_t r = 0;
		int ee;

		if (sh) {
			uint64_t left = (uint64_t)vmem_ms_left(deadline);
			uint64_t t = pg->timeout_ms;

			if (left == 0) {
				snprintf(err, errlen, "%s: no progress for %"
					 PRIu64 " ms", sh->uri,
					 pg->timeout_ms);
				errno = ETIMEDOUT;
				return -1;
			}
			if (left < t)
				t = left;
			/*
			 * Under the lock nothing can refill the range, so
			 * looping until no data is left terminates.
			 */
			if (vp_lock_until(pg, c, deadline, err, errlen))
				return -1;
			while ((r = vp_evict_range(pg, sh, pos, e, t, err,
						   errlen)) > 0)
				ADD(pg->st.page_outs, 1);
			/* Before the recount's probes of the data map. */
			ee = r < 0 ? errno : 0;
			vp_recount(pg, c);
			pthread_mutex_unlock(vp_chunk_lock(pg, c));
			if (r < 0) {
				ADD(pg->st.retries, 1);
				if (vp_nap(pg, backoff) ||
				    vmem_ms_left(deadline) == 0) {
					errno = ee ? ee : EIO;
					return -1;
				}
				backoff = backoff * 2 > MAX_BACKOFF_MS ?
					  MAX_BACKOFF_MS : backoff * 2;
				continue;	/* same range again */
			}
			/* The timeout bounds a stall, not a long range. */
			deadline = vmem_deadline_ns(pg->timeout_ms);
			backoff = 10;
		}
		pos = e;
	}
	return 0;
}

void vmem_pager_get_stats(struct vmem_pager *pg, struct vmem_pager_stats *s,
			  struct vmem_pager_subhost_stats *sh, size_t n_sh)
{
	s->ram_size = pg->size;
	s->local_limit = pg->limit;
	s->chunk_size = pg->cs;
	s->resident_bytes = LOAD(pg->resident);
	s->faults = LOAD(pg->st.faults);
	s->wp_faults = LOAD(pg->st.wp_faults);
	s->page_ins = LOAD(pg->st.page_ins);
	s->page_outs = LOAD(pg->st.page_outs);
	s->evictions = LOAD(pg->st.evictions);
	s->bytes_in = LOAD(pg->st.bytes_in);
	s->bytes_zero = LOAD(pg->st.bytes_zero);
	s->bytes_out = LOAD(pg->st.bytes_out);
	s->retries = LOAD(pg->st.retries);
	s->over_limit = LOAD(pg->st.over_limit);
	s->trims = LOAD(pg->st.trims);
	s->trims_dropped = LOAD(pg->st.trims_dropped);
	s->n_subhosts = pg->n_subs;
	for (size_t i = 0; sh && i < pg->n_subs; i++) {
		struct sub *x = &pg->subs[i];
		struct vmem_pager_subhost_stats *o = &sh[x->orig];

		if (x->orig >= n_sh)
			continue;
		o->uri = x->uri;
		o->start = x->start;
		o->end = x->end;
		o->bytes_in = LOAD(x->bytes_in);
		o->bytes_out = LOAD(x->bytes_out);
		o->errors = LOAD(x->errors);
		o->up = LOAD(x->up);
	}
}

uint64_t vmem_pager_resident_in(struct vmem_pager *pg, uint64_t start,
				uint64_t end)
{
	uint64_t n = 0;

	if (end > pg->size)
		end = pg->size;
	while (start < end) {
		uint64_t c = start >> pg->cshift, cs = c << pg->cshift;
		uint64_t ce = cs + pg->cs < pg->size ? cs + pg->cs : pg->size;
		uint64_t e = ce < end ? ce : end, part = e - start, pages;
		uint64_t res = LOAD(pg->chunk_res[c]);
		int64_t k;

		if (start == cs && e == ce) {
			n += res;
		} else if (res == ce - cs) {
			n += part;
		} else if (res) {
			/* The range cuts the chunk: count the cut part. */
			k = vmem_pages_present(pg->fd, start, e, &pages);
			if (k < 0 || (uint64_t)k * PAGE > part)
				n += res < part ? res : part;
			else
				n += (uint64_t)k * PAGE;
		}
		start = e;
	}
	return n;
}

const char *vmem_pager_ctl_path(struct vmem_pager *pg)
{
	return pg->ctl ? vp_ctl_path(pg->ctl) : NULL;
}
