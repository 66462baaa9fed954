// SPDX-License-Identifier: MIT
/*
 * The control socket: page-in commands that the pager serves itself, on
 * threads of its own inside the QEMU process, so that a command neither
 * waits for QEMU's main loop nor holds its big lock across network I/O.
 * It is still the VM paging itself in (the paper's method); only the
 * channel differs from QMP.  The protocol is common/pagerctl.h.
 *
 * What this promises:
 *   - Only the pager's own user or root can talk to it: the socket is
 *     created 0600 (bound under a temporary name, chmod, renamed into
 *     place, so it is never reachable with looser permissions) and every
 *     connection's SO_PEERCRED uid is checked.  A unix socket only.
 *   - Hostile or broken clients cannot hurt the VM: frames are bounded
 *     (VMEM_CTL_MAX_RANGES), a frame must arrive within VMEM_CTL_FRAME_MS
 *     of its first byte, at most VMEM_CTL_MAX_CONNS connections are
 *     served (more are closed at once), ranges are checked by
 *     vmem_pager_page_in_ranges(), a client that goes away mid-reply
 *     raises no SIGPIPE.
 *   - vp_ctl_stop() returns only when no connection thread is left; a
 *     command in progress finishes first (it is bounded by the pager's
 *     timeout without progress).
 */
#include "pager_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/pagerctl.h"
#include "../common/timeutil.h"

struct vp_ctl {
	struct vmem_pager *pg;
	char *path;
	int lfd, stop_efd;
	bool bound;		/* the path is ours to unlink */
	pthread_t thr;
	bool running;
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* a connection thread left */
	unsigned int nconns;	/* under mu */
};

struct conn {
	struct vp_ctl *ctl;
	int fd;
};

const char *vp_ctl_path(const struct vp_ctl *c)
{
	return c->path;
}

/* Remove @p if it is a socket of ours (a previous run's), else fail. */
static int clear_path(const char *p, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(p, &st) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
		snprintf(err, errlen, "control socket %s: exists and is not a "
			 "socket of ours", p);
		errno = EEXIST;
		return -1;
	}
	return unlink(p);
}

struct vp_ctl *vp_ctl_new(struct vmem_pager *pg, const char *path,
			  char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vp_ctl *c = calloc(1, sizeof(*c));
	char tmp[sizeof(sa.sun_path)];

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->pg = pg;
	c->lfd = c->stop_efd = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (strlen(path) + 5 > sizeof(sa.sun_path) - 1) {
		snprintf(err, errlen, "control socket %s: path too long (at "
			 "most %zu bytes)", path, sizeof(sa.sun_path) - 6);
		goto fail;
	}
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	c->path = strdup(path);
	c->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	/* Non-blocking: a client gone between poll and accept must not
	 * leave the accept thread (which stop joins) blocked in accept. */
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			0);
	if (!c->path || c->stop_efd < 0 || c->lfd < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		goto fail;
	}
	if (clear_path(tmp, err, errlen) || clear_path(path, err, errlen)) {
		if (errno != EEXIST)
			snprintf(err, errlen, "control socket %s: %s", path,
				 strerror(errno));
		goto fail;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", tmp);
	if (bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    chmod(tmp, 0600) == -1 || rename(tmp, path) == -1 ||
	    listen(c->lfd, VMEM_CTL_MAX_CONNS) == -1) {
		snprintf(err, errlen, "control socket %s: %s", path,
			 strerror(errno));
		unlink(tmp);
		goto fail;
	}
	c->bound = true;
	return c;
fail:
	vp_ctl_free(c);
	return NULL;
}

/* Wait for @fd to be ready for @ev until @deadline: 1, 0 on timeout or
 * stop, -1 on error. */
static int wait_fd(struct vp_ctl *c, int fd, short ev, uint64_t deadline)
{
	struct pollfd p[2] = {
		{ .fd = fd, .events = ev },
		{ .fd = c->stop_efd, .events = POLLIN },
	};
	int r, ms = deadline ? vmem_ms_left(deadline) : -1;

	if (deadline && ms == 0)
		return 0;
	r = poll(p, 2, ms);
	if (r < 0)
		return errno == EINTR ? wait_fd(c, fd, ev, deadline) : -1;
	if (r == 0 || (p[1].revents & POLLIN))
		return 0;
	return 1;
}

/* Read exactly @len bytes by @deadline: 0, or -1 (EOF, error, late). */
static int read_full(struct vp_ctl *c, int fd, void *buf, size_t len,
		     uint64_t deadline)
{
	char *p = buf;

	while (len > 0) {
		ssize_t r;

		if (wait_fd(c, fd, POLLIN, deadline) != 1)
			return -1;
		r = recv(fd, p, len, MSG_DONTWAIT);
		if (r == 0)
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

static int send_reply(struct vp_ctl *c, int fd, uint64_t tag, int e,
		      const char *msg)
{
	struct vmem_ctl_reply rp = { .magic = VMEM_CTL_MAGIC, .err = e,
				     .tag = tag };
	uint64_t deadline = vmem_deadline_ns(VMEM_CTL_FRAME_MS);
	const char *p = (const char *)&rp;
	size_t len = sizeof(rp);

	snprintf(rp.msg, sizeof(rp.msg), "%s", msg ? msg : "");
	while (len > 0) {
		ssize_t r;

		if (wait_fd(c, fd, POLLOUT, deadline) != 1)
			return -1;
		r = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
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

/* One request: 0 to go on with the connection, -1 to close it. */
static int serve_one(struct vp_ctl *c, int fd)
{
	struct vmem_ctl_range rg[VMEM_CTL_MAX_RANGES];
	struct vmem_pager_range pr[VMEM_CTL_MAX_RANGES];
	struct vmem_ctl_req rq;
	uint64_t deadline;
	char err[240];

	/* Idle connections may wait; a started frame may not. */
	if (wait_fd(c, fd, POLLIN, 0) != 1)
		return -1;
	deadline = vmem_deadline_ns(VMEM_CTL_FRAME_MS);
	if (read_full(c, fd, &rq, sizeof(rq), deadline))
		return -1;
	if (rq.magic != VMEM_CTL_MAGIC) {
		send_reply(c, fd, rq.tag, EPROTO, "bad magic");
		return -1;
	}
	if (rq.n > VMEM_CTL_MAX_RANGES) {
		snprintf(err, sizeof(err), "%u ranges: at most %d", rq.n,
			 VMEM_CTL_MAX_RANGES);
		send_reply(c, fd, rq.tag, E2BIG, err);
		return -1;
	}
	if (rq.n && read_full(c, fd, rg, rq.n * sizeof(rg[0]), deadline))
		return -1;
	switch (rq.op) {
	case VMEM_CTL_PING:
		return send_reply(c, fd, rq.tag, 0, "");
	case VMEM_CTL_PAGE_IN:
		if (rq.n == 0)
			return send_reply(c, fd, rq.tag, EINVAL, "no ranges");
		for (unsigned int i = 0; i < rq.n; i++) {
			pr[i].offset = rg[i].offset;
			pr[i].length = rg[i].length;
		}
		if (vmem_pager_page_in_ranges(c->pg, pr, rq.n, err,
					      sizeof(err)) == 0)
			return send_reply(c, fd, rq.tag, 0, "");
		return send_reply(c, fd, rq.tag, errno ? errno : EIO, err);
	default:
		snprintf(err, sizeof(err), "unknown op %u", rq.op);
		return send_reply(c, fd, rq.tag, EOPNOTSUPP, err);
	}
}

static void *conn_thread(void *arg)
{
	struct conn *k = arg;
	struct vp_ctl *c = k->ctl;

	while (serve_one(c, k->fd) == 0)
		;
	close(k->fd);
	free(k);
	pthread_mutex_lock(&c->mu);
	c->nconns--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static bool peer_ok(int fd)
{
	struct ucred cr;
	socklen_t l = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == -1)
		return false;
	return cr.uid == 0 || cr.uid == geteuid();
}

static void *accept_thread(void *arg)
{
	struct vp_ctl *c = arg;

	while (wait_fd(c, c->lfd, POLLIN, 0) == 1) {
		int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
		struct conn *k;
		pthread_attr_t at;
		pthread_t t;
		bool ok;

		if (fd < 0) {
			/* EAGAIN: that client left already. */
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOMEM)
				vp_nap(c->pg, 10);
			continue;
		}
		pthread_mutex_lock(&c->mu);
		ok = c->nconns < VMEM_CTL_MAX_CONNS && peer_ok(fd);
		if (ok)
			c->nconns++;
		pthread_mutex_unlock(&c->mu);
		k = ok ? malloc(sizeof(*k)) : NULL;
		if (!k) {
			close(fd);
			if (ok)
				goto undo;
			continue;
		}
		k->ctl = c;
		k->fd = fd;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		ok = pthread_create(&t, &at, conn_thread, k) == 0;
		pthread_attr_destroy(&at);
		if (ok)
			continue;
		close(fd);
		free(k);
undo:
		pthread_mutex_lock(&c->mu);
		c->nconns--;
		pthread_mutex_unlock(&c->mu);
	}
	return NULL;
}

int vp_ctl_start(struct vp_ctl *c)
{
	uint64_t v;
	int e;

	if (c->running)
		return 0;
	while (read(c->stop_efd, &v, sizeof(v)) > 0)
		;
	e = pthread_create(&c->thr, NULL, accept_thread, c);
	if (e) {
		errno = e;
		return -1;
	}
	c->running = true;
	return 0;
}

void vp_ctl_stop(struct vp_ctl *c)
{
	uint64_t one = 1;

	if (!c || !c->running)
		return;
	if (write(c->stop_efd, &one, sizeof(one)) < 0)
		vp_logmsg(c->pg, "control socket stop: %s", strerror(errno));
	pthread_join(c->thr, NULL);
	pthread_mutex_lock(&c->mu);
	while (c->nconns)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	c->running = false;
}

void vp_ctl_free(struct vp_ctl *c)
{
	if (!c)
		return;
	vp_ctl_stop(c);
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->bound)
		unlink(c->path);
	if (c->stop_efd >= 0)
		close(c->stop_efd);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->path);
	free(c);
}
