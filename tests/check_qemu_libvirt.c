// SPDX-License-Identifier: MIT
/*
 * vmemfs on a libvirt domain, under a real libvirtd.
 *
 * The runner starts virtlogd and libvirtd by hand in a mount namespace of
 * their own, where /etc/libvirt, /run, /var/lib/libvirt, /var/cache/libvirt
 * and /var/log/libvirt are directories of the run directory (so the
 * machine's own libvirt, if any, is never touched), and stops them by PID
 * at teardown, also on failure.  The same namespace gets a private
 * /dev/userfaultfd node root:kvm 0660: the deployment README's "VMs under
 * libvirt" documents (a udev rule on a real host).  qemu.conf adds the
 * device to cgroup_device_acl; QEMU runs as libvirt-qemu (the default).
 *
 * The domain: the test guest under TCG, the patched QEMU as <emulator>
 * (a tree under build/, as libvirt wants: bin/ and share/qemu), shared file
 * memory in a memory_backing_dir on /dev/shm, and -object vmem-split by
 * <qemu:commandline> with RAM [256M, 512M) homed on an nbdkit sub-host in
 * a network namespace.  A vmemtrans.conf section with domain = NAME and no
 * memory-file serves QEMU and vmemfs alike.  libvirt's hook is our
 * scripts/libvirt/qemu-hook.
 *
 * Tests, in order, on the one domain:
 *   - QEMU runs as libvirt-qemu with a userfaultfd, and vmem-split
 *     answers query-vmem through libvirt;
 *   - the hook mounted the domain on /run/vmemtrans/NAME (seen through
 *     /proc/LIBVIRTD/root) and `kernel` there names the guest's release;
 *   - with the homed half paged out and the domain suspended, `ram` of
 *     vmemfs --domain (direct, remote-paging) equals QEMU's own pmemsave
 *     through libvirt, byte for byte; direct read the sub-host, remote
 *     paging asked QEMU through libvirt;
 *   - virsh reset is seen (the RESET event through libvirt): the kernel
 *     view forgets the guest, and the layout is read again;
 *   - virsh destroy: reads fail with EIO and the hook unmounts; virsh
 *     start: the same mount reads the new memory file (another path), and
 *     the hook mounts again.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/guest.h"
#include "lib/guestck.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define MiB ((uint64_t)1 << 20)
#define RAM (512 * MiB)
#define HOME_START (256 * MiB)
#define NBD_PORT 22809		/* this helper's range */
#define SUBNET 2201
#define VFS_MAX 3

struct env {
	bool up;
	char err[2048];
	char dir[64];		/* the run directory */
	char shm[96];		/* memory_backing_dir */
	char uri[256];
	char dom[64];		/* the domain's name */
	pid_t virtlogd, libvirtd;
	pid_t reaper;		/* their sub-reaper, our child */
	struct vt_netns ns;
	struct vt_nbdkit sub;
	struct vt_guest g;	/* the serial console only */
	struct vt_vmemfs vfs[VFS_MAX];
	char release[128];	/* uname -r in the guest */
};

static struct env *E;
static pid_t runner;

#define env_fail(...) vt_set_err(E->err, sizeof(E->err), __VA_ARGS__)

/* ---- small tools ---------------------------------------------------- */

static int write_text(const char *path, int mode, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int write_text(const char *path, int mode, const char *fmt, ...)
{
	va_list ap;
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	if (fclose(f) != 0)
		return -1;
	return chmod(path, mode);
}

/* virsh -c URI ARGS...: exit status, output in @out. */
static int virsh(char *out, size_t outlen, int timeout_ms, ...)
{
	char *argv[16], eout[2048];
	const char *a;
	va_list ap;
	int n = 0, st;

	argv[n++] = "virsh";
	argv[n++] = "-q";
	argv[n++] = "-c";
	argv[n++] = E->uri;
	va_start(ap, timeout_ms);
	while ((a = va_arg(ap, const char *)) && n < 15)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	st = vt_run(argv, out, outlen, eout, sizeof(eout), timeout_ms);
	if (st != 0 && out && outlen)
		snprintf(out, outlen, "%s", eout);
	return st;
}

/* QMP @json through libvirt; 0 and QEMU's reply in @out. */
static int lv_qmp(const char *json, char *out, size_t outlen, int timeout_ms)
{
	return virsh(out, outlen, timeout_ms, "qemu-monitor-command", E->dom,
		     json, (char *)NULL);
}

static pid_t read_pidfile(const char *path, int timeout_ms)
{
	double end = vt_now_ms() + timeout_ms;
	long pid = 0;

	do {
		FILE *f = fopen(path, "r");

		if (f) {
			if (fscanf(f, "%ld", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid > 0)
			return (pid_t)pid;
		vt_sleep_ms(50);
	} while (vt_now_ms() < end);
	return 0;
}

/* The pid of the domain's QEMU (libvirt's pidfile), 0 when none. */
static pid_t qemu_pid(void)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/run/libvirt/qemu/%s.pid", E->dir,
		 E->dom);
	return read_pidfile(path, 0);
}

static void stop_pid(pid_t *pid, int sig, int timeout_ms)
{
	if (*pid <= 0)
		return;
	kill(*pid, sig);
	if (vt_wait_pid(*pid, timeout_ms) < 0) {
		kill(*pid, SIGKILL);
		vt_wait_pid(*pid, 3000);
	}
	*pid = 0;
}

/* The hook's vmemfs (and its retry loop), by the pidfile it writes. */
static void stop_hook_mount(void)
{
	char path[256];
	pid_t p;

	snprintf(path, sizeof(path), "%s/run/vmemtrans/%s.pid", E->dir, E->dom);
	p = read_pidfile(path, 0);
	if (p > 0)
		kill(p, SIGKILL);
}

static void env_down(void)
{
	char out[1024];
	pid_t q;

	if (getpid() != runner || !E)
		return;
	vt_vmemfs_stop_all(E->vfs, VFS_MAX);
	if (E->g.serial_fd > 0)
		close(E->g.serial_fd);
	E->g.serial_fd = -1;
	if (E->libvirtd > 0) {
		q = qemu_pid();
		virsh(out, sizeof(out), 20000, "destroy", E->dom, (char *)NULL);
		if (q > 0 && kill(q, 0) == 0) {
			kill(q, SIGKILL);
			vt_wait_pid(q, 5000);
		}
		vt_sleep_ms(500);	/* the release hook */
		stop_hook_mount();
	}
	/* libvirtd first: it talks to virtlogd. */
	stop_pid(&E->libvirtd, SIGTERM, 10000);
	stop_pid(&E->virtlogd, SIGTERM, 5000);
	stop_pid(&E->reaper, SIGKILL, 5000);
	vt_nbdkit_kill(&E->sub);
	vt_netns_delete(&E->ns);
	if (E->shm[0]) {
		char *rm[] = { "rm", "-rf", E->shm, NULL };

		vt_run(rm, NULL, 0, NULL, 0, 10000);
		E->shm[0] = '\0';
	}
	if (E->dir[0] && !getenv("VMT_KEEP")) {
		char *rm[] = { "rm", "-rf", E->dir, NULL };

		vt_run(rm, NULL, 0, NULL, 0, 10000);
		E->dir[0] = '\0';
	}
	E->up = false;
}

/* ---- libvirtd in a mount namespace of its own ---------------------- */

/*
 * The emulator tree libvirt wants (bin/qemu-system-x86_64 with
 * share/qemu beside it), under build/: a hard link to our QEMU, so it is
 * always the current one.
 */
static int emulator_tree(char *emu, size_t len)
{
	char base[400], *slash, bin[460], share[480];

	snprintf(base, sizeof(base), "%s", vt_qemu_bin());
	slash = strrchr(base, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	slash = strrchr(base, '/');	/* .../build/qemu -> .../build */
	if (!slash)
		return -1;
	*slash = '\0';
	snprintf(bin, sizeof(bin), "%s/libvirt-qemu/bin", base);
	snprintf(share, sizeof(share), "%s/libvirt-qemu/share", base);
	if (mkdir(bin, 0755) < 0 && errno == ENOENT) {
		snprintf(share, sizeof(share), "%s/libvirt-qemu", base);
		mkdir(share, 0755);
		snprintf(share, sizeof(share), "%s/libvirt-qemu/share", base);
		mkdir(bin, 0755);
	}
	mkdir(share, 0755);
	snprintf(emu, len, "%s/qemu-system-x86_64", bin);
	unlink(emu);
	if (link(vt_qemu_bin(), emu) < 0) {
		env_fail("link %s %s: %s", vt_qemu_bin(), emu, strerror(errno));
		return -1;
	}
	strncat(share, "/qemu", sizeof(share) - strlen(share) - 1);
	unlink(share);
	if (symlink(vt_qemu_share_dir(), share) < 0) {
		env_fail("symlink %s: %s", share, strerror(errno));
		return -1;
	}
	return 0;
}

static int run_wait(char *const argv[])
{
	pid_t p = fork();
	int st;

	if (p == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	if (p < 0 || waitpid(p, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * In the child: the namespace, the binds, both daemons, then the reaper of
 * everything they leave: libvirt daemonizes its QEMUs, and an orphan goes
 * to the nearest sub-reaper, which the runner is (vt_runner_env); a
 * zombie QEMU there would look alive to libvirt forever.  So this process
 * is a sub-reaper of its own, and reaps until the daemons and their
 * QEMUs are gone.  Never returns.
 */
static void on_term(int sig)
{
	(void)sig;
}

static void daemons_child(void)
{
	static const char *const binds[][2] = {
		{ "etc", "/etc/libvirt" }, { "run", "/run" },
		{ "lib", "/var/lib/libvirt" }, { "cache", "/var/cache/libvirt" },
		{ "log", "/var/log/libvirt" }, { "uffd", "/dev/userfaultfd" },
	};
	char src[160], pidf[160];
	size_t i;

	/*
	 * A session of its own, and deaf to SIGTERM (a handler, not
	 * SIG_IGN, which the daemons would inherit): a signal that the
	 * daemons' side sends to its session, group or parent must not
	 * reach the test runner, whose group this fork was in.  Seen once
	 * as the runner dying of a SIGTERM from libvirtd's side; torn
	 * down with SIGKILL, and with the runner (PDEATHSIG).
	 */
	setsid();
	signal(SIGTERM, on_term);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 || unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		perror("unshare");
		_exit(1);
	}
	for (i = 0; i < sizeof(binds) / sizeof(binds[0]); i++) {
		snprintf(src, sizeof(src), "%s/%s", E->dir, binds[i][0]);
		if (mount(src, binds[i][1], NULL, MS_BIND, NULL) < 0) {
			fprintf(stderr, "bind %s %s: %s\n", src, binds[i][1],
				strerror(errno));
			_exit(1);
		}
	}
	mkdir("/run/libvirt", 0755);
	snprintf(pidf, sizeof(pidf), "%s/virtlogd.pid", E->dir);
	{
		char *a[] = { "virtlogd", "-d", "-p", pidf, NULL };

		if (run_wait(a) != 0)
			_exit(2);
	}
	snprintf(pidf, sizeof(pidf), "%s/libvirtd.pid", E->dir);
	{
		char *a[] = { "libvirtd", "-d", "-p", pidf, NULL };

		if (run_wait(a) != 0)
			_exit(3);
	}
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	_exit(0);
}

static int start_libvirtd(const char *hook_path)
{
	static const char *const dirs[] = {
		"etc", "etc/hooks", "etc/qemu", "run", "lib", "cache", "log",
		"lib/qemu", "cache/qemu", "log/qemu", "s",
	};
	char path[256], out[512];
	struct group *kvm = getgrnam("kvm");
	struct stat st;
	pid_t child;
	int status;
	size_t i;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", E->dir, dirs[i]);
		if (mkdir(path, 0755) < 0) {
			env_fail("mkdir %s: %s", path, strerror(errno));
			return -1;
		}
	}
	/* QEMU (libvirt-qemu) makes its sockets here. */
	snprintf(path, sizeof(path), "%s/s", E->dir);
	chmod(path, 01777);
	snprintf(path, sizeof(path), "%s/etc/libvirtd.conf", E->dir);
	if (write_text(path, 0644, "unix_sock_group = \"root\"\n"
		       "unix_sock_rw_perms = \"0700\"\nauth_unix_rw = \"none\"\n"
		       "auth_unix_ro = \"none\"\n"
		       "log_outputs = \"2:file:/var/log/libvirt/libvirtd.log\"\n") < 0)
		goto fail_write;
	snprintf(path, sizeof(path), "%s/etc/virtlogd.conf", E->dir);
	if (write_text(path, 0644, "# defaults\n") < 0)
		goto fail_write;
	/* The deployment of README "VMs under libvirt": QEMU keeps running
	 * as libvirt-qemu; the one device it may add is userfaultfd. */
	snprintf(path, sizeof(path), "%s/etc/qemu.conf", E->dir);
	if (write_text(path, 0644,
		       "memory_backing_dir = \"%s\"\n"
		       "security_driver = \"none\"\n"
		       "cgroup_device_acl = [ \"/dev/null\", \"/dev/full\", "
		       "\"/dev/zero\", \"/dev/random\", \"/dev/urandom\", "
		       "\"/dev/ptmx\", \"/dev/kvm\", \"/dev/userfaultfd\" ]\n",
		       E->shm) < 0)
		goto fail_write;
	snprintf(path, sizeof(path), "%s/etc/hooks/qemu", E->dir);
	if (write_text(path, 0755, "#!/bin/sh\nVMEMTRANS_CONF=%s/vmt.conf "
		       "VMEMFS=%s VMEMTRANS_RUN=/run/vmemtrans exec %s \"$@\"\n",
		       E->dir, vt_vmemfs_bin(), hook_path) < 0)
		goto fail_write;
	/* What the udev rule makes of the host's node, here only. */
	if (!kvm || stat("/dev/userfaultfd", &st) < 0) {
		env_fail("no group kvm or no /dev/userfaultfd on this host");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/uffd", E->dir);
	if (mknod(path, S_IFCHR | 0660, st.st_rdev) < 0 ||
	    chown(path, 0, kvm->gr_gid) < 0 || chmod(path, 0660) < 0) {
		env_fail("mknod %s: %s", path, strerror(errno));
		return -1;
	}
	child = fork();
	if (child < 0) {
		env_fail("fork: %s", strerror(errno));
		return -1;
	}
	if (child == 0)
		daemons_child();
	E->reaper = child;
	snprintf(path, sizeof(path), "%s/virtlogd.pid", E->dir);
	E->virtlogd = read_pidfile(path, 10000);
	snprintf(path, sizeof(path), "%s/libvirtd.pid", E->dir);
	E->libvirtd = read_pidfile(path, 10000);
	if (!E->virtlogd || !E->libvirtd) {
		if (waitpid(child, &status, WNOHANG) == child)
			E->reaper = 0;
		env_fail("virtlogd/libvirtd did not start (no pid files)");
		return -1;
	}
	snprintf(E->uri, sizeof(E->uri),
		 "qemu+unix:///system?socket=%s/run/libvirt/libvirt-sock",
		 E->dir);
	for (i = 0; i < 100; i++) {
		if (virsh(out, sizeof(out), 5000, "uri", (char *)NULL) == 0)
			return 0;
		vt_sleep_ms(100);
	}
	env_fail("libvirtd does not answer on %s: %s", E->uri, out);
	return -1;
fail_write:
	env_fail("%s: %s", path, strerror(errno));
	return -1;
}

/* ---- the domain ------------------------------------------------------ */

static int define_domain(const char *emu)
{
	char path[256], out[2048], kernel[256], initrd[256];
	char *cp[] = { "cp", kernel, initrd, E->dir, NULL };

	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", vt_guest_dir());
	snprintf(initrd, sizeof(initrd), "%s/initramfs.cpio.gz", vt_guest_dir());
	if (vt_run(cp, NULL, 0, out, sizeof(out), 20000) != 0) {
		env_fail("cp kernel: %s", out);
		return -1;
	}
	/* One section for QEMU (vmem-split) and vmemfs (and the hook). */
	snprintf(path, sizeof(path), "%s/vmt.conf", E->dir);
	if (write_text(path, 0644, "[%s]\ndomain = %s\nlibvirt = %s\n"
		       "ram-size = 512M\nchunk-size = 64K\nlocal-limit = 384M\n"
		       "timeout = 3000ms\ntls = off\n"	/* a clear sub-host in its own netns */
		       "subhost = %s 256M-512M\n", E->dom,
		       E->dom, E->uri, E->sub.uri) < 0)
		goto fail_write;
	snprintf(path, sizeof(path), "%s/rp.conf", E->dir);
	if (write_text(path, 0644, "[%s]\ndomain = %s\nlibvirt = %s\n"
		       "chunk-size = 64K\ntimeout = 10s\n"
		       "backend = remote-paging\n", E->dom, E->dom, E->uri) < 0)
		goto fail_write;
	snprintf(path, sizeof(path), "%s/dom.xml", E->dir);
	if (write_text(path, 0644,
"<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
"  <name>%s</name>\n"
"  <memory unit='MiB'>512</memory>\n"
"  <vcpu>1</vcpu>\n"
"  <memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>\n"
"  <os><type arch='x86_64' machine='pc'>hvm</type>\n"
"    <kernel>%s/vmlinuz</kernel><initrd>%s/initramfs.cpio.gz</initrd>\n"
"    <cmdline>console=ttyS0 quiet panic=-1</cmdline></os>\n"
"  <devices>\n"
"    <emulator>%s</emulator>\n"
"    <serial type='unix'><source mode='bind' path='%s/s/serial.sock'/></serial>\n"
"    <memballoon model='none'/>\n"
"  </devices>\n"
"  <qemu:commandline>\n"
"    <qemu:arg value='-object'/>\n"
"    <qemu:arg value='vmem-split,id=vs0,memdev=pc.ram,config=%s/vmt.conf,vm=%s'/>\n"
"  </qemu:commandline>\n"
"</domain>\n", E->dom, E->dir, E->dir, emu, E->dir, E->dir, E->dom) < 0)
		goto fail_write;
	if (virsh(out, sizeof(out), 60000, "define", path, (char *)NULL) != 0) {
		env_fail("virsh define: %s", out);
		return -1;
	}
	return 0;
fail_write:
	env_fail("%s: %s", path, strerror(errno));
	return -1;
}

/* Connect the serial console and wait for the guest's shell. */
static int guest_console(int timeout_ms)
{
	double end = vt_now_ms() + timeout_ms;
	char out[256];

	if (E->g.serial_fd > 0)
		close(E->g.serial_fd);
	memset(&E->g, 0, sizeof(E->g));
	E->g.serial_fd = -1;
	E->g.qmp_fd = -1;
	snprintf(E->g.serial_path, sizeof(E->g.serial_path), "%s/s/serial.sock",
		 E->dir);
	while (vt_now_ms() < end) {
		if (E->g.serial_fd < 0) {
			struct sockaddr_un sa = { .sun_family = AF_UNIX };
			int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

			snprintf(sa.sun_path, sizeof(sa.sun_path), "%s",
				 E->g.serial_path);
			if (fd >= 0 && connect(fd, (void *)&sa, sizeof(sa)) == 0)
				E->g.serial_fd = fd;
			else if (fd >= 0)
				close(fd);
		}
		/* The guest's "ready" was printed before we connected:
		 * a command that answers is the sign instead. */
		if (E->g.serial_fd >= 0 &&
		    vt_guest_run(&E->g, "true", out, sizeof(out), 2000) == 0)
			return 0;
		vt_sleep_ms(300);
	}
	return -1;
}

static int start_domain(void)
{
	char out[2048];

	if (virsh(out, sizeof(out), 120000, "start", E->dom, (char *)NULL) != 0) {
		env_fail("virsh start: %s", out);
		return -1;
	}
	if (guest_console(120000) < 0) {
		env_fail("the guest's shell does not answer on %s/s/serial.sock",
			 E->dir);
		return -1;
	}
	return 0;
}

static void env_up(void)
{
	char hook[512], emu[600], e[1024], *slash;

	if (E->up)
		return;
	E->err[0] = '\0';
	snprintf(E->dir, sizeof(E->dir), "/tmp/vmt-libvirt.XXXXXX");
	if (!mkdtemp(E->dir)) {
		E->dir[0] = '\0';
		env_fail("mkdtemp: %s", strerror(errno));
		goto fail;
	}
	chmod(E->dir, 0755);	/* libvirt-qemu reads the kernel, the config */
	snprintf(E->dom, sizeof(E->dom), "vmt-libvirt-%d", (int)runner);
	snprintf(E->shm, sizeof(E->shm), "/dev/shm/vmt-libvirt-%d", (int)runner);
	if (mkdir(E->shm, 0755) < 0) {
		env_fail("mkdir %s: %s", E->shm, strerror(errno));
		E->shm[0] = '\0';
		goto fail;
	}
	/* scripts/libvirt/qemu-hook of this tree (build/tests/../../). */
	snprintf(hook, sizeof(hook), "%s", vt_vmemfs_bin());
	slash = strrchr(hook, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(hook, '/');
	if (slash)
		*slash = '\0';
	strncat(hook, "/scripts/libvirt/qemu-hook", sizeof(hook) - strlen(hook) - 1);
	if (access(hook, X_OK) < 0) {
		env_fail("%s: %s", hook, strerror(errno));
		goto fail;
	}
	if (emulator_tree(emu, sizeof(emu)) < 0 || start_libvirtd(hook) < 0)
		goto fail;
	if (vt_subhost_in_netns(&E->ns, &E->sub, "vmt-libvirt", SUBNET,
				NBD_PORT, RAM / MiB, e, sizeof(e)) < 0) {
		env_fail("sub-host: %s", e);
		goto fail;
	}
	if (define_domain(emu) < 0 || start_domain() < 0)
		goto fail;
	if (vt_guest_run(&E->g, "uname -r", E->release, sizeof(E->release),
			 10000) != 0) {
		env_fail("uname -r in the guest failed");
		goto fail;
	}
	E->release[strcspn(E->release, "\r\n")] = '\0';
	E->up = true;
	return;
fail:
	printf("setup failed: %s\n", E->err);
	{
		char log[256];

		snprintf(log, sizeof(log), "%s/log/qemu/%s.log", E->dir, E->dom);
		vt_print_tail(log, 10, "qemu log: ");
		snprintf(log, sizeof(log), "%s/log/libvirtd.log", E->dir);
		vt_print_tail(log, 10, "libvirtd log: ");
	}
	env_down();
}

#define NEED_UP() ck_assert_msg(E->up, "setup failed: %s", E->err)

/* ---- helpers for the tests ------------------------------------------ */

static void mount_conf(int slot, const char *conf)
{
	char cpath[256], mnt[128], log[256], err[1024];
	struct vt_vmemfs *v = &E->vfs[slot];

	if (v->pid > 0 || v->mnt[0])
		vt_vmemfs_stop(v, 3000);
	snprintf(cpath, sizeof(cpath), "%s/%s", E->dir, conf);
	snprintf(mnt, sizeof(mnt), "%s/mnt%d", E->dir, slot);
	snprintf(log, sizeof(log), "%s/vmemfs%d.log", E->dir, slot);
	ck_assert(mkdir(mnt, 0700) == 0 || errno == EEXIST);
	if (vt_vmemfs_start(v, cpath, E->dom, NULL, mnt, log, RAM, 60000, err,
			    sizeof(err)) < 0) {
		vt_print_tail(log, 20, "vmemfs: ");
		ck_abort_msg("vmemfs --domain (%s): %s", conf, err);
	}
}

/* Read all of @path into a new buffer of RAM bytes; -errno of the first
 * failed read, or 0. */
static int read_all(const char *path, uint8_t *buf)
{
	int fd = open(path, O_RDONLY);
	uint64_t off = 0;

	if (fd < 0)
		return -errno;
	while (off < RAM) {
		ssize_t n = pread(fd, buf + off, MiB, off);

		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;

			close(fd);
			return e;
		}
		off += (uint64_t)n;
	}
	close(fd);
	return 0;
}

static void ck_same(const uint8_t *a, const uint8_t *b, const char *what)
{
	for (uint64_t off = 0; off < RAM; off += MiB)
		ck_assert_msg(memcmp(a + off, b + off, MiB) == 0,
			      "%s: differ in MiB %" PRIu64, what, off / MiB);
}

static bool file_has(const char *path, const char *needle)
{
	static char buf[1 << 16];

	return vt_read_text(path, buf, sizeof(buf)) > 0 && strstr(buf, needle);
}

/* Wait up to @ms for @path (a log) to contain @needle. */
static bool wait_for_text(const char *path, const char *needle, int ms)
{
	double end = vt_now_ms() + ms;

	do {
		if (file_has(path, needle))
			return true;
		vt_sleep_ms(100);
	} while (vt_now_ms() < end);
	return false;
}

/* Wait up to @ms for @path (a mount's kernel) to name the guest's release. */
static bool wait_kernel(const char *path, char *buf, size_t len, int ms)
{
	double end = vt_now_ms() + ms;

	do {
		if (vt_read_text(path, buf, len) > 0 && strstr(buf, E->release))
			return true;
		vt_sleep_ms(500);
	} while (vt_now_ms() < end);
	return false;
}

/* The hook's mount, as libvirtd's namespace has it. */
static const char *hook_path(const char *name)
{
	static char p[512];

	snprintf(p, sizeof(p), "/proc/%d/root/run/vmemtrans/%s%s%s",
		 (int)E->libvirtd, E->dom, name ? "/" : "", name ? name : "");
	return p;
}

static bool wait_hook_mount(bool mounted, int ms)
{
	double end = vt_now_ms() + ms;
	struct stat st;

	do {
		bool there = stat(hook_path("ram"), &st) == 0 &&
			     (uint64_t)st.st_size == RAM;

		if (there == mounted)
			return true;
		vt_sleep_ms(200);
	} while (vt_now_ms() < end);
	return false;
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(test_unprivileged_split)
{
	char out[4096], path[64], line[256];
	struct passwd *pw = getpwnam("libvirt-qemu");
	pid_t q;
	long uid = -1;
	FILE *f;

	NEED_UP();
	ck_assert_msg(pw, "no user libvirt-qemu");
	q = qemu_pid();
	ck_assert_msg(q > 0, "no QEMU pid from libvirt");
	snprintf(path, sizeof(path), "/proc/%d/status", (int)q);
	f = fopen(path, "r");
	ck_assert(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %*d %ld", &uid) == 1)
			break;
	fclose(f);
	ck_assert_msg(uid == (long)pw->pw_uid, "QEMU runs as uid %ld, not "
		      "libvirt-qemu (%d)", uid, (int)pw->pw_uid);
	/* vmem-split is up with its sub-host, through libvirt's monitor. */
	ck_assert_msg(lv_qmp("{\"execute\":\"query-vmem\"}", out, sizeof(out),
			     30000) == 0, "query-vmem: %s", out);
	ck_assert_msg(strstr(out, E->sub.uri), "query-vmem names no sub-host "
		      "%s: %s", E->sub.uri, out);
	ck_assert_msg(strstr(out, E->shm), "memory file not in %s: %s",
		      E->shm, out);
}
END_TEST

START_TEST(test_hook_mount)
{
	char buf[4096];

	NEED_UP();
	ck_assert_msg(wait_hook_mount(true, 60000), "the hook did not mount "
		      "%s", hook_path(NULL));
	/* Mounted before the guest booted: an open looks again. */
	ck_assert_msg(wait_kernel(hook_path("kernel"), buf, sizeof(buf), 30000),
		      "kernel of the hook's mount does not name release %s: "
		      "%.300s", E->release, buf);
}
END_TEST

START_TEST(test_ram_equals_pmemsave)
{
	char out[4096], cmd[512], pm[256];
	uint8_t *direct = malloc(RAM), *rp = malloc(RAM), *oracle = malloc(RAM);
	json_object *st, *v;
	int rc;

	NEED_UP();
	ck_assert(direct && rp && oracle);
	/* Data of the guest's own in its upper memory, then homed away. */
	rc = vt_guest_write_data(&E->g, 128, 192, "sync", out, sizeof(out),
				 120000);
	ck_assert_msg(rc == 0, "guest data: %s", out);
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"vmem-page-out\",\"arguments\":"
		 "{\"offset\":%" PRIu64 ",\"length\":%" PRIu64 "}}", HOME_START,
		 RAM - HOME_START);
	ck_assert_msg(lv_qmp(cmd, out, sizeof(out), 300000) == 0,
		      "vmem-page-out: %s", out);
	ck_assert_msg(virsh(out, sizeof(out), 30000, "suspend", E->dom,
			    (char *)NULL) == 0, "suspend: %s", out);

	mount_conf(0, "vmt.conf");
	ck_assert_int_eq(read_all(vt_vmemfs_path(&E->vfs[0], "ram"), direct), 0);
	st = json_object_from_file(vt_vmemfs_path(&E->vfs[0], "stats"));
	ck_assert(st && json_object_object_get_ex(st, "bytes_remote", &v));
	ck_assert_msg(json_object_get_int64(v) > 0, "direct read nothing from "
		      "the sub-host");
	json_object_put(st);
	/* The mount's proc/ and kernel on the domain. */
	vt_ck_read_text(vt_vmemfs_path(&E->vfs[0], "kernel"), out, sizeof(out));
	ck_assert_msg(strstr(out, E->release), "kernel: %.300s", out);
	ck_assert_msg(access(vt_vmemfs_path(&E->vfs[0], "proc/1/status"), R_OK)
		      == 0, "proc/1/status: %s", strerror(errno));

	mount_conf(1, "rp.conf");
	ck_assert_int_eq(read_all(vt_vmemfs_path(&E->vfs[1], "ram"), rp), 0);
	ck_same(direct, rp, "direct and remote-paging");
	/* It asked QEMU (through libvirt) for the homed pages. */
	st = json_object_from_file(vt_vmemfs_path(&E->vfs[1], "stats"));
	ck_assert(st && json_object_object_get_ex(st, "subhosts", &v));
	ck_assert(json_object_object_get_ex(json_object_array_get_idx(v, 0),
					    "bytes", &v));
	ck_assert_msg(json_object_get_int64(v) > 0, "remote-paging paged "
		      "nothing in: %s", json_object_to_json_string(st));
	/* ... over the pager's control socket, which QEMU (running as
	 * libvirt-qemu, the memory file's owner) made, not over QMP. */
	ck_assert(json_object_object_get_ex(st, "page_in_ctl_commands", &v));
	ck_assert_msg(json_object_get_int64(v) > 0, "no page-in went over "
		      "the control socket: %s", json_object_to_json_string(st));
	ck_assert(json_object_object_get_ex(st, "page_in_qmp_commands", &v));
	ck_assert_msg(json_object_get_int64(v) == 0, "page-ins over QMP "
		      "through libvirt: %s", json_object_to_json_string(st));
	json_object_put(st);

	/* QEMU's own view (pages the homed half back in: last). */
	snprintf(pm, sizeof(pm), "%s/s/pm.bin", E->dir);
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"pmemsave\",\"arguments\":"
		 "{\"val\":0,\"size\":%" PRIu64 ",\"filename\":\"%s\"}}", RAM, pm);
	ck_assert_msg(lv_qmp(cmd, out, sizeof(out), 300000) == 0,
		      "pmemsave: %s", out);
	ck_assert_msg(read_all(pm, oracle) == 0, "%s: cannot read it whole", pm);
	unlink(pm);
	ck_same(direct, oracle, "vmemfs --domain and pmemsave");
	vt_vmemfs_stop(&E->vfs[1], 3000);
	ck_assert_msg(virsh(out, sizeof(out), 30000, "resume", E->dom,
			    (char *)NULL) == 0, "resume: %s", out);
	free(direct);
	free(rp);
	free(oracle);
}
END_TEST

START_TEST(test_reset)
{
	char out[4096], before[4096], log[256];

	NEED_UP();
	/* Running again, whatever the test before left. */
	virsh(out, sizeof(out), 30000, "resume", E->dom, (char *)NULL);
	mount_conf(0, "vmt.conf");	/* a mount dies with the test that made it */
	ck_assert_msg(wait_kernel(vt_vmemfs_path(&E->vfs[0], "kernel"), before,
				  sizeof(before), 30000), "kernel: %.300s", before);
	snprintf(log, sizeof(log), "%s/vmemfs0.log", E->dir);
	ck_assert_msg(virsh(out, sizeof(out), 30000, "reset", E->dom,
			    (char *)NULL) == 0, "reset: %s", out);
	/* RESET came through libvirt: the kernel view is dropped. */
	ck_assert_msg(wait_for_text(log, "the guest was reset", 20000),
		      "no reset seen by vmemfs");
	{
		char err[1024];

		ck_assert_msg(vt_guest_wait_ready(&E->g, 120000, err,
						  sizeof(err)) == 0, "%s", err);
	}
	/* The new boot's kernel, at a new KASLR offset: the layout and the
	 * kernel were learned again through libvirt. */
	ck_assert_msg(wait_kernel(vt_vmemfs_path(&E->vfs[0], "kernel"), out,
				  sizeof(out), 60000),
		      "kernel after reset: %.300s", out);
	ck_assert_msg(strcmp(out, before) != 0, "kernel after the reset is the "
		      "one before it: %.300s", out);
}
END_TEST

START_TEST(test_destroy_start)
{
	char out[4096], before[4096], buf[4096];
	const char *q = "{\"execute\":\"query-vmem\"}";
	int fd;
	ssize_t n;

	NEED_UP();
	mount_conf(0, "vmt.conf");	/* a mount dies with the test that made it */
	ck_assert_msg(lv_qmp(q, before, sizeof(before), 30000) == 0, "%s",
		      before);
	ck_assert_msg(virsh(out, sizeof(out), 60000, "destroy", E->dom,
			    (char *)NULL) == 0, "destroy: %s", out);
	fd = open(vt_vmemfs_path(&E->vfs[0], "ram"), O_RDONLY);
	ck_assert(fd >= 0);
	n = pread(fd, buf, sizeof(buf), 0);
	ck_assert_msg(n < 0 && errno == EIO, "read after destroy: %zd (%s)", n,
		      n < 0 ? strerror(errno) : "data");
	close(fd);
	ck_assert_msg(wait_hook_mount(false, 20000), "the hook did not unmount");

	ck_assert_msg(start_domain() == 0, "%s", E->err);
	ck_assert_msg(lv_qmp(q, out, sizeof(out), 30000) == 0, "%s", out);
	ck_assert_msg(strcmp(out, before) != 0, "same query-vmem after restart");
	/* The same mount reads the new file: data again, kernel again. */
	{
		double end = vt_now_ms() + 30000;

		do {
			fd = open(vt_vmemfs_path(&E->vfs[0], "ram"), O_RDONLY);
			n = fd >= 0 ? pread(fd, buf, sizeof(buf), 0) : -1;
			if (fd >= 0)
				close(fd);
			if (n == (ssize_t)sizeof(buf))
				break;
			vt_sleep_ms(200);
		} while (vt_now_ms() < end);
	}
	ck_assert_msg(n == (ssize_t)sizeof(buf), "no read after the restart: %s",
		      strerror(errno));
	ck_assert_msg(wait_kernel(vt_vmemfs_path(&E->vfs[0], "kernel"), out,
				  sizeof(out), 60000),
		      "kernel after restart: %.300s", out);
	ck_assert_msg(wait_hook_mount(true, 60000), "the hook did not mount "
		      "again");
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("libvirt");
	TCase *tc = vt_tcase_unchecked(s, "domain", env_up, env_down, 600);

	tcase_add_test(tc, test_unprivileged_split);
	tcase_add_test(tc, test_hook_mount);
	tcase_add_test(tc, test_ram_equals_pmemsave);
	tcase_add_test(tc, test_reset);
	tcase_add_test(tc, test_destroy_start);
	return s;
}

VT_GUEST_MAIN("libvirt", make_suite, E, runner, env_down)
