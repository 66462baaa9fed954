// SPDX-License-Identifier: MIT
/*
 * vmemfs: mount one VM's memory, split across hosts, as one file.
 * Command line, config, and the FUSE session's life cycle.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/config.h"
#include "domain.h"
#include "domain_follow.h"
#include "fs.h"
#include "log.h"
#include "qemu_info.h"
#include "qmp_libvirt.h"

#ifndef VMEM_VERSION
#define VMEM_VERSION "unknown"
#endif

static void usage(FILE *out)
{
	fprintf(out,
"Usage: vmemfs [-c CONFIG] [--vm NAME] [-f] [-d] [-o FUSEOPTS] MOUNTPOINT\n"
"       vmemfs --domain NAME [--connect URI] [-c CONFIG] [-f] ... MOUNTPOINT\n"
"       vmemfs --check-config [-c CONFIG] [--vm NAME]\n"
"\n"
"Mount the memory of one VM, whose RAM may be split between this host's\n"
"memory file and NBD sub-hosts, as MOUNTPOINT/mem (read-only).\n"
"MOUNTPOINT/stats and MOUNTPOINT/map give counters and the layout as JSON,\n"
"MOUNTPOINT/kernel the guest kernel found in its memory (JSON), and\n"
"MOUNTPOINT/vmcore the memory as an ELF core for drgn, crash, makedumpfile.\n"
"\n"
"  -c, --config=FILE    configuration file (default " VMEM_DEFAULT_CONFIG ")\n"
"      --vm=NAME        VM section to mount (optional if there is only one)\n"
"      --domain=NAME    mount libvirt domain NAME: the section with\n"
"                       domain = NAME, or defaults when the config has none;\n"
"                       QMP and the memory file come through libvirt\n"
"      --connect=URI    libvirt URI for --domain (default " VMEM_DEFAULT_LIBVIRT ")\n"
"  -f, --foreground     do not daemonize; log to stderr\n"
"  -d, --debug          FUSE debug output (implies -f)\n"
"  -o OPT[,OPT...]      FUSE mount options, e.g. allow_other (lets users\n"
"                       other than root read guest memory: think first);\n"
"                       nonempty: mount over a non-empty directory or an\n"
"                       existing vmemfs mount (refused otherwise);\n"
"                       allow_mmap: let mmap(MAP_PRIVATE) of mem/ram\n"
"                       work, copying guest memory into the page cache\n"
"      --check-config   validate the configuration, print the effective\n"
"                       settings of the VM(s) and exit\n"
"  -h, --help           show this help and exit\n"
"  -V, --version        show the version and exit\n"
"\n"
"See vmemfs(8) and vmemtrans.conf(5).\n");
}

struct opts {
	const char *config;
	const char *vm;
	const char *domain;	/* --domain */
	const char *connect;	/* --connect */
	bool config_given;	/* -c */
	char *mountpoint;
	char *fuse_opts;
	bool foreground;
	bool debug;
	bool check_config;
	bool nonempty;		/* -o nonempty: ours, not passed to FUSE */
	bool allow_mmap;	/* -o allow_mmap: ours too */
};

static int append_opts(struct opts *o, const char *more)
{
	char *n;

	if (o->fuse_opts) {
		if (asprintf(&n, "%s,%s", o->fuse_opts, more) < 0)
			return -1;
		free(o->fuse_opts);
	} else {
		n = strdup(more);
		if (!n)
			return -1;
	}
	o->fuse_opts = n;
	return 0;
}

/*
 * Take -o @arg: "nonempty" and "allow_mmap" are ours (libfuse 3 has no
 * such options); the rest goes to FUSE.
 */
static int add_o(struct opts *o, const char *arg)
{
	char *copy = strdup(arg), *tok, *save = NULL;
	int rc = 0;

	if (!copy)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok && !rc;
	     tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "nonempty") == 0)
			o->nonempty = true;
		else if (strcmp(tok, "allow_mmap") == 0)
			o->allow_mmap = true;
		else
			rc = append_opts(o, tok);
	}
	free(copy);
	return rc;
}

/* Returns 0 to go on, 1 to exit 0 (help/version), -1 on a usage error. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { OPT_VM = 256, OPT_CHECK, OPT_DOMAIN, OPT_CONNECT };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "vm", required_argument, NULL, OPT_VM },
		{ "domain", required_argument, NULL, OPT_DOMAIN },
		{ "connect", required_argument, NULL, OPT_CONNECT },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->config = VMEM_DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "c:fdo:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			o->config_given = true;
			break;
		case OPT_DOMAIN:
			o->domain = optarg;
			break;
		case OPT_CONNECT:
			o->connect = optarg;
			break;
		case OPT_VM:
			o->vm = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'd':
			o->debug = true;
			o->foreground = true;
			break;
		case 'o':
			if (add_o(o, optarg) < 0) {
				fprintf(stderr, "vmemfs: out of memory\n");
				return -1;
			}
			break;
		case OPT_CHECK:
			o->check_config = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("vmemfs %s (libfuse %s)\n", VMEM_VERSION,
			       fuse_pkgversion());
			return 1;
		default:
			fprintf(stderr, "Try 'vmemfs --help'.\n");
			return -1;
		}
	}
	if (o->connect && !o->domain) {
		fprintf(stderr, "vmemfs: --connect needs --domain\n");
		return -1;
	}
	if (o->domain && o->vm) {
		fprintf(stderr, "vmemfs: --domain and --vm exclude each other\n");
		return -1;
	}
	if (o->check_config) {
		if (optind != argc) {
			fprintf(stderr, "vmemfs: --check-config takes no mount point\n");
			return -1;
		}
		return 0;
	}
	if (optind != argc - 1) {
		fprintf(stderr, optind == argc ?
			"vmemfs: missing mount point\nTry 'vmemfs --help'.\n" :
			"vmemfs: too many arguments\nTry 'vmemfs --help'.\n");
		return -1;
	}
	/*
	 * Absolute, because libfuse daemonizes into / and unmounts by the
	 * path it was given: a relative one would leave the mount behind.
	 */
	o->mountpoint = realpath(argv[optind], NULL);
	if (!o->mountpoint) {
		fprintf(stderr, "vmemfs: %s: %s\n", argv[optind], strerror(errno));
		return -1;
	}
	return 0;
}

/* Undo the octal escapes (\040 for a blank) of a /proc mountinfo field. */
static void unescape_mountinfo(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 |
				      (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/*
 * The source ("vmemfs:VM") of the topmost vmemfs mounted on @path, per
 * /proc/self/mountinfo, into @src; false when there is none.
 */
static bool vmemfs_mounted_on(const char *path, char *src, size_t srclen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - TYPE SOURCE ... */
		char *save = NULL, *mp, *sep, *type, *source;
		int i;

		sep = strstr(line, " - ");
		if (!sep)
			continue;
		*sep = '\0';
		type = strtok_r(sep + 3, " \n", &save);
		source = strtok_r(NULL, " \n", &save);
		if (!type || strcmp(type, "fuse.vmemfs") != 0)
			continue;
		save = NULL;
		mp = strtok_r(line, " ", &save);
		for (i = 0; mp && i < 4; i++)
			mp = strtok_r(NULL, " ", &save);
		if (!mp)
			continue;
		unescape_mountinfo(mp);
		if (strcmp(mp, path) != 0)
			continue;
		if (source)
			unescape_mountinfo(source);
		snprintf(src, srclen, "%s", source ? source : "vmemfs");
		found = true;	/* later lines are mounted on top */
	}
	free(line);
	fclose(f);
	return found;
}

/*
 * Where we may mount.  A directory only: FUSE mounts over a regular file
 * too, and once did over /etc/passwd when two arguments were swapped.
 * Not on a vmemfs that already serves there: a second daemon would stack
 * over the first without a word, and readers would see only one of them.
 * Not over a non-empty directory, whose files the mount would hide.  The
 * last two are for experts to override with -o nonempty.
 */
static int check_mountpoint(const char *mnt, bool nonempty)
{
	char src[256];
	struct stat st;
	struct dirent *de;
	bool empty = true;
	DIR *d;

	if (stat(mnt, &st) < 0) {
		fprintf(stderr, "vmemfs: %s: %s\n", mnt, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "vmemfs: %s: mount point is not a directory\n",
			mnt);
		return -1;
	}
	if (nonempty)
		return 0;
	if (vmemfs_mounted_on(mnt, src, sizeof(src))) {
		fprintf(stderr, "vmemfs: %s: already a vmemfs mount (%s); "
			"unmount it first, or use -o nonempty to mount over "
			"it\n", mnt, src);
		return -1;
	}
	d = opendir(mnt);
	if (!d) {
		fprintf(stderr, "vmemfs: %s: %s\n", mnt, strerror(errno));
		return -1;
	}
	while (empty && (de = readdir(d)))
		empty = strcmp(de->d_name, ".") == 0 ||
			strcmp(de->d_name, "..") == 0;
	closedir(d);
	if (!empty) {
		fprintf(stderr, "vmemfs: %s: mount point is not empty; use -o "
			"nonempty to mount over its contents\n", mnt);
		return -1;
	}
	return 0;
}


/*
 * The VM need not run: a memory file that does not exist yet is only a
 * warning (QEMU creates it at start); everything else is checked.
 */
static int check_config(struct vmem_config *cfg, const char *vm_name)
{
	char err[512];
	size_t i;
	int bad = 0, rc;

	for (i = 0; i < cfg->n_vms; i++) {
		struct vmem_vm *vm = &cfg->vms[i];

		if (vm_name && strcmp(vm->name, vm_name) != 0)
			continue;
		rc = vmem_vm_resolve_unstarted(vm, cfg->path, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "vmemfs: %s\n", err);
			bad = 1;
			continue;
		}
		if (rc > 0)
			fprintf(stderr, "vmemfs: warning: %s\n", err);
		if (!vmem_backend_lookup(vm->backend, err, sizeof(err))) {
			fprintf(stderr, "vmemfs: %s:%u: %s\n", cfg->path,
				vm->line, err);
			bad = 1;
			continue;
		}
		vmem_vm_print(vm, stdout);
	}
	return bad;
}

/*
 * With qmp, ask QEMU which sub-hosts hold which ranges (config lines win).
 * A VM that is not up yet is fine when the config names the sub-hosts
 * itself; otherwise we would serve holes as zeros, so refuse.
 */
static int learn_from_qemu(struct vmem_vm *vm, const char *path,
			   struct vmem_qmp *q)
{
	char err[512];
	int n;

	n = vmem_qemu_learn_subhosts(q, vm, err, sizeof(err));
	if (n >= 0)
		return 0;
	if (vm->n_subhosts) {
		fprintf(stderr, "vmemfs: warning: %s:%u: VM %s: using the config's "
			"sub-hosts only: %s\n", path, vm->line, vm->name, err);
		return 0;
	}
	fprintf(stderr, "vmemfs: %s:%u: VM %s: cannot learn its sub-hosts from "
		"QEMU (%s) and the config names none\n", path, vm->line, vm->name,
		err);
	return -1;
}

static int run_mount(struct vmem_fs *fs, const struct opts *o,
		     const struct vmem_vm *vm)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct vmem_domain_follow *follow = NULL;
	struct fuse_loop_config *lc;
	struct fuse_session *se;
	char base[512], err[256];
	int rc = 1;

	/*
	 * ro: nothing here is writable.  max_read: let 1 MiB reads arrive
	 * whole.  No default_permissions: without allow_other the kernel
	 * already admits only the mounting user; with it, the operator asked
	 * for others to read.
	 */
	snprintf(base, sizeof(base), "ro,fsname=vmemfs:%s,subtype=vmemfs,max_read=%d",
		 vm->name, VMEM_FS_MAX_IO);
	if (fuse_opt_add_arg(&args, "vmemfs") ||
	    fuse_opt_add_arg(&args, "-o") || fuse_opt_add_arg(&args, base) ||
	    (o->fuse_opts && (fuse_opt_add_arg(&args, "-o") ||
			      fuse_opt_add_arg(&args, o->fuse_opts))) ||
	    (o->debug && fuse_opt_add_arg(&args, "-d"))) {
		fprintf(stderr, "vmemfs: out of memory\n");
		goto out_args;
	}

	fs->allow_mmap = o->allow_mmap;
	se = fuse_session_new(&args, &vmem_fs_ops, sizeof(vmem_fs_ops), fs);
	if (!se)
		goto out_args;	/* libfuse said why on stderr */
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, o->mountpoint) != 0)
		goto out_signals;
	/* libvirt's client does not survive fork(): reconnect after it. */
	vmem_libvirt_disconnect(fs->reader.qmp);
	if (fuse_daemonize(o->foreground) != 0)
		goto out_unmount;
	err[0] = '\0';
	if (vmem_libvirt_start_events(fs->reader.qmp, err, sizeof(err)) < 0 ||
	    (!(follow = vmem_domain_follow_start(&fs->reader, &fs->physmem,
						  err, sizeof(err))) && *err)) {
		vmem_log(LOG_ERR, "%s", err);
		goto out_unmount;
	}
	if (!o->foreground)
		vmem_log_to_syslog("vmemfs");
	/*
	 * Threads enough for every sub-host's share of remote reads and
	 * libfuse's default 10 for everything else (see fs.h).
	 */
	lc = fuse_loop_cfg_create();
	if (!lc || vmem_fs_remote_start(fs, err, sizeof(err)) < 0) {
		vmem_log(LOG_ERR, "%s", lc ? err : "out of memory");
		fuse_loop_cfg_destroy(lc);
		goto out_unmount;
	}
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_idle_threads(lc, 16);
	fuse_loop_cfg_set_max_threads(lc, vmem_fs_max_threads(fs));
	fs->se = se;
	/* After the fork of fuse_daemonize: a thread would not survive it. */
	rc = vmem_kernel_view_start(&fs->kview);
	if (rc < 0)
		vmem_log(LOG_WARNING, "no guest kernel recognition (`kernel` "
			 "stays an error): thread: %s", strerror(-rc));
	rc = 1;
	vmem_log(LOG_INFO, "VM %s mounted on %s (%s backend, %zu sub-host%s)",
		 vm->name, o->mountpoint, vm->backend,
		 vm->n_subhosts, vm->n_subhosts == 1 ? "" : "s");
	/* The loop returns the signal number when SIGTERM/SIGINT ended it:
	 * that is the normal way out, not an error. */
	rc = fuse_session_loop_mt(se, lc) < 0;
	fuse_loop_cfg_destroy(lc);
	vmem_fs_remote_stop(fs);
out_unmount:
	vmem_domain_follow_stop(follow);
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_args:
	fuse_opt_free_args(&args);
	return rc;
}

/*
 * The config of --domain NAME: the section of the config with domain =
 * NAME, or (when no config was named and the default has none) one of
 * defaults.  --connect wins over the section's libvirt = URI.
 */
static struct vmem_vm *find_domain(struct vmem_config *cfg,
				   const struct opts *o, char *err,
				   size_t errlen)
{
	char text[512];
	size_t i;

	if (vmem_config_load(o->config, cfg, err, errlen) == 0) {
		for (i = 0; i < cfg->n_vms; i++)
			if (cfg->vms[i].domain &&
			    strcmp(cfg->vms[i].domain, o->domain) == 0)
				return &cfg->vms[i];
		if (o->config_given) {
			snprintf(err, errlen, "%s: no VM with domain = %s",
				 o->config, o->domain);
			vmem_config_free(cfg);
			return NULL;
		}
		vmem_config_free(cfg);
	} else if (o->config_given || access(o->config, F_OK) == 0) {
		return NULL;
	}
	snprintf(text, sizeof(text), "[%s]\ndomain = %s\n", o->domain,
		 o->domain);
	if (vmem_config_parse(text, "--domain", cfg, err, errlen) < 0)
		return NULL;
	return &cfg->vms[0];
}

/*
 * A domain's memory file, asked of QEMU through libvirt, into
 * vm->memory_file; *@pid is its QEMU, *@st the file as it was found.
 */
static int resolve_domain(struct vmem_vm *vm, const char *cfg_path,
			  struct vmem_qmp *q, pid_t *pid, struct stat *st)
{
	char err[512], *path;

	if (vmem_domain_memory_file(q, &path, pid, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmemfs: %s:%u: domain %s: %s\n", cfg_path,
			vm->line, vm->domain, err);
		return -1;
	}
	if (stat(path, st) < 0 ||
	    vmem_domain_check_mapped(*pid, st->st_dev, st->st_ino, path, err,
				     sizeof(err)) < 0) {
		if (errno && !*err)
			snprintf(err, sizeof(err), "%s: %s", path,
				 strerror(errno));
		fprintf(stderr, "vmemfs: domain %s: %s\n", vm->domain, err);
		free(path);
		return -1;
	}
	free(vm->memory_file);
	vm->memory_file = path;
	return 0;
}

int main(int argc, char **argv)
{
	struct vmem_config cfg;
	struct opts o = { 0 };
	struct vmem_fs fs;
	struct vmem_qmp *q = NULL;
	struct vmem_vm *vm;
	struct stat dom_st;
	pid_t dom_pid = 0;
	char err[512];
	bool none;
	int rc;

	rc = parse_args(argc, argv, &o);
	if (rc != 0) {
		free(o.fuse_opts);
		free(o.mountpoint);
		return rc > 0 ? 0 : 2;
	}
	if (!o.check_config && check_mountpoint(o.mountpoint, o.nonempty) < 0) {
		free(o.fuse_opts);
		free(o.mountpoint);
		return 1;
	}
	if (o.domain) {
		err[0] = '\0';
		vm = find_domain(&cfg, &o, err, sizeof(err));
		if (!vm) {
			fprintf(stderr, "vmemfs: %s\n", err);
			free(o.fuse_opts);
			free(o.mountpoint);
			return 1;
		}
		if (o.connect) {
			free(vm->libvirt);
			vm->libvirt = strdup(o.connect);
		}
		if (o.check_config) {
			vmem_vm_print(vm, stdout);
			rc = 0;
			goto out_cfg;
		}
		goto have_vm;
	}
	if (vmem_config_load(o.config, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmemfs: %s\n", err);
		free(o.fuse_opts);
		free(o.mountpoint);
		return 1;
	}
	if (o.check_config) {
		if (o.vm && !vmem_config_find(&cfg, o.vm, err, sizeof(err))) {
			fprintf(stderr, "vmemfs: %s\n", err);
			rc = 1;
		} else {
			rc = check_config(&cfg, o.vm);
		}
		goto out_cfg;
	}

	rc = 1;
	vm = vmem_config_find(&cfg, o.vm, err, sizeof(err));
	if (!vm) {
		fprintf(stderr, "vmemfs: %s\n", err);
		goto out_cfg;
	}
have_vm:
	rc = 1;
	/* One client for everything: for a domain, one libvirt connection. */
	q = vmem_qmp_for_vm(vm, &none, err, sizeof(err));
	if (!q && !none) {
		fprintf(stderr, "vmemfs: %s\n", err);
		goto out_cfg;
	}
	if (vm->domain &&
	    resolve_domain(vm, cfg.path, q, &dom_pid, &dom_st) < 0)
		goto out_q;
	if (vmem_vm_resolve(vm, cfg.path, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmemfs: %s\n", err);
		goto out_q;
	}
	if (q && learn_from_qemu(vm, cfg.path, q) < 0)
		goto out_q;
	/* The sub-hosts QEMU named are reached by the direct backend with
	 * this config's TLS settings: the same rules as for its own lines.
	 * (remote-paging never connects to them: QEMU does.) */
	if (q && strcmp(vm->backend, "direct") == 0 &&
	    vmem_vm_check_tls(vm, cfg.path, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmemfs: %s\n", err);
		goto out_q;
	}
	memset(&fs, 0, sizeof(fs));
	fs.uid = getuid();
	fs.gid = getgid();
	clock_gettime(CLOCK_REALTIME, &fs.start_time);
	rc = vmem_reader_open_qmp(&fs.reader, vm, q, err, sizeof(err));
	q = NULL;	/* the reader's now */
	if (rc < 0) {
		fprintf(stderr, "vmemfs: %s:%u: VM %s: %s\n", cfg.path, vm->line,
			vm->name, err);
		rc = 1;
		goto out_cfg;
	}
	rc = 1;
	/* The file opened must be the one QEMU maps, not one put in its
	 * place since we looked. */
	if (vm->domain && (fs.reader.mf.dev != dom_st.st_dev ||
			   fs.reader.mf.ino != dom_st.st_ino)) {
		fprintf(stderr, "vmemfs: domain %s: %s changed while it was "
			"opened (the domain restarted?)\n", vm->domain,
			vm->memory_file);
		vmem_reader_close(&fs.reader);
		goto out_cfg;
	}
	if (vmem_physmem_init(&fs.physmem, &fs.reader, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmemfs: %s:%u: VM %s: layout %s: %s\n", cfg.path,
			vm->line, vm->name, vmem_layout_name(vm->layout), err);
		vmem_physmem_fini(&fs.physmem);
		vmem_reader_close(&fs.reader);
		goto out_cfg;
	}
	vmem_kernel_view_init(&fs.kview, &fs.physmem, vm->kernel_btf,
			      vm->kernel_map);
	vmem_proc_init(&fs.proc, &fs.kview, &fs.reader.stats.proc,
		       vm->proc_refresh_ms, vm->timeout_ms, fs.uid, fs.gid);
	rc = run_mount(&fs, &o, vm);
	vmem_proc_fini(&fs.proc);
	vmem_kernel_view_fini(&fs.kview);
	vmem_physmem_fini(&fs.physmem);
	vmem_reader_close(&fs.reader);
out_q:
	vmem_qmp_free(q);
out_cfg:
	vmem_config_free(&cfg);
	free(o.fuse_opts);
	free(o.mountpoint);
	return rc;
}
