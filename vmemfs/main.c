// SPDX-License-Identifier: MIT
/*
 * vmemfs: mount one VM's memory, split across hosts, as one file.
 * Command line, config, and the FUSE session's life cycle.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/config.h"
#include "fs.h"
#include "log.h"
#include "qemu_info.h"

#ifndef VMEM_VERSION
#define VMEM_VERSION "unknown"
#endif

static void usage(FILE *out)
{
	fprintf(out,
"Usage: vmemfs [-c CONFIG] [--vm NAME] [-f] [-d] [-o FUSEOPTS] MOUNTPOINT\n"
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
"  -f, --foreground     do not daemonize; log to stderr\n"
"  -d, --debug          FUSE debug output (implies -f)\n"
"  -o OPT[,OPT...]      FUSE mount options, e.g. allow_other (lets users\n"
"                       other than root read guest memory: think first)\n"
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
	char *mountpoint;
	char *fuse_opts;
	bool foreground;
	bool debug;
	bool check_config;
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

/* Returns 0 to go on, 1 to exit 0 (help/version), -1 on a usage error. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { OPT_VM = 256, OPT_CHECK };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "vm", required_argument, NULL, OPT_VM },
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
			if (append_opts(o, optarg) < 0) {
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

static int check_config(struct vmem_config *cfg, const char *vm_name)
{
	char err[512];
	size_t i;
	int bad = 0;

	for (i = 0; i < cfg->n_vms; i++) {
		struct vmem_vm *vm = &cfg->vms[i];

		if (vm_name && strcmp(vm->name, vm_name) != 0)
			continue;
		if (vmem_vm_resolve(vm, cfg->path, err, sizeof(err)) < 0) {
			fprintf(stderr, "vmemfs: %s\n", err);
			bad = 1;
			continue;
		}
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
static int learn_from_qemu(struct vmem_vm *vm, const char *path)
{
	struct vmem_qmp *q = vmem_qmp_new(vm->qmp, vm->timeout_ms);
	char err[512];
	int n;

	if (!q) {
		fprintf(stderr, "vmemfs: out of memory\n");
		return -1;
	}
	n = vmem_qemu_learn_subhosts(q, vm, err, sizeof(err));
	vmem_qmp_free(q);
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
	struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = 16 };
	struct fuse_session *se;
	char base[512];
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

	se = fuse_session_new(&args, &vmem_fs_ops, sizeof(vmem_fs_ops), fs);
	if (!se)
		goto out_args;	/* libfuse said why on stderr */
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, o->mountpoint) != 0)
		goto out_signals;
	if (fuse_daemonize(o->foreground) != 0)
		goto out_unmount;
	if (!o->foreground)
		vmem_log_to_syslog("vmemfs");
	/* After the fork of fuse_daemonize: a thread would not survive it. */
	rc = vmem_kernel_view_start(&fs->kview);
	if (rc < 0)
		vmem_log(LOG_WARNING, "no guest kernel recognition (`kernel` "
			 "stays an error): thread: %s", strerror(-rc));
	rc = 1;
	vmem_log(LOG_INFO, "VM %s mounted on %s (%s backend, %zu sub-host%s)",
		 vm->name, o->mountpoint, vmem_backend_name(vm->backend),
		 vm->n_subhosts, vm->n_subhosts == 1 ? "" : "s");
	/* The loop returns the signal number when SIGTERM/SIGINT ended it:
	 * that is the normal way out, not an error. */
	rc = fuse_session_loop_mt(se, &lc) < 0;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_args:
	fuse_opt_free_args(&args);
	return rc;
}

int main(int argc, char **argv)
{
	struct vmem_config cfg;
	struct opts o = { 0 };
	struct vmem_fs fs;
	struct vmem_vm *vm;
	char err[512];
	int rc;

	rc = parse_args(argc, argv, &o);
	if (rc != 0) {
		free(o.fuse_opts);
		free(o.mountpoint);
		return rc > 0 ? 0 : 2;
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
	if (vmem_vm_resolve(vm, cfg.path, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmemfs: %s\n", err);
		goto out_cfg;
	}
	if (vm->qmp && learn_from_qemu(vm, cfg.path) < 0)
		goto out_cfg;
	memset(&fs, 0, sizeof(fs));
	fs.uid = getuid();
	fs.gid = getgid();
	clock_gettime(CLOCK_REALTIME, &fs.start_time);
	if (vmem_reader_open(&fs.reader, vm, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmemfs: %s:%u: VM %s: %s\n", cfg.path, vm->line,
			vm->name, err);
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
	rc = run_mount(&fs, &o, vm);
	vmem_kernel_view_fini(&fs.kview);
	vmem_physmem_fini(&fs.physmem);
	vmem_reader_close(&fs.reader);
out_cfg:
	vmem_config_free(&cfg);
	free(o.fuse_opts);
	free(o.mountpoint);
	return rc;
}
