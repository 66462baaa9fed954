/* SPDX-License-Identifier: MIT */
/*
 * Boot the test guest (scripts/guest/build-guest.sh) under the patched
 * QEMU (scripts/build-qemu.sh), run shell commands in it over the serial
 * console, and talk QMP to QEMU.  Like hosts.h, nothing here calls
 * Check's assertions: errors come back as return values and messages.
 *
 * The guest's /init prints "VMT-GUEST-READY" and then evaluates one line
 * per command from ttyS0 with echo off; vt_guest_run() wraps each command
 * so that its output ends with a marker carrying a sequence number and
 * the exit status.
 */
#ifndef VMEM_TESTS_GUEST_H
#define VMEM_TESTS_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vt_guest_opts {
	/* Memory file for memory-backend-file,share=on (required). */
	const char *mem_path;
	uint64_t ram_size;
	/* When set, add -object vmem-split,memdev=ram0,config=..,vm=.. */
	const char *vmem_config;
	const char *vmem_vm;
	/* Directory for the sockets and the QEMU log (must exist). */
	const char *run_dir;
	int boot_timeout_ms;		/* 0 = 60000 */
	/*
	 * When set, a second QMP socket at this path (server=on,wait=off):
	 * a QMP socket serves one client at a time and the driver keeps its
	 * own connection, so a vmemfs under test needs another one.
	 */
	const char *qmp2_path;
	/* Start with -S (no vCPU runs) and do not wait for the guest's
	 * shell: for tests that need QEMU's memory, not a booted guest. */
	bool paused;
	/* Let a reset (QMP system_reset, a guest reboot) restart the guest
	 * instead of ending QEMU (no -no-reboot). */
	bool allow_reset;
	/* Extra kernel command line text, appended after ours. */
	const char *append;
	/* -cpu model (NULL: QEMU's default); "max" has 5-level paging. */
	const char *cpu;
	/* More properties of the vmem-split object (",incoming=paging"). */
	const char *vmem_opts;
	/* More arguments, NULL-terminated (-incoming, another -object). */
	const char *const *extra_args;
};

struct vt_guest {
	pid_t pid;			/* QEMU; 0 when not running */
	int serial_fd;
	int qmp_fd;
	unsigned int seq;
	double boot_ms;			/* start to VMT-GUEST-READY */
	char serial_path[108];
	char qmp_path[108];
	char log_path[256];
	/* Serial and QMP input not consumed yet. */
	char sbuf[1 << 16];
	size_t slen;
	char qbuf[1 << 21];	/* a QMP reply line at most (a split plan's is big) */
	size_t qlen;
};

/* $VMEM_QEMU, or build/qemu/qemu-system-x86_64 next to build/tests/. */
const char *vt_qemu_bin(void);
/* build/guest (vmlinuz and initramfs.cpio.gz) next to build/tests/. */
const char *vt_guest_dir(void);
/* build/qemu/share, the firmware directory given with -L. */
const char *vt_qemu_share_dir(void);

/*
 * Start QEMU and wait until the guest's shell is ready.  On failure
 * everything started is stopped again and -1 is returned with a message
 * (including the tail of QEMU's log).
 */
int vt_guest_start(struct vt_guest *g, const struct vt_guest_opts *o,
		   char *err, size_t errlen);

/*
 * After a reset of a guest started with allow_reset: wait until the
 * rebooted guest's shell is ready again.  0, or -1 with a message.
 */
int vt_guest_wait_ready(struct vt_guest *g, int timeout_ms, char *err,
			size_t errlen);

/*
 * Run @cmd (one line of sh) in the guest; its stdout and stderr go to
 * @out (NUL-terminated, truncated to @outlen).  Returns the command's exit
 * status, or -1 on timeout / a broken console (message in @out).
 */
int vt_guest_run(struct vt_guest *g, const char *cmd, char *out,
		 size_t outlen, int timeout_ms);
/*
 * vt_guest_run, and say on stdout what ran, its status and how long it
 * took ("info: guest `CMD` -> STATUS in S s"), with the start of its
 * output when the status is not 0: the test log then tells what the
 * guest did.
 */
int vt_guest_run_logged(struct vt_guest *g, const char *cmd, char *out,
			size_t outlen, int timeout_ms);
/*
 * Give the guest data of its own in its upper memory: the guest kernel
 * fills its low memory first, so a zero ballast file of @ballast_mib MiB
 * (/tmp/ballast) goes first, then @data_mib MiB of random bytes
 * (/tmp/data), then @then (one line of sh, may be NULL), e.g. a checksum
 * or sync.  Each command may take @timeout_ms.  Returns 0, or the status
 * of the first command that failed (its output in @out).
 */
int vt_guest_write_data(struct vt_guest *g, unsigned int ballast_mib,
			unsigned int data_mib, const char *then, char *out,
			size_t outlen, int timeout_ms);

/*
 * Send one QMP command (a JSON object as text) and wait for its answer,
 * skipping events.  The whole answer line goes to @reply.  Returns 0 for
 * {"return": ...}, 1 for {"error": ...}, -1 on I/O error or timeout.
 */
int vt_guest_qmp(struct vt_guest *g, const char *json, char *reply,
		 size_t replylen, int timeout_ms);

/*
 * Ask QEMU to quit over QMP, wait up to @timeout_ms, then SIGKILL by PID.
 * Safe on a zeroed or already stopped guest.  Returns QEMU's wait status
 * or -1 when it had to be killed.
 */
int vt_guest_stop(struct vt_guest *g, int timeout_ms);
/* vt_guest_stop, when @g was started at all (on a zeroed struct
 * vt_guest_stop would close fd 0). */
void vt_guest_stop_started(struct vt_guest *g, int timeout_ms);
/*
 * The test guest's file @name (vmlinuz, vmt-procs...) is there with
 * access @mode: 0, or -1 with a message naming it and how to build it.
 */
int vt_guest_has(const char *name, int mode, char *err, size_t errlen);

#endif
