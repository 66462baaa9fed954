/* SPDX-License-Identifier: MIT */
/*
 * Messages from the daemon: to stderr while it has one, to syslog once it
 * has daemonized (stderr is /dev/null then).  Rate-limited helpers keep a
 * dead sub-host from flooding the log with one line per read.
 */
#ifndef VMEMFS_LOG_H
#define VMEMFS_LOG_H

#include <stdbool.h>
#include <syslog.h>

void vmem_log_to_syslog(const char *ident);
void vmem_log(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Log at most once per second per call site. */
#define vmem_log_ratelimited(prio, ...) do {				\
	static long last_sec_;						\
	if (vmem_log_should(&last_sec_))				\
		vmem_log(prio, __VA_ARGS__);				\
} while (0)
bool vmem_log_should(long *last_sec);

#endif
