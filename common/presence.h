/* SPDX-License-Identifier: MIT */
/*
 * The data map of a memory file: which of its pages hold the VM's memory
 * and which are holes (memory that is not on this host).
 *
 * What tells the truth depends on the file system, so a user first asks
 * vmem_datamap_kind() once per file:
 *
 *   tmpfs (and memfd, which is tmpfs): cachestat(2) (Linux 6.5) counts
 *   the file's pages over a range at a cost bounded by the range.  A
 *   shmem page is either in the page cache or, swapped out, a swap entry
 *   in the same tree, which cachestat reports as "evicted": both are
 *   data, so present = nr_cache + nr_evicted.  (A shmem mapping keeps no
 *   other shadow entries; a read of a hole does not allocate.)
 *   lseek(SEEK_HOLE) is exact too, but walks from the offset until it
 *   finds a hole: from the start of a 512 MiB run of data it walks all
 *   512 MiB (~2 ms), on every call.
 *
 *   ext4, xfs, btrfs: SEEK_DATA/SEEK_HOLE report the file's extents
 *   (allocated or delayed-allocated blocks) exactly.  The page cache says
 *   nothing here: a read of a hole caches zero pages, and data pages are
 *   evicted and read back at will, so cachestat must not be used.
 *
 *   anything else is refused: hugetlbfs, ramfs, NFS, FUSE, overlayfs and
 *   most others answer SEEK_DATA with "all of it is data" (the generic
 *   fallback), so every hole would be served as zeros.
 *
 * Used by vmemfs (memfile.c) and the pager, which only runs on tmpfs.
 */
#ifndef VMEM_PRESENCE_H
#define VMEM_PRESENCE_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memunits.h"

#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

#define VMEM_TMPFS_MAGIC 0x01021994
#define VMEM_EXT4_MAGIC 0xEF53		/* ext2/3/4 share it */
#define VMEM_XFS_MAGIC 0x58465342
#define VMEM_BTRFS_MAGIC 0x9123683E

enum vmem_datamap_kind {
	VMEM_DATAMAP_SHMEM = 1,	/* cachestat, SEEK_* as the fallback */
	VMEM_DATAMAP_SEEK,	/* SEEK_DATA/SEEK_HOLE only */
};

/* A name for a statfs f_type, for messages. */
static inline const char *vmem_fs_name(unsigned long magic)
{
	static const struct {
		unsigned long magic;
		const char *name;
	} names[] = {
		{ VMEM_TMPFS_MAGIC, "tmpfs" },
		{ VMEM_EXT4_MAGIC, "ext4" },
		{ VMEM_XFS_MAGIC, "xfs" },
		{ VMEM_BTRFS_MAGIC, "btrfs" },
		{ 0x958458f6, "hugetlbfs" },
		{ 0x858458f6, "ramfs" },
		{ 0x6969, "nfs" },
		{ 0x65735546, "fuse" },
		{ 0x794c7630, "overlayfs" },
		{ 0x2fc12fc1, "zfs" },
		{ 0xf2f52010, "f2fs" },
		{ 0x01021997, "9p" },
		{ 0xff534d42, "cifs" },
		{ 0xfe534d42, "smb2" },
		{ 0x5346414f, "afs" },
		{ 0x4244, "hfs" },
		{ 0x4d44, "vfat" },
		{ 0x2011bab0, "exfat" },
		{ 0x5346544e, "ntfs" },
		{ 0x73717368, "squashfs" },
		{ 0x28cd3d45, "cramfs" },
		{ 0x9fa0, "proc" },
		{ 0x62656572, "sysfs" },
		{ 0x1373, "devfs" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].magic == magic)
			return names[i].name;
	return "an unknown file system";
}

/*
 * ext2, ext3 and ext4 share one statfs type.  The ext4 driver, which
 * serves all three on current kernels, reports holes exactly and has a
 * directory /sys/fs/ext4/DEV for each file system it mounted; the old
 * stand-alone ext2 driver reports none (generic "all data").  False only
 * when sysfs shows ext4 and says this one is not among its file systems.
 */
static inline bool vmem_ext4_driver_serves(int fd)
{
	char link[512], path[600];
	const char *dev;
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0 || access("/sys/fs/ext4", F_OK) < 0)
		return true;	/* cannot tell */
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u",
		 major(st.st_dev), minor(st.st_dev));
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return true;
	link[n] = '\0';
	dev = strrchr(link, '/');
	dev = dev ? dev + 1 : link;
	snprintf(path, sizeof(path), "/sys/fs/ext4/%s", dev);
	return access(path, F_OK) == 0;
}

/*
 * How to ask for @fd's data map: 0 and *kind, or -1 with a message
 * naming @path and its file system in @err.
 */
static inline int vmem_datamap_kind(int fd, const char *path,
				    enum vmem_datamap_kind *kind, char *err,
				    size_t errlen)
{
	struct statfs sf;
	unsigned long magic;

	if (fstatfs(fd, &sf) < 0) {
		snprintf(err, errlen, "%s: fstatfs: %m", path);
		return -1;
	}
	magic = (unsigned long)sf.f_type & 0xffffffffUL;
	switch (magic) {
	case VMEM_TMPFS_MAGIC:
		*kind = VMEM_DATAMAP_SHMEM;
		return 0;
	case VMEM_EXT4_MAGIC:
		if (!vmem_ext4_driver_serves(fd)) {
			snprintf(err, errlen,
				 "%s is on ext2 served by the stand-alone ext2 "
				 "driver, which does not report the file's holes: "
				 "holes would be served as zeros; mount it as "
				 "ext4, or put the memory file on tmpfs", path);
			return -1;
		}
		*kind = VMEM_DATAMAP_SEEK;
		return 0;
	case VMEM_XFS_MAGIC:
	case VMEM_BTRFS_MAGIC:
		*kind = VMEM_DATAMAP_SEEK;
		return 0;
	}
	snprintf(err, errlen,
		 "%s is on %s (statfs type 0x%lx), which does not report the "
		 "file's holes exactly: holes would be served as zeros; put "
		 "the memory file on tmpfs, ext4, xfs or btrfs",
		 path, vmem_fs_name(magic), magic);
	return -1;
}

struct vmem_cs_range {
	uint64_t off;
	uint64_t len;
};

struct vmem_cs_result {
	uint64_t nr_cache;
	uint64_t nr_dirty;
	uint64_t nr_writeback;
	uint64_t nr_evicted;
	uint64_t nr_recently_evicted;
};

/*
 * For a file of kind VMEM_DATAMAP_SHMEM only: pages of @fd present
 * (resident or swapped out) in the 4 KiB pages covering [off, end), and
 * their number in *pages; -1 when the kernel cannot tell (no cachestat).
 */
static inline int64_t vmem_pages_present(int fd, uint64_t off, uint64_t end,
					 uint64_t *pages)
{
	struct vmem_cs_range r;
	struct vmem_cs_result cs;

	r.off = vmem_page_floor(off);
	r.len = vmem_page_ceil(end) - r.off;
	*pages = r.len / VMEM_PAGE_SIZE;
	if (syscall(SYS_cachestat, fd, &r, &cs, 0) < 0)
		return -1;
	return (int64_t)(cs.nr_cache + cs.nr_evicted);
}

#endif
