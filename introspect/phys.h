/* SPDX-License-Identifier: MIT */
/*
 * The one way the guest-kernel library reads guest memory: a reader of
 * guest-physical addresses.  In the daemon it is vmemfs's validated read
 * path; in tests and tools a plain image file (offset = GPA), such as
 * QEMU's pmemsave output or a vmemfs `mem`.
 *
 * The library never reads outside @ranges: vmi_phys_read() refuses any
 * [gpa, gpa+len) that is not inside one range, before calling @read.
 */
#ifndef VMI_PHYS_H
#define VMI_PHYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Guest-physical RAM [start, end). */
struct vmi_phys_range {
	uint64_t start, end;
};

struct vmi_phys {
	/* Read exactly @len bytes at @gpa: 0, or -errno (never short). */
	int (*read)(void *ctx, uint64_t gpa, void *buf, size_t len);
	/*
	 * Optional (may be NULL = everything local): 1 when reading
	 * [gpa, gpa+len) is cheap (main-host memory), 0 when it costs a
	 * network round trip.  The note scan looks at local ranges first.
	 */
	int (*is_local)(void *ctx, uint64_t gpa, uint64_t len);
	void *ctx;
	/* Sorted, non-overlapping RAM ranges; the library reads only here. */
	const struct vmi_phys_range *ranges;
	size_t nranges;
};

/* Is [gpa, gpa+len) inside one RAM range?  (len 0: is gpa in one?) */
bool vmi_phys_contains(const struct vmi_phys *p, uint64_t gpa, uint64_t len);

/* Checked read: -EFAULT outside the ranges, else p->read's result. */
int vmi_phys_read(const struct vmi_phys *p, uint64_t gpa, void *buf,
		  size_t len);

/* 1 when local (or no is_local callback), 0 when remote. */
int vmi_phys_is_local(const struct vmi_phys *p, uint64_t gpa, uint64_t len);

/*
 * A raw guest-physical image file, opened read-only, read with pread
 * (never mapped: a read of a hole in a sparse tmpfs file allocates
 * nothing).  @ranges/@nranges: the file's RAM ranges; NULL/0 means one
 * range [0, file size).  The ranges are copied.  Returns 0, or -errno
 * with a message naming @path.
 */
int vmi_phys_file_open(struct vmi_phys *p, const char *path,
		       const struct vmi_phys_range *ranges, size_t nranges,
		       char *err, size_t errlen);
void vmi_phys_file_close(struct vmi_phys *p);

#endif
