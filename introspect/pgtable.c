// SPDX-License-Identifier: MIT
/*
 * x86-64 page-table walk (see pgtable.h).
 */
#include <errno.h>

#include "guard.h"
#include "pgtable.h"

int vmi_pgtable_walk(const struct vmi_phys *p, uint64_t root, int levels,
		     uint64_t va, struct vmi_xlate *out)
{
	uint64_t table = root & VMI_PTE_ADDR, e = 0;
	bool rw = true, user = true, nx = false;
	int level, ret;

	if (levels != 4 && levels != 5)
		return -EINVAL;
	if (!vmi_canonical(va, levels))
		return -EINVAL;
	/* level 5: PML5, 4: PML4, 3: PDPT, 2: PD, 1: PT */
	for (level = levels; level >= 1; level--) {
		unsigned int shift = 12 + 9 * (unsigned int)(level - 1);
		uint64_t idx = (va >> shift) & 511;

		ret = vmi_phys_read(p, table + idx * 8, &e, sizeof(e));
		if (ret)
			return ret;
		if (!(e & VMI_PTE_PRESENT))
			return -ENOENT;
		rw = rw && (e & VMI_PTE_RW);
		user = user && (e & VMI_PTE_USER);
		nx = nx || (e & VMI_PTE_NX);
		if ((level == 3 || level == 2) && (e & VMI_PTE_PS)) {
			uint64_t size = 1ULL << shift;
			/* Large pages: bit 12 is PAT, address is aligned. */
			uint64_t base = e & VMI_PTE_ADDR & ~(size - 1);

			out->pa = base | (va & (size - 1));
			out->page_size = size;
			goto done;
		}
		if (level > 1 && (e & VMI_PTE_PS) && level > 3)
			return -EFAULT;	/* PS is reserved in PML4/PML5 */
		table = e & VMI_PTE_ADDR;
	}
	out->pa = (e & VMI_PTE_ADDR) | (va & 4095);
	out->page_size = 4096;
done:
	out->pte = e;
	out->writable = rw;
	out->user = user;
	out->nx = nx;
	/* The page itself must be RAM; callers read it next. */
	if (!vmi_phys_contains(p, out->pa, 1))
		return -EFAULT;
	return 0;
}
