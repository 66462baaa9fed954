// SPDX-License-Identifier: MIT
/*
 * The system-wide files of the shadow /proc, from the snapshot: stat
 * (every line of show_stat), uptime, meminfo (the lines of
 * meminfo_proc_show the guest's configuration has), cpuinfo (show_cpuinfo's
 * block per online CPU), loadavg and tty/drivers, in the kernel's formats
 * (fs/proc/stat.c, uptime.c, meminfo.c, arch/x86/kernel/cpu/proc.c,
 * loadavg.c, drivers/tty/tty_io.c).  A line whose counters could not be
 * read is left out (the snapshot's log says why), never made up.
 */
#include <stdio.h>
#include <stdlib.h>

#include "views.h"

#define FSHIFT 11
#define FIXED_1 (1UL << FSHIFT)
#define MINORS (1 << 20)	/* a major's minors: MINORBITS 20 */

/* Close @f; its buffer is only final after fclose. */
static char *done(FILE *f, char **buf)
{
	if (fclose(f) != 0) {
		free(*buf);
		return NULL;
	}
	return *buf;
}

/* user nice system idle iowait irq softirq steal guest guest_nice */
static const int order[10] = { 0, 1, 2, 5, 6, 4, 3, 7, 8, 9 };

static void cpu_line(FILE *f, const char *name, const uint64_t *v)
{
	int i;

	fputs(name, f);
	for (i = 0; i < 10; i++)
		fprintf(f, " %llu", vp_clock_t(v[order[i]]));
	fputc('\n', f);
}

char *vp_sys_stat(const struct vp_snapshot *s, size_t *len)
{
	uint64_t sum[10] = { 0 };
	char *buf = NULL, name[16];
	FILE *f = open_memstream(&buf, len);
	unsigned int c;
	int i;

	if (!f)
		return NULL;
	for (c = 0; c < s->ncpus; c++)
		for (i = 0; i < 10; i++)
			sum[i] += s->cpustat[c][i];
	cpu_line(f, "cpu ", sum);
	for (c = 0; c < s->ncpus; c++) {
		snprintf(name, sizeof(name), "cpu%u", c);
		cpu_line(f, name, s->cpustat[c]);
	}
	/* intr: the total, then each irq's count; without the counters the
	 * line is left out rather than made up */
	if (s->have_intr) {
		fprintf(f, "intr %llu", (unsigned long long)s->intr_sum);
		for (c = 0; s->have_irqs && c < s->nirqs; c++)
			fprintf(f, " %u", s->irqs[c]);
		fputc('\n', f);
	}
	if (s->have_sched)
		fprintf(f, "ctxt %llu\n", (unsigned long long)s->ctxt);
	fprintf(f, "btime %lld\n", (long long)s->btime);
	if (s->have_forks)
		fprintf(f, "processes %llu\n", (unsigned long long)s->forks);
	else
		fprintf(f, "processes %d\n", s->last_pid);
	if (s->have_sched)
		fprintf(f, "procs_running %u\nprocs_blocked %u\n",
			s->procs_running, s->procs_blocked);
	else
		fprintf(f, "procs_running %zu\nprocs_blocked 0\n",
			s->nrunning);
	if (s->have_softirq) {
		fprintf(f, "softirq %llu", (unsigned long long)s->softirq_sum);
		for (i = 0; i < 10; i++)
			fprintf(f, " %llu", (unsigned long long)s->softirqs[i]);
		fputc('\n', f);
	}
	return done(f, &buf);
}

char *vp_sys_uptime(const struct vp_snapshot *s, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	fprintf(f, "%llu.%02llu %llu.%02llu\n",
		(unsigned long long)(s->uptime_ns / 1000000000),
		(unsigned long long)(s->uptime_ns % 1000000000 / 10000000),
		(unsigned long long)(s->idle_ns / 1000000000),
		(unsigned long long)(s->idle_ns % 1000000000 / 10000000));
	return done(f, &buf);
}

/* show_val_kb: the key padded to 16 columns, pages in kB, width 8 */
static void kbl(FILE *f, const char *key, unsigned long long pages)
{
	fprintf(f, "%-16s%8llu kB\n", key, pages * 4);
}

/* meminfo_proc_show's lines in its order (CONFIG_HIGHMEM, MMU-less and
 * arm64 lines never apply to an x86-64 guest); a line whose counter the
 * guest's kernel lacks (ZSWAP, MEMORY_FAILURE, CMA, ...) is left out as
 * its configuration leaves it out. */
char *vp_sys_meminfo(const struct vp_snapshot *s, size_t *len)
{
	const struct vp_meminfo *m = s->mi;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	if (!m) {
		kbl(f, "MemTotal:", s->mem_total_pages);
		kbl(f, "MemFree:", s->mem_free_pages);
		return done(f, &buf);
	}
	kbl(f, "MemTotal:", m->total);
	kbl(f, "MemFree:", m->free);
	kbl(f, "MemAvailable:", m->available);
	kbl(f, "Buffers:", m->buffers);
	kbl(f, "Cached:", m->cached);
	kbl(f, "SwapCached:", m->swapcached);
	kbl(f, "Active:", m->lru[1] + m->lru[3]);
	kbl(f, "Inactive:", m->lru[0] + m->lru[2]);
	kbl(f, "Active(anon):", m->lru[1]);
	kbl(f, "Inactive(anon):", m->lru[0]);
	kbl(f, "Active(file):", m->lru[3]);
	kbl(f, "Inactive(file):", m->lru[2]);
	kbl(f, "Unevictable:", m->lru[4]);
	kbl(f, "Mlocked:", m->mlocked);
	kbl(f, "SwapTotal:", m->swap_total);
	kbl(f, "SwapFree:", m->swap_free);
	if (m->have_zswap) {
		kbl(f, "Zswap:", m->zswap);
		kbl(f, "Zswapped:", m->zswapped);
	}
	kbl(f, "Dirty:", m->dirty);
	kbl(f, "Writeback:", m->writeback);
	kbl(f, "AnonPages:", m->anon);
	kbl(f, "Mapped:", m->mapped);
	kbl(f, "Shmem:", m->shmem);
	kbl(f, "KReclaimable:", m->kreclaimable);
	kbl(f, "Slab:", m->sreclaimable + m->sunreclaim);
	kbl(f, "SReclaimable:", m->sreclaimable);
	kbl(f, "SUnreclaim:", m->sunreclaim);
	fprintf(f, "%-16s%8llu kB\n", "KernelStack:",
		(unsigned long long)m->kernel_stack_kb);
	kbl(f, "PageTables:", m->pagetables);
	if (m->have_secpt)
		kbl(f, "SecPageTables:", m->sec_pagetables);
	kbl(f, "NFS_Unstable:", 0);
	kbl(f, "Bounce:", m->bounce);
	kbl(f, "WritebackTmp:", m->writeback_tmp);
	kbl(f, "CommitLimit:", m->commit_limit);
	kbl(f, "Committed_AS:", m->committed);
	fprintf(f, "%-16s%8llu kB\n", "VmallocTotal:",
		(unsigned long long)m->vmalloc_total_kb);
	kbl(f, "VmallocUsed:", m->vmalloc_used);
	kbl(f, "VmallocChunk:", 0);
	kbl(f, "Percpu:", m->percpu);
	if (m->have_hwcorrupt)
		fprintf(f, "HardwareCorrupted: %5llu kB\n",
			(unsigned long long)m->hwcorrupt * 4);
	if (m->have_thp) {
		kbl(f, "AnonHugePages:", m->anon_thp);
		kbl(f, "ShmemHugePages:", m->shmem_thp);
		kbl(f, "ShmemPmdMapped:", m->shmem_pmd);
		kbl(f, "FileHugePages:", m->file_thp);
		kbl(f, "FilePmdMapped:", m->file_pmd);
	}
	if (m->have_cma) {
		kbl(f, "CmaTotal:", m->cma_total);
		kbl(f, "CmaFree:", m->cma_free);
	}
	if (m->have_huge) {
		fprintf(f, "HugePages_Total:   %5llu\nHugePages_Free:    %5llu\n"
			"HugePages_Rsvd:    %5llu\nHugePages_Surp:    %5llu\n"
			"Hugepagesize:   %8llu kB\n",
			(unsigned long long)m->huge_total,
			(unsigned long long)m->huge_free,
			(unsigned long long)m->huge_rsvd,
			(unsigned long long)m->huge_surp,
			(unsigned long long)m->huge_kb);
		fprintf(f, "Hugetlb:        %8llu kB\n",
			(unsigned long long)m->hugetlb_kb);
	}
	if (m->have_direct) {
		fprintf(f, "DirectMap4k:    %8llu kB\n",
			(unsigned long long)m->direct[0] << 2);
		fprintf(f, "DirectMap2M:    %8llu kB\n",
			(unsigned long long)m->direct[1] << 11);
		if (m->have_gbpages)
			fprintf(f, "DirectMap1G:    %8llu kB\n",
				(unsigned long long)m->direct[2] << 20);
	}
	return done(f, &buf);
}

/* arch/x86/kernel/cpu/proc.c show_cpuinfo, one block per online CPU */
static void cpu_block(FILE *f, const struct vp_snapshot *s,
		      const struct vp_cpu *c)
{
	unsigned int hz = s->hz ? s->hz : 250;

	fprintf(f, "processor\t: %u\nvendor_id\t: %s\ncpu family\t: %d\n"
		"model\t\t: %u\nmodel name\t: %s\n", c->index,
		c->vendor[0] ? c->vendor : "unknown", (int)c->family,
		c->model, c->model_name[0] ? c->model_name : "unknown");
	if (c->stepping || c->cpuid_level >= 0)
		fprintf(f, "stepping\t: %d\n", (int)c->stepping);
	else
		fputs("stepping\t: unknown\n", f);
	if (c->microcode)
		fprintf(f, "microcode\t: 0x%x\n", c->microcode);
	if (c->tsc)
		fprintf(f, "cpu MHz\t\t: %u.%03u\n", s->cpu_khz / 1000,
			s->cpu_khz % 1000);
	if (c->cache_kb)
		fprintf(f, "cache size\t: %u KB\n", c->cache_kb);
	fprintf(f, "physical id\t: %d\nsiblings\t: %d\ncore id\t\t: %d\n"
		"cpu cores\t: %d\napicid\t\t: %d\ninitial apicid\t: %d\n",
		(int)c->phys_id, (int)c->siblings, (int)c->core_id,
		(int)c->cores, (int)c->apicid, (int)c->init_apicid);
	fprintf(f, "fpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: %d\n"
		"wp\t\t: yes\n", c->cpuid_level);
	fprintf(f, "flags\t\t:%s", c->flags ? c->flags : "");
	if (c->vmx)
		fprintf(f, "\nvmx flags\t:%s", c->vmx);
	fprintf(f, "\nbugs\t\t:%s", c->bugs ? c->bugs : "");
	fprintf(f, "\nbogomips\t: %llu.%02llu\n", c->lpj / (500000 / hz),
		(c->lpj / (5000 / hz)) % 100);
	if (c->tlbsize > 0)
		fprintf(f, "TLB size\t: %d 4K pages\n", c->tlbsize);
	fprintf(f, "clflush size\t: %u\ncache_alignment\t: %d\n"
		"address sizes\t: %u bits physical, %u bits virtual\n",
		c->clflush, c->cache_alignment, c->phys_bits, c->virt_bits);
	fprintf(f, "power management:%s\n\n", c->power ? c->power : "");
}

char *vp_sys_cpuinfo(const struct vp_snapshot *s, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	unsigned int c;

	if (!f)
		return NULL;
	if (s->cpus) {
		for (c = 0; c < s->ncpuinfo; c++)
			cpu_block(f, s, &s->cpus[c]);
		return done(f, &buf);
	}
	for (c = 0; c < s->ncpus; c++)
		fprintf(f, "processor\t: %u\nvendor_id\t: %s\n"
			"cpu family\t: %u\nmodel\t\t: %u\nmodel name\t: %s\n"
			"stepping\t: %u\n\n", c, s->cpu_vendor,
			s->cpu_family, s->cpu_model_nr,
			s->cpu_model[0] ? s->cpu_model : "unknown",
			s->cpu_stepping);
	return done(f, &buf);
}

char *vp_sys_loadavg(const struct vp_snapshot *s, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	int i;

	if (!f)
		return NULL;
	for (i = 0; i < 3; i++) {
		unsigned long a = s->avenrun[i] + FIXED_1 / 200;

		fprintf(f, "%lu.%02lu ", a >> FSHIFT,
			((a & (FIXED_1 - 1)) * 100) >> FSHIFT);
	}
	fprintf(f, "%zu/%zu %d\n", s->nrunning, s->nthreads, s->last_pid);
	return done(f, &buf);
}

/* tty_io.c's show_tty_range */
static void tty_range(FILE *f, const struct vp_tty_driver *d, int major,
		      int minor, int num)
{
	fprintf(f, "%-20s ", d->driver_name[0] ? d->driver_name : "unknown");
	fprintf(f, "/dev/%-8s ", d->name);
	if (num > 1)
		fprintf(f, "%3d %d-%d ", major, minor, minor + num - 1);
	else
		fprintf(f, "%3d %7d ", major, minor);
	switch (d->type) {
	case 1:		/* TTY_DRIVER_TYPE_SYSTEM */
		fputs("system", f);
		if (d->subtype == 1)
			fputs(":/dev/tty", f);
		else if (d->subtype == 2)
			fputs(":console", f);
		else if (d->subtype == 3)
			fputs(":vtmaster", f);
		break;
	case 2:
		fputs("console", f);
		break;
	case 3:
		fputs("serial", f);
		break;
	case 4:
		if (d->subtype == 1)
			fputs("pty:master", f);
		else if (d->subtype == 2)
			fputs("pty:slave", f);
		else
			fputs("pty", f);
		break;
	default:
		fprintf(f, "type:%d.%d", d->type, d->subtype);
	}
	fputc('\n', f);
}

char *vp_sys_tty_drivers(const struct vp_snapshot *s, size_t *len)
{
	/* The kernel's pseudo-drivers, shown before the first driver
	 * (TTYAUX_MAJOR 5; the VT master on TTY_MAJOR 4). */
	static const struct vp_tty_driver sys[] = {
		{ "/dev/tty", "tty", 5, 0, 1, 1, 1 },
		{ "/dev/console", "console", 5, 1, 1, 1, 2 },
		{ "/dev/ptmx", "ptmx", 5, 2, 1, 1, 0 },
		{ "/dev/vc/0", "vc/0", 4, 0, 1, 1, 3 },
	};
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	size_t i;

	if (!f)
		return NULL;
	for (i = 0; s->nttys && i < sizeof(sys) / sizeof(sys[0]); i++)
		tty_range(f, &sys[i], sys[i].major, sys[i].minor_start, 1);
	for (i = 0; i < s->nttys; i++) {
		const struct vp_tty_driver *d = &s->ttys[i];
		/* a range that crosses majors is split, as the kernel does */
		int major = d->major, minor = d->minor_start, left = d->num;

		while (left > 0) {
			int n = left;

			if (minor + n > MINORS)
				n = MINORS - minor;
			tty_range(f, d, major, minor, n);
			left -= n;
			minor = 0;
			major++;
		}
	}
	return done(f, &buf);
}
