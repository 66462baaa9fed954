// SPDX-License-Identifier: MIT
/*
 * The `vmcore` ELF view (vmemfs/vmcore.c) without FUSE or a guest: a core
 * is built for a small made-up guest-physical map, written out through
 * vmem_vmcore_read() in odd-sized pieces from a reader that returns a
 * known pattern per GPA, and then checked with binutils' readelf, not
 * with our own ELF structures: the program headers readelf lists must be
 * the ones the map and the kernel's image ask for, and the file bytes of
 * every PT_LOAD must be the pattern of its p_paddr.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../vmemfs/vmcore.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define SEED 0x766d636f7265ULL		/* "vmcore" */
#define PAGE_OFFSET 0xffff9b4a40000000ULL
#define IMAGE_VADDR 0xffffffff9a200000ULL

/* A pc-like map: low RAM in two adjacent pieces (one run), a hole, and
 * two runs above it. */
static struct vmem_gpa_ext exts[] = {
	{ 0x0, 0x9f000, 0x0 },
	{ 0x9f000, 0x61000, 0x9f000 },
	{ 0x200000, 0x300000, 0x100000 },
	{ 0x1000000, 0x180000, 0x400000 },
};
static struct vmem_gpa_map map = { exts, 4, 0x1180000 };

/* Three runs: [0, 1M), [2M, 5M), [16M, 17.5M). */
static const struct { uint64_t gpa, len; } runs[] = {
	{ 0x0, 0x100000 }, { 0x200000, 0x300000 }, { 0x1000000, 0x180000 },
};
#define NRUNS 3
#define RAM_BYTES (0x100000 + 0x300000 + 0x180000)

/* A VMCOREINFO note as the kernel lays it out. */
static size_t make_note(unsigned char *buf)
{
	static const char text[] = "OSRELEASE=6.1.0-test\nKERNELOFFSET=19200000\n";
	uint32_t namesz = 11, descsz = sizeof(text) - 1, type = 0;
	size_t n = 0;

	memcpy(buf + n, &namesz, 4);
	memcpy(buf + n + 4, &descsz, 4);
	memcpy(buf + n + 8, &type, 4);
	n += 12;
	memcpy(buf + n, "VMCOREINFO\0\0", 12);
	n += 12;
	memcpy(buf + n, text, descsz);
	n += (descsz + 3) / 4 * 4;
	return n;
}

static int reads, fail_at_read = -1;

static ssize_t pattern_read(void *ctx, void *buf, size_t len, uint64_t gpa)
{
	(void)ctx;
	if (reads++ == fail_at_read)
		return -EIO;
	vt_pattern_fill(buf, gpa, len, SEED);
	return (ssize_t)len;
}

static ssize_t short_read(void *ctx, void *buf, size_t len, uint64_t gpa)
{
	(void)ctx;
	vt_pattern_fill(buf, gpa, len, SEED);
	return (ssize_t)(len > 1 ? len - 1 : len);
}

/* Write all of @vc to a new file in odd-sized reads; returns its path. */
static const char *write_core(const struct vmem_vmcore *vc)
{
	static char path[64];
	unsigned char *buf = malloc(MiB);
	uint64_t off = 0, step = 4093;
	int fd;

	snprintf(path, sizeof(path), "/tmp/check_vmcore-%d.core", (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(buf && fd >= 0);
	for (;;) {
		ssize_t n = vmem_vmcore_read(vc, pattern_read, NULL, buf, step,
					     off);

		ck_assert_msg(n >= 0, "read at %" PRIu64 ": %s", off,
			      strerror((int)-n));
		if (n == 0)
			break;
		ck_assert(write(fd, buf, (size_t)n) == n);
		off += (uint64_t)n;
		/* Pieces that cross the header/data and run boundaries. */
		step = step * 7 % (MiB - 1) + 1;
	}
	ck_assert_uint_eq(off, vc->size);
	close(fd);
	free(buf);
	return path;
}

struct phdr {
	char type[16];
	uint64_t off, vaddr, paddr, filesz, memsz;
};

/* `readelf -lW` of @path: the program headers. */
static int readelf_phdrs(const char *path, struct phdr *ph, int max,
			 char *elfhdr, size_t elfhdr_len)
{
	char *argv[] = { "readelf", "-hlW", (char *)path, NULL };
	static char out[1 << 16];
	char err[1024], *line, *save = NULL;
	int rc, n = 0;

	rc = vt_run(argv, out, sizeof(out), err, sizeof(err), 10000);
	ck_assert_msg(rc == 0, "readelf -hlW: %d: %s", rc, err);
	snprintf(elfhdr, elfhdr_len, "%s", out);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct phdr p;

		if (sscanf(line, " %15s 0x%" SCNx64 " 0x%" SCNx64 " 0x%"
			   SCNx64 " 0x%" SCNx64 " 0x%" SCNx64, p.type, &p.off,
			   &p.vaddr, &p.paddr, &p.filesz, &p.memsz) == 6) {
			ck_assert_int_lt(n, max);
			ph[n++] = p;
		}
	}
	return n;
}

static void build(struct vmem_vmcore *vc, bool known, const void *note,
		  size_t note_len, uint64_t image_paddr, uint64_t image_len)
{
	struct vmem_vmcore_info in = {
		.map = &map, .note = note, .note_len = note_len,
		.kernel_known = known, .page_offset = PAGE_OFFSET,
		.image_vaddr = IMAGE_VADDR, .image_paddr = image_paddr,
		.image_len = image_len,
	};
	char err[256];

	ck_assert_msg(vmem_vmcore_build(vc, &in, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_uint_eq(vmem_vmcore_size(&in), vc->size);
}

/* Every byte of each PT_LOAD (sampled) is the pattern of its GPA. */
static void check_loads(const char *path, const struct phdr *ph, int n)
{
	unsigned char got[4096], want[4096];
	int fd = open(path, O_RDONLY);

	ck_assert(fd >= 0);
	for (int i = 0; i < n; i++) {
		if (strcmp(ph[i].type, "LOAD") != 0)
			continue;
		for (uint64_t at = 0; at < ph[i].filesz; at += 61 * 4096 + 17) {
			size_t len = sizeof(got);

			if (len > ph[i].filesz - at)
				len = ph[i].filesz - at;
			ck_assert(pread(fd, got, len, (off_t)(ph[i].off + at)) ==
				  (ssize_t)len);
			vt_pattern_fill(want, ph[i].paddr + at, len, SEED);
			ck_assert_msg(memcmp(got, want, len) == 0, "PT_LOAD %d "
				      "(paddr 0x%" PRIx64 ") at +0x%" PRIx64
				      " is not its GPA's bytes", i, ph[i].paddr,
				      at);
		}
		/* And its last byte. */
		ck_assert(pread(fd, got, 1, (off_t)(ph[i].off + ph[i].filesz -
						    1)) == 1);
		vt_pattern_fill(want, ph[i].paddr + ph[i].filesz - 1, 1, SEED);
		ck_assert_int_eq(got[0], want[0]);
	}
	close(fd);
}

START_TEST(test_known_kernel)
{
	unsigned char note[256], got[256];
	struct vmem_vmcore vc;
	struct phdr ph[16];
	static char hdr[1 << 16];
	const char *path;
	size_t note_len = make_note(note);
	uint64_t data_off;
	int n, fd, i;

	/* The image at 2.5M, 1M long: inside the run [2M, 5M). */
	build(&vc, true, note, note_len, 0x280000, MiB);
	path = write_core(&vc);
	n = readelf_phdrs(path, ph, 16, hdr, sizeof(hdr));
	ck_assert_msg(strstr(hdr, "CORE (Core file)"), "%s", hdr);
	ck_assert_msg(strstr(hdr, "Advanced Micro Devices X86-64"), "%s", hdr);
	ck_assert_msg(strstr(hdr, "ELF64") && strstr(hdr, "little endian"),
		      "%s", hdr);
	ck_assert_msg(strstr(hdr, "Start of program headers:          64 "),
		      "%s", hdr);
	ck_assert_int_eq(n, 1 + 1 + NRUNS);

	ck_assert_str_eq(ph[0].type, "NOTE");
	ck_assert_uint_eq(ph[0].filesz, note_len);
	fd = open(path, O_RDONLY);
	ck_assert(pread(fd, got, note_len, (off_t)ph[0].off) ==
		  (ssize_t)note_len);
	close(fd);
	ck_assert_msg(memcmp(got, note, note_len) == 0, "note not byte for byte");

	/* The data part starts at a page, right after the header. */
	data_off = ph[2].off;
	ck_assert_uint_eq(data_off % 4096, 0);
	ck_assert_uint_ge(data_off, ph[0].off + note_len);
	for (i = 0; i < NRUNS; i++) {
		const struct phdr *p = &ph[2 + i];

		ck_assert_str_eq(p->type, "LOAD");
		ck_assert_uint_eq(p->paddr, runs[i].gpa);
		ck_assert_uint_eq(p->vaddr, PAGE_OFFSET + runs[i].gpa);
		ck_assert_uint_eq(p->filesz, runs[i].len);
		ck_assert_uint_eq(p->memsz, runs[i].len);
		ck_assert_uint_eq(p->off, data_off);
		data_off += runs[i].len;
	}
	ck_assert_uint_eq(data_off, vc.size);
	ck_assert_uint_eq(vc.size, ph[2].off + RAM_BYTES);

	/* The image: its own vaddr, the same file bytes as its RAM. */
	ck_assert_str_eq(ph[1].type, "LOAD");
	ck_assert_uint_eq(ph[1].vaddr, IMAGE_VADDR);
	ck_assert_uint_eq(ph[1].paddr, 0x280000);
	ck_assert_uint_eq(ph[1].filesz, MiB);
	ck_assert_uint_eq(ph[1].off, ph[3].off + 0x80000);
	check_loads(path, ph, n);
	unlink(path);
	vmem_vmcore_free(&vc);
}
END_TEST

/* Unknown kernel: the PT_LOADs only, addressed by GPA. */
START_TEST(test_unknown_kernel)
{
	struct vmem_vmcore vc;
	struct phdr ph[16];
	static char hdr[1 << 16];
	const char *path;
	int n, i;

	build(&vc, false, NULL, 0, 0x280000, MiB);
	path = write_core(&vc);
	n = readelf_phdrs(path, ph, 16, hdr, sizeof(hdr));
	ck_assert_int_eq(n, NRUNS);
	for (i = 0; i < NRUNS; i++) {
		ck_assert_str_eq(ph[i].type, "LOAD");
		ck_assert_uint_eq(ph[i].paddr, runs[i].gpa);
		ck_assert_uint_eq(ph[i].vaddr, runs[i].gpa);
		ck_assert_uint_eq(ph[i].filesz, runs[i].len);
	}
	ck_assert_uint_eq(ph[0].off, 4096);
	check_loads(path, ph, n);
	unlink(path);
	vmem_vmcore_free(&vc);
}
END_TEST

/* An image that runs past its RAM run is clipped; one outside RAM is
 * left out. */
START_TEST(test_image_edges)
{
	struct vmem_vmcore vc;
	struct phdr ph[16];
	static char hdr[1 << 16];
	const char *path;
	int n;

	build(&vc, true, NULL, 0, 0x1100000, 4 * MiB);
	path = write_core(&vc);
	n = readelf_phdrs(path, ph, 16, hdr, sizeof(hdr));
	ck_assert_int_eq(n, 1 + NRUNS);
	ck_assert_uint_eq(ph[0].vaddr, IMAGE_VADDR);
	ck_assert_uint_eq(ph[0].filesz, 0x80000);
	check_loads(path, ph, n);
	unlink(path);
	vmem_vmcore_free(&vc);

	build(&vc, true, NULL, 0, 0x100000, MiB);	/* in the hole */
	ck_assert_uint_eq(vc.nphdr, NRUNS);
	vmem_vmcore_free(&vc);
}
END_TEST

/* Reads clip at the end, and the reader's failures are not EOF. */
START_TEST(test_read_errors)
{
	unsigned char buf[8192];
	unsigned char note[256];
	struct vmem_vmcore vc;
	size_t note_len = make_note(note);

	build(&vc, true, note, note_len, 0x280000, MiB);
	ck_assert_int_eq(vmem_vmcore_read(&vc, pattern_read, NULL, buf, 100,
					  vc.size), 0);
	ck_assert_int_eq(vmem_vmcore_read(&vc, pattern_read, NULL, buf, 8192,
					  vc.size - 10), 10);
	reads = 0;
	fail_at_read = 1;	/* the second run of a read across runs */
	ck_assert_int_eq(vmem_vmcore_read(&vc, pattern_read, NULL, buf, 8192,
					  vc.hdr_len + 0x100000 - 4096), -EIO);
	fail_at_read = -1;
	ck_assert_int_eq(vmem_vmcore_read(&vc, short_read, NULL, buf, 8192,
					  vc.hdr_len), -EIO);
	/* Header only: no data read at all. */
	reads = 0;
	ck_assert_int_eq(vmem_vmcore_read(&vc, pattern_read, NULL, buf, 64, 0),
			 64);
	ck_assert_int_eq(reads, 0);
	vmem_vmcore_free(&vc);
}
END_TEST

START_TEST(test_bad_input)
{
	struct vmem_gpa_map empty = { NULL, 0, 0 };
	struct vmem_gpa_ext overlap[] = {
		{ 0x0, 0x200000, 0 }, { 0x100000, 0x100000, 0x200000 },
	};
	struct vmem_gpa_map bad = { overlap, 2, 0x200000 };
	struct vmem_vmcore_info in = { .map = &empty };
	unsigned char note[VMEM_VMCORE_NOTE_MAX + 1] = { 0 };
	struct vmem_vmcore vc;
	char err[256];

	ck_assert_int_eq(vmem_vmcore_build(&vc, &in, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "no guest-physical RAM"), "%s", err);
	in.map = &bad;
	ck_assert_int_eq(vmem_vmcore_build(&vc, &in, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "not sorted"), "%s", err);
	in.map = &map;
	in.note = note;
	in.note_len = sizeof(note);
	ck_assert_int_eq(vmem_vmcore_build(&vc, &in, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "128 KiB"), "%s", err);
	ck_assert_uint_eq(vmem_vmcore_size(&in), 0);
}
END_TEST

static Suite *vmcore_suite(void)
{
	Suite *s = suite_create("vmcore");
	TCase *tc = tcase_create("elf");

	tcase_add_test(tc, test_known_kernel);
	tcase_add_test(tc, test_unknown_kernel);
	tcase_add_test(tc, test_image_edges);
	tcase_add_test(tc, test_read_errors);
	tcase_add_test(tc, test_bad_input);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return vt_run_suite(vmcore_suite());
}
