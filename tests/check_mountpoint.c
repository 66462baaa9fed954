// SPDX-License-Identifier: MIT
/*
 * Where the real build/vmemfs may mount.  A regular file as the mount
 * point (two arguments swapped: it once mounted over /etc/passwd) is
 * refused: nonzero exit, a message, nothing mounted, the file intact.  A
 * second daemon on a mount point a vmemfs already serves is refused and
 * the first one goes on serving; so is a non-empty directory.  -o
 * nonempty overrides the last two, and only those.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/hosts.h"
#include "lib/suite.h"

#define RAM (16u << 20)

/* Names, from the runner's pid; set in main before the tests fork. */
static char memfile[64], conf[64], file[64], dir[64], dir2[64], logf1[64],
	    logf2[64];
static pid_t runner;

static void names(void)
{
	int pid = (int)getpid();

	runner = pid;
	snprintf(memfile, sizeof(memfile), "/dev/shm/vmt-mp-%d.mem", pid);
	snprintf(conf, sizeof(conf), "/tmp/vmt-mp-%d.conf", pid);
	snprintf(file, sizeof(file), "/tmp/vmt-mp-%d.file", pid);
	snprintf(dir, sizeof(dir), "/tmp/vmt-mp-%d.mnt", pid);
	snprintf(dir2, sizeof(dir2), "/tmp/vmt-mp-%d.full", pid);
	snprintf(logf1, sizeof(logf1), "/tmp/vmt-mp-%d.logf1", pid);
	snprintf(logf2, sizeof(logf2), "/tmp/vmt-mp-%d.logf2", pid);
}

/* Whatever a failed test left mounted goes, lazily, then the files. */
static void cleanup(void)
{
	const char *mnts[] = { file, dir, dir2 };

	if (getpid() != runner)
		return;		/* a forked test's exit: the runner does it */
	for (size_t i = 0; i < 3; i++)
		for (int k = 0; k < 8 && umount2(mnts[i], MNT_DETACH) == 0; k++)
			;
	unlink(memfile);
	unlink(conf);
	unlink(file);
	unlink(logf1);
	unlink(logf2);
	rmdir(dir);
	if (dir2[0]) {
		char p[96];

		snprintf(p, sizeof(p), "%s/keep", dir2);
		unlink(p);
		rmdir(dir2);
	}
}

/* Mounts of type fuse.vmemfs on @path, from /proc/self/mountinfo. */
static int vmemfs_mounts_on(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096], mp[1024], type[64];
	int n = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		const char *sep = strstr(line, " - ");

		if (sep && sscanf(line, "%*s %*s %*s %*s %1023s", mp) == 1 &&
		    sscanf(sep, " - %63s", type) == 1 &&
		    strcmp(mp, path) == 0 && strcmp(type, "fuse.vmemfs") == 0)
			n++;
	}
	fclose(f);
	return n;
}

static void write_file(const char *path, const void *data, size_t len)
{
	char err[512];

	ck_assert_msg(vt_write_file(path, data, len, err, sizeof(err)) == 0,
		      "%s", err);
}

/* A 16M memory file with a pattern and its config, and the mount dir. */
static void setup(void)
{
	static unsigned char buf[RAM];
	char text[256];

	vt_pattern_fill(buf, 0, sizeof(buf), 42);
	write_file(memfile, buf, sizeof(buf));
	snprintf(text, sizeof(text), "[vmp]\nmemory-file = %s\n", memfile);
	write_file(conf, text, strlen(text));
	ck_assert(mkdir(dir, 0700) == 0 || errno == EEXIST);
}

/* `vmemfs -f -c CONF [-o OPTS] MNT`, which must exit on its own. */
static int run_vmemfs(const char *opts, const char *mnt, char *errout,
		      size_t errlen)
{
	char *argv[8];
	int i = 0;

	argv[i++] = (char *)vt_vmemfs_bin();
	argv[i++] = "-f";
	argv[i++] = "-c";
	argv[i++] = conf;
	if (opts) {
		argv[i++] = "-o";
		argv[i++] = (char *)opts;
	}
	argv[i++] = (char *)mnt;
	argv[i] = NULL;
	/* A daemon that mounted stays in the foreground: -1 after 3 s. */
	return vt_run(argv, NULL, 0, errout, errlen, 3000);
}

/* @mnt/mem serves the memory file's pattern. */
static void assert_serves(const char *mnt)
{
	unsigned char got[8192], want[8192];
	char p[96];
	int fd;

	snprintf(p, sizeof(p), "%s/mem", mnt);
	fd = open(p, O_RDONLY);
	ck_assert_msg(fd >= 0, "%s: %s", p, strerror(errno));
	ck_assert_int_eq(pread(fd, got, sizeof(got), RAM - sizeof(got)),
			 (ssize_t)sizeof(got));
	close(fd);
	vt_pattern_fill(want, RAM - sizeof(want), sizeof(want), 42);
	ck_assert(memcmp(got, want, sizeof(got)) == 0);
}

START_TEST(regular_file_refused)
{
	static const char precious[] = "root:x:0:0:root:/root:/bin/bash\n";
	char errout[1024], want[256], back[64] = "";
	struct stat st;
	int rc, fd;

	setup();
	write_file(file, precious, sizeof(precious) - 1);
	rc = run_vmemfs(NULL, file, errout, sizeof(errout));
	ck_assert_msg(rc == 1, "exit %d (-1: it mounted and stayed), "
		      "stderr: %s", rc, errout);
	snprintf(want, sizeof(want),
		 "vmemfs: %s: mount point is not a directory\n", file);
	ck_assert_str_eq(errout, want);
	ck_assert_int_eq(vmemfs_mounts_on(file), 0);
	ck_assert_int_eq(stat(file, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	fd = open(file, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, back, sizeof(back)),
			 (ssize_t)sizeof(precious) - 1);
	close(fd);
	ck_assert_str_eq(back, precious);

	/* -o nonempty does not make a file a directory */
	rc = run_vmemfs("nonempty", file, errout, sizeof(errout));
	ck_assert_msg(rc == 1, "exit %d, stderr: %s", rc, errout);
	ck_assert_str_eq(errout, want);
	ck_assert_int_eq(vmemfs_mounts_on(file), 0);
}
END_TEST

START_TEST(second_daemon_refused)
{
	struct vt_vmemfs first, over;
	char err[1024], errout[1024], want[256];
	int rc;

	setup();
	ck_assert_msg(vt_vmemfs_start(&first, conf, NULL, NULL, dir, logf1, RAM,
				      10000, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(vmemfs_mounts_on(dir), 1);

	rc = run_vmemfs(NULL, dir, errout, sizeof(errout));
	ck_assert_msg(rc == 1, "exit %d (-1: it stacked and stayed), "
		      "stderr: %s", rc, errout);
	snprintf(want, sizeof(want), "vmemfs: %s: already a vmemfs mount "
		 "(vmemfs:vmp); unmount it first, or use -o nonempty to "
		 "mount over it\n", dir);
	ck_assert_str_eq(errout, want);
	/* still one mount, and the first daemon still serves */
	ck_assert_int_eq(vmemfs_mounts_on(dir), 1);
	assert_serves(dir);
	ck_assert_int_eq(vt_wait_pid(first.pid, 0), -1);	/* alive */

	/* the expert's override stacks a second one on top */
	ck_assert_msg(vt_vmemfs_start(&over, conf, NULL, "nonempty", dir, logf2,
				      RAM, 10000, err, sizeof(err)) == 0,
		      "%s", err);
	/* it found mem ready at once (the first serves it): wait for the
	 * second mount itself */
	for (int k = 0; k < 1000 && vmemfs_mounts_on(dir) < 2; k++)
		vt_sleep_ms(10);
	ck_assert_int_eq(vmemfs_mounts_on(dir), 2);
	assert_serves(dir);
	/* SIGTERM: it unmounts its own mount (vt_vmemfs_stop's lazy
	 * fusermount would take the first one's too) */
	ck_assert_int_eq(kill(over.pid, SIGTERM), 0);
	ck_assert_int_ne(vt_wait_pid(over.pid, 5000), -1);
	ck_assert_int_eq(vmemfs_mounts_on(dir), 1);
	assert_serves(dir);
	vt_vmemfs_stop(&first, 5000);
	ck_assert_int_eq(vmemfs_mounts_on(dir), 0);
}
END_TEST

START_TEST(nonempty_dir_refused)
{
	struct vt_vmemfs v;
	char err[1024], errout[1024], want[256], keep[96];
	int rc;

	setup();
	ck_assert(mkdir(dir2, 0700) == 0 || errno == EEXIST);
	snprintf(keep, sizeof(keep), "%s/keep", dir2);
	write_file(keep, "x", 1);
	rc = run_vmemfs("ro", dir2, errout, sizeof(errout));
	ck_assert_msg(rc == 1, "exit %d, stderr: %s", rc, errout);
	snprintf(want, sizeof(want), "vmemfs: %s: mount point is not empty; "
		 "use -o nonempty to mount over its contents\n", dir2);
	ck_assert_str_eq(errout, want);
	ck_assert_int_eq(vmemfs_mounts_on(dir2), 0);

	/* nonempty among other options is taken, and not passed to FUSE
	 * (libfuse 3 refuses it) */
	ck_assert_msg(vt_vmemfs_start(&v, conf, NULL, "ro,nonempty", dir2,
				      logf1, RAM, 10000, err, sizeof(err)) == 0,
		      "%s", err);
	assert_serves(dir2);
	vt_vmemfs_stop(&v, 5000);
	ck_assert_int_eq(access(keep, F_OK), 0);	/* hidden, not gone */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mountpoint");
	TCase *tc = vt_tcase_checked(s, "refuse", NULL, NULL, 60);
	int rc;

	names();
	if (!vt_runner_env(64, cleanup))
		return 1;
	tcase_add_test(tc, regular_file_refused);
	tcase_add_test(tc, second_daemon_refused);
	tcase_add_test(tc, nonempty_dir_refused);
	rc = vt_run_suite(s);
	cleanup();
	return rc;
}
