// SPDX-License-Identifier: MIT
/*
 * /proc/PID/cmdline and environ: the bytes of the process's argument and
 * environment areas as the snapshot read them through its own page
 * tables (empty when a page was not present, and for kernel threads).
 */
#include <stdlib.h>
#include <string.h>

#include "views.h"

static char *copy(const char *p, size_t n, size_t *len)
{
	char *b = malloc(n + 1);

	if (!b)
		return NULL;
	if (n)
		memcpy(b, p, n);
	b[n] = '\0';
	*len = n;
	return b;
}

char *vp_pid_cmdline(const struct vp_task *t, size_t *len)
{
	return copy(t->cmdline, t->cmdline ? t->cmdline_len : 0, len);
}

char *vp_pid_environ(const struct vp_task *t, size_t *len)
{
	return copy(t->environ, t->environ ? t->environ_len : 0, len);
}
