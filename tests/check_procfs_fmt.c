// SPDX-License-Identifier: MIT
/*
 * The shadow /proc formatters (procfs/net_tcp.c, net_udp.c, modules.c,
 * and pid_status.c's bitmap, group and capability lines) on
 * synthetic records.  The expected texts are written out by hand from the
 * guest kernel's (6.1) seq_show formats: column widths, header lines, the
 * padding of tcp (149 columns) and udp (127) lines, the "sl" of udp being
 * the hash slot, time-wait and request lines, timer conversion to
 * USER_HZ, taint letters and "used by" lists of /proc/modules.  No guest
 * needed: this runs in a second.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../procfs/netmod.h"
#include "../procfs/views.h"
#include "lib/suite.h"

#define PTR1 0xffff888012345678ULL
#define PTR2 0xffff888012340000ULL
#define NOW 1000000ULL			/* the guest's jiffies */

/* @s padded with spaces to @width columns, then a newline. */
static const char *padded(const char *s, int width)
{
	static char buf[8][512];
	static int i;
	char *b = buf[i++ % 8];

	snprintf(b, 512, "%-*s\n", width, s);
	return b;
}

static void v4(uint8_t *a, uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
	a[0] = b0;
	a[1] = b1;
	a[2] = b2;
	a[3] = b3;
}

static struct vmi_socks tcp_records(void)
{
	static struct vmi_sock v[6];
	struct vmi_socks s = { .v = v, .n = 6, .jiffies = NOW, .hz = 250 };

	memset(v, 0, sizeof(v));
	/* 0: listener 127.0.0.1:7001, backlog 3, uid 1000 */
	v[0] = (struct vmi_sock){ .addr = PTR1, .family = 2, .protocol = 6,
		.state = 10, .lport = 7001, .rx_queue = 3, .uid = 1000,
		.inode = 12345, .refcnt = 2, .rto = 250, .ato = 10,
		.cwnd = 10, .last = 128 };
	v4(v[0].laddr, 127, 0, 0, 1);
	/* 1: established, retransmit timer 500 jiffies ahead */
	v[1] = (struct vmi_sock){ .addr = PTR1 + 0x800, .family = 2,
		.protocol = 6, .state = 1, .lport = 57710, .rport = 7001,
		.tx_queue = 0x10, .timer_active = 1,
		.timer_expires = NOW + 500, .retransmits = 1, .inode = 777,
		.refcnt = 1, .rto = 51, .ato = 10, .ack_flags = 2, .cwnd = 10,
		.last = -1 };
	v4(v[1].laddr, 127, 0, 0, 1);
	v4(v[1].raddr, 127, 0, 0, 1);
	/* 2: time-wait, 60 s left */
	v[2] = (struct vmi_sock){ .addr = PTR2, .family = 2, .protocol = 6,
		.kind = VMI_SOCK_TIMEWAIT, .state = 6, .lport = 34706,
		.rport = 7100, .timer_active = 3,
		.timer_expires = NOW + 15000, .refcnt = 3 };
	v4(v[2].laddr, 127, 0, 0, 1);
	v4(v[2].raddr, 127, 0, 0, 1);
	/* 3: request sock whose timer is already due (prints 0) */
	v[3] = (struct vmi_sock){ .addr = PTR2 + 0x100, .family = 2,
		.protocol = 6, .kind = VMI_SOCK_REQUEST, .state = 3,
		.lport = 7001, .rport = 40000, .timer_active = 1,
		.timer_expires = NOW - 7, .retransmits = 2, .uid = 1000 };
	v4(v[3].laddr, 127, 0, 0, 1);
	v4(v[3].raddr, 10, 0, 2, 15);
	/* 4: IPv6 ::1 listener, 5: UDP (must not show in tcp) */
	v[4] = (struct vmi_sock){ .addr = PTR1 + 0x1000, .family = 10,
		.protocol = 6, .state = 10, .lport = 7002, .inode = 9,
		.refcnt = 2, .rto = 250, .cwnd = 10 };
	v[4].laddr[15] = 1;
	v[5] = (struct vmi_sock){ .family = 2, .protocol = 17, .state = 7 };
	return s;
}

START_TEST(test_tcp4)
{
	struct vmi_socks s = tcp_records();
	char *t = procfs_net_tcp(&s, 2, true), want[4096];

	ck_assert(t);
	snprintf(want, sizeof(want), "%s%s%s%s%s",
		 padded("  sl  local_address rem_address   st tx_queue rx_queue "
			"tr tm->when retrnsmt   uid  timeout inode", 149),
		 padded("   0: 0100007F:1B59 00000000:0000 0A 00000000:00000003 "
			"00:00000000 00000000  1000        0 12345 2 "
			"ffff888012345678 100 4 0 10 128", 149),
		 padded("   1: 0100007F:E16E 0100007F:1B59 01 00000010:00000000 "
			"01:000000C8 00000001     0        0 777 1 "
			"ffff888012345e78 20 4 2 10 -1", 149),
		 padded("   2: 0100007F:8792 0100007F:1BBC 06 00000000:00000000 "
			"03:00001770 00000000     0        0 0 3 "
			"ffff888012340000", 149),
		 padded("   3: 0100007F:1B59 0F02000A:9C40 03 00000000:00000000 "
			"01:00000000 00000002  1000        0 0 0 "
			"ffff888012340100", 149));
	ck_assert_str_eq(t, want);
	free(t);
}
END_TEST

START_TEST(test_tcp6_and_hidden_pointers)
{
	struct vmi_socks s = tcp_records();
	char *t = procfs_net_tcp(&s, 10, false);

	ck_assert(t);
	ck_assert_str_eq(t,
		"  sl  local_address                         remote_address"
		"                        st tx_queue rx_queue tr tm->when "
		"retrnsmt   uid  timeout inode\n"
		"   0: 00000000000000000000000001000000:1B5A "
		"00000000000000000000000000000000:0000 0A 00000000:00000000 "
		"00:00000000 00000000     0        0 9 2 0000000000000000 100 0 "
		"0 10 0\n");
	free(t);
	/* A v4-mapped peer is printed as the kernel keeps it. */
	s.v[4].raddr[10] = 0xff;
	s.v[4].raddr[11] = 0xff;
	v4(s.v[4].raddr + 12, 127, 0, 0, 1);
	t = procfs_net_tcp(&s, 10, false);
	ck_assert(strstr(t, " 0000000000000000FFFF00000100007F:0000 0A "));
	free(t);
	/* No TCP socket: only the header. */
	s.n = 0;
	t = procfs_net_tcp(&s, 2, true);
	ck_assert_uint_eq(strlen(t), 150);
	free(t);
}
END_TEST

START_TEST(test_udp)
{
	static struct vmi_sock v[3];
	struct vmi_socks s = { .v = v, .n = 3, .jiffies = NOW, .hz = 250 };
	char *t;

	memset(v, 0, sizeof(v));
	v[0] = (struct vmi_sock){ .addr = 0xffff888000001000ULL, .family = 2,
		.protocol = 17, .state = 7, .lport = 7004, .rx_queue = 768,
		.uid = 1000, .inode = 555, .refcnt = 2, .bucket = 123,
		.drops = 5 };
	v4(v[0].laddr, 127, 0, 0, 1);
	v[1] = (struct vmi_sock){ .addr = 0xffff888000002000ULL, .family = 10,
		.protocol = 17, .state = 7, .lport = 7005, .inode = 556,
		.refcnt = 2, .bucket = 4 };
	v[1].laddr[15] = 1;
	v[2] = (struct vmi_sock){ .family = 2, .protocol = 6, .state = 10 };
	t = procfs_net_udp(&s, 2, true);
	ck_assert(t);
	{
		char want[1024];

		snprintf(want, sizeof(want), "%s%s",
			 padded("   sl  local_address rem_address   st tx_queue "
				"rx_queue tr tm->when retrnsmt   uid  timeout "
				"inode ref pointer drops", 127),
			 padded("  123: 0100007F:1B5C 00000000:0000 07 "
				"00000000:00000300 00:00000000 00000000  1000"
				"        0 555 2 ffff888000001000 5", 127));
		ck_assert_str_eq(t, want);
	}
	free(t);
	t = procfs_net_udp(&s, 10, true);
	ck_assert_str_eq(t,
		"  sl  local_address                         remote_address"
		"                        st tx_queue rx_queue tr tm->when "
		"retrnsmt   uid  timeout inode ref pointer drops\n"
		"    4: 00000000000000000000000001000000:1B5D "
		"00000000000000000000000000000000:0000 07 00000000:00000000 "
		"00:00000000 00000000     0        0 556 2 ffff888000002000 0\n");
	free(t);
}
END_TEST

START_TEST(test_clock_ticks)
{
	struct vmi_socks s = tcp_records();
	char *t;

	/* jiffies_to_clock_t(), USER_HZ 100 */
	ck_assert_uint_eq(procfs_jiffies_to_clock_t(250, 250), 100);
	ck_assert_uint_eq(procfs_jiffies_to_clock_t(7, 100), 7);
	ck_assert_uint_eq(procfs_jiffies_to_clock_t(1000, 1000), 100);
	ck_assert_uint_eq(procfs_jiffies_to_clock_t(300, 300), 99);
	ck_assert_uint_eq(procfs_jiffies_to_clock_t(3, 250), 1);
	/* A timer across the jiffies wrap: 15 jiffies ahead = 6 ticks. */
	s.jiffies = (uint64_t)-10;
	s.v[2].timer_expires = 5;
	s.n = 3;
	t = procfs_net_tcp(&s, 2, true);
	ck_assert(strstr(t, " 06 00000000:00000000 03:00000006 "));
	free(t);
}
END_TEST

static struct vmi_modules module_records(void)
{
	static char holders[2][VMI_MODULE_NAME] = { "bar", "baz" };
	static struct vmi_module v[5];
	struct vmi_modules m = { .v = v, .n = 5 };

	memset(v, 0, sizeof(v));
	v[0] = (struct vmi_module){ .name = "nlmon", .core_size = 12288,
		.core_base = 0xffffffffc0400000ULL };
	v[1] = (struct vmi_module){ .name = "foo", .core_size = 16384,
		.init_size = 4096, .refcnt = 2, .nholders = 2,
		.holders = holders, .core_base = 0xffffffffc0500000ULL,
		.taints = (1u << 12) | (1u << 13) };
	v[2] = (struct vmi_module){ .name = "perm", .core_size = 100,
		.refcnt = 1, .permanent = true, .state = VMI_MODULE_COMING,
		.core_base = 0xffffffffc0600000ULL, .taints = 1 };
	v[3] = (struct vmi_module){ .name = "gone", .core_size = 100,
		.state = VMI_MODULE_GOING,
		.core_base = 0xffffffffc0700000ULL };
	v[4] = (struct vmi_module){ .name = "unformed",
		.state = VMI_MODULE_UNFORMED };
	return m;
}

START_TEST(test_proc_modules)
{
	struct vmi_modules m = module_records();
	char *t = procfs_modules(&m, true);

	ck_assert(t);
	ck_assert_str_eq(t,
		"nlmon 12288 0 - Live 0xffffffffc0400000\n"
		"foo 20480 2 bar,baz, Live 0xffffffffc0500000 (OE)\n"
		"perm 100 1 [permanent], Loading 0xffffffffc0600000 (P+)\n"
		"gone 100 0 - Unloading 0xffffffffc0700000\n");
	free(t);
	m.v[1].permanent = true;
	m.v[3].taints = 1u << 18;
	t = procfs_modules(&m, false);
	ck_assert_str_eq(t,
		"nlmon 12288 0 - Live 0x0000000000000000\n"
		"foo 20480 2 bar,baz,[permanent], Live 0x0000000000000000 (OE)\n"
		"perm 100 1 [permanent], Loading 0x0000000000000000 (P+)\n"
		"gone 100 0 - Unloading 0x0000000000000000 (N-)\n");
	free(t);
	m.n = 0;
	t = procfs_modules(&m, true);
	ck_assert_str_eq(t, "");
	free(t);
}
END_TEST

START_TEST(test_sys_module)
{
	struct vmi_modules m = module_records();
	const struct vmi_module *foo = procfs_module_find(&m, "foo");
	char *t;

	ck_assert(foo == &m.v[1]);
	ck_assert(procfs_module_find(&m, "unformed") == NULL);
	ck_assert(procfs_module_find(&m, "fo") == NULL);
	t = procfs_sys_module_refcnt(foo);
	ck_assert_str_eq(t, "2\n");
	free(t);
	t = procfs_sys_module_coresize(foo);
	ck_assert_str_eq(t, "16384\n");
	free(t);
	t = procfs_sys_module_initsize(foo);
	ck_assert_str_eq(t, "4096\n");
	free(t);
	t = procfs_sys_module_initstate(foo);
	ck_assert_str_eq(t, "live\n");
	free(t);
	t = procfs_sys_module_initstate(&m.v[2]);
	ck_assert_str_eq(t, "coming\n");
	free(t);
	t = procfs_sys_module_initstate(&m.v[3]);
	ck_assert_str_eq(t, "going\n");
	free(t);
	ck_assert(procfs_sys_module_initstate(&m.v[4]) == NULL);
	t = procfs_sys_module_taint(foo);
	ck_assert_str_eq(t, "OE\n");
	free(t);
	t = procfs_sys_module_taint(&m.v[0]);
	ck_assert_str_eq(t, "\n");
	free(t);
	m.v[0].refcnt = -1;	/* a module going away */
	t = procfs_sys_module_refcnt(&m.v[0]);
	ck_assert_str_eq(t, "-1\n");
	free(t);
	ck_assert_str_eq(foo->holders[0], "bar");
	ck_assert_str_eq(foo->holders[1], "baz");
}
END_TEST

/* status' lines that need no guest to check: bitmaps as "%*pb" and
 * "%*pbl" print them (the first 32-bit word only as wide as its bits),
 * Groups with the kernel's trailing space, SigQ, the capability sets. */
START_TEST(test_status_bitmaps)
{
	static struct vp_snapshot s;
	static struct vp_task t;
	char *txt;
	size_t len;

	memset(&s, 0, sizeof(s));
	memset(&t, 0, sizeof(t));
	s.nr_cpu_ids = 36;
	s.node_bits = 64;
	s.ssb_mode = 2;			/* PRCTL */
	s.v2_user_ibpb = s.v2_user_stibp = 0;
	s.bug_ssb = 1;
	s.bug_spectre_v2 = 1;
	snprintf(t.comm, sizeof(t.comm), "a\\b");
	t.pid = t.tgid = 42;
	t.umask = 022;
	t.ngroups = 2;
	t.groups[0] = 4;
	t.groups[1] = 24;
	t.sigq = 1;
	t.sigq_lim = 3841;
	t.cap[1] = t.cap[2] = 0x1ffffffffffULL;
	t.cap[3] = 0x1ffffffffffULL;
	t.atomic_flags = 1 | 1 << 3;	/* NO_NEW_PRIVS, SPEC_SSB_DISABLE */
	t.seccomp_mode = 2;
	t.seccomp_filters = 1;
	t.cpus_mask[0] = 0x80000010fULL;	/* 0-3, 8, 35 */
	t.mems_allowed[0] = 1;
	t.num_threads = 1;
	txt = vp_pid_status(&s, &t, &len);
	ck_assert(txt != NULL);
	ck_assert_msg(strstr(txt, "Name:\ta\\\\b\nUmask:\t0022\n"), "%s", txt);
	ck_assert_msg(strstr(txt, "\nGroups:\t4 24 \nNStgid:\t42\n"), "%s", txt);
	ck_assert_msg(strstr(txt, "\nThreads:\t1\nSigQ:\t1/3841\nSigPnd:\t"),
		      "%s", txt);
	ck_assert_msg(strstr(txt, "\nCapInh:\t0000000000000000\n"
			     "CapPrm:\t000001ffffffffff\n"
			     "CapEff:\t000001ffffffffff\n"
			     "CapBnd:\t000001ffffffffff\n"
			     "CapAmb:\t0000000000000000\n"
			     "NoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n"
			     "Speculation_Store_Bypass:\tthread mitigated\n"
			     "SpeculationIndirectBranch:\talways enabled\n"),
		      "%s", txt);
	ck_assert_msg(strstr(txt, "\nCpus_allowed:\t8,0000010f\n"
			     "Cpus_allowed_list:\t0-3,8,35\n"
			     "Mems_allowed:\t00000000,00000001\n"
			     "Mems_allowed_list:\t0\n"
			     "voluntary_ctxt_switches:\t0\n"), "%s", txt);
	free(txt);
	/* no groups: the trailing space alone; no memory: no Vm lines */
	t.ngroups = 0;
	s.ssb_mode = 0;
	s.bug_ssb = 0;
	txt = vp_pid_status(&s, &t, &len);
	ck_assert(txt != NULL);
	ck_assert_msg(strstr(txt, "\nGroups:\t \n"), "%s", txt);
	ck_assert_msg(!strstr(txt, "VmSize") && !strstr(txt, "THP_enabled"),
		      "%s", txt);
	ck_assert_msg(strstr(txt, "Speculation_Store_Bypass:\tnot "
			     "vulnerable\n"), "%s", txt);
	free(txt);
}
END_TEST

static Suite *fmt_suite(void)
{
	Suite *s = suite_create("procfs_fmt");
	TCase *tc = tcase_create("fmt");

	tcase_add_test(tc, test_tcp4);
	tcase_add_test(tc, test_tcp6_and_hidden_pointers);
	tcase_add_test(tc, test_udp);
	tcase_add_test(tc, test_clock_ticks);
	tcase_add_test(tc, test_proc_modules);
	tcase_add_test(tc, test_sys_module);
	tcase_add_test(tc, test_status_bitmaps);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return vt_run_suite(fmt_suite());
}
