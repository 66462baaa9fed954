// SPDX-License-Identifier: MIT
/*
 * Guest-physical addressing (`layout = auto`): parsing QEMU's `info mtree
 * -f` (texts as QEMU 7.2 prints them for pc and q35 with 5 GiB), lookups,
 * and what vmemfs learns over QMP (qom-list / qom-get /
 * human-monitor-command / query-vmem) from a scripted QEMU.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/config.h"
#include "../vmemfs/gpa.h"
#include "../vmemfs/qemu_info.h"
#include "lib/fakeqmp.h"
#include "lib/suite.h"

#define G (1024ull * 1024 * 1024)

/* QEMU 7.2 `info mtree -f`, -M pc -m 5G, memory-backend-file id=ram0,
 * paused before the BIOS ran (ROMs still over 0xc0000-0xfffff). */
static const char mtree_pc[] =
"FlatView #0\n"
" AS \"I/O\", root: io\n"
" Root memory region: io\n"
"  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan\n"
"FlatView #1\n"
" AS \"cpu-smm-0\", root: memory\n"
" Root memory region: memory\n"
"  0000000000000000-00000000000bffff (prio 0, ram): ram0\n"
"  0000000000100000-00000000bfffffff (prio 0, ram): ram0 @0000000000100000\n"
"FlatView #2\n"
" AS \"memory\", root: system\n"
" AS \"cpu-memory-0\", root: system\n"
" Root memory region: system\n"
"  0000000000000000-00000000000bffff (prio 0, ram): ram0\n"
"  00000000000c0000-00000000000dffff (prio 1, rom): pc.rom\n"
"  00000000000e0000-00000000000fffff (prio 0, rom): pc.bios @0000000000020000\n"
"  0000000000100000-00000000bfffffff (prio 0, ram): ram0 @0000000000100000\n"
"  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\n"
"  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\n"
"  0000000100000000-000000017fffffff (prio 0, ram): ram0 @00000000c0000000\n"
"FlatView #3\n"
" AS \"PIIX4_PM\", root: bus master container\n"
"  00000000000a0000-00000000000bffff (prio 0, ram): ram0 @00000000000a0000\n";

/* -M q35 -m 5G: the switch at 2 GiB. */
static const char mtree_q35[] =
"FlatView #0\n"
" AS \"memory\", root: system\n"
" AS \"cpu-memory-0\", root: system\n"
" Root memory region: system\n"
"  0000000000000000-00000000000bffff (prio 0, ram): ram0\n"
"  0000000000100000-000000007fffffff (prio 0, ram): ram0 @0000000000100000\n"
"  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\n"
"  0000000100000000-00000001bfffffff (prio 0, ram): ram0 @0000000080000000\n"
"  0000000200000000-00000002000fffff (prio 0, ram): vga.vram\n";

/* -M pc -m 1G after SeaBIOS shadowed its ROMs into RAM: rom/ram pieces
 * of ram0 that join into one extent. */
static const char mtree_booted[] =
"FlatView #2\n"
" AS \"memory\", root: system\n"
"  0000000000000000-00000000000c2fff (prio 0, ram): ram0\n"
"  00000000000c3000-00000000000e7fff (prio 0, rom): ram0 @00000000000c3000\n"
"  00000000000e8000-00000000000effff (prio 0, ram): ram0 @00000000000e8000\n"
"  00000000000f0000-00000000000fffff (prio 0, rom): ram0 @00000000000f0000\n"
"  0000000000100000-000000003fffffff (prio 0, ram): ram0 @0000000000100000\n"
"  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\n";

START_TEST(parse_pc)
{
	struct vmem_gpa_map m;
	const struct vmem_gpa_ext *e;
	char err[256];
	uint64_t next;

	ck_assert_msg(vmem_gpa_parse_mtree(&m, mtree_pc, "ram0", 5 * G, err,
					   sizeof(err)) == 0, "%s", err);
	/* The ROMs over [0xc0000, 0x100000) cut the low RAM in two. */
	ck_assert_uint_eq(m.n, 3);
	ck_assert_uint_eq(m.ext[0].gpa, 0);
	ck_assert_uint_eq(m.ext[0].len, 0xc0000);
	ck_assert_uint_eq(m.ext[0].ram, 0);
	ck_assert_uint_eq(m.ext[1].gpa, 0x100000);
	ck_assert_uint_eq(m.ext[1].len, 3 * G - 0x100000);
	ck_assert_uint_eq(m.ext[1].ram, 0x100000);
	ck_assert_uint_eq(m.ext[2].gpa, 4 * G);
	ck_assert_uint_eq(m.ext[2].len, 2 * G);
	ck_assert_uint_eq(m.ext[2].ram, 3 * G);
	ck_assert_uint_eq(m.size, 6 * G);

	ck_assert_ptr_null(vmem_gpa_lookup(&m, 0xc0000, &next));	/* ROM */
	ck_assert_uint_eq(next, 0x100000);
	e = vmem_gpa_lookup(&m, 3 * G - 1, &next);
	ck_assert_ptr_eq(e, &m.ext[1]);
	ck_assert_ptr_null(vmem_gpa_lookup(&m, 3 * G, &next));	/* PCI hole */
	ck_assert_uint_eq(next, 4 * G);
	e = vmem_gpa_lookup(&m, 4 * G + 5, &next);
	ck_assert_ptr_eq(e, &m.ext[2]);
	ck_assert_ptr_null(vmem_gpa_lookup(&m, 6 * G, &next));
	ck_assert_uint_eq(next, 6 * G);
	vmem_gpa_free(&m);
}
END_TEST

START_TEST(parse_q35_and_errors)
{
	struct vmem_gpa_map m;
	char err[256];

	ck_assert_msg(vmem_gpa_parse_mtree(&m, mtree_q35, "ram0", 5 * G, err,
					   sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(m.n, 3);
	ck_assert_uint_eq(m.ext[1].gpa + m.ext[1].len, 2 * G);
	ck_assert_uint_eq(m.ext[2].gpa, 4 * G);
	ck_assert_uint_eq(m.ext[2].ram, 2 * G);
	ck_assert_uint_eq(m.size, 7 * G);	/* vga.vram is not ours */
	vmem_gpa_free(&m);

	/* After the BIOS shadowed itself: one extent, no ROM hole. */
	ck_assert_msg(vmem_gpa_parse_mtree(&m, mtree_booted, "ram0", 1 * G, err,
					   sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(m.n, 1);
	ck_assert_uint_eq(m.ext[0].len, 1 * G);
	vmem_gpa_free(&m);

	/* RAM larger than the config says: refuse, naming the line. */
	ck_assert_int_eq(vmem_gpa_parse_mtree(&m, mtree_q35, "ram0", 4 * G, err,
					      sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "info mtree line 8:"));
	/* Another backend's name finds nothing. */
	ck_assert_int_eq(vmem_gpa_parse_mtree(&m, mtree_q35, "ram1", 5 * G, err,
					      sizeof(err)), -1);
	ck_assert_str_eq(err, "info mtree -f shows no RAM of memory backend 'ram1' "
			 "in address space 'memory'");
	/* Not a flat view at all. */
	ck_assert_int_eq(vmem_gpa_parse_mtree(&m, "address-space: memory\n", "ram0",
					      1 * G, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "(no such flat view)"));
	/* The same GPA twice is not a flat view: refuse rather than guess. */
	ck_assert_int_eq(vmem_gpa_parse_mtree(&m,
		" AS \"memory\", root: system\n"
		"  0000000000000000-000000000fffffff (prio 0, ram): r\n"
		"  0000000008000000-0000000008ffffff (prio 0, ram): r @0000000010000000\n",
		"r", 1 * G, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "mapped twice"));
}
END_TEST

START_TEST(flat_is_identity)
{
	struct vmem_gpa_map m;
	uint64_t next;

	ck_assert_int_eq(vmem_gpa_flat(&m, 512 << 20), 0);
	ck_assert_uint_eq(m.size, 512 << 20);
	ck_assert_uint_eq(vmem_gpa_lookup(&m, 12345, &next)->ram, 0);
	vmem_gpa_free(&m);
}
END_TEST

/* A scripted QEMU that knows one memory-backend-file. */
static char mem_path[64];
static pid_t runner;	/* names the scratch file; main removes it */

static bool qemu_cmd(struct fakeqmp *s, int fd, json_object *cmd, void *opaque)
{
	json_object *ex, *args = NULL, *v;
	const char *name;

	(void)s;
	(void)opaque;
	json_object_object_get_ex(cmd, "execute", &ex);
	json_object_object_get_ex(cmd, "arguments", &args);
	name = json_object_get_string(ex);
	if (strcmp(name, "qom-list") == 0) {
		fakeqmp_reply(fd, cmd, json_tokener_parse(
			"[{\"name\": \"ram1\", \"type\": \"child<memory-backend-ram>\"},"
			" {\"name\": \"other\", \"type\": \"child<memory-backend-file>\"},"
			" {\"name\": \"ram0\", \"type\": \"child<memory-backend-file>\"}]"));
	} else if (strcmp(name, "qom-get") == 0) {
		json_object_object_get_ex(args, "path", &v);
		fakeqmp_reply(fd, cmd, json_object_new_string(
			strcmp(json_object_get_string(v), "/objects/ram0") == 0 ?
			mem_path : "/dev/shm/someone-else"));
	} else if (strcmp(name, "human-monitor-command") == 0) {
		fakeqmp_reply(fd, cmd, json_object_new_string(mtree_pc));
	} else if (strcmp(name, "query-vmem") == 0) {
		fakeqmp_reply(fd, cmd, json_tokener_parse(
			"{\"ram-size\": 5368709120, \"subhosts\": ["
			" {\"uri\": \"nbd://10.0.0.2:10809\", \"start\": 1073741824, \"end\": 2147483648},"
			" {\"uri\": \"nbd://10.0.0.3:10809\", \"start\": 3221225472, \"end\": 5368709120}]}"));
	} else {
		fakeqmp_error(fd, cmd, "unknown command");
	}
	json_object_put(cmd);
	return true;
}

START_TEST(learn_from_qemu)
{
	struct fakeqmp sv = { 0 };
	struct vmem_config cfg;
	struct vmem_gpa_map m;
	struct vmem_qmp *q;
	struct vmem_vm *vm;
	char err[256], conf[512], *memdev;
	int fd;

	snprintf(mem_path, sizeof(mem_path), "/dev/shm/vmt-gpa-%d.mem", (int)runner);
	fd = open(mem_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 5 * G), 0);
	close(fd);
	fakeqmp_start(&sv, qemu_cmd, NULL, 1);
	q = vmem_qmp_new(sv.path, 2000);

	memdev = vmem_qemu_memdev(q, mem_path, err, sizeof(err));
	ck_assert_msg(memdev != NULL, "%s", err);
	ck_assert_str_eq(memdev, "ram0");
	ck_assert_int_eq(vmem_qemu_gpa_map(q, memdev, 5 * G, &m, err, sizeof(err)), 0);
	ck_assert_uint_eq(m.n, 3);
	ck_assert_uint_eq(m.ext[2].ram, 3 * G);
	vmem_gpa_free(&m);
	free(memdev);

	/* One subhost line overrides the learned range it overlaps. */
	snprintf(conf, sizeof(conf), "[v]\nmemory-file = %s\nqmp = %s\n"
		 "subhost = nbd://127.0.0.1:1 1536M-2G\n", mem_path, sv.path);
	ck_assert_int_eq(vmem_config_parse(conf, "v.conf", &cfg, err, sizeof(err)), 0);
	vm = &cfg.vms[0];
	ck_assert_int_eq(vmem_vm_resolve(vm, "v.conf", err, sizeof(err)), 0);
	ck_assert_int_eq(vmem_qemu_learn_subhosts(q, vm, err, sizeof(err)), 1);
	ck_assert_uint_eq(vm->n_subhosts, 2);
	ck_assert_str_eq(vm->subhosts[0].uri, "nbd://127.0.0.1:1");
	ck_assert_uint_eq(vm->subhosts[0].start, 1536ull << 20);
	ck_assert_str_eq(vm->subhosts[1].uri, "nbd://10.0.0.3:10809");
	ck_assert_uint_eq(vm->subhosts[1].start, 3 * G);
	ck_assert_uint_eq(vm->subhosts[1].end, 5 * G);
	ck_assert_uint_eq(vm->subhosts[1].line, 0);
	vmem_config_free(&cfg);

	/* A config whose ram-size disagrees with QEMU is refused. */
	snprintf(conf, sizeof(conf), "[v]\nmemory-file = %s\nqmp = %s\nram-size = 4G\n",
		 mem_path, sv.path);
	ck_assert_int_eq(vmem_config_parse(conf, "v.conf", &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(vmem_vm_resolve(&cfg.vms[0], "v.conf", err, sizeof(err)), 0);
	ck_assert_int_eq(vmem_qemu_learn_subhosts(q, &cfg.vms[0], err, sizeof(err)), -1);
	ck_assert_str_eq(err, "QEMU says ram-size is 5368709120 bytes, the config 4294967296");
	vmem_config_free(&cfg);

	vmem_qmp_free(q);
	fakeqmp_stop(&sv);
	unlink(mem_path);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gpa");
	TCase *tc = vt_tcase_checked(s, "layout", NULL, NULL, 0);
	int rc;

	runner = getpid();

	tcase_add_test(tc, parse_pc);
	tcase_add_test(tc, parse_q35_and_errors);
	tcase_add_test(tc, flat_is_identity);
	tcase_add_test(tc, learn_from_qemu);
	rc = vt_run_suite(s);
	/* Check skips a failed test's cleanup: remove its file here too. */
	snprintf(mem_path, sizeof(mem_path), "/dev/shm/vmt-gpa-%d.mem", (int)runner);
	unlink(mem_path);
	return rc;
}
