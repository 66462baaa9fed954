// SPDX-License-Identifier: MIT
/*
 * /proc/modules and /sys/module/NAME/ from module records (see
 * netmod.h), as the guest kernel's m_show(), print_unload_info() and
 * module_flags() (kernel/module/) print them in 6.1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netmod.h"

/* The taint bits a module can carry and their letters, in bit order
 * (kernel/panic.c taint_flags[] entries with .module set). */
static const struct {
	unsigned int bit;
	char c;
} mod_taints[] = {
	{ 0, 'P' },	/* TAINT_PROPRIETARY_MODULE */
	{ 1, 'F' },	/* TAINT_FORCED_MODULE */
	{ 10, 'C' },	/* TAINT_CRAP */
	{ 12, 'O' },	/* TAINT_OOT_MODULE */
	{ 13, 'E' },	/* TAINT_UNSIGNED_MODULE */
	{ 15, 'K' },	/* TAINT_LIVEPATCH */
	{ 16, 'X' },	/* TAINT_AUX */
	{ 17, 'T' },	/* TAINT_RANDSTRUCT */
	{ 18, 'N' },	/* TAINT_TEST */
};

static void taint_letters(FILE *f, unsigned long long taints)
{
	for (size_t i = 0; i < sizeof(mod_taints) / sizeof(mod_taints[0]); i++)
		if (taints & (1ULL << mod_taints[i].bit))
			fputc(mod_taints[i].c, f);
}

/* Close the memstream; its buffer is only final after fclose(). */
static char *finish(FILE *f, char **buf)
{
	if (fclose(f)) {
		free(*buf);
		return NULL;
	}
	return *buf;
}

char *procfs_modules(const struct vmi_modules *m, bool show_ptr)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < m->n; i++) {
		const struct vmi_module *mod = &m->v[i];
		bool any = false;

		if (mod->state == VMI_MODULE_UNFORMED)
			continue;
		fprintf(f, "%s %u %i ", mod->name,
			mod->init_size + mod->core_size, mod->refcnt);
		/* print_unload_info(): users, each with a trailing comma */
		for (size_t h = 0; h < mod->nholders; h++) {
			fprintf(f, "%s,", mod->holders[h]);
			any = true;
		}
		if (mod->permanent) {
			fputs("[permanent],", f);
			any = true;
		}
		if (!any)
			fputc('-', f);
		fprintf(f, " %s", mod->state == VMI_MODULE_GOING ? "Unloading" :
			mod->state == VMI_MODULE_COMING ? "Loading" : "Live");
		fprintf(f, " 0x%016llx",
			show_ptr ? (unsigned long long)mod->core_base : 0ULL);
		if (mod->taints) {
			/* module_flags(mod, buf, true) */
			fputs(" (", f);
			taint_letters(f, mod->taints);
			if (mod->state == VMI_MODULE_GOING)
				fputc('-', f);
			if (mod->state == VMI_MODULE_COMING)
				fputc('+', f);
			fputc(')', f);
		}
		fputc('\n', f);
	}
	return finish(f, &buf);
}

const struct vmi_module *procfs_module_find(const struct vmi_modules *m,
					    const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].state != VMI_MODULE_UNFORMED &&
		    !strcmp(m->v[i].name, name))
			return &m->v[i];
	return NULL;
}

static char *text(const char *fmt, unsigned long long v)
{
	char *s;

	if (asprintf(&s, fmt, v) < 0)
		return NULL;
	return s;
}

char *procfs_sys_module_refcnt(const struct vmi_module *m)
{
	char *s;

	if (asprintf(&s, "%d\n", m->refcnt) < 0)
		return NULL;
	return s;
}

char *procfs_sys_module_coresize(const struct vmi_module *m)
{
	return text("%llu\n", m->core_size);
}

char *procfs_sys_module_initsize(const struct vmi_module *m)
{
	return text("%llu\n", m->init_size);
}

char *procfs_sys_module_initstate(const struct vmi_module *m)
{
	const char *st = m->state == VMI_MODULE_LIVE ? "live" :
			 m->state == VMI_MODULE_COMING ? "coming" :
			 m->state == VMI_MODULE_GOING ? "going" : NULL;
	char *s;

	/* The kernel refuses to show an unformed module's state. */
	if (!st || asprintf(&s, "%s\n", st) < 0)
		return NULL;
	return s;
}

char *procfs_sys_module_taint(const struct vmi_module *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	taint_letters(f, m->taints);
	fputc('\n', f);
	return finish(f, &buf);
}
