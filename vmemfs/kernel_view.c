// SPDX-License-Identifier: MIT
/* The guest kernel as the mount knows it.  See kernel_view.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../introspect/kernel.h"
#include "kernel_view.h"
#include "homes.h"
#include "log.h"

#define POLL_MS 500		/* how often the thread looks for a RESET */
/*
 * An open waits this long for a scan in progress: a vmcore opened a moment
 * too early would otherwise have no note, and tools such as drgn would
 * silently take it for something else.
 */
#define OPEN_WAIT_MS 60000
#define OPEN_RESCAN_MS 1000	/* an open asks again after this long */
#define SCAN_TIMEOUT_MS 120000

/*
 * The reader one scan (and the kernel it found) uses: a copy of the GPA
 * map, its RAM ranges, and the dead kernels' notes to hide.
 */
struct kv_phys {
	struct vmem_kernel_view *kv;
	struct vmem_gpa_map map;
	struct vmi_phys_range *ranges;
	struct vmem_kv_dead dead[VMEM_KV_DEAD_MAX];
	unsigned int ndead;
	struct vmi_phys phys;
	/*
	 * The last run of RAM offsets seen to be all data, or all a hole
	 * with no home, so that the page-start scan asks the memory file
	 * once per run (at most SCAN_WINDOW), not once per page, and reads
	 * a hole's zeros without a syscall.  Only the scanning thread uses
	 * it (the kernel's later reads go the normal way).
	 */
	bool scanning;
	bool run_hole;
	uint64_t run_start, run_end;
};

/* What the scan learns of the memory file at a time (the library asks
 * is_local per 2 MiB too). */
#define SCAN_WINDOW (2ULL << 20)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void deadline_in(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Is the dead note @d still, byte for byte, at its place? */
static bool ghost_present(struct kv_phys *kp, const struct vmem_kv_dead *d)
{
	unsigned char *cur = malloc(d->len);
	bool same;

	if (!cur)
		return true;	/* hide it rather than risk the ghost */
	same = vmem_physmem_read(kp->kv->pm, cur, d->len, d->gpa) ==
		       (ssize_t)d->len &&
	       memcmp(cur, d->bytes, d->len) == 0;
	free(cur);
	return same;
}

/*
 * During the scan: is [gpa, gpa+len) in a hole with no home (zeros)?
 * Learns the hole's extent once, not per page.  A page the VM fills
 * meanwhile is missed for this scan only: candidates are re-read and
 * validated, and a kernel not found is looked for again.
 */
static bool scan_hole(struct kv_phys *kp, uint64_t gpa, size_t len)
{
	const struct vmem_memfile *mf = &kp->kv->pm->r->mf;
	const struct vmem_gpa_ext *e;
	uint64_t next, ram, ext_end, run_end, home_end;
	bool present;

	e = vmem_gpa_lookup(&kp->map, gpa, &next);
	if (!e || gpa + len > e->gpa + e->len)
		return false;
	ram = e->ram + (gpa - e->gpa);
	if (ram >= kp->run_start && ram + len <= kp->run_end)
		return kp->run_hole;
	ext_end = e->ram + e->len;
	if (ext_end - ram > SCAN_WINDOW)
		ext_end = ram + SCAN_WINDOW;
	kp->run_start = kp->run_end = 0;
	if (vmem_memfile_run(mf, ram, ext_end, &present, &run_end) < 0 ||
	    run_end <= ram)
		return false;
	kp->run_start = ram;
	kp->run_end = run_end;
	kp->run_hole = !present;
	if (!present) {
		/* A hole with a home is remote: not zeros. */
		if (vmem_home_of(kp->kv->pm->r->vm, ram, &home_end) !=
		    VMEM_HOME_NONE) {
			kp->run_hole = false;
			kp->run_end = home_end < run_end ? home_end : run_end;
		} else if (home_end < run_end) {
			kp->run_end = home_end;
		}
	}
	return kp->run_hole && ram + len <= kp->run_end;
}

static int kp_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	struct kv_phys *kp = ctx;
	ssize_t rc;
	unsigned int i;

	if (__atomic_load_n(&kp->kv->stop, __ATOMIC_ACQUIRE))
		return -ECANCELED;
	if (kp->scanning && len <= 4096 && scan_hole(kp, gpa, len)) {
		memset(buf, 0, len);
		return 0;
	}
	rc = vmem_physmem_read(kp->kv->pm, buf, len, gpa);
	if (rc < 0)
		return (int)rc;
	if ((size_t)rc != len)
		return -EIO;
	/* A reset kernel's note, still in RAM, reads as zeros. */
	for (i = 0; i < kp->ndead; i++) {
		const struct vmem_kv_dead *d = &kp->dead[i];
		uint64_t s = gpa > d->gpa ? gpa : d->gpa;
		uint64_t e = gpa + len < d->gpa + d->len ? gpa + len :
							   d->gpa + d->len;

		if (s < e && ghost_present(kp, d))
			memset((unsigned char *)buf + (s - gpa), 0, e - s);
	}
	return 0;
}

/*
 * RAM [off, end) costs no network: each page is in the memory file or has
 * no home (reads as zeros).
 */
static bool ram_local(struct kv_phys *kp, const struct vmem_memfile *mf,
		      uint64_t off, uint64_t end)
{
	while (off < end) {
		uint64_t run_end, home_end;
		bool present;

		if (vmem_memfile_run(mf, off, end, &present, &run_end) < 0 ||
		    run_end <= off)
			return false;
		while (!present && off < run_end) {
			if (vmem_home_of(kp->kv->pm->r->vm, off, &home_end) !=
			    VMEM_HOME_NONE || home_end <= off)
				return false;
			off = home_end;
		}
		off = run_end;
	}
	return true;
}

static int kp_is_local(void *ctx, uint64_t gpa, uint64_t len)
{
	struct kv_phys *kp = ctx;
	const struct vmem_memfile *mf = &kp->kv->pm->r->mf;
	uint64_t pos = gpa, end = gpa + len;

	while (pos < end) {
		uint64_t next, n;
		const struct vmem_gpa_ext *e = vmem_gpa_lookup(&kp->map, pos,
							       &next);

		if (!e) {
			if (next <= pos)
				break;
			pos = next;
			continue;
		}
		n = (e->gpa + e->len < end ? e->gpa + e->len : end) - pos;
		if (!ram_local(kp, mf, e->ram + (pos - e->gpa),
			       e->ram + (pos - e->gpa) + n))
			return 0;
		pos += n;
	}
	return 1;
}

static void kp_free(struct kv_phys *kp)
{
	unsigned int i;

	if (!kp)
		return;
	for (i = 0; i < kp->ndead; i++)
		free(kp->dead[i].bytes);
	vmem_gpa_free(&kp->map);
	free(kp->ranges);
	free(kp);
}

/* A reader over the current map; caller holds kv->lock (dead list). */
static struct kv_phys *kp_new(struct vmem_kernel_view *kv)
{
	struct kv_phys *kp = calloc(1, sizeof(*kp));
	size_t i, n = 0;

	if (!kp)
		return NULL;
	kp->kv = kv;
	if (vmem_physmem_snapshot(kv->pm, &kp->map) < 0)
		goto fail;
	kp->ranges = calloc(kp->map.n ? kp->map.n : 1, sizeof(*kp->ranges));
	if (!kp->ranges)
		goto fail;
	/* vmi_phys wants sorted, disjoint ranges: join adjacent extents. */
	for (i = 0; i < kp->map.n; i++) {
		const struct vmem_gpa_ext *e = &kp->map.ext[i];

		if (n && kp->ranges[n - 1].end == e->gpa) {
			kp->ranges[n - 1].end += e->len;
			continue;
		}
		kp->ranges[n].start = e->gpa;
		kp->ranges[n].end = e->gpa + e->len;
		n++;
	}
	for (i = 0; i < kv->ndead; i++) {
		struct vmem_kv_dead *d = &kp->dead[kp->ndead];

		d->bytes = malloc(kv->dead[i].len);
		if (!d->bytes)
			goto fail;
		memcpy(d->bytes, kv->dead[i].bytes, kv->dead[i].len);
		d->gpa = kv->dead[i].gpa;
		d->len = kv->dead[i].len;
		kp->ndead++;
	}
	kp->phys.read = kp_read;
	kp->phys.is_local = kp_is_local;
	kp->phys.ctx = kp;
	kp->phys.ranges = kp->ranges;
	kp->phys.nranges = n;
	return kp;
fail:
	kp_free(kp);
	return NULL;
}

/* Forget the kernel; its note is hidden from later scans while it stays
 * in RAM unchanged.  Caller holds kv->lock. */
static void drop_kernel(struct vmem_kernel_view *kv, const char *why)
{
	const void *note;
	size_t len = 0;
	uint64_t gpa = 0;

	if (!kv->k)
		return;
	note = vmi_kernel_note(kv->k, &len, &gpa);
	if (note && len) {
		struct vmem_kv_dead *d;
		unsigned char *copy = malloc(len);

		if (copy) {
			if (kv->ndead == VMEM_KV_DEAD_MAX) {
				free(kv->dead[0].bytes);
				memmove(kv->dead, kv->dead + 1,
					(VMEM_KV_DEAD_MAX - 1) * sizeof(*d));
				kv->ndead--;
			}
			d = &kv->dead[kv->ndead++];
			memcpy(copy, note, len);
			d->bytes = copy;
			d->len = len;
			d->gpa = gpa;
		}
	}
	vmem_log(LOG_INFO, "guest kernel at VMCOREINFO 0x%llx forgotten: %s",
		 (unsigned long long)gpa, why);
	vmi_kernel_free(kv->k);
	kp_free(kv->kp);
	kv->k = NULL;
	kv->kp = NULL;
	snprintf(kv->why, sizeof(kv->why), "not recognised yet (%s)", why);
}

static uint64_t resets_now(struct vmem_kernel_view *kv)
{
	return __atomic_load_n(&kv->pm->resets, __ATOMIC_ACQUIRE);
}

/* A reset since the last scan: the kernel we know is gone. */
static void check_reset(struct vmem_kernel_view *kv)
{
	if (resets_now(kv) == kv->resets_seen)
		return;
	drop_kernel(kv, "the guest was reset");
	kv->want_scan = true;
}

static void scan_once(struct vmem_kernel_view *kv)
{
	struct vmi_kernel_options o = {
		.btf_path = kv->btf_path,
		.map_path = kv->map_path,
		.timeout_ms = SCAN_TIMEOUT_MS,
	};
	struct vmi_kernel *nk = NULL;
	struct kv_phys *kp;
	uint64_t resets = resets_now(kv), t0 = now_ms();
	char err[256] = "";
	unsigned int i;
	int rc;

	kv->want_scan = false;
	kv->scanning = true;
	kv->resets_seen = resets;
	pthread_mutex_unlock(&kv->lock);

	/* After a reset, QEMU's memory map may have changed too. */
	vmem_physmem_refresh(kv->pm);
	pthread_mutex_lock(&kv->lock);
	kp = kp_new(kv);
	pthread_mutex_unlock(&kv->lock);
	if (!kp) {
		rc = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
	} else {
		kp->scanning = true;
		rc = vmi_kernel_recognise(&kp->phys, &o, &nk, err, sizeof(err));
		kp->scanning = false;
	}

	pthread_mutex_lock(&kv->lock);
	kv->scanning = false;
	kv->scans++;
	pthread_cond_broadcast(&kv->cond);
	if (rc == 0 && kv->stop) {
		vmi_kernel_free(nk);
		kp_free(kp);
		return;
	}
	if (rc == 0 && resets_now(kv) != resets) {
		/* Found in memory from before a reset: that kernel is dead
		 * too; hide it and look again. */
		kv->k = nk;
		kv->kp = kp;
		drop_kernel(kv, "the guest was reset during the scan");
		kv->want_scan = true;
		return;
	}
	if (rc == 0) {
		const struct vmi_kernel_info *ki = vmi_kernel_info(nk);

		kv->k = nk;
		kv->kp = kp;
		kv->why[0] = '\0';
		for (i = 0; i < kv->ndead; i++)
			free(kv->dead[i].bytes);
		kv->ndead = 0;
		vmem_log(LOG_INFO, "guest kernel %s recognised in %llu ms "
			 "(VMCOREINFO at 0x%llx, KASLR offset 0x%llx)",
			 ki->release, (unsigned long long)(now_ms() - t0),
			 (unsigned long long)ki->vmcoreinfo_gpa,
			 (unsigned long long)ki->kaslr_offset);
		return;
	}
	kp_free(kp);
	snprintf(kv->why, sizeof(kv->why), "%s", err[0] ? err :
		 "guest kernel not recognised");
	if (!kv->stop)
		vmem_log_ratelimited(LOG_INFO, "guest kernel not recognised "
				     "(an open of kernel or vmcore looks "
				     "again): %s", kv->why);
}

/*
 * Scans when asked: once at the start, after a reset, and when an open
 * found no kernel.  No periodic retries: a scan reads guest memory (the
 * sub-hosts' too when the note is not local), which only someone who
 * wants to know the kernel should cause, and the mount's counters should
 * show only reads someone asked for.
 */
static void *kv_thread(void *arg)
{
	struct vmem_kernel_view *kv = arg;

	pthread_mutex_lock(&kv->lock);
	while (!kv->stop) {
		struct timespec ts;

		check_reset(kv);
		if (kv->want_scan) {
			scan_once(kv);
			continue;
		}
		deadline_in(&ts, POLL_MS);
		pthread_cond_timedwait(&kv->cond, &kv->lock, &ts);
	}
	pthread_mutex_unlock(&kv->lock);
	return NULL;
}

void vmem_kernel_view_init(struct vmem_kernel_view *kv,
			   struct vmem_physmem *pm, const char *btf_path,
			   const char *map_path)
{
	pthread_condattr_t ca;

	memset(kv, 0, sizeof(*kv));
	kv->pm = pm;
	kv->btf_path = btf_path;
	kv->map_path = map_path;
	pthread_mutex_init(&kv->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&kv->cond, &ca);
	pthread_condattr_destroy(&ca);
	kv->resets_seen = resets_now(kv);
	kv->want_scan = true;
	snprintf(kv->why, sizeof(kv->why), "not recognised yet");
}

int vmem_kernel_view_start(struct vmem_kernel_view *kv)
{
	int rc = pthread_create(&kv->thread, NULL, kv_thread, kv);

	if (rc != 0)
		return -rc;
	kv->started = true;
	return 0;
}

void vmem_kernel_view_fini(struct vmem_kernel_view *kv)
{
	unsigned int i;

	if (!kv->pm)
		return;
	pthread_mutex_lock(&kv->lock);
	__atomic_store_n(&kv->stop, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&kv->cond);
	pthread_mutex_unlock(&kv->lock);
	if (kv->started)
		pthread_join(kv->thread, NULL);
	vmi_kernel_free(kv->k);
	kp_free(kv->kp);
	for (i = 0; i < kv->ndead; i++)
		free(kv->dead[i].bytes);
	pthread_cond_destroy(&kv->cond);
	pthread_mutex_destroy(&kv->lock);
	memset(kv, 0, sizeof(*kv));
}

/*
 * A FUSE thread is about to wait in the view: one of VMEM_KV_WAITERS, or
 * none (false, logged) when they are all taken.
 */
static bool wait_begin(struct vmem_kernel_view *kv, const char *what)
{
	if (__atomic_add_fetch(&kv->waiting, 1, __ATOMIC_ACQ_REL) <=
	    VMEM_KV_WAITERS)
		return true;
	__atomic_sub_fetch(&kv->waiting, 1, __ATOMIC_ACQ_REL);
	vmem_log_ratelimited(LOG_WARNING, "%s: %d callers already wait for "
			     "the guest kernel view (a scan or a proc/ build "
			     "reading guest memory, maybe a silent sub-host): "
			     "EAGAIN", what, VMEM_KV_WAITERS);
	return false;
}

static void wait_end(struct vmem_kernel_view *kv)
{
	__atomic_sub_fetch(&kv->waiting, 1, __ATOMIC_ACQ_REL);
}

/* kv->lock, waiting for it only as one of VMEM_KV_WAITERS: 0 or -EAGAIN. */
static int kv_lock(struct vmem_kernel_view *kv, const char *what)
{
	if (pthread_mutex_trylock(&kv->lock) == 0)
		return 0;
	if (!wait_begin(kv, what))
		return -EAGAIN;
	pthread_mutex_lock(&kv->lock);
	wait_end(kv);
	return 0;
}

/*
 * At open of `kernel` or `vmcore`: is what we know still true?  Asks for
 * a scan when needed and waits a little for one in progress (as one of
 * VMEM_KV_WAITERS, else -EAGAIN).  Caller holds kv->lock.  0 or -EAGAIN.
 */
static int revalidate(struct vmem_kernel_view *kv, const char *what)
{
	unsigned int scans = kv->scans;
	struct timespec ts;

	check_reset(kv);
	if (kv->k && !vmi_kernel_still_valid(kv->k, &kv->kp->phys)) {
		drop_kernel(kv, "its VMCOREINFO note or banner changed");
		kv->want_scan = true;
	}
	if (!kv->k && !kv->scanning && !kv->want_scan &&
	    now_ms() - kv->last_ask_ms >= OPEN_RESCAN_MS) {
		kv->want_scan = true;
		kv->last_ask_ms = now_ms();
	}
	if (kv->want_scan)
		pthread_cond_broadcast(&kv->cond);
	if (kv->k || !kv->started)
		return 0;
	if (!(kv->scanning || kv->want_scan) || kv->stop)
		return 0;
	if (!wait_begin(kv, what))
		return -EAGAIN;
	deadline_in(&ts, OPEN_WAIT_MS);
	while (!kv->k && (kv->scanning || kv->want_scan) &&
	       kv->scans == scans && !kv->stop)
		if (pthread_cond_timedwait(&kv->cond, &kv->lock, &ts) ==
		    ETIMEDOUT)
			break;
	wait_end(kv);
	return 0;
}

char *vmem_kernel_view_json(struct vmem_kernel_view *kv)
{
	char *text;

	if (kv_lock(kv, "kernel") < 0) {
		errno = EAGAIN;
		return NULL;
	}
	if (revalidate(kv, "kernel") < 0) {
		pthread_mutex_unlock(&kv->lock);
		errno = EAGAIN;
		return NULL;
	}
	text = kv->k ? vmi_kernel_json(kv->k) :
		       vmi_kernel_error_json(kv->why);
	pthread_mutex_unlock(&kv->lock);
	if (!text)
		errno = ENOMEM;
	return text;
}

int vmem_kernel_view_with(struct vmem_kernel_view *kv,
			  int (*fn)(void *arg, const struct vmi_kernel *k,
				    const struct vmi_phys *p),
			  void *arg, char *why, size_t whylen)
{
	int rc;

	if (kv_lock(kv, "proc") < 0) {
		snprintf(why, whylen, "%d callers already wait for the guest "
			 "kernel view", VMEM_KV_WAITERS);
		return -EBUSY;
	}
	if (revalidate(kv, "proc") < 0) {
		pthread_mutex_unlock(&kv->lock);
		snprintf(why, whylen, "%d callers already wait for the "
			 "kernel scan", VMEM_KV_WAITERS);
		return -EBUSY;
	}
	if (kv->k) {
		rc = fn(arg, kv->k, &kv->kp->phys);
	} else {
		snprintf(why, whylen, "%s", kv->why);
		rc = -EAGAIN;
	}
	pthread_mutex_unlock(&kv->lock);
	return rc;
}

/* The vmcore's inputs; caller holds kv->lock and frees *map. */
static int vmcore_info(struct vmem_kernel_view *kv,
		       struct vmem_vmcore_info *in, struct vmem_gpa_map *map)
{
	memset(in, 0, sizeof(*in));
	if (vmem_physmem_snapshot(kv->pm, map) < 0)
		return -ENOMEM;
	in->map = map;
	if (kv->k) {
		const struct vmi_kernel_info *ki = vmi_kernel_info(kv->k);
		uint64_t gpa;

		in->note = vmi_kernel_note(kv->k, &in->note_len, &gpa);
		in->kernel_known = true;
		in->page_offset = ki->page_offset_base;
		vmi_kernel_image(kv->k, &in->image_vaddr, &in->image_paddr,
				 &in->image_len);
	}
	return 0;
}

int vmem_kernel_view_vmcore(struct vmem_kernel_view *kv,
			    struct vmem_vmcore *vc)
{
	struct vmem_vmcore_info in;
	struct vmem_gpa_map map;
	char err[256];
	int rc;

	vmem_physmem_refresh(kv->pm);
	if (kv_lock(kv, "vmcore") < 0)
		return -EAGAIN;
	if (revalidate(kv, "vmcore") < 0) {
		pthread_mutex_unlock(&kv->lock);
		return -EAGAIN;
	}
	rc = vmcore_info(kv, &in, &map);
	if (rc == 0 && vmem_vmcore_build(vc, &in, err, sizeof(err)) < 0) {
		vmem_log_ratelimited(LOG_WARNING, "vmcore: %s", err);
		rc = -EIO;
	}
	pthread_mutex_unlock(&kv->lock);
	if (in.map)
		vmem_gpa_free(&map);
	return rc;
}

uint64_t vmem_kernel_view_vmcore_size(struct vmem_kernel_view *kv)
{
	struct vmem_vmcore_info in;
	struct vmem_gpa_map map;
	uint64_t size = 0;

	/* A stat must not wait for a build or a re-validation that waits
	 * on a sub-host: the size is advisory, the last one will do.  The
	 * first one is worth waiting for, as one of the few. */
	if (pthread_mutex_trylock(&kv->lock) != 0) {
		size = __atomic_load_n(&kv->size_seen, __ATOMIC_ACQUIRE);
		if (size || kv_lock(kv, "vmcore") < 0)
			return size;
	}
	if (vmcore_info(kv, &in, &map) == 0) {
		size = vmem_vmcore_size(&in);
		vmem_gpa_free(&map);
		__atomic_store_n(&kv->size_seen, size, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&kv->lock);
	return size;
}

static ssize_t physmem_read(void *ctx, void *buf, size_t len, uint64_t gpa)
{
	return vmem_physmem_read(ctx, buf, len, gpa);
}

ssize_t vmem_kernel_view_vmcore_read(struct vmem_kernel_view *kv,
				     const struct vmem_vmcore *vc, void *buf,
				     size_t len, uint64_t off)
{
	return vmem_vmcore_read(vc, physmem_read, kv->pm, buf, len, off);
}

/* The reader of a gated vmcore read: physmem's, through the gate. */
struct gated_ctx {
	struct vmem_physmem *pm;
	struct vmem_read_gate *gate;
	const unsigned char *base;	/* the caller's buffer */
};

static ssize_t physmem_read_gated(void *ctx, void *buf, size_t len,
				  uint64_t gpa)
{
	struct gated_ctx *c = ctx;
	ssize_t rc = vmem_physmem_read_gated(c->pm, buf, len, gpa, c->gate);

	/* Stopped: vmem_vmcore_read returns at once; count from its @off. */
	if (c->gate->stopped)
		c->gate->done += (size_t)((const unsigned char *)buf - c->base);
	return rc;
}

ssize_t vmem_kernel_view_vmcore_read_gated(struct vmem_kernel_view *kv,
					   const struct vmem_vmcore *vc,
					   void *buf, size_t len, uint64_t off,
					   struct vmem_read_gate *gate)
{
	struct gated_ctx c = { .pm = kv->pm, .gate = gate, .base = buf };

	return vmem_vmcore_read(vc, physmem_read_gated, &c, buf, len, off);
}
