// SPDX-License-Identifier: MIT
/*
 * vmemfs against a real split VM under the patched QEMU.
 *
 * Suite "running" boots the test guest with 512 MiB of RAM whose upper
 * half, [256M, 512M), is homed on an nbdkit sub-host in a network
 * namespace of its own (local-limit 384M, 64K chunks).  The guest writes
 * random data, is paused with QMP `stop` so its memory holds still, and
 * its homed half is paged out.  Then:
 *   - direct and remote-paging return the same bytes for all of `ram`
 *     and `mem`, equal to an oracle built here from the memory file (data
 *     pages) and the sub-host (holes of the homed half) read directly;
 *     direct leaves the memory file's data map exactly as it was,
 *     remote-paging grows it;
 *   - addressing flat and auto (`layout`) agree on this small guest (mem == ram == flat
 *     mem on sampled ranges);
 *   - QEMU killed by SIGKILL during a remote-paging read: EIO within the
 *     timeout, local ranges still served, remote ones EIO, and a new QEMU
 *     on the same QMP socket path is picked up.
 *
 * Suite "gpa" starts a 5 GiB guest paused (-S: nothing runs, so QEMU
 * writes nothing into RAM) on a sparse memory file into which known
 * patterns were written at RAM offsets on both sides of the pc machine's
 * 3 GiB split, plus one pattern only on a sub-host.  QEMU's own pmemsave
 * of guest-physical ranges must equal the same ranges of `mem`, and both
 * must equal the pattern of the RAM offset that the pc machine maps there
 * (RAM [0, 3G) at GPA 0, RAM [3G, 5G) at GPA 4G): the expectation is
 * computed here, not taken from vmemfs or QEMU.
 *
 * Fails (one test naming what to build) when QEMU or the guest is missing.
 *
 * Processes: the sub-host, the namespace and QEMU are started by unchecked
 * fixtures in the runner, which outlives the forked tests, is the
 * sub-reaper, and kills everything by PID at teardown, at exit and on
 * SIGINT/SIGTERM/SIGHUP.  Mounts and the second QEMU a test starts are
 * recorded in the shared environment block (MAP_SHARED) so the runner
 * stops them by PID too, also when the test failed half-way.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libnbd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/evictseq.h"
#include "lib/datamap.h"
#include "lib/guest.h"
#include "lib/guestck.h"
#include "lib/hosts.h"
#include "lib/splitvm.h"
#include "lib/suite.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define PAGE ((uint64_t)4096)

/* The running guest. */
#define RAM (512 * MiB)
#define HOME_START (256 * MiB)
#define HOME_END RAM
#define LOCAL_LIMIT (384 * MiB)
#define CHUNK (64 * KiB)
#define TIMEOUT_MS 2000
#define NMIB (RAM / MiB)
#define BALLAST_MIB 128
#define DATA_MIB 192
#define NBD_PORT 10809

/* The GPA oracle guest (pc: 5G of RAM -> 3G below 4G, 2G above). */
#define G_RAM (5 * GiB)
#define G_LOW (3 * GiB)			/* RAM below the PCI hole */
#define G_HIGH_GPA (4 * GiB)		/* where RAM [3G, 5G) is mapped */
#define G_MEM_SIZE (6 * GiB)		/* highest RAM GPA end */
#define G_HOME_START (4 * GiB)		/* RAM offsets homed on the sub-host */
#define G_HOME_END G_RAM
#define G_SEED 0x67706174657374ULL	/* "gpatest" */

#define VFS_MAX 3

/* Shared between the runner and the forked tests (MAP_SHARED). */
struct env {
	bool up;
	char err[2048];
	struct vt_guest guest;
	struct vt_guest guest2;		/* test_qemu_killed's new QEMU */
	struct vt_nbdkit sub;
	struct vt_netns ns;
	struct vt_vmemfs vfs[VFS_MAX];
	char dir[64];
	char qemu_conf[128];
	char mem[128];
	char qmp2[128];
	/* Per-MiB hashes of the paused guest's RAM (test_backends). */
	uint64_t hash[NMIB];
	bool have_hash;
};

static struct env *E;
static pid_t runner_pid;

/* ---- environment ---------------------------------------------------- */

/* Everything we put in the run directory has a fixed name. */
static const char *const dir_files[] = {
	"qemu.log", "qemu.conf", "direct.conf", "rp.conf", "flat.conf",
	"pm.bin", "vmemfs0.log", "vmemfs1.log", "vmemfs2.log",
	"vmemfs-qmp.sock", "r2/qemu.log", "r2", "mnt0", "mnt1", "mnt2",
};

static void env_down(void)
{
	if (getpid() != runner_pid || !E)
		return;
	vt_vmemfs_stop_all(E->vfs, VFS_MAX);
	vt_guest_stop_started(&E->guest2, 3000);
	vt_split_down(&E->guest, &E->sub, &E->ns);
	vt_run_dir_remove(E->dir, E->mem, dir_files,
			  sizeof(dir_files) / sizeof(dir_files[0]));
	E->up = false;
	E->have_hash = false;
}

#define env_fail(...) vt_set_err(E->err, sizeof(E->err), __VA_ARGS__)

/* The run directory and the memory file's name; 0 or -1 (E->err set). */
static int env_common(const char *tag)
{
	memset(E, 0, sizeof(*E));
	if (vt_guest_has("vmlinuz", R_OK, E->err, sizeof(E->err)) < 0 ||
	    vt_run_dir(tag, runner_pid, E->dir, E->mem, E->err,
		       sizeof(E->err)) < 0)
		return -1;
	snprintf(E->qemu_conf, sizeof(E->qemu_conf), "%s/qemu.conf", E->dir);
	snprintf(E->qmp2, sizeof(E->qmp2), "%s/vmemfs-qmp.sock", E->dir);
	return 0;
}

/* Write the config file @name in the run directory; 0 or -1 (E->err). */
static int write_conf(const char *name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int write_conf(const char *name, const char *fmt, ...)
{
	char path[256], text[1024];
	va_list ap;

	snprintf(path, sizeof(path), "%s/%s", E->dir, name);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return vt_write_file(path, text, strlen(text), E->err, sizeof(E->err));
}

/* The split guest of suite "running" (tests/lib/splitvm.c). */
static struct vt_split_opts split;

static void env_up_running(void)
{
	char path[256], netns[64], err[1024];

	if (env_common("vfs") < 0)
		return;
	snprintf(netns, sizeof(netns), "vmt-vfs-%d", (int)runner_pid);
	split = (struct vt_split_opts){
		.run_dir = E->dir, .mem_path = E->mem,
		.qemu_conf = E->qemu_conf, .qmp2_path = E->qmp2,
		.netns = netns, .subnet = 15000 + runner_pid % 512,
		.nbd_port = NBD_PORT, .ram_size = RAM,
		.home_start = HOME_START, .home_end = HOME_END,
		.local_limit = LOCAL_LIMIT, .chunk = CHUNK,
		.timeout_ms = TIMEOUT_MS, .boot_timeout_ms = 180000,
	};
	if (vt_split_guest_start(&split, &E->ns, &E->sub, &E->guest, err,
				 sizeof(err)) < 0) {
		env_fail("%s", err);
		return;
	}
	/*
	 * vmemfs configs: with qmp they learn the sub-host from query-vmem
	 * (and get guest-physical addressing, `layout = auto`); flat names
	 * it itself and never talks QMP.
	 */
	snprintf(path, sizeof(path), "%s/direct.conf", E->dir);
	if (vt_split_vmemfs_conf(path, &split, "direct", NULL, err,
				 sizeof(err)) < 0) {
		env_fail("%s", err);
		return;
	}
	snprintf(path, sizeof(path), "%s/rp.conf", E->dir);
	if (vt_split_vmemfs_conf(path, &split, "remote-paging", NULL, err,
				 sizeof(err)) < 0) {
		env_fail("%s", err);
		return;
	}
	if (write_conf("flat.conf",
		       "[vm]\nmemory-file = %s\nchunk-size = %" PRIu64 "K\n"
		       "timeout = %dms\nbackend = direct\nlayout = flat\n"
		       "tls = off\nsubhost = %s %" PRIu64 "M-%" PRIu64 "M\n",
		       E->mem, CHUNK / KiB, TIMEOUT_MS, E->sub.uri,
		       HOME_START / MiB, HOME_END / MiB) < 0)
		return;
	printf("info: guest booted in %.1f s (TCG, 512 MiB, sub-host %s in "
	       "netns %s)\n", E->guest.boot_ms / 1000, E->sub.uri, E->ns.name);
	E->up = true;
}

/* Pattern bytes at RAM offsets of the GPA guest, put in place by env_up. */
struct gpa_sample {
	const char *what;
	uint64_t ram;
	uint64_t len;
	bool on_subhost;	/* only the sub-host has it */
};

static const struct gpa_sample gpa_samples[] = {
	{ "low RAM above the BIOS area", 1 * MiB, MiB, false },
	{ "last MiB below the PCI hole", G_LOW - MiB, MiB, false },
	{ "first MiB above 4G", G_LOW, MiB, false },
	{ "a MiB before the homed range", G_HOME_START - MiB, MiB, false },
	{ "homed, only on the sub-host", G_HOME_START + 256 * MiB, MiB, true },
	{ "last MiB of RAM (homed, local)", G_RAM - MiB, MiB, false },
};

/* pc with >= 3.5G of RAM and gigabyte alignment: the mapping we expect. */
static uint64_t gpa_of_ram(uint64_t ram)
{
	return ram < G_LOW ? ram : ram - G_LOW + G_HIGH_GPA;
}

static void env_up_gpa(void)
{
	char err[1024];
	struct vt_guest_opts o = { 0 };
	struct nbd_handle *h;
	unsigned char *buf;
	size_t i;
	int fd;

	if (env_common("gpa") < 0)
		return;
	buf = malloc(MiB);
	if (!buf) {
		env_fail("out of memory");
		return;
	}
	/* A sparse 5 GiB file: only the patterns take memory. */
	fd = open(E->mem, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)G_RAM) < 0) {
		env_fail("%s: %s", E->mem, strerror(errno));
		goto out;
	}
	snprintf(E->sub.addr, sizeof(E->sub.addr), "127.0.0.1");
	E->sub.port = vt_free_tcp_port();
	snprintf(E->sub.size, sizeof(E->sub.size), "%" PRIu64 "M",
		 G_RAM / MiB);
	if (vt_nbdkit_start(&E->sub, true, err, sizeof(err)) < 0) {
		env_fail("nbdkit: %s", err);
		goto out;
	}
	h = vt_nbd_connect(E->sub.uri, 5000, err, sizeof(err));
	if (!h) {
		env_fail("nbd: %s", err);
		goto out;
	}
	for (i = 0; i < sizeof(gpa_samples) / sizeof(gpa_samples[0]); i++) {
		const struct gpa_sample *s = &gpa_samples[i];

		vt_pattern_fill(buf, s->ram, s->len, G_SEED);
		if (s->on_subhost ?
		    nbd_pwrite(h, buf, s->len, s->ram, 0) != 0 :
		    pwrite(fd, buf, s->len, (off_t)s->ram) != (ssize_t)s->len) {
			env_fail("writing the pattern of %s: %s", s->what,
				 s->on_subhost ? nbd_get_error() :
				 strerror(errno));
			nbd_close(h);
			goto out;
		}
	}
	nbd_close(h);
	if (write_conf("qemu.conf",
		       "[vm]\nmemory-file = %s\nram-size = %" PRIu64 "M\n"
		       "chunk-size = 64K\ntimeout = %dms\ntls = off\n"
		       "subhost = %s %" PRIu64 "M-%" PRIu64 "M\n",
		       E->mem, G_RAM / MiB, TIMEOUT_MS, E->sub.uri,
		       G_HOME_START / MiB, G_HOME_END / MiB) < 0)
		goto out;
	if (write_conf("direct.conf",
		       "[vm]\nmemory-file = %s\nchunk-size = 64K\n"
		       "timeout = %dms\nqmp = %s\ntls = off\n", E->mem, TIMEOUT_MS,
		       E->qmp2) < 0)
		goto out;
	o.mem_path = E->mem;
	o.ram_size = G_RAM;
	o.vmem_config = E->qemu_conf;
	o.vmem_vm = "vm";
	o.run_dir = E->dir;
	o.boot_timeout_ms = 60000;
	o.qmp2_path = E->qmp2;
	o.paused = true;
	if (vt_guest_start(&E->guest, &o, err, sizeof(err)) < 0) {
		env_fail("QEMU: %s", err);
		goto out;
	}
	E->up = true;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
}

static void require_env(void)
{
	ck_assert_msg(E->up, "environment not up: %s", E->err);
}

/* ---- helpers -------------------------------------------------------- */

/* Mount slot @i with config file @conf (in E->dir); mem must be @size. */
static void mount_vfs(int i, const char *conf, uint64_t size)
{
	vt_ck_mount(&E->vfs[i], E->dir, i, conf, size, 20000);
}

static void umount_vfs(int i)
{
	vt_vmemfs_stop(&E->vfs[i], 5000);
}

static const char *vfs_path(int i, const char *name)
{
	return vt_vmemfs_path(&E->vfs[i], name);
}

/* Read [off, off+len) of @path fully; 0 or -errno. */
static int read_at(const char *path, void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDONLY), e;
	size_t got = 0;

	if (fd < 0)
		return -errno;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got,
				  (off_t)(off + got));

		if (n < 0) {
			e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return got == len ? 0 : -ENODATA;
}

static uint64_t hash_mib(const unsigned char *p)
{
	uint64_t h = 0x6a09e667f3bcc908ULL, w;

	for (size_t i = 0; i < MiB; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h;
}

/*
 * Hash MiB by MiB [0, RAM) of @path into @out.  Returns 0, or -errno with
 * *bad_off set to where the read failed.
 */
static int hash_file(const char *path, uint64_t *out, uint64_t *bad_off)
{
	unsigned char *buf = malloc(MiB);
	int fd = open(path, O_RDONLY), rc = 0;

	ck_assert(buf);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	for (uint64_t m = 0; m < NMIB; m++) {
		ssize_t n = pread(fd, buf, MiB, (off_t)(m * MiB));

		if (n != (ssize_t)MiB) {
			rc = n < 0 ? -errno : -ENODATA;
			*bad_off = m * MiB;
			break;
		}
		out[m] = hash_mib(buf);
	}
	close(fd);
	free(buf);
	return rc;
}

static bool page_present(int fd, uint64_t off)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);

	return d == (off_t)off;
}

/*
 * The oracle: what the paused guest's RAM holds, from the memory file for
 * its data pages and from the sub-host, read directly, for the holes of
 * the homed half (unhomed holes are zeros).  Also counts the MiB of the
 * homed half with non-zero bytes, so the comparison is known to matter.
 */
static void oracle_hashes(uint64_t *out, unsigned int *nonzero_home_mib)
{
	unsigned char *buf = malloc(MiB), *nb = malloc(MiB);
	char err[512];
	struct nbd_handle *h = vt_nbd_connect(E->sub.uri, 5000, err,
					      sizeof(err));
	int fd = open(E->mem, O_RDONLY);

	ck_assert(buf && nb);
	ck_assert_msg(h, "sub-host: %s", err);
	ck_assert_msg(fd >= 0, "%s: %s", E->mem, strerror(errno));
	*nonzero_home_mib = 0;
	for (uint64_t m = 0; m < NMIB; m++) {
		uint64_t off = m * MiB;

		/* pread of a tmpfs hole reads zeros and allocates nothing. */
		ck_assert(pread(fd, buf, MiB, (off_t)off) == (ssize_t)MiB);
		if (off >= HOME_START && off < HOME_END) {
			bool nz = false;

			ck_assert_msg(nbd_pread(h, nb, MiB, off, 0) == 0,
				      "nbd_pread: %s", nbd_get_error());
			for (uint64_t p = 0; p < MiB; p += PAGE)
				if (!page_present(fd, off + p))
					memcpy(buf + p, nb + p, PAGE);
			for (uint64_t i = 0; i < MiB && !nz; i++)
				nz = buf[i] != 0;
			*nonzero_home_mib += nz;
		}
		out[m] = hash_mib(buf);
	}
	close(fd);
	nbd_close(h);
	free(buf);
	free(nb);
}

/* The memory file's data extents; caller frees.  Returns the count. */
static size_t data_map(struct vt_extent **out, uint64_t *bytes)
{
	struct vt_datamap m;
	char err[512];

	ck_assert_msg(vt_datamap_get(E->mem, 0, RAM, &m, err, sizeof(err)) == 0,
		      "%s", err);
	*out = m.ext;
	*bytes = m.bytes;
	return m.n;
}

static void assert_hashes_eq(const uint64_t *got, const uint64_t *want,
			     const char *what)
{
	for (uint64_t m = 0; m < NMIB; m++)
		ck_assert_msg(got[m] == want[m], "%s differs from the oracle "
			      "in MiB %" PRIu64 " (RAM offset 0x%" PRIx64 ")",
			      what, m, m * MiB);
}

/* A number from `stats` of mount @i: top-level @key, or of sub-host 0
 * when @sub. */
static uint64_t stat_of(int i, bool sub, const char *key)
{
	static char text[1 << 16];
	json_object *j, *o, *v;
	uint64_t val;
	int fd = open(vfs_path(i, "stats"), O_RDONLY);
	ssize_t n;

	ck_assert(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	ck_assert(n > 0);
	text[n] = '\0';
	j = json_tokener_parse(text);
	ck_assert_msg(j, "stats is not JSON: %s", text);
	o = j;
	if (sub) {
		ck_assert(json_object_object_get_ex(j, "subhosts", &o));
		ck_assert_msg(json_object_array_length(o) >= 1, "%s", text);
		o = json_object_array_get_idx(o, 0);
	}
	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no %s in %s",
		      key, text);
	val = (uint64_t)json_object_get_int64(v);
	json_object_put(j);
	return val;
}

static void page_out_home(void)
{
	char err[1024];
	double t0 = vt_now_ms();

	ck_assert_msg(vt_split_page_out(&E->guest, &split, err,
					sizeof(err)) == 0, "%s", err);
	printf("info: vmem-page-out of the homed half took %.2f s\n",
	       (vt_now_ms() - t0) / 1000);
}

/* ---- suite running -------------------------------------------------- */

/*
 * Both backends serve the same bytes as the oracle for all of ram and
 * mem; direct leaves the memory file's data map alone, remote paging
 * grows it.
 */
START_TEST(test_backends_identical)
{
	static uint64_t want[NMIB], got[NMIB];
	struct vt_extent *m0, *m1;
	size_t n0, n1;
	uint64_t d0, d1, d2, bad = 0, req;
	unsigned int nz;
	char out[4096];
	double t0;
	int rc;

	require_env();
	/*
	 * Data of the guest's own.  Where the guest puts it is its business,
	 * but 320 MiB of files do not fit in the 256 MiB unhomed half, and
	 * random data written after a zero ballast must reach the homed one.
	 */
	ck_assert_int_eq(vt_guest_write_data(&E->guest, BALLAST_MIB, DATA_MIB,
					     "sync", out, sizeof(out), 300000),
			 0);
	/* Hold the memory still while the two readings are compared. */
	vt_ck_qmp(&E->guest, "{\"execute\":\"stop\"}");
	page_out_home();

	oracle_hashes(want, &nz);
	printf("info: %u MiB of the homed half hold non-zero data\n", nz);
	/* Otherwise a backend that served zeros would pass. */
	ck_assert_uint_ge(nz, 16);
	n0 = data_map(&m0, &d0);
	printf("info: memory file: %" PRIu64 " MiB resident in %zu extents\n",
	       d0 / MiB, n0);

	/* direct */
	mount_vfs(0, "direct.conf", RAM);
	t0 = vt_now_ms();
	rc = hash_file(vfs_path(0, "ram"), got, &bad);
	ck_assert_msg(rc == 0, "direct: reading ram at 0x%" PRIx64 ": %s", bad,
		      strerror(-rc));
	printf("info: direct read all of ram in %.2f s\n",
	       (vt_now_ms() - t0) / 1000);
	assert_hashes_eq(got, want, "direct ram");
	rc = hash_file(vfs_path(0, "mem"), got, &bad);
	ck_assert_msg(rc == 0, "direct: reading mem at 0x%" PRIx64 ": %s", bad,
		      strerror(-rc));
	assert_hashes_eq(got, want, "direct mem");
	ck_assert_uint_ge(stat_of(0, false, "bytes_remote"), nz * MiB);
	umount_vfs(0);
	n1 = data_map(&m1, &d1);
	ck_assert_msg(n1 == n0 && memcmp(m0, m1, n0 * sizeof(*m0)) == 0,
		      "direct changed the memory file's data map: %zu extents "
		      "(%" PRIu64 " bytes) before, %zu (%" PRIu64 ") after",
		      n0, d0, n1, d1);
	free(m1);

	/* remote paging */
	mount_vfs(0, "rp.conf", RAM);
	t0 = vt_now_ms();
	rc = hash_file(vfs_path(0, "ram"), got, &bad);
	ck_assert_msg(rc == 0, "remote-paging: reading ram at 0x%" PRIx64
		      ": %s", bad, strerror(-rc));
	printf("info: remote-paging read all of ram in %.2f s\n",
	       (vt_now_ms() - t0) / 1000);
	assert_hashes_eq(got, want, "remote-paging ram");
	n1 = data_map(&m1, &d1);
	free(m1);
	rc = hash_file(vfs_path(0, "mem"), got, &bad);
	ck_assert_msg(rc == 0, "remote-paging: reading mem at 0x%" PRIx64
		      ": %s", bad, strerror(-rc));
	assert_hashes_eq(got, want, "remote-paging mem");
	req = stat_of(0, true, "requests");
	printf("info: remote paging: %" PRIu64 " vmem-page-in commands; memory "
	       "file %" PRIu64 " -> %" PRIu64 " MiB resident\n", req,
	       d0 / MiB, d1 / MiB);
	/* It had to page in every chunk of the homed half, which was all
	 * out: one command per chunk at least. */
	ck_assert_uint_ge(req, (HOME_END - HOME_START) / CHUNK);
	/* The patched QEMU names its pager's control socket: every page-in
	 * went there, none over QMP. */
	ck_assert_uint_gt(stat_of(0, false, "page_in_ctl_commands"), 0);
	ck_assert_uint_eq(stat_of(0, false, "page_in_qmp_commands"), 0);
	/*
	 * The VM pages in all 256 MiB of the homed half, evicting to stay
	 * under local-limit; so the file must hold at least about what
	 * fits under the limit (or all of it), not merely more than before.
	 */
	{
		uint64_t room = LOCAL_LIMIT - d0, want_d1;

		if (room > HOME_END - HOME_START)
			room = HOME_END - HOME_START;
		want_d1 = d0 + room / 2;
		ck_assert_msg(d1 >= want_d1, "remote paging left %" PRIu64
			      " bytes resident, %" PRIu64 " before; expected "
			      ">= %" PRIu64, d1, d0, want_d1);
	}
	umount_vfs(0);
	data_map(&m1, &d2);
	free(m1);
	ck_assert_uint_gt(d2, d0);
	free(m0);

	memcpy(E->hash, want, sizeof(want));
	E->have_hash = true;
}
END_TEST

/* Below the PCI hole, flat and auto must be the same bytes. */
START_TEST(test_flat_vs_auto)
{
	static unsigned char a[MiB], r[MiB], f[MiB];
	uint64_t rng = 0x5eed;
	struct stat st;
	int i;

	require_env();
	vt_ck_qmp(&E->guest, "{\"execute\":\"stop\"}");
	mount_vfs(0, "direct.conf", RAM);	/* qmp: layout auto */
	mount_vfs(1, "flat.conf", RAM);
	ck_assert_int_eq(stat(vfs_path(0, "ram"), &st), 0);
	ck_assert_uint_eq(st.st_size, RAM);
	ck_assert_int_eq(stat(vfs_path(1, "mem"), &st), 0);
	ck_assert_uint_eq(st.st_size, RAM);

	for (i = 0; i < 40; i++) {
		uint64_t off, len;
		int rc;

		if (i == 0) {
			off = 0;
			len = MiB;
		} else if (i == 1) {
			off = RAM - MiB;
			len = MiB;
		} else if (i == 2) {
			off = HOME_START - 64 * KiB;	/* across the split */
			len = 128 * KiB;
		} else if (i < 8) {
			/* Whole MiBs, also checked against test_backends's
			 * oracle when it ran. */
			rng = vt_splitmix64(rng);
			off = (rng % NMIB) * MiB;
			len = MiB;
		} else {
			rng = vt_splitmix64(rng);
			off = (rng % (RAM / PAGE)) * PAGE + (rng >> 60) * 16;
			len = 1 + (vt_splitmix64(rng) % MiB);
			if (off + len > RAM)
				len = RAM - off;
		}
		rc = read_at(vfs_path(0, "mem"), a, len, off);
		ck_assert_msg(rc == 0, "auto mem @0x%" PRIx64 ": %s", off,
			      strerror(-rc));
		rc = read_at(vfs_path(0, "ram"), r, len, off);
		ck_assert_msg(rc == 0, "auto ram @0x%" PRIx64 ": %s", off,
			      strerror(-rc));
		rc = read_at(vfs_path(1, "mem"), f, len, off);
		ck_assert_msg(rc == 0, "flat mem @0x%" PRIx64 ": %s", off,
			      strerror(-rc));
		ck_assert_msg(memcmp(a, r, len) == 0, "auto mem != ram at 0x%"
			      PRIx64 "+%" PRIu64, off, len);
		ck_assert_msg(memcmp(a, f, len) == 0, "auto mem != flat mem at "
			      "0x%" PRIx64 "+%" PRIu64, off, len);
		if (len == MiB && off % MiB == 0 && E->have_hash)
			ck_assert_msg(hash_mib(a) == E->hash[off / MiB],
				      "MiB at 0x%" PRIx64 " changed since "
				      "test_backends_identical", off);
	}
	umount_vfs(1);
	umount_vfs(0);
}
END_TEST

static int stripes_mid_move(void)
{
	struct vmem_seq_map m;
	char path[160];
	int fd, n = 0;

	snprintf(path, sizeof(path), "%s.seq", E->mem);
	fd = open(path, O_RDONLY);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert(pread(fd, &m, sizeof(m), 0) == (ssize_t)sizeof(m));
	close(fd);
	for (int i = 0; i < VMEM_SEQ_STRIPES; i++)
		n += m.pair[i].begun != m.pair[i].done;
	return n;
}

/* A move that began and will never end: what a mover killed mid-move
 * leaves behind. */
static void begin_stray_move(int stripe)
{
	char path[160];
	uint64_t begun;
	off_t at = (off_t)stripe * (off_t)sizeof(struct vmem_seq_pair);
	int fd;

	snprintf(path, sizeof(path), "%s.seq", E->mem);
	fd = open(path, O_RDWR);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert(pread(fd, &begun, 8, at) == 8);
	begun++;
	ck_assert(pwrite(fd, &begun, 8, at) == 8);
	close(fd);
}

struct bg_read {
	char path[256];
	uint64_t start, end;
	uint64_t done;		/* bytes read so far (atomic) */
	int err;		/* errno of the failed read, 0 if none */
	double t_err;		/* when it failed */
	bool finished;
};

static void *bg_reader(void *arg)
{
	struct bg_read *b = arg;
	unsigned char *buf = malloc(MiB);
	int fd = open(b->path, O_RDONLY);

	if (!buf || fd < 0) {
		b->err = errno ? errno : ENOMEM;
		b->t_err = vt_now_ms();
		goto out;
	}
	for (uint64_t off = b->start; off < b->end; off += MiB) {
		if (pread(fd, buf, MiB, (off_t)off) != (ssize_t)MiB) {
			b->err = errno ? errno : ENODATA;
			b->t_err = vt_now_ms();
			break;
		}
		__atomic_store_n(&b->done, off + MiB - b->start,
				 __ATOMIC_RELEASE);
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	__atomic_store_n(&b->finished, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * QEMU killed during a remote-paging read: that read fails with EIO
 * within the timeout, local ranges keep being served, remote ones fail
 * fast, and a new QEMU on the same QMP socket path is picked up.
 */
START_TEST(test_qemu_killed)
{
	static unsigned char buf[MiB];
	struct bg_read b = { 0 };
	struct vt_guest_opts o = { 0 };
	struct timespec ts;
	pthread_t th;
	char dir[128], err[2048];
	uint64_t bad = UINT64_MAX, c0;
	double t_kill, t0, dt;
	int rc, bad_err = 0, n_mid;

	require_env();
	vt_ck_qmp(&E->guest, "{\"execute\":\"stop\"}");
	page_out_home();
	mount_vfs(0, "rp.conf", RAM);

	snprintf(b.path, sizeof(b.path), "%s", vfs_path(0, "ram"));
	b.start = HOME_START;
	b.end = HOME_END;
	ck_assert_int_eq(pthread_create(&th, NULL, bg_reader, &b), 0);
	/* Let it get going: a few MiB paged in, one chunk at a time. */
	t0 = vt_now_ms();
	while (__atomic_load_n(&b.done, __ATOMIC_ACQUIRE) < 4 * MiB &&
	       !__atomic_load_n(&b.finished, __ATOMIC_ACQUIRE) &&
	       vt_now_ms() - t0 < 20000)
		vt_sleep_ms(5);
	c0 = stat_of(0, true, "connects");
	t_kill = vt_now_ms();
	ck_assert_int_eq(kill(E->guest.pid, SIGKILL), 0);

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += TIMEOUT_MS / 1000 + 5;
	rc = pthread_timedjoin_np(th, NULL, &ts);
	ck_assert_msg(rc == 0, "the read hangs %d s after QEMU was killed",
		      TIMEOUT_MS / 1000 + 5);
	ck_assert_msg(b.err != 0, "the read of the homed half (%" PRIu64
		      " MiB done) finished although QEMU was killed during it",
		      b.done / MiB);
	printf("info: %" PRIu64 " MiB read before the kill; the read in flight"
	       " failed %.0f ms after it: %s\n", b.done / MiB,
	       b.t_err - t_kill, strerror(b.err));
	ck_assert_int_eq(b.err, EIO);
	ck_assert_msg(b.t_err - t_kill <= TIMEOUT_MS + 1000, "EIO after %.0f "
		      "ms, timeout is %d ms", b.t_err - t_kill, TIMEOUT_MS);

	/*
	 * A pager killed in the middle of a move leaves its stripes of the
	 * sequence file "moving" (common/evictseq.h) until a new pager
	 * heals them; local reads in those stripes must still work.
	 */
	n_mid = stripes_mid_move();
	printf("info: the dead pager left %d of %d sequence stripes mid-move\n",
	       n_mid, VMEM_SEQ_STRIPES);
	if (n_mid == 0) {
		/* The kill fell between two moves; make it as if it had
		 * fallen inside one, in stripe 0, which holds local RAM. */
		begin_stray_move(0);
		ck_assert_int_eq(stripes_mid_move(), 1);
	}

	/* Local ranges (the unhomed half) are still served, unchanged. */
	t0 = vt_now_ms();
	for (uint64_t off = 0; off < HOME_START; off += MiB) {
		rc = read_at(vfs_path(0, "ram"), buf, MiB, off);
		if (rc < 0) {
			if (bad == UINT64_MAX) {
				bad = off;
				bad_err = -rc;
			}
			continue;
		}
		if (E->have_hash)
			ck_assert_msg(hash_mib(buf) == E->hash[off / MiB],
				      "local MiB at 0x%" PRIx64 " changed", off);
	}
	ck_assert_msg(bad == UINT64_MAX, "with QEMU dead, the local read at "
		      "0x%" PRIx64 " failed: %s", bad, strerror(bad_err));
	printf("info: with QEMU dead, read the local 256 MiB in %.2f s\n",
	       (vt_now_ms() - t0) / 1000);

	/* Remote ranges fail fast. */
	t0 = vt_now_ms();
	rc = read_at(vfs_path(0, "ram"), buf, MiB, HOME_END - MiB);
	dt = vt_now_ms() - t0;
	ck_assert_int_eq(rc, -EIO);
	ck_assert_msg(dt <= TIMEOUT_MS + 1000, "EIO after %.0f ms", dt);

	/* A new QEMU on the same memory file and QMP socket path. */
	snprintf(dir, sizeof(dir), "%s/r2", E->dir);
	ck_assert(mkdir(dir, 0700) == 0 || errno == EEXIST);
	o.mem_path = E->mem;
	o.ram_size = RAM;
	o.vmem_config = E->qemu_conf;
	o.vmem_vm = "vm";
	o.run_dir = dir;
	o.qmp2_path = E->qmp2;
	o.paused = true;	/* its pager serves vmem-page-in all the same */
	o.boot_timeout_ms = 60000;
	ck_assert_msg(vt_guest_start(&E->guest2, &o, err, sizeof(err)) == 0,
		      "restart: %s", err);
	vt_sleep_ms(200);	/* past vmemfs's reconnect hold-off */
	for (uint64_t off = HOME_START; off < HOME_START + 32 * MiB;
	     off += MiB) {
		rc = read_at(vfs_path(0, "ram"), buf, MiB, off);
		ck_assert_msg(rc == 0, "after the restart, the remote read at "
			      "0x%" PRIx64 " failed: %s", off, strerror(-rc));
		if (E->have_hash)
			ck_assert_msg(hash_mib(buf) == E->hash[off / MiB],
				      "remote MiB at 0x%" PRIx64 " differs "
				      "after the restart", off);
	}
	ck_assert_uint_gt(stat_of(0, true, "connects"), c0);
	umount_vfs(0);
	vt_guest_stop_started(&E->guest2, 5000);
}
END_TEST

/* ---- suite gpa ------------------------------------------------------ */

static void pmemsave(uint64_t gpa, uint64_t len, void *buf)
{
	char cmd[512], path[256];
	int rc;

	snprintf(path, sizeof(path), "%s/pm.bin", E->dir);
	unlink(path);
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"pmemsave\",\"arguments\":"
		 "{\"val\":%" PRIu64 ",\"size\":%" PRIu64 ",\"filename\":"
		 "\"%s\"}}", gpa, len, path);
	vt_ck_qmp(&E->guest, cmd);
	rc = read_at(path, buf, len, 0);
	ck_assert_msg(rc == 0, "%s: %s", path, strerror(-rc));
	unlink(path);
}

START_TEST(test_gpa_oracle)
{
	static unsigned char want[MiB], got[MiB], pm[MiB];
	static const unsigned char zero[MiB];
	struct stat st;
	size_t i;
	int rc;

	require_env();
	mount_vfs(0, "direct.conf", G_MEM_SIZE);	/* qmp: layout auto */
	ck_assert_int_eq(stat(vfs_path(0, "mem"), &st), 0);
	ck_assert_uint_eq(st.st_size, G_MEM_SIZE);
	ck_assert_int_eq(stat(vfs_path(0, "ram"), &st), 0);
	ck_assert_uint_eq(st.st_size, G_RAM);

	for (i = 0; i < sizeof(gpa_samples) / sizeof(gpa_samples[0]); i++) {
		const struct gpa_sample *s = &gpa_samples[i];
		uint64_t gpa = gpa_of_ram(s->ram);

		vt_pattern_fill(want, s->ram, s->len, G_SEED);
		/* vmemfs first: the sub-host's sample is still remote. */
		rc = read_at(vfs_path(0, "mem"), got, s->len, gpa);
		ck_assert_msg(rc == 0, "mem @0x%" PRIx64 ": %s", gpa,
			      strerror(-rc));
		ck_assert_msg(memcmp(got, want, s->len) == 0, "%s: mem at GPA "
			      "0x%" PRIx64 " is not RAM 0x%" PRIx64, s->what,
			      gpa, s->ram);
		pmemsave(gpa, s->len, pm);
		ck_assert_msg(memcmp(pm, want, s->len) == 0, "%s: QEMU's "
			      "pmemsave at GPA 0x%" PRIx64 " is not RAM 0x%"
			      PRIx64 " (the test's idea of the pc map is "
			      "wrong?)", s->what, gpa, s->ram);
		rc = read_at(vfs_path(0, "ram"), got, s->len, s->ram);
		ck_assert_msg(rc == 0 && memcmp(got, want, s->len) == 0,
			      "%s: ram at 0x%" PRIx64, s->what, s->ram);
		printf("info: GPA 0x%09" PRIx64 " (%s): mem == pmemsave == "
		       "pattern of RAM 0x%09" PRIx64 "\n", gpa, s->what, s->ram);
	}
	/* Never-written RAM, on either side: zeros in both views. */
	rc = read_at(vfs_path(0, "mem"), got, MiB, 2 * GiB);
	ck_assert_int_eq(rc, 0);
	pmemsave(2 * GiB, MiB, pm);
	ck_assert(memcmp(got, zero, MiB) == 0 && memcmp(pm, zero, MiB) == 0);

	/* A read across the start of the PCI hole: pattern, then zeros. */
	rc = read_at(vfs_path(0, "mem"), got, 128 * KiB, G_LOW - 64 * KiB);
	ck_assert_int_eq(rc, 0);
	vt_pattern_fill(want, G_LOW - 64 * KiB, 64 * KiB, G_SEED);
	ck_assert(memcmp(got, want, 64 * KiB) == 0);
	ck_assert(memcmp(got + 64 * KiB, zero, 64 * KiB) == 0);
	/* The whole hole reads as zeros, never as device registers. */
	for (uint64_t off = G_LOW; off < G_HIGH_GPA; off += MiB) {
		rc = read_at(vfs_path(0, "mem"), got, MiB, off);
		ck_assert_msg(rc == 0, "mem @0x%" PRIx64 ": %s", off,
			      strerror(-rc));
		ck_assert_msg(memcmp(got, zero, MiB) == 0, "PCI hole at 0x%"
			      PRIx64 " is not zeros", off);
	}
	/* And mem ends where RAM ends. */
	{
		int fd = open(vfs_path(0, "mem"), O_RDONLY);

		ck_assert(fd >= 0);
		ck_assert_int_eq(pread(fd, got, 4096, (off_t)G_MEM_SIZE), 0);
		ck_assert_int_eq(pread(fd, got, 8192, (off_t)G_MEM_SIZE - 4096),
				 4096);
		close(fd);
	}
	umount_vfs(0);
}
END_TEST

static Suite *vmemfs_suite(void)
{
	Suite *s = suite_create("qemu_vmemfs");
	TCase *tc = vt_tcase_unchecked(s, "running", env_up_running, env_down,
				       600);
	TCase *tg = vt_tcase_unchecked(s, "gpa", env_up_gpa, env_down, 300);

	tcase_add_test(tc, test_backends_identical);
	tcase_add_test(tc, test_flat_vs_auto);
	/* Last: it kills the guest. */
	tcase_add_test(tc, test_qemu_killed);

	tcase_add_test(tg, test_gpa_oracle);
	return s;
}

VT_GUEST_MAIN("check_qemu_vmemfs", vmemfs_suite, E, runner_pid, env_down)
