// SPDX-License-Identifier: MIT
/* The guest-physical view of `mem`.  See physmem.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "physmem.h"
#include "qemu_info.h"

/* QEMU events after which RAM may sit elsewhere in guest-physical space. */
static const char *const remap_events[] = {
	"RESET", "MEMORY_DEVICE_SIZE_CHANGE", "DEVICE_DELETED",
};

static void on_event(void *opaque, const char *event, json_object *data)
{
	struct vmem_physmem *pm = opaque;
	size_t i;

	(void)data;
	/* The guest kernel is gone too (kernel_view.c looks at this). */
	if (strcmp(event, "RESET") == 0)
		__atomic_add_fetch(&pm->resets, 1, __ATOMIC_ACQ_REL);
	for (i = 0; i < sizeof(remap_events) / sizeof(remap_events[0]); i++)
		if (strcmp(event, remap_events[i]) == 0)
			__atomic_store_n(&pm->stale, true, __ATOMIC_RELEASE);
}

static int load_auto(struct vmem_physmem *pm, struct vmem_gpa_map *m,
		     char *err, size_t errlen)
{
	const struct vmem_vm *vm = pm->r->vm;

	if (!pm->memdev) {
		pm->memdev = vmem_qemu_memdev(pm->r->qmp, vm->memory_file, err,
					      errlen);
		if (!pm->memdev)
			return -1;
	}
	return vmem_qemu_gpa_map(pm->r->qmp, pm->memdev, vm->ram_size, m, err,
				 errlen);
}

int vmem_physmem_init(struct vmem_physmem *pm, struct vmem_reader *r,
		      char *err, size_t errlen)
{
	int rc;

	memset(pm, 0, sizeof(*pm));
	pm->r = r;
	pthread_rwlock_init(&pm->lock, NULL);
	if (r->vm->layout == VMEM_LAYOUT_FLAT) {
		rc = vmem_gpa_flat(&pm->map, r->vm->ram_size);
		if (rc < 0)
			snprintf(err, errlen, "out of memory");
		return rc;
	}
	/* Listen before asking, so a change in between is not missed. */
	vmem_qmp_set_event_cb(r->qmp, on_event, pm);
	return load_auto(pm, &pm->map, err, errlen);
}

void vmem_physmem_fini(struct vmem_physmem *pm)
{
	if (pm->r && pm->r->qmp)
		vmem_qmp_set_event_cb(pm->r->qmp, NULL, NULL);
	vmem_gpa_free(&pm->map);
	free(pm->memdev);
	pthread_rwlock_destroy(&pm->lock);
}

void vmem_physmem_refresh(struct vmem_physmem *pm)
{
	struct vmem_gpa_map m, old;
	char err[256];

	if (!__atomic_exchange_n(&pm->stale, false, __ATOMIC_ACQ_REL))
		return;
	if (load_auto(pm, &m, err, sizeof(err)) < 0) {
		/* Try again at the next open rather than serve nothing. */
		__atomic_store_n(&pm->stale, true, __ATOMIC_RELEASE);
		vmem_log_ratelimited(LOG_WARNING, "keeping the old guest-physical map: %s",
				     err);
		return;
	}
	pthread_rwlock_wrlock(&pm->lock);
	old = pm->map;
	pm->map = m;
	pthread_rwlock_unlock(&pm->lock);
	vmem_gpa_free(&old);
}

uint64_t vmem_physmem_size(struct vmem_physmem *pm)
{
	uint64_t size;

	pthread_rwlock_rdlock(&pm->lock);
	size = pm->map.size;
	pthread_rwlock_unlock(&pm->lock);
	return size;
}

ssize_t vmem_physmem_read(struct vmem_physmem *pm, void *buf, size_t len,
			  uint64_t off)
{
	unsigned char *p = buf;
	uint64_t end, pos;
	ssize_t rc = 0;

	pthread_rwlock_rdlock(&pm->lock);
	if (off >= pm->map.size) {
		pthread_rwlock_unlock(&pm->lock);
		return 0;
	}
	end = off + len > pm->map.size || off + len < off ? pm->map.size : off + len;
	for (pos = off; pos < end;) {
		uint64_t next, n;
		const struct vmem_gpa_ext *e = vmem_gpa_lookup(&pm->map, pos, &next);

		if (!e) {
			/* Not RAM: MMIO or nothing.  Zeros, as /dev/mem-style
			 * dumps show it; never a device's registers. */
			n = (next < end ? next : end) - pos;
			memset(p + (pos - off), 0, n);
			pos += n;
			continue;
		}
		n = (e->gpa + e->len < end ? e->gpa + e->len : end) - pos;
		rc = vmem_read(pm->r, p + (pos - off), n, e->ram + (pos - e->gpa));
		if (rc < 0)
			break;
		if ((uint64_t)rc != n) {
			rc = -EIO;	/* the map said RAM beyond ram-size */
			break;
		}
		pos += n;
	}
	pthread_rwlock_unlock(&pm->lock);
	return rc < 0 ? rc : (ssize_t)(end - off);
}

int vmem_physmem_snapshot(struct vmem_physmem *pm, struct vmem_gpa_map *out)
{
	int rc = 0;

	pthread_rwlock_rdlock(&pm->lock);
	*out = pm->map;
	out->ext = malloc(pm->map.n * sizeof(*out->ext));
	if (out->ext)
		memcpy(out->ext, pm->map.ext, pm->map.n * sizeof(*out->ext));
	else
		rc = -1;
	pthread_rwlock_unlock(&pm->lock);
	return rc;
}
