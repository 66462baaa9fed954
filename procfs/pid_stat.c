// SPDX-License-Identifier: MIT
/*
 * /proc/PID/stat, in the field order of the kernel's do_task_stat (Linux
 * 6.1): the fields an unprivileged reader of another user's process gets
 * are the ones a root reader of the guest's own /proc would see:
 * kstkesp/kstkeip are 0 as the kernel shows them unless the task is
 * dumping core, wchan only says whether the task sleeps, as in 6.1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "views.h"

char *vp_pid_stat(const struct vp_snapshot *s, const struct vp_task *t,
		  size_t *len)
{
	unsigned long long vsize = t->has_mm ? t->total_vm * 4096 : 0;
	unsigned long long rss = t->has_mm ?
		t->rss[0] + t->rss[1] + t->rss[3] : 0;
	/* 6.1 shows only whether it sleeps, and for a whole process only
	 * when it has one thread */
	int wchan = (t->is_thread || t->num_threads < 2) && t->state != 'R';
	char *buf = NULL;
	FILE *f;

	(void)s;
	f = open_memstream(&buf, len);
	if (!f)
		return NULL;
	fprintf(f, "%d (%s) %c %d %d %d %d %d %u %llu %llu %llu %llu",
		t->pid, t->comm, t->state, t->ppid, t->pgrp, t->sid,
		t->tty_nr, t->tty_pgrp, t->flags,
		(unsigned long long)t->min_flt,
		(unsigned long long)t->cmin_flt,
		(unsigned long long)t->maj_flt,
		(unsigned long long)t->cmaj_flt);
	fprintf(f, " %llu %llu %lld %lld %d %d %d 0 %llu %llu %llu %llu",
		vp_clock_t(t->utime), vp_clock_t(t->stime),
		(long long)vp_clock_t(t->cutime),
		(long long)vp_clock_t(t->cstime), t->prio, t->nice,
		t->num_threads, vp_clock_t(t->start_boottime), vsize, rss,
		(unsigned long long)t->rsslim);
	fprintf(f, " %llu %llu %llu 0 0 %llu %llu %llu %llu %d 0 0 %d %d %u %u 0"
		" %llu %lld",
		t->has_mm ? (unsigned long long)t->start_code : 0,
		t->has_mm ? (unsigned long long)t->end_code : 0,
		t->has_mm ? (unsigned long long)t->start_stack : 0,
		(unsigned long long)(t->sig_pending & 0x7fffffffULL),
		(unsigned long long)(t->sig_blocked & 0x7fffffffULL),
		(unsigned long long)(t->sig_ignored & 0x7fffffffULL),
		(unsigned long long)(t->sig_caught & 0x7fffffffULL),
		wchan, t->exit_signal, t->cpu, t->rt_priority, t->policy,
		vp_clock_t(t->gtime), (long long)vp_clock_t(t->cgtime));
	if (t->has_mm)
		fprintf(f, " %llu %llu %llu %llu %llu %llu %llu",
			(unsigned long long)t->start_data,
			(unsigned long long)t->end_data,
			(unsigned long long)t->start_brk,
			(unsigned long long)t->arg_start,
			(unsigned long long)t->arg_end,
			(unsigned long long)t->env_start,
			(unsigned long long)t->env_end);
	else
		fputs(" 0 0 0 0 0 0 0", f);
	fprintf(f, " %d\n", t->exit_code);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

char *vp_caller_stat(int pid, const char *comm, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	int i;

	if (!f)
		return NULL;
	/* A running task with no tty, no times, nothing mapped. */
	fprintf(f, "%d (%.15s) R 0 %d %d 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0",
		pid, comm, pid, pid);
	for (i = 22; i <= 52; i++)
		fputs(" 0", f);
	fputc('\n', f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

char *vp_pid_statm(const struct vp_task *t, size_t *len)
{
	unsigned long long size = 0, resident = 0, shared = 0, text = 0;
	unsigned long long data = 0;
	char *buf = NULL;
	int n;

	if (t->has_mm) {
		shared = t->rss[0] + t->rss[3];	/* file + shmem */
		resident = shared + t->rss[1];	/* + anon */
		if (t->end_code > t->start_code)
			text = (((t->end_code + 4095) & ~4095ULL) -
				(t->start_code & ~4095ULL)) >> 12;
		data = t->data_vm + t->stack_vm;
		size = t->total_vm;
	}
	n = asprintf(&buf, "%llu %llu %llu %llu 0 %llu 0\n", size, resident,
		     shared, text, data);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return buf;
}

char *vp_pid_comm(const struct vp_task *t, size_t *len)
{
	char *buf = NULL;
	int n = asprintf(&buf, "%s\n", t->comm);

	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return buf;
}
