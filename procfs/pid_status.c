// SPDX-License-Identifier: MIT
/*
 * /proc/PID/status in the kernel's order and format (Linux 6.1,
 * fs/proc/array.c: task_name, task_state, task_mem, task_sig): Name
 * through NSsid (without FDSize and Groups), VmPeak through VmSwap,
 * Threads and the signal masks SigPnd..SigCgt.  CoreDumping,
 * THP_enabled, SigQ, the capability, seccomp, speculation and cpuset
 * lines are not in the snapshot and not shown; the context switch
 * counts are, as the last two lines.
 */
#include <stdio.h>
#include <stdlib.h>

#include "views.h"

static const char *const state_names[] = {
	"R (running)", "S (sleeping)", "D (disk sleep)", "T (stopped)",
	"t (tracing stop)", "X (dead)", "Z (zombie)", "P (parked)",
	"I (idle)",
};

/* seq_put_decimal_ull_width(m, str, pages << 2, 8): kB, width 8 */
static void kb(FILE *f, const char *name, unsigned long long pages)
{
	fprintf(f, "%s:\t%8llu kB\n", name, pages * 4);
}

static void sigset(FILE *f, const char *name, unsigned long long set)
{
	fprintf(f, "%s:\t%016llx\n", name, set);
}

char *vp_pid_status(const struct vp_snapshot *s, const struct vp_task *t,
		    size_t *len)
{
	char *buf = NULL;
	FILE *f;
	const char *c;

	(void)s;
	f = open_memstream(&buf, len);
	if (!f)
		return NULL;
	fputs("Name:\t", f);
	for (c = t->comm; *c; c++) {	/* task_name's escapes */
		if (*c == '\\')
			fputs("\\\\", f);
		else if (*c == '\n')
			fputs("\\n", f);
		else
			fputc(*c, f);
	}
	fputc('\n', f);
	if (t->umask >= 0)
		fprintf(f, "Umask:\t%04o\n", (unsigned int)t->umask);
	fprintf(f, "State:\t%s\n", state_names[t->state_idx < 9 ?
					       t->state_idx : 0]);
	fprintf(f, "Tgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t%d\nTracerPid:\t0\n",
		t->tgid, t->pid, t->ppid);
	fprintf(f, "Uid:\t%u\t%u\t%u\t%u\n", t->uid[0], t->uid[1], t->uid[2],
		t->uid[3]);
	fprintf(f, "Gid:\t%u\t%u\t%u\t%u\n", t->gid[0], t->gid[1], t->gid[2],
		t->gid[3]);
	fprintf(f, "NStgid:\t%d\nNSpid:\t%d\nNSpgid:\t%d\nNSsid:\t%d\n",
		t->tgid, t->pid, t->pgrp, t->sid);
	if (t->has_mm) {
		unsigned long long rss = t->rss[0] + t->rss[1] + t->rss[3];
		unsigned long long hwm = t->hiwater_rss > rss ?
					 t->hiwater_rss : rss;
		unsigned long long peak = t->hiwater_vm > t->total_vm ?
					  t->hiwater_vm : t->total_vm;
		unsigned long long text = 0, lib;

		if (t->end_code > t->start_code)
			text = ((t->end_code + 4095) & ~4095ULL) -
			       (t->start_code & ~4095ULL);
		lib = t->exec_vm * 4096 > text ? t->exec_vm * 4096 - text : 0;
		kb(f, "VmPeak", peak);
		kb(f, "VmSize", t->total_vm);
		kb(f, "VmLck", t->locked_vm);
		kb(f, "VmPin", t->pinned_vm);
		kb(f, "VmHWM", hwm);
		kb(f, "VmRSS", rss);
		kb(f, "RssAnon", t->rss[1]);
		kb(f, "RssFile", t->rss[0]);
		kb(f, "RssShmem", t->rss[3]);
		kb(f, "VmData", t->data_vm);
		kb(f, "VmStk", t->stack_vm);
		fprintf(f, "VmExe:\t%8llu kB\n", text >> 10);
		fprintf(f, "VmLib:\t%8llu kB\n", lib >> 10);
		fprintf(f, "VmPTE:\t%8llu kB\n",
			(unsigned long long)t->pgtables_bytes >> 10);
		kb(f, "VmSwap", t->rss[2]);
	}
	fprintf(f, "Threads:\t%d\n", t->num_threads);
	sigset(f, "SigPnd", t->sig_pending);
	sigset(f, "ShdPnd", t->sig_shpending);
	sigset(f, "SigBlk", t->sig_blocked);
	sigset(f, "SigIgn", t->sig_ignored);
	sigset(f, "SigCgt", t->sig_caught);
	fprintf(f, "voluntary_ctxt_switches:\t%llu\n"
		"nonvoluntary_ctxt_switches:\t%llu\n",
		(unsigned long long)t->nvcsw, (unsigned long long)t->nivcsw);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
