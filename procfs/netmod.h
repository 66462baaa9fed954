/* SPDX-License-Identifier: MIT */
/*
 * Text of the shadow /proc files built from socket and module records
 * (introspect/sockets.h, introspect/modules.h), byte for byte as the
 * guest kernel (6.1) prints them: same columns, widths, header lines and
 * padding.  Pure functions: records in, a malloc'd NUL-terminated text
 * out (NULL only when out of memory); nothing here reads guest memory.
 *
 * Kernel pointers (the "pointer" column of /proc/net, the address column
 * of /proc/modules) are printed when @show_ptr is set, as the kernel does
 * for a reader allowed to see them (kptr_restrict 1 and CAP_SYSLOG);
 * otherwise zeros, as for anyone else.  (With kptr_restrict 0 the guest
 * prints a hashed value that nothing outside the guest can reproduce.)
 */
#ifndef VMEM_PROCFS_NETMOD_H
#define VMEM_PROCFS_NETMOD_H

#include <stdbool.h>
#include <stddef.h>

#include "../introspect/modules.h"
#include "../introspect/sockets.h"

/* /proc/net/tcp (@family AF_INET) or /proc/net/tcp6 (AF_INET6): the TCP
 * records of that family, in record order, numbered from 0. */
char *procfs_net_tcp(const struct vmi_socks *s, int family, bool show_ptr);

/* /proc/net/udp or /proc/net/udp6: the UDP records of that family; the
 * "sl" column is the record's hash slot, as the kernel prints it. */
char *procfs_net_udp(const struct vmi_socks *s, int family, bool show_ptr);

/* The kernel's jiffies_to_clock_t() for a guest running at @hz (USER_HZ
 * is 100 on x86-64). */
unsigned long procfs_jiffies_to_clock_t(unsigned long j, unsigned int hz);

/* /proc/modules: one line per module, list order; modules still being
 * formed (MODULE_STATE_UNFORMED) are left out as the kernel does. */
char *procfs_modules(const struct vmi_modules *m, bool show_ptr);

/* The module called @name (NULL when none, or when still unformed). */
const struct vmi_module *procfs_module_find(const struct vmi_modules *m,
					    const char *name);

/* /sys/module/NAME/ files: refcnt ("%d\n"), coresize, initsize
 * ("%u\n"), initstate ("live\n", "coming\n", "going\n") and taint (the
 * module taint letters, then "\n").  The holders/ directory has one
 * entry per m->holders[0..m->nholders). */
char *procfs_sys_module_refcnt(const struct vmi_module *m);
char *procfs_sys_module_coresize(const struct vmi_module *m);
char *procfs_sys_module_initsize(const struct vmi_module *m);
char *procfs_sys_module_initstate(const struct vmi_module *m);
char *procfs_sys_module_taint(const struct vmi_module *m);

#endif
