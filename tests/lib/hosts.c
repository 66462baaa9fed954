// SPDX-License-Identifier: MIT
/*
 * Test helpers that start and stop real parts (see hosts.h).
 */
#include "hosts.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double vt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void vt_sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

void vt_become_subreaper(void)
{
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

/*
 * The runner's cleanup on a signal.  A cleanup stops daemons, unmounts and
 * deletes namespaces: it needs malloc, stdio and fork, none of which is
 * async-signal-safe, and the signal may interrupt the runner inside
 * malloc or printf, holding the very lock the cleanup then waits for.  So
 * the handler only makes async-signal-safe calls: it hands the signal to
 * a cleanup thread through a pipe, waits (bounded) for it to finish, and
 * ends the process with the signal's default action.  The interrupted
 * thread stays in the handler meanwhile, so nothing else starts a process
 * the cleanup would miss; the cleanup thread mallocs from an arena of its
 * own.  If the cleanup does hang (on a lock the interrupted code holds),
 * the runner still dies after RUNNER_CLEANUP_WAIT_MS, as it would have
 * without a handler.
 */
#define RUNNER_CLEANUP_WAIT_MS 60000

static void (*runner_cleanup)(void);
static pid_t runner_pid;
static int sig_pipe[2] = { -1, -1 };	/* handler -> cleanup thread */
static int done_pipe[2] = { -1, -1 };	/* cleanup thread -> handler */

static void *cleanup_thread(void *arg)
{
	unsigned char sig;
	ssize_t n;

	(void)arg;
	do
		n = read(sig_pipe[0], &sig, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		runner_cleanup();
	/* Readable for good: every handler that waits sees it. */
	if (write(done_pipe[1], "x", 1) < 0)
		return NULL;
	return NULL;
}

static void runner_on_signal(int sig)
{
	unsigned char b = (unsigned char)sig;

	/* Check's forked tests inherit this handler: only the runner. */
	if (getpid() == runner_pid && write(sig_pipe[1], &b, 1) == 1) {
		struct pollfd p = { .fd = done_pipe[0], .events = POLLIN };
		struct timespec t0, t;
		int left = RUNNER_CLEANUP_WAIT_MS;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (poll(&p, 1, left) < 0 && errno == EINTR) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			left = RUNNER_CLEANUP_WAIT_MS -
			       (int)((t.tv_sec - t0.tv_sec) * 1000 +
				     (t.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0)
				break;
		}
	}
	/* Blocked while we run: delivered, by default, when we return. */
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The cleanup thread, started with the signals blocked so that it never
 * runs the handler itself. */
static int start_cleanup_thread(void)
{
	sigset_t block, old;
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	if (pipe2(sig_pipe, O_CLOEXEC) < 0 || pipe2(done_pipe, O_CLOEXEC) < 0) {
		perror("pipe2");
		return -1;
	}
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, cleanup_thread, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		fprintf(stderr, "pthread_create: %s\n", strerror(rc));
		return -1;
	}
	return 0;
}

void *vt_runner_env(size_t size, void (*cleanup)(void))
{
	void *env;

	setvbuf(stdout, NULL, _IOLBF, 0);
	vt_become_subreaper();
	env = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (env == MAP_FAILED) {
		perror("mmap");
		return NULL;
	}
	memset(env, 0, size);
	runner_cleanup = cleanup;
	runner_pid = getpid();
	if (start_cleanup_thread() < 0)
		return NULL;
	atexit(cleanup);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, runner_on_signal);
	signal(SIGTERM, runner_on_signal);
	signal(SIGHUP, runner_on_signal);
	return env;
}

void vt_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void vt_setup_failed(char *err, size_t errlen, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vt_set_err(err, errlen, "%s", msg);
	printf("setup failed: %s\n", msg);
	fflush(stdout);
}

int vt_write_file(const char *path, const void *data, size_t len, char *err,
		  size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t done = 0;

	if (fd < 0) {
		vt_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (done < len) {
		ssize_t n = write(fd, (const char *)data + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			vt_set_err(err, errlen, "write %s: %s", path,
				   n < 0 ? strerror(errno) : "wrote nothing");
			close(fd);
			return -1;
		}
		done += n;
	}
	if (close(fd) < 0) {
		vt_set_err(err, errlen, "close %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- processes ------------------------------------------------------ */

/* The state letter in a /proc/.../stat file, or 0. */
static char proc_state(const char *path)
{
	char buf[512], *p;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* "pid (comm) S ...": comm may hold spaces and parentheses. */
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

static bool is_zombie(pid_t pid)
{
	char path[64];
	char st;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	st = proc_state(path);
	return st == 0 || st == 'Z' || st == 'X';
}

int vt_stop_pid(pid_t pid, int timeout_ms)
{
	double deadline = vt_now_ms() + timeout_ms;
	char dir[64];

	if (kill(pid, SIGSTOP) < 0)
		return -1;
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	/*
	 * kill() returns before every thread has stopped; a thread still
	 * running could answer one more request.  Wait for all of them.
	 */
	for (;;) {
		DIR *d = opendir(dir);
		struct dirent *e;
		bool all = d != NULL;

		while (d && (e = readdir(d))) {
			char path[400];
			char st;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/stat", dir,
				 e->d_name);
			st = proc_state(path);
			if (st != 'T' && st != 't')
				all = false;
		}
		if (d)
			closedir(d);
		if (all)
			return 0;
		if (vt_now_ms() > deadline)
			return -1;
		vt_sleep_ms(1);
	}
}

int vt_wait_pid(pid_t pid, int timeout_ms)
{
	double deadline = vt_now_ms() + timeout_ms;
	int st;

	if (pid <= 0)
		return -1;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		if (r < 0 && errno == ECHILD) {
			/*
			 * Not ours (the runner started it, or it was
			 * reparented): watch it.  A zombie is gone for
			 * our purposes; its parent reaps it.
			 */
			if ((kill(pid, 0) < 0 && errno == ESRCH) ||
			    is_zombie(pid))
				return 0;
		} else if (r < 0 && errno != EINTR) {
			return -1;
		}
		if (vt_now_ms() > deadline)
			return -1;
		vt_sleep_ms(5);
	}
}

static size_t read_memfd(int fd, char *buf, size_t len)
{
	ssize_t n;

	if (!buf || !len)
		return 0;
	n = pread(fd, buf, len - 1, 0);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	return n;
}

int vt_run(char *const argv[], char *out, size_t outlen, char *errout,
	   size_t errlen, int timeout_ms)
{
	int ofd = memfd_create("vt-out", 0);
	int efd = memfd_create("vt-err", 0);
	int st, ret = -1;
	pid_t pid;

	if (out && outlen)
		out[0] = '\0';
	if (errout && errlen)
		errout[0] = '\0';
	if (ofd < 0 || efd < 0)
		goto out;
	pid = fork();
	if (pid < 0)
		goto out;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		dup2(nul, 0);
		dup2(ofd, 1);
		dup2(efd, 2);
		execvp(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	st = vt_wait_pid(pid, timeout_ms);
	if (st == -1) {
		kill(pid, SIGKILL);
		vt_wait_pid(pid, 2000);
	} else if (WIFEXITED(st)) {
		ret = WEXITSTATUS(st);
	} else if (WIFSIGNALED(st)) {
		ret = 128 + WTERMSIG(st);
	}
	read_memfd(ofd, out, outlen);
	read_memfd(efd, errout, errlen);
out:
	if (ofd >= 0)
		close(ofd);
	if (efd >= 0)
		close(efd);
	return ret;
}

/* Run a command quietly; 0 when it exited 0. */
static int run_quiet(char *err, size_t errlen, char *const argv[])
{
	char e[512];
	int rc = vt_run(argv, NULL, 0, e, sizeof(e), 10000);

	if (rc != 0) {
		char cmd[256] = "";
		size_t used = 0;

		for (int i = 0; argv[i] && used < sizeof(cmd) - 1; i++)
			used += snprintf(cmd + used, sizeof(cmd) - used,
					 "%s%s", i ? " " : "", argv[i]);
		vt_set_err(err, errlen, "`%s` failed (%d): %s", cmd, rc, e);
		return -1;
	}
	return 0;
}

#define RUN(err, errlen, ...) \
	run_quiet(err, errlen, (char *const[]){ __VA_ARGS__, NULL })

/* ---- network namespaces --------------------------------------------- */

int vt_netns_create(struct vt_netns *ns, const char *name,
		    unsigned int subnet, char *err, size_t errlen)
{
	unsigned int base = (subnet % 16384) * 4;
	char hcidr[24], ncidr[24];

	memset(ns, 0, sizeof(*ns));
	snprintf(ns->host_addr, sizeof(ns->host_addr), "10.213.%u.%u",
		 base >> 8, (base & 255) + 1);
	snprintf(ns->ns_addr, sizeof(ns->ns_addr), "10.213.%u.%u",
		 base >> 8, (base & 255) + 2);
	snprintf(hcidr, sizeof(hcidr), "%s/30", ns->host_addr);
	snprintf(ncidr, sizeof(ncidr), "%s/30", ns->ns_addr);
	/* Interface names: at most 15 characters, unique per namespace. */
	snprintf(ns->veth_host, sizeof(ns->veth_host), "vt%uh",
		 subnet % 1000000000u);
	snprintf(ns->veth_ns, sizeof(ns->veth_ns), "vt%un",
		 subnet % 1000000000u);

	if (RUN(err, errlen, "ip", "netns", "add", (char *)name))
		return -1;
	snprintf(ns->name, sizeof(ns->name), "%s", name);
	if (RUN(err, errlen, "ip", "link", "add", ns->veth_host, "type",
		"veth", "peer", "name", ns->veth_ns) ||
	    RUN(err, errlen, "ip", "link", "set", ns->veth_ns, "netns",
		ns->name) ||
	    RUN(err, errlen, "ip", "addr", "add", hcidr, "dev",
		ns->veth_host) ||
	    RUN(err, errlen, "ip", "link", "set", ns->veth_host, "up") ||
	    RUN(err, errlen, "ip", "-n", ns->name, "addr", "add", ncidr,
		"dev", ns->veth_ns) ||
	    RUN(err, errlen, "ip", "-n", ns->name, "link", "set",
		ns->veth_ns, "up") ||
	    RUN(err, errlen, "ip", "-n", ns->name, "link", "set", "lo",
		"up")) {
		vt_netns_delete(ns);
		return -1;
	}
	return 0;
}

void vt_netns_kill_all(const struct vt_netns *ns)
{
	char out[4096];
	char *argv[] = { "ip", "netns", "pids", (char *)ns->name, NULL };
	char *tok, *save;

	if (!ns->name[0] || vt_run(argv, out, sizeof(out), NULL, 0, 5000))
		return;
	for (tok = strtok_r(out, " \n", &save); tok;
	     tok = strtok_r(NULL, " \n", &save)) {
		pid_t pid = atoi(tok);

		if (pid > 1 && pid != getpid()) {
			kill(pid, SIGCONT);
			kill(pid, SIGKILL);
			vt_wait_pid(pid, 2000);
		}
	}
}

void vt_netns_delete(struct vt_netns *ns)
{
	vt_netns_kill_all(ns);
	if (ns->name[0])
		RUN(NULL, 0, "ip", "netns", "del", ns->name);
	/* Deleting the namespace takes the peer with it; make sure. */
	if (ns->veth_host[0])
		RUN(NULL, 0, "ip", "link", "del", ns->veth_host);
	memset(ns, 0, sizeof(*ns));
}

/* ---- nbdkit --------------------------------------------------------- */

int vt_free_tcp_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port = -1;

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int vt_subhost_in_netns(struct vt_netns *ns, struct vt_nbdkit *n,
			const char *name, unsigned int subnet, int port,
			uint64_t size_mib, char *err, size_t errlen)
{
	char why[1024];

	if (vt_netns_create(ns, name, subnet, why, sizeof(why)) < 0) {
		vt_set_err(err, errlen, "netns: %s", why);
		return -1;
	}
	snprintf(n->netns, sizeof(n->netns), "%s", ns->name);
	snprintf(n->addr, sizeof(n->addr), "%s", ns->ns_addr);
	n->port = port;
	snprintf(n->size, sizeof(n->size), "%" PRIu64 "M", size_mib);
	if (vt_nbdkit_start(n, true, why, sizeof(why)) < 0) {
		vt_set_err(err, errlen, "nbdkit: %s", why);
		return -1;
	}
	return 0;
}

struct nbd_handle *vt_nbd_connect(const char *uri, int timeout_ms,
				  char *err, size_t errlen)
{
	return vt_nbd_connect_psk(uri, NULL, timeout_ms, err, errlen);
}

struct nbd_handle *vt_nbd_connect_psk(const char *uri, const char *psk,
				      int timeout_ms, char *err,
				      size_t errlen)
{
	return vt_nbd_connect_tls(uri, psk, NULL, timeout_ms, err, errlen);
}

struct nbd_handle *vt_nbd_connect_tls(const char *uri, const char *psk,
				      const char *certs, int timeout_ms,
				      char *err, size_t errlen)
{
	double deadline = vt_now_ms() + timeout_ms;

	for (;;) {
		struct nbd_handle *h = nbd_create();

		if (!h) {
			vt_set_err(err, errlen, "nbd_create: %s", nbd_get_error());
			return NULL;
		}
		if ((psk || certs) &&
		    (nbd_set_tls(h, LIBNBD_TLS_REQUIRE) == -1 ||
		     (psk && nbd_set_tls_psk_file(h, psk) == -1) ||
		     (!psk && nbd_set_tls_certificates(h, certs) == -1))) {
			vt_set_err(err, errlen, "TLS: %s", nbd_get_error());
			nbd_close(h);
			return NULL;
		}
		if (nbd_connect_uri(h, uri) == 0)
			return h;
		vt_set_err(err, errlen, "connect %s: %s", uri, nbd_get_error());
		nbd_close(h);
		if (vt_now_ms() > deadline)
			return NULL;
		vt_sleep_ms(20);
	}
}

/* The PID nbdkit wrote to @path once it was listening; -1 if none. */
static pid_t read_pidfile(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY);
	ssize_t len;

	if (fd < 0)
		return -1;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -1;
	buf[len] = '\0';
	return atoi(buf) > 0 ? atoi(buf) : -1;
}

int vt_nbdkit_start(struct vt_nbdkit *n, bool exit_with_parent,
		    char *err, size_t errlen)
{
	char port[16], pidfile[64], tlsarg[160], tlsmode[32];
	pid_t parent = getpid();
	double deadline;
	pid_t pid;

	snprintf(port, sizeof(port), "%d", n->port);
	snprintf(pidfile, sizeof(pidfile), "/tmp/vt-nbdkit-%d-%d.pid",
		 (int)getpid(), n->port);
	unlink(pidfile);
	if (n->tls_certs[0])
		snprintf(n->uri, sizeof(n->uri), "nbds://%s:%d", n->addr,
			 n->port);
	else if (n->tls_psk[0])
		snprintf(n->uri, sizeof(n->uri), "nbds://%s@%s:%d",
			 n->tls_user[0] ? n->tls_user : "vmt", n->addr,
			 n->port);
	else
		snprintf(n->uri, sizeof(n->uri), "nbd://%s:%d", n->addr,
			 n->port);
	if (n->tls_certs[0])
		snprintf(tlsarg, sizeof(tlsarg), "--tls-certificates=%s",
			 n->tls_certs);
	else
		snprintf(tlsarg, sizeof(tlsarg), "--tls-psk=%s", n->tls_psk);
	snprintf(tlsmode, sizeof(tlsmode), "--tls=%s",
		 n->tls_optional ? "on" : "require");
	pid = fork();
	if (pid < 0) {
		vt_set_err(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		if (exit_with_parent) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
		} else {
			/* nbdkit's daemon keeps our process group. */
			setpgid(0, 0);
		}
		if (n->netns[0]) {
			char path[96];
			int fd;

			snprintf(path, sizeof(path), "/run/netns/%s",
				 n->netns);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
				dprintf(2, "setns %s: %s\n", path,
					strerror(errno));
				_exit(126);
			}
			close(fd);
		}
		dup2(nul, 0);
		dup2(nul, 1);
		/*
		 * -t 1: nbdkit 1.32 can abort (raw_send_socket: sock >= 0)
		 * when resumed after SIGSTOP if a client hung up with several
		 * requests in flight, which is what a timed-out reader does.
		 * One worker thread per connection never showed it.
		 */
		if (exit_with_parent && (n->tls_psk[0] || n->tls_certs[0]))
			execlp("nbdkit", "nbdkit", "-f", "-t", "1", "-i", n->addr,
			       "-p", port, tlsmode, tlsarg, "memory",
			       n->size, (char *)NULL);
		else if (n->tls_psk[0] || n->tls_certs[0])
			execlp("nbdkit", "nbdkit", "-P", pidfile, "-t", "1",
			       "-i", n->addr, "-p", port, tlsmode,
			       tlsarg, "memory", n->size, (char *)NULL);
		else if (exit_with_parent)
			execlp("nbdkit", "nbdkit", "-f", "-t", "1", "-i", n->addr,
			       "-p", port, "memory", n->size, (char *)NULL);
		else
			/*
			 * In the foreground nbdkit dies with its parent
			 * (it sets PR_SET_PDEATHSIG itself), and a forked
			 * Check test kills its process group at the end:
			 * let it daemonize into a session of its own.
			 */
			execlp("nbdkit", "nbdkit", "-P", pidfile, "-t", "1",
			       "-i", n->addr, "-p", port, "memory", n->size,
			       (char *)NULL);
		dprintf(2, "exec nbdkit: %s\n", strerror(errno));
		_exit(127);
	}
	n->pid = pid;
	if (!exit_with_parent) {
		/* The first process exits once the daemon listens. */
		int st = vt_wait_pid(pid, 10000);
		double until = vt_now_ms() + 5000;

		/* The daemon may write its pidfile after the parent left. */
		while ((n->pid = read_pidfile(pidfile)) <= 0 &&
		       st != -1 && vt_now_ms() < until)
			vt_sleep_ms(5);
		unlink(pidfile);
		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
		    n->pid <= 0) {
			if (st == -1)
				kill(pid, SIGKILL);
			if (n->pid > 0)
				kill(n->pid, SIGKILL);
			vt_set_err(err, errlen, "nbdkit on %s did not start (status 0x%x)",
				n->uri, st);
			n->pid = 0;
			return -1;
		}
		pid = n->pid;
	}

	/* Ready when a full NBD handshake works, not merely a listen. */
	deadline = vt_now_ms() + 10000;
	for (;;) {
		struct nbd_handle *h;
		int st = 0;

		if (exit_with_parent ? waitpid(pid, &st, WNOHANG) == pid :
		    vt_wait_pid(pid, 0) != -1) {
			vt_set_err(err, errlen, "nbdkit on %s exited (status 0x%x)",
				n->uri, st);
			n->pid = 0;
			return -1;
		}
		h = vt_nbd_connect_tls(n->uri, n->tls_psk[0] ? n->tls_psk :
				       NULL, n->tls_certs[0] ? n->tls_certs : NULL,
				       0, err, errlen);
		if (h) {
			nbd_close(h);
			return 0;
		}
		if (vt_now_ms() > deadline) {
			vt_nbdkit_kill(n);
			return -1;
		}
		vt_sleep_ms(20);
	}
}

void vt_nbdkit_kill(struct vt_nbdkit *n)
{
	if (n->pid <= 0)
		return;
	kill(n->pid, SIGCONT);		/* a stopped one too */
	kill(n->pid, SIGKILL);
	vt_wait_pid(n->pid, 5000);
	n->pid = 0;
}

int vt_write_psk(const char *path, const char *user, char *err,
		 size_t errlen)
{
	unsigned char key[32];
	char line[128];
	int n;

	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		vt_set_err(err, errlen, "getrandom: %s", strerror(errno));
		return -1;
	}
	n = snprintf(line, sizeof(line), "%s:", user);
	for (size_t i = 0; i < sizeof(key); i++)
		n += snprintf(line + n, sizeof(line) - n, "%02x", key[i]);
	n += snprintf(line + n, sizeof(line) - n, "\n");
	return vt_write_file(path, line, (size_t)n, err, errlen);
}

/* ---- data pattern --------------------------------------------------- */

uint64_t vt_splitmix64(uint64_t x)
{
	uint64_t z = x + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void vt_pattern_fill(void *buf, uint64_t off, size_t len, uint64_t seed)
{
	uint8_t *p = buf;

	while (len) {
		uint64_t w = vt_splitmix64(seed + off / 8);
		unsigned int i = off % 8;

		if (i == 0 && len >= 8) {
			for (int b = 0; b < 8; b++)
				p[b] = w >> (8 * b);
			p += 8;
			off += 8;
			len -= 8;
			continue;
		}
		*p++ = w >> (8 * i);
		off++;
		len--;
	}
}

/* ---- vmemfs --------------------------------------------------------- */

const char *vt_vmemfs_bin(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("VMEMFS");
	ssize_t n;
	char *slash;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", path, sizeof(path) - 32);
	if (n <= 0)
		return "build/vmemfs";
	path[n] = '\0';
	/* .../build/tests/check_x -> .../build/vmemfs */
	slash = strrchr(path, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(path, '/');
	if (slash)
		strcpy(slash, "/vmemfs");
	return path;
}

void vt_vmemfs_wait_kernel_scan(const char *mnt)
{
	char path[300], buf[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/kernel", mnt);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

int vt_vmemfs_start(struct vt_vmemfs *v, const char *config, const char *vm,
		    const char *fuse_opts, const char *mnt, const char *log,
		    uint64_t ram_size, int timeout_ms, char *err,
		    size_t errlen)
{
	const char *bin = vt_vmemfs_bin();
	char mem[300];
	const char *argv[16];
	int argc = 0;
	pid_t parent = getpid();
	double deadline;
	pid_t pid;

	memset(v, 0, sizeof(*v));
	snprintf(v->mnt, sizeof(v->mnt), "%s", mnt);
	if (log)
		snprintf(v->log, sizeof(v->log), "%s", log);
	snprintf(mem, sizeof(mem), "%s/mem", mnt);

	argv[argc++] = bin;
	argv[argc++] = "-f";
	argv[argc++] = "-c";
	argv[argc++] = config;
	if (vm) {
		argv[argc++] = "--vm";
		argv[argc++] = vm;
	}
	if (fuse_opts) {
		argv[argc++] = "-o";
		argv[argc++] = fuse_opts;
	}
	argv[argc++] = mnt;
	argv[argc] = NULL;

	pid = fork();
	if (pid < 0) {
		vt_set_err(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		/* SIGTERM makes it unmount: a dying runner leaves no mount. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		dup2(nul, 0);
		if (log) {
			int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		execv(bin, (char *const *)argv);
		dprintf(2, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	v->pid = pid;

	deadline = vt_now_ms() + timeout_ms;
	for (;;) {
		struct stat st;
		int ws;

		if (waitpid(pid, &ws, WNOHANG) == pid) {
			vt_set_err(err, errlen,
				"%s exited before the mount was ready (status 0x%x)%s%s",
				bin, ws, log ? "; log: " : "", log ? log : "");
			v->pid = 0;
			return -1;
		}
		if (stat(mem, &st) == 0 && (uint64_t)st.st_size == ram_size)
			return 0;
		if (vt_now_ms() > deadline) {
			vt_set_err(err, errlen,
				"%s not ready within %d ms (stat %s: %s)", mem,
				timeout_ms, mem, strerror(errno));
			vt_vmemfs_stop(v, 3000);
			return -1;
		}
		vt_sleep_ms(10);
	}
}

int vt_vmemfs_stop(struct vt_vmemfs *v, int timeout_ms)
{
	int st = -1;

	if (v->pid > 0) {
		kill(v->pid, SIGTERM);
		st = vt_wait_pid(v->pid, timeout_ms);
		if (st == -1) {
			kill(v->pid, SIGKILL);
			vt_wait_pid(v->pid, 3000);
		}
		v->pid = 0;
	}
	if (v->mnt[0]) {
		/* A killed daemon leaves its mount behind; quietly drop it. */
		RUN(NULL, 0, "fusermount3", "-u", "-z", "-q", v->mnt);
	}
	return st;
}

void vt_print_tail(const char *path, int lines, const char *prefix)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	off_t size;
	ssize_t n;
	char *p, *line;

	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)sizeof(buf) - 1)
		size -= sizeof(buf) - 1;
	else
		size = 0;
	n = pread(fd, buf, sizeof(buf) - 1, size);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	p = buf + n;
	if (p > buf && p[-1] == '\n')
		p--;
	while (p > buf && lines > 0) {
		p--;
		if (*p == '\n')
			lines--;
	}
	if (*p == '\n')
		p++;
	for (line = strtok(p, "\n"); line; line = strtok(NULL, "\n"))
		printf("%s%s\n", prefix, line);
	fflush(stdout);
}

int vt_run_dir(const char *tag, pid_t pid, char dir[static 64],
	       char mem[static 128], char *err, size_t errlen)
{
	char path[160];

	snprintf(dir, 64, "/tmp/vmt-%s.XXXXXX", tag);
	if (!mkdtemp(dir)) {
		vt_set_err(err, errlen, "mkdtemp: %s", strerror(errno));
		dir[0] = '\0';
		return -1;
	}
	snprintf(mem, 128, "/dev/shm/vmt-%s-%d.mem", tag, (int)pid);
	unlink(mem);
	snprintf(path, sizeof(path), "%s.seq", mem);
	unlink(path);
	snprintf(path, sizeof(path), "%s.ctl", mem);
	unlink(path);
	return 0;
}

void vt_run_dir_remove(char *dir, char *mem, const char *const *names,
		       size_t n)
{
	char path[320];

	if (mem[0]) {
		unlink(mem);
		snprintf(path, sizeof(path), "%s.seq", mem);
		unlink(path);
		/* The pager's control socket (QEMU may die before it
		 * removes it). */
		snprintf(path, sizeof(path), "%s.ctl", mem);
		unlink(path);
		mem[0] = '\0';
	}
	if (!dir[0])
		return;
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (unlink(path) < 0)
			rmdir(path);
	}
	rmdir(dir);
	dir[0] = '\0';
}

void vt_vmemfs_stop_all(struct vt_vmemfs *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].pid > 0 || v[i].mnt[0])
			vt_vmemfs_stop(&v[i], 3000);
		memset(&v[i], 0, sizeof(v[i]));
	}
}
