// SPDX-License-Identifier: MIT
/*
 * Which backends this build has: the one list, keyed by name.  The config
 * parser checks the `backend` key against it (vmem_backend_table, see
 * common/config.h), and a VM's backend is found here by that name.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

const struct vmem_backend_info *const vmem_backend_table[] = {
	&vmem_backend_direct.info,
	&vmem_backend_remote_paging.info,
	NULL,
};

const struct vmem_backend_ops *vmem_backend_lookup(const char *name,
						   char *err, size_t errlen)
{
	for (size_t i = 0; name && vmem_backend_table[i]; i++) {
		const struct vmem_backend_info *info = vmem_backend_table[i];

		if (strcmp(info->name, name) == 0)
			return (const struct vmem_backend_ops *)
			       ((const char *)info -
				offsetof(struct vmem_backend_ops, info));
	}
	snprintf(err, errlen, "backend '%s' is not built in",
		 name ? name : "(none)");
	return NULL;
}
