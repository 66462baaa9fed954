// SPDX-License-Identifier: MIT
/*
 * /proc/PID/status in the kernel's order and format (Linux 6.1,
 * fs/proc/array.c proc_pid_status: task_name, task_state, task_mem with
 * hugetlb_report_usage, task_core_dumping, task_thp_status, task_sig,
 * task_cap, task_seccomp, task_cpus_allowed, cpuset_task_status_allowed,
 * task_context_switch_counts), every line.  Approximations: Ngid is
 * always 0 (NUMA balancing groups are not read); NStgid..NSsid show the
 * initial namespace only, as the monitor sees it; the speculation lines
 * follow bugs.c's logic from the guest's mitigation modes and bug bits,
 * "unknown" when those cannot be read.
 */
#include <stdbool.h>
#include <stdint.h>
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

static bool bit(const uint64_t *map, unsigned int i)
{
	return map[i / 64] >> (i % 64) & 1;
}

/* "%*pb": 32-bit hex words, the highest first, comma separated; the
 * first only as wide as the bits it holds (bitmap_string) */
static void bitmap_hex(FILE *f, const uint64_t *map, unsigned int nbits)
{
	unsigned int chunk = nbits % 32 ? nbits % 32 : 32;
	int i;

	for (i = (int)((nbits + 31) / 32) - 1; i >= 0; i--) {
		uint32_t w = (uint32_t)(map[i / 2] >> (32 * (i % 2)));

		if (chunk < 32)
			w &= (1u << chunk) - 1;
		fprintf(f, "%s%0*x", i == (int)((nbits + 31) / 32) - 1 ?
			"" : ",", (int)(chunk + 3) / 4, w);
		chunk = 32;
	}
}

/* "%*pbl": ranges, "0-1,4" */
static void bitmap_list(FILE *f, const uint64_t *map, unsigned int nbits)
{
	unsigned int i = 0, j;
	bool first = true;

	while (i < nbits) {
		if (!bit(map, i)) {
			i++;
			continue;
		}
		for (j = i; j + 1 < nbits && bit(map, j + 1); j++)
			;
		fprintf(f, j > i ? "%s%u-%u" : "%s%u", first ? "" : ",", i, j);
		first = false;
		i = j + 1;
	}
}

/* arch/x86/kernel/cpu/bugs.c's ssb_prctl_get and ib_prctl_get, as
 * task_seccomp words them (PFA_SPEC_* of task->atomic_flags) */
#define PFA_NO_NEW_PRIVS		0
#define PFA_SPEC_SSB_DISABLE		3
#define PFA_SPEC_SSB_FORCE_DISABLE	4
#define PFA_SPEC_IB_DISABLE		5
#define PFA_SPEC_IB_FORCE_DISABLE	6
#define PFA_SPEC_SSB_NOEXEC		7

static const char *ssb_word(const struct vp_snapshot *s,
			    const struct vp_task *t)
{
	unsigned long long fl = t->atomic_flags;

	switch (s->ssb_mode) {
	case 1:				/* SPEC_STORE_BYPASS_DISABLE */
		return "globally mitigated";
	case 2: case 3:			/* PRCTL, SECCOMP */
		if (fl >> PFA_SPEC_SSB_FORCE_DISABLE & 1)
			return "thread force mitigated";
		if (fl >> PFA_SPEC_SSB_NOEXEC & 1)
			return "vulnerable";	/* DISABLE_NOEXEC: no case */
		if (fl >> PFA_SPEC_SSB_DISABLE & 1)
			return "thread mitigated";
		return "thread vulnerable";
	case 0:
		if (s->bug_ssb < 0)
			return "unknown";
		return s->bug_ssb ? "vulnerable" : "not vulnerable";
	default:
		return "unknown";
	}
}

static const char *ib_word(const struct vp_snapshot *s,
			   const struct vp_task *t)
{
	unsigned long long fl = t->atomic_flags;
	int ibpb = s->v2_user_ibpb, stibp = s->v2_user_stibp;

	if (s->bug_spectre_v2 < 0 || ibpb < 0 || stibp < 0)
		return "unknown";
	if (!s->bug_spectre_v2)
		return "not affected";
	if (ibpb == 0 && stibp == 0)	/* SPECTRE_V2_USER_NONE */
		return "always enabled";
	if (ibpb == 3 || ibpb == 4 || stibp == 3 || stibp == 4) {
		if (fl >> PFA_SPEC_IB_FORCE_DISABLE & 1)
			return "conditional force disabled";
		if (fl >> PFA_SPEC_IB_DISABLE & 1)
			return "conditional disabled";
		return "conditional enabled";
	}
	if (ibpb == 1 || stibp == 1 || stibp == 2)	/* STRICT(_PREFERRED) */
		return "always disabled";
	return "not affected";
}

char *vp_pid_status(const struct vp_snapshot *s, const struct vp_task *t,
		    size_t *len)
{
	static const char *const capn[5] = {
		"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
	};
	char *buf = NULL;
	FILE *f;
	const char *c;
	unsigned int i;

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
	fprintf(f, "Tgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t%d\nTracerPid:\t%d\n",
		t->tgid, t->pid, t->ppid, t->tracer_pid);
	fprintf(f, "Uid:\t%u\t%u\t%u\t%u\n", t->uid[0], t->uid[1], t->uid[2],
		t->uid[3]);
	fprintf(f, "Gid:\t%u\t%u\t%u\t%u\n", t->gid[0], t->gid[1], t->gid[2],
		t->gid[3]);
	fprintf(f, "FDSize:\t%u\nGroups:\t", t->fdsize);
	for (i = 0; i < t->ngroups; i++)
		fprintf(f, i ? " %u" : "%u", t->groups[i]);
	fputs(" \n", f);	/* the kernel's trailing space */
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
		/* hugetlb_report_usage */
		fprintf(f, "HugetlbPages:\t%8llu kB\n",
			(unsigned long long)t->hugetlb_pages * 4);
		fprintf(f, "CoreDumping:\t%d\nTHP_enabled:\t%d\n",
			t->core_dumping, t->thp_enabled);
	}
	fprintf(f, "Threads:\t%d\n", t->num_threads);
	fprintf(f, "SigQ:\t%llu/%llu\n", (unsigned long long)t->sigq,
		(unsigned long long)t->sigq_lim);
	sigset(f, "SigPnd", t->sig_pending);
	sigset(f, "ShdPnd", t->sig_shpending);
	sigset(f, "SigBlk", t->sig_blocked);
	sigset(f, "SigIgn", t->sig_ignored);
	sigset(f, "SigCgt", t->sig_caught);
	for (i = 0; i < 5; i++)
		sigset(f, capn[i], t->cap[i]);
	fprintf(f, "NoNewPrivs:\t%d\nSeccomp:\t%d\nSeccomp_filters:\t%d\n",
		(int)(t->atomic_flags >> PFA_NO_NEW_PRIVS & 1),
		t->seccomp_mode, t->seccomp_filters);
	fprintf(f, "Speculation_Store_Bypass:\t%s\n", ssb_word(s, t));
	fprintf(f, "SpeculationIndirectBranch:\t%s\n", ib_word(s, t));
	fputs("Cpus_allowed:\t", f);
	bitmap_hex(f, t->cpus_mask, s->nr_cpu_ids);
	fputs("\nCpus_allowed_list:\t", f);
	bitmap_list(f, t->cpus_mask, s->nr_cpu_ids);
	fputs("\nMems_allowed:\t", f);
	bitmap_hex(f, t->mems_allowed, s->node_bits);
	fputs("\nMems_allowed_list:\t", f);
	bitmap_list(f, t->mems_allowed, s->node_bits);
	fprintf(f, "\nvoluntary_ctxt_switches:\t%llu\n"
		"nonvoluntary_ctxt_switches:\t%llu\n",
		(unsigned long long)t->nvcsw, (unsigned long long)t->nivcsw);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
