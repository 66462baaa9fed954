/* SPDX-License-Identifier: MIT */
/*
 * A QMP client for one VM's monitor socket, safe to use from many threads.
 *
 * Commands from all threads share one connection; each carries its own id
 * and a reader thread hands every reply to the thread waiting for that id,
 * and every event to the event callback, so asynchronous events may come
 * between (or instead of) replies.  Every wait is bounded by the timeout;
 * a VM that goes away fails the commands in flight with EIO, and the next
 * command reconnects (greeting and capability negotiation again).
 */
#ifndef VMEMFS_QMP_H
#define VMEMFS_QMP_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

struct vmem_qmp;

typedef void vmem_qmp_event_fn(void *opaque, const char *event,
			       json_object *data);

/* Does not connect yet: a VM that is not up is only an error for commands. */
struct vmem_qmp *vmem_qmp_new(const char *socket_path, uint64_t timeout_ms);
void vmem_qmp_free(struct vmem_qmp *q);

/* Called on the reader thread for each event; must not call execute. */
void vmem_qmp_set_event_cb(struct vmem_qmp *q, vmem_qmp_event_fn *fn,
			   void *opaque);

/*
 * Run @cmd with @args (may be NULL; ownership passes to the call) and wait
 * for its reply.  Returns 0 and, if @ret is not NULL, the "return" value
 * (caller must json_object_put it); -EIO when the VM is unreachable, did
 * not answer within the timeout, or went away; -EREMOTEIO when QEMU
 * answered with an error.  A message goes to @err either way.
 */
int vmem_qmp_execute(struct vmem_qmp *q, const char *cmd, json_object *args,
		     json_object **ret, char *err, size_t errlen);

/*
 * Run @n commands @cmd with arguments @args[i] (taken), queued back to
 * back on the connection, and wait for all of them: one timeout for the
 * batch.  Returns 0 when every one succeeded, else the first failure as
 * for vmem_qmp_execute().  Return values are dropped.
 */
int vmem_qmp_execute_batch(struct vmem_qmp *q, const char *cmd, size_t n,
			   json_object **args, char *err, size_t errlen);

/*
 * The reader thread's parser, exposed for the fuzzer (fuzz/fuzz_qmp.c):
 * feed @len bytes as they came from QEMU's socket to @tok (one tokener
 * per connection; a message may span calls) and hand each complete
 * message to @q: a reply wakes the command waiting for its id, an event
 * goes to the event callback, anything else is dropped.  @msg counts the
 * bytes of the message being parsed (0 at the start of a connection): a
 * message over 4 MiB (QMP_MAX_MSG) is a broken peer.  Returns 0 when all bytes
 * were taken, -1 with a reason in *@why when the stream is not JSON or a
 * message is too large (the reader then drops the connection).
 */
int vmem_qmp_feed(struct vmem_qmp *q, json_tokener *tok, size_t *msg,
		  const char *buf, size_t len, const char **why);

/* Number of connections made so far (for stats and tests). */
uint64_t vmem_qmp_connects(struct vmem_qmp *q);

/*
 * Another way to reach the same monitor: a transport takes over every
 * call above (vmemfs/qmp_libvirt.c goes through libvirtd, which owns a
 * libvirt domain's only monitor).  It keeps the promises of this header:
 * bounded waits, -EIO for an unreachable VM, -EREMOTEIO for QEMU's
 * errors, events to the callback.  @execute_batch takes @args; @ret is
 * NULL for a batch.  @free releases @priv.
 */
struct vmem_qmp_transport {
	int (*execute_batch)(void *priv, const char *cmd, size_t n,
			     json_object **args, json_object **ret,
			     char *err, size_t errlen);
	void (*set_event_cb)(void *priv, vmem_qmp_event_fn *fn, void *opaque);
	uint64_t (*connects)(void *priv);
	void (*free)(void *priv);
};

/* A client on @tr (which owns @priv from now on, also on failure). */
struct vmem_qmp *vmem_qmp_new_transport(const struct vmem_qmp_transport *tr,
					void *priv);
/* @q's transport's @priv when it is @tr, else NULL. */
void *vmem_qmp_transport_priv(struct vmem_qmp *q,
			      const struct vmem_qmp_transport *tr);

#endif
