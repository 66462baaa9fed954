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
		snprintf(err, errlen,
			 "backend 'remote-paging' is not implemented yet");
		return NULL;
	}
	snprintf(err, errlen, "unknown backend %d", (int)kind);
	return NULL;
}
