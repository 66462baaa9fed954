/* SPDX-License-Identifier: MIT */
/*
 * QMP through libvirt, for a VM that is a libvirt domain: libvirtd owns
 * the domain's only monitor socket, so commands go through
 * virDomainQemuMonitorCommand (libvirt-qemu) and events come from
 * virConnectDomainQemuMonitorEventRegister, on one connection to
 * libvirtd kept open (reopened when libvirtd goes away and comes back).
 *
 * A vmem_qmp transport (qmp.h), with the same promises as the socket:
 * every call is bounded by the timeout, even when libvirtd hangs (the
 * libvirt call runs on a thread of its own and is abandoned, not waited
 * for); a domain that is not running, or a libvirtd that cannot be
 * reached, is -EIO; QEMU's errors (which libvirt returns as a success
 * with an "error" member) are -EREMOTEIO.  libvirt marks the domain
 * tainted (custom-monitor) the first time; it refuses nothing.
 *
 * libvirt's events need virEventRegisterDefaultImpl() before the
 * connection opens and a thread running virEventRunDefaultImpl(), and
 * neither survives fork(): a new client works without events (enough to
 * learn the layout before vmemfs daemonizes), vmem_libvirt_disconnect()
 * drops the connection before the fork, and vmem_libvirt_start_events()
 * after it starts the process's one event thread and reconnects with the
 * event callbacks registered.
 */
#ifndef VMEMFS_QMP_LIBVIRT_H
#define VMEMFS_QMP_LIBVIRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/config.h"
#include "qmp.h"

/* Does not connect yet.  @uri NULL: VMEM_DEFAULT_LIBVIRT. */
struct vmem_qmp *vmem_qmp_new_libvirt(const char *uri, const char *domain,
				      uint64_t timeout_ms);

/*
 * The QMP client of @vm: its socket (qmp = PATH) or its libvirt domain
 * (domain = NAME); NULL and *@none when it has neither, NULL with a
 * message when out of memory.
 */
struct vmem_qmp *vmem_qmp_for_vm(const struct vmem_vm *vm, bool *none,
				 char *err, size_t errlen);

/*
 * The domain's life as libvirt reports it (lifecycle events), on the
 * event thread: @running true at start (the new QEMU is up and its
 * monitor answers), false at stop.  Only with events started.  Setting
 * NULL (as vmem_qmp_set_event_cb(NULL) on this transport) returns once
 * no callback runs any more: then what @opaque points to may go.  Not
 * from a callback.
 */
typedef void vmem_libvirt_life_fn(void *opaque, bool running);
void vmem_libvirt_set_life_cb(struct vmem_qmp *q, vmem_libvirt_life_fn *fn,
			      void *opaque);

/* Not libvirt clients (a socket) are left alone by both. */
void vmem_libvirt_disconnect(struct vmem_qmp *q);
int vmem_libvirt_start_events(struct vmem_qmp *q, char *err, size_t errlen);

/* Is @q a libvirt domain's client? */
bool vmem_qmp_is_libvirt(struct vmem_qmp *q);

#endif
