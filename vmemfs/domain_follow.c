// SPDX-License-Identifier: MIT
/* Following a libvirt domain's life.  See domain_follow.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../common/timeutil.h"
#include "domain.h"
#include "domain_follow.h"
#include "log.h"
#include "qmp_libvirt.h"

/* How long a start is tried (the new QEMU's monitor, the cache TTL). */
#define FOLLOW_TRIES 50
#define FOLLOW_PAUSE_MS 200

struct vmem_domain_follow {
	struct vmem_reader *r;
	struct vmem_physmem *pm;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool started;		/* libvirt said so, not yet handled */
	bool stop;
};

static void on_life(void *opaque, bool running)
{
	struct vmem_domain_follow *f = opaque;

	pthread_mutex_lock(&f->mu);
	if (running)
		f->started = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

/* One try at the new memory file: 0 done, 1 try again, -1 give up. */
static int follow_once(struct vmem_domain_follow *f, char *err, size_t errlen)
{
	struct vmem_reader *r = f->r;
	const struct vmem_vm *vm = r->vm;
	char *path = NULL;
	struct stat st;
	pid_t pid;
	int rc = 1;

	/* The old file is gone by now (libvirt deletes it at stop). */
	vmem_memfile_check(&r->mf, true);
	if (!vmem_memfile_dead(&r->mf))
		return 0;	/* same QEMU still (we mounted after it)? */
	if (vmem_domain_memory_file(r->qmp, &path, &pid, err, errlen) < 0)
		return 1;
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (vmem_domain_check_mapped(pid, st.st_dev, st.st_ino, path, err,
				     errlen) < 0)
		goto out;
	if (vmem_memfile_revive(&r->mf, path, vm->cache_ttl_ms, err,
				errlen) < 0) {
		rc = strstr(err, "remount") ? -1 : 1;
		goto out;
	}
	/* A new machine: its map and its kernel are learned afresh. */
	__atomic_add_fetch(&f->pm->resets, 1, __ATOMIC_ACQ_REL);
	__atomic_store_n(&f->pm->stale, true, __ATOMIC_RELEASE);
	vmem_log(LOG_INFO, "domain %s started again (QEMU pid %d): %s",
		 vm->domain, (int)pid, path);
	rc = 0;
out:
	free(path);
	return rc;
}

static void *follow_main(void *arg)
{
	struct vmem_domain_follow *f = arg;
	char err[512];

	pthread_mutex_lock(&f->mu);
	for (;;) {
		int tries, rc = 1;

		while (!f->started && !f->stop)
			pthread_cond_wait(&f->cond, &f->mu);
		if (f->stop)
			break;
		f->started = false;
		pthread_mutex_unlock(&f->mu);
		for (tries = 0; tries < FOLLOW_TRIES && rc > 0; tries++) {
			struct timespec ts;

			err[0] = '\0';
			rc = follow_once(f, err, sizeof(err));
			if (rc <= 0)
				break;
			pthread_mutex_lock(&f->mu);
			ts = vmem_timespec(vmem_deadline_ns(FOLLOW_PAUSE_MS));
			if (!f->stop)
				pthread_cond_timedwait(&f->cond, &f->mu, &ts);
			rc = f->stop ? -1 : rc;
			pthread_mutex_unlock(&f->mu);
		}
		if (rc != 0 && *err)
			vmem_log(LOG_ERR, "domain %s: cannot follow its new "
				 "start (reads stay EIO): %s", f->r->vm->domain,
				 err);
		pthread_mutex_lock(&f->mu);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

struct vmem_domain_follow *vmem_domain_follow_start(struct vmem_reader *r,
						    struct vmem_physmem *pm,
						    char *err, size_t errlen)
{
	struct vmem_domain_follow *f;

	if (!r->qmp || !vmem_qmp_is_libvirt(r->qmp))
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->r = r;
	f->pm = pm;
	pthread_mutex_init(&f->mu, NULL);
	vmem_cond_init_monotonic(&f->cond);
	if (pthread_create(&f->thread, NULL, follow_main, f) != 0) {
		snprintf(err, errlen, "cannot start the domain follower thread");
		free(f);
		return NULL;
	}
	vmem_libvirt_set_life_cb(r->qmp, on_life, f);
	return f;
}

void vmem_domain_follow_stop(struct vmem_domain_follow *f)
{
	if (!f)
		return;
	vmem_libvirt_set_life_cb(f->r->qmp, NULL, NULL);
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thread, NULL);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cond);
	free(f);
}
