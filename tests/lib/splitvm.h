/* SPDX-License-Identifier: MIT */
/*
 * The split test VM that the guest-booting tests share: the test guest
 * (guest.h) whose RAM range [home_start, home_end) is homed on an nbdkit
 * sub-host in a network namespace of its own, under one vmemtrans.conf
 * for QEMU, and vmemfs configs for it.  Like hosts.h and guest.h, nothing
 * here calls Check's assertions; the caller stops what was started
 * (vt_guest_stop, vt_nbdkit_kill, vt_netns_delete), also on failure.
 */
#ifndef VMEM_TESTS_SPLITVM_H
#define VMEM_TESTS_SPLITVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest.h"
#include "hosts.h"

struct vt_split_opts {
	const char *run_dir;	/* exists: sockets and QEMU's log go here */
	const char *mem_path;	/* the memory file (QEMU creates it) */
	const char *qemu_conf;	/* where to write QEMU's vmemtrans.conf */
	const char *qmp2_path;	/* a second QMP socket, for vmemfs */
	const char *netns;	/* name of the namespace to create */
	unsigned int subnet;	/* see vt_netns_create */
	int nbd_port;
	uint64_t ram_size;
	uint64_t home_start, home_end;	/* RAM offsets on the sub-host */
	uint64_t local_limit;
	uint64_t chunk;
	int timeout_ms;		/* the config's timeout */
	int boot_timeout_ms;
	const char *append;	/* more kernel command line, or NULL */
	bool allow_reset;	/* see vt_guest_opts */
};

/*
 * Create the namespace and the sub-host in it, write the QEMU config and
 * boot the guest.  0, or -1 with a message saying which step failed.
 */
int vt_split_guest_start(const struct vt_split_opts *o, struct vt_netns *ns,
			 struct vt_nbdkit *sub, struct vt_guest *g,
			 char *err, size_t errlen);

/*
 * Write a vmemfs config for the VM at @path: its memory file, chunk size
 * and timeout, qmp = the second socket (so vmemfs learns the sub-host and
 * the layout from QEMU), backend @backend, then @extra lines (or NULL).
 */
int vt_split_vmemfs_conf(const char *path, const struct vt_split_opts *o,
			 const char *backend, const char *extra,
			 char *err, size_t errlen);

/*
 * The two vmemfs configs most tests mount, in o->run_dir: direct.conf
 * (backend direct) and rp.conf (backend remote-paging, then the lines
 * @rp_extra or NULL).  0, or -1 with a message.
 */
int vt_split_vmemfs_confs(const struct vt_split_opts *o, const char *rp_extra,
			  char *err, size_t errlen);

/* QMP vmem-page-out of the homed range: 0, or -1 with QEMU's answer. */
int vt_split_page_out(struct vt_guest *g, const struct vt_split_opts *o,
		      char *err, size_t errlen);

/*
 * Stop what vt_split_guest_start started, also half-way: the guest (if
 * started), the sub-host, the namespace (zeroed after).
 */
void vt_split_down(struct vt_guest *g, struct vt_nbdkit *sub,
		   struct vt_netns *ns);

#endif
