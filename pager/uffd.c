// SPDX-License-Identifier: MIT
/*
 * The userfaultfd side of the pager: opening and registering the memory
 * mapping (MISSING|WP on shmem), installing pages (UFFDIO_COPY), write
 * protection for eviction, and waking waiters.
 */
#include "pager_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

static int open_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int dev;

	if (fd >= 0)
		return fd;
	/* vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE */
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -1;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	close(dev);
	return fd;
}

int vp_uffd_setup(struct vmem_pager *pg, char *err, size_t errlen)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_MISSING_SHMEM |
			    UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
	};
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)pg->base, .len = pg->size },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_WAKE) |
			(1ULL << _UFFDIO_WRITEPROTECT);

	pg->uffd = open_uffd();
	if (pg->uffd < 0) {
		snprintf(err, errlen, "userfaultfd: %s", strerror(errno));
		return -1;
	}
	if (ioctl(pg->uffd, UFFDIO_API, &api) == -1) {
		snprintf(err, errlen, "UFFDIO_API (shmem MISSING+WP): %s",
			 strerror(errno));
		return -1;
	}
	if (ioctl(pg->uffd, UFFDIO_REGISTER, &reg) == -1) {
		snprintf(err, errlen, "UFFDIO_REGISTER MISSING|WP of the "
			 "memory mapping: %s (is it a MAP_SHARED mapping of "
			 "a shmem file?)", strerror(errno));
		return -1;
	}
	if ((reg.ioctls & need) != need) {
		snprintf(err, errlen, "userfaultfd lacks COPY/WAKE/"
			 "WRITEPROTECT on this mapping");
		return -1;
	}
	return 0;
}

/*
 * Install @len bytes of @src at file offset @off, skipping pages that are
 * already present (EEXIST): they are newer than anything we fetched.
 * Returns the bytes installed, or -1 on an unexpected error.
 */
int64_t vp_uffd_install(struct vmem_pager *pg, const char *src,
			uint64_t off, uint64_t len)
{
	uint64_t done = 0, installed = 0;

	while (done < len) {
		struct uffdio_copy cp = {
			.dst = (uintptr_t)(pg->base + off + done),
			.src = (uintptr_t)(src + done),
			.len = len - done,
			.mode = 0,
		};

		if (ioctl(pg->uffd, UFFDIO_COPY, &cp) == 0) {
			installed += len - done;
			break;
		}
		if (cp.copy > 0) {		/* partial: EAGAIN */
			done += (uint64_t)cp.copy;
			installed += (uint64_t)cp.copy;
			continue;
		}
		if (errno == EEXIST) {
			done += PAGE;
			continue;
		}
		if (errno == EAGAIN || errno == EINTR)
			continue;
		return -1;
	}
	return (int64_t)installed;
}

int vp_uffd_wp(struct vmem_pager *pg, uint64_t off, uint64_t len,
	       bool protect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)(pg->base + off), .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	while (ioctl(pg->uffd, UFFDIO_WRITEPROTECT, &wp) == -1)
		if (errno != EAGAIN && errno != EINTR)
			return -1;
	return 0;
}

void vp_uffd_wake(struct vmem_pager *pg, uint64_t off, uint64_t len)
{
	struct uffdio_range r = {
		.start = (uintptr_t)(pg->base + off),
		.len = len,
	};

	ioctl(pg->uffd, UFFDIO_WAKE, &r);
}
