/* SPDX-License-Identifier: MIT */
/*
 * Time and deadlines, the one way the project counts them.
 *
 * Every timeout is measured on CLOCK_MONOTONIC: a step of the wall clock
 * (NTP, an administrator, a VM resumed on another host) must neither cut
 * a wait short nor stretch it.  A deadline is an absolute monotonic time
 * in nanoseconds, made with vmem_deadline_ns().  What is left of it is
 * asked with vmem_ms_left(), which reads the clock once and has the one
 * clamp: 0 when the deadline has passed (never a wrapped huge value),
 * rounded up otherwise (a wait of that long never ends before the
 * deadline), at most INT_MAX (it fits poll() and nbd_poll() and can never
 * become their -1, a wait forever).
 *
 * Timed waits on condition variables use vmem_cond_init_monotonic() and
 * vmem_timespec() of the deadline; a timed mutex uses
 * pthread_mutex_clocklock(CLOCK_MONOTONIC) with vmem_timespec().
 *
 * Users: everything that measures time (pager/, common/nbdconn.c,
 * vmemfs/); nothing keeps a clock helper of its own.
 */
#ifndef VMEM_TIMEUTIL_H
#define VMEM_TIMEUTIL_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define VMEM_NS_PER_MS 1000000ull
#define VMEM_NS_PER_S 1000000000ull

/* Now on CLOCK_MONOTONIC, in nanoseconds. */
static inline uint64_t vmem_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * VMEM_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Now on CLOCK_MONOTONIC, in milliseconds (for rate limits, not waits). */
static inline uint64_t vmem_now_ms(void)
{
	return vmem_now_ns() / VMEM_NS_PER_MS;
}

/* The deadline @timeout_ms from now; UINT64_MAX (never) if that overflows. */
static inline uint64_t vmem_deadline_ns(uint64_t timeout_ms)
{
	uint64_t now = vmem_now_ns();

	if (timeout_ms > (UINT64_MAX - now) / VMEM_NS_PER_MS)
		return UINT64_MAX;
	return now + timeout_ms * VMEM_NS_PER_MS;
}

/*
 * Milliseconds left until @deadline_ns, from one reading of the clock:
 * 0 once it has passed, else rounded up and at most INT_MAX.
 */
static inline int vmem_ms_left(uint64_t deadline_ns)
{
	uint64_t now = vmem_now_ns(), ms;

	if (now >= deadline_ns)
		return 0;
	ms = (deadline_ns - now + VMEM_NS_PER_MS - 1) / VMEM_NS_PER_MS;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* @ns (a monotonic time, such as a deadline) as an absolute timespec. */
static inline struct timespec vmem_timespec(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / VMEM_NS_PER_S),
		.tv_nsec = (long)(ns % VMEM_NS_PER_S),
	};

	return ts;
}

/*
 * A condition variable whose timed waits count on CLOCK_MONOTONIC
 * (pthread_cond_timedwait() takes CLOCK_REALTIME times unless told).
 * Returns 0 or an error number, as pthread_cond_init().
 */
static inline int vmem_cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int e = pthread_condattr_init(&ca);

	if (e)
		return e;
	e = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (e == 0)
		e = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return e;
}

#endif
