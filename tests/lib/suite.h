/* SPDX-License-Identifier: MIT */
/* The end of every Check test program: run the suite, exit 1 on failure. */
#ifndef VMEM_TESTS_SUITE_H
#define VMEM_TESTS_SUITE_H

#include <check.h>
#include <unistd.h>

int vt_run_suite(Suite *s);

/*
 * A test case @name, added to @s, whose tests may take @timeout_s seconds
 * each (0: Check's default, CK_DEFAULT_TIMEOUT or 4 s); @setup and @teardown (either may be NULL) run as unchecked
 * fixtures (once per case, in the runner: for environments that outlive
 * the forked tests) or checked ones (in each forked test).
 */
TCase *vt_tcase_unchecked(Suite *s, const char *name, void (*setup)(void),
			  void (*teardown)(void), double timeout_s);
TCase *vt_tcase_checked(Suite *s, const char *name, void (*setup)(void),
			void (*teardown)(void), double timeout_s);

/*
 * main() of a program whose tests boot a guest under our QEMU: when the
 * QEMU binary or the test guest is missing, run one test that FAILS,
 * naming what is missing and how to build it (a missing part is never a
 * pass); else set up the runner (vt_runner_env: @size shared bytes handed
 * to @set_env, @down as cleanup), run the suite @make builds, and clean
 * up.
 */
int vt_guest_suite_main(const char *name, Suite *(*make)(void),
			void (*set_env)(void *env), size_t size,
			void (*down)(void));

/*
 * The end of such a program, whose runner state is `static struct env
 * *@env` and `static pid_t @runner` (the runner's pid, for its cleanup
 * to tell the runner from a forked test): set_env and main(), which
 * records @runner and calls vt_guest_suite_main().
 */
#define VT_GUEST_MAIN(name, make, env, runner, down)			\
	static void vt_set_env_(void *e)				\
	{								\
		env = e;						\
	}								\
	int main(void)							\
	{								\
		runner = getpid();					\
		return vt_guest_suite_main(name, make, vt_set_env_,	\
					   sizeof(*env), down);		\
	}

#endif
