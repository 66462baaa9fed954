// SPDX-License-Identifier: MIT
/*
 * QMP through libvirt.  See qmp_libvirt.h for what it promises.
 *
 * libvirt's client calls block for as long as libvirtd takes (its own
 * job timeout is 30 s, and a libvirtd that is stopped with SIGSTOP never
 * answers), so each batch of commands runs on a job thread of its own
 * and the caller waits for it only until the timeout; an abandoned job
 * finishes in the background and frees itself.  Jobs and the client are
 * counted (struct lv.refs) so that the last one closes the connection.
 * Connecting happens on the job thread too, under conn_mu, so that a
 * libvirtd that accepts but never answers is bounded as well.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "../common/timeutil.h"
#include "log.h"
#include "qmp_libvirt.h"

/* After a failed connect, commands fail at once for this long. */
#define RECONNECT_HOLDOFF_NS (100 * VMEM_NS_PER_MS)
/* The largest reply we parse; as QMP_MAX_MSG in qmp.c, and for the same
 * reason (a bigger one is not QEMU answering us). */
#define LV_MAX_REPLY (4u << 20)

struct lv {
	char *uri;
	char *domain;
	uint64_t timeout_ms;

	pthread_mutex_t conn_mu;	/* connecting; conn, dom, cb ids */
	virConnectPtr conn;		/* NULL while not connected */
	virDomainPtr dom;
	int mon_cb, life_cb;		/* -1: not registered */
	bool events;			/* register callbacks at connect */
	uint64_t failed_at_ns;
	char last_error[256];

	pthread_mutex_t lock;		/* the fields below */
	int refs;			/* the client's and each job's */
	bool broken;			/* libvirt closed the connection */
	uint64_t connects;
	vmem_qmp_event_fn *event_fn;
	void *event_opaque;
	vmem_libvirt_life_fn *life_fn;
	void *life_opaque;
	int in_cb;			/* callbacks running now */
	pthread_cond_t cb_done;		/* in_cb went down */
};

struct job {
	struct lv *lv;
	const char *cmd;
	size_t n;
	char **text;		/* the n commands as JSON */
	char **reply;		/* libvirt's answers */
	int rc;			/* 0, -EIO: the first failure */
	size_t failed;		/* index of the failed command */
	char err[256];

	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done, abandoned;
};

static const struct vmem_qmp_transport lv_transport;

static void lv_put(struct lv *lv);

/* ---- the event loop: one per process, started after any fork -------- */

static pthread_mutex_t loop_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t loop_pid;		/* the process whose thread runs the loop */

static void *loop_main(void *arg)
{
	(void)arg;
	for (;;) {
		if (virEventRunDefaultImpl() < 0)
			vmem_log(LOG_WARNING, "libvirt event loop: %s",
				 virGetLastErrorMessage());
	}
	return NULL;
}

static int start_loop(char *err, size_t errlen)
{
	pthread_t t;
	int rc = 0;

	pthread_mutex_lock(&loop_mu);
	if (loop_pid != getpid()) {
		if (virEventRegisterDefaultImpl() < 0) {
			snprintf(err, errlen, "libvirt event loop: %s",
				 virGetLastErrorMessage());
			rc = -1;
		} else if (pthread_create(&t, NULL, loop_main, NULL) != 0) {
			snprintf(err, errlen, "cannot start the libvirt event "
				 "thread");
			rc = -1;
		} else {
			pthread_detach(t);
			loop_pid = getpid();
		}
	}
	pthread_mutex_unlock(&loop_mu);
	return rc;
}

/* ---- callbacks, on the event thread ------------------------------------ */

/*
 * A callback's owner may free what it points to once it has set the
 * callback to NULL (vmem_qmp_set_event_cb, vmem_libvirt_set_life_cb):
 * those wait here until no callback is running.
 */
static void cb_end(struct lv *lv)
{
	pthread_mutex_lock(&lv->lock);
	lv->in_cb--;
	pthread_cond_broadcast(&lv->cb_done);
	pthread_mutex_unlock(&lv->lock);
}

/* With lv->lock held. */
static void cb_wait(struct lv *lv)
{
	while (lv->in_cb)
		pthread_cond_wait(&lv->cb_done, &lv->lock);
}

static void on_monitor_event(virConnectPtr conn, virDomainPtr dom,
			     const char *event, long long seconds,
			     unsigned int micros, const char *details,
			     void *opaque)
{
	struct lv *lv = opaque;
	json_object *data = NULL;
	vmem_qmp_event_fn *fn;
	void *fo;

	(void)conn;
	(void)dom;
	(void)seconds;
	(void)micros;
	if (!event)
		return;
	pthread_mutex_lock(&lv->lock);
	fn = lv->event_fn;
	fo = lv->event_opaque;
	lv->in_cb += fn != NULL;
	pthread_mutex_unlock(&lv->lock);
	if (!fn)
		return;
	if (details && strlen(details) <= LV_MAX_REPLY)
		data = json_tokener_parse(details);
	fn(fo, event, data);
	json_object_put(data);
	cb_end(lv);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event,
			int detail, void *opaque)
{
	struct lv *lv = opaque;
	vmem_libvirt_life_fn *fn;
	void *fo;

	(void)conn;
	(void)dom;
	(void)detail;
	if (event != VIR_DOMAIN_EVENT_STARTED &&
	    event != VIR_DOMAIN_EVENT_STOPPED)
		return 0;
	vmem_log(LOG_INFO, "libvirt domain %s %s", lv->domain,
		 event == VIR_DOMAIN_EVENT_STARTED ? "started" : "stopped");
	pthread_mutex_lock(&lv->lock);
	fn = lv->life_fn;
	fo = lv->life_opaque;
	lv->in_cb += fn != NULL;
	pthread_mutex_unlock(&lv->lock);
	if (fn) {
		fn(fo, event == VIR_DOMAIN_EVENT_STARTED);
		cb_end(lv);
	}
	return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct lv *lv = opaque;

	(void)conn;
	vmem_log(LOG_WARNING, "libvirt %s: connection closed (reason %d); "
		 "the next command reconnects", lv->uri, reason);
	pthread_mutex_lock(&lv->lock);
	lv->broken = true;
	pthread_mutex_unlock(&lv->lock);
}

/* ---- the connection ------------------------------------------------------ */

/* With conn_mu held. */
static void drop_conn(struct lv *lv)
{
	if (!lv->conn)
		return;
	if (lv->mon_cb >= 0)
		virConnectDomainQemuMonitorEventDeregister(lv->conn, lv->mon_cb);
	if (lv->life_cb >= 0)
		virConnectDomainEventDeregisterAny(lv->conn, lv->life_cb);
	if (lv->events)
		virConnectUnregisterCloseCallback(lv->conn, on_close);
	lv->mon_cb = lv->life_cb = -1;
	if (lv->dom)
		virDomainFree(lv->dom);
	lv->dom = NULL;
	virConnectClose(lv->conn);
	lv->conn = NULL;
}

/*
 * With conn_mu held: connected, with the domain looked up (and the event
 * callbacks registered when events are on), or -1 with a message.
 */
static int ensure_conn(struct lv *lv, char *err, size_t errlen)
{
	bool broken;

	pthread_mutex_lock(&lv->lock);
	broken = lv->broken;
	lv->broken = false;
	pthread_mutex_unlock(&lv->lock);
	if (lv->conn && (broken || virConnectIsAlive(lv->conn) != 1))
		drop_conn(lv);
	if (lv->conn)
		return 0;
	if (lv->failed_at_ns &&
	    vmem_now_ns() - lv->failed_at_ns < RECONNECT_HOLDOFF_NS) {
		snprintf(err, errlen, "%s", lv->last_error);
		return -1;
	}
	lv->conn = virConnectOpen(lv->uri);
	if (!lv->conn) {
		snprintf(err, errlen, "libvirt %s: %s", lv->uri,
			 virGetLastErrorMessage());
		goto fail;
	}
	lv->dom = virDomainLookupByName(lv->conn, lv->domain);
	if (!lv->dom) {
		snprintf(err, errlen, "libvirt %s: domain %s: %s", lv->uri,
			 lv->domain, virGetLastErrorMessage());
		goto fail;
	}
	if (lv->events) {
		lv->mon_cb = virConnectDomainQemuMonitorEventRegister(
			lv->conn, lv->dom, NULL, on_monitor_event, lv, NULL, 0);
		lv->life_cb = virConnectDomainEventRegisterAny(
			lv->conn, lv->dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
			VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), lv, NULL);
		if (lv->mon_cb < 0 || lv->life_cb < 0) {
			snprintf(err, errlen, "libvirt %s: domain %s: cannot "
				 "register for events: %s", lv->uri, lv->domain,
				 virGetLastErrorMessage());
			goto fail;
		}
		virConnectRegisterCloseCallback(lv->conn, on_close, lv, NULL);
	}
	lv->failed_at_ns = 0;
	pthread_mutex_lock(&lv->lock);
	lv->connects++;
	pthread_mutex_unlock(&lv->lock);
	return 0;
fail:
	drop_conn(lv);
	lv->failed_at_ns = vmem_now_ns();
	snprintf(lv->last_error, sizeof(lv->last_error), "%s", err);
	return -1;
}

/* ---- jobs ---------------------------------------------------------------- */

static void job_free(struct job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		free(j->text[i]);
		free(j->reply[i]);
	}
	free(j->text);
	free(j->reply);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cond);
	lv_put(j->lv);
	free(j);
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	struct lv *lv = j->lv;
	virDomainPtr dom = NULL;
	bool abandoned;
	size_t i;

	pthread_mutex_lock(&lv->conn_mu);
	if (ensure_conn(lv, j->err, sizeof(j->err)) < 0) {
		j->rc = -EIO;
	} else {
		dom = lv->dom;
		virDomainRef(dom);
	}
	pthread_mutex_unlock(&lv->conn_mu);
	for (i = 0; dom && i < j->n; i++) {
		if (virDomainQemuMonitorCommand(dom, j->text[i], &j->reply[i],
						0) < 0) {
			virErrorPtr e = virGetLastError();

			snprintf(j->err, sizeof(j->err), "libvirt domain %s: "
				 "%s: %s", lv->domain, j->cmd,
				 e && e->message ? e->message : "failed");
			j->rc = -EIO;
			j->failed = i;
			/* A broken connection is reopened by the next job. */
			if (e && (e->code == VIR_ERR_SYSTEM_ERROR ||
				  e->code == VIR_ERR_RPC ||
				  e->code == VIR_ERR_NO_CONNECT)) {
				pthread_mutex_lock(&lv->lock);
				lv->broken = true;
				pthread_mutex_unlock(&lv->lock);
			}
			break;
		}
	}
	if (dom)
		virDomainFree(dom);
	pthread_mutex_lock(&j->mu);
	j->done = true;
	abandoned = j->abandoned;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->mu);
	if (abandoned)
		job_free(j);
	return NULL;
}

/* One reply as vmem_qmp_execute() reports it. */
static int take_reply(struct lv *lv, const char *cmd, const char *text,
		      json_object **ret, char *err, size_t errlen)
{
	json_object *o, *v, *desc;
	int rc = 0;

	o = text && strlen(text) <= LV_MAX_REPLY ? json_tokener_parse(text) :
						   NULL;
	if (!o || !json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "libvirt domain %s: %s: the reply is "
			 "not a JSON object", lv->domain, cmd);
		json_object_put(o);
		return -EIO;
	}
	if (json_object_object_get_ex(o, "error", &v)) {
		snprintf(err, errlen, "%s: %s", cmd,
			 json_object_object_get_ex(v, "desc", &desc) ?
			 json_object_get_string(desc) :
			 json_object_to_json_string(v));
		rc = -EREMOTEIO;
	} else if (!json_object_object_get_ex(o, "return", &v)) {
		snprintf(err, errlen, "libvirt domain %s: %s: the reply has "
			 "no return", lv->domain, cmd);
		rc = -EIO;
	} else if (ret) {
		*ret = json_object_get(v);
	}
	json_object_put(o);
	return rc;
}

static int lv_execute_batch(void *priv, const char *cmd, size_t n,
			    json_object **args, json_object **ret, char *err,
			    size_t errlen)
{
	struct lv *lv = priv;
	uint64_t deadline = vmem_deadline_ns(lv->timeout_ms);
	struct job *j = calloc(1, sizeof(*j));
	pthread_t t;
	size_t i;
	int rc = 0;

	if (j) {
		j->text = calloc(n, sizeof(*j->text));
		j->reply = calloc(n, sizeof(*j->reply));
	}
	for (i = 0; i < n; i++) {
		json_object *msg = json_object_new_object();

		json_object_object_add(msg, "execute",
				       json_object_new_string(cmd));
		if (args[i])
			json_object_object_add(msg, "arguments", args[i]);
		if (j && j->text)
			j->text[i] = strdup(json_object_to_json_string_ext(
				msg, JSON_C_TO_STRING_PLAIN));
		if (!j || !j->text || !j->text[i])
			rc = -ENOMEM;
		json_object_put(msg);
	}
	if (rc < 0 || !j->reply) {
		if (j) {
			j->n = n;
			j->lv = NULL;
			for (i = 0; j->text && i < n; i++)
				free(j->text[i]);
			free(j->text);
			free(j->reply);
			free(j);
		}
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	j->cmd = cmd;	/* the callers' command names are literals */
	j->n = n;
	j->lv = lv;
	pthread_mutex_init(&j->mu, NULL);
	vmem_cond_init_monotonic(&j->cond);
	pthread_mutex_lock(&lv->lock);
	lv->refs++;
	pthread_mutex_unlock(&lv->lock);
	if (pthread_create(&t, NULL, job_main, j) != 0) {
		job_free(j);
		snprintf(err, errlen, "cannot start a libvirt job thread");
		return -EIO;
	}
	pthread_detach(t);

	pthread_mutex_lock(&j->mu);
	while (!j->done) {
		struct timespec ts = vmem_timespec(deadline);

		if (pthread_cond_timedwait(&j->cond, &j->mu, &ts) ==
		    ETIMEDOUT && !j->done) {
			j->abandoned = true;
			pthread_mutex_unlock(&j->mu);
			snprintf(err, errlen, "libvirt domain %s: %s: no reply "
				 "within %llu ms", lv->domain, cmd,
				 (unsigned long long)lv->timeout_ms);
			return -EIO;
		}
	}
	pthread_mutex_unlock(&j->mu);
	rc = j->rc;
	if (rc < 0)
		snprintf(err, errlen, "%s", j->err);
	/* Replies before a failure still count: QEMU's error wins. */
	for (i = 0; i < n && j->reply[i]; i++) {
		int r = take_reply(lv, cmd, j->reply[i], n == 1 ? ret : NULL,
				   err, errlen);

		if (r < 0) {
			rc = r;
			break;
		}
	}
	job_free(j);
	return rc;
}

/* ---- the client ---------------------------------------------------------- */

static void lv_set_event_cb(void *priv, vmem_qmp_event_fn *fn, void *opaque)
{
	struct lv *lv = priv;

	pthread_mutex_lock(&lv->lock);
	lv->event_fn = fn;
	lv->event_opaque = opaque;
	if (!fn)
		cb_wait(lv);
	pthread_mutex_unlock(&lv->lock);
}

static uint64_t lv_connects(void *priv)
{
	struct lv *lv = priv;
	uint64_t n;

	pthread_mutex_lock(&lv->lock);
	n = lv->connects;
	pthread_mutex_unlock(&lv->lock);
	return n;
}

static void lv_put(struct lv *lv)
{
	bool last;

	if (!lv)
		return;
	pthread_mutex_lock(&lv->lock);
	last = --lv->refs == 0;
	pthread_mutex_unlock(&lv->lock);
	if (!last)
		return;
	pthread_mutex_lock(&lv->conn_mu);
	drop_conn(lv);
	pthread_mutex_unlock(&lv->conn_mu);
	pthread_mutex_destroy(&lv->lock);
	pthread_cond_destroy(&lv->cb_done);
	pthread_mutex_destroy(&lv->conn_mu);
	free(lv->uri);
	free(lv->domain);
	free(lv);
}

static void lv_free(void *priv)
{
	struct lv *lv = priv;

	/* Nothing is called back once the owner is gone. */
	pthread_mutex_lock(&lv->lock);
	lv->event_fn = NULL;
	lv->life_fn = NULL;
	cb_wait(lv);
	pthread_mutex_unlock(&lv->lock);
	lv_put(lv);
}

static const struct vmem_qmp_transport lv_transport = {
	.execute_batch = lv_execute_batch,
	.set_event_cb = lv_set_event_cb,
	.connects = lv_connects,
	.free = lv_free,
};

/* libvirt prints every error on stderr by default; ours say it better. */
static void quiet_errors(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

static void init_once(void)
{
	virInitialize();
	virSetErrorFunc(NULL, quiet_errors);
}

struct vmem_qmp *vmem_qmp_new_libvirt(const char *uri, const char *domain,
				      uint64_t timeout_ms)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct lv *lv;

	pthread_once(&once, init_once);
	lv = calloc(1, sizeof(*lv));
	if (!lv)
		return NULL;
	lv->uri = strdup(uri ? uri : VMEM_DEFAULT_LIBVIRT);
	lv->domain = strdup(domain);
	if (!lv->uri || !lv->domain) {
		free(lv->uri);
		free(lv->domain);
		free(lv);
		return NULL;
	}
	lv->timeout_ms = timeout_ms;
	lv->mon_cb = lv->life_cb = -1;
	lv->refs = 1;
	pthread_mutex_init(&lv->lock, NULL);
	pthread_cond_init(&lv->cb_done, NULL);
	pthread_mutex_init(&lv->conn_mu, NULL);
	return vmem_qmp_new_transport(&lv_transport, lv);
}

struct vmem_qmp *vmem_qmp_for_vm(const struct vmem_vm *vm, bool *none,
				 char *err, size_t errlen)
{
	struct vmem_qmp *q = NULL;

	*none = false;
	if (vm->domain)
		q = vmem_qmp_new_libvirt(vm->libvirt, vm->domain,
					 vm->timeout_ms);
	else if (vm->qmp)
		q = vmem_qmp_new(vm->qmp, vm->timeout_ms);
	else
		*none = true;
	if (!q && !*none)
		snprintf(err, errlen, "out of memory");
	return q;
}

bool vmem_qmp_is_libvirt(struct vmem_qmp *q)
{
	return vmem_qmp_transport_priv(q, &lv_transport) != NULL;
}

void vmem_libvirt_set_life_cb(struct vmem_qmp *q, vmem_libvirt_life_fn *fn,
			      void *opaque)
{
	struct lv *lv = vmem_qmp_transport_priv(q, &lv_transport);

	if (!lv)
		return;
	pthread_mutex_lock(&lv->lock);
	lv->life_fn = fn;
	lv->life_opaque = opaque;
	if (!fn)
		cb_wait(lv);
	pthread_mutex_unlock(&lv->lock);
}

void vmem_libvirt_disconnect(struct vmem_qmp *q)
{
	struct lv *lv = vmem_qmp_transport_priv(q, &lv_transport);

	if (!lv)
		return;
	pthread_mutex_lock(&lv->conn_mu);
	drop_conn(lv);
	lv->failed_at_ns = 0;
	pthread_mutex_unlock(&lv->conn_mu);
}

int vmem_libvirt_start_events(struct vmem_qmp *q, char *err, size_t errlen)
{
	struct lv *lv = vmem_qmp_transport_priv(q, &lv_transport);
	int rc;

	if (!lv)
		return 0;
	if (start_loop(err, errlen) < 0)
		return -1;
	pthread_mutex_lock(&lv->conn_mu);
	drop_conn(lv);		/* one opened without the event loop */
	lv->events = true;
	lv->failed_at_ns = 0;
	rc = ensure_conn(lv, err, errlen);
	pthread_mutex_unlock(&lv->conn_mu);
	/* A libvirtd that is down now is reached by the next command. */
	if (rc < 0)
		vmem_log(LOG_WARNING, "%s (retried at the next command)", err);
	return 0;
}
