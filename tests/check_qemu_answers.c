// SPDX-License-Identifier: MIT
/*
 * What QEMU answers is checked like a config line: the extents of
 * `info mtree -f` (no wrapping length, nothing at or above 2^52, 4K
 * alignment, inside ram-size) and the sub-hosts of query-vmem (the
 * config's URI and range rules, and its limit on their number), each
 * refused with a message that names the command and the value.  The
 * answers come from a scripted QEMU over QMP, as vmemfs asks for them.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/config.h"
#include "../vmemfs/gpa.h"
#include "../vmemfs/qemu_info.h"
#include "lib/fakeqmp.h"
#include "lib/suite.h"

#define G (1ull << 30)

/* What the scripted QEMU answers, set by each test before it asks. */
static const char *mtree_text;
static const char *vmem_answer;		/* query-vmem "return" JSON */
static const char *qom_list_answer;	/* qom-list "return" JSON */

static bool qemu_cmd(struct fakeqmp *s, int fd, json_object *cmd,
		     void *opaque)
{
	json_object *ex;
	const char *name;

	(void)s;
	(void)opaque;
	json_object_object_get_ex(cmd, "execute", &ex);
	name = json_object_get_string(ex);
	if (strcmp(name, "human-monitor-command") == 0)
		fakeqmp_reply(fd, cmd, json_object_new_string(mtree_text));
	else if (strcmp(name, "query-vmem") == 0)
		fakeqmp_reply(fd, cmd, json_tokener_parse(vmem_answer));
	else if (strcmp(name, "qom-list") == 0)
		fakeqmp_reply(fd, cmd, json_tokener_parse(qom_list_answer));
	else if (strcmp(name, "qom-get") == 0)
		fakeqmp_reply(fd, cmd, json_object_new_string("/dev/null"));
	else
		fakeqmp_error(fd, cmd, "unknown command");
	json_object_put(cmd);
	return true;
}

static struct fakeqmp sv;
static struct vmem_qmp *q;

static void qemu_up(void)
{
	memset(&sv, 0, sizeof(sv));
	fakeqmp_start(&sv, qemu_cmd, NULL, 1);
	q = vmem_qmp_new(sv.path, 2000);
	ck_assert_ptr_nonnull(q);
}

static void qemu_down(void)
{
	vmem_qmp_free(q);
	fakeqmp_stop(&sv);
}

/* ---- info mtree -f -------------------------------------------------- */

#define AS "FlatView #0\n AS \"memory\", root: system\n"

/* Ask for the map of ram0 (1 GiB) with @text as QEMU's answer. */
static int gpa_map(const char *text, struct vmem_gpa_map *m, char *err,
		   size_t errlen)
{
	mtree_text = text;
	return vmem_qemu_gpa_map(q, "ram0", 1 * G, m, err, errlen);
}

#define expect_mtree_err(text, msg) do {				\
	struct vmem_gpa_map m_;						\
	char e_[512] = "";						\
	int r_ = gpa_map(text, &m_, e_, sizeof(e_));			\
									\
	ck_assert_msg(r_ == -1, "accepted (size %llu), wanted '%s'",	\
		      r_ ? 0ull : (unsigned long long)m_.size, msg);	\
	ck_assert_str_eq(e_, msg);					\
} while (0)

START_TEST(mtree_refused)
{
	qemu_up();
	/* the whole space: its length 2^64 wrapped to 0, mem had size 0 */
	expect_mtree_err(AS
		"  0000000000000000-ffffffffffffffff (prio 0, ram): ram0\n",
		"info mtree line 3: '0000000000000000-ffffffffffffffff "
		"(prio 0, ram): ram0': ends above the largest supported "
		"guest-physical address 4096T");
	/* at 2^63: stat of mem failed with EIO */
	expect_mtree_err(AS
		"  0000000000000000-000000000009ffff (prio 0, ram): ram0\n"
		"  8000000000000000-8000000000000fff (prio 0, ram): ram0 "
		"@00000000000a0000\n",
		"info mtree line 4: '8000000000000000-8000000000000fff "
		"(prio 0, ram): ram0 @00000000000a0000': ends above the "
		"largest supported guest-physical address 4096T");
	/* one page above the limit */
	expect_mtree_err(AS
		"  0010000000000000-0010000000000fff (prio 0, ram): ram0\n",
		"info mtree line 3: '0010000000000000-0010000000000fff "
		"(prio 0, ram): ram0': ends above the largest supported "
		"guest-physical address 4096T");
	/* sscanf clamped 17 digits to 2^64-1 */
	expect_mtree_err(AS
		"  00000000000000000-00000000000000fff (prio 0, ram): ram0\n",
		"info mtree line 3: '00000000000000000-00000000000000fff "
		"(prio 0, ram): ram0': has a number wider than 64 bits");
	expect_mtree_err(AS
		"  0000000000000000-0000000000000fff (prio 0, ram): ram0 "
		"@10000000000000000\n",
		"info mtree line 3: '0000000000000000-0000000000000fff "
		"(prio 0, ram): ram0 @10000000000000000': has a number wider "
		"than 64 bits");
	/* not 4K-aligned, on either side */
	expect_mtree_err(AS
		"  0000000000000000-00000000000007ff (prio 0, ram): ram0\n",
		"info mtree line 3: '0000000000000000-00000000000007ff "
		"(prio 0, ram): ram0': is not 4K-aligned");
	expect_mtree_err(AS
		"  0000000000001000-0000000000001fff (prio 0, ram): ram0 "
		"@0000000000000800\n",
		"info mtree line 3: '0000000000001000-0000000000001fff "
		"(prio 0, ram): ram0 @0000000000000800': is not 4K-aligned");
	/* a RAM offset that wraps: off + len = 2^64 + 4K */
	expect_mtree_err(AS
		"  0000000000000000-0000000000001fff (prio 0, ram): ram0 "
		"@fffffffffffff000\n",
		"info mtree line 3: '0000000000000000-0000000000001fff "
		"(prio 0, ram): ram0 @fffffffffffff000': has a RAM offset "
		"above the largest supported ram-size");
	/* beyond this VM's RAM */
	expect_mtree_err(AS
		"  0000000000000000-000000003fffffff (prio 0, ram): ram0 "
		"@0000000000001000\n",
		"info mtree line 3: '0000000000000000-000000003fffffff "
		"(prio 0, ram): ram0 @0000000000001000': RAM of 'ram0' outside "
		"its 1073741824 bytes");
	expect_mtree_err(AS
		"  0000000000000000-0000000000000fff (prio 0, ram): ram0 @x\n",
		"info mtree line 3: '0000000000000000-0000000000000fff "
		"(prio 0, ram): ram0 @x': its RAM offset '@x' is not @HEX");
	qemu_down();
}
END_TEST

START_TEST(mtree_limits_accepted)
{
	struct vmem_gpa_map m;
	char err[512];

	qemu_up();
	/* RAM ending exactly at 2^52, and RAM ending exactly at ram-size */
	ck_assert_msg(gpa_map(AS
		"  0000000000000000-000000003fffefff (prio 0, ram): ram0\n"
		"  000ffffffffff000-000fffffffffffff (prio 0, ram): ram0 "
		"@000000003ffff000\n", &m, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(m.n, 2);
	ck_assert_uint_eq(m.size, 1ull << 52);
	ck_assert_uint_eq(m.ext[1].ram + m.ext[1].len, 1 * G);
	vmem_gpa_free(&m);
	/* other regions may be anything: they are not ours */
	ck_assert_msg(gpa_map(AS
		"  0000000000000000-000000003fffffff (prio 0, ram): ram0\n"
		"  00000000fed00000-00000000fed003ff (prio 0, i/o): hpet\n"
		"  8000000000000000-ffffffffffffffff (prio 0, i/o): junk\n",
		&m, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(m.size, 1 * G);
	vmem_gpa_free(&m);
	qemu_down();
}
END_TEST

/* ---- query-vmem ----------------------------------------------------- */

/* A VM with ram-size 1G (and @extra config lines) learns from QEMU. */
static int learn(const char *answer, const char *extra, char *err,
		 size_t errlen, size_t *n_subhosts)
{
	struct vmem_config cfg;
	char conf[512], e[256];
	int r;

	snprintf(conf, sizeof(conf), "[v]\nmemory-file = /x\nqmp = /q\n"
		 "ram-size = 1G\n%s", extra);
	ck_assert_msg(vmem_config_parse(conf, "v.conf", &cfg, e,
					sizeof(e)) == 0, "%s", e);
	vmem_answer = answer;
	r = vmem_qemu_learn_subhosts(q, &cfg.vms[0], err, errlen);
	*n_subhosts = cfg.vms[0].n_subhosts;
	vmem_config_free(&cfg);
	return r;
}

#define expect_vmem_err(answer, extra, msg) do {			\
	char e_[512] = "";						\
	size_t n_;							\
	int r_ = learn(answer, extra, e_, sizeof(e_), &n_);		\
									\
	ck_assert_msg(r_ == -1, "accepted (%d learned), wanted '%s'",	\
		      r_, msg);						\
	ck_assert_str_eq(e_, msg);					\
} while (0)

#define SUB(uri, s, e) "{\"uri\": " uri ", \"start\": " #s ", \"end\": " #e "}"
#define VMEM(...) "{\"ram-size\": 1073741824, \"subhosts\": [" __VA_ARGS__ "]}"

START_TEST(query_vmem_refused)
{
	qemu_up();
	expect_vmem_err(VMEM(SUB("\"bogus://10.0.0.2\"", 0, 4096)), "",
		"query-vmem: sub-host URI 'bogus://10.0.0.2' is not an "
		"nbd://, nbds://, nbd+unix:// or nbds+unix:// URI");
	expect_vmem_err(VMEM(SUB("\"nbd://10.0.0.2:99999\"", 0, 4096)), "",
		"query-vmem: sub-host URI 'nbd://10.0.0.2:99999' has a bad "
		"port (1..65535)");
	/* nbds:// is a URI like the others (TLS: check_tls); its host
	 * is checked all the same. */
	expect_vmem_err(VMEM(SUB("\"nbds://\"", 0, 4096)), "",
		"query-vmem: sub-host URI 'nbds://' has no host "
		"(nbd[s]://[USER@]HOST[:PORT][/EXPORT])");
	expect_vmem_err(VMEM(SUB("7", 0, 4096)), "",
		"query-vmem: bad sub-host { \"uri\": 7, \"start\": 0, "
		"\"end\": 4096 }");
	/* unaligned ranges, both ends */
	expect_vmem_err(VMEM(SUB("\"nbd://10.0.0.2\"", 4096, 6144)), "",
		"query-vmem: sub-host nbd://10.0.0.2 range 4K-6K is not "
		"4K-aligned");
	expect_vmem_err(VMEM(SUB("\"nbd://10.0.0.2\"", 512, 8192)), "",
		"query-vmem: sub-host nbd://10.0.0.2 range 512-8K is not "
		"4K-aligned");
	expect_vmem_err(VMEM(SUB("\"nbd://10.0.0.2\"", 8192, 4096)), "",
		"query-vmem: sub-host nbd://10.0.0.2 range 8K-4K is empty "
		"(START must be below END)");
	expect_vmem_err(VMEM(SUB("\"nbd://10.0.0.2\"", 0, 2147483648)), "",
		"query-vmem: sub-host nbd://10.0.0.2 range 0-2G ends beyond "
		"ram-size 1G");
	qemu_down();
}
END_TEST

/* query-vmem with @n 4M sub-hosts from 0. */
static char *many(int n)
{
	size_t cap = 128 + 96 * (size_t)n, used;
	char *s = malloc(cap);
	int i;

	ck_assert_ptr_nonnull(s);
	used = snprintf(s, cap, "{\"ram-size\": 1073741824, \"subhosts\": [");
	for (i = 0; i < n; i++)
		used += snprintf(s + used, cap - used,
				 "%s{\"uri\": \"nbd://10.0.0.%d\", \"start\": "
				 "%d, \"end\": %d}", i ? ", " : "", i % 250 + 1,
				 i << 22, (i + 1) << 22);
	snprintf(s + used, cap - used, "]}");
	return s;
}

START_TEST(query_vmem_count)
{
	char err[512], *a;
	size_t n;
	int r;

	qemu_up();
	a = many(128);
	r = learn(a, "", err, sizeof(err), &n);
	ck_assert_msg(r == 128, "%d: %s", r, err);
	ck_assert_uint_eq(n, 128);
	free(a);

	a = many(129);
	expect_vmem_err(a, "", "query-vmem: 129 sub-hosts, above the largest "
			"supported number 128");
	free(a);

	/* 128 from QEMU beside one of the config's that overrides none */
	a = many(128);
	expect_vmem_err(a, "subhost = nbd://h 1020M-1G\n",
			"query-vmem: 129 sub-hosts with the config's, above "
			"the largest supported number 128");
	free(a);
	qemu_down();
}
END_TEST

START_TEST(query_vmem_good)
{
	char err[512];
	size_t n;
	int r;

	qemu_up();
	r = learn(VMEM(SUB("\"nbd://10.0.0.2:10809\"", 0, 536870912) ", "
		       SUB("\"nbd+unix:///e?socket=/run/s\"", 536870912,
			   1073741824)), "", err, sizeof(err), &n);
	ck_assert_msg(r == 2, "%d: %s", r, err);
	ck_assert_uint_eq(n, 2);
	qemu_down();
}
END_TEST

/* ---- qom-list ------------------------------------------------------- */

START_TEST(qom_ids_checked)
{
	char err[512], *id;

	qemu_up();
	/* a name that would walk out of /objects, a blank in it, a number
	 * for a name: none is taken for our backend */
	qom_list_answer = "[{\"name\": \"../machine\", \"type\": "
		"\"child<memory-backend-file>\"}, {\"name\": \"ram 0\", "
		"\"type\": \"child<memory-backend-file>\"}, {\"name\": 5, "
		"\"type\": \"child<memory-backend-file>\"}]";
	id = vmem_qemu_memdev(q, "/dev/null", err, sizeof(err));
	ck_assert_ptr_null(id);
	ck_assert_str_eq(err, "QEMU has no memory-backend-file with mem-path "
			 "/dev/null");
	/* a well-formed id is */
	qom_list_answer = "[{\"name\": \"ram0\", \"type\": "
		"\"child<memory-backend-file>\"}]";
	id = vmem_qemu_memdev(q, "/dev/null", err, sizeof(err));
	ck_assert_msg(id != NULL, "%s", err);
	ck_assert_str_eq(id, "ram0");
	free(id);
	qemu_down();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("qemu_answers");
	TCase *tc = vt_tcase_checked(s, "checked", NULL, NULL, 20);

	tcase_add_test(tc, mtree_refused);
	tcase_add_test(tc, mtree_limits_accepted);
	tcase_add_test(tc, query_vmem_refused);
	tcase_add_test(tc, query_vmem_count);
	tcase_add_test(tc, query_vmem_good);
	tcase_add_test(tc, qom_ids_checked);
	return vt_run_suite(s);
}
