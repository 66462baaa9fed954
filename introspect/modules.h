/* SPDX-License-Identifier: MIT */
/*
 * The guest's loaded kernel modules (the `modules` list), as records that
 * procfs/modules.c formats like /proc/modules and /sys/module/NAME/.
 *
 * Per module: name, state, sizes (6.1 has struct module_layout
 * core_layout / init_layout; later kernels' mem[MOD_*] are not handled:
 * collection fails with -ENOTSUP naming the missing member), the core
 * base address, the reference count as module_refcount() computes it
 * (atomic refcnt - MODULE_REF_BASE), taint bits and the modules that use
 * it (its source_list: "used by", /sys/module/NAME/holders/).
 *
 * Hostile memory: the list walk is guard.h's (bounded at
 * VMI_MODULES_MAX, cycle-checked), a holders list at VMI_MODULE_HOLDERS
 * entries, names are read with a cap and must be NUL-terminated.  A cut
 * walk is reported through the log callback; the modules read before it
 * are kept.
 */
#ifndef VMI_MODULES_H
#define VMI_MODULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "kernel.h"

#define VMI_MODULES_MAX		8192
#define VMI_MODULE_HOLDERS	256
#define VMI_MODULE_NAME		56	/* MODULE_NAME_LEN in 6.1 */

/* enum module_state */
enum vmi_module_state {
	VMI_MODULE_LIVE = 0,
	VMI_MODULE_COMING = 1,
	VMI_MODULE_GOING = 2,
	VMI_MODULE_UNFORMED = 3,
};

struct vmi_module {
	uint64_t addr;			/* struct module */
	char name[VMI_MODULE_NAME];
	unsigned int state;		/* enum vmi_module_state (raw) */
	uint32_t core_size, init_size;	/* core_layout.size, init_layout.size */
	uint64_t core_base;		/* core_layout.base */
	int refcnt;			/* module_refcount(): raw - 1 */
	uint64_t taints;		/* mod->taints bits (TAINT_*) */
	bool permanent;			/* has init but no exit */
	size_t nholders;		/* users of this module, in list order */
	char (*holders)[VMI_MODULE_NAME];
};

typedef void (*vmi_module_log_fn)(void *ctx, const char *msg);

struct vmi_modules {
	struct vmi_module *v;		/* list order (newest first) */
	size_t n;
	unsigned int cut;		/* walks cut short */
};

/*
 * Read the modules list.  @log may be NULL (messages go to stderr).  @dl
 * (may be NULL) is the build's time budget, as for vmi_sockets_collect().
 * Returns 0 (possibly with ->cut set), or -errno with @err set when the
 * list cannot be walked at all (missing symbol or BTF member).  Free
 * with vmi_modules_free().
 */
int vmi_modules_collect(const struct vmi_kernel *k, const struct vmi_phys *p,
			struct vmi_modules *out, vmi_module_log_fn log,
			void *logctx, const struct vmi_deadline *dl,
			char *err, size_t errlen);
void vmi_modules_free(struct vmi_modules *m);

#endif
