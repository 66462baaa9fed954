/* SPDX-License-Identifier: MIT */
/*
 * vmempager: userfaultfd remote paging for a VM whose RAM is a shared,
 * sparse memory file (QEMU memory-backend-file,share=on in /dev/shm).
 *
 * Model.  File offset = RAM offset.  A page present in the memory file
 * ("data" for SEEK_DATA) is on the main host; a hole is not.  Each
 * sub-host is an NBD export of the full RAM size that is the *home* of one
 * RAM range: a page that is not local lives there (or nowhere, and then
 * reads as zeros).  A page lives in exactly one place: moving it in trims
 * it on the sub-host, moving it out punches it from the memory file.
 *
 * The caller (QEMU glue or a test) maps the memory file MAP_SHARED and
 * hands the mapping to the pager, which registers it with userfaultfd
 * (MISSING|WP).  Any access to a hole through that mapping, from any
 * thread or from KVM, blocks until the pager has installed the page.
 * The pager itself never touches the mapping: it reads the file with
 * pread and installs pages with UFFDIO_COPY, so it can never fault on
 * itself.
 *
 * Fault path: the chunk-size aligned window around the faulting page,
 * clipped to the faulting page's home range, is fetched with one NBD read,
 * its still-absent pages are installed with UFFDIO_COPY (present pages are
 * never overwritten), the faulting thread is woken, and the window's
 * discard on the sub-host is queued for the trim thread.  Pages without a home are zero-filled.
 *
 * Eviction (local-limit): see pager/README.md.  CLOCK over chunk-sized
 * units whose reference bit is set when the chunk is paged in, sparing
 * the chunks of the most recent page-ins; moving a chunk out is
 * write-protect -> copy to home -> punch -> un-protect, so a writer
 * racing it blocks and then refetches: no write is ever lost.
 * Pages without a home are never evicted.
 *
 * Every move is bracketed by vmem_seq_move_begin/end on the sequence file
 * (common/evictseq.h) so vmemfs can detect a read that raced a move.
 *
 * Threads: vmem_pager_start() starts the fault threads and, when
 * local_limit < size, one eviction thread.  All functions below are
 * thread safe, except that new/start/stop/free must not race each other.
 */
#ifndef VMEM_PAGER_H
#define VMEM_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"

struct vmem_pager;

/* The home of RAM range [start, end): an NBD URI (as libnbd accepts). */
struct vmem_pager_subhost {
	const char *uri;
	uint64_t start;
	uint64_t end;
	const struct vmem_tls *tls;	/* NULL: clear NBD (copied) */
};

struct vmem_pager_params {
	/*
	 * MAP_SHARED mapping of the whole memory file, page aligned,
	 * @size bytes.  Registered with userfaultfd by vmem_pager_new()
	 * and unregistered by vmem_pager_free().
	 */
	void *host_addr;
	uint64_t size;			/* multiple of the page size */

	/* The memory file, O_RDWR (pread, fallocate, SEEK_DATA).  The
	 * pager dups it, the caller keeps ownership of its own fd. */
	int mem_fd;

	/*
	 * Sequence file path.  The pager creates it if needed, sizes it
	 * to VMEM_SEQ_FILE_SIZE and maps it.  NULL = mem_path + ".seq".
	 */
	const char *seq_path;
	const char *mem_path;		/* used only when seq_path is NULL */

	uint64_t chunk_size;		/* power of 2, >= page size; 0 = 64K */
	/*
	 * Cap on resident bytes (memory file data).  0 = no limit.  Must
	 * otherwise be at least (fault threads + 2) * chunk_size.  The
	 * chunks of the newest max(8, homed resident chunks / 2) page-ins
	 * are never evicted (a vCPU must get to use the page it faulted
	 * on), and pages without a home never are: when nothing else is
	 * left, the pager goes over the limit (stats.over_limit) rather
	 * than stall.  Size it above what the guest keeps in unhomed RAM,
	 * plus the homed working set (README "Sizing local-limit").
	 */
	uint64_t local_limit;
	/*
	 * Per NBD request budget, and how long page_in/page_out retry a
	 * failing sub-host before they give up.  0 = 2000 ms.  The fault
	 * path never gives up (a vCPU cannot take EIO): it retries with
	 * backoff for as long as the sub-host is down.
	 */
	uint64_t timeout_ms;

	const struct vmem_pager_subhost *subhosts;	/* disjoint ranges */
	size_t n_subhosts;

	unsigned int n_fault_threads;	/* 0 = 2 */
	bool quiet;			/* no log lines on stderr */

	/*
	 * Serve the control socket (common/pagerctl.h) at this path from
	 * vmem_pager_start() on, NULL = none.  A stale socket of ours at
	 * the path is replaced; anything else there is an error.
	 */
	const char *ctl_path;
	/*
	 * With ctl_path NULL: serve it at mem_path + VMEM_PAGER_CTL_SUFFIX,
	 * and if that fails, log it and go on without (QMP still works).
	 * vmem_pager_params_from_vm() sets it.
	 */
	bool ctl_beside_mem;
};

/*
 * Fill @p's config-derived fields from a resolved vmem_vm: size,
 * chunk_size, local_limit, timeout_ms, mem_path and the sub-hosts.  @subs
 * must have room for vm->n_subhosts entries; it borrows vm's strings, so
 * keep @vm alive until vmem_pager_new() returned.  host_addr and mem_fd
 * are left for the caller.
 */
void vmem_pager_params_from_vm(struct vmem_pager_params *p,
			       const struct vmem_vm *vm,
			       struct vmem_pager_subhost *subs);

/*
 * Validate @p, open the sequence file, register the mapping with
 * userfaultfd and count what is already resident.  No thread runs yet and
 * no sub-host is contacted (connections are made on first use).  Returns
 * NULL with a message in @err on failure.
 */
struct vmem_pager *vmem_pager_new(const struct vmem_pager_params *p,
				  char *err, size_t errlen);

/* Start the fault and eviction threads.  0, or -1 with errno. */
int vmem_pager_start(struct vmem_pager *pg);

/*
 * Stop and join the threads.  Faults taken after this block until
 * vmem_pager_start() is called again or vmem_pager_free() runs.
 */
void vmem_pager_stop(struct vmem_pager *pg);

/*
 * Stop, unregister the mapping and free everything.  After this, an
 * access to a hole through the mapping allocates a zero page: call it
 * only when nothing touches the mapping any more (VM stopped).
 */
void vmem_pager_free(struct vmem_pager *pg);

/*
 * Make [offset, offset + length) resident (page-aligned outward) and
 * return when all of it is in the memory file.  The range is protected
 * from eviction until then, so it must fit in local_limit with room to
 * spare: length + (fault threads + 4) * chunk_size <= local_limit, else
 * EFBIG.  Large ranges are fetched by up to 4 threads at once.
 * Retries a failing sub-host, and waits for RAM that a fault thread holds
 * while its sub-host is down, until timeout_ms pass without progress
 * (a long range on a healthy sub-host may take longer than that), then
 * returns -1 (errno ETIMEDOUT, EIO, ECONNREFUSED, ...; EINVAL for a range
 * outside RAM) with a message in @err.  Pages that were paged in before
 * the failure stay.
 */
int vmem_pager_page_in(struct vmem_pager *pg, uint64_t offset,
		       uint64_t length, char *err, size_t errlen);

/* The most ranges one vmem_pager_page_in_ranges() call takes. */
#define VMEM_PAGER_MAX_RANGES 1024

struct vmem_pager_range {
	uint64_t offset, length;
};

/*
 * vmem_pager_page_in() of a list of @n ranges (any order, may overlap),
 * in one call: 0 when all of them are resident, else -1 as there (the
 * first error; what got in stays).  The chunks of all ranges are fetched
 * in batches whose reads go out pipelined; the local-limit check is on
 * the sum of the (chunk-clipped) ranges.
 */
int vmem_pager_page_in_ranges(struct vmem_pager *pg,
			      const struct vmem_pager_range *r, size_t n,
			      char *err, size_t errlen);

/*
 * Discards of sub-host copies after a move in are queued and sent by a
 * trim thread, off the fault and page-in paths (README.md "Trimming" says
 * why a late or lost one is harmless).  trim_flush() waits until none is
 * queued or in flight: 0, or -1 with errno ETIMEDOUT, or EAGAIN when
 * trims are held or no trim thread runs.  trim_hold(true) keeps the
 * thread from sending any (tests: a crash before the trim, a move-out
 * overtaking a queued trim); while held, a full queue discards at once.
 */
int vmem_pager_trim_flush(struct vmem_pager *pg, uint64_t timeout_ms);
void vmem_pager_trim_hold(struct vmem_pager *pg, bool hold);
size_t vmem_pager_trims_pending(struct vmem_pager *pg);

#define VMEM_PAGER_CTL_SUFFIX ".ctl"

/* The control socket's path, or NULL when the pager serves none. */
const char *vmem_pager_ctl_path(struct vmem_pager *pg);

/*
 * Move the resident pages of [offset, offset + length) to their home
 * sub-hosts.  Pages without a home stay.  Returns 0 when every homed page
 * of the range has left the memory file, else -1 as for page_in.
 */
int vmem_pager_page_out(struct vmem_pager *pg, uint64_t offset,
			uint64_t length, char *err, size_t errlen);

struct vmem_pager_subhost_stats {
	const char *uri;		/* borrowed from the pager */
	uint64_t start, end;
	uint64_t bytes_in;		/* fetched from this sub-host */
	uint64_t bytes_out;		/* written to it by eviction */
	uint64_t errors;		/* failed NBD requests/connects */
	bool up;			/* last request succeeded */
};

struct vmem_pager_stats {
	uint64_t ram_size;
	uint64_t local_limit;		/* 0 = none */
	uint64_t chunk_size;
	uint64_t resident_bytes;	/* data bytes of the memory file */
	uint64_t faults;		/* MISSING faults handled */
	uint64_t wp_faults;		/* writers that hit an eviction */
	uint64_t page_ins;		/* windows moved in (fault + API) */
	uint64_t page_outs;		/* windows moved out by page_out() */
	uint64_t evictions;		/* windows moved out by the limit */
	uint64_t bytes_in;		/* installed from sub-hosts */
	uint64_t bytes_zero;		/* zero-filled, no home */
	uint64_t bytes_out;		/* written to sub-hosts */
	uint64_t retries;		/* failed sub-host attempts retried */
	uint64_t over_limit;		/* times nothing could be evicted */
	uint64_t trims;			/* discards sent to sub-hosts */
	uint64_t trims_dropped;		/* superseded by a move-out */
	size_t n_subhosts;
};

/*
 * Snapshot the counters.  @sh (may be NULL) receives up to @n_sh
 * per-sub-host entries, in the order of the params.
 */
void vmem_pager_get_stats(struct vmem_pager *pg, struct vmem_pager_stats *s,
			  struct vmem_pager_subhost_stats *sh, size_t n_sh);

/*
 * Resident bytes of the RAM range [start, end) (page aligned, as sub-host
 * ranges are; clipped to RAM), from the per-chunk counts the pager keeps
 * as pages move, for callers that must not walk the memory file's data
 * map (QEMU's query-vmem runs under the big QEMU lock).  Takes no lock,
 * so it never waits on a fault thread: a move in progress counts as done
 * or not yet begun.  Costs one load per chunk of the range, plus one
 * cachestat(2) bounded by a chunk for each end of the range that cuts a
 * partly resident chunk.
 */
uint64_t vmem_pager_resident_in(struct vmem_pager *pg, uint64_t start,
				uint64_t end);

#endif
