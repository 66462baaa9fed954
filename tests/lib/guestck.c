// SPDX-License-Identifier: MIT
/*
 * Check-asserting helpers of the guest-booting tests (see guestck.h).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guestck.h"

void vt_ck_qmp(struct vt_guest *g, const char *cmd)
{
	char reply[4096];
	int rc = vt_guest_qmp(g, cmd, reply, sizeof(reply), 120000);

	ck_assert_msg(rc == 0, "QMP %s failed (%d): %s", cmd, rc, reply);
}

void vt_ck_grun(struct vt_guest *g, const char *cmd, char *out, size_t len,
		int timeout_ms)
{
	int st = vt_guest_run(g, cmd, out, len, timeout_ms);

	ck_assert_msg(st == 0, "guest `%s` -> %d: %.500s", cmd, st, out);
}

void vt_ck_mount(struct vt_vmemfs *v, const char *dir, int slot,
		 const char *conf, uint64_t size, int timeout_ms)
{
	char cpath[256], mnt[128], log[256], err[1024];

	if (v->pid > 0 || v->mnt[0])
		vt_vmemfs_stop(v, 3000);
	snprintf(cpath, sizeof(cpath), "%s/%s", dir, conf);
	snprintf(mnt, sizeof(mnt), "%s/mnt%d", dir, slot);
	snprintf(log, sizeof(log), "%s/vmemfs%d.log", dir, slot);
	ck_assert_msg(mkdir(mnt, 0700) == 0 || errno == EEXIST, "mkdir %s: %s",
		      mnt, strerror(errno));
	if (vt_vmemfs_start(v, cpath, "vm", NULL, mnt, log, size, timeout_ms,
			    err, sizeof(err)) < 0) {
		vt_print_tail(log, 20, "vmemfs: ");
		ck_abort_msg("vmemfs (%s): %s", conf, err);
	}
}

const char *vt_vmemfs_path(const struct vt_vmemfs *v, const char *name)
{
	static char p[4][512];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", v->mnt, name);
	return p[k];
}

long vt_read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	size_t got = 0;
	ssize_t n = 0;

	if (fd < 0)
		return -1;
	while (got + 1 < len && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	if (n < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	return (long)got;
}

long vt_ck_read_text(const char *path, char *buf, size_t len)
{
	long n = vt_read_text(path, buf, len);

	ck_assert_msg(n >= 0, "%s: %s", path, strerror(errno));
	return n;
}

void vt_ck_copy_file(const char *src, const char *dst)
{
	static char buf[1 << 20];
	int in = open(src, O_RDONLY), out;
	ssize_t n;

	ck_assert_msg(in >= 0, "%s: %s", src, strerror(errno));
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_msg(out >= 0, "%s: %s", dst, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert(write(out, buf, (size_t)n) == n);
	ck_assert(n == 0);
	close(in);
	ck_assert(close(out) == 0);
}
