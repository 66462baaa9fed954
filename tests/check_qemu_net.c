// SPDX-License-Identifier: MIT
/*
 * Sockets and modules read out of a real guest's memory (introspect/
 * sockets.c, modules.c) and formatted like the guest's own /proc files
 * (procfs/net_tcp.c, net_udp.c, modules.c): Debian's cloud kernel under
 * TCG with KASLR on, 512 MiB of RAM at GPA 0, so QEMU's memory file is a
 * raw guest-physical image.
 *
 * The guest starts its socket zoo (tests/guest/vmt-procs: TCP listeners
 * on IPv4, IPv6 and dual stack, one of them owned by uid 1000, an
 * established loopback connection, bound UDP sockets), loads modules of
 * its kernel package (dummy, nlmon; tcp_vegas and tcp_yeah, which uses
 * it), and prints /proc/net/{tcp,tcp6,
 * udp,udp6}, /proc/modules, /sys/module/NAME/{refcnt,coresize} and the
 * socket links in /proc/PID/fd of the zoo's network process.  Then it is
 * paused (QMP stop) and the library, reading only the memory file, must
 * print the same: byte for byte where nothing moves, field by field
 * where time does (the "tm->when" column, within a tolerance).  Kernel
 * pointers are compared too: the guest runs with kptr_restrict=1, so
 * root sees real ones.  Hostile cases corrupt a socket chain and the
 * modules list in a copy of the memory.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../introspect/kernel.h"
#include "../introspect/modules.h"
#include "../introspect/sockets.h"
#include "../procfs/netmod.h"
#include "lib/guest.h"
#include "lib/guestck.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define MiB ((uint64_t)1 << 20)
#define RAM (512 * MiB)
#define OUTMAX (1 << 16)
/* "tm->when" (clock ticks, USER_HZ 100) may move between the guest's
 * cat and the pause: 60 s of slack on a loaded machine. */
#define WHEN_SLACK 6000

struct env {
	bool up;
	char err[2048];
	struct vt_guest guest;
	char dir[64];
	char mem[128];
	char copy[128];
	int net_pid;		/* the zoo's vmt-net */
	char tcp[OUTMAX], tcp6[OUTMAX], udp[OUTMAX], udp6[OUTMAX];
	char modules[OUTMAX];
	char sysmod[4096];	/* "NAME REFCNT CORESIZE" lines */
	char fds[OUTMAX];	/* ls -l /proc/NET/fd */
};

static struct env *E;
static pid_t runner_pid;

static void env_down(void)
{
	static const char *const files[] = { "qemu.log" };

	if (getpid() != runner_pid || !E)
		return;
	vt_guest_stop_started(&E->guest, 5000);
	if (E->copy[0])
		unlink(E->copy);
	vt_run_dir_remove(E->dir, E->mem, files, 1);
	memset(E, 0, sizeof(*E));
}

/* A fixture's failure: require_env() reports it in every test. */
#define env_fail(...) vt_set_err(E->err, sizeof(E->err), __VA_ARGS__)

static int run_in_guest(const char *cmd, char *out, size_t len)
{
	int st;

	if (E->err[0])
		return -1;
	st = vt_guest_run(&E->guest, cmd, out, len, 120000);
	if (st != 0)
		env_fail("guest `%.200s` -> %d: %.300s", cmd, st, out);
	return st;
}

static void env_up(void)
{
	static char out[OUTMAX];
	char err[1024], path[256], reply[4096];
	struct vt_guest_opts o = { 0 };
	const char *at;

	memset(E, 0, sizeof(*E));
	if (vt_guest_has("vmlinuz", R_OK, E->err, sizeof(E->err)) < 0 ||
	    vt_run_dir("net", runner_pid, E->dir, E->mem, E->err,
		       sizeof(E->err)) < 0)
		return;
	snprintf(E->copy, sizeof(E->copy), "/dev/shm/vmt-net-%d.copy",
		 (int)runner_pid);
	o.mem_path = E->mem;
	o.ram_size = RAM;
	o.run_dir = E->dir;
	o.boot_timeout_ms = 180000;
	if (vt_guest_start(&E->guest, &o, err, sizeof(err)) < 0) {
		env_fail("boot: %s", err);
		return;
	}
	printf("info: guest booted in %.1f s (TCG, 512 MiB)\n",
	       E->guest.boot_ms / 1000);
	if (run_in_guest("vmt-procs start", out, sizeof(out)))
		return;
	at = strstr(out, "VMT-PROC vmt-net ");
	if (!at || sscanf(at, "VMT-PROC vmt-net %d", &E->net_pid) != 1 ||
	    !strstr(out, "VMT-PROCS-READY")) {
		env_fail("vmt-procs start: %.500s", out);
		return;
	}
	if (run_in_guest("insmod /lib/modules/dummy.ko && "
			 "insmod /lib/modules/nlmon.ko && "
			 "insmod /lib/modules/tcp_vegas.ko && "
			 "insmod /lib/modules/tcp_yeah.ko && "
			 "echo 1 > /proc/sys/kernel/kptr_restrict", out,
			 sizeof(out)))
		return;
	/*
	 * Sockets in the other states the kernel prints differently: a
	 * short busybox nc connection closed from both sides leaves
	 * TIME_WAIT sockets; a client of the zoo's 127.0.0.1:7001 (which
	 * never accepts again) killed after its half-close leaves a
	 * FIN_WAIT2 time-wait sock, a child in CLOSE_WAIT without socket
	 * inode, and the listener's accept backlog (its rx_queue) at 1.
	 */
	if (run_in_guest("(nc -l -p 7100 </dev/null >/dev/null 2>&1 &); i=0; "
			 "while ! grep -q ':1BBC ' /proc/net/tcp6 && "
			 "[ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
			 "nc 127.0.0.1 7100 </dev/null >/dev/null 2>&1;"
			 " nc 127.0.0.1 7001 </dev/null >/dev/null 2>&1 & "
			 "i=0; while ! grep -q ':1B59 [0-9A-F:]* 08 ' "
			 "/proc/net/tcp && [ $i -lt 100 ]; do sleep 0.1; "
			 "i=$((i+1)); done; kill $!; true", out, sizeof(out)))
		return;
	/* A datagram waiting in the zoo's 127.0.0.1:7004 (its rx_queue),
	 * sent from syslogd's own unbound UDP socket (autobound). */
	if (run_in_guest("syslogd -R 127.0.0.1:7004 -O /dev/null && "
			 "logger vmt-net-datagram && sleep 1", out,
			 sizeof(out)))
		return;
	/* A listener in another network namespace: not in the init
	 * namespace's /proc/net, so not in ours either. */
	if (run_in_guest("unshare -n sh -c 'ip link set lo up; "
			 "nc -l -p 7200 </dev/null >/dev/null 2>&1 & i=0; "
			 "while ! grep -q \":1C20 \" /proc/net/tcp6 && "
			 "[ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
			 "grep -c \":1C20 \" /proc/net/tcp6'", out,
			 sizeof(out)))
		return;
	if (atoi(out) != 1) {
		env_fail("no listener in the second namespace: %s", out);
		return;
	}
	/* Let the connections settle (no segment in flight). */
	if (run_in_guest("sleep 2", out, sizeof(out)) ||
	    run_in_guest("cat /proc/net/tcp", E->tcp, sizeof(E->tcp)) ||
	    run_in_guest("cat /proc/net/tcp6", E->tcp6, sizeof(E->tcp6)) ||
	    run_in_guest("cat /proc/net/udp", E->udp, sizeof(E->udp)) ||
	    run_in_guest("cat /proc/net/udp6", E->udp6, sizeof(E->udp6)) ||
	    run_in_guest("cat /proc/modules", E->modules,
			 sizeof(E->modules)) ||
	    run_in_guest("for m in dummy nlmon tcp_vegas tcp_yeah; do "
			 "echo $m $(cat /sys/module/$m/refcnt) "
			 "$(cat /sys/module/$m/coresize) "
			 "$(ls /sys/module/$m/holders); done", E->sysmod,
			 sizeof(E->sysmod)))
		return;
	snprintf(path, sizeof(path), "ls -l /proc/%d/fd", E->net_pid);
	if (run_in_guest(path, E->fds, sizeof(E->fds)))
		return;
	if (vt_guest_qmp(&E->guest, "{\"execute\":\"stop\"}", reply,
			 sizeof(reply), 120000) != 0) {
		env_fail("QMP stop: %s", reply);
		return;
	}
	E->up = true;
}

static void require_env(void)
{
	ck_assert_msg(E->up, "environment not up: %s", E->err);
}

/* ---- helpers -------------------------------------------------------- */

static struct vmi_kernel *recognise(const char *path, struct vmi_phys *p)
{
	struct vmi_kernel_options o = { .timeout_ms = 60000 };
	struct vmi_kernel *k = NULL;
	char err[512];
	int rc;

	rc = vmi_phys_file_open(p, path, NULL, 0, err, sizeof(err));
	ck_assert_msg(rc == 0, "open %s: %s", path, err);
	rc = vmi_kernel_recognise(p, &o, &k, err, sizeof(err));
	ck_assert_msg(rc == 0, "recognise: %s", err);
	return k;
}

/* Log messages of a collection, one per line. */
struct logbuf {
	char text[8192];
	size_t len;
	unsigned int n;
};

static void logcb(void *ctx, const char *msg)
{
	struct logbuf *l = ctx;
	int n = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s\n",
			 msg);

	if (n > 0 && l->len + (size_t)n < sizeof(l->text))
		l->len += (size_t)n;
	l->n++;
}

static double last_collect_ms;

static void socks(const char *path, struct vmi_socks *s, struct logbuf *l)
{
	struct vmi_phys p;
	struct vmi_kernel *k = recognise(path, &p);
	char err[512];
	double t0 = vt_now_ms();
	int rc;

	rc = vmi_sockets_collect(k, &p, s, logcb, l, NULL, err, sizeof(err));
	last_collect_ms = vt_now_ms() - t0;
	ck_assert_msg(rc == 0, "sockets: %s", err);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
}

/* Next line of *@pos into @line (without the newline); false at the end. */
static bool next_line(const char **pos, char *line, size_t max)
{
	const char *p = *pos, *nl;
	size_t n;

	if (!*p)
		return false;
	nl = strchr(p, '\n');
	n = nl ? (size_t)(nl - p) : strlen(p);
	snprintf(line, max, "%.*s", (int)n, p);
	*pos = p + n + (nl ? 1 : 0);
	return true;
}

static int split(char *line, char **tok, int max)
{
	int n = 0;

	for (char *t = strtok(line, " "); t && n < max; t = strtok(NULL, " "))
		tok[n++] = t;
	return n;
}

/*
 * Compare the guest's /proc/net file with ours, line by line and field by
 * field.  @when: index of the "tr:tm->when" field (its when part may
 * differ by WHEN_SLACK), or -1.  Everything else must be equal, and the
 * lines equally long (the kernel pads tcp and udp lines).  Returns the
 * number of sockets.
 */
static int compare_net(const char *what, const char *guest, const char *ours,
		       int when)
{
	const char *g = guest, *o = ours;
	static char gl[1024], ol[1024], gc[1024], oc[1024];
	int n = 0;

	for (;; n++) {
		bool hg = next_line(&g, gl, sizeof(gl));
		bool ho = next_line(&o, ol, sizeof(ol));
		char *gt[32], *ot[32];
		int ng, no;

		ck_assert_msg(hg == ho, "%s: %s has %d lines more\n"
			      "guest:\n%s\nours:\n%s", what,
			      hg ? "the guest" : "ours", n, guest, ours);
		if (!hg)
			break;
		ck_assert_msg(strlen(gl) == strlen(ol), "%s line %d: length "
			      "%zu, ours %zu\nguest: \"%s\"\nours:  \"%s\"",
			      what, n, strlen(gl), strlen(ol), gl, ol);
		if (n == 0) {
			ck_assert_str_eq(ol, gl);	/* the header */
			continue;
		}
		strcpy(gc, gl);
		strcpy(oc, ol);
		ng = split(gc, gt, 32);
		no = split(oc, ot, 32);
		ck_assert_msg(ng == no, "%s line %d: %d fields, ours %d\n"
			      "guest: %s\nours:  %s", what, n, ng, no, gl, ol);
		for (int i = 0; i < ng; i++) {
			unsigned int gtr, otr;
			unsigned long gw, ow;

			if (i == when &&
			    sscanf(gt[i], "%x:%lx", &gtr, &gw) == 2 &&
			    sscanf(ot[i], "%x:%lx", &otr, &ow) == 2) {
				ck_assert_msg(gtr == otr && (gw > ow ? gw - ow :
							    ow - gw) <=
					      WHEN_SLACK, "%s line %d field %d:"
					      " %s, ours %s\nguest: %s\nours:  %s",
					      what, n, i, gt[i], ot[i], gl, ol);
				continue;
			}
			ck_assert_msg(!strcmp(gt[i], ot[i]), "%s line %d field "
				      "%d: %s, ours %s\nguest: %s\nours:  %s",
				      what, n, i, gt[i], ot[i], gl, ol);
		}
	}
	return n - 1;
}

/* The local ports of the sockets in a /proc/net text, as "PORT,..." */
static bool has_port(const char *text, const char *laddr_port)
{
	return strstr(text, laddr_port) != NULL;
}

/* ---- tests ---------------------------------------------------------- */

START_TEST(test_tcp)
{
	struct vmi_socks s;
	struct logbuf l = { 0 };
	char *t4, *t6;
	int n4, n6;

	require_env();
	socks(E->mem, &s, &l);
	ck_assert_msg(l.n == 0, "walk logged: %s", l.text);
	t4 = procfs_net_tcp(&s, 2, true);
	t6 = procfs_net_tcp(&s, 10, true);
	ck_assert(t4 && t6);
	n4 = compare_net("tcp", E->tcp, t4, 5);
	n6 = compare_net("tcp6", E->tcp6, t6, 5);
	/* What the zoo made is there: listeners 127.0.0.1:7001 and :7006
	 * (uid 1000), [::1]:7002, [::]:7003, and the connection. */
	ck_assert(has_port(t4, "0100007F:1B59 00000000:0000 0A"));
	ck_assert(has_port(t4, "0100007F:1B5E 00000000:0000 0A"));
	ck_assert(has_port(t4, " 01 "));
	ck_assert(has_port(t6, "00000000000000000000000001000000:1B5A"));
	ck_assert(has_port(t6, "00000000000000000000000000000000:1B5B"));
	ck_assert(strstr(t4, " 1000 "));
	/* The other namespace's listener was seen and left out. */
	ck_assert_uint_ge(s.other_ns, 1);
	ck_assert(!strstr(t6, ":1C20 "));
	/* The time-wait socks (timer 3) and the listener with a backlog. */
	ck_assert_msg(strstr(t4, " 06 00000000:00000000 03:") ||
		      strstr(t6, " 06 00000000:00000000 03:"), "%s%s", t4, t6);
	ck_assert_msg(strstr(t4, " 05 00000000:00000000 03:"), "%s", t4);
	ck_assert_msg(strstr(t4, "0100007F:1B59 00000000:0000 0A 00000000:"
			     "00000001 "), "%s", t4);
	printf("%s", t4);
	printf("info: tcp: %d sockets, tcp6: %d, equal to the guest's; "
	       "jiffies %" PRIu64 ", HZ %u; all sockets collected in %.1f ms"
	       "\n", n4, n6, s.jiffies, s.hz, last_collect_ms);
	free(t4);
	free(t6);
	vmi_socks_free(&s);
}
END_TEST

START_TEST(test_udp)
{
	struct vmi_socks s;
	struct logbuf l = { 0 };
	char *u4, *u6;
	int n4, n6;

	require_env();
	socks(E->mem, &s, &l);
	ck_assert_msg(l.n == 0, "walk logged: %s", l.text);
	u4 = procfs_net_udp(&s, 2, true);
	u6 = procfs_net_udp(&s, 10, true);
	ck_assert(u4 && u6);
	n4 = compare_net("udp", E->udp, u4, -1);
	n6 = compare_net("udp6", E->udp6, u6, -1);
	ck_assert(has_port(u4, "0100007F:1B5C"));
	ck_assert(has_port(u4, "0100007F:1B5F"));
	/* The datagram waits in 7004's receive queue. */
	ck_assert_msg(!strstr(u4, "0100007F:1B5C 00000000:0000 07 00000000:"
			      "00000000 "), "%s", u4);
	ck_assert(has_port(u6, "00000000000000000000000001000000:1B5D"));
	printf("%s%s", u4, u6);
	printf("info: udp: %d sockets, udp6: %d, equal to the guest's\n", n4,
	       n6);
	free(u4);
	free(u6);
	vmi_socks_free(&s);
}
END_TEST

static struct vmi_kernel *modules_of(const char *path, struct vmi_phys *p,
				     struct vmi_modules *m, struct logbuf *l)
{
	struct vmi_kernel *k = recognise(path, p);
	char err[512];
	int rc;

	rc = vmi_modules_collect(k, p, m, logcb, l, NULL, err, sizeof(err));
	ck_assert_msg(rc == 0, "modules: %s", err);
	return k;
}

START_TEST(test_modules)
{
	struct vmi_modules m;
	struct logbuf l = { 0 };
	struct vmi_phys p;
	struct vmi_kernel *k;
	const char *pos = E->sysmod;
	char line[256], *text;
	int nsys = 0;

	require_env();
	k = modules_of(E->mem, &p, &m, &l);
	ck_assert_msg(l.n == 0, "walk logged: %s", l.text);
	text = procfs_modules(&m, true);
	ck_assert(text);
	ck_assert_msg(!strcmp(text, E->modules), "/proc/modules differs\n"
		      "guest:\n%s\nours:\n%s", E->modules, text);
	ck_assert(strstr(text, "dummy ") && strstr(text, "nlmon "));
	while (next_line(&pos, line, sizeof(line))) {
		char name[64], holder[64], *rc, *cs;
		int refcnt, nf;
		unsigned int size;
		const struct vmi_module *mod;

		nf = sscanf(line, "%63s %d %u %63s", name, &refcnt, &size,
			    holder);
		ck_assert_msg(nf >= 3, "guest: %s", line);
		mod = procfs_module_find(&m, name);
		ck_assert_msg(mod, "no module %s", name);
		rc = procfs_sys_module_refcnt(mod);
		cs = procfs_sys_module_coresize(mod);
		ck_assert(rc && cs);
		ck_assert_int_eq(atoi(rc), refcnt);
		ck_assert_uint_eq(strtoul(cs, NULL, 10), size);
		ck_assert(rc[strlen(rc) - 1] == '\n');
		/* holders/: none, or the one user (tcp_vegas: tcp_yeah) */
		ck_assert_uint_eq(mod->nholders, nf == 4 ? 1 : 0);
		if (nf == 4)
			ck_assert_str_eq(mod->holders[0], holder);
		free(rc);
		free(cs);
		nsys++;
	}
	ck_assert_int_eq(nsys, 4);
	ck_assert(strstr(text, "tcp_vegas ") &&
		  strstr(strstr(text, "tcp_vegas "), " 1 tcp_yeah, Live "));
	ck_assert(!procfs_module_find(&m, "no-such-module"));
	printf("info: /proc/modules: %zu modules, byte for byte the guest's\n",
	       m.n);
	free(text);
	vmi_modules_free(&m);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
}
END_TEST

/* The zoo's vmt-net task, found on init_task.tasks by pid. */
struct find_task {
	const struct vmi_kernel *k;
	const struct vmi_phys *p;
	uint64_t tasks_off, pid_off, found;
	int pid;
};

static int visit_task(void *arg, uint64_t entry)
{
	struct find_task *f = arg;
	int32_t pid;

	if (vmi_kernel_read(f->k, f->p, entry - f->tasks_off + f->pid_off,
			    &pid, sizeof(pid)))
		return -EFAULT;
	if (pid == f->pid)
		f->found = entry - f->tasks_off;
	return 0;
}

START_TEST(test_socket_fds)
{
	struct vmi_phys p;
	struct vmi_kernel *k;
	struct vmi_kernel_reader r;
	struct find_task f = { .pid = 0 };
	struct vmi_sock_fd fds[64];
	uint64_t init_task;
	const char *pos;
	char line[512], err[512];
	long n, want = 0, i;

	require_env();
	k = recognise(E->mem, &p);
	f.k = k;
	f.p = &p;
	f.pid = E->net_pid;
	ck_assert(vmi_kernel_symbol(k, "init_task", &init_task));
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.tasks",
					   &f.tasks_off, NULL), 0);
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.pid", &f.pid_off,
					   NULL), 0);
	r.k = k;
	r.p = &p;
	ck_assert(vmi_walk_list(vmi_kernel_kread, &r, init_task + f.tasks_off,
				4, 100000, visit_task, &f) > 10);
	ck_assert_msg(f.found, "no task with pid %d", E->net_pid);
	n = vmi_task_socket_fds(k, &p, f.found, fds, 64, err, sizeof(err));
	ck_assert_msg(n > 0, "fds: %ld %s", n, err);
	/* Each "N -> socket:[INODE]" the guest listed is ours (ls sorts the
	 * names as text, ours are in fd order). */
	pos = E->fds;
	while (next_line(&pos, line, sizeof(line))) {
		const char *arrow = strstr(line, " -> socket:["), *sp;
		unsigned long long ino;
		unsigned int fd;

		if (!arrow)
			continue;
		for (sp = arrow; sp > line && sp[-1] != ' '; sp--)
			;
		ck_assert(sscanf(sp, "%u -> socket:[%llu]", &fd, &ino) == 2);
		ck_assert_msg(want < n, "guest has more socket fds than %ld", n);
		for (i = 0; i < n && fds[i].fd != fd; i++)
			;
		ck_assert_msg(i < n, "fd %u -> socket:[%llu] not found", fd,
			      ino);
		ck_assert_uint_eq(fds[i].inode, ino);
		if (i > 0)
			ck_assert_uint_lt(fds[i - 1].fd, fds[i].fd);
		want++;
	}
	ck_assert_int_eq(n, want);
	ck_assert_int_ge(want, 6);
	/* Too small a buffer: -E2BIG, the first ones stored. */
	ck_assert_int_eq(vmi_task_socket_fds(k, &p, f.found, fds, 1, err,
					     sizeof(err)), -E2BIG);
	/* A kernel thread (PID 2) has no files: no sockets, no error. */
	f.pid = 2;
	f.found = 0;
	ck_assert(vmi_walk_list(vmi_kernel_kread, &r, init_task + f.tasks_off,
				4, 100000, visit_task, &f) > 10);
	ck_assert(f.found);
	ck_assert_int_eq(vmi_task_socket_fds(k, &p, f.found, fds, 64, err,
					     sizeof(err)), 0);
	printf("info: vmt-net (pid %d): %ld socket fds, inodes equal to its "
	       "/proc/PID/fd\n", E->net_pid, want);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
}
END_TEST

/* ---- hostile -------------------------------------------------------- */

/* Write @v at kernel virtual @va of the copy. */
static void poke(const struct vmi_kernel *k, const struct vmi_phys *p,
		 uint64_t va, uint64_t v)
{
	uint64_t pa;
	int fd;

	ck_assert_int_eq(vmi_kernel_vtop(k, p, va, &pa), 0);
	fd = open(E->copy, O_WRONLY);
	ck_assert(fd >= 0);
	ck_assert(pwrite(fd, &v, 8, (off_t)pa) == 8);
	ck_assert(close(fd) == 0);
}

static const struct vmi_sock *find_sock(const struct vmi_socks *s,
					int family, unsigned int state,
					uint16_t lport)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].family == family && s->v[i].state == state &&
		    s->v[i].lport == lport && s->v[i].protocol == 6)
			return &s->v[i];
	return NULL;
}

/*
 * A socket chain pointing into itself (the 127.0.0.1:7001 listener's
 * next = its own node), then a non-canonical next on the established
 * socket: each walk ends with a logged error naming the node, within
 * the bound, and the other sockets are all still there.
 */
START_TEST(test_hostile_socket_chain)
{
	struct vmi_socks s0, s1, s2;
	struct logbuf l = { 0 };
	struct vmi_phys p;
	struct vmi_kernel *k;
	const struct vmi_sock *lst, *est;
	uint64_t node_off, lst_addr, est_addr;
	double t0, ms;
	size_t dup = 0;

	require_env();
	socks(E->mem, &s0, &l);
	lst = find_sock(&s0, 2, 10, 7001);
	ck_assert(lst);
	lst_addr = lst->addr;
	est = NULL;
	for (size_t i = 0; i < s0.n; i++)
		if (s0.v[i].family == 2 && s0.v[i].state == 1 &&
		    s0.v[i].rport == 7001)
			est = &s0.v[i];
	ck_assert(est);
	est_addr = est->addr;

	vt_ck_copy_file(E->mem, E->copy);
	k = recognise(E->copy, &p);
	ck_assert_int_eq(vmi_kernel_member(k, "sock_common.skc_nulls_node",
					   &node_off, NULL), 0);
	poke(k, &p, lst_addr + node_off, lst_addr + node_off);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);

	t0 = vt_now_ms();
	socks(E->copy, &s1, &l);
	ms = vt_now_ms() - t0;
	ck_assert_msg(l.n >= 1 && s1.cut >= 1, "no error logged");
	ck_assert_msg(strstr(l.text, "pprev") && strstr(l.text, "lhash2"),
		      "log: %s", l.text);
	for (size_t i = 0; i < s1.n; i++)
		dup += s1.v[i].addr == lst_addr;
	ck_assert_uint_eq(dup, 1);	/* seen once, then the chain ends */
	ck_assert_uint_ge(s1.n + 8, s0.n);	/* only that chain is cut */
	ck_assert_msg(ms < 30000, "walk took %.0f ms", ms);
	printf("info: self-pointing chain cut in %.0f ms: %s", ms, l.text);

	/* A non-canonical next after the established socket. */
	l.len = 0;
	l.n = 0;
	l.text[0] = '\0';
	k = recognise(E->copy, &p);
	poke(k, &p, est_addr + node_off, 0x0000900000000000ULL);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
	socks(E->copy, &s2, &l);
	ck_assert_msg(strstr(l.text, "bad pointer 0x900000000000"), "log: %s",
		      l.text);
	ck_assert(find_sock(&s2, 2, 1, est->lport) != NULL);
	printf("info: non-canonical next: %s", l.text);
	vmi_socks_free(&s0);
	vmi_socks_free(&s1);
	vmi_socks_free(&s2);
	unlink(E->copy);
}
END_TEST

/* A hostile fd table: max_fds far beyond any real one is refused with
 * a message, without reading 2^31 pointers. */
START_TEST(test_hostile_fd_table)
{
	struct vmi_phys p;
	struct vmi_kernel *k;
	struct vmi_kernel_reader r;
	struct find_task f = { .pid = 0 };
	struct vmi_sock_fd fds[64];
	uint64_t init_task, o_files, o_fdt, o_max, files, fdt;
	char err[512];
	uint32_t big = 0x7fffffff;
	uint64_t pa;
	int fd;

	require_env();
	k = recognise(E->mem, &p);
	f.k = k;
	f.p = &p;
	f.pid = E->net_pid;
	ck_assert(vmi_kernel_symbol(k, "init_task", &init_task));
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.tasks",
					   &f.tasks_off, NULL), 0);
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.pid", &f.pid_off,
					   NULL), 0);
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.files", &o_files,
					   NULL), 0);
	ck_assert_int_eq(vmi_kernel_member(k, "files_struct.fdt", &o_fdt,
					   NULL), 0);
	ck_assert_int_eq(vmi_kernel_member(k, "fdtable.max_fds", &o_max,
					   NULL), 0);
	r.k = k;
	r.p = &p;
	ck_assert(vmi_walk_list(vmi_kernel_kread, &r, init_task + f.tasks_off,
				4, 100000, visit_task, &f) > 10);
	ck_assert(f.found);
	ck_assert_int_eq(vmi_kernel_read(k, &p, f.found + o_files, &files, 8),
			 0);
	ck_assert_int_eq(vmi_kernel_read(k, &p, files + o_fdt, &fdt, 8), 0);
	ck_assert_int_eq(vmi_kernel_vtop(k, &p, fdt + o_max, &pa), 0);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
	vt_ck_copy_file(E->mem, E->copy);
	fd = open(E->copy, O_WRONLY);
	ck_assert(fd >= 0);
	ck_assert(pwrite(fd, &big, 4, (off_t)pa) == 4);
	ck_assert(close(fd) == 0);
	k = recognise(E->copy, &p);
	ck_assert_int_eq(vmi_task_socket_fds(k, &p, f.found, fds, 64, err,
					     sizeof(err)), -E2BIG);
	ck_assert_msg(strstr(err, "max_fds 2147483647"), "%s", err);
	printf("info: hostile fd table: %s\n", err);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
	unlink(E->copy);
}
END_TEST

/* The modules list made into a cycle that misses its head (the first
 * module's next is itself): the walk ends with a logged error, keeps what
 * it read and shows no module twice. */
START_TEST(test_hostile_modules)
{
	struct vmi_modules m0, m1;
	struct logbuf l = { 0 };
	struct vmi_phys p;
	struct vmi_kernel *k;
	uint64_t list_off, first;
	double t0, ms;

	require_env();
	k = modules_of(E->mem, &p, &m0, &l);
	ck_assert_uint_ge(m0.n, 2);
	ck_assert_int_eq(vmi_kernel_member(k, "module.list", &list_off, NULL),
			 0);
	first = m0.v[0].addr + list_off;
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
	vt_ck_copy_file(E->mem, E->copy);
	k = recognise(E->copy, &p);
	poke(k, &p, first, first);	/* first->next = first */
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
	t0 = vt_now_ms();
	k = modules_of(E->copy, &p, &m1, &l);
	ms = vt_now_ms() - t0;
	ck_assert_msg(m1.cut == 1 && strstr(l.text, "modules list") &&
		      strstr(l.text, "has prev"), "log: %s", l.text);
	ck_assert_uint_eq(m1.n, 1);	/* no module seen twice */
	ck_assert_str_eq(m1.v[0].name, m0.v[0].name);
	printf("info: modules cycle cut in %.0f ms: %s", ms, l.text);
	vmi_modules_free(&m0);
	vmi_modules_free(&m1);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
	unlink(E->copy);
}
END_TEST

/* A spent time budget stops both walks at once, logged, nothing kept
 * half. */
START_TEST(test_time_budget)
{
	struct vmi_deadline dl;
	struct vmi_socks s;
	struct vmi_modules m;
	struct logbuf l = { 0 };
	struct vmi_phys p;
	struct vmi_kernel *k;
	char err[512];

	require_env();
	k = recognise(E->mem, &p);
	vmi_deadline_set(&dl, 1);
	usleep(10000);
	ck_assert_int_eq(vmi_sockets_collect(k, &p, &s, logcb, &l, &dl, err,
					     sizeof(err)), 0);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_uint_ge(s.cut, 1);
	ck_assert_msg(strstr(l.text, "time budget"), "log: %s", l.text);
	l.len = 0;
	l.text[0] = '\0';
	ck_assert_int_eq(vmi_modules_collect(k, &p, &m, logcb, &l, &dl, err,
					     sizeof(err)), 0);
	ck_assert_uint_eq(m.n, 0);
	ck_assert_msg(m.cut == 1 && strstr(l.text, "time budget"), "log: %s",
		      l.text);
	vmi_socks_free(&s);
	vmi_modules_free(&m);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
}
END_TEST

static Suite *net_suite(void)
{
	Suite *s = suite_create("qemu_net");
	TCase *tc = tcase_create("guest");

	tcase_add_unchecked_fixture(tc, env_up, env_down);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_tcp);
	tcase_add_test(tc, test_udp);
	tcase_add_test(tc, test_modules);
	tcase_add_test(tc, test_socket_fds);
	tcase_add_test(tc, test_hostile_socket_chain);
	tcase_add_test(tc, test_hostile_modules);
	tcase_add_test(tc, test_hostile_fd_table);
	tcase_add_test(tc, test_time_budget);
	suite_add_tcase(s, tc);
	return s;
}

VT_GUEST_MAIN("check_qemu_net", net_suite, E, runner_pid, env_down)
