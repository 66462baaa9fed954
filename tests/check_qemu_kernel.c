// SPDX-License-Identifier: MIT
/*
 * The guest kernel seen from a live split VM: vmemfs's `kernel` and
 * `vmcore` against what the guest itself says, and against the forensics
 * tools people use (makedumpfile, drgn, crash), all under TCG with KASLR.
 *
 * One guest serves every case: the test guest with 5 GiB of RAM (so RAM
 * sits above 4 GiB in guest-physical space: the pc machine maps RAM
 * [3G, 5G) at GPA [4G, 6G)), its RAM [2.5G, 5G) homed on an nbdkit
 * sub-host in a network namespace (tests/lib/splitvm.c, the VM that
 * check_qemu_vmemfs boots), a random token on its kernel command line,
 * and three long-lived processes with names of the test's choosing.
 * Cases, in order:
 *   - `kernel`: release, note GPA and KASLR offset equal the guest's own
 *     `uname -r`, /sys/kernel/vmcoreinfo and _text in /proc/kallsyms;
 *   - makedumpfile --dump-dmesg of `vmcore` prints the guest's log with
 *     the token (no debug info needed);
 *   - drgn -c vmcore -s VMLINUX lists exactly the processes the guest's
 *     own `ps` printed just before QMP `stop` (pid and comm; kworkers,
 *     which come and go, excepted), and some of their task_structs sit
 *     above 4 GiB;
 *   - crash's `list task_struct.tasks -h init_task` finds the same;
 *   - the homed half paged out to the sub-host: the drgn check again
 *     through the direct and the remote-paging backend;
 *   - QMP system_reset of the paused guest: `kernel` stops showing the
 *     old kernel, although its memory is still all there, and once the
 *     guest has booted again it shows the new one (its KASLR offset and
 *     note GPA from the guest).
 * VMLINUX is the cloud kernel's debug vmlinux that
 * scripts/guest/build-guest.sh caches in build/guest.
 *
 * Processes are started by the unchecked fixture in the runner and
 * killed by PID at teardown (and on signals), as in check_qemu_vmemfs.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/guest.h"
#include "lib/guestck.h"
#include "lib/hosts.h"
#include "lib/splitvm.h"
#include "lib/suite.h"

#define MiB ((uint64_t)1 << 20)
#define GiB (1024 * MiB)

#define RAM (5 * GiB)
#define MEM_SIZE (6 * GiB)		/* highest RAM GPA end (pc) */
#define HOME_START (2560 * MiB)
#define HOME_END RAM
#define CHUNK (64 * 1024)
#define TIMEOUT_MS 5000
#define NBD_PORT 10809
#define START_KERNEL_MAP 0xffffffff80000000ULL
#define KERNEL_TEXT_DEFAULT 0xffffffff81000000ULL
#define NSLEEPERS 3
#define MAX_TASKS 512
#define VFS_MAX 2

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
	char token[40];
	char sleeper[NSLEEPERS][16];	/* their comm */
	int sleeper_pid[NSLEEPERS];
	bool paged_out;
};

static struct env *E;
static pid_t runner_pid;
static struct vt_split_opts split;

/* ---- environment ---------------------------------------------------- */

static const char *const dir_files[] = {
	"qemu.log", "qemu.conf", "direct.conf", "rp.conf", "tasks.py",
	"crash.cmd", "dmesg.txt", "vmemfs0.log", "vmemfs1.log",
	"vmemfs-qmp.sock", "mnt0", "mnt1",
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

static const char *vmlinux_path(void)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/vmlinux", vt_guest_dir());
	return path;
}

static int write_text(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", E->dir, name);
	f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		env_fail("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* drgn: every task as "pid comm gpa-of-its-task_struct". */
static const char tasks_py[] =
"from drgn.helpers.linux.pid import for_each_task\n"
"pob = prog['page_offset_base'].value_()\n"
"for t in for_each_task(prog):\n"
"    print(t.pid.value_(), t.comm.string_().decode(), t.value_() - pob)\n";

static void env_up(void)
{
	char path[256], netns[64], err[2048], append[96], cmd[512];
	char out[1024];
	uint64_t rnd;
	int i;

	memset(E, 0, sizeof(*E));
	snprintf(path, sizeof(path), "%s/vmlinuz", vt_guest_dir());
	if (access(path, R_OK) != 0 || access(vmlinux_path(), R_OK) != 0) {
		env_fail("guest or its debug vmlinux missing in %s (run "
			 "scripts/guest/build-guest.sh)", vt_guest_dir());
		return;
	}
	if (vt_run_dir("kernel", runner_pid, E->dir, E->mem, E->err,
		       sizeof(E->err)) < 0)
		return;
	snprintf(E->qemu_conf, sizeof(E->qemu_conf), "%s/qemu.conf", E->dir);
	snprintf(E->qmp2, sizeof(E->qmp2), "%s/vmemfs-qmp.sock", E->dir);
	rnd = vt_splitmix64((uint64_t)runner_pid * 0x9e3779b97f4a7c15ULL ^
			    (uint64_t)vt_now_ms());
	snprintf(E->token, sizeof(E->token), "%016" PRIx64, rnd);
	snprintf(append, sizeof(append), "vmt_token=%s", E->token);
	snprintf(netns, sizeof(netns), "vmt-kern-%d", (int)runner_pid);
	split = (struct vt_split_opts){
		.run_dir = E->dir, .mem_path = E->mem,
		.qemu_conf = E->qemu_conf, .qmp2_path = E->qmp2,
		.netns = netns, .subnet = 15600 + runner_pid % 512,
		.nbd_port = NBD_PORT, .ram_size = RAM,
		.home_start = HOME_START, .home_end = HOME_END,
		.local_limit = RAM, .chunk = CHUNK,
		.timeout_ms = TIMEOUT_MS, .boot_timeout_ms = 300000,
		.append = append, .allow_reset = true,
	};
	if (vt_split_guest_start(&split, &E->ns, &E->sub, &E->guest, err,
				 sizeof(err)) < 0) {
		env_fail("%s", err);
		return;
	}
	printf("info: 5 GiB guest booted in %.1f s (TCG, RAM [2.5G, 5G) on "
	       "%s in netns %s)\n", E->guest.boot_ms / 1000, E->sub.uri,
	       E->ns.name);
	if (vt_split_vmemfs_confs(&split, NULL, err, sizeof(err)) < 0) {
		env_fail("%s", err);
		return;
	}
	if (write_text("tasks.py", tasks_py) < 0)
		return;
	/*
	 * Long-lived processes of our naming: comm is the name of the file
	 * exec'd, so a symlink to busybox, run as the sleep applet.
	 */
	for (i = 0; i < NSLEEPERS; i++) {
		snprintf(E->sleeper[i], sizeof(E->sleeper[i]), "vmt%c-%.8s",
			 'a' + i, E->token + 2 * i);
		snprintf(cmd, sizeof(cmd), "ln -s /bin/busybox /tmp/%s && "
			 "(exec -a sleep /tmp/%s 1000000 &) && sleep 1 && "
			 "pidof %s", E->sleeper[i], E->sleeper[i],
			 E->sleeper[i]);
		if (vt_guest_run(&E->guest, cmd, out, sizeof(out), 60000) != 0 ||
		    (E->sleeper_pid[i] = atoi(out)) <= 1) {
			env_fail("starting %s in the guest: %s", E->sleeper[i],
				 out);
			return;
		}
	}
	printf("info: guest processes %s=%d %s=%d %s=%d\n", E->sleeper[0],
	       E->sleeper_pid[0], E->sleeper[1], E->sleeper_pid[1],
	       E->sleeper[2], E->sleeper_pid[2]);
	E->up = true;
}

/* Every test starts with the guest running (one that failed half-way
 * may have left it stopped). */
static void require_env(void)
{
	ck_assert_msg(E->up, "environment not up: %s", E->err);
	vt_ck_qmp(&E->guest, "{\"execute\":\"cont\"}");
}

/* ---- helpers -------------------------------------------------------- */

static void mount_vfs(int i, const char *conf)
{
	vt_ck_mount(&E->vfs[i], E->dir, i, conf, MEM_SIZE, 30000);
}

static void umount_vfs(int i)
{
	vt_vmemfs_stop(&E->vfs[i], 5000);
}

struct kinfo {
	char release[80];
	uint64_t kaslr, note_gpa, symbols;
	char error[512];
};

/* `kernel` of mount @i once; false (and k->error) while an error. */
static bool kernel_once(int i, struct kinfo *k)
{
	static char text[1 << 16];
	json_object *j, *v;

	memset(k, 0, sizeof(*k));
	vt_ck_read_text(vt_vmemfs_path(&E->vfs[i], "kernel"), text,
			sizeof(text));
	j = json_tokener_parse(text);
	ck_assert_msg(j && json_object_is_type(j, json_type_object),
		      "kernel is not a JSON object: %s", text);
	if (json_object_object_get_ex(j, "error", &v)) {
		snprintf(k->error, sizeof(k->error), "%s",
			 json_object_get_string(v));
		json_object_put(j);
		return false;
	}
#define GET(key, type) \
	ck_assert_msg(json_object_object_get_ex(j, key, &v) && \
		      json_object_is_type(v, type), "kernel has no %s: %s", \
		      key, text)
	GET("release", json_type_string);
	snprintf(k->release, sizeof(k->release), "%s",
		 json_object_get_string(v));
	GET("kaslr_offset", json_type_int);
	k->kaslr = json_object_get_uint64(v);
	GET("vmcoreinfo_gpa", json_type_int);
	k->note_gpa = json_object_get_uint64(v);
	GET("symbols", json_type_int);
	k->symbols = json_object_get_uint64(v);
#undef GET
	json_object_put(j);
	return true;
}

/* `kernel` of mount @i until it is not an error or @timeout_ms passed. */
static void kernel_wait(int i, struct kinfo *k, int timeout_ms)
{
	double t0 = vt_now_ms();

	while (!kernel_once(i, k)) {
		ck_assert_msg(vt_now_ms() - t0 < timeout_ms, "kernel still says "
			      "\"%s\" after %d ms", k->error, timeout_ms);
		vt_sleep_ms(500);
	}
	printf("info: kernel known %.1f s after asking: %s, KASLR offset "
	       "0x%" PRIx64 ", note at 0x%" PRIx64 "\n",
	       (vt_now_ms() - t0) / 1000, k->release, k->kaslr, k->note_gpa);
}

/* What the guest says of itself: release, note GPA, KASLR offset. */
static void guest_kinfo(struct kinfo *k)
{
	char out[4096];
	unsigned long long text = 0, gpa = 0;
	char *p;

	memset(k, 0, sizeof(*k));
	vt_ck_grun(&E->guest, "uname -r", out, sizeof(out), 30000);
	out[strcspn(out, "\r\n")] = '\0';
	snprintf(k->release, sizeof(k->release), "%.79s", out);
	vt_ck_grun(&E->guest, "cat /sys/kernel/vmcoreinfo", out, sizeof(out),
		   30000);
	ck_assert_msg(sscanf(out, "%llx", &gpa) == 1, "vmcoreinfo: %s", out);
	k->note_gpa = gpa;
	vt_ck_grun(&E->guest, "grep ' _text$' /proc/kallsyms", out,
		   sizeof(out), 60000);
	p = out + strspn(out, "\r\n");
	ck_assert_msg(sscanf(p, "%llx", &text) == 1 && text >= KERNEL_TEXT_DEFAULT,
		      "kallsyms _text: %s", out);
	k->kaslr = text - KERNEL_TEXT_DEFAULT;
}

struct task {
	int pid;
	char comm[32];
	uint64_t gpa;
};

static int find_task(const struct task *t, int n, int pid)
{
	for (int i = 0; i < n; i++)
		if (t[i].pid == pid)
			return i;
	return -1;
}

static bool is_kworker(const char *comm)
{
	return strncmp(comm, "kworker/", 8) == 0;
}

/* The guest's /proc adds a kworker's current workqueue to its comm
 * ("kworker/0:0-rcu_gp"); task_struct.comm has the name only. */
static bool same_comm(const char *task, const char *guest)
{
	size_t n = strlen(task);

	if (strcmp(task, guest) == 0)
		return true;
	return is_kworker(task) && strncmp(task, guest, n) == 0 &&
	       guest[n] == '-';
}

/* The guest's `ps` (pid and comm), then QMP stop: memory holds still. */
static int guest_ps_and_stop(struct task *t)
{
	static char out[1 << 16];
	char *line, *save = NULL;
	int n = 0;

	vt_ck_grun(&E->guest, "ps -o pid,comm", out, sizeof(out), 60000);
	vt_ck_qmp(&E->guest, "{\"execute\":\"stop\"}");
	for (line = strtok_r(out, "\r\n", &save); line;
	     line = strtok_r(NULL, "\r\n", &save)) {
		struct task x = { 0 };

		if (sscanf(line, " %d %31s", &x.pid, x.comm) != 2)
			continue;	/* the header */
		if (strcmp(x.comm, "ps") == 0)
			continue;	/* gone by the time of the stop */
		ck_assert_int_lt(n, MAX_TASKS);
		t[n++] = x;
	}
	ck_assert_msg(n > 20, "the guest's ps listed only %d processes", n);
	return n;
}

/*
 * @what's task list (@got) is the guest's (@want): the same pids with the
 * same comm, except kworkers that came or went; our sleepers and init
 * among them.
 */
static void assert_same_tasks(const char *what, const struct task *got,
			      int ngot, const struct task *want, int nwant)
{
	int i, j, kw = 0;

	ck_assert_msg(ngot > 20, "%s lists only %d tasks", what, ngot);
	for (i = 0; i < nwant; i++) {
		j = find_task(got, ngot, want[i].pid);
		if (j < 0 && is_kworker(want[i].comm)) {
			kw++;
			continue;
		}
		ck_assert_msg(j >= 0, "%s misses the guest's pid %d (%s)",
			      what, want[i].pid, want[i].comm);
		ck_assert_msg(same_comm(got[j].comm, want[i].comm),
			      "%s: pid %d is \"%s\", the guest says \"%s\"",
			      what, want[i].pid, got[j].comm, want[i].comm);
	}
	for (j = 0; j < ngot; j++) {
		if (find_task(want, nwant, got[j].pid) >= 0)
			continue;
		ck_assert_msg(is_kworker(got[j].comm), "%s lists pid %d (%s), "
			      "which the guest's ps did not", what, got[j].pid,
			      got[j].comm);
		kw++;
	}
	ck_assert_msg(kw <= 4, "%s and the guest differ in %d kworkers", what,
		      kw);
	i = find_task(got, ngot, 1);
	ck_assert_msg(i >= 0 && strcmp(got[i].comm, "init") == 0,
		      "%s: no init as pid 1", what);
	for (i = 0; i < NSLEEPERS; i++) {
		j = find_task(got, ngot, E->sleeper_pid[i]);
		ck_assert_msg(j >= 0 && strcmp(got[j].comm, E->sleeper[i]) == 0,
			      "%s: no %s as pid %d", what, E->sleeper[i],
			      E->sleeper_pid[i]);
	}
	printf("info: %s: %d tasks, equal to the guest's ps (%d kworkers "
	       "differ)\n", what, ngot, kw);
}

/* drgn over `vmcore` of mount @i: its tasks. */
static int drgn_tasks(int i, struct task *t)
{
	static char out[1 << 17], err[1 << 14];
	char script[256];
	char *argv[] = { "/usr/bin/drgn", "-q", "-c", NULL, "-s", NULL, script,
			 NULL };
	char *line, *save = NULL;
	double t0 = vt_now_ms();
	int rc, n = 0;

	snprintf(script, sizeof(script), "%s/tasks.py", E->dir);
	argv[3] = (char *)vt_vmemfs_path(&E->vfs[i], "vmcore");
	argv[5] = (char *)vmlinux_path();
	rc = vt_run(argv, out, sizeof(out), err, sizeof(err), 300000);
	ck_assert_msg(rc == 0, "drgn: %d: %s %s", rc, err, out);
	printf("info: drgn listed the tasks in %.1f s\n",
	       (vt_now_ms() - t0) / 1000);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct task x = { 0 };

		if (sscanf(line, "%d %31s %" SCNu64, &x.pid, x.comm, &x.gpa) != 3)
			continue;
		if (x.pid == 0)
			continue;
		ck_assert_int_lt(n, MAX_TASKS);
		t[n++] = x;
	}
	return n;
}

/* ---- tests ---------------------------------------------------------- */

/* `kernel` says what the guest says of itself. */
START_TEST(test_kernel_file)
{
	struct kinfo k, g;

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0, &k, 60000);
	guest_kinfo(&g);
	ck_assert_str_eq(k.release, g.release);
	ck_assert_msg(k.note_gpa == g.note_gpa, "note at 0x%" PRIx64 ", the "
		      "guest says 0x%" PRIx64, k.note_gpa, g.note_gpa);
	ck_assert_msg(k.kaslr == g.kaslr, "KASLR offset 0x%" PRIx64 ", the "
		      "guest's _text says 0x%" PRIx64, k.kaslr, g.kaslr);
	/* KASLR is on: a zero offset would mean nokaslr crept in. */
	ck_assert_uint_ne(g.kaslr, 0);
	ck_assert_uint_gt(k.symbols, 50000);
	umount_vfs(0);
}
END_TEST

/* makedumpfile reads the log buffer through vmcore: the token is in it. */
START_TEST(test_makedumpfile_dmesg)
{
	static char out[1 << 14], err[1 << 14], log[1 << 20];
	char dst[256], want[96];
	char *argv[] = { "makedumpfile", "--dump-dmesg", NULL, dst, NULL };
	int rc;

	require_env();
	mount_vfs(0, "direct.conf");
	snprintf(dst, sizeof(dst), "%s/dmesg.txt", E->dir);
	unlink(dst);
	argv[2] = (char *)vt_vmemfs_path(&E->vfs[0], "vmcore");
	rc = vt_run(argv, out, sizeof(out), err, sizeof(err), 120000);
	ck_assert_msg(rc == 0, "makedumpfile: %d: %s %s", rc, out, err);
	vt_ck_read_text(dst, log, sizeof(log));
	snprintf(want, sizeof(want), "vmt_token=%s", E->token);
	ck_assert_msg(strstr(log, want), "the log has no %s: %.300s", want,
		      log);
	ck_assert_msg(strstr(log, "Linux version "), "%.300s", log);
	printf("info: makedumpfile --dump-dmesg: %zu bytes of log, token "
	       "included\n", strlen(log));
	unlink(dst);
	umount_vfs(0);
}
END_TEST

/* drgn lists the guest's processes, some of them above 4 GiB. */
START_TEST(test_drgn_tasks)
{
	static struct task want[MAX_TASKS], got[MAX_TASKS];
	int nw, ng, high = 0;

	require_env();
	mount_vfs(0, "direct.conf");
	nw = guest_ps_and_stop(want);
	ng = drgn_tasks(0, got);
	vt_ck_qmp(&E->guest, "{\"execute\":\"cont\"}");
	assert_same_tasks("drgn", got, ng, want, nw);
	for (int i = 0; i < ng; i++)
		high += got[i].gpa >= 4 * GiB;
	printf("info: %d of %d task_structs above GPA 4 GiB\n", high, ng);
	ck_assert_msg(high > 0, "no task_struct above 4 GiB: the test does "
		      "not see RAM above the PCI hole");
	umount_vfs(0);
}
END_TEST

/* crash 8.0.2 (whose ps is broken on 6.1) walks init_task.tasks. */
START_TEST(test_crash_tasks)
{
	static struct task want[MAX_TASKS], got[MAX_TASKS];
	static char out[1 << 18], err[1 << 14];
	char cmdf[256];
	char *argv[] = { "crash", "-s", NULL, NULL, "-i", cmdf, NULL };
	char *line, *save = NULL;
	double t0;
	int nw, ng = 0, rc, pid = -1;

	require_env();
	snprintf(cmdf, sizeof(cmdf), "%s/crash.cmd", E->dir);
	{
		FILE *f = fopen(cmdf, "w");

		ck_assert(f);
		fputs("list task_struct.tasks -s task_struct.pid,comm -h "
		      "init_task\nquit\n", f);
		ck_assert_int_eq(fclose(f), 0);
	}
	mount_vfs(0, "direct.conf");
	argv[2] = (char *)vmlinux_path();
	argv[3] = (char *)vt_vmemfs_path(&E->vfs[0], "vmcore");
	nw = guest_ps_and_stop(want);
	t0 = vt_now_ms();
	rc = vt_run(argv, out, sizeof(out), err, sizeof(err), 300000);
	vt_ck_qmp(&E->guest, "{\"execute\":\"cont\"}");
	ck_assert_msg(rc == 0, "crash: %d: %.2000s %.2000s", rc, out, err);
	printf("info: crash opened vmcore and walked the tasks in %.1f s\n",
	       (vt_now_ms() - t0) / 1000);
	/* "  pid = 51," then "  comm = "mld\000...",". */
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char comm[32];

		if (sscanf(line, " pid = %d,", &pid) == 1)
			continue;
		if (pid >= 0 && sscanf(line, " comm = \"%31[^\\\"]", comm) == 1) {
			if (pid > 0) {
				ck_assert_int_lt(ng, MAX_TASKS);
				got[ng].pid = pid;
				snprintf(got[ng].comm, sizeof(got[ng].comm),
					 "%s", comm);
				ng++;
			}
			pid = -1;
		}
	}
	assert_same_tasks("crash", got, ng, want, nw);
	umount_vfs(0);
}
END_TEST

/*
 * The homed half paged out to the sub-host: drgn through each backend
 * still lists the guest's processes, reading remote memory to do so.
 */
START_TEST(test_drgn_split)
{
	static struct task want[MAX_TASKS], got[MAX_TASKS];
	static const char *const confs[] = { "direct.conf", "rp.conf" };
	char err[1024], text[1 << 14];
	int nw, ng;

	require_env();
	nw = guest_ps_and_stop(want);
	ck_assert_msg(vt_split_page_out(&E->guest, &split, err,
					sizeof(err)) == 0, "%s", err);
	for (int c = 0; c < 2; c++) {
		json_object *j, *v;
		uint64_t remote;

		mount_vfs(c, confs[c]);
		/*
		 * direct: drgn at once, so its open of vmcore waits for the
		 * scan.  remote-paging: the note is on the sub-host and the
		 * scan pages in every chunk before it (a command each: half
		 * a minute here), longer than an open waits; wait for it.
		 */
		if (c == 1) {
			struct kinfo k;

			kernel_wait(c, &k, 240000);
		}
		ng = drgn_tasks(c, got);
		assert_same_tasks(confs[c], got, ng, want, nw);
		/*
		 * It had to reach the sub-host: direct counts the bytes it
		 * read there, remote-paging the page-in commands it sent.
		 */
		vt_ck_read_text(vt_vmemfs_path(&E->vfs[c], "stats"), text,
				sizeof(text));
		j = json_tokener_parse(text);
		ck_assert_msg(j, "stats is not JSON: %s", text);
		if (c == 0) {
			ck_assert(json_object_object_get_ex(j, "bytes_remote",
							    &v));
		} else {
			ck_assert(json_object_object_get_ex(j, "subhosts", &v));
			ck_assert_int_ge(json_object_array_length(v), 1);
			v = json_object_array_get_idx(v, 0);
			ck_assert(json_object_object_get_ex(v, "requests", &v));
		}
		remote = (uint64_t)json_object_get_int64(v);
		json_object_put(j);
		printf("info: %s: %" PRIu64 " %s\n", confs[c], remote,
		       c ? "vmem-page-in commands" : "bytes from the sub-host");
		ck_assert_uint_gt(remote, 0);
		umount_vfs(c);
	}
	vt_ck_qmp(&E->guest, "{\"execute\":\"cont\"}");
}
END_TEST

/* After system_reset, `kernel` follows the new boot (KASLR moved it). */
START_TEST(test_reset_followed)
{
	struct kinfo before, after, g;
	char err[1024];
	double t0;

	require_env();
	mount_vfs(0, "direct.conf");
	kernel_wait(0, &before, 60000);
	/*
	 * Reset a paused guest: it stays paused, nothing has run since, so
	 * RAM still holds the old kernel whole, note, banner and all.  It is
	 * dead all the same, and kernel must not show it (the QMP RESET
	 * event reaches vmemfs a moment after the command returns).
	 */
	vt_ck_qmp(&E->guest, "{\"execute\":\"stop\"}");
	vt_ck_qmp(&E->guest, "{\"execute\":\"system_reset\"}");
	t0 = vt_now_ms();
	while (kernel_once(0, &after)) {
		ck_assert_msg(vt_now_ms() - t0 < 10000, "10 s after a reset, "
			      "kernel still shows the old kernel (KASLR 0x%"
			      PRIx64 ")", after.kaslr);
		vt_sleep_ms(100);
	}
	printf("info: %.1f s after the reset, kernel says \"%s\"\n",
	       (vt_now_ms() - t0) / 1000, after.error);
	for (int i = 0; i < 3; i++) {
		vt_sleep_ms(1100);	/* each open may scan again */
		ck_assert_msg(!kernel_once(0, &after), "the dead kernel (KASLR "
			      "0x%" PRIx64 ") came back before the guest ran",
			      after.kaslr);
	}
	vt_ck_qmp(&E->guest, "{\"execute\":\"cont\"}");
	t0 = vt_now_ms();
	ck_assert_msg(vt_guest_wait_ready(&E->guest, 300000, err,
					  sizeof(err)) == 0, "%s", err);
	printf("info: the guest booted again in %.1f s\n",
	       (vt_now_ms() - t0) / 1000);
	guest_kinfo(&g);
	printf("info: KASLR offset 0x%" PRIx64 " -> 0x%" PRIx64 ", note 0x%"
	       PRIx64 " -> 0x%" PRIx64 "\n", before.kaslr, g.kaslr,
	       before.note_gpa, g.note_gpa);
	t0 = vt_now_ms();
	for (;;) {
		bool known = kernel_once(0, &after);

		if (known && after.kaslr == g.kaslr &&
		    after.note_gpa == g.note_gpa)
			break;
		ck_assert_msg(vt_now_ms() - t0 < 90000, "90 s after the "
			      "reboot, kernel says %s (KASLR 0x%" PRIx64
			      ", note 0x%" PRIx64 "); the guest 0x%" PRIx64
			      ", 0x%" PRIx64, known ? "a kernel" : after.error,
			      after.kaslr, after.note_gpa, g.kaslr,
			      g.note_gpa);
		vt_sleep_ms(500);
	}
	printf("info: kernel followed the reboot %.1f s after the guest's "
	       "shell was up\n", (vt_now_ms() - t0) / 1000);
	ck_assert_str_eq(after.release, g.release);
	umount_vfs(0);
}
END_TEST

static Suite *kernel_suite(void)
{
	Suite *s = suite_create("qemu_kernel");
	TCase *tc = tcase_create("split5g");

	tcase_add_unchecked_fixture(tc, env_up, env_down);
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_kernel_file);
	tcase_add_test(tc, test_makedumpfile_dmesg);
	tcase_add_test(tc, test_drgn_tasks);
	tcase_add_test(tc, test_crash_tasks);
	tcase_add_test(tc, test_drgn_split);
	/* Last: it reboots the guest (the sleepers are gone after it). */
	tcase_add_test(tc, test_reset_followed);
	suite_add_tcase(s, tc);
	return s;
}

VT_GUEST_MAIN("check_qemu_kernel", kernel_suite, E, runner_pid, env_down)
