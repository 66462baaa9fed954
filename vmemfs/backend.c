// SPDX-License-Identifier: MIT
/*
 * Which backends this build has.  A backend the config names but the
 * build lacks is refused at start with a clear message, not at first read.
 */
#include <stdio.h>

#include "backend.h"

const struct vmem_backend_ops *vmem_backend_lookup(enum vmem_backend_kind kind,
						   char *err, size_t errlen)
{
	switch (kind) {
	case VMEM_BACKEND_DIRECT:
		return &vmem_backend_direct;
	case VMEM_BACKEND_REMOTE_PAGING:
		return &vmem_backend_remote_paging;
	}
	snprintf(err, errlen, "unknown backend %d", (int)kind);
	return NULL;
}
