// SPDX-License-Identifier: MIT
/*
 * The system-wide files of the shadow /proc, from the snapshot: stat (the
 * cpu lines, btime, processes, procs_running; no intr, ctxt or softirq
 * lines: the snapshot does not count those), uptime, meminfo (MemTotal
 * and MemFree only), cpuinfo (the identification lines of each online
 * CPU, from boot_cpu_data), loadavg and tty/drivers, in the kernel's
 * formats (fs/proc/stat.c, uptime.c, meminfo.c, loadavg.c,
 * drivers/tty/tty_io.c).
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

char *vp_sys_meminfo(const struct vp_snapshot *s, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	fprintf(f, "%-16s%8llu kB\n", "MemTotal:",
		(unsigned long long)s->mem_total_pages * 4);
	fprintf(f, "%-16s%8llu kB\n", "MemFree:",
		(unsigned long long)s->mem_free_pages * 4);
	return done(f, &buf);
}

char *vp_sys_cpuinfo(const struct vp_snapshot *s, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	unsigned int c;

	if (!f)
		return NULL;
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
