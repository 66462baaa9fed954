// SPDX-License-Identifier: MIT
/*
 * vmt-procs: the test guest's process and socket zoo, for the shadow
 * /proc tests (check_qemu_proc) and the sockets tests.  Built static on
 * the host (scripts/guest/build-guest.sh) and installed in the initramfs
 * as /bin/vmt-procs.
 *
 *   vmt-procs start      bring lo up, start the zoo (below), print one
 *                        "VMT-PROC NAME PID" line per process, then
 *                        "VMT-PROCS-READY" and exit 0 (the zoo lives on,
 *                        reparented to init)
 *   vmt-procs forkloop   fork and reap short-lived children forever
 *                        (each exits at once); for ps-while-forking
 *   vmt-procs stop       kill every zoo process (by the pids remembered in
 *                        /tmp/vmt-procs.pids)
 *   vmt-procs spin MS STEP_MS
 *                        count in a tight loop for MS ms of the guest's
 *                        CLOCK_MONOTONIC, then print the count of every
 *                        STEP_MS step, one per line (bench_qemu (c): does
 *                        the guest keep running while a page-in runs?);
 *                        its start (CLOCK_MONOTONIC ms) goes to
 *                        /tmp/spin.t0 first
 *   vmt-procs now        print CLOCK_MONOTONIC in ms (to line the host's
 *                        clock up with the guest's)
 *
 * The zoo (comm is set with PR_SET_NAME; every process re-executes this
 * binary, so /proc/PID/cmdline is its own argv):
 *   vmt-long      uid 0, 64 arguments "vmt-arg-NN-...", env VMT_ENV=...
 *   vmt-threads   uid 0, 4 threads in all (3 extra, named vmt-thr-N)
 *   vmt-user      uid/gid 1000; TCP listener 127.0.0.1:7006, UDP
 *                 127.0.0.1:7007
 *   vmt-root      uid 0, plain sleeper
 *   vmt-net       uid 0; TCP listeners 127.0.0.1:7001, [::1]:7002 (v6
 *                 only), [::]:7003 (dual stack); an established loopback
 *                 TCP connection 127.0.0.1:<ephemeral> -> 127.0.0.1:7001
 *                 (both ends in this process); UDP bound 127.0.0.1:7004
 *                 and [::1]:7005
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define SELF "/bin/vmt-procs"
#define PIDS "/tmp/vmt-procs.pids"
#define NLONG 64

static void die(const char *what)
{
	fprintf(stderr, "vmt-procs: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	if (s < 0)
		die("socket");
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		die("SIOCGIFFLAGS lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		die("SIOCSIFFLAGS lo");
	close(s);
}

static int sock4(int type, int port, int do_listen)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int one = 1, s = socket(AF_INET, type, 0);

	if (s < 0)
		die("socket");
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind4");
	if (do_listen && listen(s, 8) < 0)
		die("listen4");
	return s;
}

static int sock6(int type, int port, int any, int v6only, int do_listen)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
	int one = 1, s = socket(AF_INET6, type, 0);

	if (s < 0)
		die("socket6");
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	a.sin6_port = htons((unsigned short)port);
	a.sin6_addr = any ? in6addr_any : in6addr_loopback;
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind6");
	if (do_listen && listen(s, 8) < 0)
		die("listen6");
	return s;
}

static void *thread_main(void *arg)
{
	char name[16];

	snprintf(name, sizeof(name), "vmt-thr-%d", (int)(long)arg);
	prctl(PR_SET_NAME, name);
	for (;;)
		pause();
	return NULL;
}

/* One zoo process, after the re-exec: argv[2] is its role. */
static __attribute__((noreturn)) void child(int argc, char **argv)
{
	const char *role = argv[2];
	char comm[16];
	int ready = 3;	/* the pipe end the parent waits on */

	(void)argc;
	snprintf(comm, sizeof(comm), "%s", role);
	prctl(PR_SET_NAME, comm);
	if (strcmp(role, "vmt-user") == 0) {
		if (setgroups(0, NULL) < 0 || setgid(1000) < 0 ||
		    setuid(1000) < 0)
			die("setuid 1000");
		sock4(SOCK_STREAM, 7006, 1);
		sock4(SOCK_DGRAM, 7007, 0);
	} else if (strcmp(role, "vmt-threads") == 0) {
		pthread_t t;
		long i;

		for (i = 1; i <= 3; i++)
			if (pthread_create(&t, NULL, thread_main, (void *)i))
				die("pthread_create");
	} else if (strcmp(role, "vmt-net") == 0) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		int l = sock4(SOCK_STREAM, 7001, 1), c;

		sock6(SOCK_STREAM, 7002, 0, 1, 1);
		sock6(SOCK_STREAM, 7003, 1, 0, 1);
		sock4(SOCK_DGRAM, 7004, 0);
		sock6(SOCK_DGRAM, 7005, 0, 1, 0);
		c = socket(AF_INET, SOCK_STREAM, 0);
		a.sin_port = htons(7001);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
			die("connect 7001");
		if (accept(l, NULL, NULL) < 0)
			die("accept 7001");
	}
	if (write(ready, "r", 1) != 1)
		die("ready pipe");
	close(ready);
	for (;;)
		pause();
}

static pid_t spawn(const char *role, FILE *pids)
{
	static char *env[] = { "VMT_ENV=vmt-environment-value", "PATH=/bin",
			       NULL };
	char *args[NLONG + 4], store[NLONG][40], c;
	int p[2], i, n = 0;
	pid_t pid;

	if (pipe(p) < 0)
		die("pipe");
	args[n++] = (char *)SELF;
	args[n++] = (char *)"child";
	args[n++] = (char *)role;
	if (strcmp(role, "vmt-long") == 0)
		for (i = 0; i < NLONG; i++) {
			snprintf(store[i], sizeof(store[i]),
				 "vmt-arg-%02d-abcdefghijklmnopqrstuvwxyz", i);
			args[n++] = store[i];
		}
	args[n] = NULL;
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(p[0]);
		if (p[1] != 3) {
			dup2(p[1], 3);
			close(p[1]);
		}
		setsid();
		execve(SELF, args, env);
		die("execve " SELF);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1) {
		fprintf(stderr, "vmt-procs: %s did not start\n", role);
		exit(1);
	}
	close(p[0]);
	printf("VMT-PROC %s %d\n", role, (int)pid);
	fprintf(pids, "%d\n", (int)pid);
	return pid;
}

static int start(void)
{
	static const char *const roles[] = { "vmt-long", "vmt-threads",
					     "vmt-user", "vmt-root",
					     "vmt-net" };
	FILE *pids = fopen(PIDS, "a");
	size_t i;

	if (!pids)
		die(PIDS);
	lo_up();
	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		spawn(roles[i], pids);
	fclose(pids);
	printf("VMT-PROCS-READY\n");
	return 0;
}

static __attribute__((noreturn)) void forkloop(void)
{
	prctl(PR_SET_NAME, "vmt-forkloop");
	for (;;) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
}

static int stop(void)
{
	FILE *pids = fopen(PIDS, "r");
	int pid;

	if (!pids)
		return 0;
	while (fscanf(pids, "%d", &pid) == 1)
		kill(pid, SIGKILL);
	fclose(pids);
	unlink(PIDS);
	return 0;
}

static int spin(long ms, long step_ms)
{
	long nsteps = step_ms > 0 ? ms / step_ms : 0;
	unsigned long *counts;
	struct timespec t0, t;
	volatile unsigned long n = 0;

	if (nsteps <= 0 || nsteps > 100000)
		return 2;
	counts = calloc((size_t)nsteps, sizeof(*counts));
	if (!counts)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	{
		FILE *f = fopen("/tmp/spin.t0", "w");

		if (!f)
			return 1;
		fprintf(f, "%ld\n", (long)t0.tv_sec * 1000 +
			t0.tv_nsec / 1000000);
		fclose(f);
	}
	for (;;) {
		long el, k;

		for (int i = 0; i < 4096; i++)
			n++;
		clock_gettime(CLOCK_MONOTONIC, &t);
		el = (t.tv_sec - t0.tv_sec) * 1000 +
		     (t.tv_nsec - t0.tv_nsec) / 1000000;
		k = el / step_ms;
		if (k >= nsteps)
			break;
		counts[k] += 4096;
	}
	for (long k = 0; k < nsteps; k++)
		printf("%lu\n", counts[k]);
	free(counts);
	(void)n;
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "child") == 0)
		child(argc, argv);
	if (argc == 2 && strcmp(argv[1], "start") == 0)
		return start();
	if (argc == 2 && strcmp(argv[1], "forkloop") == 0)
		forkloop();
	if (argc == 2 && strcmp(argv[1], "stop") == 0)
		return stop();
	if (argc == 2 && strcmp(argv[1], "now") == 0) {
		struct timespec t;

		clock_gettime(CLOCK_MONOTONIC, &t);
		printf("%ld\n", (long)t.tv_sec * 1000 + t.tv_nsec / 1000000);
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "spin") == 0)
		return spin(atol(argv[2]), atol(argv[3]));
	fprintf(stderr, "usage: vmt-procs start|forkloop|stop|spin MS STEP|"
		"now\n");
	return 2;
}
