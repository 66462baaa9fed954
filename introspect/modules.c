// SPDX-License-Identifier: MIT
/*
 * The guest's kernel modules (see modules.h): the `modules` list and each
 * module's source_list, walked with guard.h's bounded list walk.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "modules.h"

#define MODULE_REF_BASE	1	/* kernel/module/main.c */

struct mod_layout {
	uint64_t list, name, state, core_base, core_size, init_size, refcnt,
		 taints, init, exit, source_list;
	uint64_t use_source_list, use_source;
	uint64_t name_len;
};

struct mctx {
	const struct vmi_kernel *k;
	const struct vmi_phys *p;
	struct vmi_kernel_reader r;
	int levels;
	struct mod_layout L;
	struct vmi_modules *out;
	size_t cap;
	vmi_module_log_fn log;
	void *logctx;
	struct vmi_module *cur;		/* while walking its holders */
	bool failed;			/* a visit logged why it stopped */
	const struct vmi_deadline *dl;
};

#define mlog(c, ...) \
	vmi_cut_log(&(c)->out->cut, (c)->log, (c)->logctx, "modules", \
		    __VA_ARGS__)

static int load_layout(const struct vmi_kernel *k, struct mod_layout *L,
		       char *err, size_t errlen)
{
	const struct vmi_member_ref m[] = {
		{ "module.list", &L->list },
		{ "module.state", &L->state },
		/* 6.1: struct module_layout; 6.4+ has mem[MOD_TEXT...] */
		{ "module.core_layout.base", &L->core_base },
		{ "module.core_layout.size", &L->core_size },
		{ "module.init_layout.size", &L->init_size },
		{ "module.refcnt", &L->refcnt },
		{ "module.taints", &L->taints },
		{ "module.init", &L->init },
		{ "module.exit", &L->exit },
		{ "module.source_list", &L->source_list },
		{ "module_use.source_list", &L->use_source_list },
		{ "module_use.source", &L->use_source },
		{ NULL, NULL },
	};
	const char *failed;
	int ret;

	ret = vmi_kernel_members(k, m, &failed);
	if (ret)
		return vmi_err(err, errlen, ret == -ENOENT ? ENOTSUP : -ret,
			       "BTF: no member %s: module layout not "
			       "supported", failed);
	ret = vmi_kernel_member(k, "module.name", &L->name, &L->name_len);
	if (ret)
		return vmi_err(err, errlen, -ret, "BTF: no member module.name");
	if (L->name_len == 0 || L->name_len > VMI_MODULE_NAME)
		return vmi_err(err, errlen, EINVAL, "BTF: module.name is %"
			       PRIu64 " bytes, at most %d expected",
			       L->name_len, VMI_MODULE_NAME);
	return 0;
}

static int read_name(struct mctx *c, uint64_t mod, char *name)
{
	char buf[VMI_MODULE_NAME];
	int ret;

	ret = vmi_kernel_read(c->k, c->p, mod + c->L.name, buf, c->L.name_len);
	if (ret)
		return ret;
	if (!memchr(buf, '\0', c->L.name_len))
		return -ENAMETOOLONG;
	memcpy(name, buf, c->L.name_len);
	return 0;
}

static int visit_holder(void *arg, uint64_t entry)
{
	struct mctx *c = arg;
	struct vmi_module *m = c->cur;
	uint64_t use = entry - c->L.use_source_list, src;
	char (*h)[VMI_MODULE_NAME];
	int ret;

	ret = vmi_kernel_read(c->k, c->p, use + c->L.use_source, &src, 8);
	if (ret)
		return ret;
	if (!vmi_kernel_half(src, c->levels) || (src & 7))
		return -EFAULT;
	h = realloc(m->holders, (m->nholders + 1) * sizeof(*h));
	if (!h)
		return -ENOMEM;
	m->holders = h;
	ret = read_name(c, src, h[m->nholders]);
	if (ret)
		return ret;
	m->nholders++;
	return 0;
}

static int visit_module(void *arg, uint64_t entry)
{
	struct mctx *c = arg;
	const struct mod_layout *L = &c->L;
	uint64_t mod = entry - L->list, init = 0, exit_ = 0;
	struct vmi_module m = { .addr = mod };
	uint32_t refcnt = 0;
	long got;
	int ret;

	if (c->dl && vmi_deadline_passed(c->dl)) {
		mlog(c, "modules list: time budget spent, cut after %zu "
		     "modules", c->out->n);
		c->failed = true;
		return -ETIMEDOUT;
	}
	ret = read_name(c, mod, m.name);
	if (ret) {
		mlog(c, "module 0x%" PRIx64 ": name unreadable (%s), list cut",
		     mod, strerror(-ret));
		c->failed = true;
		return ret;
	}
	if ((ret = vmi_kernel_read(c->k, c->p, mod + L->state, &m.state, 4)) ||
	    (ret = vmi_kernel_read(c->k, c->p, mod + L->core_base,
				   &m.core_base, 8)) ||
	    (ret = vmi_kernel_read(c->k, c->p, mod + L->core_size,
				   &m.core_size, 4)) ||
	    (ret = vmi_kernel_read(c->k, c->p, mod + L->init_size,
				   &m.init_size, 4)) ||
	    (ret = vmi_kernel_read(c->k, c->p, mod + L->refcnt, &refcnt, 4)) ||
	    (ret = vmi_kernel_read(c->k, c->p, mod + L->taints, &m.taints, 8)) ||
	    (ret = vmi_kernel_read(c->k, c->p, mod + L->init, &init, 8)) ||
	    (ret = vmi_kernel_read(c->k, c->p, mod + L->exit, &exit_, 8))) {
		mlog(c, "module %s at 0x%" PRIx64 ": unreadable (%s), list cut",
		     m.name, mod, strerror(-ret));
		c->failed = true;
		return ret;
	}
	m.refcnt = (int)refcnt - MODULE_REF_BASE;
	m.permanent = init && !exit_;
	c->cur = &m;
	got = vmi_walk_list_linked(vmi_kernel_kread, &c->r,
				   mod + L->source_list, c->levels,
				   VMI_MODULE_HOLDERS, visit_holder, c, NULL);
	if (got < 0)
		mlog(c, "module %s at 0x%" PRIx64 ": holders list cut after %zu "
		     "(%s)", m.name, mod, m.nholders, strerror((int)-got));
	if (c->out->n == c->cap) {
		size_t ncap = c->cap ? 2 * c->cap : 32;
		struct vmi_module *v = realloc(c->out->v, ncap * sizeof(*v));

		if (!v) {
			free(m.holders);
			return -ENOMEM;
		}
		c->out->v = v;
		c->cap = ncap;
	}
	c->out->v[c->out->n++] = m;
	return 0;
}

int vmi_modules_collect(const struct vmi_kernel *k, const struct vmi_phys *p,
			struct vmi_modules *out, vmi_module_log_fn log,
			void *logctx, const struct vmi_deadline *dl,
			char *err, size_t errlen)
{
	struct mctx c = { .k = k, .p = p, .r = { k, p }, .out = out,
			  .log = log, .logctx = logctx, .dl = dl };
	struct vmi_list_bad bad;
	uint64_t head;
	long got;
	int ret;

	memset(out, 0, sizeof(*out));
	c.levels = vmi_kernel_info(k)->paging_levels;
	ret = load_layout(k, &c.L, err, errlen);
	if (ret)
		return ret;
	if (!vmi_kernel_symbol(k, "modules", &head))
		return vmi_err(err, errlen, ENOENT,
			       "no symbol modules in kallsyms");
	/* Checked next->prev (guard.h): a list bent into a cycle, or onto
	 * a stray entry, stops before any module is seen twice. */
	got = vmi_walk_list_linked(vmi_kernel_kread, &c.r, head, c.levels,
				   VMI_MODULES_MAX, visit_module, &c, &bad);
	if (got == -ENOMEM) {
		vmi_modules_free(out);
		return vmi_err(err, errlen, ENOMEM, "out of memory");
	}
	if (bad.entry) {
		mlog(&c, "modules list: entry 0x%" PRIx64 " has prev 0x%" PRIx64
		     ", not 0x%" PRIx64 " (a cycle or a stray pointer), list "
		     "cut after %zu modules", bad.entry, bad.prev, bad.want,
		     out->n);
		c.failed = true;
	}
	/* A visit that failed has logged why; a failed step of the walk
	 * itself (a bad next, a cycle, too many) is logged here. */
	if (got < 0 && !c.failed)
		mlog(&c, "modules list at 0x%" PRIx64 " cut after %zu modules "
		     "(%s)", head, out->n, strerror((int)-got));
	return 0;
}

void vmi_modules_free(struct vmi_modules *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].holders);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}
