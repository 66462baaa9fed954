/* SPDX-License-Identifier: MIT */
/* The end of every Check test program: run the suite, exit 1 on failure. */
#ifndef VMEM_TESTS_SUITE_H
#define VMEM_TESTS_SUITE_H

#include <check.h>

int vt_run_suite(Suite *s);

#endif
