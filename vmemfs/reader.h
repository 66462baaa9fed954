/* SPDX-License-Identifier: MIT */
/*
 * The read path of `mem`: split a read into runs that are present in the
 * memory file and runs that are not, read the first with pread, fetch the
 * second through the backend, and re-validate both against page moves.
 * Never serves bytes it could not validate: it retries (bounded) and then
 * fails with EIO.
 */
#ifndef VMEMFS_READER_H
#define VMEMFS_READER_H

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
	uint64_t seq_total;	/* vmem_seq_total() as last seen ... */
	uint64_t seq_total_ns;	/* ... and since when (monotonic) */
};

/*
 * Open the memory file and the backend for @vm.  With vm->qmp, the QMP
 * client is created here and shared by everything that talks to QEMU.
 */
int vmem_reader_open(struct vmem_reader *r, const struct vmem_vm *vm,
		     char *err, size_t errlen);
void vmem_reader_close(struct vmem_reader *r);

/*
 * Read [@off, @off + @len) of RAM into @buf; the range is clipped to
 * ram_size.  Returns the number of bytes read or -errno.
 */
ssize_t vmem_read(struct vmem_reader *r, void *buf, size_t len, uint64_t off);

/* Where vmem_read_local() stopped. */
struct vmem_read_stop {
	size_t done;		/* bytes from the start of buf already read */
	unsigned int home;	/* the sub-host the next run needs */
};

/*
 * vmem_read() without waiting on a remote peer, for threads that must
 * stay free (FUSE's): it reads and validates runs as vmem_read() does
 * and stops before the first run only the backend can serve.  Then it
 * returns -EWOULDBLOCK with *stop set, having counted nothing in the
 * stats; the bytes before stop->done are final, and vmem_read() of the
 * rest, [off + done, off + len), completes the read exactly as one
 * vmem_read() of the whole would.  Otherwise as vmem_read().
 */
ssize_t vmem_read_local(struct vmem_reader *r, void *buf, size_t len,
			uint64_t off, struct vmem_read_stop *stop);

#endif
