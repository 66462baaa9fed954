// SPDX-License-Identifier: MIT
/*
 * demo-vm: the split VM of `make demo` (scripts/demo.sh), around one
 * command.
 *
 *   demo-vm -d DIR -m MEMFILE -n NETNS [-r RAM_MIB] [-H HOSTNAME] \
 *           -- COMMAND [ARG...]
 *
 * Boots the test guest (build/guest, under build/qemu or $VMEM_QEMU) with
 * RAM [RAM/2, RAM) homed on an nbdkit sub-host in network namespace
 * NETNS (tests/lib/splitvm.c, the split VM of the guest tests), starts
 * the guest's process zoo (tests/guest/vmt-procs.c: named processes, TCP
 * listeners), loads a module, writes a line to the guest's kernel log,
 * pages the homed half out to the sub-host, writes a vmemfs config for
 * the VM to DIR/vmemfs.conf and runs COMMAND with
 *   DEMO_CONF      that config (VM name "vm")
 *   DEMO_RAM       the RAM size in bytes
 *   DEMO_KMSG      the line written to the guest's kernel log
 *   DEMO_HOSTNAME  the guest's hostname
 * Then it stops QEMU and nbdkit (by PID), deletes the namespace and
 * MEMFILE (and QEMU's MEMFILE.seq), also on SIGINT/SIGTERM/SIGHUP, and
 * exits with COMMAND's status (1 when a step before it failed, with a
 * message saying which).  QEMU and nbdkit die with this process even when
 * it is killed (PR_SET_PDEATHSIG, nbdkit --exit-with-parent), and COMMAND
 * gets a SIGTERM then; what a SIGKILL leaves behind (the namespace,
 * MEMFILE) is named by the caller, which removes it.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../tests/lib/guest.h"
#include "../../tests/lib/hosts.h"
#include "../../tests/lib/splitvm.h"

#define MiB ((uint64_t)1 << 20)
#define NBD_PORT 10809
#define KMSG "vmemtrans-demo: hello from the guest, read by the main host"

struct demo {
	struct vt_guest guest;
	struct vt_nbdkit sub;
	struct vt_netns ns;
	char mem[256];
	pid_t child;
};

static struct demo *D;
static pid_t main_pid;

static void cleanup(void)
{
	char path[300];

	if (!D || getpid() != main_pid)
		return;
	if (D->child > 0) {
		/* A signal ended us before the command: ask it to stop (it
		 * unmounts what it mounted) and give it the time to. */
		kill(D->child, SIGTERM);
		if (vt_wait_pid(D->child, 10000) == -1)
			kill(D->child, SIGKILL);
		D->child = 0;
	}
	if (D->guest.pid > 0 || D->guest.qmp_fd >= 0 || D->guest.serial_fd >= 0)
		vt_guest_stop(&D->guest, 5000);
	vt_nbdkit_kill(&D->sub);
	vt_netns_delete(&D->ns);
	if (D->mem[0]) {
		unlink(D->mem);
		snprintf(path, sizeof(path), "%s.seq", D->mem);
		unlink(path);
		D->mem[0] = '\0';
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: demo-vm -d DIR -m MEMFILE -n NETNS "
		"[-r RAM_MIB] [-H HOSTNAME] -- COMMAND [ARG...]\n");
	exit(2);
}

static __attribute__((format(printf, 1, 2), noreturn))
void fail(const char *fmt, ...)
{
	va_list ap;

	fputs("demo-vm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);	/* atexit: cleanup */
}

/* One line of sh in the guest; fail() unless it exits 0. */
static void guest_run(const char *cmd, char *out, size_t len, int timeout)
{
	int st = vt_guest_run(&D->guest, cmd, out, len, timeout);

	if (st != 0)
		fail("in the guest, `%s` -> %d: %.600s", cmd, st, out);
}

static uint64_t allocated(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *mem = NULL, *netns = NULL;
	const char *hostname = "demo-guest";
	static char out[1 << 16];
	char err[4096], conf[300], qconf[300], qmp2[300], cmd[512], num[32];
	struct vt_split_opts o;
	uint64_t ram_mib = 512;
	double t0;
	int c, st;

	while ((c = getopt(argc, argv, "+d:m:n:r:H:")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'm': mem = optarg; break;
		case 'n': netns = optarg; break;
		case 'r': ram_mib = strtoull(optarg, NULL, 10); break;
		case 'H': hostname = optarg; break;
		default: usage();
		}
	}
	if (!dir || !mem || !netns || optind >= argc || ram_mib < 128 ||
	    ram_mib > 65536 || ram_mib % 2)
		usage();
	/* It goes into a guest shell line unquoted. */
	if (!*hostname || strlen(hostname) > 63 ||
	    strspn(hostname, "abcdefghijklmnopqrstuvwxyz"
		   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != strlen(hostname))
		fail("-H %s: a hostname is 1-63 letters, digits, '-' and '.'",
		     hostname);

	main_pid = getpid();
	D = vt_runner_env(sizeof(*D), cleanup);
	if (!D)
		return 1;
	D->guest.serial_fd = D->guest.qmp_fd = -1;
	snprintf(out, sizeof(out), "%s/vmt-procs", vt_guest_dir());
	if (access(out, X_OK) != 0)
		fail("%s: %s (the test guest is not built, or is older than "
		     "vmt-procs: run scripts/guest/build-guest.sh)", out,
		     strerror(errno));
	if (access(vt_qemu_bin(), X_OK) != 0)
		fail("%s: %s (the patched QEMU is not built: make build/stamp/"
		     "qemu)", vt_qemu_bin(), strerror(errno));

	snprintf(D->mem, sizeof(D->mem), "%s", mem);
	unlink(mem);
	snprintf(qconf, sizeof(qconf), "%s/qemu.conf", dir);
	snprintf(qmp2, sizeof(qmp2), "%s/vmemfs-qmp.sock", dir);
	snprintf(conf, sizeof(conf), "%s/vmemfs.conf", dir);
	o = (struct vt_split_opts){
		.run_dir = dir, .mem_path = mem, .qemu_conf = qconf,
		.qmp2_path = qmp2, .netns = netns,
		.subnet = 14000 + main_pid % 1000, .nbd_port = NBD_PORT,
		.ram_size = ram_mib * MiB, .home_start = ram_mib / 2 * MiB,
		.home_end = ram_mib * MiB, .local_limit = ram_mib * MiB,
		.chunk = 64 * 1024, .timeout_ms = 5000,
		.boot_timeout_ms = 180000,
	};
	printf("demo-vm: booting the test guest (%" PRIu64 " MiB, TCG), RAM "
	       "[%" PRIu64 "M, %" PRIu64 "M) homed on a sub-host in netns "
	       "%s\n", ram_mib, ram_mib / 2, ram_mib, netns);
	if (vt_split_guest_start(&o, &D->ns, &D->sub, &D->guest, err,
				 sizeof(err)) < 0)
		fail("%s", err);
	printf("demo-vm: booted in %.1f s; QEMU pid %d, sub-host nbdkit pid "
	       "%d at %s\n", D->guest.boot_ms / 1000, (int)D->guest.pid,
	       (int)D->sub.pid, D->sub.uri);

	snprintf(cmd, sizeof(cmd), "hostname %s && vmt-procs start && "
		 "insmod /lib/modules/tcp_vegas.ko && echo '" KMSG
		 "' >/dev/kmsg", hostname);
	guest_run(cmd, out, sizeof(out), 120000);
	if (!strstr(out, "VMT-PROCS-READY"))
		fail("vmt-procs start in the guest did not finish: %.600s",
		     out);
	printf("demo-vm: in the guest: hostname %s, processes vmt-long, "
	       "vmt-threads, vmt-user, vmt-root, vmt-net (TCP listeners on "
	       "7001-7003, 7006), module tcp_vegas\n", hostname);

	t0 = vt_now_ms();
	if (vt_split_page_out(&D->guest, &o, err, sizeof(err)) < 0)
		fail("%s", err);
	printf("demo-vm: paged [%" PRIu64 "M, %" PRIu64 "M) out to the "
	       "sub-host in %.1f s; the memory file now holds %" PRIu64
	       " MiB\n", ram_mib / 2, ram_mib, (vt_now_ms() - t0) / 1000,
	       allocated(mem) / MiB);

	if (vt_split_vmemfs_conf(conf, &o, "direct", NULL, err,
				 sizeof(err)) < 0)
		fail("%s", err);
	setenv("DEMO_CONF", conf, 1);
	snprintf(num, sizeof(num), "%" PRIu64, ram_mib * MiB);
	setenv("DEMO_RAM", num, 1);
	setenv("DEMO_KMSG", KMSG, 1);
	setenv("DEMO_HOSTNAME", hostname, 1);
	fflush(stdout);

	D->child = fork();
	if (D->child < 0)
		fail("fork: %s", strerror(errno));
	if (D->child == 0) {
		/* Killed with us (SIGKILL included), the command still
		 * unmounts what it mounted. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != main_pid)
			_exit(1);
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "demo-vm: %s: %s\n", argv[optind],
			strerror(errno));
		_exit(127);
	}
	while (waitpid(D->child, &st, 0) < 0) {
		/* ECHILD: the cleanup of a signal reaped it and ends us. */
		if (errno == ECHILD)
			for (;;)
				pause();
		if (errno != EINTR)
			fail("waitpid %d: %s", (int)D->child, strerror(errno));
	}
	D->child = 0;
	cleanup();
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}
