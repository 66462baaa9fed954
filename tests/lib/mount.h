/* SPDX-License-Identifier: MIT */
/*
 * The mount fixture of check_mount (static reads), check_mount_faults
 * (sub-host failures) and check_mover (pages moving under readers): a
 * sparse memory file in /dev/shm holding a known pattern on its "local"
 * pages, two nbdkit sub-hosts in network namespaces of their own holding
 * the pattern for the pages of their homes that are not local, and a
 * real FUSE mount of vmemfs over them.
 *
 * Every expectation is computed here from the layout below and the
 * pattern function, never from vmemfs's own code.
 *
 * Processes: the shared environment (nbdkit, vmemfs) is started by
 * unchecked fixtures (mt_env_up / mt_env_down), i.e. in the runner
 * process, which outlives the forked tests and reaps everything by PID at
 * teardown, at exit and on SIGINT/SIGTERM/SIGHUP.  A test that restarts a
 * sub-host records the new PID in the shared environment block
 * (MAP_SHARED), and the runner is the sub-reaper, so the orphan is still
 * killed and reaped by PID.
 *
 * Unlike hosts.h, the helpers under "assertions" call Check's assertions:
 * call them from tests only, never from a fixture.
 */
#ifndef VMEM_TESTS_MOUNT_H
#define VMEM_TESTS_MOUNT_H

#include <check.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hosts.h"
#include "suite.h"

struct vmem_seq_map;

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define PAGE ((uint64_t)4096)
#define RAM (256 * MiB)
#define NPAGES (RAM / PAGE)
#define SEED 0x766d656d74657374ULL	/* "vmemtest" */

/*
 * The layout (where each page lives, as vmemfs/layout.c means the
 * word; `mem` is addressed by RAM offset here).  [0,96M) is local except two unmapped holes; sub-host 0 is
 * the home of [96M,160M), sub-host 1 of [176M,256M); [160M,176M) has no
 * home, so its holes read as zeros.  Inside the homes some pages are
 * local (paged in), singly and in runs.
 */
#define SUB0_START (96 * MiB)
#define SUB0_END (160 * MiB)
#define SUB1_START (176 * MiB)
#define SUB1_END RAM
#define HOLE0_START (8 * MiB)
#define HOLE0_END (8 * MiB + 64 * KiB)
#define HOLE1_START (40 * MiB + 4 * KiB)
#define HOLE1_END (40 * MiB + 12 * KiB)
#define RUN0_START (128 * MiB)
#define RUN0_END (129 * MiB)
#define RUN1_START (200 * MiB)
#define RUN1_END (200 * MiB + 12 * KiB)

/* The sub-host (0, 1) whose home holds page @pg, or -1. */
int mt_page_home(uint64_t pg);
/* Whether page @pg is in the memory file when the environment is up. */
bool mt_page_initially_local(uint64_t pg);
/* What `mem` must read as: the pattern, except holes with no home. */
void mt_ref_fill(void *buf, uint64_t off, size_t len);

/* ---- the environment ------------------------------------------------ */

struct mt_opts {
	const char *tag;		/* in every file name */
	uint64_t cache_size;
	unsigned int cache_ttl_ms;
	unsigned int timeout_ms;
	bool with_seq;			/* publish a seq file */
};

/* What most test cases run with: a 4M cache of 100 ms, a seq file as the
 * pager publishes it, a 2 s timeout. */
#define MT_OPTS(t) ((struct mt_opts){ .tag = (t),			\
	.cache_size = 4 * MiB, .cache_ttl_ms = 100, .timeout_ms = 2000,	\
	.with_seq = true })

struct mt_env {
	bool up;			/* something to tear down */
	bool ok;			/* setup completed */
	char err[2048];
	struct mt_opts opt;
	char memfile[128];
	char seqfile[140];
	char config[128];
	char mnt[128];
	char log[128];
	struct vt_nbdkit sub[2];
	struct vt_vmemfs fs;
	struct vt_vmemfs fs2;		/* a test's own second mount */
	char mnt2[140];
	struct vmem_seq_map *seq;	/* mapped by the runner, shared */
};

/* MAP_SHARED between the runner and its forked tests: tests update PIDs. */
extern struct mt_env *mt_e;
/* The tests' short name for it. */
#define E mt_e

/* The sub-hosts' namespaces, made by mt_main() unless VMT_NO_NETNS. */
extern bool mt_use_netns;
/* Why namespaces could not be made, when VMT_NO_NETNS did not ask. */
extern char mt_netns_err[1024];
extern struct vt_netns mt_netns[2];

/* Unchecked fixture: bring the environment up with @o; E->ok says how
 * it went, E->err why not. */
void mt_env_up(const struct mt_opts *o);
/* Unchecked teardown: stop, kill and remove everything mt_env_up made. */
void mt_env_down(void);
/*
 * (Re)start sub-host @i on its address and put the pattern on it
 * (@exit_with_parent: see vt_nbdkit_start).  0, or -1 with a message.
 */
int mt_start_subhost(int i, bool exit_with_parent, char *err,
		     size_t errlen);

/*
 * main() of a program built on this fixture: runner environment, the two
 * namespaces, the suite @make builds (vt_run_suite), cleanup.
 */
int mt_main(Suite *(*make)(void));

#define REQUIRE_ENV() ck_assert_msg(E->ok, "environment: %s", E->err)

/* ---- assertions: for tests only ------------------------------------- */

/* @name inside the mount (a per-thread buffer). */
char *mt_path(const char *name);
/* Compare with mt_ref_fill; on mismatch *bad = first differing offset. */
bool mt_verify(const uint8_t *got, uint64_t off, size_t len, uint64_t *bad);
/* pread until @len bytes, EOF or an error (-1, errno set). */
ssize_t mt_pread_full(int fd, void *buf, size_t len, uint64_t off);
/* Read and verify [off, off+len) through @fd; fails the test if wrong. */
void mt_read_verify(int fd, uint64_t off, size_t len);
/* The JSON file @name of the mount, parsed; caller puts it. */
json_object *mt_read_json(const char *name);
double mt_jnum(json_object *o, const char *key);
int64_t mt_jint(json_object *o, const char *key);

/* The counters of the mount's stats file. */
struct mt_stats {
	int64_t reads, read_errors, local, remote, zero, retries, hits,
		misses;
	int64_t req[2], bytes[2], errors[2], connects[2];
};

/* Read stats; @check_shape: also assert its fields and their order. */
void mt_stats_get(struct mt_stats *s, bool check_shape);

/* A reader thread: random reads of [lo, hi) until @until, verified. */
struct mt_reader {
	int id;
	double until;
	uint64_t lo, hi;		/* range to read in */
	size_t maxlen;
	uint64_t reads, bytes, bad, eio, other_err;
	uint64_t first_bad;
	int fd;
};

void *mt_reader_thread(void *p);
/* @n (at most 16) readers of [lo, hi) through @fd for @ms; joined. */
void mt_run_readers(struct mt_reader *args, int n, int fd, uint64_t lo,
		    uint64_t hi, size_t maxlen, double ms);

#endif
