// SPDX-License-Identifier: MIT
/*
 * Boot and drive the test guest (see guest.h).
 */
#include "guest.h"
#include "hosts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define READY_LINE "VMT-GUEST-READY\n"
#define END_MARK "@@VMT-END "

/* .../build/tests/check_x -> .../build/<rel> */
static const char *build_path(char *buf, size_t len, const char *rel)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	if (n <= 0) {
		snprintf(buf, len, "build/%s", rel);
		return buf;
	}
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(buf, '/');
	if (slash && (size_t)(slash - buf) + strlen(rel) + 2 < len)
		sprintf(slash, "/%s", rel);
	return buf;
}

const char *vt_qemu_bin(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("VMEM_QEMU");

	if (env && *env)
		return env;
	return build_path(path, sizeof(path), "qemu/qemu-system-x86_64");
}

const char *vt_guest_dir(void)
{
	static char path[PATH_MAX];

	return build_path(path, sizeof(path), "guest");
}

const char *vt_qemu_share_dir(void)
{
	static char path[PATH_MAX];

	return build_path(path, sizeof(path), "qemu/share");
}

/* Append the last bytes of QEMU's log to @err so failures explain
 * themselves. */
static void add_log_tail(const struct vt_guest *g, char *err, size_t errlen)
{
	char tail[1024];
	size_t used = err ? strlen(err) : 0;
	int fd = open(g->log_path, O_RDONLY);
	off_t size;
	ssize_t n;

	if (fd < 0 || !err || used + 16 >= errlen) {
		if (fd >= 0)
			close(fd);
		return;
	}
	size = lseek(fd, 0, SEEK_END);
	n = pread(fd, tail, sizeof(tail) - 1,
		  size > (off_t)sizeof(tail) - 1 ? size - (off_t)sizeof(tail) + 1 : 0);
	close(fd);
	if (n <= 0)
		return;
	tail[n] = '\0';
	snprintf(err + used, errlen - used, "; qemu log: %s", tail);
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Connect to @path, retrying while QEMU creates the socket.  Gives up
 * early when QEMU died. */
static int connect_retry(struct vt_guest *g, const char *path, double deadline)
{
	int fd;

	for (;;) {
		fd = unix_connect(path);
		if (fd >= 0)
			return fd;
		if (waitpid(g->pid, NULL, WNOHANG) == g->pid) {
			g->pid = 0;
			return -1;
		}
		if (vt_now_ms() > deadline)
			return -1;
		vt_sleep_ms(10);
	}
}

/* Read what is available on @fd into buf (up to @cap), waiting until
 * @deadline for at least one byte.  Returns bytes read, 0 on EOF, -1 on
 * error or timeout. */
static ssize_t read_some(int fd, char *buf, size_t *len, size_t cap,
			 double deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	double left = deadline - vt_now_ms();
	ssize_t n;

	if (*len + 1 >= cap) {
		/* Keep the newest half: markers are at the end. */
		memmove(buf, buf + cap / 2, *len - cap / 2);
		*len -= cap / 2;
	}
	if (left <= 0)
		return -1;
	n = poll(&p, 1, left > 1e6 ? 1000000 : (int)left + 1);
	if (n <= 0)
		return -1;
	n = read(fd, buf + *len, cap - 1 - *len);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	if (n == 0)
		return -1;
	*len += n;
	buf[*len] = '\0';
	return n;
}

static int write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		s += n;
		len -= n;
	}
	return 0;
}

static int qmp_read_line(struct vt_guest *g, char *line, size_t len,
			 double deadline)
{
	for (;;) {
		char *nl = memchr(g->qbuf, '\n', g->qlen);

		if (nl) {
			size_t n = nl - g->qbuf + 1;

			snprintf(line, len, "%.*s", (int)(n - 1), g->qbuf);
			memmove(g->qbuf, g->qbuf + n, g->qlen - n);
			g->qlen -= n;
			return 0;
		}
		if (read_some(g->qmp_fd, g->qbuf, &g->qlen, sizeof(g->qbuf),
			      deadline) < 0)
			return -1;
	}
}

int vt_guest_qmp(struct vt_guest *g, const char *json, char *reply,
		 size_t replylen, int timeout_ms)
{
	double deadline = vt_now_ms() + timeout_ms;
	size_t linelen = sizeof(g->qbuf);
	char *line;
	int rc = -1;

	if (reply && replylen)
		reply[0] = '\0';
	if (g->qmp_fd < 0)
		return -1;
	if (write_all(g->qmp_fd, json, strlen(json)) < 0 ||
	    write_all(g->qmp_fd, "\n", 1) < 0)
		return -1;
	line = malloc(linelen);
	if (!line)
		return -1;
	for (;;) {
		if (qmp_read_line(g, line, linelen, deadline) < 0)
			break;
		/* Events and the greeting are not answers. */
		if (strncmp(line, "{\"return\"", 9) == 0) {
			snprintf(reply, replylen, "%s", line);
			rc = 0;
			break;
		}
		if (strncmp(line, "{\"error\"", 8) == 0) {
			snprintf(reply, replylen, "%s", line);
			rc = 1;
			break;
		}
	}
	free(line);
	return rc;
}

static void build_argv(const struct vt_guest *g, const struct vt_guest_opts *o,
		       char store[][512], const char **argv, size_t max)
{
	size_t n = 0, s = 0;

#define ARG(...) do {							\
		snprintf(store[s], 512, __VA_ARGS__);			\
		if (n + 1 < max)					\
			argv[n++] = store[s++];				\
	} while (0)

	ARG("%s", vt_qemu_bin());
	ARG("-L");
	ARG("%s", vt_qemu_share_dir());
	ARG("-accel");
	ARG("tcg");
	if (o->cpu) {
		ARG("-cpu");
		ARG("%s", o->cpu);
	}
	ARG("-smp");
	ARG("1");
	ARG("-m");
	ARG("%llu", (unsigned long long)(o->ram_size >> 20));
	ARG("-nodefaults");
	ARG("-no-user-config");
	ARG("-display");
	ARG("none");
	if (!o->allow_reset)
		ARG("-no-reboot");
	ARG("-object");
	ARG("memory-backend-file,id=ram0,size=%llu,mem-path=%s,share=on",
	    (unsigned long long)o->ram_size, o->mem_path);
	ARG("-machine");
	ARG("pc,memory-backend=ram0");
	if (o->vmem_config) {
		ARG("-object");
		ARG("vmem-split,id=vs0,memdev=ram0,config=%s%s%s%s",
		    o->vmem_config, o->vmem_vm ? ",vm=" : "",
		    o->vmem_vm ? o->vmem_vm : "",
		    o->vmem_opts ? o->vmem_opts : "");
	}
	for (size_t i = 0; o->extra_args && o->extra_args[i]; i++)
		ARG("%s", o->extra_args[i]);
	ARG("-kernel");
	ARG("%s/vmlinuz", vt_guest_dir());
	ARG("-initrd");
	ARG("%s/initramfs.cpio.gz", vt_guest_dir());
	ARG("-append");
	ARG("console=ttyS0 quiet panic=-1%s%s", o->append ? " " : "",
	    o->append ? o->append : "");
	/* The serial socket comes first and waits for us, so nothing the
	 * guest prints is lost; QMP does not wait. */
	ARG("-chardev");
	ARG("socket,id=ser0,path=%s,server=on,wait=on", g->serial_path);
	ARG("-serial");
	ARG("chardev:ser0");
	ARG("-qmp");
	ARG("unix:%s,server=on,wait=off", g->qmp_path);
	if (o->qmp2_path) {
		ARG("-qmp");
		ARG("unix:%s,server=on,wait=off", o->qmp2_path);
	}
	if (o->paused)
		ARG("-S");
#undef ARG
	argv[n] = NULL;
}

int vt_guest_start(struct vt_guest *g, const struct vt_guest_opts *o,
		   char *err, size_t errlen)
{
	int timeout = o->boot_timeout_ms ? o->boot_timeout_ms : 60000;
	double t0 = vt_now_ms(), deadline = t0 + timeout;
	static char store[48][512];
	const char *argv[48];
	char line[4096];
	pid_t parent = getpid(), pid;

	memset(g, 0, sizeof(*g));
	g->serial_fd = g->qmp_fd = -1;
	snprintf(g->serial_path, sizeof(g->serial_path), "%s/serial.sock",
		 o->run_dir);
	snprintf(g->qmp_path, sizeof(g->qmp_path), "%s/qmp.sock", o->run_dir);
	snprintf(g->log_path, sizeof(g->log_path), "%s/qemu.log", o->run_dir);
	unlink(g->serial_path);
	unlink(g->qmp_path);
	if (o->qmp2_path)
		unlink(o->qmp2_path);
	build_argv(g, o, store, argv, 48);

	/* @g may be shared with other processes (MAP_SHARED): only the
	 * parent may store the PID in it. */
	pid = fork();
	if (pid < 0) {
		vt_set_err(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		int log = open(g->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		/* QEMU must not outlive a test that crashed. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(nul, 0);
		if (log >= 0) {
			dup2(log, 1);
			dup2(log, 2);
		}
		execv(argv[0], (char *const *)argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	g->pid = pid;

	g->serial_fd = connect_retry(g, g->serial_path, deadline);
	if (g->serial_fd < 0) {
		vt_set_err(err, errlen, "no serial socket %s (%s after %.0f ms)",
		     g->serial_path, g->pid ? "timeout" : "QEMU exited",
		     vt_now_ms() - t0);
		goto fail;
	}
	g->qmp_fd = connect_retry(g, g->qmp_path, deadline);
	if (g->qmp_fd < 0) {
		vt_set_err(err, errlen, "no QMP socket %s", g->qmp_path);
		goto fail;
	}
	if (qmp_read_line(g, line, sizeof(line), deadline) < 0 ||
	    !strstr(line, "\"QMP\"")) {
		vt_set_err(err, errlen, "no QMP greeting");
		goto fail;
	}
	if (vt_guest_qmp(g, "{\"execute\":\"qmp_capabilities\"}", line,
			 sizeof(line), timeout) != 0) {
		vt_set_err(err, errlen, "qmp_capabilities: %s", line);
		goto fail;
	}
	while (!o->paused && !strstr(g->sbuf, READY_LINE)) {
		if (read_some(g->serial_fd, g->sbuf, &g->slen, sizeof(g->sbuf),
			      deadline) < 0) {
			vt_set_err(err, errlen, "guest not ready after %d ms "
			     "(console: %.300s)", timeout, g->sbuf);
			goto fail;
		}
	}
	g->slen = 0;
	g->sbuf[0] = '\0';
	g->boot_ms = vt_now_ms() - t0;
	return 0;
fail:
	add_log_tail(g, err, errlen);
	vt_guest_stop(g, 0);
	return -1;
}

int vt_guest_wait_ready(struct vt_guest *g, int timeout_ms, char *err,
			size_t errlen)
{
	double t0 = vt_now_ms(), deadline = t0 + timeout_ms;

	/* Whatever the old guest said last is not the new one's ready. */
	g->slen = 0;
	g->sbuf[0] = '\0';
	while (!strstr(g->sbuf, READY_LINE)) {
		if (read_some(g->serial_fd, g->sbuf, &g->slen, sizeof(g->sbuf),
			      deadline) < 0) {
			vt_set_err(err, errlen, "guest not ready %d ms after "
				   "the reset (console: %.300s)", timeout_ms,
				   g->sbuf);
			return -1;
		}
	}
	g->slen = 0;
	g->sbuf[0] = '\0';
	g->boot_ms = vt_now_ms() - t0;
	return 0;
}

/* Quote @s for sh inside single quotes. */
static int sh_quote(char *dst, size_t len, const char *s)
{
	size_t n = 0;

	if (n + 1 >= len)
		return -1;
	dst[n++] = '\'';
	for (; *s; s++) {
		if (*s == '\n')
			return -1;	/* one line per command */
		if (*s == '\'') {
			if (n + 5 >= len)
				return -1;
			memcpy(dst + n, "'\\''", 4);
			n += 4;
		} else {
			if (n + 2 >= len)
				return -1;
			dst[n++] = *s;
		}
	}
	if (n + 2 >= len)
		return -1;
	dst[n++] = '\'';
	dst[n] = '\0';
	return 0;
}

int vt_guest_run(struct vt_guest *g, const char *cmd, char *out,
		 size_t outlen, int timeout_ms)
{
	double deadline = vt_now_ms() + timeout_ms;
	char quoted[3000], line[3200], mark[64];
	char *m;
	int st;

	if (out && outlen)
		out[0] = '\0';
	if (g->serial_fd < 0 || sh_quote(quoted, sizeof(quoted), cmd) < 0) {
		snprintf(out, outlen, "no console or bad command");
		return -1;
	}
	g->seq++;
	/* Output that no command claimed (none expected) is dropped. */
	g->slen = 0;
	g->sbuf[0] = '\0';
	snprintf(line, sizeof(line),
		 "eval %s 2>&1; printf '\\n" END_MARK "%u %%d\\n' $?\n",
		 quoted, g->seq);
	if (write_all(g->serial_fd, line, strlen(line)) < 0) {
		snprintf(out, outlen, "console write: %s", strerror(errno));
		return -1;
	}
	snprintf(mark, sizeof(mark), "\n" END_MARK "%u ", g->seq);
	for (;;) {
		m = strstr(g->sbuf, mark);
		if (m && strchr(m + strlen(mark), '\n'))
			break;
		if (read_some(g->serial_fd, g->sbuf, &g->slen, sizeof(g->sbuf),
			      deadline) < 0) {
			snprintf(out, outlen, "timeout after %d ms; so far: %s",
				 timeout_ms, g->sbuf);
			return -1;
		}
	}
	st = atoi(m + strlen(mark));
	snprintf(out, outlen, "%.*s", (int)(m - g->sbuf), g->sbuf);
	g->slen = 0;
	g->sbuf[0] = '\0';
	return st;
}

int vt_guest_run_logged(struct vt_guest *g, const char *cmd, char *out,
			size_t outlen, int timeout_ms)
{
	double t0 = vt_now_ms();
	int st = vt_guest_run(g, cmd, out, outlen, timeout_ms);

	printf("info: guest `%s` -> %d in %.1f s\n", cmd, st,
	       (vt_now_ms() - t0) / 1000);
	if (st != 0)
		printf("info: its output: %.500s\n", out);
	return st;
}

int vt_guest_write_data(struct vt_guest *g, unsigned int ballast_mib,
			unsigned int data_mib, const char *then, char *out,
			size_t outlen, int timeout_ms)
{
	char cmd[256];
	int st;

	snprintf(cmd, sizeof(cmd), "dd if=/dev/zero of=/tmp/ballast bs=1M "
		 "count=%u 2>/dev/null", ballast_mib);
	st = vt_guest_run_logged(g, cmd, out, outlen, timeout_ms);
	if (st != 0)
		return st;
	snprintf(cmd, sizeof(cmd), "dd if=/dev/urandom of=/tmp/data bs=1M "
		 "count=%u 2>/dev/null%s%s", data_mib, then ? " && " : "",
		 then ? then : "");
	return vt_guest_run_logged(g, cmd, out, outlen, timeout_ms);
}

int vt_guest_stop(struct vt_guest *g, int timeout_ms)
{
	char reply[512];
	int st = -1;

	if (g->pid > 0 && g->qmp_fd >= 0 && timeout_ms > 0)
		vt_guest_qmp(g, "{\"execute\":\"quit\"}", reply, sizeof(reply),
			     timeout_ms);
	if (g->pid > 0) {
		st = timeout_ms > 0 ? vt_wait_pid(g->pid, timeout_ms) : -1;
		if (st == -1) {
			kill(g->pid, SIGKILL);
			vt_wait_pid(g->pid, 5000);
		}
		g->pid = 0;
	}
	if (g->serial_fd >= 0)
		close(g->serial_fd);
	if (g->qmp_fd >= 0)
		close(g->qmp_fd);
	g->serial_fd = g->qmp_fd = -1;
	unlink(g->serial_path);
	unlink(g->qmp_path);
	return st;
}

void vt_guest_stop_started(struct vt_guest *g, int timeout_ms)
{
	if (g->pid > 0 || g->qmp_fd > 0 || g->serial_fd > 0)
		vt_guest_stop(g, timeout_ms);
}

int vt_guest_has(const char *name, int mode, char *err, size_t errlen)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", vt_guest_dir(), name);
	if (access(path, mode) == 0)
		return 0;
	vt_set_err(err, errlen, "guest missing: %s (run "
		   "scripts/guest/build-guest.sh)", path);
	return -1;
}
