// SPDX-License-Identifier: MIT
/* Guest-physical layout from QEMU's memory tree.  See gpa.h. */
#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/config.h"
#include "gpa.h"

int vmem_gpa_flat(struct vmem_gpa_map *m, uint64_t ram_size)
{
	m->ext = calloc(1, sizeof(*m->ext));
	if (!m->ext)
		return -1;
	m->ext[0] = (struct vmem_gpa_ext){ 0, ram_size, 0 };
	m->n = 1;
	m->size = ram_size;
	return 0;
}

void vmem_gpa_free(struct vmem_gpa_map *m)
{
	free(m->ext);
	memset(m, 0, sizeof(*m));
}

static int cmp_gpa(const void *a, const void *b)
{
	const struct vmem_gpa_ext *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/*
 * Hex digits at *p (QEMU prints 16), moving *p past them; false if there
 * are none.  More than 16 digits cannot be a 64-bit address: *wide is
 * set then, instead of sscanf's silent clamp to 2^64-1.
 */
static bool hex_u64(const char **p, uint64_t *v, bool *wide)
{
	const char *s = *p;
	uint64_t x = 0;
	int n;

	for (n = 0; isxdigit((unsigned char)s[n]); n++) {
		if (n == 16) {
			*wide = true;
			continue;
		}
		x = x << 4 | (uint64_t)(isdigit((unsigned char)s[n]) ?
					s[n] - '0' :
					tolower((unsigned char)s[n]) - 'a' + 10);
	}
	if (!n)
		return false;
	*v = x;
	*p = s + n;
	return true;
}

/*
 * One line of a FlatView of `info mtree -f`, e.g.
 *   "  0000000100000000-000000017fffffff (prio 0, ram): ram0 @00000000c0000000"
 *   "  00000000000f0000-00000000000fffff (prio 0, rom): ram0 @00000000000f0000"
 *   "  0000000000000000-00000000000bffff (prio 0, ram): ram0"
 * A flat view already has every overlay (ROM, VGA, PAM) resolved: what it
 * says is RAM of our backend is exactly what the CPU sees there.  Shadowed
 * BIOS areas show as "rom" but are still our RAM.  Returns 1 and the
 * extent if the line maps RAM of @memdev, 0 if not, -1 if it claims to but
 * does not parse.
 */
static int parse_line(const char *line, const char *memdev,
		      uint64_t ram_size, struct vmem_gpa_ext *e,
		      char *why, size_t whylen)
{
	uint64_t start, last, off = 0;
	char kind[16], name[128], at[32], a[32];
	const char *p = line, *q, *problem;
	bool wide = false;
	int n;

	while (*p == ' ')
		p++;
	if (!hex_u64(&p, &start, &wide) || *p++ != '-' ||
	    !hex_u64(&p, &last, &wide))
		return 0;
	n = sscanf(p, " (prio %*d, %15[^)]): %127s %31s", kind, name, at);
	if (n < 2 || (strcmp(kind, "ram") != 0 && strcmp(kind, "rom") != 0) ||
	    strcmp(name, memdev) != 0)
		return 0;
	q = at + 1;
	if (n == 3 && (at[0] != '@' || !hex_u64(&q, &off, &wide) || *q)) {
		snprintf(why, whylen, "its RAM offset '%s' is not @HEX", at);
		return -1;
	}
	/*
	 * The same rules as a subhost line of the config: a 4K-aligned,
	 * non-empty range below VMEM_RAM_MAX, on both sides of the map.
	 * Checked before anything adds up, so nothing here can wrap (the
	 * whole space, 0-ffffffffffffffff, has length 2^64: that is 0).
	 */
	if (wide) {
		snprintf(why, whylen, "has a number wider than 64 bits");
		return -1;
	}
	if (last >= VMEM_RAM_MAX) {
		vmem_format_size(VMEM_RAM_MAX, a, sizeof(a));
		snprintf(why, whylen, "ends above the largest supported "
			 "guest-physical address %s", a);
		return -1;
	}
	problem = vmem_range_problem(start, last + 1);
	if (!problem && off >= VMEM_RAM_MAX)
		problem = "has a RAM offset above the largest supported ram-size";
	if (!problem)
		problem = vmem_range_problem(off, off + (last - start + 1));
	if (problem) {
		snprintf(why, whylen, "%s", problem);
		return -1;
	}
	if (off + (last - start + 1) > ram_size) {
		snprintf(why, whylen, "RAM of '%s' outside its %" PRIu64
			 " bytes", memdev, ram_size);
		return -1;
	}
	*e = (struct vmem_gpa_ext){ start, last - start + 1, off };
	return 1;
}

int vmem_gpa_parse_mtree(struct vmem_gpa_map *m, const char *text,
			 const char *memdev, uint64_t ram_size,
			 char *err, size_t errlen)
{
	const char *p = text;
	bool in_memory = false, seen = false;
	unsigned int lineno = 0;
	size_t cap = 0, i;

	memset(m, 0, sizeof(*m));
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[512], why[160];
		struct vmem_gpa_ext e;
		int r;

		lineno++;
		snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) - 1 ?
							   len : sizeof(line) - 1), p);
		p += len + (eol ? 1 : 0);
		line[strcspn(line, "\r")] = '\0';
		if (strncmp(line, "FlatView #", 10) == 0) {
			/* Only the CPUs' view counts: the one whose address
			 * spaces include "memory".  It comes once. */
			if (in_memory)
				break;
			continue;
		}
		if (strncmp(line, " AS \"memory\",", 13) == 0) {
			in_memory = seen = true;
			continue;
		}
		if (!in_memory)
			continue;
		r = parse_line(line, memdev, ram_size, &e, why, sizeof(why));
		if (r == 0)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "info mtree line %u: '%s': %s",
				 lineno, line + strspn(line, " "), why);
			goto fail;
		}
		/* Pieces split only by their rom/ram flavour join up again. */
		if (m->n && m->ext[m->n - 1].gpa + m->ext[m->n - 1].len == e.gpa &&
		    m->ext[m->n - 1].ram + m->ext[m->n - 1].len == e.ram) {
			m->ext[m->n - 1].len += e.len;
			continue;
		}
		if (m->n == cap) {
			struct vmem_gpa_ext *x;

			cap = cap ? cap * 2 : 8;
			x = realloc(m->ext, cap * sizeof(*x));
			if (!x) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			m->ext = x;
		}
		m->ext[m->n++] = e;
	}
	if (!m->n) {
		snprintf(err, errlen, "info mtree -f shows no RAM of memory backend "
			 "'%s' in address space 'memory'%s", memdev,
			 seen ? "" : " (no such flat view)");
		goto fail;
	}
	qsort(m->ext, m->n, sizeof(*m->ext), cmp_gpa);
	for (i = 1; i < m->n; i++) {
		/* A flat view cannot overlap itself; if it does, it is not
		 * a flat view and we will not guess. */
		if (m->ext[i].gpa < m->ext[i - 1].gpa + m->ext[i - 1].len) {
			snprintf(err, errlen, "info mtree -f: RAM of '%s' mapped twice "
				 "at GPA 0x%" PRIx64, memdev, m->ext[i].gpa);
			goto fail;
		}
	}
	m->size = m->ext[m->n - 1].gpa + m->ext[m->n - 1].len;
	return 0;
fail:
	vmem_gpa_free(m);
	return -1;
}

const struct vmem_gpa_ext *vmem_gpa_lookup(const struct vmem_gpa_map *m,
					   uint64_t gpa, uint64_t *next)
{
	size_t lo = 0, hi = m->n;

	/* First extent that ends after gpa. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->ext[mid].gpa + m->ext[mid].len <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < m->n && m->ext[lo].gpa <= gpa)
		return &m->ext[lo];
	*next = lo < m->n ? m->ext[lo].gpa : m->size;
	return NULL;
}
