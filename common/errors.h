/* SPDX-License-Identifier: MIT */
/*
 * How each layer reports an error.  One convention per layer, chosen by
 * who reads the error; a function that does otherwise is a bug.  Nothing
 * to include for it: this header only writes the rules down, and each
 * module's header says which applies.
 *
 * 1. Set-up and parsing -- common/config*.c, vmemfs/gpa.c, qemu_info.c,
 *    and every *_open/_new/_init/_start that has an err buffer: return -1
 *    (or NULL) with a message in @err for a human, naming the file, line
 *    and value at fault ("PATH:LINE: key 'value' ...").  errno is not
 *    part of the answer.  vmem_vm_resolve_unstarted() alone may return 1:
 *    a warning in @err.
 *
 * 2. The read path of vmemfs -- reader.c, memfile.c (but its open),
 *    the backends' fetch(), physmem.c, homes.c's map, stats and the
 *    cache's allocating calls: return -errno, the value FUSE answers with
 *    (-EIO for a failed or silent sub-host, -ENOMEM, -EINVAL for a range
 *    outside what was promised), never -1.  Nothing is written to a
 *    buffer: what a human must know goes to the log (log.h), rate
 *    limited, since one failure repeats for every read of it.  Functions
 *    that build a text for FUSE (the stats and map JSON) return NULL with
 *    errno set.
 *
 * 3. Talking to a peer -- common/nbdconn.c, vmemfs/qmp.c: return -errno
 *    (nbdconn_run() also NBDCONN_REFUSED, > 0: the server refused a
 *    request) with the peer's reason in @err.  The message does not name
 *    the peer; the caller, which knows which sub-host or VM it is, does.
 *
 * 4. The pager -- pager/*.c, a library QEMU calls and whose callers fill
 *    an Error **: return -1 with errno set and, where the call has an err
 *    buffer, the message in it ("URI: read: why" for pager/remote.c).
 *    errno survives until the caller reads it (no call in between).
 *
 * Layers meet at the edges: the read path turns a peer's -errno into its
 * own (-EIO), the pager turns nbdconn's -errno into errno.
 */
#ifndef VMEM_ERRORS_H
#define VMEM_ERRORS_H
#endif
