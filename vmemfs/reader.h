/* SPDX-License-Identifier: MIT */
/*
 * The read path of `mem`: split a read into runs that are present in the
 * memory file and runs that are not, read the first with pread, fetch the
 * second through the backend, and re-validate both against page moves.
 * Never serves bytes it could not validate: it retries (bounded) and then
 * fails with EIO.
 *
 * Errors: opening is set-up (-1 and a message), reading returns -errno
 * (common/errors.h).
 */
#ifndef VMEMFS_READER_H
#define VMEMFS_READER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/config.h"
#include "backend.h"
#include "memfile.h"
#include "qmp.h"
#include "stats.h"

/* Retries of one run after a page moved, before EIO. */
#define VMEM_MAX_RETRIES 64

struct vmem_reader {
	const struct vmem_vm *vm;
	struct vmem_memfile mf;
	const struct vmem_backend_ops *ops;
	void *bh;
	struct vmem_stats stats;
	struct vmem_qmp *qmp;	/* the VM's monitor, or NULL; owned here */
	/* When a move anywhere last began or ended: a pair, read and
	 * written together under seq_lock (a new total with an old time
	 * would declare the mover gone too early). */
	pthread_mutex_t seq_lock;
	uint64_t seq_total;	/* vmem_seq_total() as last seen ... */
	uint64_t seq_total_ns;	/* ... and since when (monotonic) */
};

/*
 * Open the memory file and the backend for @vm.  With vm->qmp or
 * vm->domain, the QMP client (qmp_libvirt.h: vmem_qmp_for_vm) is created
 * here and shared by everything that talks to QEMU.
 */
int vmem_reader_open(struct vmem_reader *r, const struct vmem_vm *vm,
		     char *err, size_t errlen);
/* The same with the client @qmp (may be NULL), which @r owns from now on,
 * also on failure. */
int vmem_reader_open_qmp(struct vmem_reader *r, const struct vmem_vm *vm,
			 struct vmem_qmp *qmp, char *err, size_t errlen);
void vmem_reader_close(struct vmem_reader *r);

/*
 * What the front end (fs.c) asks of the reader, so that it never reaches
 * into the memory file, the stats or the backend:
 *   vmem_reader_check()       is the memory file still the VM's?  (at
 *                             open: vmem_memfile_check(), forced)
 *   vmem_reader_dead()        has the VM gone (its file deleted)?
 *   vmem_reader_count_error() one read answered with an error outside
 *                             vmem_read() (a queue that timed out)
 *   vmem_reader_stats_json()  the `stats` text, with the backend's own
 *                             counters; malloc'd, NULL on ENOMEM
 *   vmem_reader_map_json()    the `map` text (homes.h) for @gpa
 */
void vmem_reader_check(struct vmem_reader *r);
bool vmem_reader_dead(const struct vmem_reader *r);
void vmem_reader_count_error(struct vmem_reader *r);
char *vmem_reader_stats_json(struct vmem_reader *r);
struct vmem_gpa_map;
char *vmem_reader_map_json(struct vmem_reader *r,
			   const struct vmem_gpa_map *gpa);

/*
 * Read [@off, @off + @len) of RAM into @buf; the range is clipped to
 * ram_size.  Returns the number of bytes read or -errno.
 */
ssize_t vmem_read(struct vmem_reader *r, void *buf, size_t len, uint64_t off);

/*
 * What lets a read wait on a sub-host, for vmem_read_gated().  The caller
 * sets may_wait and arg, and granted and stopped to false.
 */
struct vmem_read_gate {
	/* May this thread wait on sub-host @home?  NULL: never. */
	bool (*may_wait)(void *arg, unsigned int home);
	void *arg;
	bool granted;		/* may_wait said yes, for home */
	bool stopped;		/* the read stopped at done, for home */
	unsigned int home;	/* the sub-host may_wait was asked about */
	size_t done;		/* bytes from the start of buf read when stopped */
};

/*
 * vmem_read() for threads that must not wait on a remote peer unless told
 * they may (FUSE's): before the first run that only the backend can
 * serve, it asks gate->may_wait() (once per read).  Yes: the read goes on
 * as vmem_read() (and the caller gives back what may_wait took once this
 * returns).  No: it returns -EWOULDBLOCK with gate->stopped, having
 * counted nothing in the stats; the bytes before gate->done are final,
 * and vmem_read() of the rest, [off + done, off + len), completes the
 * read exactly as one vmem_read() of the whole would.
 */
ssize_t vmem_read_gated(struct vmem_reader *r, void *buf, size_t len,
			uint64_t off, struct vmem_read_gate *gate);

#endif
