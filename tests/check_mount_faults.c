// SPDX-License-Identifier: MIT
/*
 * Sub-host failures under a real vmemfs mount (the mount fixture,
 * tests/lib/mount.h): a sub-host killed, stopped (SIGSTOP: it hangs
 * without closing anything) and cut off (its link down: packets vanish).
 * Each read of its range must fail with EIO within the configured
 * timeout, every other range must still read right, and the range must
 * recover once the sub-host is back.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/mount.h"

static void setup_faults(void)
{
	/* No cache: every read below must really go to the sub-host. */
	struct mt_opts o = MT_OPTS("faults");

	o.cache_size = 0;
	o.timeout_ms = 1000;
	o.with_seq = false;
	mt_env_up(&o);
}

/* pread one page; returns 0 or errno, and the time it took. */
static int timed_read(int fd, uint64_t off, size_t len, double *ms,
		      bool verify_data)
{
	uint8_t *buf = malloc(len);
	double t0 = vt_now_ms();
	ssize_t n = pread(fd, buf, len, off);
	int e = n < 0 ? errno : 0;
	uint64_t bad;

	*ms = vt_now_ms() - t0;
	if (n >= 0 && n != (ssize_t)len)
		e = -1;
	if (e == 0 && verify_data && !mt_verify(buf, off, len, &bad))
		e = -2;
	free(buf);
	return e;
}

/* Local, no-home and other-sub-host ranges still read right. */
static void others_still_work(int fd, int dead)
{
	double ms;
	int e;

	e = timed_read(fd, 20 * MiB + 123, 200 * KiB, &ms, true);
	ck_assert_msg(e == 0, "local read failed (%d) with sub-host %d down",
		      e, dead);
	ck_assert_msg(ms < 500, "local read took %.0f ms with sub-host down",
		      ms);
	e = timed_read(fd, 161 * MiB + 77, 300 * KiB, &ms, true);
	ck_assert_msg(e == 0, "no-home read failed (%d) with sub-host %d down",
		      e, dead);
	e = timed_read(fd, dead ? 101 * MiB + 5 : 230 * MiB + 5, 256 * KiB,
		       &ms, true);
	ck_assert_msg(e == 0, "read from the live sub-host failed (%d)", e);
	/* A local page inside the dead one's home: needs no sub-host. */
	e = timed_read(fd, dead ? RUN1_START : RUN0_START, 12 * KiB, &ms, true);
	ck_assert_msg(e == 0, "local run inside dead home failed (%d)", e);
}

/* Poll a read of [off, off+len) until it succeeds and verifies. */
static double wait_recovery(int fd, uint64_t off, size_t len,
			    double limit_ms)
{
	double t0 = vt_now_ms(), ms;

	for (;;) {
		if (timed_read(fd, off, len, &ms, true) == 0)
			return vt_now_ms() - t0;
		ck_assert_msg(vt_now_ms() - t0 < limit_ms,
			      "sub-host range did not recover within %.0f ms",
			      limit_ms);
		vt_sleep_ms(50);
	}
}

/*
 * Open mem once the environment is up, and see the remote range at @off
 * (of a sub-host that is still up) read right.
 */
static int open_mem_up(uint64_t off)
{
	double ms;
	int fd;

	REQUIRE_ENV();
	fd = open(mt_path("mem"), O_RDONLY);
	ck_assert_msg(fd >= 0, "open mem: %s", strerror(errno));
	ck_assert_int_eq(timed_read(fd, off, 300 * KiB, &ms, true), 0);
	return fd;
}

START_TEST(test_subhost_killed)
{
	const double slack = 1000;
	double to, ms, worst = 0, rec;
	char err[512];
	int fd, e;

	/* Up: a remote range of sub-host 0 reads right. */
	fd = open_mem_up(110 * MiB + 9);
	to = E->opt.timeout_ms;

	vt_nbdkit_kill(&E->sub[0]);
	/* Different chunks each time: nothing can come from a cache. */
	for (int i = 0; i < 3; i++) {
		e = timed_read(fd, (112 + i) * MiB + 4 * KiB, 8 * KiB, &ms, false);
		ck_assert_msg(e == EIO, "read of a dead sub-host's range: %s",
			      e > 0 ? strerror(e) : e == 0 ? "succeeded" : "short");
		ck_assert_msg(ms <= to + slack,
			      "EIO after %.0f ms; timeout is %.0f ms", ms, to);
		if (ms > worst)
			worst = ms;
	}
	printf("info: killed sub-host: EIO after at most %.1f ms (timeout %.0f ms)\n",
	       worst, to);
	others_still_work(fd, 0);

	/* Restart it on the same address; the daemon must reconnect. */
	ck_assert_msg(mt_start_subhost(0, false, err, sizeof(err)) == 0,
		      "restart sub-host 0: %s", err);
	rec = wait_recovery(fd, 115 * MiB + 4 * KiB, 64 * KiB, 5000 + to);
	printf("info: killed sub-host restarted: reads recovered after %.0f ms\n",
	       rec);
	mt_read_verify(fd, SUB0_START, SUB0_END - SUB0_START);
	close(fd);
}
END_TEST

START_TEST(test_subhost_stopped)
{
	const double slack = 1000;
	double to, ms, worst = 0, best = 1e9, rec;
	int fd, e;

	fd = open_mem_up(230 * MiB + 9);
	to = E->opt.timeout_ms;

	ck_assert_int_eq(vt_stop_pid(E->sub[1].pid, 2000), 0);
	for (int i = 0; i < 2; i++) {
		e = timed_read(fd, (232 + i) * MiB + 4 * KiB, 8 * KiB, &ms, false);
		if (e != EIO)
			kill(E->sub[1].pid, SIGCONT);
		ck_assert_msg(e == EIO, "read of a hung sub-host's range: %s",
			      e > 0 ? strerror(e) : e == 0 ? "succeeded" : "short");
		if (ms > to + slack)
			kill(E->sub[1].pid, SIGCONT);
		ck_assert_msg(ms <= to + slack,
			      "EIO after %.0f ms; timeout is %.0f ms", ms, to);
		worst = ms > worst ? ms : worst;
		best = ms < best ? ms : best;
	}
	printf("info: hung sub-host: EIO after %.1f..%.1f ms (timeout %.0f ms)\n",
	       best, worst, to);
	others_still_work(fd, 1);
	ck_assert_int_eq(kill(E->sub[1].pid, SIGCONT), 0);
	rec = wait_recovery(fd, 235 * MiB + 4 * KiB, 64 * KiB, 5000 + to);
	printf("info: hung sub-host continued: reads recovered after %.0f ms\n",
	       rec);
	mt_read_verify(fd, SUB1_START, SUB1_END - SUB1_START);
	close(fd);
}
END_TEST

static void set_link(const char *ns, const char *dev, bool up)
{
	char err[256];
	char *argv[] = { "ip", "-n", (char *)ns, "link", "set", (char *)dev,
			 up ? "up" : "down", NULL };
	int rc = vt_run(argv, NULL, 0, err, sizeof(err), 5000);

	ck_assert_msg(rc == 0, "ip link set %s %s: %s", dev,
		      up ? "up" : "down", err);
}

START_TEST(test_subhost_unreachable)
{
	/*
	 * The sub-host's end of the link goes down: its packets vanish (no
	 * RST, no ICMP), so only the timeout can answer.
	 */
	const double slack = 1000;
	double to, ms, worst = 0, rec;
	int fd, e;

	/* Not a skip: without namespaces this test fails, unless asked. */
	ck_assert_msg(mt_use_netns, "needs network namespaces: %s", mt_netns_err);
	fd = open_mem_up(140 * MiB + 9);
	to = E->opt.timeout_ms;

	set_link(mt_netns[0].name, mt_netns[0].veth_ns, false);
	for (int i = 0; i < 2; i++) {
		e = timed_read(fd, (141 + i) * MiB + 4 * KiB, 8 * KiB, &ms, false);
		if (e != EIO || ms > to + slack)
			set_link(mt_netns[0].name, mt_netns[0].veth_ns, true);
		ck_assert_msg(e == EIO, "read of an unreachable sub-host's range: %s",
			      e > 0 ? strerror(e) : e == 0 ? "succeeded" : "short");
		ck_assert_msg(ms <= to + slack,
			      "EIO after %.0f ms; timeout is %.0f ms", ms, to);
		worst = ms > worst ? ms : worst;
	}
	printf("info: unreachable sub-host: EIO after at most %.1f ms (timeout %.0f ms)\n",
	       worst, to);
	others_still_work(fd, 0);
	set_link(mt_netns[0].name, mt_netns[0].veth_ns, true);
	rec = wait_recovery(fd, 143 * MiB + 4 * KiB, 64 * KiB, 8000 + to);
	printf("info: unreachable sub-host back: reads recovered after %.0f ms\n",
	       rec);
	mt_read_verify(fd, SUB0_START, SUB0_END - SUB0_START);
	close(fd);
}
END_TEST

/* ---- main ----------------------------------------------------------- */

static Suite *faults_suite(void)
{
	Suite *s = suite_create("mount");
	TCase *tc;

	tc = vt_tcase_unchecked(s, "faults", setup_faults, mt_env_down, 40);
	tcase_add_test(tc, test_subhost_killed);
	tcase_add_test(tc, test_subhost_stopped);
	/* needs a link of its own to cut; VMT_NO_NETNS=1 leaves it out */
	if (!getenv("VMT_NO_NETNS"))
		tcase_add_test(tc, test_subhost_unreachable);
	return s;
}

int main(void)
{
	return mt_main(faults_suite);
}
