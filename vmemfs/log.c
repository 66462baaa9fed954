// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "../common/timeutil.h"
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
	long now = (long)(vmem_now_ns() / VMEM_NS_PER_S);
	long prev = __atomic_load_n(last_sec, __ATOMIC_RELAXED);

	if (prev == now)
		return false;
	return __atomic_compare_exchange_n(last_sec, &prev, now, false,
					   __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}
