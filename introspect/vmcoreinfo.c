// SPDX-License-Identifier: MIT
/*
 * Find, check and parse VMCOREINFO notes (see vmcoreinfo.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/memunits.h"
#include "vmcoreinfo.h"

#define FIRST_KEY	"OSRELEASE="
#define PROBE_LEN	(VMI_NOTE_HDR + sizeof(FIRST_KEY) - 1)

static uint32_t le32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

size_t vmi_note_check_header(const void *buf, size_t len)
{
	const unsigned char *b = buf;
	uint32_t descsz;

	if (len < PROBE_LEN)
		return 0;
	/* namesz counts the NUL of "VMCOREINFO"; type is 0 in the kernel. */
	if (le32(b) != 11 || le32(b + 8) != 0)
		return 0;
	if (memcmp(b + 12, "VMCOREINFO\0\0", 12))
		return 0;
	descsz = le32(b + 4);
	if (descsz < sizeof(FIRST_KEY) - 1 || descsz > VMI_NOTE_DESC_MAX)
		return 0;
	if (memcmp(b + VMI_NOTE_HDR, FIRST_KEY, sizeof(FIRST_KEY) - 1))
		return 0;
	return VMI_NOTE_HDR + (((size_t)descsz + 3) & ~(size_t)3);
}

void vmi_vmcoreinfo_free(struct vmi_vmcoreinfo *vi)
{
	for (size_t i = 0; i < vi->nkv; i++) {
		free(vi->kv[i].key);
		free(vi->kv[i].value);
	}
	free(vi->kv);
	memset(vi, 0, sizeof(*vi));
}

static bool parse_u64(const char *s, int base, uint64_t *v)
{
	char *end;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	*v = strtoull(s, &end, base);
	return !errno && !*end;
}

static bool parse_i64(const char *s, int64_t *v)
{
	char *end;

	if (!*s || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return !errno && !*end;
}

int vmi_vmcoreinfo_parse(const void *note, size_t len,
			 struct vmi_vmcoreinfo *out, char *err, size_t errlen)
{
	const unsigned char *b = note;
	const char *text, *p, *end;
	size_t total = vmi_note_check_header(note, len);
	size_t cap = 0, line = 0;
	const char *v;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!total || total > len)
		return vmi_err(err, errlen, EINVAL,
			       "not a VMCOREINFO note (bad header or descsz)");
	text = (const char *)b + VMI_NOTE_HDR;
	end = text + le32(b + 4);
	/* The kernel's text may end in NULs of the buffer: stop there. */
	for (p = text; p < end; p++)
		if (!*p)
			break;
	end = p;
	for (p = text; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c != '\n' && (c < 0x20 || c > 0x7e))
			return vmi_err(err, errlen, EINVAL,
				       "VMCOREINFO: byte %#x at offset %zu "
				       "is not text", c, (size_t)(p - text));
	}
	for (p = text; p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eq;
		struct vmi_vmcoreinfo_kv *kv;

		if (!nl)
			nl = end;
		if (nl == p) {	/* empty line */
			p = nl + 1;
			continue;
		}
		eq = memchr(p, '=', (size_t)(nl - p));
		if (!eq || eq == p) {
			ret = vmi_err(err, errlen, EINVAL,
				      "VMCOREINFO line %zu: no KEY=VALUE: "
				      "\"%.*s\"", line + 1,
				      (int)(nl - p > 60 ? 60 : nl - p), p);
			goto fail;
		}
		if (out->nkv >= VMI_NOTE_KEYS_MAX) {
			ret = vmi_err(err, errlen, E2BIG,
				      "VMCOREINFO: more than %d lines",
				      VMI_NOTE_KEYS_MAX);
			goto fail;
		}
		if (out->nkv == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			void *n = realloc(out->kv, ncap * sizeof(*out->kv));

			if (!n) {
				ret = vmi_err(err, errlen, ENOMEM,
					      "out of memory");
				goto fail;
			}
			out->kv = n;
			cap = ncap;
		}
		kv = &out->kv[out->nkv];
		kv->key = strndup(p, (size_t)(eq - p));
		kv->value = strndup(eq + 1, (size_t)(nl - eq - 1));
		if (!kv->key || !kv->value) {
			free(kv->key);
			free(kv->value);
			ret = vmi_err(err, errlen, ENOMEM, "out of memory");
			goto fail;
		}
		out->nkv++;
		p = nl + 1;
	}

	v = vmi_vmcoreinfo_get(out, "OSRELEASE");
	if (!v || !*v || strlen(v) >= sizeof(out->osrelease)) {
		ret = vmi_err(err, errlen, EINVAL,
			      "VMCOREINFO: OSRELEASE missing or too long");
		goto fail;
	}
	strcpy(out->osrelease, v);
	v = vmi_vmcoreinfo_get(out, "BUILD-ID");
	if (v) {
		size_t n = strlen(v);

		if (n >= sizeof(out->build_id) ||
		    strspn(v, "0123456789abcdefABCDEF") != n) {
			ret = vmi_err(err, errlen, EINVAL,
				      "VMCOREINFO: BUILD-ID \"%.40s\" is not "
				      "hex", v);
			goto fail;
		}
		strcpy(out->build_id, v);
	}
	v = vmi_vmcoreinfo_get(out, "PAGESIZE");
	if (v && !parse_u64(v, 10, &out->pagesize)) {
		ret = vmi_err(err, errlen, EINVAL,
			      "VMCOREINFO: PAGESIZE \"%.20s\" is not a number",
			      v);
		goto fail;
	}
	v = vmi_vmcoreinfo_get(out, "KERNELOFFSET");
	if (v) {
		if (!parse_u64(v, 16, &out->kerneloffset)) {
			ret = vmi_err(err, errlen, EINVAL,
				      "VMCOREINFO: KERNELOFFSET \"%.20s\" is "
				      "not hex", v);
			goto fail;
		}
		out->has_kerneloffset = true;
	}
	return 0;
fail:
	vmi_vmcoreinfo_free(out);
	return ret;
}

const char *vmi_vmcoreinfo_get(const struct vmi_vmcoreinfo *vi,
			       const char *key)
{
	/* First occurrence wins, as for makedumpfile. */
	for (size_t i = 0; i < vi->nkv; i++)
		if (!strcmp(vi->kv[i].key, key))
			return vi->kv[i].value;
	return NULL;
}

static const char *get_fmt(const struct vmi_vmcoreinfo *vi, const char *kind,
			   const char *name)
{
	char key[160];

	if (snprintf(key, sizeof(key), "%s(%s)", kind, name) >=
	    (int)sizeof(key))
		return NULL;
	return vmi_vmcoreinfo_get(vi, key);
}

bool vmi_vmcoreinfo_symbol(const struct vmi_vmcoreinfo *vi, const char *name,
			   uint64_t *val)
{
	const char *v = get_fmt(vi, "SYMBOL", name);

	return v && parse_u64(v, 16, val);
}

bool vmi_vmcoreinfo_number(const struct vmi_vmcoreinfo *vi, const char *name,
			   int64_t *val)
{
	const char *v = get_fmt(vi, "NUMBER", name);

	return v && parse_i64(v, val);
}

bool vmi_vmcoreinfo_decimal(const struct vmi_vmcoreinfo *vi, const char *kind,
			    const char *name, int64_t *val)
{
	const char *v = get_fmt(vi, kind, name);

	return v && parse_i64(v, val);
}

/* Look at the page at @g whose first @have bytes are in @head. */
static int probe(const struct vmi_phys *p, uint64_t g, const unsigned char *head,
		 size_t have,
		 int (*found)(void *, uint64_t, const void *, size_t),
		 void *arg, unsigned char *note)
{
	size_t total = vmi_note_check_header(head, have);

	if (!total || !vmi_phys_contains(p, g, total))
		return 0;
	if (vmi_phys_read(p, g, note, total))
		return 0;
	return found(arg, g, note, total);
}

/*
 * One pass over the page starts of the ranges, local or remote ones.
 * Local memory is read in blocks of SCAN_BLOCK bytes: one read per block
 * costs less than one per page (a FUSE file is direct_io: every read is a
 * round trip).  Remote memory is read a few bytes per page: a block would
 * fetch far more over the network than the probes need.
 */
#define SCAN_BLOCK	(64u << 10)

static int scan_pass(const struct vmi_phys *p, const struct vmi_deadline *dl,
		     bool local,
		     int (*found)(void *, uint64_t, const void *, size_t),
		     void *arg, uint64_t *pages, unsigned char *note,
		     unsigned char *block)
{
	/* Ask is_local per 2 MiB chunk, not per page: it may cost a lock. */
	const uint64_t chunk = 2ULL << 20;

	for (size_t i = 0; i < p->nranges; i++) {
		uint64_t start = vmem_page_ceil(p->ranges[i].start);
		uint64_t end = p->ranges[i].end;

		for (uint64_t c = start; c < end; c += chunk) {
			uint64_t cend = c + chunk < end ? c + chunk : end;

			if ((vmi_phys_is_local(p, c, cend - c) != 0) != local)
				continue;
			if (vmi_deadline_passed(dl))
				return -ETIMEDOUT;
			for (uint64_t b = c; b < cend; b += SCAN_BLOCK) {
				uint64_t bend = b + SCAN_BLOCK < cend ?
						b + SCAN_BLOCK : cend;
				bool whole = local &&
					!vmi_phys_read(p, b, block, bend - b);

				for (uint64_t g = b; g + PROBE_LEN <= bend;
				     g += VMEM_PAGE_SIZE) {
					const unsigned char *h = block + (g - b);
					int ret;

					(*pages)++;
					/* Without the block (remote, or a
					 * page in it failed): page by page;
					 * an unreadable page is skipped. */
					if (!whole) {
						/* A remote read may take
						 * its own timeout: look at
						 * the deadline each time. */
						if (vmi_deadline_passed(dl))
							return -ETIMEDOUT;
						if (vmi_phys_read(p, g, note,
								  PROBE_LEN))
							continue;
						h = note;
					}
					ret = probe(p, g, h, PROBE_LEN, found,
						    arg, note);
					if (ret)
						return ret;
				}
			}
		}
	}
	return 0;
}

int vmi_vmcoreinfo_scan(const struct vmi_phys *p,
			const struct vmi_deadline *dl,
			int (*found)(void *arg, uint64_t gpa,
				     const void *note, size_t len),
			void *arg, uint64_t *pages_read)
{
	unsigned char *note = malloc(VMI_NOTE_MAX);
	unsigned char *block = malloc(SCAN_BLOCK);
	uint64_t pages = 0;
	int ret = -ENOMEM;

	if (note && block) {
		ret = scan_pass(p, dl, true, found, arg, &pages, note, block);
		if (!ret)
			ret = scan_pass(p, dl, false, found, arg, &pages, note,
					block);
	}
	free(note);
	free(block);
	if (pages_read)
		*pages_read = pages;
	return ret;
}
