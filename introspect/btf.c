// SPDX-License-Identifier: MIT
/*
 * Guest kernel types through libbpf's BTF API (see btf.h).  libbpf does
 * all BTF parsing; this file only finds names along member paths and
 * reads a vmlinux's build id.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/btf.h>

#include "btf.h"
#include "guard.h"

#define MEMBER_DEPTH_MAX	32	/* nested anonymous members */
#define PATH_MAX_PARTS		16

struct vmi_btf {
	struct btf *btf;
};

static int wrap(struct btf *b, struct vmi_btf **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out) {
		btf__free(b);
		return -ENOMEM;
	}
	(*out)->btf = b;
	return 0;
}

int vmi_btf_from_blob(const void *blob, size_t len, struct vmi_btf **out,
		      char *err, size_t errlen)
{
	struct btf *b;

	*out = NULL;
	if (len > VMI_BTF_MAX)
		return vmi_err(err, errlen, E2BIG, "BTF of %zu bytes is "
			       "larger than the cap %u", len, VMI_BTF_MAX);
	/* libbpf checks the header, every type and every string offset. */
	b = btf__new(blob, (__u32)len);
	if (!b)
		return vmi_err(err, errlen, EINVAL, "BTF does not parse: %s",
			       strerror(errno));
	if (wrap(b, out))
		return vmi_err(err, errlen, ENOMEM, "out of memory");
	return 0;
}

/* The hex build id of an ELF64 file's NT_GNU_BUILD_ID note, or -errno. */
static int elf_build_id(const char *path, char *hex, size_t hexlen,
			char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	Elf64_Shdr *sh = NULL;
	int fd, ret = -ENOENT;
	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vmi_err(err, errlen, errno, "%s: %s", path,
			       strerror(errno));
	if (fstat(fd, &st) || pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_shentsize != sizeof(Elf64_Shdr) || !eh.e_shnum ||
	    eh.e_shnum > 4096 || eh.e_shoff > (uint64_t)st.st_size) {
		close(fd);
		return vmi_err(err, errlen, EINVAL, "%s: not an ELF64 file "
			       "with section headers", path);
	}
	sh = calloc(eh.e_shnum, sizeof(*sh));
	if (!sh || pread(fd, sh, eh.e_shnum * sizeof(*sh), (off_t)eh.e_shoff) !=
		   (ssize_t)(eh.e_shnum * sizeof(*sh))) {
		ret = vmi_err(err, errlen, EINVAL, "%s: section headers "
			      "unreadable", path);
		goto out;
	}
	for (unsigned int i = 0; i < eh.e_shnum && ret == -ENOENT; i++) {
		unsigned char buf[4096];
		size_t pos = 0, n;

		if (sh[i].sh_type != SHT_NOTE || sh[i].sh_size > sizeof(buf) ||
		    sh[i].sh_size < sizeof(Elf64_Nhdr))
			continue;
		n = sh[i].sh_size;
		if (pread(fd, buf, n, (off_t)sh[i].sh_offset) != (ssize_t)n)
			continue;
		while (pos + sizeof(Elf64_Nhdr) <= n) {
			Elf64_Nhdr nh;
			size_t name, desc;

			memcpy(&nh, buf + pos, sizeof(nh));
			name = pos + sizeof(nh);
			desc = name + ((nh.n_namesz + 3) & ~3u);
			if (desc > n || nh.n_descsz > n - desc)
				break;
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    !memcmp(buf + name, "GNU", 4)) {
				if (nh.n_descsz * 2 + 1 > hexlen || !nh.n_descsz)
					break;
				for (size_t j = 0; j < nh.n_descsz; j++)
					sprintf(hex + 2 * j, "%02x",
						buf[desc + j]);
				ret = 0;
				break;
			}
			pos = desc + ((nh.n_descsz + 3) & ~3u);
		}
	}
	if (ret == -ENOENT)
		vmi_err(err, errlen, ENOENT, "%s: no .note.gnu.build-id: "
			"cannot check it is the guest's kernel", path);
out:
	free(sh);
	close(fd);
	return ret;
}

int vmi_btf_from_file(const char *path, const char *build_id,
		      struct vmi_btf **out, char *err, size_t errlen)
{
	unsigned char magic[4] = { 0 };
	struct btf *b;
	int fd, ret;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vmi_err(err, errlen, errno, "kernel-btf %s: %s", path,
			       strerror(errno));
	ret = pread(fd, magic, sizeof(magic), 0) == sizeof(magic) ? 0 : -EIO;
	close(fd);
	if (ret)
		return vmi_err(err, errlen, EINVAL, "kernel-btf %s: too short",
			       path);
	if (!memcmp(magic, ELFMAG, SELFMAG)) {
		char id[129];

		ret = elf_build_id(path, id, sizeof(id), err, errlen);
		if (ret)
			return ret;
		if (!build_id || !*build_id)
			return vmi_err(err, errlen, ESTALE, "kernel-btf %s: "
				       "the guest's VMCOREINFO has no BUILD-ID "
				       "to check it against", path);
		if (strcasecmp(id, build_id))
			return vmi_err(err, errlen, ESTALE, "kernel-btf %s: "
				       "build id %s is not the guest's %s",
				       path, id, build_id);
		b = btf__parse_elf(path, NULL);
	} else {
		/* Raw BTF carries no build id (see btf.h). */
		b = btf__parse_raw(path);
	}
	if (!b)
		return vmi_err(err, errlen, EINVAL, "kernel-btf %s: no BTF "
			       "that parses: %s", path, strerror(errno));
	if (wrap(b, out))
		return vmi_err(err, errlen, ENOMEM, "out of memory");
	return 0;
}

void vmi_btf_free(struct vmi_btf *b)
{
	if (!b)
		return;
	btf__free(b->btf);
	free(b);
}

const struct btf *vmi_btf_libbpf(const struct vmi_btf *b)
{
	return b ? b->btf : NULL;
}

/* The struct or union @id resolves to (through typedefs, const...). */
static const struct btf_type *composite(const struct btf *btf, __u32 id,
					__u32 *rid)
{
	int r = btf__resolve_type(btf, id);
	const struct btf_type *t;

	if (r < 0)
		return NULL;
	t = btf__type_by_id(btf, (__u32)r);
	if (!t || !btf_is_composite(t))
		return NULL;
	if (rid)
		*rid = (__u32)r;
	return t;
}

/* Find @name among the members of @t, looking into anonymous ones. */
static int find_member(const struct btf *btf, const struct btf_type *t,
		       const char *name, int depth, uint64_t *bitoff,
		       __u32 *type, bool *bitfield)
{
	const struct btf_member *m = btf_members(t);
	unsigned int n = btf_vlen(t);

	if (depth > MEMBER_DEPTH_MAX)
		return -ELOOP;
	for (unsigned int i = 0; i < n; i++) {
		const char *mn = btf__name_by_offset(btf, m[i].name_off);
		uint64_t off = btf_member_bit_offset(t, i);

		if (mn && *mn) {
			if (strcmp(mn, name))
				continue;
			*bitoff = off;
			*type = m[i].type;
			*bitfield = btf_member_bitfield_size(t, i) != 0;
			return 0;
		}
		const struct btf_type *sub = composite(btf, m[i].type, NULL);

		if (sub && !find_member(btf, sub, name, depth + 1, bitoff,
					type, bitfield)) {
			*bitoff += off;
			return 0;
		}
	}
	return -ENOENT;
}

static const struct btf_type *find_composite(const struct btf *btf,
					     const char *name, __u32 *id)
{
	__s32 r = btf__find_by_name_kind(btf, name, BTF_KIND_STRUCT);

	if (r < 0)
		r = btf__find_by_name_kind(btf, name, BTF_KIND_UNION);
	if (r < 0)
		return NULL;
	*id = (__u32)r;
	return btf__type_by_id(btf, (__u32)r);
}

int vmi_btf_member(const struct vmi_btf *b, const char *path,
		   uint64_t *offset, uint64_t *size)
{
	char buf[256], *save = NULL, *word;
	const struct btf_type *t;
	uint64_t total = 0;
	__u32 id = 0;
	int parts = 0;
	bool bitfield = false;

	if (!b || strlen(path) >= sizeof(buf))
		return -ENOENT;
	strcpy(buf, path);
	word = strtok_r(buf, ".", &save);
	if (!word || !(t = find_composite(b->btf, word, &id)))
		return -ENOENT;
	while ((word = strtok_r(NULL, ".", &save))) {
		uint64_t bitoff;
		__u32 mtype;

		if (++parts > PATH_MAX_PARTS || !t)
			return -ENOENT;
		if (find_member(b->btf, t, word, 0, &bitoff, &mtype,
				&bitfield))
			return -ENOENT;
		total += bitoff;
		id = mtype;
		/* The next word needs a struct; the last may be anything. */
		t = composite(b->btf, mtype, NULL);
	}
	if (!parts)
		return -ENOENT;
	if (bitfield || (total & 7))
		return -EDOM;
	*offset = total / 8;
	if (size) {
		__s64 s = btf__resolve_size(b->btf, id);

		if (s < 0)
			return -ENOENT;
		*size = (uint64_t)s;
	}
	return 0;
}

int vmi_btf_type_size(const struct vmi_btf *b, const char *name,
		      uint64_t *size)
{
	static const int kinds[] = { BTF_KIND_STRUCT, BTF_KIND_UNION,
				     BTF_KIND_TYPEDEF, BTF_KIND_INT,
				     BTF_KIND_ENUM };
	__s32 id = -1;
	__s64 s;

	if (!b)
		return -ENOENT;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]) && id < 0; i++)
		id = btf__find_by_name_kind(b->btf, name, kinds[i]);
	if (id < 0)
		return -ENOENT;
	s = btf__resolve_size(b->btf, (__u32)id);
	if (s < 0)
		return -ENOENT;
	*size = (uint64_t)s;
	return 0;
}
