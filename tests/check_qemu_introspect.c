// SPDX-License-Identifier: MIT
/*
 * The guest-kernel library (introspect/) and vmemfs-kernel against a real
 * guest: Debian's kernel under TCG with KASLR on, 512 MiB of RAM (the pc
 * machine maps it all at GPA 0, so the memory file is a raw
 * guest-physical image).
 *
 * The guest boots with a random token on its command line and prints what
 * it knows of itself: uname -r, /proc/version, /sys/kernel/vmcoreinfo
 * (the note's GPA), and a few hundred /proc/kallsyms lines picked at
 * random here.  Then it is paused (QMP stop) and the library, reading
 * only the memory file, must agree with all of it.  BTF member offsets
 * are compared with bpftool's dump of the vmlinux extracted from the
 * guest's vmlinuz on the host (an independent parser).  Hostile cases
 * forge notes into copies of the memory and corrupt the real one.
 *
 * Case "la57" boots the same kernel with -cpu max (5-level paging); case
 * "big" a 4 GiB guest (RAM above 4 GiB; the note is usually near the top,
 * so recognition scans nearly everything).
 *
 * Processes: QEMU is started by an unchecked fixture in the runner, which
 * stops it by PID at teardown, at exit and on signals; files live in a
 * run directory and in /dev/shm with the runner's pid in their names.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../introspect/kernel.h"
#include "lib/guest.h"
#include "lib/guestck.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define MiB ((uint64_t)1 << 20)
#define RAM (512 * MiB)
#define PAGE 4096ULL
#define NSAMPLES 300
/* __START_KERNEL_map + CONFIG_PHYSICAL_START: where _text is linked. */
#define TEXT_LINKED 0xffffffff81000000ULL

struct sample {
	uint64_t addr;
	char type;
	char name[128];
};

struct env {
	bool up;
	char err[2048];
	struct vt_guest guest;
	char dir[64];
	char mem[128];		/* QEMU's memory file = the image */
	char pm[128];		/* QMP pmemsave of all RAM */
	char copy[128];		/* scratch copy for hostile tests */
	char token[40];
	char release[65];
	char version[512];	/* /proc/version */
	uint64_t note_gpa, note_size;	/* /sys/kernel/vmcoreinfo */
	uint64_t text_addr;	/* _text from /proc/kallsyms */
	uint64_t nsyms;		/* /proc/kallsyms lines without [module] */
	unsigned int nsamples;
	struct sample samples[NSAMPLES + 8];
	char init_cmdline[256];	/* /proc/1/cmdline, NULs as spaces */
	int levels;		/* paging levels the guest was booted with */
	struct vt_vmemfs vfs;	/* test_tool_on_mount's mount */
	uint64_t ram;		/* RAM (memory file) size */
};

static struct env *E;
static pid_t runner_pid;

static void env_down(void)
{
	static const char *const names[] = {
		"qemu.log", "vmlinux", "vmlinux.bad", "btf.raw", "btf.dump",
		"tool.out", "tool.err", "System.map", "vmemfs.conf",
		"vmemfs.log",
	};

	if (getpid() != runner_pid || !E)
		return;
	if (E->vfs.pid > 0 || E->vfs.mnt[0]) {
		vt_vmemfs_stop(&E->vfs, 3000);
		rmdir(E->vfs.mnt);
	}
	vt_guest_stop_started(&E->guest, 5000);
	if (E->pm[0])
		unlink(E->pm);
	if (E->copy[0])
		unlink(E->copy);
	vt_run_dir_remove(E->dir, E->mem, names,
			  sizeof(names) / sizeof(names[0]));
	memset(E, 0, sizeof(*E));
}

/* A fixture's failure: require_env() reports it in every test. */
#define env_fail(...) vt_set_err(E->err, sizeof(E->err), __VA_ARGS__)

static int run_in_guest(const char *cmd, char *out, size_t len)
{
	int st = vt_guest_run(&E->guest, cmd, out, len, 120000);

	if (st != 0)
		env_fail("guest `%.200s` -> %d: %.300s", cmd, st, out);
	return st;
}

/* Parse "ADDR T NAME" lines of /proc/kallsyms into E->samples. */
static void add_samples(const char *text)
{
	const char *p = text;

	while (*p && E->nsamples < sizeof(E->samples) / sizeof(E->samples[0])) {
		struct sample *s = &E->samples[E->nsamples];
		unsigned long long a;
		char line[256];
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		snprintf(line, sizeof(line), "%.*s", (int)n, p);
		p += n + (nl ? 1 : 0);
		if (strchr(line, '['))
			continue;	/* modules, bpf: not in kallsyms tables */
		if (sscanf(line, "%llx %c %127s", &a, &s->type, s->name) == 3) {
			s->addr = a;
			E->nsamples++;
		}
	}
}

/* Random numbers independent of the library: /dev/urandom. */
static uint64_t rnd(void)
{
	static int fd = -1;
	uint64_t v = 0;

	if (fd < 0)
		fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v))
		v = (uint64_t)vt_now_ms() * 6364136223846793005ULL;
	return v;
}

static void qmp_env(const char *cmd)
{
	char reply[4096];

	if (!E->err[0] && vt_guest_qmp(&E->guest, cmd, reply, sizeof(reply),
				       120000) != 0)
		env_fail("QMP %s: %s", cmd, reply);
}

/* The GPA of the page whose first 64 bytes are @pat: the guest wrote it. */
static uint64_t find_page(const char *path, const char *pat)
{
	unsigned char buf[1 << 16];
	size_t plen = strlen(pat);
	int fd = open(path, O_RDONLY);
	uint64_t found = 0;

	if (fd < 0)
		return 0;
	for (uint64_t off = 0; off < RAM && !found; off += sizeof(buf)) {
		if (pread(fd, buf, sizeof(buf), (off_t)off) != sizeof(buf))
			break;
		for (size_t i = 0; i < sizeof(buf); i += PAGE)
			if (!memcmp(buf + i, pat, plen)) {
				found = off + i;
				break;
			}
	}
	close(fd);
	return found;
}

static void env_up(const char *cpu, int levels, uint64_t ram)
{
	static char out[1 << 16];
	char err[1024], cmd[3000], append[64];
	struct vt_guest_opts o = { 0 };
	unsigned long long nlines = 0, nbrack = 0, a, s;
	size_t n;

	memset(E, 0, sizeof(*E));
	if (vt_guest_has("vmlinuz", R_OK, E->err, sizeof(E->err)) < 0 ||
	    vt_run_dir("kern", runner_pid, E->dir, E->mem, E->err,
		       sizeof(E->err)) < 0)
		return;
	snprintf(E->pm, sizeof(E->pm), "/dev/shm/vmt-kern-%d.pm",
		 (int)runner_pid);
	snprintf(E->copy, sizeof(E->copy), "/dev/shm/vmt-kern-%d.copy",
		 (int)runner_pid);
	snprintf(E->token, sizeof(E->token), "%016" PRIx64, rnd());
	snprintf(append, sizeof(append), "vmt_token=%s", E->token);
	o.mem_path = E->mem;
	E->ram = ram;
	o.ram_size = ram;
	o.run_dir = E->dir;
	o.boot_timeout_ms = 180000;
	o.append = append;
	o.cpu = cpu;
	if (vt_guest_start(&E->guest, &o, err, sizeof(err)) < 0) {
		env_fail("boot: %s", err);
		return;
	}
	E->levels = levels;
	printf("info: guest booted in %.1f s (TCG, %" PRIu64 " MiB, cpu %s)\n",
	       E->guest.boot_ms / 1000, ram / MiB, cpu ? cpu : "default");

	if (run_in_guest("cat /proc/cmdline", out, sizeof(out)))
		return;
	if (!strstr(out, E->token)) {
		env_fail("token %s not in /proc/cmdline: %s", E->token, out);
		return;
	}
	if (run_in_guest("uname -r", out, sizeof(out)))
		return;
	snprintf(E->release, sizeof(E->release), "%.*s",
		 (int)strcspn(out, "\r\n"), out);
	if (run_in_guest("cat /proc/version", out, sizeof(out)))
		return;
	snprintf(E->version, sizeof(E->version), "%.*s",
		 (int)strcspn(out, "\r\n"), out);
	if (run_in_guest("cat /sys/kernel/vmcoreinfo", out, sizeof(out)))
		return;
	if (sscanf(out, "%llx %llx", &a, &s) != 2) {
		env_fail("/sys/kernel/vmcoreinfo: \"%.100s\"", out);
		return;
	}
	E->note_gpa = a;
	E->note_size = s;
	if (run_in_guest("wc -l < /proc/kallsyms; "
			 "grep -c '\\[' /proc/kallsyms || true", out, sizeof(out)))
		return;
	if (sscanf(out, "%llu %llu", &nlines, &nbrack) != 2 || nlines < 1000) {
		env_fail("kallsyms line count: \"%.100s\"", out);
		return;
	}
	E->nsyms = nlines - nbrack;
	/* Random lines (sorted, so sed prints them in one pass). */
	{
		unsigned long lines[NSAMPLES];

		for (int i = 0; i < NSAMPLES; i++)
			lines[i] = 1 + rnd() % nlines;
		for (int i = 1; i < NSAMPLES; i++)
			for (int j = i; j > 0 && lines[j - 1] > lines[j]; j--) {
				unsigned long t = lines[j];

				lines[j] = lines[j - 1];
				lines[j - 1] = t;
			}
		n = (size_t)snprintf(cmd, sizeof(cmd), "sed -n '");
		for (int i = 0; i < NSAMPLES; i++)
			n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, "%lup;",
					      lines[i]);
		snprintf(cmd + n, sizeof(cmd) - n, "' /proc/kallsyms");
	}
	if (run_in_guest(cmd, out, sizeof(out)))
		return;
	add_samples(out);
	if (run_in_guest("grep -E ' (_text|_stext|_end|init_task|linux_banner|"
			 "saved_command_line|page_offset_base|init_top_pgt|"
			 "vmcoreinfo_note|__start_BTF|__stop_BTF|vmemmap_base|"
			 "vmalloc_base|fixed_percpu_data)$' "
			 "/proc/kallsyms", out, sizeof(out)))
		return;
	add_samples(out);
	for (unsigned int i = 0; i < E->nsamples; i++)
		if (!strcmp(E->samples[i].name, "_text"))
			E->text_addr = E->samples[i].addr;
	if (!E->text_addr || E->nsamples < NSAMPLES / 2) {
		env_fail("only %u kallsyms samples, _text %#" PRIx64,
			 E->nsamples, E->text_addr);
		return;
	}
	/* A page a guest process wrote (tmpfs page cache): a user's page. */
	if (run_in_guest("tr '\\0' ' ' < /proc/1/cmdline", out, sizeof(out)))
		return;
	snprintf(E->init_cmdline, sizeof(E->init_cmdline), "%.255s", out);
	/* 64 records of 4096 bytes: every page starts with the marker. */
	snprintf(cmd, sizeof(cmd), "i=0; while [ $i -lt 64 ]; do printf "
		 "VMT-FORGE-PAGE-%s-%%04d%%4060s $i ''; i=$((i+1)); "
		 "done > /tmp/forge; sync", E->token);
	if (run_in_guest(cmd, out, sizeof(out)))
		return;
	qmp_env("{\"execute\":\"stop\"}");
	if (ram > RAM)		/* the big guest's tests need no pmemsave */
		goto done;
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"pmemsave\",\"arguments\":"
		 "{\"val\":0,\"size\":%" PRIu64 ",\"filename\":\"%s\"}}", RAM,
		 E->pm);
	qmp_env(cmd);
done:
	if (E->err[0])
		return;
	printf("info: guest %s, note at GPA %#" PRIx64 " (%" PRIu64 " bytes), "
	       "_text %#" PRIx64 ", %" PRIu64 " symbols, %u samples\n",
	       E->release, E->note_gpa, E->note_size, E->text_addr, E->nsyms,
	       E->nsamples);
	E->up = true;
}

/* QEMU's default CPU: 4-level paging. */
static void env_up_4(void)
{
	env_up(NULL, 4, RAM);
}

/* -cpu max has LA57: Debian's kernel then runs with 5-level paging. */
static void env_up_5(void)
{
	env_up("max", 5, RAM);
}

/* 4 GiB: the pc machine puts RAM [0, 3G) at GPA 0, [3G, 4G) at GPA 4G. */
#define BIG_RAM (4096 * MiB)
#define BIG_LOW (3072 * MiB)
#define GPA_4G (4096 * MiB)

static void env_up_big(void)
{
	env_up(NULL, 4, BIG_RAM);
}

static void require_env(void)
{
	ck_assert_msg(E->up, "environment not up: %s", E->err);
}

/* ---- helpers -------------------------------------------------------- */

/* Recognise the kernel in image @path; returns the library's status. */
static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of the last recognise(): the machine is shared, wall time
 * says more about the other programs than about the library. */
static double last_cpu_ms;

static int recognise(const char *path, const struct vmi_kernel_options *o,
		     struct vmi_phys *p, struct vmi_kernel **k, char *err,
		     size_t errlen, double *ms)
{
	double t0, c0;
	int rc;

	rc = vmi_phys_file_open(p, path, NULL, 0, err, errlen);
	ck_assert_msg(rc == 0, "open %s: %s", path, err);
	t0 = vt_now_ms();
	c0 = cpu_ms();
	rc = vmi_kernel_recognise(p, o, k, err, errlen);
	last_cpu_ms = cpu_ms() - c0;
	if (ms)
		*ms = vt_now_ms() - t0;
	return rc;
}

static void read_exact(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert(pread(fd, buf, len, (off_t)off) == (ssize_t)len);
	close(fd);
}

static void write_exact(const char *path, uint64_t off, const void *buf,
			size_t len)
{
	int fd = open(path, O_WRONLY);

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert(pwrite(fd, buf, len, (off_t)off) == (ssize_t)len);
	ck_assert(close(fd) == 0);
}

/* The real note, read from the memory file at the guest's own GPA. */
static size_t real_note(unsigned char *buf, size_t max)
{
	size_t len;

	read_exact(E->mem, E->note_gpa, buf, 64);
	len = vmi_note_check_header(buf, 64);
	ck_assert_msg(len > 0 && len <= max, "no note header at the GPA the "
		      "guest gave (%#" PRIx64 ")", E->note_gpa);
	read_exact(E->mem, E->note_gpa, buf, len);
	return len;
}

/* A note with the text of @note, but @key's value replaced by @value. */
static size_t forge(const unsigned char *note, size_t len, const char *key,
		    const char *value, unsigned char *out)
{
	const char *text = (const char *)note + VMI_NOTE_HDR;
	size_t tlen = strnlen(text, len - VMI_NOTE_HDR), klen = strlen(key);
	char *t = malloc(tlen + 256), *p;
	const char *at;
	uint32_t descsz;
	size_t n;

	ck_assert(t);
	at = strstr(text, key);
	ck_assert_msg(at && (at == text || at[-1] == '\n'), "%s not in note",
		      key);
	n = (size_t)(at - text) + klen;
	memcpy(t, text, n);
	p = t + n;
	p += sprintf(p, "%s", value);
	at = strchr(at, '\n');
	ck_assert(at);
	memcpy(p, at, tlen - (size_t)(at - text));
	p += tlen - (size_t)(at - text);
	descsz = (uint32_t)(p - t);
	memcpy(out, note, VMI_NOTE_HDR);
	memcpy(out + 4, &descsz, 4);
	memset(out + VMI_NOTE_HDR, 0, (descsz + 3) & ~3u);
	memcpy(out + VMI_NOTE_HDR, t, descsz);
	free(t);
	return VMI_NOTE_HDR + ((descsz + 3) & ~3u);
}

/* The lowest all-zero page of @path at or above @from. */
static uint64_t zero_page(const char *path, uint64_t from)
{
	static const unsigned char zero[PAGE];
	unsigned char buf[PAGE];

	for (uint64_t g = from; g < RAM; g += PAGE) {
		read_exact(path, g, buf, PAGE);
		if (!memcmp(buf, zero, PAGE))
			return g;
	}
	ck_abort_msg("no zero page above %#" PRIx64, from);
	return 0;
}

static uint64_t sym(const struct vmi_kernel *k, const char *name)
{
	uint64_t a = 0;

	ck_assert_msg(vmi_kernel_symbol(k, name, &a), "no symbol %s", name);
	return a;
}

/* ---- the kernel as the guest sees itself --------------------------- */

START_TEST(test_matches_guest)
{
	struct vmi_kernel_options o = { .timeout_ms = 30000 };
	const struct vmi_kernel_info *in;
	const struct vmi_kallsyms *ks;
	struct vmi_kernel_reader r;
	struct vmi_kernel *k = NULL;
	struct vmi_phys p;
	struct vmi_xlate x;
	char err[512], cmdline[4096];
	uint64_t ptr, pa, va, pa2, len, gpa;
	unsigned int matched = 0;
	double ms;
	int rc;

	require_env();
	rc = recognise(E->mem, &o, &p, &k, err, sizeof(err), &ms);
	ck_assert_msg(rc == 0, "not recognised: %s", err);
	in = vmi_kernel_info(k);
	printf("info: recognised %s in %.1f ms (library: %" PRIu64 " ms), "
	       "KASLR offset %#" PRIx64 ", phys_base %" PRId64 "\n",
	       in->release, ms, in->recognition_ms, in->kaslr_offset,
	       in->phys_base);
	ck_assert_str_eq(in->release, E->release);
	ck_assert_str_eq(in->banner, E->version);
	ck_assert_uint_eq(in->vmcoreinfo_gpa, E->note_gpa);
	vmi_kernel_note(k, &len, &gpa);
	ck_assert_uint_eq(gpa, E->note_gpa);
	ck_assert_uint_le(len, E->note_size);
	/* KASLR: _text moved from where it is linked, by KERNELOFFSET. */
	ck_assert_uint_ne(E->text_addr, TEXT_LINKED);
	ck_assert_uint_eq(in->kaslr_offset, E->text_addr - TEXT_LINKED);
	ck_assert_int_eq(in->paging_levels, E->levels);
	ck_assert_str_eq(in->btf_source, "guest");
	/* "Well under 1 s" on this small guest with the note local: in CPU
	 * time (the machine is shared), and in wall time with a margin. */
	printf("info: recognition CPU time %.1f ms (wall %.1f ms)\n",
	       last_cpu_ms, ms);
	ck_assert_msg(last_cpu_ms < 500, "recognition used %.0f ms of CPU",
		      last_cpu_ms);
	ck_assert_msg(ms < 5000, "recognition took %.0f ms", ms);

	ks = vmi_kernel_kallsyms(k);
	ck_assert_uint_eq(vmi_kallsyms_count(ks), E->nsyms);
	for (unsigned int i = 0; i < E->nsamples; i++) {
		const struct sample *s = &E->samples[i];
		const struct vmi_ksym *y;
		size_t cur = 0;
		bool ok = false;

		while (!ok && (y = vmi_kallsyms_next(ks, s->name, &cur)))
			ok = y->addr == s->addr && y->type == s->type;
		ck_assert_msg(ok, "guest has %016" PRIx64 " %c %s, the library "
			      "does not", s->addr, s->type, s->name);
		matched++;
	}
	printf("info: %u sampled /proc/kallsyms lines match, %zu symbols\n",
	       matched, vmi_kallsyms_count(ks));

	/* The image mapping the vmcore view will use. */
	vmi_kernel_image(k, &va, &pa, &len);
	ck_assert_uint_eq(va, E->text_addr);
	ck_assert_uint_eq(pa, va - VMI_KERNEL_MAP + (uint64_t)in->phys_base);
	ck_assert_uint_ge(va + len, sym(k, "_end"));

	/* The page tables: _text through init_top_pgt (a large page,
	 * read-only and executable after boot) lands where arithmetic does. */
	ck_assert_int_eq(vmi_pgtable_walk(&p, in->init_top_pgt_gpa, E->levels,
					  E->text_addr, &x), 0);
	ck_assert_uint_eq(x.pa, E->text_addr - VMI_KERNEL_MAP +
			  (uint64_t)in->phys_base);
	ck_assert(!x.nx && !x.writable && !x.user);
	/* The command line lives in memblock memory (direct map): the
	 * token the test put there must come back, by both ways. */
	r.k = k;
	r.p = &p;
	ck_assert_int_eq(vmi_kernel_read(k, &p, sym(k, "saved_command_line"),
					 &ptr, sizeof(ptr)), 0);
	ck_assert_int_eq(vmi_kernel_vtop(k, &p, ptr, &pa), 0);
	ck_assert_int_eq(vmi_pgtable_walk(&p, in->init_top_pgt_gpa, E->levels, ptr,
					  &x), 0);
	ck_assert_uint_eq(x.pa, pa);
	ck_assert(x.nx && x.writable && !x.user);
	ck_assert_int_gt(vmi_read_cstr(vmi_kernel_kread, &r, ptr, cmdline,
				       sizeof(cmdline)), 0);
	ck_assert_msg(strstr(cmdline, E->token), "saved_command_line \"%s\" "
		      "lacks the token %s", cmdline, E->token);
	/* A user address is refused by the kernel reader. */
	ck_assert_int_eq(vmi_kernel_read(k, &p, 0x400000, &ptr, 8), -EFAULT);
	ck_assert_int_eq(vmi_kernel_vtop(k, &p, 0x0000800000000000ULL, &pa2),
			 -EFAULT);
	ck_assert(vmi_kernel_still_valid(k, &p));

	/* The JSON has the issue's keys, with the same values. */
	{
		static const char *const keys[] = {
			"release", "banner", "build_id", "kaslr_offset",
			"phys_base", "page_offset_base", "vmemmap_base",
			"vmalloc_base", "paging_levels", "vmcoreinfo_gpa",
			"btf_source", "symbols", "recognition_ms",
		};
		char *text = vmi_kernel_json(k);
		json_object *j = json_tokener_parse(text), *v;

		ck_assert_msg(j, "not JSON: %s", text);
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			ck_assert_msg(json_object_object_get_ex(j, keys[i], &v),
				      "no key %s in %s", keys[i], text);
		json_object_object_get_ex(j, "release", &v);
		ck_assert_str_eq(json_object_get_string(v), E->release);
		json_object_object_get_ex(j, "kaslr_offset", &v);
		ck_assert_uint_eq(json_object_get_uint64(v),
				  E->text_addr - TEXT_LINKED);
		json_object_object_get_ex(j, "page_offset_base", &v);
		ck_assert_uint_eq(json_object_get_uint64(v),
				  in->page_offset_base);
		json_object_object_get_ex(j, "symbols", &v);
		ck_assert_uint_eq(json_object_get_uint64(v), E->nsyms);
		json_object_put(j);
		free(text);
		text = vmi_kernel_error_json("why \"quoted\"");
		j = json_tokener_parse(text);
		ck_assert(j && json_object_object_get_ex(j, "error", &v));
		ck_assert_str_eq(json_object_get_string(v), "why \"quoted\"");
		json_object_put(j);
		free(text);
	}
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
}
END_TEST

/* The task list, BTF offsets and a user page table on the real kernel:
 * find PID 1 by walking init_task.tasks, then read its argv through its
 * own page table; the guest printed /proc/1/cmdline. */
struct task_walk {
	const struct vmi_kernel *k;
	const struct vmi_phys *p;
	uint64_t tasks_off, pid_off;
	uint64_t init;		/* task_struct of PID 1 */
	unsigned int n;
	bool saw_kthreadd;
};

static int visit_task(void *arg, uint64_t entry)
{
	struct task_walk *w = arg;
	uint64_t task = entry - w->tasks_off;
	int32_t pid;

	if (vmi_kernel_read(w->k, w->p, task + w->pid_off, &pid, sizeof(pid)))
		return -EFAULT;
	if (pid == 1)
		w->init = task;
	if (pid == 2)
		w->saw_kthreadd = true;
	w->n++;
	return 0;
}

START_TEST(test_tasks_and_user_memory)
{
	struct vmi_kernel_options o = { .timeout_ms = 30000 };
	struct task_walk w = { 0 };
	struct vmi_kernel_reader r;
	struct vmi_kernel *k = NULL;
	struct vmi_phys p;
	uint64_t mm_off, pgd_off, as_off, ae_off, mm, pgd, pgd_gpa, as, ae, pa;
	char err[512], args[256];
	size_t len;
	long n;
	int rc;

	require_env();
	rc = recognise(E->mem, &o, &p, &k, err, sizeof(err), NULL);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.tasks",
					   &w.tasks_off, NULL), 0);
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.pid", &w.pid_off,
					   NULL), 0);
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.mm", &mm_off, NULL),
			 0);
	ck_assert_int_eq(vmi_kernel_member(k, "mm_struct.pgd", &pgd_off, NULL),
			 0);
	ck_assert_int_eq(vmi_kernel_member(k, "mm_struct.arg_start", &as_off,
					   NULL), 0);
	ck_assert_int_eq(vmi_kernel_member(k, "mm_struct.arg_end", &ae_off,
					   NULL), 0);
	w.k = k;
	w.p = &p;
	r.k = k;
	r.p = &p;
	n = vmi_walk_list(vmi_kernel_kread, &r, sym(k, "init_task") +
			  w.tasks_off, E->levels, 100000, visit_task, &w);
	ck_assert_msg(n > 10, "task walk: %ld", n);
	ck_assert(w.init && w.saw_kthreadd);
	ck_assert_int_eq(vmi_kernel_read(k, &p, w.init + mm_off, &mm, 8), 0);
	ck_assert_int_eq(vmi_kernel_read(k, &p, mm + pgd_off, &pgd, 8), 0);
	ck_assert_int_eq(vmi_kernel_read(k, &p, mm + as_off, &as, 8), 0);
	ck_assert_int_eq(vmi_kernel_read(k, &p, mm + ae_off, &ae, 8), 0);
	ck_assert_int_eq(vmi_kernel_vtop(k, &p, pgd, &pgd_gpa), 0);
	ck_assert_uint_gt(ae, as);
	len = ae - as < sizeof(args) - 1 ? ae - as : sizeof(args) - 1;
	for (size_t i = 0; i < len; i++) {
		/* Byte by byte: argv may cross a page boundary. */
		rc = vmi_kernel_uvtop(k, &p, pgd_gpa, as + i, &pa);
		ck_assert_msg(rc == 0, "user address %#" PRIx64 ": %s", as + i,
			      strerror(-rc));
		ck_assert_int_eq(vmi_phys_read(&p, pa, &args[i], 1), 0);
		if (!args[i])
			args[i] = ' ';
	}
	args[len] = '\0';
	ck_assert_str_eq(args, E->init_cmdline);
	/* PID 1's kernel stack is in vmalloc space (CONFIG_VMAP_STACK): the
	 * page-table walk, not direct-map arithmetic, must translate it;
	 * its lowest word is STACK_END_MAGIC. */
	{
		uint64_t st_off, stack, spa;
		struct vmi_xlate x;
		uint32_t magic = 0;

		ck_assert_int_eq(vmi_kernel_member(k, "task_struct.stack",
						   &st_off, NULL), 0);
		ck_assert_int_eq(vmi_kernel_read(k, &p, w.init + st_off,
						 &stack, 8), 0);
		ck_assert_uint_ge(stack, vmi_kernel_info(k)->vmalloc_base);
		ck_assert_int_eq(vmi_kernel_vtop(k, &p, stack, &spa), 0);
		ck_assert_int_eq(vmi_pgtable_walk(&p, vmi_kernel_info(k)->
						  init_top_pgt_gpa, E->levels, stack,
						  &x), 0);
		ck_assert_uint_eq(spa, x.pa);
		ck_assert_int_eq(vmi_kernel_read(k, &p, stack, &magic, 4), 0);
		ck_assert_uint_eq(magic, 0x57AC6E9D);
	}
	/* A kernel address through a user table is refused. */
	ck_assert_int_eq(vmi_kernel_uvtop(k, &p, pgd_gpa, sym(k, "_text"),
					  &pa), -EFAULT);
	printf("info: %u tasks on init_task.tasks; PID 1's argv read through "
	       "its page table: \"%s\"\n", w.n, args);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
}
END_TEST

/* Where vmemfs-kernel is: next to build/tests/. */
static const char *tool_path(void)
{
	static char path[512];
	char exe[480];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (getenv("VMEMFS_KERNEL"))
		return getenv("VMEMFS_KERNEL");
	ck_assert(n > 0);
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	ck_assert(slash);
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/../vmemfs-kernel", exe);
	return path;
}

/* Run a shell command line; its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ck_assert(n >= 0);
	buf[n] = '\0';
	return buf;
}

/* The tool on a vmemfs mount's mem (direct_io: every read is a FUSE
 * round trip), the way an operator would use it. */
START_TEST(test_tool_on_mount)
{
	const char *tool = tool_path();
	char conf[256], mnt[256], log[256], mem[300], out[256], err[1024];
	json_object *j, *v;
	double t0, ms;
	FILE *f;
	int st;

	require_env();
	snprintf(conf, sizeof(conf), "%s/vmemfs.conf", E->dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", E->dir);
	snprintf(log, sizeof(log), "%s/vmemfs.log", E->dir);
	snprintf(out, sizeof(out), "%s/tool.out", E->dir);
	f = fopen(conf, "w");
	ck_assert(f);
	fprintf(f, "[vm]\nmemory-file = %s\nlayout = flat\n", E->mem);
	ck_assert(fclose(f) == 0);
	ck_assert(mkdir(mnt, 0700) == 0 || errno == EEXIST);
	if (vt_vmemfs_start(&E->vfs, conf, "vm", NULL, mnt, log, RAM, 20000,
			    err, sizeof(err)) < 0) {
		vt_print_tail(log, 20, "vmemfs: ");
		ck_abort_msg("vmemfs: %s", err);
	}
	snprintf(mem, sizeof(mem), "%s/mem", mnt);
	t0 = vt_now_ms();
	st = sh("%s %s > %s", tool, mem, out);
	ms = vt_now_ms() - t0;
	ck_assert_int_eq(st, 0);
	j = json_tokener_parse(slurp(out));
	ck_assert(j);
	ck_assert(json_object_object_get_ex(j, "vmcoreinfo_gpa", &v));
	ck_assert_uint_eq(json_object_get_uint64(v), E->note_gpa);
	ck_assert(json_object_object_get_ex(j, "kaslr_offset", &v));
	ck_assert_uint_eq(json_object_get_uint64(v),
			  E->text_addr - TEXT_LINKED);
	ck_assert(json_object_object_get_ex(j, "recognition_ms", &v));
	printf("info: vmemfs-kernel on a vmemfs mem: %.0f ms in all, "
	       "recognition %" PRIu64 " ms (note at %" PRIu64 " MiB)\n", ms,
	       json_object_get_uint64(v), E->note_gpa >> 20);
	/* Probes page by page took 2.3 s here (one FUSE round trip each);
	 * 64 KiB blocks take ~0.3 s. */
	ck_assert_msg(json_object_get_uint64(v) < 1500, "recognition on the "
		      "mount took %" PRIu64 " ms", json_object_get_uint64(v));
	json_object_put(j);
	vt_vmemfs_stop(&E->vfs, 5000);
	rmdir(mnt);
	memset(&E->vfs, 0, sizeof(E->vfs));
}
END_TEST


START_TEST(test_tool)
{
	const char *tool = tool_path();
	char out[256], errf[256];
	json_object *j, *v;
	char *text;
	int st;

	require_env();
	snprintf(out, sizeof(out), "%s/tool.out", E->dir);
	snprintf(errf, sizeof(errf), "%s/tool.err", E->dir);
	ck_assert_msg(access(tool, X_OK) == 0, "%s missing", tool);
	/* QEMU's own pmemsave of RAM: another image of the same memory. */
	st = sh("%s %s >%s 2>%s", tool, E->pm, out, errf);
	ck_assert_msg(st == 0, "vmemfs-kernel exit %d: %s", st, slurp(errf));
	text = slurp(out);
	j = json_tokener_parse(text);
	ck_assert_msg(j, "not JSON: %s", text);
	ck_assert(json_object_object_get_ex(j, "release", &v));
	ck_assert_str_eq(json_object_get_string(v), E->release);
	ck_assert(json_object_object_get_ex(j, "vmcoreinfo_gpa", &v));
	ck_assert_uint_eq(json_object_get_uint64(v), E->note_gpa);
	ck_assert(json_object_object_get_ex(j, "kaslr_offset", &v));
	ck_assert_uint_eq(json_object_get_uint64(v),
			  E->text_addr - TEXT_LINKED);
	json_object_put(j);

	/* An image with no kernel: status 1, a reason, nothing on stdout. */
	ck_assert_int_eq(sh("head -c 4194304 /dev/zero > %s", E->copy), 0);
	st = sh("%s %s >%s 2>%s", tool, E->copy, out, errf);
	ck_assert_int_eq(st, 1);
	text = slurp(errf);
	ck_assert_msg(strstr(text, "not recognised") &&
		      strstr(text, "no VMCOREINFO note"), "stderr: %s", text);
	text = slurp(out);
	ck_assert_str_eq(text, "");
	unlink(E->copy);
	/* Usage. */
	ck_assert_int_eq(sh("%s --help >/dev/null", tool), 0);
	ck_assert_int_eq(sh("%s --version | grep -q vmemfs-kernel", tool), 0);
	ck_assert_int_eq(sh("%s 2>/dev/null", tool), 2);
	ck_assert_int_eq(sh("%s --bogus x 2>/dev/null", tool), 2);
	ck_assert_int_eq(sh("%s /nonexistent/x 2>/dev/null", tool), 2);
}
END_TEST

/* ---- BTF against bpftool -------------------------------------------- */

/* bpftool's raw dump, read back: types and members (independent of
 * libbpf's API, which the library uses). */
struct dtype {
	char kind[16];
	char name[64];
	int ref;		/* type_id= of modifiers and typedefs */
	long size;		/* size= of structs and unions */
	int m0, nm;		/* members */
};
struct dmember {
	char name[64];
	int type;
	long bitoff;
};
static struct dtype *dt;
static int ndt;
static struct dmember *dm;
static int ndm;

static void dump_load(const char *path)
{
	static char line[4096];
	FILE *f = fopen(path, "r");
	int cur = -1, cap_t = 0, cap_m = 0;

	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		struct dmember m;
		char *q;
		int id;

		if (line[0] == '[') {
			ck_assert(sscanf(line, "[%d]", &id) == 1 && id > 0);
			if (id >= cap_t) {
				int n = cap_t ? cap_t * 2 : 1 << 16;

				while (n <= id)
					n *= 2;
				dt = realloc(dt, (size_t)n * sizeof(*dt));
				ck_assert(dt);
				memset(dt + cap_t, 0,
				       (size_t)(n - cap_t) * sizeof(*dt));
				cap_t = n;
			}
			cur = id;
			if (id + 1 > ndt)
				ndt = id + 1;
			sscanf(line, "[%*d] %15s '%63[^']'", dt[id].kind,
			       dt[id].name);
			if ((q = strstr(line, " type_id=")))
				dt[id].ref = atoi(q + 9);
			if ((q = strstr(line, " size=")))
				dt[id].size = atol(q + 6);
			dt[id].m0 = ndm;
			continue;
		}
		/* Members: "\t'name' type_id=N bits_offset=O". */
		if (cur < 0 || line[0] != '\t' || line[1] != '\'' ||
		    !strstr(line, "bits_offset="))
			continue;
		ck_assert(sscanf(line, "\t'%63[^']' type_id=%d bits_offset=%ld",
				 m.name, &m.type, &m.bitoff) == 3);
		if (ndm == cap_m) {
			cap_m = cap_m ? cap_m * 2 : 1 << 16;
			dm = realloc(dm, (size_t)cap_m * sizeof(*dm));
			ck_assert(dm);
		}
		dm[ndm++] = m;
		dt[cur].nm++;
	}
	fclose(f);
	ck_assert_int_gt(ndm, 1000);
}

static int dump_find(const char *kind, const char *name)
{
	for (int i = 1; i < ndt; i++)
		if (!strcmp(dt[i].kind, kind) && !strcmp(dt[i].name, name))
			return i;
	return -1;
}

/* Through typedefs and qualifiers. */
static int dump_resolve(int id)
{
	for (int n = 0; n < 32 && id > 0 && id < ndt; n++) {
		const char *k = dt[id].kind;

		if (strcmp(k, "TYPEDEF") && strcmp(k, "CONST") &&
		    strcmp(k, "VOLATILE") && strcmp(k, "RESTRICT") &&
		    strcmp(k, "TYPE_TAG"))
			return id;
		id = dt[id].ref;
	}
	return -1;
}

/* Bit offset of @member in type @id, looking into anonymous members. */
static long dump_member(int id, const char *member, int depth)
{
	if (id <= 0 || depth > 8)
		return -1;
	for (int i = 0; i < dt[id].nm; i++) {
		const struct dmember *m = &dm[dt[id].m0 + i];
		int sub;
		long o;

		if (!strcmp(m->name, member))
			return m->bitoff;
		if (strcmp(m->name, "(anon)"))
			continue;
		sub = dump_resolve(m->type);
		if (sub > 0 && (!strcmp(dt[sub].kind, "STRUCT") ||
				!strcmp(dt[sub].kind, "UNION")) &&
		    (o = dump_member(sub, member, depth + 1)) >= 0)
			return m->bitoff + o;
	}
	return -1;
}

/*
 * Extract vmlinux from the guest's bzImage: its compressed payload starts
 * right after the setup code, so the first compressor magic in the file
 * says which tool to use (Debian: xz for the standard kernel, lz4 for the
 * cloud one).  The decompressors stop at the payload's end and complain
 * about the bytes after it: only the output's ELF header is checked.
 */
static void extract_vmlinux(const char *out)
{
	static const struct {
		const char *magic;
		size_t len;
		const char *cmd;
	} fmt[] = {
		{ "\xfd" "7zXZ\0", 6, "xz -dc --single-stream" },
		{ "\x02\x21\x4c\x18", 4, "lz4 -dc" },
		{ "\x28\xb5\x2f\xfd", 4, "zstd -dc" },
		{ "\x1f\x8b\x08", 3, "gzip -dc" },
	};
	char path[512];
	unsigned char *img, *at, *first = NULL;
	struct stat st;
	size_t which = 0;
	long skip;
	int fd;

	if (access(out, R_OK) == 0)
		return;
	snprintf(path, sizeof(path), "%s/vmlinuz", vt_guest_dir());
	fd = open(path, O_RDONLY);
	ck_assert_msg(fd >= 0 && fstat(fd, &st) == 0, "%s", path);
	img = malloc((size_t)st.st_size);
	ck_assert(img && read(fd, img, (size_t)st.st_size) == st.st_size);
	close(fd);
	for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
		at = memmem(img, (size_t)st.st_size, fmt[i].magic, fmt[i].len);
		if (at && (!first || at < first)) {
			first = at;
			which = i;
		}
	}
	ck_assert_msg(first, "%s: no compressed payload found", path);
	skip = (long)(first - img);
	free(img);
	sh("tail -c +%ld %s 2>/dev/null | %s > %s 2>/dev/null", skip + 1,
	   path, fmt[which].cmd, out);
	ck_assert_msg(sh("file %s | grep -q 'ELF 64-bit'", out) == 0,
		      "%s at offset %ld did not give an ELF vmlinux",
		      fmt[which].cmd, skip);
}

START_TEST(test_btf_offsets)
{
	static const char *const members[] = {
		"task_struct.tasks", "task_struct.pid", "task_struct.tgid",
		"task_struct.comm", "task_struct.mm", "task_struct.cred",
		"task_struct.real_parent", "task_struct.active_mm",
		"task_struct.__state", "task_struct.stack",
		"mm_struct.pgd", "mm_struct.arg_start", "mm_struct.arg_end",
		"mm_struct.mmap_base", "cred.uid", "cred.euid", "cred.gid",
		"sock_common.skc_family", "sock_common.skc_state",
		"sock_common.skc_num", "sock_common.skc_dport",
		"sock_common.skc_daddr", "sock_common.skc_rcv_saddr",
		"module.list", "module.name", "module.state",
	};
	struct vmi_kernel_options o = { .timeout_ms = 30000 };
	struct vmi_kernel *k = NULL;
	struct vmi_phys p;
	char vmlinux[256], dump[256], err[512];
	uint64_t off, size;
	int rc;

	require_env();
	snprintf(vmlinux, sizeof(vmlinux), "%s/vmlinux", E->dir);
	snprintf(dump, sizeof(dump), "%s/btf.dump", E->dir);
	extract_vmlinux(vmlinux);
	ck_assert_int_eq(sh("bpftool btf dump file %s format raw > %s",
			    vmlinux, dump), 0);
	dump_load(dump);

	rc = recognise(E->mem, &o, &p, &k, err, sizeof(err), NULL);
	ck_assert_msg(rc == 0, "not recognised: %s", err);
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		char type[64];
		const char *dot = strchr(members[i], '.');
		int id;
		long bits;

		snprintf(type, sizeof(type), "%.*s",
			 (int)(dot - members[i]), members[i]);
		id = dump_find("STRUCT", type);
		ck_assert_msg(id > 0, "bpftool: no STRUCT %s", type);
		bits = dump_member(id, dot + 1, 0);
		ck_assert_msg(bits >= 0 && bits % 8 == 0, "bpftool: no %s",
			      members[i]);
		rc = vmi_kernel_member(k, members[i], &off, &size);
		ck_assert_msg(rc == 0, "library: %s: %s", members[i],
			      strerror(-rc));
		ck_assert_msg(off == (uint64_t)bits / 8, "%s: library %" PRIu64
			      ", bpftool %ld", members[i], off, bits / 8);
		rc = vmi_kernel_type_size(k, type, &size);
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(size, (uint64_t)dt[id].size);
	}
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.comm", &off, &size),
			 0);
	ck_assert_uint_eq(size, 16);
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.no_such", &off,
					   NULL), -ENOENT);
	ck_assert_int_eq(vmi_kernel_member(k, "no_such_struct.x", &off, NULL),
			 -ENOENT);
	printf("info: %zu BTF member offsets equal bpftool's (task_struct "
	       "size %ld)\n", sizeof(members) / sizeof(members[0]),
	       dt[dump_find("STRUCT", "task_struct")].size);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
	free(dt);
	free(dm);
	dt = NULL;
	dm = NULL;
	ndt = ndm = 0;
}
END_TEST

START_TEST(test_btf_file)
{
	struct vmi_kernel_options o = { .timeout_ms = 30000 };
	struct vmi_kernel *k = NULL;
	struct vmi_phys p;
	char vmlinux[256], bad[256], raw[256], err[512];
	unsigned char id[20], *img;
	char hex[41];
	uint64_t off, off_guest;
	struct stat st;
	unsigned char *at;
	int rc, fd;

	require_env();
	snprintf(vmlinux, sizeof(vmlinux), "%s/vmlinux", E->dir);
	snprintf(bad, sizeof(bad), "%s/vmlinux.bad", E->dir);
	snprintf(raw, sizeof(raw), "%s/btf.raw", E->dir);
	extract_vmlinux(vmlinux);

	/* The guest's own BTF first, for comparison. */
	rc = recognise(E->mem, &o, &p, &k, err, sizeof(err), NULL);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.comm", &off_guest,
					   NULL), 0);
	ck_assert_uint_eq(strlen(vmi_kernel_info(k)->build_id), 40);
	strcpy(hex, vmi_kernel_info(k)->build_id);
	for (int i = 0; i < 20; i++)
		sscanf(hex + 2 * i, "%2hhx", &id[i]);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);

	/* The right vmlinux: accepted, same offsets. */
	o.btf_path = vmlinux;
	rc = recognise(E->mem, &o, &p, &k, err, sizeof(err), NULL);
	ck_assert_msg(rc == 0, "with kernel-btf %s: %s", vmlinux, err);
	ck_assert_str_eq(vmi_kernel_info(k)->btf_source, vmlinux);
	ck_assert_int_eq(vmi_kernel_member(k, "task_struct.comm", &off, NULL),
			 0);
	ck_assert_uint_eq(off, off_guest);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);

	/* Its raw .BTF (no build id): accepted, checked against init_task. */
	ck_assert_int_eq(sh("objcopy -O binary --only-section=.BTF %s %s",
			    vmlinux, raw), 0);
	o.btf_path = raw;
	rc = recognise(E->mem, &o, &p, &k, err, sizeof(err), NULL);
	ck_assert_msg(rc == 0, "with raw BTF %s: %s", raw, err);
	ck_assert_str_eq(vmi_kernel_info(k)->btf_source, raw);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);

	/* The same vmlinux with one build-id byte changed: refused. */
	fd = open(vmlinux, O_RDONLY);
	ck_assert(fd >= 0 && fstat(fd, &st) == 0);
	img = malloc((size_t)st.st_size);
	ck_assert(img && read(fd, img, (size_t)st.st_size) == st.st_size);
	close(fd);
	at = memmem(img, (size_t)st.st_size, id, sizeof(id));
	ck_assert_msg(at, "build id not in %s", vmlinux);
	at[19] ^= 0x5a;
	fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(fd >= 0 && write(fd, img, (size_t)st.st_size) == st.st_size);
	close(fd);
	free(img);
	o.btf_path = bad;
	rc = recognise(E->mem, &o, &p, &k, err, sizeof(err), NULL);
	ck_assert_int_eq(rc, -ESTALE);
	ck_assert_msg(strstr(err, hex) && strstr(err, bad), "message: %s",
		      err);
	printf("info: wrong kernel-btf refused: %s\n", err);
	vmi_phys_file_close(&p);
	unlink(bad);
	unlink(raw);
}
END_TEST

/* kernel-map: a System.map (link-time addresses) instead of kallsyms.
 * Debian ships none, so the test writes one from the sampled lines. */
START_TEST(test_system_map)
{
	struct vmi_kernel_options o = { .timeout_ms = 30000 };
	uint64_t kaslr = E->text_addr - TEXT_LINKED, a;
	struct vmi_kernel *k = NULL;
	struct vmi_phys p;
	char path[256], err[512];
	FILE *f;
	int rc;

	require_env();
	snprintf(path, sizeof(path), "%s/System.map", E->dir);
	f = fopen(path, "w");
	ck_assert(f);
	for (unsigned int i = 0; i < E->nsamples; i++) {
		const struct sample *s = &E->samples[i];

		fprintf(f, "%016" PRIx64 " %c %s\n", s->addr >= VMI_KERNEL_MAP ?
			s->addr - kaslr : s->addr, s->type, s->name);
	}
	ck_assert(fclose(f) == 0);
	o.map_path = path;
	rc = recognise(E->mem, &o, &p, &k, err, sizeof(err), NULL);
	ck_assert_msg(rc == 0, "with kernel-map: %s", err);
	ck_assert_str_eq(vmi_kernel_info(k)->symbols_source, path);
	ck_assert_str_eq(vmi_kernel_info(k)->release, E->release);
	ck_assert_uint_eq(vmi_kallsyms_count(vmi_kernel_kallsyms(k)),
			  E->nsamples);
	for (unsigned int i = 0; i < E->nsamples; i++) {
		ck_assert(vmi_kernel_symbol(k, E->samples[i].name, &a));
		/* Duplicate names: the first in the file, which may be
		 * another sample; every address is one the guest showed. */
		if (!strcmp(E->samples[i].name, "init_task") ||
		    !strcmp(E->samples[i].name, "fixed_percpu_data"))
			ck_assert_uint_eq(a, E->samples[i].addr);
	}
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
	unlink(path);
}
END_TEST

/* ---- hostile memory ------------------------------------------------- */

START_TEST(test_forged_notes)
{
	static unsigned char note[VMI_NOTE_MAX], f[VMI_NOTE_MAX + 512];
	struct vmi_kernel_options o = { .timeout_ms = 30000 };
	const struct vmi_kernel_info *in;
	struct vmi_kernel *k = NULL;
	struct vmi_phys p;
	char err[512], pat[64], val[64];
	uint64_t user, z1, z2, stext;
	size_t len, flen;
	const char *v;
	double ms;
	int rc;

	require_env();
	len = real_note(note, sizeof(note));
	vt_ck_copy_file(E->mem, E->copy);
	snprintf(pat, sizeof(pat), "VMT-FORGE-PAGE-%s-", E->token);
	user = find_page(E->copy, pat);
	ck_assert_msg(user, "the guest's /tmp/forge page is not in RAM");
	/* Pages the scan meets before the real note. */
	z1 = zero_page(E->copy, 1 * MiB);
	z2 = zero_page(E->copy, z1 + PAGE);
	ck_assert_uint_lt(z2, E->note_gpa);
	printf("info: forged notes at GPA %#" PRIx64 " (a guest process's "
	       "page), %#" PRIx64 ", %#" PRIx64 "; the real one at %#" PRIx64
	       "\n", user, z1, z2, E->note_gpa);

	/* Another kernel, in the user's page. */
	flen = forge(note, len, "OSRELEASE=", "6.6.6-forged", f);
	flen = forge(f, flen, "KERNELOFFSET=", "2a000000", f);
	write_exact(E->copy, user, f, flen);
	/* A verbatim copy of the real note, header and all. */
	write_exact(E->copy, z1, note, len);
	/* The same release, another KASLR offset and _stext. */
	{
		struct vmi_vmcoreinfo vi;

		ck_assert_int_eq(vmi_vmcoreinfo_parse(note, len, &vi, err,
						      sizeof(err)), 0);
		ck_assert(vmi_vmcoreinfo_symbol(&vi, "_stext", &stext));
		v = vmi_vmcoreinfo_get(&vi, "KERNELOFFSET");
		ck_assert(v);
		snprintf(val, sizeof(val), "%" PRIx64,
			 (uint64_t)strtoull(v, NULL, 16) + 0x200000);
		vmi_vmcoreinfo_free(&vi);
	}
	flen = forge(note, len, "KERNELOFFSET=", val, f);
	snprintf(val, sizeof(val), "%" PRIx64, stext + 0x200000);
	flen = forge(f, flen, "SYMBOL(_stext)=", val, f);
	write_exact(E->copy, z2, f, flen);

	rc = recognise(E->copy, &o, &p, &k, err, sizeof(err), &ms);
	ck_assert_msg(rc == 0, "with forged notes: %s", err);
	in = vmi_kernel_info(k);
	ck_assert_uint_eq(in->vmcoreinfo_gpa, E->note_gpa);
	ck_assert_str_eq(in->release, E->release);
	ck_assert_uint_eq(in->kaslr_offset, E->text_addr - TEXT_LINKED);
	printf("info: real kernel picked among 4 notes in %.1f ms\n", ms);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);

	/* Without the real note (its text spoiled), the copies must not
	 * pass for it: the kernel's vmcoreinfo_note points elsewhere. */
	write_exact(E->copy, E->note_gpa + VMI_NOTE_HDR, "OSRELEASX", 9);
	rc = recognise(E->copy, &o, &p, &k, err, sizeof(err), &ms);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(strstr(err, "3 VMCOREINFO notes"), "message: %s", err);
	printf("info: only forged notes: refused in %.1f ms: %s\n", ms, err);
	vmi_phys_file_close(&p);
	unlink(E->copy);
}
END_TEST

/*
 * A guest process can write many forged notes: thousands of copies of the
 * real one before it in memory must not make recognition time out (each
 * candidate once cost a whole kallsyms decode).
 */
START_TEST(test_forged_spray)
{
	static unsigned char note[VMI_NOTE_MAX], page[PAGE];
	static const unsigned char zero[PAGE];
	struct vmi_kernel_options o = { .timeout_ms = 10000 };
	struct vmi_kernel *k = NULL;
	struct vmi_phys p;
	char err[512];
	unsigned int n = 0;
	size_t len;
	double ms;
	int fd, rc;

	require_env();
	len = real_note(note, sizeof(note));
	vt_ck_copy_file(E->mem, E->copy);
	fd = open(E->copy, O_RDWR);
	ck_assert(fd >= 0);
	for (uint64_t g = MiB; g < E->note_gpa && n < 3000; g += PAGE) {
		ck_assert(pread(fd, page, PAGE, (off_t)g) == (ssize_t)PAGE);
		if (memcmp(page, zero, PAGE))
			continue;
		ck_assert(pwrite(fd, note, len, (off_t)g) == (ssize_t)len);
		n++;
	}
	close(fd);
	/* Each once cost a ~40 ms decode: 500 took 20 s, past the limit. */
	ck_assert_uint_ge(n, 500);
	rc = recognise(E->copy, &o, &p, &k, err, sizeof(err), &ms);
	ck_assert_msg(rc == 0, "with %u copies of the note: %s", n, err);
	ck_assert_uint_eq(vmi_kernel_info(k)->vmcoreinfo_gpa, E->note_gpa);
	printf("info: %u copies of the note before the real one: recognised "
	       "in %.0f ms\n", n, ms);
	ck_assert_msg(ms < 10000, "took %.0f ms", ms);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
	unlink(E->copy);
}
END_TEST

START_TEST(test_corrupt_note)
{
	static unsigned char note[VMI_NOTE_MAX], f[VMI_NOTE_MAX + 512];
	struct vmi_kernel_options o = { .timeout_ms = 10000 };
	struct vmi_kernel *k = NULL, *good = NULL;
	struct vmi_phys p, pm;
	char err[512], rel[80];
	size_t len, flen;
	uint32_t huge = 0xffffffffu;
	double ms;
	int rc;

	require_env();
	len = real_note(note, sizeof(note));
	vt_ck_copy_file(E->mem, E->copy);
	rc = recognise(E->mem, &o, &pm, &good, err, sizeof(err), NULL);
	ck_assert_msg(rc == 0, "%s", err);

	/* Another release in the text: the banner disagrees. */
	snprintf(rel, sizeof(rel), "%.*sX", (int)strlen(E->release) - 1,
		 E->release);
	flen = forge(note, len, "OSRELEASE=", rel, f);
	write_exact(E->copy, E->note_gpa, f, flen);
	rc = recognise(E->copy, &o, &p, &k, err, sizeof(err), &ms);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(strstr(err, "init_uts_ns release"), "message: %s", err);
	ck_assert_msg(ms < 5000, "took %.0f ms", ms);
	printf("info: OSRELEASE changed: refused in %.1f ms: %s\n", ms, err);
	/* The remembered kernel no longer validates on this memory. */
	ck_assert(!vmi_kernel_still_valid(good, &p));
	vmi_phys_file_close(&p);

	/* The symbol table pointing at unreadable memory. */
	flen = forge(note, len, "SYMBOL(kallsyms_names)=", "ffffffffbffff000",
		     f);
	write_exact(E->copy, E->note_gpa, f, flen);
	rc = recognise(E->copy, &o, &p, &k, err, sizeof(err), &ms);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(strstr(err, "kallsyms"), "message: %s", err);
	ck_assert_msg(ms < 5000, "took %.0f ms", ms);
	printf("info: kallsyms_names spoiled: refused in %.1f ms: %s\n", ms,
	       err);
	vmi_phys_file_close(&p);

	/* A huge descsz: not a note at all. */
	write_exact(E->copy, E->note_gpa, note, len);
	write_exact(E->copy, E->note_gpa + 4, &huge, 4);
	rc = recognise(E->copy, &o, &p, &k, err, sizeof(err), &ms);
	ck_assert_int_eq(rc, -ENOENT);
	ck_assert_msg(ms < 5000, "took %.0f ms", ms);
	printf("info: descsz 0xffffffff: \"%s\" in %.1f ms\n", err, ms);
	vmi_phys_file_close(&p);

	ck_assert(vmi_kernel_still_valid(good, &pm));
	vmi_kernel_free(good);
	vmi_phys_file_close(&pm);
	unlink(E->copy);
}
END_TEST

/* ---- a 4 GiB guest: the memory file through the pc machine's map ---- */

struct split_file {
	int fd;
};

/* GPA -> memory-file offset; the ranges keep reads inside one side. */
static int split_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	struct split_file *f = ctx;
	uint64_t off = gpa < GPA_4G ? gpa : gpa - GPA_4G + BIG_LOW;

	return pread(f->fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
}

START_TEST(test_big_guest)
{
	static const struct vmi_phys_range r[] = {
		{ 0, BIG_LOW }, { GPA_4G, GPA_4G + BIG_RAM - BIG_LOW },
	};
	struct vmi_kernel_options o = { .timeout_ms = 30000 };
	struct split_file f;
	struct vmi_phys p = { .read = split_read, .ctx = &f, .ranges = r,
			      .nranges = 2 };
	struct vmi_kernel *k = NULL;
	const struct vmi_kernel_info *in;
	char err[512];
	double t0, c0, ms, cpu;
	int rc;

	require_env();
	f.fd = open(E->mem, O_RDONLY);
	ck_assert(f.fd >= 0);
	t0 = vt_now_ms();
	c0 = cpu_ms();
	rc = vmi_kernel_recognise(&p, &o, &k, err, sizeof(err));
	cpu = cpu_ms() - c0;
	ms = vt_now_ms() - t0;
	ck_assert_msg(rc == 0, "4 GiB guest: %s", err);
	in = vmi_kernel_info(k);
	ck_assert_uint_eq(in->vmcoreinfo_gpa, E->note_gpa);
	ck_assert_uint_eq(in->kaslr_offset, E->text_addr - TEXT_LINKED);
	ck_assert_str_eq(in->release, E->release);
	ck_assert_uint_eq(vmi_kallsyms_count(vmi_kernel_kallsyms(k)),
			  E->nsyms);
	printf("info: 4 GiB guest, note at GPA %#" PRIx64 ": recognised in "
	       "%.0f ms (CPU %.0f ms)\n", E->note_gpa, ms, cpu);
	ck_assert_msg(cpu < 1000, "recognition used %.0f ms of CPU", cpu);
	vmi_kernel_free(k);
	close(f.fd);
}
END_TEST

static Suite *introspect_suite(void)
{
	Suite *s = suite_create("introspect");
	TCase *tc = tcase_create("guest");
	TCase *t5 = tcase_create("la57");
	TCase *tb = tcase_create("big");

	tcase_add_unchecked_fixture(tc, env_up_4, env_down);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_matches_guest);
	tcase_add_test(tc, test_tool);
	tcase_add_test(tc, test_tasks_and_user_memory);
	tcase_add_test(tc, test_tool_on_mount);
	tcase_add_test(tc, test_btf_offsets);
	tcase_add_test(tc, test_btf_file);
	tcase_add_test(tc, test_system_map);
	tcase_add_test(tc, test_forged_notes);
	tcase_add_test(tc, test_forged_spray);
	tcase_add_test(tc, test_corrupt_note);
	suite_add_tcase(s, tc);

	/* The same kernel with 5-level paging: translation, the task list
	 * and a user page table through five levels. */
	tcase_add_unchecked_fixture(t5, env_up_5, env_down);
	tcase_set_timeout(t5, 600);
	tcase_add_test(t5, test_matches_guest);
	tcase_add_test(t5, test_tasks_and_user_memory);
	suite_add_tcase(s, t5);

	tcase_add_unchecked_fixture(tb, env_up_big, env_down);
	tcase_set_timeout(tb, 600);
	tcase_add_test(tb, test_big_guest);
	suite_add_tcase(s, tb);
	return s;
}

VT_GUEST_MAIN("check_qemu_introspect", introspect_suite, E, runner_pid,
	      env_down)
