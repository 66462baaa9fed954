/* SPDX-License-Identifier: MIT */
/*
 * What the tests of the guest-booting programs (check_qemu_*.c) do over
 * and over, as Check assertions: a QMP command or a guest command that
 * must succeed, a vmemfs mount in a numbered slot of the run directory,
 * a generated file read whole.  Unlike guest.h, hosts.h and splitvm.h,
 * the vt_ck_* functions here call Check's assertions: call them from
 * tests, not from fixtures (a fixture says what failed in its env's err).
 */
#ifndef VMEM_TESTS_GUESTCK_H
#define VMEM_TESTS_GUESTCK_H

#include <stddef.h>
#include <stdint.h>

#include "guest.h"
#include "hosts.h"

/* QMP @cmd on @g answers "return" within 120 s. */
void vt_ck_qmp(struct vt_guest *g, const char *cmd);

/* Guest shell command @cmd exits 0 within @timeout_ms; output in @out. */
void vt_ck_grun(struct vt_guest *g, const char *cmd, char *out, size_t len,
		int timeout_ms);

/*
 * Mount config @conf (a file in @dir) on @dir/mnt@slot, the daemon's
 * output in @dir/vmemfs@slot.log, and wait up to @timeout_ms for mem of
 * @size bytes.  A mount a failed test left in @v is stopped first; on
 * failure the log's tail is printed and the test aborts.
 */
void vt_ck_mount(struct vt_vmemfs *v, const char *dir, int slot,
		 const char *conf, uint64_t size, int timeout_ms);

/*
 * @name in @v's mount, in one of four static buffers used in turn (so a
 * call may hold up to four paths at once).
 */
const char *vt_vmemfs_path(const struct vt_vmemfs *v, const char *name);

/*
 * The whole of @path, read to EOF (vmemfs's generated files stat as size
 * 0), NUL-terminated in @buf (at most @len - 1 bytes).  Its length, or
 * -1 with errno when it cannot be opened or a read fails.
 */
long vt_read_text(const char *path, char *buf, size_t len);

/* vt_read_text() that must succeed. */
long vt_ck_read_text(const char *path, char *buf, size_t len);

/* Copy file @src to @dst (created or truncated, mode 0600) whole. */
void vt_ck_copy_file(const char *src, const char *dst);

#endif
