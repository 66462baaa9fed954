// SPDX-License-Identifier: MIT
/*
 * QMP client.  See qmp.h for what it promises.
 *
 * QEMU sends one JSON object per message; we feed the byte stream to a
 * json-c tokener rather than splitting on newlines, so we do not depend on
 * how QEMU frames its output.  Replies are matched to commands by an id
 * we put in each command, which also makes a late reply to a command that
 * already timed out harmless: nobody waits for its id any more.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../common/timeutil.h"
#include "log.h"
#include "qmp.h"

/* After a failed connect, commands fail at once for this long. */
#define RECONNECT_HOLDOFF_NS (100 * VMEM_NS_PER_MS)

/*
 * The largest QMP message we take.  json-c's tokener keeps a message's
 * strings whole until it ends, so without a cap a peer can make us hold
 * any amount (a 100 MB string took RSS to 199 MB).  The largest answers
 * we ask for are human-monitor-command "info mtree -f" and query-vmem:
 * measured with QEMU 7.2, -M q35 -m 4G, VGA and 160 virtio PCI devices,
 * info mtree -f is 17 KB (the flat views of like devices are shared), and
 * query-vmem with the most sub-hosts a config allows (128) is about
 * 16 KB.  4 MiB is over 200 times that; a bigger message is not QEMU
 * answering us, and is treated as a broken peer: the connection is
 * dropped, the commands in flight get EIO, and the next one reconnects.
 */
#define QMP_MAX_MSG (4u << 20)
_Static_assert(QMP_MAX_MSG == 4u << 20, "vmem_qmp_feed's message says 4 MiB");

struct pending {
	uint64_t id;
	bool done;
	json_object *reply;	/* NULL with done: the connection was lost */
	struct pending *next;
};

/*
 * One connection.  Counted: the reader thread holds one reference and each
 * command holds one while it writes, so the socket is closed only when
 * nobody can still write to it (a closed fd number may be reused at once
 * by some other open).
 */
struct conn {
	int fd;
	int refs;		/* under vmem_qmp.lock */
};

struct vmem_qmp {
	const struct vmem_qmp_transport *tr;	/* NULL: the socket below */
	void *tr_priv;

	char *path;
	uint64_t timeout_ms;

	pthread_mutex_t lock;	/* everything below */
	pthread_cond_t cond;	/* replies arrived, connection state changed */
	struct conn *conn;	/* NULL while not connected */
	bool connecting;
	bool reader_joinable;
	pthread_t reader;
	uint64_t next_id;
	struct pending *pending;
	uint64_t connects;
	uint64_t failed_at_ns;	/* last failed connect, 0 if none */
	char last_error[160];
	char lost_why[96];	/* why the reader dropped the last
				 * connection; "" for end of stream */

	pthread_mutex_t wlock;	/* one writer on the socket at a time */

	vmem_qmp_event_fn *event_fn;
	void *event_opaque;
};

/* With q->lock held. */
static void conn_put(struct conn *c)
{
	if (--c->refs == 0) {
		close(c->fd);
		free(c);
	}
}

struct vmem_qmp *vmem_qmp_new(const char *socket_path, uint64_t timeout_ms)
{
	struct vmem_qmp *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->path = strdup(socket_path);
	if (!q->path) {
		free(q);
		return NULL;
	}
	q->timeout_ms = timeout_ms;
	pthread_mutex_init(&q->lock, NULL);
	pthread_mutex_init(&q->wlock, NULL);
	vmem_cond_init_monotonic(&q->cond);
	return q;
}

struct vmem_qmp *vmem_qmp_new_transport(const struct vmem_qmp_transport *tr,
					void *priv)
{
	struct vmem_qmp *q = calloc(1, sizeof(*q));

	if (!q) {
		tr->free(priv);
		return NULL;
	}
	q->tr = tr;
	q->tr_priv = priv;
	return q;
}

void *vmem_qmp_transport_priv(struct vmem_qmp *q,
			      const struct vmem_qmp_transport *tr)
{
	return q && q->tr == tr ? q->tr_priv : NULL;
}

void vmem_qmp_set_event_cb(struct vmem_qmp *q, vmem_qmp_event_fn *fn,
			   void *opaque)
{
	if (q->tr) {
		q->tr->set_event_cb(q->tr_priv, fn, opaque);
		return;
	}
	pthread_mutex_lock(&q->lock);
	q->event_fn = fn;
	q->event_opaque = opaque;
	pthread_mutex_unlock(&q->lock);
}

uint64_t vmem_qmp_connects(struct vmem_qmp *q)
{
	uint64_t n;

	if (q->tr)
		return q->tr->connects(q->tr_priv);
	pthread_mutex_lock(&q->lock);
	n = q->connects;
	pthread_mutex_unlock(&q->lock);
	return n;
}

static int write_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (poll(&pfd, 1, vmem_ms_left(deadline)) == 0)
			return -ETIMEDOUT;
	}
	return 0;
}

/*
 * Read from @fd until the tokener yields one object; used only while
 * connecting, before the reader thread owns the socket.  Bytes after the
 * object stay in @buf (@have) for the next call.
 */
static json_object *read_object(int fd, json_tokener *tok, char *buf,
				size_t cap, size_t *have, uint64_t deadline)
{
	size_t fed = 0;		/* bytes of this message so far */

	for (;;) {
		if (*have) {
			json_object *o = json_tokener_parse_ex(tok, buf, (int)*have);
			size_t used = json_tokener_get_parse_end(tok);

			fed += used;
			if (fed > QMP_MAX_MSG) {
				json_object_put(o);
				return NULL;
			}
			if (!o && json_tokener_get_error(tok) != json_tokener_continue)
				return NULL;
			memmove(buf, buf + used, *have - used);
			*have -= used;
			if (o) {
				json_tokener_reset(tok);
				return o;
			}
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, vmem_ms_left(deadline)) <= 0)
			return NULL;
		n = recv(fd, buf + *have, cap - *have, MSG_DONTWAIT);
		if (n <= 0) {
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			return NULL;
		}
		*have += (size_t)n;
	}
}

/* Connect, take the greeting, negotiate capabilities.  Returns fd or -1. */
static int do_connect(struct vmem_qmp *q, uint64_t deadline, char *err,
		      size_t errlen)
{
	static const char caps[] =
		"{\"execute\": \"qmp_capabilities\", \"id\": \"caps\"}\r\n";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	json_tokener *tok = json_tokener_new();
	char buf[4096];
	size_t have = 0;
	json_object *o = NULL, *v;
	int fd;

	if (!tok) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (strlen(q->path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long", q->path);
		goto fail_tok;
	}
	strcpy(sa.sun_path, q->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail_tok;
	}
	/* A unix connect does not wait for the peer to accept. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "%s: %s", q->path, strerror(errno));
		goto fail_fd;
	}
	o = read_object(fd, tok, buf, sizeof(buf), &have, deadline);
	if (!o || !json_object_object_get_ex(o, "QMP", NULL)) {
		snprintf(err, errlen, "%s: no QMP greeting", q->path);
		goto fail_fd;
	}
	json_object_put(o);
	o = NULL;
	if (write_all(fd, caps, sizeof(caps) - 1, deadline) < 0) {
		snprintf(err, errlen, "%s: cannot send qmp_capabilities", q->path);
		goto fail_fd;
	}
	for (;;) {
		o = read_object(fd, tok, buf, sizeof(buf), &have, deadline);
		if (!o) {
			snprintf(err, errlen, "%s: no answer to qmp_capabilities",
				 q->path);
			goto fail_fd;
		}
		if (json_object_object_get_ex(o, "return", NULL))
			break;
		if (json_object_object_get_ex(o, "error", &v)) {
			snprintf(err, errlen, "%s: qmp_capabilities: %s", q->path,
				 json_object_to_json_string(v));
			goto fail_fd;
		}
		json_object_put(o);	/* an event before the reply */
	}
	json_object_put(o);
	json_tokener_free(tok);
	/* Nothing else should have come yet; if it did, it was an event
	 * sent before we could listen, which is no loss. */
	return fd;
fail_fd:
	json_object_put(o);
	close(fd);
fail_tok:
	json_tokener_free(tok);
	return -1;
}

static void dispatch(struct vmem_qmp *q, json_object *o)
{
	json_object *v;

	if (json_object_object_get_ex(o, "event", &v)) {
		json_object *data = NULL;
		vmem_qmp_event_fn *fn;
		void *opaque;

		json_object_object_get_ex(o, "data", &data);
		pthread_mutex_lock(&q->lock);
		fn = q->event_fn;
		opaque = q->event_opaque;
		pthread_mutex_unlock(&q->lock);
		if (fn)
			fn(opaque, json_object_get_string(v), data);
		json_object_put(o);
		return;
	}
	if (json_object_object_get_ex(o, "id", &v) &&
	    json_object_is_type(v, json_type_int)) {
		uint64_t id = json_object_get_uint64(v);
		struct pending *p;

		pthread_mutex_lock(&q->lock);
		for (p = q->pending; p; p = p->next) {
			if (p->id == id && !p->done) {
				p->done = true;
				p->reply = o;
				o = NULL;
				pthread_cond_broadcast(&q->cond);
				break;
			}
		}
		pthread_mutex_unlock(&q->lock);
	}
	/* A reply nobody waits for (it timed out) or one we cannot match. */
	json_object_put(o);
}

int vmem_qmp_feed(struct vmem_qmp *q, json_tokener *tok, size_t *msg,
		  const char *buf, size_t len, const char **why)
{
	size_t off = 0;

	while (off < len) {
		json_object *o = json_tokener_parse_ex(tok, buf + off,
						       (int)(len - off));
		size_t used = json_tokener_get_parse_end(tok);

		off += used;
		*msg += used;
		if (*msg > QMP_MAX_MSG) {
			json_object_put(o);
			*why = "a message larger than 4 MiB";
			vmem_log(LOG_WARNING, "QMP %s: message larger than %u "
				 "MiB; dropping the connection", q->path,
				 QMP_MAX_MSG >> 20);
			return -1;
		}
		if (o) {
			json_tokener_reset(tok);
			*msg = 0;
			dispatch(q, o);
		} else if (json_tokener_get_error(tok) !=
			   json_tokener_continue) {
			*why = "a message that is not JSON";
			return -1;
		}
	}
	return 0;
}

static void *reader_main(void *arg)
{
	struct vmem_qmp *q = arg;
	json_tokener *tok = json_tokener_new();
	const char *why = "";
	struct conn *c;
	size_t msg = 0;		/* bytes of the message being parsed */
	char buf[16384];

	pthread_mutex_lock(&q->lock);
	c = q->conn;
	pthread_mutex_unlock(&q->lock);

	while (tok) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (vmem_qmp_feed(q, tok, &msg, buf, (size_t)n, &why) < 0)
			break;	/* not QMP or too large: drop the connection */
	}
	json_tokener_free(tok);
	pthread_mutex_lock(&q->lock);
	snprintf(q->lost_why, sizeof(q->lost_why), "%s", why);
	/* Every command in flight on this connection is lost. */
	for (struct pending *p = q->pending; p; p = p->next)
		p->done = true;
	shutdown(c->fd, SHUT_RDWR);
	q->conn = NULL;
	conn_put(c);
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* With q->lock held.  Returns 0 when connected, -EIO otherwise. */
static int ensure_connected(struct vmem_qmp *q, uint64_t deadline, char *err,
			    size_t errlen)
{
	while (!q->conn) {
		struct conn *c;
		struct timespec ts;
		int fd;

		if (q->connecting) {
			ts = vmem_timespec(deadline);
			if (pthread_cond_timedwait(&q->cond, &q->lock, &ts) ==
			    ETIMEDOUT) {
				snprintf(err, errlen, "%s: timed out waiting for connection",
					 q->path);
				return -EIO;
			}
			continue;
		}
		if (q->failed_at_ns &&
		    vmem_now_ns() - q->failed_at_ns < RECONNECT_HOLDOFF_NS) {
			snprintf(err, errlen, "%s", q->last_error);
			return -EIO;
		}
		q->connecting = true;
		if (q->reader_joinable) {
			/* The last connection's reader has set q->conn to
			 * NULL and is on its way out (or gone). */
			pthread_mutex_unlock(&q->lock);
			pthread_join(q->reader, NULL);
			pthread_mutex_lock(&q->lock);
			q->reader_joinable = false;
		}
		pthread_mutex_unlock(&q->lock);
		fd = do_connect(q, deadline, err, errlen);
		pthread_mutex_lock(&q->lock);
		q->connecting = false;
		pthread_cond_broadcast(&q->cond);
		if (fd < 0) {
			q->failed_at_ns = vmem_now_ns();
			snprintf(q->last_error, sizeof(q->last_error), "%s", err);
			return -EIO;
		}
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			snprintf(err, errlen, "out of memory");
			return -EIO;
		}
		c->fd = fd;
		c->refs = 1;	/* the reader's */
		q->conn = c;
		q->failed_at_ns = 0;
		if (pthread_create(&q->reader, NULL, reader_main, q) != 0) {
			q->conn = NULL;
			conn_put(c);
			snprintf(err, errlen, "cannot start QMP reader thread");
			return -EIO;
		}
		q->reader_joinable = true;
		q->connects++;
	}
	return 0;
}

static void unlink_pending(struct vmem_qmp *q, struct pending *me)
{
	struct pending **pp;

	for (pp = &q->pending; *pp; pp = &(*pp)->next) {
		if (*pp == me) {
			*pp = me->next;
			break;
		}
	}
}

/* The reply of one command as execute() reports it; frees the reply. */
static int take_reply(struct vmem_qmp *q, const char *cmd, json_object *reply,
		      const char *lost_why, json_object **ret, char *err,
		      size_t errlen)
{
	json_object *v, *desc;

	if (!reply) {
		snprintf(err, errlen, "%s: %s: connection to the VM lost%s%s",
			 q->path, cmd, *lost_why ? ": QEMU sent " : "",
			 lost_why);
		return -EIO;
	}
	if (json_object_object_get_ex(reply, "error", &v)) {
		snprintf(err, errlen, "%s: %s", cmd,
			 json_object_object_get_ex(v, "desc", &desc) ?
			 json_object_get_string(desc) :
			 json_object_to_json_string(v));
		json_object_put(reply);
		return -EREMOTEIO;
	}
	if (ret && json_object_object_get_ex(reply, "return", &v))
		*ret = json_object_get(v);
	json_object_put(reply);
	return 0;
}

/*
 * Send @n commands @cmd with @args[i] (taken) back to back, then wait for
 * all replies.  QEMU runs a monitor's commands one after the other, but
 * queueing them saves a client round trip per command.
 */
static int run_batch(struct vmem_qmp *q, const char *cmd, size_t n,
		     json_object **args, json_object **ret, char *err,
		     size_t errlen)
{
	uint64_t deadline = vmem_deadline_ns(q->timeout_ms);
	struct pending stack_me[8], *me = stack_me;
	char lost_why[sizeof(q->lost_why)];
	struct conn *c;
	char *buf = NULL;
	size_t blen = 0, i;
	FILE *f;
	int rc;

	if (ret)
		*ret = NULL;
	if (q->tr)
		return q->tr->execute_batch(q->tr_priv, cmd, n, args, ret, err,
					    errlen);
	if (n > sizeof(stack_me) / sizeof(stack_me[0]))
		me = calloc(n, sizeof(*me));
	if (!me) {
		for (i = 0; i < n; i++)
			json_object_put(args[i]);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memset(me, 0, n * sizeof(*me));
	pthread_mutex_lock(&q->lock);
	rc = ensure_connected(q, deadline, err, errlen);
	if (rc < 0) {
		pthread_mutex_unlock(&q->lock);
		for (i = 0; i < n; i++)
			json_object_put(args[i]);
		if (me != stack_me)
			free(me);
		return rc;
	}
	for (i = 0; i < n; i++) {
		me[i].id = ++q->next_id;
		me[i].next = q->pending;
		q->pending = &me[i];
	}
	c = q->conn;
	c->refs++;
	pthread_mutex_unlock(&q->lock);

	f = open_memstream(&buf, &blen);
	for (i = 0; i < n; i++) {
		json_object *msg = json_object_new_object();

		json_object_object_add(msg, "execute", json_object_new_string(cmd));
		if (args[i])
			json_object_object_add(msg, "arguments", args[i]);
		json_object_object_add(msg, "id", json_object_new_uint64(me[i].id));
		if (f)
			fprintf(f, "%s\r\n",
				json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN));
		json_object_put(msg);
	}
	rc = f && fclose(f) == 0 && buf ? 0 : -ENOMEM;
	if (rc == 0) {
		pthread_mutex_lock(&q->wlock);
		rc = write_all(c->fd, buf, blen, deadline);
		pthread_mutex_unlock(&q->wlock);
	}
	free(buf);

	pthread_mutex_lock(&q->lock);
	if (rc < 0) {
		/* Let the reader see the broken connection and clean up. */
		shutdown(c->fd, SHUT_RDWR);
		snprintf(err, errlen, "%s: %s: cannot send: %s", q->path, cmd,
			 strerror(-rc));
	}
	for (i = 0; rc == 0 && i < n; i++) {
		while (!me[i].done) {
			struct timespec ts;

			ts = vmem_timespec(deadline);
			if (pthread_cond_timedwait(&q->cond, &q->lock, &ts) ==
			    ETIMEDOUT && !me[i].done) {
				snprintf(err, errlen, "%s: %s: no reply within %llu ms",
					 q->path, cmd,
					 (unsigned long long)q->timeout_ms);
				rc = -ETIMEDOUT;
				break;
			}
		}
	}
	for (i = 0; i < n; i++)
		unlink_pending(q, &me[i]);
	snprintf(lost_why, sizeof(lost_why), "%s", q->lost_why);
	conn_put(c);
	pthread_mutex_unlock(&q->lock);

	/* Replies that did come are ours to free, whatever happened. */
	for (i = 0; i < n; i++) {
		if (rc == 0) {
			rc = take_reply(q, cmd, me[i].reply, lost_why,
					n == 1 ? ret : NULL, err, errlen);
		} else {
			json_object_put(me[i].reply);
		}
	}
	if (me != stack_me)
		free(me);
	return rc < 0 && rc != -EREMOTEIO ? -EIO : rc;
}

int vmem_qmp_execute(struct vmem_qmp *q, const char *cmd, json_object *args,
		     json_object **ret, char *err, size_t errlen)
{
	return run_batch(q, cmd, 1, &args, ret, err, errlen);
}

int vmem_qmp_execute_batch(struct vmem_qmp *q, const char *cmd, size_t n,
			   json_object **args, char *err, size_t errlen)
{
	return run_batch(q, cmd, n, args, NULL, err, errlen);
}

void vmem_qmp_free(struct vmem_qmp *q)
{
	if (!q)
		return;
	if (q->tr) {
		q->tr->free(q->tr_priv);
		free(q);
		return;
	}
	pthread_mutex_lock(&q->lock);
	if (q->conn)
		shutdown(q->conn->fd, SHUT_RDWR);	/* wakes the reader */
	pthread_mutex_unlock(&q->lock);
	if (q->reader_joinable)
		pthread_join(q->reader, NULL);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	pthread_mutex_destroy(&q->wlock);
	free(q->path);
	free(q);
}
