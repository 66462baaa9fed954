// SPDX-License-Identifier: MIT
/*
 * The shadow /proc on a live split VM, against what the guest itself
 * says and against unmodified host tools run through vmemfs-exec.
 *
 * One guest serves every case: the test guest with 1 GiB of RAM, its RAM
 * [512M, 1G) homed on an nbdkit sub-host in a network namespace
 * (tests/lib/splitvm.c), a hostname of the test's choosing, and the
 * process zoo of tests/guest/vmt-procs.c (long argument lists, a
 * multi-threaded process, uid 1000 and uid 0 processes, sockets).
 * Cases, in order:
 *   - proc/PID/stat and status of the zoo equal the guest's own files
 *     field by field (times within a tolerance), cmdline and environ are
 *     the argv and environment vmt-procs passed;
 *   - procps `ps -eo pid,ppid,uid,stat,comm,args` through vmemfs-exec
 *     lists exactly the processes of the guest's own /proc (listed just
 *     before QMP stop), with their parents, owners, states and args;
 *     `ps aux` and busybox `ps` run; the hostname is the guest's; the
 *     exit status is the command's; errors are clear;
 *   - netstat -tanp and -uan list the zoo's sockets with their owners
 *     (pid/program), lsmod the modules the guest loaded with the sizes
 *     and use counts of its own /proc/modules;
 *   - proc-refresh: one snapshot per second by default, one per opendir
 *     of proc/ with 0; `stats` counts the builds;
 *   - hostile, guest paused, corrupted through the memory file (and
 *     restored): a task list cycle, a non-canonical next, a comm with no
 *     NUL: each build ends within the timeout, the daemon and the other
 *     files keep serving, the log names what was cut;
 *   - the homed half paged out: the ps check again through both backends;
 *   - a guest forking in a tight loop while the host runs ps 200 times:
 *     every run exits 0 and every listed pid's line parses.
 */
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../introspect/kernel.h"
#include "../procfs/snapshot.h"
#include "lib/guest.h"
#include "lib/guestck.h"
#include "lib/hosts.h"
#include "lib/splitvm.h"
#include "lib/suite.h"

#define MiB ((uint64_t)1 << 20)
#define GiB (1024 * MiB)

#define RAM (1 * GiB)
#define MEM_SIZE RAM
#define HOME_START (512 * MiB)
#define HOME_END RAM
#define CHUNK (64 * 1024)
#define TIMEOUT_MS 5000
#define NBD_PORT 10809
#define NZOO 5
#define VFS_MAX 2
#define MAXP 512
#define BIG (1 << 20)

static const char *const zoo_names[NZOO] = {
	"vmt-long", "vmt-threads", "vmt-user", "vmt-root", "vmt-net",
};
enum { Z_LONG, Z_THREADS, Z_USER, Z_ROOT, Z_NET };

struct env {
	bool up;
	char err[2048];
	struct vt_guest guest;
	struct vt_nbdkit sub;
	struct vt_netns ns;
	struct vt_vmemfs vfs[VFS_MAX];
	char dir[64];
	char mem[128];
	char qemu_conf[128];
	char qmp2[128];
	char hostname[64];
	int zoo_pid[NZOO];
	bool paged_out;
};

static struct env *E;
static pid_t runner_pid;
static struct vt_split_opts split;

/* ---- environment ---------------------------------------------------- */

static const char *const dir_files[] = {
	"qemu.log", "qemu.conf", "direct.conf", "rp.conf", "vmemfs0.log",
	"vmemfs1.log", "vmemfs-qmp.sock", "mnt0", "mnt1",
};

static void env_down(void)
{
	if (getpid() != runner_pid || !E)
		return;
	vt_vmemfs_stop_all(E->vfs, VFS_MAX);
	vt_split_down(&E->guest, &E->sub, &E->ns);
	vt_run_dir_remove(E->dir, E->mem, dir_files,
			  sizeof(dir_files) / sizeof(dir_files[0]));
	E->up = false;
}

/* A fixture's failure: require_env() reports it in every test. */
#define env_fail(...) vt_set_err(E->err, sizeof(E->err), __VA_ARGS__)

static void env_up(void)
{
	char path[256], netns[64], err[2048], cmd[256];
	static char out[8192];
	char *p;
	int i, st;

	memset(E, 0, sizeof(*E));
	snprintf(path, sizeof(path), "%s/vmt-procs", vt_guest_dir());
	if (access(path, X_OK) != 0) {
		env_fail("%s missing: the guest's initramfs has no vmt-procs "
			 "(run scripts/guest/build-guest.sh)", path);
		return;
	}
	if (vt_run_dir("proc", runner_pid, E->dir, E->mem, E->err,
		       sizeof(E->err)) < 0)
		return;
	snprintf(E->qemu_conf, sizeof(E->qemu_conf), "%s/qemu.conf", E->dir);
	snprintf(E->qmp2, sizeof(E->qmp2), "%s/vmemfs-qmp.sock", E->dir);
	snprintf(netns, sizeof(netns), "vmt-proc-%d", (int)runner_pid);
	split = (struct vt_split_opts){
		.run_dir = E->dir, .mem_path = E->mem,
		.qemu_conf = E->qemu_conf, .qmp2_path = E->qmp2,
		.netns = netns, .subnet = 16200 + runner_pid % 512,
		.nbd_port = NBD_PORT, .ram_size = RAM,
		.home_start = HOME_START, .home_end = HOME_END,
		.local_limit = RAM, .chunk = CHUNK,
		.timeout_ms = TIMEOUT_MS, .boot_timeout_ms = 300000,
	};
	if (vt_split_guest_start(&split, &E->ns, &E->sub, &E->guest, err,
				 sizeof(err)) < 0) {
		env_fail("%s", err);
		return;
	}
	printf("info: 1 GiB guest booted in %.1f s (TCG, RAM [512M, 1G) on "
	       "%s in netns %s)\n", E->guest.boot_ms / 1000, E->sub.uri,
	       E->ns.name);
	if (vt_split_vmemfs_confs(&split, "proc-refresh = 0ms\n", err,
				  sizeof(err)) < 0) {
		env_fail("%s", err);
		return;
	}
	snprintf(E->hostname, sizeof(E->hostname), "vmt-guest-%d",
		 (int)runner_pid);
	snprintf(cmd, sizeof(cmd), "hostname %s && vmt-procs start && "
		 "insmod /lib/modules/tcp_vegas.ko && "
		 "insmod /lib/modules/tcp_yeah.ko && "
		 "insmod /lib/modules/dummy.ko", E->hostname);
	st = vt_guest_run(&E->guest, cmd, out, sizeof(out), 120000);
	if (st != 0 || !strstr(out, "VMT-PROCS-READY")) {
		env_fail("vmt-procs start in the guest -> %d: %s", st, out);
		return;
	}
	for (i = 0; i < NZOO; i++) {
		char key[48];

		snprintf(key, sizeof(key), "VMT-PROC %s ", zoo_names[i]);
		p = strstr(out, key);
		if (!p || (E->zoo_pid[i] = atoi(p + strlen(key))) <= 1) {
			env_fail("no pid for %s in: %s", zoo_names[i], out);
			return;
		}
	}
	printf("info: zoo:");
	for (i = 0; i < NZOO; i++)
		printf(" %s=%d", zoo_names[i], E->zoo_pid[i]);
	printf("\n");
	E->up = true;
}

static void qmp_ok(const char *cmd);

static void require_env(void)
{
	ck_assert_msg(E->up, "environment not up: %s", E->err);
	qmp_ok("{\"execute\":\"cont\"}");
}

/* ---- helpers -------------------------------------------------------- */

static void qmp_ok(const char *cmd)
{
	vt_ck_qmp(&E->guest, cmd);
}

static void grun_ok(const char *cmd, char *out, size_t len, int timeout_ms)
{
	vt_ck_grun(&E->guest, cmd, out, len, timeout_ms);
}

static void mount_vfs(int i, const char *conf)
{
	vt_ck_mount(&E->vfs[i], E->dir, i, conf, MEM_SIZE, 30000);
}

static void umount_vfs(int i)
{
	vt_vmemfs_stop(&E->vfs[i], 5000);
}

static const char *vfs_path(int i, const char *name)
{
	return vt_vmemfs_path(&E->vfs[i], name);
}

/* The whole of a file; returns its length (-1 with errno on failure). */
static long try_read(const char *path, char *buf, size_t len)
{
	return vt_read_text(path, buf, len);
}

static long read_file(const char *path, char *buf, size_t len)
{
	return vt_ck_read_text(path, buf, len);
}

/* Wait until `kernel` of mount @i is no error. */
static void kernel_wait(int i)
{
	static char text[1 << 16];
	double t0 = vt_now_ms();

	for (;;) {
		read_file(vfs_path(i, "kernel"), text, sizeof(text));
		if (!strstr(text, "\"error\""))
			break;
		ck_assert_msg(vt_now_ms() - t0 < 180000, "kernel still: %s",
			      text);
		vt_sleep_ms(500);
	}
	printf("info: kernel known %.1f s after asking\n",
	       (vt_now_ms() - t0) / 1000);
}

static const char *exec_bin(void)
{
	static char path[512];
	char tmp[512];

	snprintf(tmp, sizeof(tmp), "%s", vt_vmemfs_bin());
	snprintf(path, sizeof(path), "%s/vmemfs-exec", dirname(tmp));
	return path;
}

/* vmemfs-exec MNT ARGS... with output in @out; the exit status. */
static int vexec(int i, char *out, size_t outlen, char *errout,
		 size_t errlen, const char *a0, ...)
{
	char *argv[24];
	int n = 0;
	va_list ap;
	const char *a;

	if (getenv("VMT_STRACE")) {	/* debugging aid: strace the tool */
		argv[n++] = (char *)"strace";
		argv[n++] = (char *)"-f";
		argv[n++] = (char *)"-o";
		argv[n++] = getenv("VMT_STRACE");
	}
	argv[n++] = (char *)exec_bin();
	argv[n++] = E->vfs[i].mnt;
	va_start(ap, a0);
	for (a = a0; a && n < 23; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	return vt_run(argv, out, outlen, errout, errlen, 120000);
}

/* Split a stat line into its fields; comm (in parentheses) is one. */
static int stat_fields(const char *line, char f[64][96])
{
	const char *open = strchr(line, '('), *close = strrchr(line, ')');
	const char *p;
	int n = 0;

	if (!open || !close || close < open)
		return 0;
	snprintf(f[n++], 96, "%.*s", (int)(open - line - 1), line);
	snprintf(f[n++], 96, "%.*s", (int)(close - open - 1), open + 1);
	p = close + 1;
	while (*p && *p != '\n' && n < 64) {
		size_t k;

		p += strspn(p, " ");
		k = strcspn(p, " \n");
		if (!k)
			break;
		snprintf(f[n++], 96, "%.*s", (int)k, p);
		p += k;
	}
	return n;
}

/* The value of "Key:" in a status text, tabs/spaces squeezed. */
static bool status_get(const char *text, const char *key, char *val,
		       size_t len)
{
	char k[64];
	const char *p = text;

	snprintf(k, sizeof(k), "%s:", key);
	while (p && *p) {
		if (strncmp(p, k, strlen(k)) == 0) {
			const char *v = p + strlen(k);
			size_t n = 0;

			while (*v && *v != '\n' && n + 1 < len) {
				if (*v == '\t' || *v == ' ') {
					if (n && val[n - 1] != ' ')
						val[n++] = ' ';
				} else {
					val[n++] = *v;
				}
				v++;
			}
			while (n && val[n - 1] == ' ')
				n--;
			val[n] = '\0';
			if (val[0] == ' ')
				memmove(val, val + 1, n);
			return true;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

/* ---- tests ---------------------------------------------------------- */

/* Fields of stat compared with a tolerance: times and counters that move
 * while a process sleeps (utime stime cutime cstime, minflt), and
 * processor; the rest must be equal. */
static int stat_tolerance(int field)	/* 1-based, as proc(5) */
{
	switch (field) {
	case 10: case 11: case 12: case 13:	/* faults */
		return 50;
	case 14: case 15: case 16: case 17:	/* times, ticks */
		return 10;
	case 24:				/* rss */
		return 8;
	case 39:				/* processor */
		return 1000;
	default:
		return 0;
	}
}

static bool line_has(const char *text, ...);

/* Two stat lines equal field by field, times within a tolerance. */
static void stat_equal(const char *what, const char *gstat, const char *shadow)
{
	static char gf[64][96], sf[64][96];
	int n = stat_fields(gstat, gf), ns = stat_fields(shadow, sf), i;

	ck_assert_msg(n == 52, "%s: guest stat has %d fields: %s", what, n,
		      gstat);
	ck_assert_msg(ns == n, "%s: shadow stat has %d fields, guest %d:\n"
		      "shadow %s\nguest  %s", what, ns, n, shadow, gstat);
	for (i = 0; i < n; i++) {
		int tol = stat_tolerance(i + 1);

		if (tol) {
			long long a = atoll(gf[i]), b = atoll(sf[i]);

			ck_assert_msg(llabs(a - b) <= tol, "%s stat field %d: "
				      "shadow %s, guest %s", what, i + 1, sf[i],
				      gf[i]);
		} else {
			ck_assert_msg(strcmp(gf[i], sf[i]) == 0, "%s stat field "
				      "%d: shadow '%s', guest '%s'\nshadow %s\n"
				      "guest  %s", what, i + 1, sf[i], gf[i],
				      shadow, gstat);
		}
	}
}

START_TEST(test_threads)
{
	static char gout[1 << 16], shadow[8192];
	char cmd[256], path[96], *p, *save = NULL;
	int pid, tids[8], nt = 0, k;
	DIR *d;
	struct dirent *de;

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	pid = E->zoo_pid[Z_THREADS];
	snprintf(cmd, sizeof(cmd), "ls /proc/%d/task", pid);
	grun_ok(cmd, gout, sizeof(gout), 60000);
	for (p = strtok_r(gout, " \t\r\n", &save); p && nt < 8;
	     p = strtok_r(NULL, " \t\r\n", &save))
		tids[nt++] = atoi(p);
	ck_assert_msg(nt == 4, "the guest's vmt-threads has %d threads", nt);
	vt_sleep_ms(1100);
	snprintf(path, sizeof(path), "proc/%d/task", pid);
	d = opendir(vfs_path(0, path));
	ck_assert_msg(d, "%s: %s", path, strerror(errno));
	k = 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			int tid = atoi(de->d_name), j;

			for (j = 0; j < nt && tids[j] != tid; j++)
				;
			ck_assert_msg(j < nt, "shadow task/%d: not a thread of "
				      "the guest's", tid);
			k++;
		}
	closedir(d);
	ck_assert_int_eq(k, nt);
	for (k = 0; k < nt; k++) {
		char what[64];
		char *gstat;

		snprintf(cmd, sizeof(cmd), "cat /proc/%d/task/%d/stat", pid,
			 tids[k]);
		grun_ok(cmd, gout, sizeof(gout), 60000);
		gstat = gout + strspn(gout, "\r\n");
		vt_sleep_ms(1100);
		snprintf(path, sizeof(path), "proc/%d/task/%d/stat", pid,
			 tids[k]);
		read_file(vfs_path(0, path), shadow, sizeof(shadow));
		snprintf(what, sizeof(what), "task %d", tids[k]);
		stat_equal(what, gstat, shadow);
	}
	{
		static char out[BIG], errout[4096];
		char want[32];
		int st = vexec(0, out, sizeof(out), errout, sizeof(errout),
			       "ps", "-eLo", "pid,lwp,comm", NULL);

		ck_assert_msg(st == 0, "ps -eLo -> %d: %s", st, errout);
		for (k = 1; k <= 3; k++) {
			snprintf(want, sizeof(want), "vmt-thr-%d", k);
			ck_assert_msg(line_has(out, want, NULL), "ps -eL has no "
				      "%s:\n%s", want, out);
		}
	}
	printf("info: task/ of vmt-threads: %d threads equal the guest's\n",
	       nt);
	umount_vfs(0);
}
END_TEST

START_TEST(test_pid_files)
{
	static char gout[1 << 16], shadow[8192], sstatus[8192];
	static char gf[64][96], sf[64][96];
	char cmd[512], key[64], gv[256], sv[256], path[64];
	static const char *const keys[] = {
		"Name", "Umask", "State", "Tgid", "Ngid", "Pid", "PPid",
		"TracerPid", "Uid", "Gid", "NStgid", "NSpid", "NSpgid",
		"NSsid", "VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM",
		"VmRSS", "RssAnon", "RssFile", "RssShmem", "VmData", "VmStk",
		"VmExe", "VmLib", "VmPTE", "VmSwap", "Threads", "SigPnd",
		"ShdPnd", "SigBlk", "SigIgn", "SigCgt",
	};
	int z, n, ns, i;

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	for (z = 0; z < NZOO; z++) {
		int pid = E->zoo_pid[z];
		char *gstat, *gstatus;

		snprintf(cmd, sizeof(cmd), "cat /proc/%d/stat; echo @@; "
			 "cat /proc/%d/status; echo @@; cat /proc/%d/statm "
			 "/proc/%d/comm", pid, pid, pid, pid);
		grun_ok(cmd, gout, sizeof(gout), 60000);
		vt_sleep_ms(1100);	/* a snapshot younger than that */
		snprintf(path, sizeof(path), "proc/%d/stat", pid);
		read_file(vfs_path(0, path), shadow, sizeof(shadow));
		snprintf(path, sizeof(path), "proc/%d/status", pid);
		read_file(vfs_path(0, path), sstatus, sizeof(sstatus));
		gstat = gout;
		gstatus = strstr(gout, "@@");
		ck_assert_msg(gstatus, "guest output: %s", gout);
		*gstatus = '\0';
		gstatus += 3;
		{
			/* statm: resident and shared within 8 pages; comm */
			static char sm[256], sc[64];
			char *gm = strstr(gstatus, "@@");
			unsigned long long a[7], b[7];
			int j;

			ck_assert_msg(gm, "guest output: %s", gstatus);
			*gm = '\0';
			gm += 3;
			snprintf(path, sizeof(path), "proc/%d/statm", pid);
			read_file(vfs_path(0, path), sm, sizeof(sm));
			ck_assert(sscanf(gm, "%llu %llu %llu %llu %llu %llu %llu",
					 &a[0], &a[1], &a[2], &a[3], &a[4], &a[5],
					 &a[6]) == 7);
			ck_assert_msg(sscanf(sm, "%llu %llu %llu %llu %llu %llu "
					     "%llu", &b[0], &b[1], &b[2], &b[3],
					     &b[4], &b[5], &b[6]) == 7,
				      "statm: %s", sm);
			for (j = 0; j < 7; j++)
				ck_assert_msg(j == 1 || j == 2 ? llabs((long long)
					      (a[j] - b[j])) <= 8 : a[j] == b[j],
					      "%s statm field %d: shadow %llu, "
					      "guest %llu", zoo_names[z], j + 1,
					      b[j], a[j]);
			snprintf(path, sizeof(path), "proc/%d/comm", pid);
			read_file(vfs_path(0, path), sc, sizeof(sc));
			ck_assert_msg(strstr(gm, sc) && strcmp(sc, "") != 0,
				      "comm: shadow '%s', guest %s", sc, gm);
		}
		n = stat_fields(gstat, gf);
		ns = stat_fields(shadow, sf);
		ck_assert_msg(n == 52, "guest stat has %d fields: %s", n, gstat);
		ck_assert_msg(ns == n, "shadow stat has %d fields, guest %d:\n"
			      "shadow %s\nguest  %s", ns, n, shadow, gstat);
		for (i = 0; i < n; i++) {
			int tol = stat_tolerance(i + 1);

			if (tol) {
				long long a = atoll(gf[i]), b = atoll(sf[i]);

				ck_assert_msg(llabs(a - b) <= tol, "%s stat field "
					      "%d: shadow %s, guest %s", zoo_names[z],
					      i + 1, sf[i], gf[i]);
			} else {
				ck_assert_msg(strcmp(gf[i], sf[i]) == 0, "%s stat "
					      "field %d: shadow '%s', guest '%s'\n"
					      "shadow %s\nguest  %s",
					      zoo_names[z], i + 1, sf[i], gf[i],
					      shadow, gstat);
			}
		}
		for (i = 0; i < (int)(sizeof(keys) / sizeof(keys[0])); i++) {
			bool g = status_get(gstatus, keys[i], gv, sizeof(gv));
			bool s = status_get(sstatus, keys[i], sv, sizeof(sv));

			snprintf(key, sizeof(key), "%s", keys[i]);
			ck_assert_msg(g, "guest status has no %s:\n%s", key,
				      gstatus);
			ck_assert_msg(s, "shadow status has no %s:\n%s", key,
				      sstatus);
			if (strcmp(key, "VmRSS") == 0 || strcmp(key, "VmHWM") == 0 ||
			    strcmp(key, "RssAnon") == 0 ||
			    strcmp(key, "RssFile") == 0)
				ck_assert_msg(labs(atol(gv) - atol(sv)) <= 32,
					      "%s status %s: shadow '%s', guest "
					      "'%s'", zoo_names[z], key, sv, gv);
			else
				ck_assert_msg(strcmp(gv, sv) == 0, "%s status %s: "
					      "shadow '%s', guest '%s'",
					      zoo_names[z], key, sv, gv);
		}
		/* the order of the lines is the kernel's */
		{
			const char *prev = sstatus;

			for (i = 0; i < (int)(sizeof(keys) / sizeof(keys[0])); i++) {
				char k2[64];
				const char *at;

				snprintf(k2, sizeof(k2), "\n%s:", keys[i]);
				at = i ? strstr(sstatus, k2) : sstatus;
				ck_assert_msg(at && at >= prev, "status line %s "
					      "out of order:\n%s", keys[i],
					      sstatus);
				prev = at;
			}
		}
	}
	/* cmdline and environ: what vmt-procs gave execve */
	{
		static char buf[16384];
		char want[64];
		long len;
		int a;

		snprintf(path, sizeof(path), "proc/%d/cmdline",
			 E->zoo_pid[Z_LONG]);
		len = read_file(vfs_path(0, path), buf, sizeof(buf));
		ck_assert_msg(len > 0 && strcmp(buf, "/bin/vmt-procs") == 0,
			      "cmdline starts '%s'", buf);
		{
			const char *p = buf + strlen(buf) + 1;

			ck_assert_str_eq(p, "child");
			p += strlen(p) + 1;
			ck_assert_str_eq(p, "vmt-long");
			p += strlen(p) + 1;
			for (a = 0; a < 64; a++) {
				snprintf(want, sizeof(want), "vmt-arg-%02d-"
					 "abcdefghijklmnopqrstuvwxyz", a);
				ck_assert_msg(p < buf + len, "cmdline ends "
					      "after %d args", a);
				ck_assert_str_eq(p, want);
				p += strlen(p) + 1;
			}
			ck_assert_msg(p == buf + len, "cmdline: %ld bytes, "
				      "%ld expected", len, (long)(p - buf));
		}
		snprintf(path, sizeof(path), "proc/%d/environ",
			 E->zoo_pid[Z_LONG]);
		len = read_file(vfs_path(0, path), buf, sizeof(buf));
		ck_assert_msg(len > 0 && strcmp(buf, "VMT_ENV=vmt-environment-"
						 "value") == 0, "environ '%s'",
			      buf);
	}
	/* busybox ps shows the owner of the directory: the task's uid */
	{
		struct stat st;

		snprintf(path, sizeof(path), "proc/%d", E->zoo_pid[Z_USER]);
		ck_assert_int_eq(stat(vfs_path(0, path), &st), 0);
		ck_assert_int_eq(st.st_uid, 1000);
		ck_assert_int_eq(st.st_gid, 1000);
		ck_assert(S_ISDIR(st.st_mode));
	}
	umount_vfs(0);
}
END_TEST

/* Split @text into lines (console \r dropped); the number of lines. */
static int split_lines(char *text, char **lines, int max)
{
	int n = 0;
	char *p = text, *nl;

	while (*p && n < max) {
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (nl && nl > p && nl[-1] == '\r')
			nl[-1] = '\0';
		if (*p)
			lines[n++] = p;
		if (!nl)
			break;
		p = nl + 1;
	}
	return n;
}

/* status lines that move while a process sleeps, and by how much */
static long status_tolerance(const char *key)
{
	static const struct {
		const char *key;
		long tol;
	} t[] = {
		{ "VmHWM", 32 }, { "VmRSS", 32 }, { "RssAnon", 32 },
		{ "RssFile", 32 }, { "voluntary_ctxt_switches", 50 },
		{ "nonvoluntary_ctxt_switches", 50 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(key, t[i].key) == 0)
			return t[i].tol;
	return -1;
}

/* Every line of proc/PID/status equals the guest's own, in its order. */
START_TEST(test_status_lines)
{
	static char gout[1 << 16], shadow[1 << 15];
	char cmd[128], path[64];
	char *gl[128], *sl[128];
	int z, ng, ns, i;

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	for (z = 0; z < NZOO; z++) {
		int pid = E->zoo_pid[z];

		snprintf(cmd, sizeof(cmd), "cat /proc/%d/status", pid);
		grun_ok(cmd, gout, sizeof(gout), 60000);
		vt_sleep_ms(1100);	/* a snapshot younger than that */
		snprintf(path, sizeof(path), "proc/%d/status", pid);
		read_file(vfs_path(0, path), shadow, sizeof(shadow));
		ng = split_lines(gout, gl, 128);
		ns = split_lines(shadow, sl, 128);
		for (i = 0; i < ng && i < ns; i++) {
			const char *gc = strchr(gl[i], ':');
			const char *sc = strchr(sl[i], ':');
			char key[64];
			long tol;

			ck_assert_msg(gc && sc && gc - gl[i] == sc - sl[i] &&
				      strncmp(gl[i], sl[i], gc - gl[i]) == 0,
				      "%s status line %d: shadow '%s', guest "
				      "'%s'", zoo_names[z], i + 1, sl[i], gl[i]);
			snprintf(key, sizeof(key), "%.*s", (int)(gc - gl[i]),
				 gl[i]);
			tol = status_tolerance(key);
			if (tol >= 0)
				ck_assert_msg(labs(atol(gc + 1) - atol(sc + 1)) <=
					      tol, "%s status %s: shadow '%s', "
					      "guest '%s'", zoo_names[z], key,
					      sl[i], gl[i]);
			else
				ck_assert_msg(strcmp(gl[i], sl[i]) == 0,
					      "%s status line %d: shadow '%s', "
					      "guest '%s'", zoo_names[z], i + 1,
					      sl[i], gl[i]);
		}
		ck_assert_msg(ng == ns, "%s status: shadow %d lines, guest %d "
			      "(first extra: '%s')", zoo_names[z], ns, ng,
			      ng > ns ? gl[ns] : sl[ng]);
	}
	printf("info: status of %d processes: every line equals the "
	       "guest's\n", NZOO);
	umount_vfs(0);
}
END_TEST

/* Space-separated numbers of @line after its key; their count. */
static int line_nums(const char *line, unsigned long long *v, int max)
{
	const char *p = strchr(line, ' ');
	int n = 0;
	char *end;

	while (p && n < max) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		v[n++] = strtoull(p, &end, 10);
		if (end == p)
			break;
		p = end;
	}
	return n;
}

/* proc/stat: the guest's own lines in its order, each value close. */
START_TEST(test_stat_lines)
{
	static char gout[1 << 16], shadow[1 << 16];
	static unsigned long long gv[4096], sv[4096];
	char *gl[300], *sl[300];
	int ng, ns, i, j, a, b, nintr = 0;

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	grun_ok("cat /proc/stat", gout, sizeof(gout), 60000);
	vt_sleep_ms(1100);
	read_file(vfs_path(0, "proc/stat"), shadow, sizeof(shadow));
	ng = split_lines(gout, gl, 300);
	ns = split_lines(shadow, sl, 300);
	ck_assert_msg(ng == ns, "proc/stat: shadow %d lines, guest %d:\n"
		      "%s\n--- guest:\n%.3000s", ns, ng, shadow, gout);
	for (i = 0; i < ng; i++) {
		size_t kl = strcspn(gl[i], " ");
		long long tol, rel;

		ck_assert_msg(strcspn(sl[i], " ") == kl &&
			      strncmp(gl[i], sl[i], kl) == 0, "proc/stat line "
			      "%d: shadow '%.80s', guest '%.80s'", i + 1, sl[i],
			      gl[i]);
		a = line_nums(gl[i], gv, 4096);
		b = line_nums(sl[i], sv, 4096);
		ck_assert_msg(a == b, "proc/stat %.*s: shadow %d numbers, "
			      "guest %d", (int)kl, gl[i], b, a);
		if (strncmp(gl[i], "intr ", 5) == 0)
			nintr = a;
		/* what moves in the second between the two readings */
		if (strncmp(gl[i], "cpu", 3) == 0) {
			tol = 300;
			rel = 10;
		} else if (strncmp(gl[i], "btime", kl) == 0) {
			tol = 1;
			rel = 0;
		} else if (strncmp(gl[i], "processes", kl) == 0 ||
			   strncmp(gl[i], "procs_", 6) == 0) {
			tol = 20;
			rel = 0;
		} else {		/* intr ctxt softirq */
			tol = 5000;
			rel = 5;
		}
		for (j = 0; j < a; j++)
			ck_assert_msg(llabs((long long)(gv[j] - sv[j])) <=
				      tol + (rel ? (long long)gv[j] / rel : 0),
				      "proc/stat %.*s value %d: shadow %llu, "
				      "guest %llu", (int)kl, gl[i], j + 1, sv[j],
				      gv[j]);
	}
	printf("info: proc/stat: %d lines equal the guest's (intr has %d "
	       "numbers)\n", ng, nintr);
	ck_assert_msg(nintr > 1, "proc/stat has no per-irq counts");
	umount_vfs(0);
}
END_TEST

/* meminfo lines that are fixed while the guest idles; the others move
 * by allocations between the two readings */
static long meminfo_tolerance(const char *key, long guest_kb)
{
	static const char *const fixed[] = {
		"MemTotal", "SwapTotal", "SwapFree", "CommitLimit",
		"VmallocTotal", "VmallocChunk", "NFS_Unstable", "Bounce",
		"WritebackTmp", "HardwareCorrupted", "HugePages_Total",
		"HugePages_Free", "HugePages_Rsvd", "HugePages_Surp",
		"Hugepagesize", "Hugetlb", "CmaTotal", "Zswap", "Zswapped",
		"Percpu", "DirectMap1G", "ShmemHugePages", "ShmemPmdMapped",
		"FileHugePages", "FilePmdMapped",
	};
	size_t i;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(key, fixed[i]) == 0)
			return 0;
	return 2048 + guest_kb / 50;
}

/* cpuinfo: everything is fixed but the clock the kernel measured */
static long cpuinfo_tolerance(const char *key, long guest)
{
	(void)guest;
	return strncmp(key, "cpu MHz", 7) == 0 ? 50 : -1;
}

/*
 * @shadow has the guest's lines "Key: value" in the guest's order; a
 * value is equal, or with @tol(key, guest) >= 0 a number within that
 * (the rest of the line equal).
 */
static void kv_lines_equal(const char *what, char *guest, char *shadow,
			   long (*tol)(const char *key, long guest))
{
	static char *gl[2048], *sl[2048];
	int ng = split_lines(guest, gl, 2048), ns = split_lines(shadow, sl,
							       2048), i;

	ck_assert_msg(ng > 0, "%s: guest printed nothing", what);
	for (i = 0; i < ng && i < ns; i++) {
		const char *gc = strchr(gl[i], ':'), *sc = strchr(sl[i], ':');
		char key[64];
		long t, gvl, svl;
		char *ge, *se;

		ck_assert_msg(gc && sc && gc - gl[i] == sc - sl[i] &&
			      strncmp(gl[i], sl[i], gc - gl[i]) == 0,
			      "%s line %d: shadow '%s', guest '%s'", what,
			      i + 1, sl[i], gl[i]);
		snprintf(key, sizeof(key), "%.*s", (int)(gc - gl[i]), gl[i]);
		gvl = strtol(gc + 1, &ge, 10);
		svl = strtol(sc + 1, &se, 10);
		t = tol(key, gvl);
		if (t > 0 && ge != gc + 1 && se != sc + 1) {
			ck_assert_msg(labs(gvl - svl) <= t && strcmp(ge, se) == 0,
				      "%s %s: shadow '%s', guest '%s' (within "
				      "%ld)", what, key, sl[i], gl[i], t);
			/* the same padding: the numbers end in one column
			 * when they have as many digits */
			ck_assert_msg(se - sl[i] == ge - gl[i] ||
				      snprintf(NULL, 0, "%ld", gvl) !=
				      snprintf(NULL, 0, "%ld", svl),
				      "%s %s: shadow '%s', guest '%s': columns "
				      "differ", what, key, sl[i], gl[i]);
		} else {
			ck_assert_msg(strcmp(gl[i], sl[i]) == 0, "%s line %d: "
				      "shadow '%s', guest '%s'", what, i + 1,
				      sl[i], gl[i]);
		}
	}
	ck_assert_msg(ng == ns, "%s: shadow %d lines, guest %d (first extra "
		      "'%s')", what, ns, ng, ng > ns ? gl[ns] : sl[ng]);
}

START_TEST(test_meminfo_lines)
{
	static char gout[1 << 16], shadow[1 << 16];

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	grun_ok("cat /proc/meminfo", gout, sizeof(gout), 60000);
	vt_sleep_ms(1100);
	read_file(vfs_path(0, "proc/meminfo"), shadow, sizeof(shadow));
	kv_lines_equal("meminfo", gout, shadow, meminfo_tolerance);
	printf("info: meminfo: every line is the guest's\n");
	umount_vfs(0);
}
END_TEST

START_TEST(test_cpuinfo_lines)
{
	static char gout[1 << 16], shadow[1 << 16];

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	grun_ok("cat /proc/cpuinfo", gout, sizeof(gout), 60000);
	read_file(vfs_path(0, "proc/cpuinfo"), shadow, sizeof(shadow));
	kv_lines_equal("cpuinfo", gout, shadow, cpuinfo_tolerance);
	printf("info: cpuinfo: every line is the guest's\n");
	umount_vfs(0);
}
END_TEST

struct gproc {
	int pid, ppid;
	unsigned int uid;
	char state;
	char comm[64];
};

/* The guest's own processes: pid ppid uid state comm, from its /proc,
 * with the guest stopped right after.  The commands of the listing itself
 * (cat, the subshell) come and go: @n counts the others. */
static int guest_procs(struct gproc *p, int max)
{
	static char out[BIG];
	char *line, *save = NULL;
	int n = 0;

	grun_ok("for d in /proc/[0-9]*; do s=$(cat $d/stat 2>/dev/null) && "
		"u=$(awk '/^Uid:/{print $2}' $d/status 2>/dev/null) && "
		"echo \"P $u $s\"; done; echo @@END", out, sizeof(out), 120000);
	qmp_ok("{\"execute\":\"stop\"}");
	for (line = strtok_r(out, "\n", &save); line && n < max;
	     line = strtok_r(NULL, "\n", &save)) {
		static char f[64][96];
		int nf;

		if (strncmp(line, "P ", 2) != 0)
			continue;
		nf = stat_fields(strchr(line + 2, ' ') + 1, f);
		if (nf < 5)
			continue;
		p[n].uid = (unsigned int)atoi(line + 2);
		p[n].pid = atoi(f[0]);
		snprintf(p[n].comm, sizeof(p[n].comm), "%.63s", f[1]);
		p[n].state = f[2][0];
		p[n].ppid = atoi(f[3]);
		/* the listing's own commands */
		if (strcmp(p[n].comm, "cat") == 0 ||
		    strcmp(p[n].comm, "awk") == 0)
			continue;
		n++;
	}
	return n;
}

/* ps -eo pid,ppid,uid,stat,comm,args through vmemfs-exec on mount @i
 * equals the guest's own list; the guest is stopped during the check. */
static void ps_matches(int i)
{
	static struct gproc g[MAXP];
	static char out[BIG], errout[8192];
	char *line, *save = NULL;
	int ng, st, seen = 0, k, rows = 0;
	bool found[MAXP] = { false };

	ng = guest_procs(g, MAXP);
	ck_assert_msg(ng > 10, "the guest listed only %d processes", ng);
	vt_sleep_ms(1100);	/* the next snapshot is of the stopped guest */
	st = vexec(i, out, sizeof(out), errout, sizeof(errout), "ps", "-eo",
		   "pid,ppid,uid,stat,comm,args", NULL);
	ck_assert_msg(st == 0, "ps -eo through vmemfs-exec -> %d: %s %s", st,
		      out, errout);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		int pid, ppid;
		unsigned int uid;
		char stat[16], comm[64];
		int off = 0;

		if (rows++ == 0) {
			ck_assert_msg(strstr(line, "PID") && strstr(line, "COMMAND"),
				      "ps header: %s", line);
			continue;
		}
		ck_assert_msg(sscanf(line, "%d %d %u %15s %63s %n", &pid, &ppid,
				     &uid, stat, comm, &off) == 5,
			      "ps line: %s", line);
		for (k = 0; k < ng && g[k].pid != pid; k++)
			;
		ck_assert_msg(k < ng || strncmp(comm, "kworker", 7) == 0,
			      "ps lists pid %d (%s) the guest does not have",
			      pid, comm);
		if (k == ng)
			continue;
		found[k] = true;
		seen++;
		/* pid 1 is the shell that ran the listing: its state is
		 * the one QMP stop caught, not the one it listed; kernel
		 * threads ([name]) wake on their own between the two */
		ck_assert_msg(ppid == g[k].ppid && uid == g[k].uid &&
			      (stat[0] == g[k].state || pid == 1 ||
			       line[off] == '[') &&
			      (strncmp(comm, g[k].comm, 15) == 0 ||
			       strncmp(comm, "kworker", 7) == 0),
			      "ps: %s\nguest: pid %d ppid %d uid %u state %c %s",
			      line, g[k].pid, g[k].ppid, g[k].uid, g[k].state,
			      g[k].comm);
		if (pid == E->zoo_pid[Z_LONG])
			ck_assert_msg(strstr(line + off, "/bin/vmt-procs child "
					     "vmt-long vmt-arg-00-abcdef"),
				      "vmt-long args: %s", line + off);
		if (pid == 2)
			ck_assert_msg(strstr(line + off, "[kthreadd]"),
				      "kthreadd args: %s", line + off);
		if (pid == E->zoo_pid[Z_THREADS])
			ck_assert_msg(strchr(stat, 'l'), "vmt-threads stat %s "
				      "not multi-threaded", stat);
	}
	for (k = 0; k < ng; k++)
		ck_assert_msg(found[k] || strncmp(g[k].comm, "kworker", 7) == 0,
			      "ps does not list the guest's pid %d (%s)",
			      g[k].pid, g[k].comm);
	/* the names in stat as the guest's: kernel threads' full names
	 * (rcu_tasks_kthread, longer than comm) included; kworkers' "-wq"
	 * part follows the work they last ran, so only their prefix */
	for (k = 0; k < ng; k++) {
		static char text[4096], f[64][96];
		char path[64];
		bool kw = strncmp(g[k].comm, "kworker", 7) == 0;

		snprintf(path, sizeof(path), "proc/%d/stat", g[k].pid);
		if (try_read(vfs_path(i, path), text, sizeof(text)) < 0 && kw)
			continue;
		ck_assert_msg(stat_fields(text, f) == 52, "%s: %s", path, text);
		ck_assert_msg(kw ? strncmp(f[1], g[k].comm, strcspn(g[k].comm,
						"-+")) == 0 :
			      strcmp(f[1], g[k].comm) == 0,
			      "pid %d: shadow name '%s', guest '%s'", g[k].pid,
			      f[1], g[k].comm);
	}
	printf("info: ps listed %d processes, equal to the guest's %d\n", seen,
	       ng);
	qmp_ok("{\"execute\":\"cont\"}");
}

START_TEST(test_ps_tools)
{
	static char out[BIG], errout[8192];
	char want[64];
	int st;

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	ps_matches(0);

	st = vexec(0, out, sizeof(out), errout, sizeof(errout), "ps", "aux",
		   NULL);
	ck_assert_msg(st == 0, "ps aux -> %d: %s %s", st, out, errout);
	ck_assert_msg(strstr(out, "vmt-arg-63") && strstr(out, "[kthreadd]"),
		      "ps aux: %s", out);
	st = vexec(0, out, sizeof(out), errout, sizeof(errout), "ps", "-ef",
		   NULL);
	ck_assert_msg(st == 0, "ps -ef -> %d: %s %s", st, out, errout);
	st = vexec(0, out, sizeof(out), errout, sizeof(errout), "busybox",
		   "ps", NULL);
	ck_assert_msg(st == 0, "busybox ps -> %d: %s %s", st, out, errout);
	{
		/* busybox names the owner as this host's passwd does */
		struct passwd *pw = getpwuid(1000);

		snprintf(want, sizeof(want), "%d %.8s ", E->zoo_pid[Z_USER],
			 pw ? pw->pw_name : "1000");
	}
	ck_assert_msg(strstr(out, "vmt-procs child vmt-long") &&
		      strstr(out, want), "busybox ps: %s", out);

	/* more of procps: pgrep finds by name, top runs */
	st = vexec(0, out, sizeof(out), errout, sizeof(errout), "pgrep", "-x",
		   "vmt-long", NULL);
	ck_assert_msg(st == 0 && atoi(out) == E->zoo_pid[Z_LONG],
		      "pgrep -x vmt-long -> %d: %.500s %.500s", st, out, errout);
	st = vexec(0, out, sizeof(out), errout, sizeof(errout), "top", "-b",
		   "-n", "1", NULL);
	ck_assert_msg(st == 0 && strstr(out, " vmt-"),
		      "top -b -n 1 -> %d: %.2000s %.500s", st, out, errout);
	st = vexec(0, out, sizeof(out), errout, sizeof(errout), "hostname",
		   NULL);
	ck_assert_msg(st == 0, "hostname -> %d: %s", st, errout);
	out[strcspn(out, "\n")] = '\0';
	ck_assert_str_eq(out, E->hostname);
	st = vexec(0, out, sizeof(out), errout, sizeof(errout), "sh", "-c",
		   "exit 7", NULL);
	ck_assert_int_eq(st, 7);
	st = vexec(0, out, sizeof(out), errout, sizeof(errout),
		   "/nonexistent/tool", NULL);
	ck_assert_int_eq(st, 127);
	{
		char *argv[] = { (char *)exec_bin(), E->dir, (char *)"true",
				 NULL };

		st = vt_run(argv, out, sizeof(out), errout, sizeof(errout),
			    30000);
		ck_assert_msg(st == 1 && strstr(errout, "not a vmemfs mount"),
			      "vmemfs-exec on a plain directory -> %d: %s",
			      st, errout);
	}
	umount_vfs(0);
}
END_TEST

/* Does some line of @text hold every one of the words (NULL-ended)? */
static bool line_has(const char *text, ...)
{
	const char *p = text;

	while (p && *p) {
		const char *end = strchr(p, '\n'), *w;
		char line[1024];
		bool all = true;
		va_list ap;

		snprintf(line, sizeof(line), "%.*s",
			 (int)(end ? end - p : (long)strlen(p)), p);
		va_start(ap, text);
		while ((w = va_arg(ap, const char *)))
			if (!strstr(line, w))
				all = false;
		va_end(ap);
		if (all)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* netstat -tanp and -uanp through vmemfs-exec on mount @i show the zoo's
 * sockets with their owners. */
static void netstat_matches(int i)
{
	static char out[BIG], errout[8192];
	char net[32], user[32];
	int st;

	snprintf(net, sizeof(net), "%d/vmt-procs", E->zoo_pid[Z_NET]);
	snprintf(user, sizeof(user), "%d/vmt-procs", E->zoo_pid[Z_USER]);
	st = vexec(i, out, sizeof(out), errout, sizeof(errout), "netstat",
		   "-tanp", NULL);
	ck_assert_msg(st == 0, "netstat -tanp -> %d: %s %s", st, out, errout);
	ck_assert_msg(line_has(out, "tcp ", "127.0.0.1:7001", "LISTEN", net,
			       NULL) &&
		      line_has(out, "tcp6", "::1:7002", "LISTEN", net, NULL) &&
		      line_has(out, "tcp6", ":::7003", "LISTEN", net, NULL) &&
		      line_has(out, "tcp ", "127.0.0.1:7001", "ESTABLISHED",
			       net, NULL) &&
		      line_has(out, "tcp ", "127.0.0.1:7006", "LISTEN", user,
			       NULL),
		      "netstat -tanp:\n%s", out);
	st = vexec(i, out, sizeof(out), errout, sizeof(errout), "netstat",
		   "-uanp", NULL);
	ck_assert_msg(st == 0, "netstat -uanp -> %d: %s %s", st, out, errout);
	ck_assert_msg(line_has(out, "udp ", "127.0.0.1:7004", net, NULL) &&
		      line_has(out, "udp6", "::1:7005", net, NULL) &&
		      line_has(out, "udp ", "127.0.0.1:7007", user, NULL),
		      "netstat -uanp:\n%s", out);
}

START_TEST(test_net_tools)
{
	static char out[BIG], errout[8192], gmods[8192];
	char *line, *save = NULL;
	int st, n = 0;

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	netstat_matches(0);

	/* lsmod: every module of the guest's /proc/modules, same size and
	 * use count */
	grun_ok("cat /proc/modules", gmods, sizeof(gmods), 60000);
	st = vexec(0, out, sizeof(out), errout, sizeof(errout), "lsmod", NULL);
	ck_assert_msg(st == 0 && !errout[0], "lsmod -> %d: %s %s", st, out,
		      errout);
	for (line = strtok_r(gmods, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[64], size[32], refs[32], want[160];

		if (sscanf(line, "%63s %31s %31s", name, size, refs) != 3)
			continue;
		snprintf(want, sizeof(want), "%s ", name);
		ck_assert_msg(line_has(out, want, size, NULL),
			      "lsmod has no '%s' of size %s:\n%s", name, size,
			      out);
		n++;
	}
	ck_assert_msg(n >= 3, "the guest has %d modules", n);
	ck_assert_msg(line_has(out, "tcp_vegas", " 1 tcp_yeah", NULL),
		      "lsmod: tcp_vegas not used by tcp_yeah:\n%s", out);
	printf("info: netstat and lsmod through vmemfs-exec: %d modules\n", n);
	umount_vfs(0);
}
END_TEST

static uint64_t stats_builds(int i, uint64_t *median)
{
	static char text[1 << 16];
	json_object *j, *p, *v;
	uint64_t n;

	read_file(vfs_path(i, "stats"), text, sizeof(text));
	j = json_tokener_parse(text);
	ck_assert_msg(j && json_object_object_get_ex(j, "proc", &p) &&
		      json_object_object_get_ex(p, "builds", &v),
		      "stats has no proc.builds: %s", text);
	n = json_object_get_uint64(v);
	if (median) {
		ck_assert(json_object_object_get_ex(p, "median_build_ms", &v));
		*median = json_object_get_uint64(v);
	}
	json_object_put(j);
	return n;
}

/*
 * The bytes the first build after a mount read from the homed half
 * (stats' proc.last_bytes_remote): one opendir of proc/ is one build.
 */
static uint64_t first_build_remote(int i)
{
	static char text[1 << 16];
	json_object *j, *p, *v;
	DIR *d = opendir(vfs_path(i, "proc"));
	uint64_t n;

	ck_assert_msg(d, "opendir proc: %s", strerror(errno));
	closedir(d);
	read_file(vfs_path(i, "stats"), text, sizeof(text));
	j = json_tokener_parse(text);
	ck_assert_msg(j && json_object_object_get_ex(j, "proc", &p) &&
		      json_object_object_get_ex(p, "last_bytes_remote", &v),
		      "stats has no proc.last_bytes_remote: %s", text);
	n = json_object_get_uint64(v);
	json_object_put(j);
	return n;
}

START_TEST(test_refresh)
{
	static char buf[8192];
	uint64_t b0, b1, med;
	DIR *d;

	require_env();
	/* default proc-refresh 1s */
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	read_file(vfs_path(0, "proc/stat"), buf, sizeof(buf));
	b0 = stats_builds(0, &med);
	ck_assert_msg(b0 >= 1, "no build counted");
	read_file(vfs_path(0, "proc/stat"), buf, sizeof(buf));
	read_file(vfs_path(0, "proc/uptime"), buf, sizeof(buf));
	b1 = stats_builds(0, NULL);
	ck_assert_msg(b1 == b0, "%" PRIu64 " builds within a second, 1 "
		      "expected", b1 - b0 + 1);
	vt_sleep_ms(1200);
	read_file(vfs_path(0, "proc/stat"), buf, sizeof(buf));
	b1 = stats_builds(0, &med);
	ck_assert_msg(b1 == b0 + 1, "%" PRIu64 " builds after proc-refresh, "
		      "1 expected", b1 - b0);
	printf("info: median shadow /proc build %" PRIu64 " ms\n", med);
	ck_assert(strstr(buf, "cpu ") == buf && strstr(buf, "\nbtime "));
	/* the guest's own: btime equal, uptime and the cpu line close */
	{
		static char g[8192];
		unsigned long long gc[4], sc[4];
		long long gb, sb;
		double gu, su;
		int c;

		grun_ok("cat /proc/stat; cat /proc/uptime", g, sizeof(g), 60000);
		read_file(vfs_path(0, "proc/stat"), buf, sizeof(buf));
		ck_assert_msg(sscanf(g + strspn(g, "\r\n"), "cpu %llu %llu %llu "
				     "%llu", &gc[0], &gc[1], &gc[2], &gc[3]) == 4 &&
			      sscanf(buf, "cpu %llu %llu %llu %llu", &sc[0],
				     &sc[1], &sc[2], &sc[3]) == 4,
			      "cpu lines:\n%s\n%s", g, buf);
		ck_assert(sscanf(strstr(g, "\nbtime ") + 7, "%lld", &gb) == 1);
		ck_assert(sscanf(strstr(buf, "\nbtime ") + 7, "%lld", &sb) == 1);
		ck_assert_msg(llabs(gb - sb) <= 1, "btime: shadow %lld, guest "
			      "%lld", sb, gb);
		for (c = 0; c < 4; c++)
			ck_assert_msg(llabs((long long)gc[c] - (long long)sc[c]) <=
				      300 + (long long)gc[c] / 10,
				      "cpu field %d: shadow %llu, guest %llu", c,
				      sc[c], gc[c]);
		{
			/* the uptime line is the last of the guest's output */
			char *l = g + strlen(g);

			while (l > g && (l[-1] == '\n' || l[-1] == '\r'))
				*--l = '\0';
			while (l > g && l[-1] != '\n')
				l--;
			gu = atof(l);
		}
		read_file(vfs_path(0, "proc/uptime"), buf, sizeof(buf));
		su = atof(buf);
		ck_assert_msg(su > 0 && gu > 0 && su - gu < 5 && gu - su < 5,
			      "uptime: shadow %.2f, guest %.2f", su, gu);
		printf("info: btime %lld, uptime %.2f (guest %.2f)\n", sb, su, gu);
	}
	read_file(vfs_path(0, "proc/meminfo"), buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, "MemTotal:", 9) == 0, "meminfo: %s", buf);
	read_file(vfs_path(0, "proc/cpuinfo"), buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, "processor\t: 0\n", 14) == 0, "cpuinfo: %s",
		      buf);
	umount_vfs(0);

	/* proc-refresh 0: one build per opendir of proc/ */
	mount_vfs(1, "rp.conf");
	kernel_wait(1);
	read_file(vfs_path(1, "proc/stat"), buf, sizeof(buf));
	b0 = stats_builds(1, NULL);
	d = opendir(vfs_path(1, "proc"));
	ck_assert(d != NULL);
	closedir(d);
	d = opendir(vfs_path(1, "proc"));
	ck_assert(d != NULL);
	closedir(d);
	b1 = stats_builds(1, NULL);
	if (b1 != b0 + 2)
		vt_print_tail(E->vfs[1].log, 20, "vmemfs: ");
	ck_assert_msg(b1 == b0 + 2, "%" PRIu64 " builds for 2 opendirs with "
		      "proc-refresh 0", b1 - b0);
	umount_vfs(1);
}
END_TEST

/* ---- hostile -------------------------------------------------------- */

struct host_kernel {
	struct vmi_phys p;
	struct vmi_kernel *k;
	struct vp_snapshot *s;
	uint64_t off_tasks, off_comm;
};

/* The test's own view of the paused guest: the library over the file. */
static void host_kernel_open(struct host_kernel *h)
{
	char err[512];
	struct vmi_kernel_options o = { .timeout_ms = 120000 };
	struct vp_build_opts bo = { .timeout_ms = 60000 };

	memset(h, 0, sizeof(*h));
	ck_assert_msg(vmi_phys_file_open(&h->p, E->mem, NULL, 0, err,
					 sizeof(err)) == 0, "%s", err);
	ck_assert_msg(vmi_kernel_recognise(&h->p, &o, &h->k, err,
					   sizeof(err)) == 0, "%s", err);
	ck_assert_msg(vp_snapshot_build(h->k, &h->p, &bo, &h->s, err,
					sizeof(err)) == 0, "%s", err);
	ck_assert(vmi_kernel_member(h->k, "task_struct.tasks", &h->off_tasks,
				    NULL) == 0);
	ck_assert(vmi_kernel_member(h->k, "task_struct.comm", &h->off_comm,
				    NULL) == 0);
}

static void host_kernel_close(struct host_kernel *h)
{
	vp_snapshot_free(h->s);
	vmi_kernel_free(h->k);
	vmi_phys_file_close(&h->p);
}

/* The GPA (= file offset below 3G) of kernel address @va. */
static uint64_t gpa_of(struct host_kernel *h, uint64_t va)
{
	uint64_t pa;

	ck_assert_msg(vmi_kernel_vtop(h->k, &h->p, va, &pa) == 0,
		      "vtop 0x%" PRIx64, va);
	return pa;
}

static void poke(uint64_t gpa, const void *buf, size_t len, void *save)
{
	int fd = open(E->mem, O_RDWR);

	ck_assert_msg(fd >= 0, "%s: %s", E->mem, strerror(errno));
	if (save)
		ck_assert(pread(fd, save, len, (off_t)gpa) == (ssize_t)len);
	ck_assert(pwrite(fd, buf, len, (off_t)gpa) == (ssize_t)len);
	close(fd);
}

static bool log_has(int i, const char *what)
{
	static char text[BIG];

	try_read(E->vfs[i].log, text, sizeof(text));
	return strstr(text, what) != NULL;
}

/* After a corruption: a build within the timeout, the mount serving. */
static void check_survives(const char *what, const char *logged)
{
	static char buf[BIG];
	double t0;
	char path[64];

	vt_sleep_ms(1100);
	t0 = vt_now_ms();
	read_file(vfs_path(0, "proc/stat"), buf, sizeof(buf));
	ck_assert_msg(vt_now_ms() - t0 < TIMEOUT_MS + 3000, "%s: the build "
		      "took %.0f ms", what, vt_now_ms() - t0);
	snprintf(path, sizeof(path), "proc/%d/stat", E->zoo_pid[Z_LONG]);
	read_file(vfs_path(0, path), buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "(vmt-long)"), "%s: stat %s", what, buf);
	read_file(vfs_path(0, "kernel"), buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "\"release\""), "%s: kernel %s", what, buf);
	read_file(vfs_path(0, "stats"), buf, sizeof(buf));
	ck_assert_msg(kill(E->vfs[0].pid, 0) == 0, "%s: vmemfs died", what);
	ck_assert_msg(log_has(0, logged), "%s: the log does not say '%s'",
		      what, logged);
	printf("info: %s: build cut in %.0f ms, logged\n", what,
	       vt_now_ms() - t0);
}

START_TEST(test_hostile)
{
	struct host_kernel h;
	const struct vp_task *root, *lng;
	uint64_t next_gpa, comm_gpa, bad, save8, v;
	char save16[16], path[64];
	static char buf[8192];

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	qmp_ok("{\"execute\":\"stop\"}");
	host_kernel_open(&h);
	root = vp_snapshot_find(h.s, E->zoo_pid[Z_ROOT]);
	lng = vp_snapshot_find(h.s, E->zoo_pid[Z_LONG]);
	ck_assert_msg(root && lng, "the test's own snapshot has no zoo");
	next_gpa = gpa_of(&h, root->va + h.off_tasks);
	comm_gpa = gpa_of(&h, root->va + h.off_comm);

	/* a cycle that misses the head: vmt-root -> vmt-long */
	v = lng->va + h.off_tasks;
	poke(next_gpa, &v, 8, &save8);
	check_survives("task list cycle", "init_task.tasks");
	poke(next_gpa, &save8, 8, NULL);

	/* a non-canonical next */
	bad = 0x0000dead00000000ULL;
	poke(next_gpa, &bad, 8, &save8);
	check_survives("non-canonical next", "init_task.tasks: walk cut");
	poke(next_gpa, &save8, 8, NULL);

	/* a comm with no NUL */
	poke(comm_gpa, "AAAAAAAAAAAAAAAA", 16, save16);
	check_survives("comm without NUL", "comm has no NUL");
	snprintf(path, sizeof(path), "proc/%d/stat", E->zoo_pid[Z_ROOT]);
	read_file(vfs_path(0, path), buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "(AAAAAAAAAAAAAAA) "), "comm: %s", buf);
	poke(comm_gpa, save16, 16, NULL);

	/* a build that runs out of its time budget keeps what was complete
	 * and says so */
	{
		struct vp_build_opts bo = { .timeout_ms = 1 };
		struct vp_snapshot *cut = NULL;
		char err[256];
		bool said = false;
		unsigned int k;
		size_t t;

		ck_assert_msg(vp_snapshot_build(h.k, &h.p, &bo, &cut, err,
						sizeof(err)) == 0, "%s", err);
		for (k = 0; k < cut->nlog; k++)
			said |= strstr(cut->log[k], "time budget") != NULL;
		ck_assert_msg(cut->cut && said, "a 1 ms build was not cut "
			      "(%zu processes, %u cuts)", cut->ntasks, cut->cut);
		ck_assert_msg(cut->ntasks < h.s->ntasks, "a 1 ms build has all "
			      "%zu processes", cut->ntasks);
		for (t = 0; t < cut->ntasks; t++)
			ck_assert_msg(cut->tasks[t].comm[0] &&
				      vp_snapshot_find(h.s, cut->tasks[t].pid),
				      "a cut build shows pid %d half",
				      cut->tasks[t].pid);
		printf("info: a 1 ms build kept %zu of %zu processes\n",
		       cut->ntasks, h.s->ntasks);
		vp_snapshot_free(cut);
	}
	host_kernel_close(&h);
	qmp_ok("{\"execute\":\"cont\"}");
	umount_vfs(0);
}
END_TEST

START_TEST(test_split)
{
	char err[1024];
	uint64_t remote_direct, remote_rp;

	require_env();
	if (!E->paged_out) {
		static char out[4096];

		/*
		 * Processes started while a ballast fills the local half
		 * (and more: 640 of 1024 MiB)
		 * get their pages (stack, argv) in the homed half, so that
		 * the builds below must read some of it remotely.
		 */
		grun_ok("dd if=/dev/zero of=/tmp/ballast bs=1M count=640 "
			"2>&1 && for i in 1 2 3 4 5 6 7 8; do vmt-procs child "
			"vmt-far-$i --far-$i-abcdefghijklmnopqrstuvwxyz "
			"3>/dev/null >/dev/null 2>&1 & done; sleep 1; "
			"rm /tmp/ballast", out, sizeof(out), 120000);
		ck_assert_msg(vt_split_page_out(&E->guest, &split, err,
						sizeof(err)) == 0, "%s", err);
		E->paged_out = true;
	}
	/*
	 * With the guest paused nothing moves but what the builds move:
	 * direct fetch leaves the split as it was, so the first build on the
	 * remote-paging mount reads the same homed pages, and must count
	 * them as remote although its own reads page them in.
	 */
	qmp_ok("{\"execute\":\"stop\"}");
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	remote_direct = first_build_remote(0);
	umount_vfs(0);
	mount_vfs(1, "rp.conf");
	kernel_wait(1);
	remote_rp = first_build_remote(1);
	umount_vfs(1);
	qmp_ok("{\"execute\":\"cont\"}");
	printf("info: first build read %" PRIu64 " bytes from the homed half "
	       "(direct), %" PRIu64 " (remote paging)\n", remote_direct,
	       remote_rp);
	ck_assert_msg(remote_direct > 0, "the first build read nothing from "
		      "the homed half: the test did not put any there");
	ck_assert_msg(remote_rp > 0, "remote paging build counted no remote "
		      "bytes; direct counted %" PRIu64, remote_direct);
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	ps_matches(0);
	netstat_matches(0);
	umount_vfs(0);
	mount_vfs(1, "rp.conf");
	kernel_wait(1);
	ps_matches(1);
	netstat_matches(1);
	if (getenv("VMT_PROC_SHOW")) {	/* the README's example output */
		static char out[BIG], errout[4096];

		vexec(1, out, sizeof(out), errout, sizeof(errout), "ps", "aux",
		      NULL);
		printf("show: ps aux\n%s", out);
		vexec(1, out, sizeof(out), errout, sizeof(errout), "netstat",
		      "-tanp", NULL);
		printf("show: netstat -tanp\n%s", out);
		vexec(1, out, sizeof(out), errout, sizeof(errout), "lsmod",
		      NULL);
		printf("show: lsmod\n%s", out);
		vexec(1, out, sizeof(out), errout, sizeof(errout), "sh", "-c",
		      "hostname; ls /proc | head -12 | tr '\\n' ' '", NULL);
		printf("show: sh\n%s\n", out);
		read_file(vfs_path(1, "stats"), out, sizeof(out));
		printf("show: stats\n%s", strstr(out, "\"proc\"") ?
		       strstr(out, "\"proc\"") : out);
	}
	umount_vfs(1);
}
END_TEST

START_TEST(test_forking)
{
	static char out[BIG], errout[8192];
	char *line, *save = NULL;
	int run, st, lines = 0;

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0);
	grun_ok("(vmt-procs forkloop &) ; sleep 1", out, sizeof(out), 60000);
	for (run = 0; run < 200; run++) {
		st = vexec(0, out, sizeof(out), errout, sizeof(errout), "ps",
			   "-eo", "pid,stat,comm", NULL);
		ck_assert_msg(st == 0, "run %d: ps -> %d: %s %s", run, st, out,
			      errout);
		save = NULL;
		for (line = strtok_r(out, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			int pid;
			char stat[16], comm[64];

			if (strstr(line, "PID"))
				continue;
			ck_assert_msg(sscanf(line, "%d %15s %63s", &pid, stat,
					     comm) == 3 && pid > 0,
				      "run %d: ps line '%s'", run, line);
			lines++;
		}
	}
	printf("info: 200 ps runs against a forking guest, %d lines\n", lines);
	grun_ok("killall vmt-forkloop 2>/dev/null; true", out, sizeof(out),
		60000);
	umount_vfs(0);
}
END_TEST

static Suite *proc_suite(void)
{
	Suite *s = suite_create("qemu_proc");
	TCase *tc = tcase_create("split1g");

	const struct {
		const char *name;
		const TTest *t;
	} tests[] = {
		{ "pid_files", test_pid_files },
		{ "status_lines", test_status_lines },
		{ "stat_lines", test_stat_lines },
		{ "meminfo_lines", test_meminfo_lines },
		{ "cpuinfo_lines", test_cpuinfo_lines },
		{ "ps_tools", test_ps_tools },
		{ "threads", test_threads },
		{ "net_tools", test_net_tools },
		{ "refresh", test_refresh },
		{ "hostile", test_hostile },
		{ "forking", test_forking },
		/* Last: it pages the homed half out. */
		{ "split", test_split },
	};
	/* VMT_PROC_ONLY=name[,name]: run only those (while debugging) */
	const char *only = getenv("VMT_PROC_ONLY");
	size_t i;

	tcase_add_unchecked_fixture(tc, env_up, env_down);
	tcase_set_timeout(tc, 900);
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!only || strstr(only, tests[i].name))
			tcase_add_test(tc, tests[i].t);
	suite_add_tcase(s, tc);
	return s;
}

VT_GUEST_MAIN("check_qemu_proc", proc_suite, E, runner_pid, env_down)
