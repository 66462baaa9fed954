/* SPDX-License-Identifier: MIT */
/*
 * Helpers for integration tests that run real parts: network namespaces
 * with a veth pair, nbdkit as a sub-host, a known data pattern, and a
 * vmemfs mount.  Every helper that starts a process returns its PID so
 * the caller can kill it by PID, also when a test fails half-way.
 *
 * None of these call Check's assertions: they report errors through a
 * return value and a message, so they are safe in unchecked fixtures,
 * which run in the runner's own process.
 */
#ifndef VMEM_TESTS_HOSTS_H
#define VMEM_TESTS_HOSTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct nbd_handle;

/* Monotonic clock in milliseconds (fractional). */
double vt_now_ms(void);
void vt_sleep_ms(unsigned int ms);

/*
 * Make this process the reaper of orphaned descendants, so processes a
 * forked Check test started (and left running) become our children and
 * can be reaped by PID at teardown.
 */
void vt_become_subreaper(void);

/* printf into @err (if not NULL): how every helper here reports failure. */
void vt_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * vt_set_err, and print "setup failed: MESSAGE" on stdout: for fixtures,
 * whose failure a test reports only when it runs.
 */
void vt_setup_failed(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Set up the runner process of a test program that starts real processes
 * (servers, guests, mounts), before the suites run: line-buffered stdout,
 * sub-reaper, @cleanup run at exit and on SIGINT/SIGTERM/SIGHUP (by a
 * cleanup thread, never inside the signal handler; then the signal is
 * re-raised), SIGPIPE ignored (a peer that died must fail a
 * test, not kill the runner that holds every PID to clean up).  Returns
 * @size zeroed bytes shared with the forked tests, or NULL.
 */
void *vt_runner_env(size_t size, void (*cleanup)(void));

/*
 * Create or truncate @path (mode 0600) and write @len bytes of @data to
 * it.  Returns 0, or -1 with a message naming the file.
 */
int vt_write_file(const char *path, const void *data, size_t len, char *err,
		  size_t errlen);

/* ---- network namespaces --------------------------------------------- */

struct vt_netns {
	char name[32];		/* "" = none made (loopback) */
	char veth_host[16];	/* interface left in the root namespace */
	char veth_ns[16];	/* its peer inside the namespace */
	char host_addr[16];	/* x.x.x.1 of a /30 */
	char ns_addr[16];	/* x.x.x.2 of the same /30 */
};

/*
 * Create namespace @name with a veth pair; the host side gets
 * 10.213.A.B+1/30 and the inside B+2/30, where the /30 is number @subnet
 * (0..16383) of 10.213.0.0/16.  Loopback inside is brought up.  Returns
 * 0, or -1 with a message (nothing is left behind on error).
 */
int vt_netns_create(struct vt_netns *ns, const char *name,
		    unsigned int subnet, char *err, size_t errlen);
/*
 * SIGKILL (by PID) every process inside the namespace: a safety net for
 * servers whose PID a failed test lost.
 */
void vt_netns_kill_all(const struct vt_netns *ns);
/* Kill what runs inside, then delete what vt_netns_create made; safe on
 * a zeroed struct. */
void vt_netns_delete(struct vt_netns *ns);

/* ---- nbdkit --------------------------------------------------------- */

struct vt_nbdkit {
	pid_t pid;		/* 0 when not running */
	char netns[32];		/* "" = root namespace */
	char addr[16];		/* listen address */
	int port;
	char size[16];		/* e.g. "256M" */
	/* Set before start: "" serves clear NBD; a PSK file (nbdkit's
	 * format) serves `--tls=require --tls-psk=FILE`, and the start
	 * checks readiness with TLS as user tls_user. */
	char tls_psk[128];
	char tls_user[32];
	bool tls_optional;	/* with tls_psk: --tls=on (TLS or clear) */
	/* Instead of tls_psk: --tls-certificates=DIR (server-cert.pem,
	 * server-key.pem, ca-cert.pem); readiness is checked against the
	 * ca-cert.pem there. */
	char tls_certs[128];
	char uri[96];		/* nbd://addr:port, nbds://user@addr:port */
};

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int vt_free_tcp_port(void);

/*
 * Start `nbdkit -f memory SIZE` listening on addr:port inside netns (if
 * set) and wait until it accepts an NBD handshake.  Fills in uri and
 * pid.  @exit_with_parent: the server runs in the foreground and dies
 * with the calling thread (use only from a process that outlives the
 * server); otherwise it daemonizes into a session of its own, so it
 * survives a forked Check test (which kills its process group at the
 * end), and must be killed by PID.  When the caller is not the runner,
 * the runner should be a sub-reaper (vt_become_subreaper) so it can
 * reap the daemon.
 */
int vt_nbdkit_start(struct vt_nbdkit *n, bool exit_with_parent,
		    char *err, size_t errlen);
/* SIGKILL by PID and reap (if it is our child); pid set to 0. */
void vt_nbdkit_kill(struct vt_nbdkit *n);

/*
 * A sub-host in a namespace of its own: vt_netns_create(@ns, @name,
 * @subnet), then `nbdkit memory @size_mib M` inside it on its address and
 * @port, dying with the calling thread (vt_nbdkit_start with
 * exit_with_parent).  Returns 0, or -1 with a message saying which step
 * failed; the caller deletes @ns and kills @n in either case.
 */
int vt_subhost_in_netns(struct vt_netns *ns, struct vt_nbdkit *n,
			const char *name, unsigned int subnet, int port,
			uint64_t size_mib, char *err, size_t errlen);

/* Connect a libnbd handle to @uri (retrying until @timeout_ms). */
struct nbd_handle *vt_nbd_connect(const char *uri, int timeout_ms,
				  char *err, size_t errlen);
/* The same with TLS required and PSK file @psk (NULL: as above). */
struct nbd_handle *vt_nbd_connect_psk(const char *uri, const char *psk,
				      int timeout_ms, char *err,
				      size_t errlen);
/* ... or with X.509 certificates directory @certs when @psk is NULL. */
struct nbd_handle *vt_nbd_connect_tls(const char *uri, const char *psk,
				      const char *certs, int timeout_ms,
				      char *err, size_t errlen);

/*
 * Write a PSK file for nbdkit and libnbd at @path, mode 0600: one line
 * "@user:HEX" with a random 256-bit key (from getrandom).  0 or -1.
 */
int vt_write_psk(const char *path, const char *user, char *err,
		 size_t errlen);

/* ---- data pattern --------------------------------------------------- */

uint64_t vt_splitmix64(uint64_t x);
/*
 * The pattern byte at RAM offset off is byte (off % 8), little-endian,
 * of vt_splitmix64(seed + off / 8): unique per 8 bytes and per seed.
 */
void vt_pattern_fill(void *buf, uint64_t off, size_t len, uint64_t seed);

/* ---- processes ------------------------------------------------------ */

/*
 * Wait for child @pid up to @timeout_ms.  Returns its wait status, or -1
 * on timeout / when it is not our child (ECHILD: then it waits for the
 * process to vanish and returns 0 if it did).
 */
int vt_wait_pid(pid_t pid, int timeout_ms);

/*
 * Run argv[0] (PATH looked up), with stdout and stderr captured into the
 * buffers (NUL-terminated, truncated).  Returns the exit status, 128+sig
 * when killed, or -1 when it could not be run or exceeded @timeout_ms
 * (then it is killed).
 */
int vt_run(char *const argv[], char *out, size_t outlen, char *errout,
	   size_t errlen, int timeout_ms);

/*
 * SIGSTOP @pid and wait (up to @timeout_ms) until every thread of it is
 * stopped, so that it cannot answer even one more request.  0 or -1.
 */
int vt_stop_pid(pid_t pid, int timeout_ms);

/*
 * A test program's run directory and memory file: @dir = a new
 * /tmp/vmt-@tag.XXXXXX, @mem = /dev/shm/vmt-@tag-@pid.mem (@pid: the
 * runner's, so parallel runs do not clash), a stale one and its .seq
 * removed.  0, or -1 with a message (then @dir is "").
 */
int vt_run_dir(const char *tag, pid_t pid, char dir[static 64],
	       char mem[static 128], char *err, size_t errlen);
/*
 * Undo vt_run_dir, also half-way: remove @mem and its .seq (if @mem is
 * not ""), the @n entries @names (files or empty directories) in @dir,
 * then @dir (if not "").  Both are "" afterwards.
 */
void vt_run_dir_remove(char *dir, char *mem, const char *const *names,
		       size_t n);

/* ---- vmemfs --------------------------------------------------------- */

struct vt_vmemfs {
	pid_t pid;
	char mnt[256];
	char log[256];		/* daemon's stdout+stderr */
};

/* $VMEMFS, or build/vmemfs next to this test binary's build/tests/. */
const char *vt_vmemfs_bin(void);

/*
 * Start `vmemfs -f -c CONFIG [--vm VM] [-o OPTS] MNT` with output to
 * @log (NULL: inherit), and wait until MNT/mem exists with @ram_size
 * bytes.  Returns 0, or -1 with a message (the daemon is then stopped).
 */
int vt_vmemfs_start(struct vt_vmemfs *v, const char *config, const char *vm,
		    const char *fuse_opts, const char *mnt, const char *log,
		    uint64_t ram_size, int timeout_ms, char *err,
		    size_t errlen);
/*
 * The mount scans guest memory for a kernel once at start, in the
 * background (vmemfs/kernel_view.c), and its reads count in `stats` and
 * reach the sub-hosts like any other.  An open of MNT/kernel waits for
 * that scan: tests that compare counters call this first, so that they
 * start from a quiet mount.
 */
void vt_vmemfs_wait_kernel_scan(const char *mnt);
/*
 * SIGTERM, wait up to @timeout_ms, then SIGKILL; lazily unmount in any
 * case.  Returns the daemon's wait status, or -1 when it had to be
 * killed or was not running.
 */
int vt_vmemfs_stop(struct vt_vmemfs *v, int timeout_ms);
/* vt_vmemfs_stop (3 s) each of the @n mounts in @v that was started;
 * all @n are zeroed. */
void vt_vmemfs_stop_all(struct vt_vmemfs *v, size_t n);

/* Print the last @lines lines of @path to stdout, each with @prefix. */
void vt_print_tail(const char *path, int lines, const char *prefix);

#endif
