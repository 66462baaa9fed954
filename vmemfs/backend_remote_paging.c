// SPDX-License-Identifier: MIT
/*
 * The remote-paging backend: instead of fetching a hole's data itself, ask
 * the VM to page it in, then let the core read it from the memory file.
 * The command goes to the pager's own control socket when query-vmem
 * announces one (common/pagerctl.h: one command per read, carrying one
 * range per chunk, served by the pager's threads inside QEMU, off its
 * main loop), else to QMP vmem-page-in, one command per chunk, as the
 * VMemTrans paper's second method does.  Either way the VM pages itself
 * in.  VMEMFS_PAGE_IN_CHANNEL=qmp in the environment forces QMP (for
 * comparing the two).  The VM's own pager moves the data, so what we serve is
 * always the VM's current memory, and the chunks we touched stay on the
 * main host afterwards, at the cost of one command round trip per chunk
 * and of main-host memory.
 *
 * This backend never holds guest data: fetch() only returns
 * VMEM_FETCH_LOCAL.  If the VM evicts the range again before the core's
 * read, the core comes back here (bounded by its retry limit).
 */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../common/pagerctl.h"
#include "../common/timeutil.h"
#include "backend.h"
#include "log.h"
#include "memfile.h"
#include "qmp.h"
#include "stats.h"

/* Connections to the control socket kept for reuse. */
#define CTL_IDLE_MAX	8
/* How long after "no control socket" we ask query-vmem again. */
#define CTL_REPROBE_MS	10000

enum rp_channel { CH_UNKNOWN, CH_CTL, CH_QMP };

struct rp {
	const struct vmem_vm *vm;
	const struct vmem_memfile *mf;	/* the reader's; its owner made the socket */
	struct vmem_qmp *qmp;		/* shared, not ours to free */
	struct vmem_stats *stats;
	bool qmp_only;			/* VMEMFS_PAGE_IN_CHANNEL=qmp */

	pthread_mutex_t mu;		/* the fields below */
	enum rp_channel ch;
	uint64_t probe_after_ms;
	char ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int idle[CTL_IDLE_MAX];
	size_t n_idle;
	uint64_t tag;
	uint64_t ctl_cmds, qmp_cmds;	/* atomics */
};

static void *rp_open(const struct vmem_vm *vm, const struct vmem_memfile *mf,
		     struct vmem_stats *stats, struct vmem_qmp *qmp,
		     char *err, size_t errlen)
{
	struct rp *rp;

	if (!qmp) {
		snprintf(err, errlen, "backend 'remote-paging' needs qmp = PATH");
		return NULL;
	}
	rp = calloc(1, sizeof(*rp));
	if (!rp) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rp->qmp = qmp;
	rp->vm = vm;
	rp->mf = mf;
	rp->stats = stats;
	pthread_mutex_init(&rp->mu, NULL);
	/* For comparing the channels (make bench-compare): QMP only. */
	rp->qmp_only = getenv("VMEMFS_PAGE_IN_CHANNEL") &&
		       strcmp(getenv("VMEMFS_PAGE_IN_CHANNEL"), "qmp") == 0;
	rp->ch = rp->qmp_only ? CH_QMP : CH_UNKNOWN;
	return rp;
}

static void rp_close(void *h)
{
	struct rp *rp = h;

	for (size_t i = 0; i < rp->n_idle; i++)
		close(rp->idle[i]);
	pthread_mutex_destroy(&rp->mu);
	free(rp);
}

/*
 * Which channel to use: the pager's control socket when query-vmem
 * names one (asked once, again CTL_REPROBE_MS after it did not or after
 * the socket failed), else QMP.  Only a socket that is one, and belongs
 * to root, to us, or to the owner of the memory file, is used: nobody
 * else can have put it there.  The last is a QEMU that runs as a user of
 * its own (libvirt's libvirt-qemu) and made both; whoever is that user
 * already holds the VM's memory.
 */
static bool ctl_owner_ok(const struct rp *rp, uid_t uid)
{
	struct stat mst;
	int fd = __atomic_load_n(&rp->mf->fd, __ATOMIC_RELAXED);

	if (uid == 0 || uid == geteuid())
		return true;
	return fd >= 0 && fstat(fd, &mst) == 0 && mst.st_uid == uid;
}

static enum rp_channel channel(struct rp *rp)
{
	json_object *ret = NULL, *cs;
	enum rp_channel ch;
	struct stat st;
	char err[256];

	pthread_mutex_lock(&rp->mu);
	ch = rp->ch;
	if (ch == CH_UNKNOWN && vmem_now_ms() < rp->probe_after_ms)
		ch = CH_QMP;
	pthread_mutex_unlock(&rp->mu);
	if (ch != CH_UNKNOWN)
		return ch;

	ch = CH_QMP;
	if (vmem_qmp_execute(rp->qmp, "query-vmem", NULL, &ret, err,
			     sizeof(err)) == 0 &&
	    json_object_object_get_ex(ret, "control-socket", &cs) &&
	    json_object_is_type(cs, json_type_string) &&
	    (size_t)json_object_get_string_len(cs) < sizeof(rp->ctl_path) &&
	    lstat(json_object_get_string(cs), &st) == 0 &&
	    S_ISSOCK(st.st_mode) && ctl_owner_ok(rp, st.st_uid))
		ch = CH_CTL;
	pthread_mutex_lock(&rp->mu);
	if (ch == CH_CTL) {
		snprintf(rp->ctl_path, sizeof(rp->ctl_path), "%s",
			 json_object_get_string(cs));
		rp->ch = CH_CTL;
	} else {
		rp->probe_after_ms = vmem_now_ms() + CTL_REPROBE_MS;
	}
	pthread_mutex_unlock(&rp->mu);
	if (ret)
		json_object_put(ret);
	return ch;
}

/* The control socket failed: close @fd, drop the idle ones, ask again
 * later. */
static void ctl_failed(struct rp *rp, int fd)
{
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&rp->mu);
	for (size_t i = 0; i < rp->n_idle; i++)
		close(rp->idle[i]);
	rp->n_idle = 0;
	if (!rp->qmp_only) {
		rp->ch = CH_UNKNOWN;
		rp->probe_after_ms = vmem_now_ms() + CTL_REPROBE_MS;
	}
	pthread_mutex_unlock(&rp->mu);
}

static int ctl_get(struct rp *rp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = -1;

	pthread_mutex_lock(&rp->mu);
	if (rp->n_idle)
		fd = rp->idle[--rp->n_idle];
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", rp->ctl_path);
	pthread_mutex_unlock(&rp->mu);
	if (fd >= 0)
		return fd;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void ctl_put(struct rp *rp, int fd)
{
	pthread_mutex_lock(&rp->mu);
	if (rp->n_idle < CTL_IDLE_MAX) {
		rp->idle[rp->n_idle++] = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&rp->mu);
	if (fd >= 0)
		close(fd);
}

/* All of @len bytes each way by @deadline: 0 or -1. */
static int xfer(int fd, void *buf, size_t len, bool out, uint64_t deadline)
{
	char *p = buf;

	while (len > 0) {
		struct pollfd pf = { .fd = fd, .events = out ? POLLOUT : POLLIN };
		int ms = vmem_ms_left(deadline);
		ssize_t r;

		if (ms == 0 || poll(&pf, 1, ms) != 1) {
			if (ms && errno == EINTR)
				continue;
			return -1;
		}
		r = out ? send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT) :
			  recv(fd, p, len, MSG_DONTWAIT);
		if (r == 0 && !out)
			return -1;
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/*
 * One control-socket command for the @n chunks of [start, end): 0, 1
 * when the channel failed (the caller falls back to QMP), or -EIO when
 * the pager answered with an error (message in @err).
 */
static int ctl_page_in(struct rp *rp, uint64_t start, uint64_t end,
		       uint64_t chunk, size_t n, char *err, size_t errlen)
{
	struct {
		struct vmem_ctl_req rq;
		struct vmem_ctl_range rg[VMEM_CTL_MAX_RANGES];
	} m;
	struct vmem_ctl_reply rp_msg;
	/* The pager's own bound is timeout_ms without progress. */
	uint64_t deadline = vmem_deadline_ns(2 * rp->vm->timeout_ms + 1000);
	size_t len;
	int fd;

	m.rq = (struct vmem_ctl_req){ .magic = VMEM_CTL_MAGIC,
				      .op = VMEM_CTL_PAGE_IN, .n = (uint16_t)n,
				      .tag = __atomic_add_fetch(&rp->tag, 1,
							__ATOMIC_RELAXED) };
	for (size_t i = 0; i < n; i++) {
		uint64_t c = start + i * chunk;

		m.rg[i].offset = c;
		m.rg[i].length = end - c < chunk ? end - c : chunk;
	}
	len = sizeof(m.rq) + n * sizeof(m.rg[0]);
	fd = ctl_get(rp);
	if (fd < 0 || xfer(fd, &m, len, true, deadline) ||
	    xfer(fd, &rp_msg, sizeof(rp_msg), false, deadline) ||
	    rp_msg.magic != VMEM_CTL_MAGIC || rp_msg.tag != m.rq.tag) {
		ctl_failed(rp, fd);
		vmem_log_ratelimited(LOG_WARNING, "pager control socket %s "
				     "failed; paging in by QMP",
				     rp->ctl_path);
		return 1;
	}
	ctl_put(rp, fd);
	if (rp_msg.err) {
		rp_msg.msg[sizeof(rp_msg.msg) - 1] = '\0';
		snprintf(err, errlen, "vmem page-in: %s", rp_msg.msg);
		return -EIO;
	}
	return 0;
}

static int rp_fetch(void *h, unsigned int home, void *buf, uint64_t off,
		    size_t len)
{
	struct rp *rp = h;
	const struct vmem_subhost *sh;
	struct vmem_subhost_stats *st;
	uint64_t chunk = rp->vm->chunk_size;
	uint64_t start = off & ~(chunk - 1), end = off + len, c;

	(void)buf;
	/* The same guards as the direct backend: nothing to ask for is no
	 * command (and no division by zero chunks below); a range must lie
	 * in the home it names. */
	if (home >= rp->vm->n_subhosts)
		return -EINVAL;
	sh = &rp->vm->subhosts[home];
	st = &rp->stats->sub[home];
	if (len == 0)
		return VMEM_FETCH_DATA;
	if (off < sh->start || end > sh->end || end < off)
		return -EINVAL;
	/* Whole chunks, as the config promises, but never outside the home:
	 * the VM would refuse a range that crosses into another one. */
	end = (end + chunk - 1) & ~(chunk - 1);
	if (start < sh->start)
		start = sh->start;
	if (end > sh->end)
		end = sh->end;

	size_t n = (size_t)((end - start + chunk - 1) / chunk), i;
	json_object *stack_args[16], **args = stack_args;
	uint64_t t0 = vmem_now_ns(), dt;
	char err[256];
	int rc = 1;

	/*
	 * The pager's control socket: one command for the whole read, with
	 * one range per chunk, served off QEMU's main loop.
	 */
	if (rp->vm->fetch_merge_off && channel(rp) == CH_CTL) {
		/*
		 * fetch-merge = off: the paper's method, one command per
		 * chunk, each answered before the next is sent.
		 */
		for (c = start, rc = 0; c < end && rc == 0; c += chunk) {
			uint64_t e = end - c < chunk ? end : c + chunk;

			rc = ctl_page_in(rp, c, e, chunk, 1, err, sizeof(err));
			if (rc <= 0)
				vmem_stat_add(rp->ctl_cmds, 1);
		}
		if (rc <= 0)
			goto done;
		/* The socket failed part way: QMP pages in the whole read
		 * (what is already local is a no-op for the pager). */
	} else if (n <= VMEM_CTL_MAX_RANGES && channel(rp) == CH_CTL) {
		rc = ctl_page_in(rp, start, end, chunk, n, err, sizeof(err));
		if (rc <= 0)
			vmem_stat_add(rp->ctl_cmds, 1);
	}
	if (rc <= 0)
		goto done;
	vmem_stat_add(rp->qmp_cmds, n);
	/*
	 * QMP: one command per chunk, as the method is defined, but queued
	 * on the monitor together: QEMU runs them one after the other
	 * anyway, and we save a round trip per chunk.
	 */
	if (n > sizeof(stack_args) / sizeof(stack_args[0]))
		args = calloc(n, sizeof(*args));
	if (!args)
		return -ENOMEM;
	for (i = 0, c = start; c < end; c += chunk, i++) {
		uint64_t len = end - c < chunk ? end - c : chunk;

		args[i] = json_object_new_object();
		json_object_object_add(args[i], "offset", json_object_new_uint64(c));
		json_object_object_add(args[i], "length", json_object_new_uint64(len));
	}
	rc = vmem_qmp_execute_batch(rp->qmp, "vmem-page-in", n, args, err,
				    sizeof(err));
	if (args != stack_args)
		free(args);
done:
	vmem_stat_add(st->requests, n);
	if (rc < 0) {
		vmem_stat_add(st->errors, 1);
		vmem_log_ratelimited(LOG_ERR, "remote paging of [0x%llx, 0x%llx) failed: %s",
				     (unsigned long long)start,
				     (unsigned long long)end, err);
		return -EIO;
	}
	vmem_stat_add(st->bytes, end - start);
	dt = (vmem_now_ns() - t0) / n;
	for (i = 0; i < n; i++)
		vmem_hist_add(&st->latency, dt);
	__atomic_store_n(&st->connects, vmem_qmp_connects(rp->qmp),
			 __ATOMIC_RELAXED);
	return VMEM_FETCH_LOCAL;
}

static void rp_stats_json(void *h, struct json_object *o)
{
	struct rp *rp = h;

	json_object_object_add(o, "page_in_ctl_commands",
			       json_object_new_uint64(__atomic_load_n(
					&rp->ctl_cmds, __ATOMIC_RELAXED)));
	json_object_object_add(o, "page_in_qmp_commands",
			       json_object_new_uint64(__atomic_load_n(
					&rp->qmp_cmds, __ATOMIC_RELAXED)));
}

const struct vmem_backend_ops vmem_backend_remote_paging = {
	.info = { .name = "remote-paging", .needs_qmp = true },
	.open = rp_open,
	.close = rp_close,
	.fetch = rp_fetch,
	.stats_json = rp_stats_json,
};
