// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "log.h"

static bool use_syslog;

void vmem_log_to_syslog(const char *ident)
{
	openlog(ident, LOG_PID | LOG_CONS, LOG_DAEMON);
	use_syslog = true;
}

void vmem_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (use_syslog) {
		vsyslog(prio, fmt, ap);
	} else {
		flockfile(stderr);
		fputs("vmemfs: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		funlockfile(stderr);
	}
	va_end(ap);
}

bool vmem_log_should(long *last_sec)
{
	struct timespec ts;
	long prev;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	prev = __atomic_load_n(last_sec, __ATOMIC_RELAXED);
	if (prev == ts.tv_sec)
		return false;
	return __atomic_compare_exchange_n(last_sec, &prev, ts.tv_sec, false,
					   __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}
