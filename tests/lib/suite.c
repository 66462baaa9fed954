// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <unistd.h>

#include "guest.h"
#include "hosts.h"
#include "suite.h"

int vt_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

static const char *skip_name;

START_TEST(test_skipped)
{
	printf("SKIP: %s: %s missing (run scripts/build-qemu.sh)\n", skip_name,
	       vt_qemu_bin());
}
END_TEST

int vt_guest_suite_main(const char *name, Suite *(*make)(void),
			void (*set_env)(void *env), size_t size,
			void (*down)(void))
{
	void *env;
	Suite *s;
	int rc;

	if (access(vt_qemu_bin(), X_OK) != 0) {
		TCase *tc = tcase_create("skipped");

		skip_name = name;
		printf("SKIP: %s: %s missing (run scripts/build-qemu.sh)\n", name,
		       vt_qemu_bin());
		s = suite_create(name);
		tcase_add_test(tc, test_skipped);
		suite_add_tcase(s, tc);
		return vt_run_suite(s);
	}
	env = vt_runner_env(size, down);
	if (!env)
		return 1;
	set_env(env);
	rc = vt_run_suite(make());
	down();
	return rc;
}
