// SPDX-License-Identifier: MIT
#include <limits.h>
#include <stdbool.h>
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

static TCase *tcase(Suite *s, const char *name, bool checked,
		    void (*setup)(void), void (*teardown)(void),
		    double timeout_s)
{
	TCase *tc = tcase_create(name);

	if (timeout_s > 0)
		tcase_set_timeout(tc, timeout_s);
	if (checked && (setup || teardown))
		tcase_add_checked_fixture(tc, setup, teardown);
	else if (setup || teardown)
		tcase_add_unchecked_fixture(tc, setup, teardown);
	suite_add_tcase(s, tc);
	return tc;
}

TCase *vt_tcase_unchecked(Suite *s, const char *name, void (*setup)(void),
			  void (*teardown)(void), double timeout_s)
{
	return tcase(s, name, false, setup, teardown, timeout_s);
}

TCase *vt_tcase_checked(Suite *s, const char *name, void (*setup)(void),
			void (*teardown)(void), double timeout_s)
{
	return tcase(s, name, true, setup, teardown, timeout_s);
}

/* What a guest-booting program needs and is missing, for the failing test. */
static char missing[PATH_MAX + 256];

START_TEST(test_missing)
{
	ck_abort_msg("%s", missing);
}
END_TEST

/*
 * Everything a guest test needs from outside the tree, with the command
 * that builds it.  Returns 0 when all is there, else -1 with @missing set.
 */
static int find_parts(const char *name)
{
	static const char *const guest_files[] = {
		"vmlinuz", "initramfs.cpio.gz",
	};
	char path[PATH_MAX];
	size_t i;

	if (access(vt_qemu_bin(), X_OK) != 0) {
		snprintf(missing, sizeof(missing), "%s: patched QEMU %s is "
			 "missing: build it with `make check` or "
			 "scripts/build-qemu.sh (or set VMEM_QEMU)", name,
			 vt_qemu_bin());
		return -1;
	}
	for (i = 0; i < sizeof(guest_files) / sizeof(guest_files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", vt_guest_dir(),
			 guest_files[i]);
		if (access(path, R_OK) != 0) {
			snprintf(missing, sizeof(missing), "%s: test guest %s "
				 "is missing: build it with `make check` or "
				 "scripts/guest/build-guest.sh", name, path);
			return -1;
		}
	}
	return 0;
}

int vt_guest_suite_main(const char *name, Suite *(*make)(void),
			void (*set_env)(void *env), size_t size,
			void (*down)(void))
{
	void *env;
	Suite *s;
	int rc;

	if (find_parts(name) < 0) {
		TCase *tc = tcase_create("prerequisites");

		printf("FAIL: %s\n", missing);
		s = suite_create(name);
		tcase_add_test(tc, test_missing);
		suite_add_tcase(s, tc);
		vt_run_suite(s);
		return 1;
	}
	env = vt_runner_env(size, down);
	if (!env)
		return 1;
	set_env(env);
	rc = vt_run_suite(make());
	down();
	return rc;
}
