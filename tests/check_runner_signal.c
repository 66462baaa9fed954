// SPDX-License-Identifier: MIT
/*
 * The runner's cleanup on SIGINT/SIGTERM/SIGHUP (vt_runner_env in
 * tests/lib/hosts.c).  A cleanup stops daemons, unmounts, deletes
 * namespaces: it needs malloc, stdio, fork.  None of that may run inside
 * the signal handler, which can interrupt the runner while it holds
 * malloc's lock (or stdio's): the cleanup would then deadlock, and the
 * runner would hang with every server it started still running.
 *
 * Each round forks a stand-in runner that sets up vt_runner_env with a
 * cleanup that mallocs and writes a file, starts a thread, and then
 * spends its time in malloc/free; SIGTERM must end it, by SIGTERM, within a bounded time,
 * with its cleanup done.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/hosts.h"
#include "lib/suite.h"

#define ROUNDS 8

static char marker[128];
static pid_t standin;
static void *volatile keep[4];

/* What a real cleanup does: allocate (past the per-thread caches, so
 * from an arena, under its lock), format, write a file. */
static void standin_cleanup(void)
{
	char *p;
	FILE *f;

	if (getpid() != standin)
		return;
	p = malloc(100000);
	if (!p)
		return;
	snprintf(p, 100000, "cleaned up by %d\n", (int)getpid());
	f = fopen(marker, "w");
	if (f) {
		fputs(p, f);
		fclose(f);
	}
	free(p);
}

static void *idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void __attribute__((noreturn)) standin_main(void)
{
	pthread_t t;

	standin = getpid();
	if (!vt_runner_env(64, standin_cleanup))
		_exit(2);
	/*
	 * A runner with a thread of its own (a fake QMP server, say): glibc
	 * then really takes malloc's and stdio's locks, which it skips in a
	 * single-threaded process (there a nested malloc corrupts the heap
	 * instead, which no test can catch reliably).
	 */
	if (pthread_create(&t, NULL, idle_thread, NULL) != 0)
		_exit(3);
	/*
	 * Most of the time in here holds the malloc arena's lock (in brk,
	 * growing and trimming the heap).  The blocks are kept a while so
	 * that the compiler cannot drop the malloc/free pair.
	 */
	for (unsigned int i = 0;; i++) {
		void *p = malloc(65536 + (i % 7) * 4096);

		if (p)
			memset(p, (int)i, 64);
		free(keep[i % 4]);
		keep[i % 4] = p;
	}
}

START_TEST(test_cleanup_runs_outside_the_handler)
{
	for (int round = 0; round < ROUNDS; round++) {
		pid_t pid;
		int ws;

		snprintf(marker, sizeof(marker), "/tmp/vmt-%d-signal.done",
			 (int)getpid());
		unlink(marker);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			standin_main();
		vt_sleep_ms(100 + 37 * round);
		ck_assert_int_eq(kill(pid, SIGTERM), 0);
		ws = vt_wait_pid(pid, 10000);
		if (ws == -1) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			unlink(marker);
		}
		ck_assert_msg(ws != -1, "round %d: the runner did not end "
			      "within 10 s of SIGTERM (its cleanup hung in "
			      "the signal handler)", round);
		ck_assert_msg(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGTERM,
			      "round %d: runner's status 0x%x, want killed by "
			      "SIGTERM", round, ws);
		ck_assert_msg(access(marker, F_OK) == 0,
			      "round %d: the cleanup did not run", round);
		unlink(marker);
	}
}
END_TEST

static Suite *signal_suite(void)
{
	Suite *s = suite_create("runner-signal");

	tcase_add_test(vt_tcase_unchecked(s, "cleanup", NULL, NULL, 120),
		       test_cleanup_runs_outside_the_handler);
	return s;
}

int main(void)
{
	return vt_run_suite(signal_suite());
}
