/* SPDX-License-Identifier: MIT */
/*
 * The shadow /proc's file formatters: each turns a snapshot (snapshot.h)
 * into the bytes the guest kernel's own file would hold, same fields, same
 * order, same header lines.  They only read the snapshot.  Each returns a
 * malloc'd buffer (length in *@len; NUL-terminated for text files) or
 * NULL on allocation failure.
 *
 *   pid_stat.c     /proc/PID/stat (fs/proc/array.c do_task_stat, 52
 *                  fields), statm, comm, and the minimal stat of a host
 *                  caller
 *   pid_status.c   /proc/PID/status (every line of 6.1's proc_pid_status)
 *   pid_cmdline.c  /proc/PID/cmdline and environ
 *   sys_stat.c     /proc/stat, uptime, meminfo, cpuinfo, loadavg,
 *                  tty/drivers
 */
#ifndef VMT_PROCFS_VIEWS_H
#define VMT_PROCFS_VIEWS_H

#include <stddef.h>

#include "snapshot.h"

char *vp_pid_stat(const struct vp_snapshot *s, const struct vp_task *t,
		  size_t *len);
/* The host process @pid (not a guest one) that reads its own /proc/PID:
 * procps needs it to parse; @comm is its name on the host. */
char *vp_caller_stat(int pid, const char *comm, size_t *len);
char *vp_pid_status(const struct vp_snapshot *s, const struct vp_task *t,
		    size_t *len);
/* /proc/PID/statm (task_statm) and /proc/PID/comm (the name, newline) */
char *vp_pid_statm(const struct vp_task *t, size_t *len);
char *vp_pid_comm(const struct vp_task *t, size_t *len);
char *vp_pid_cmdline(const struct vp_task *t, size_t *len);
char *vp_pid_environ(const struct vp_task *t, size_t *len);

char *vp_sys_stat(const struct vp_snapshot *s, size_t *len);
char *vp_sys_uptime(const struct vp_snapshot *s, size_t *len);
char *vp_sys_meminfo(const struct vp_snapshot *s, size_t *len);
char *vp_sys_cpuinfo(const struct vp_snapshot *s, size_t *len);
char *vp_sys_loadavg(const struct vp_snapshot *s, size_t *len);
char *vp_sys_tty_drivers(const struct vp_snapshot *s, size_t *len);

/* USER_HZ ticks, as nsec_to_clock_t. */
static inline unsigned long long vp_clock_t(unsigned long long ns)
{
	return ns / 10000000ULL;
}

#endif
