// SPDX-License-Identifier: MIT
/*
 * The read path of `mem`.  Where a byte comes from:
 *   present in the memory file      -> pread here (memfile.c), inline
 *   hole with a home sub-host       -> the backend (backend_*.c)
 *   hole with no home               -> zeros
 * and every answer is re-validated before it is served, because the VM
 * moves pages while we read:
 *   - a local run must still be data after the pread, and no move may
 *     have begun in its stripes (evictseq.h) meanwhile;
 *   - a remote run must not overlap a move either, and a page that came
 *     back all zeros may be one the sub-host no longer holds because it
 *     moved to the main host: if the memory file has it now, read again.
 * A run that fails validation is read again from the start of the run,
 * half as long each time (down to one page, so a short read slips
 * between two moves), with a backoff that grows from the third try; after
 * VMEM_MAX_RETRIES tries, or once the run has gone a whole VM timeout
 * without progress, the read fails with EIO.  A run that only waits for
 * a move in flight to end is not a retry: it waits up to two timeouts
 * (mover_gone() decides after one).  The timeout restarts with each run
 * served, so it bounds a stall, not a long read.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/memunits.h"
#include "../common/timeutil.h"
#include "homes.h"
#include "qmp_libvirt.h"
#include "reader.h"

#define SEGMENT_STOPPED 1	/* read_segment(): the rest needs the backend */

int vmem_reader_open(struct vmem_reader *r, const struct vmem_vm *vm,
		     char *err, size_t errlen)
{
	struct vmem_qmp *q;
	bool none;

	q = vmem_qmp_for_vm(vm, &none, err, errlen);
	if (!q && !none) {
		memset(r, 0, sizeof(*r));
		return -1;
	}
	return vmem_reader_open_qmp(r, vm, q, err, errlen);
}

int vmem_reader_open_qmp(struct vmem_reader *r, const struct vmem_vm *vm,
			 struct vmem_qmp *qmp, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->vm = vm;
	r->qmp = qmp;
	r->mf.fd = -1;
	r->mf.seq_fd = -1;
	r->ops = vmem_backend_lookup(vm->backend, err, errlen);
	if (!r->ops || vmem_stats_init(&r->stats, vm->n_subhosts) < 0) {
		if (r->ops)
			snprintf(err, errlen, "out of memory");
		vmem_qmp_free(qmp);
		r->qmp = NULL;
		return -1;
	}
	pthread_mutex_init(&r->seq_lock, NULL);	/* destroyed from here on */
	if (vmem_memfile_open(&r->mf, vm->memory_file, err, errlen) < 0)
		goto fail;
	r->bh = r->ops->open(vm, &r->mf, &r->stats, r->qmp, err, errlen);
	if (!r->bh)
		goto fail;
	if (r->mf.seq)
		r->seq_total = vmem_seq_total(r->mf.seq);
	r->seq_total_ns = vmem_now_ns();
	return 0;
fail:
	vmem_qmp_free(r->qmp);
	r->qmp = NULL;
	vmem_memfile_close(&r->mf);
	vmem_stats_free(&r->stats);
	pthread_mutex_destroy(&r->seq_lock);
	return -1;
}

void vmem_reader_close(struct vmem_reader *r)
{
	if (r->bh)
		r->ops->close(r->bh);
	vmem_qmp_free(r->qmp);
	r->qmp = NULL;
	vmem_memfile_close(&r->mf);
	vmem_stats_free(&r->stats);
	pthread_mutex_destroy(&r->seq_lock);
	r->bh = NULL;
}

void vmem_reader_check(struct vmem_reader *r)
{
	vmem_memfile_check(&r->mf, true);
}

bool vmem_reader_dead(const struct vmem_reader *r)
{
	return vmem_memfile_dead(&r->mf);
}

void vmem_reader_count_error(struct vmem_reader *r)
{
	vmem_stat_add(r->stats.reads, 1);
	vmem_stat_add(r->stats.read_errors, 1);
}

static void backend_stats(void *arg, struct json_object *o)
{
	struct vmem_reader *r = arg;

	r->ops->stats_json(r->bh, o);
}

char *vmem_reader_stats_json(struct vmem_reader *r)
{
	return vmem_stats_json(&r->stats, r->vm,
			       r->ops->stats_json ? backend_stats : NULL, r);
}

char *vmem_reader_map_json(struct vmem_reader *r,
			   const struct vmem_gpa_map *gpa)
{
	return vmem_map_json(r->vm, &r->mf, gpa);
}

/*
 * A remote run came back; is any all-zero page of it now present in the
 * memory file?  Then the sub-host's zeros may be the hole it left when
 * the page moved to the main host, and the run must be read again.
 */
static bool zero_page_moved_here(struct vmem_reader *r,
				 const unsigned char *buf, uint64_t off,
				 uint64_t end)
{
	uint64_t p = off;

	while (p < end) {
		uint64_t next = vmem_page_floor(p) + VMEM_PAGE_SIZE;

		if (next > end)
			next = end;
		if (vmem_is_zero(buf + (p - off), next - p)) {
			bool present;
			uint64_t run_end;

			if (vmem_memfile_run(&r->mf, p, next, &present,
					     &run_end) < 0 || present)
				return true;
		}
		p = next;
	}
	return false;
}

/*
 * A move is in flight where we read, and no move anywhere has begun or
 * ended for a whole timeout: the mover died in the middle of it (QEMU
 * killed mid-eviction).  Its half move will never end (a new pager heals
 * the file when it starts), and what the memory file holds now is all
 * there is; waiting longer would only turn every read of that stripe into
 * EIO.  What we read is still checked for presence and for new moves.
 */
static bool mover_gone(struct vmem_reader *r)
{
	uint64_t total = vmem_seq_total(r->mf.seq), now = vmem_now_ns();
	bool gone = false;

	/* Only reads that met a move in flight come here: a lock is cheap
	 * enough, and keeps the total and its time one pair. */
	pthread_mutex_lock(&r->seq_lock);
	if (total != r->seq_total) {
		r->seq_total = total;
		r->seq_total_ns = now;
	} else if (now > r->seq_total_ns) {
		/* A thread whose clock reading is older than the pair's
		 * (it read the clock before another stored it) is not
		 * past the timeout by that. */
		gone = now - r->seq_total_ns >= r->vm->timeout_ms * VMEM_NS_PER_MS;
	}
	pthread_mutex_unlock(&r->seq_lock);
	return gone;
}

static void backoff(unsigned int attempt)
{
	struct timespec ts = { 0, 0 };

	if (attempt < 3)
		return;
	ts.tv_nsec = 1000L << (attempt < 13 ? attempt - 3 : 10);
	nanosleep(&ts, NULL);
}

/* May this read wait on the backend for @home?  Asks once per read. */
static bool gate_open(struct vmem_read_gate *g, int home)
{
	if (!g->granted) {
		g->home = (unsigned int)home;
		g->granted = g->may_wait && g->may_wait(g->arg, g->home);
	}
	return g->granted;
}

/*
 * Read [off, end) which has one home (or none) into buf.  Returns 0 or
 * -errno.  With @gate, a run that needs the backend is fetched only if
 * the gate lets it; else its start goes to *stop_at and the answer is
 * SEGMENT_STOPPED.
 */
static int read_segment(struct vmem_reader *r, unsigned char *buf,
			uint64_t off, uint64_t end, int home,
			struct vmem_read_gate *gate, uint64_t *stop_at)
{
	/* The timeout bounds how long a run may go without progress, not a
	 * whole read: a big read of many healthy chunks is not a failure. */
	const uint64_t timeout_ns = r->vm->timeout_ms * VMEM_NS_PER_MS;
	uint64_t deadline = vmem_now_ns() + timeout_ns;
	unsigned int attempt = 0;
	uint64_t p = off, max_run = UINT64_MAX;

	while (p < end) {
		unsigned char *dst = buf + (p - off);
		uint64_t run_end, token, *served = NULL;
		bool present, quiet, settled = false;
		int rc;

		rc = vmem_memfile_run(&r->mf, p, end, &present, &run_end);
		if (rc < 0)
			return rc;
		/*
		 * After a race, read less at a time: a VM that keeps moving
		 * pages near this range must not starve a long read, and a
		 * short one slips between two moves.  Page granular at most.
		 */
		if (run_end - p > max_run) {
			uint64_t cut = vmem_page_ceil(p + max_run);

			if (cut < run_end)
				run_end = cut;
		}
		token = vmem_memfile_seq_begin(&r->mf, p, run_end - p, &quiet);

		if (present) {
			rc = vmem_memfile_pread(&r->mf, dst, run_end - p, p);
			settled = rc == 0 &&
				  vmem_memfile_all_present(&r->mf, p, run_end) &&
				  vmem_memfile_seq_valid(&r->mf, p, run_end - p, token);
			if (rc < 0 && rc != -ENODATA)
				return rc;
			if (settled && (quiet || mover_gone(r)))
				served = &r->stats.bytes_local;
		} else if (home == VMEM_HOME_NONE) {
			/* Memory that has never been anywhere reads as zeros;
			 * it was a hole with no home when we looked. */
			memset(dst, 0, run_end - p);
			served = &r->stats.bytes_zero;
		} else if (gate && !gate_open(gate, home)) {
			/* Only the backend can serve it: not on this thread. */
			*stop_at = p;
			return SEGMENT_STOPPED;
		} else {
			rc = r->ops->fetch(r->bh, (unsigned int)home, dst, p,
					   run_end - p);
			if (rc < 0)
				return rc;
			/*
			 * VMEM_FETCH_LOCAL is the backend saying "it is in the
			 * memory file now": reading it there is the plan, not
			 * a race, so it is not counted as a retry.  (The move
			 * that brought it in has changed the sequence; the
			 * local read takes a fresh token.)
			 */
			if (rc == VMEM_FETCH_LOCAL) {
				if (++attempt > VMEM_MAX_RETRIES ||
				    vmem_now_ns() > deadline)
					return -EIO;
				continue;
			}
			settled = vmem_memfile_seq_valid(&r->mf, p, run_end - p, token) &&
				  !zero_page_moved_here(r, dst, p, run_end);
			if (settled && (quiet || mover_gone(r)))
				served = &r->stats.bytes_remote;
		}

		if (served) {
			vmem_stat_add(*served, run_end - p);
			p = run_end;
			attempt = 0;
			max_run = UINT64_MAX;
			deadline = vmem_now_ns() + timeout_ns;
			continue;
		}

		vmem_stat_add(r->stats.retries, 1);
		if (settled) {
			/*
			 * Only a move that began before we looked stands in
			 * the way: wait for it to end (moves take micro- to
			 * milliseconds), or for mover_gone() to say it never
			 * will, which it does within a timeout.
			 */
			if (vmem_now_ns() > deadline + timeout_ns)
				return -EIO;
			nanosleep(&(struct timespec){ 0, 200000 }, NULL);
			continue;
		}
		/* The run raced a page move: read it again, a smaller piece. */
		max_run = (run_end - p) / 2 > VMEM_PAGE_SIZE ? (run_end - p) / 2 :
			  VMEM_PAGE_SIZE;
		if (++attempt > VMEM_MAX_RETRIES || vmem_now_ns() > deadline)
			return -EIO;
		backoff(attempt);
	}
	return 0;
}

static ssize_t read_ram(struct vmem_reader *r, void *buf, size_t len,
			uint64_t off, struct vmem_read_gate *gate)
{
	uint64_t t0 = vmem_now_ns(), end, pos, stop_at = 0;
	int rc = 0;

	/* A deleted or replaced memory file is a dead VM (memfile.h). */
	if (vmem_memfile_check(&r->mf, false) < 0) {
		vmem_stat_add(r->stats.reads, 1);
		vmem_stat_add(r->stats.read_errors, 1);
		return -EIO;
	}
	if (off >= r->vm->ram_size)
		off = end = r->vm->ram_size;	/* EOF */
	else
		end = off + len;
	if (end > r->vm->ram_size || end < off)
		end = r->vm->ram_size;

	for (pos = off; pos < end;) {
		uint64_t home_end, seg_end;
		int home = vmem_home_of(r->vm, pos, &home_end);

		seg_end = home_end < end ? home_end : end;
		rc = read_segment(r, (unsigned char *)buf + (pos - off), pos,
				  seg_end, home, gate, &stop_at);
		if (rc == SEGMENT_STOPPED) {
			/* Not a read yet: whoever reads the rest counts it. */
			gate->stopped = true;
			gate->done = (size_t)(stop_at - off);
			return -EWOULDBLOCK;
		}
		if (rc < 0)
			break;
		pos = seg_end;
	}
	vmem_stat_add(r->stats.reads, 1);
	vmem_hist_add(&r->stats.latency, vmem_now_ns() - t0);
	if (rc < 0) {
		vmem_stat_add(r->stats.read_errors, 1);
		return rc;
	}
	return (ssize_t)(end - off);
}

ssize_t vmem_read(struct vmem_reader *r, void *buf, size_t len, uint64_t off)
{
	return read_ram(r, buf, len, off, NULL);
}

ssize_t vmem_read_gated(struct vmem_reader *r, void *buf, size_t len,
			uint64_t off, struct vmem_read_gate *gate)
{
	return read_ram(r, buf, len, off, gate);
}
