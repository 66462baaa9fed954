// SPDX-License-Identifier: MIT
/*
 * vmemfs-kernel FILE: recognise the guest kernel in a raw guest-physical
 * image (a vmemfs `mem`, QEMU's pmemsave output, ...) and print what the
 * introspect library found, as the JSON of vmemfs's `kernel` file.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../introspect/kernel.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmemfs-kernel [--btf PATH] [--map PATH] "
		"[--timeout MS] FILE\n"
		"Recognise the Linux kernel in FILE, a raw guest-physical "
		"memory image\n(offset = guest-physical address, e.g. a vmemfs "
		"`mem`), and print it as JSON.\n"
		"  --btf PATH      kernel types from PATH (vmlinux with .BTF, "
		"or raw BTF)\n"
		"  --map PATH      symbols from PATH (System.map, kernels "
		"before 6.0)\n"
		"  --timeout MS    give up after MS milliseconds (default "
		"60000, 0 = none)\n"
		"  --help, --version\n"
		"Exit status: 0 recognised, 1 not recognised, 2 usage or "
		"file error.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "btf", required_argument, NULL, 'b' },
		{ "map", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct vmi_kernel_options o = { .timeout_ms = 60000 };
	struct vmi_kernel *k;
	struct vmi_phys p;
	char err[512], *json, *end;
	int c, ret;

	while ((c = getopt_long(argc, argv, "b:m:t:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			o.btf_path = optarg;
			break;
		case 'm':
			o.map_path = optarg;
			break;
		case 't':
			errno = 0;
			o.timeout_ms = strtoull(optarg, &end, 10);
			if (errno || *end || !*optarg || *optarg == '-') {
				fprintf(stderr, "vmemfs-kernel: --timeout "
					"\"%s\": not a number of ms\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vmemfs-kernel %s\n", VMEM_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	ret = vmi_phys_file_open(&p, argv[optind], NULL, 0, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "vmemfs-kernel: %s\n", err);
		return 2;
	}
	ret = vmi_kernel_recognise(&p, &o, &k, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "vmemfs-kernel: %s: kernel not recognised: "
			"%s\n", argv[optind], err);
		vmi_phys_file_close(&p);
		return 1;
	}
	json = vmi_kernel_json(k);
	if (!json) {
		fprintf(stderr, "vmemfs-kernel: out of memory\n");
		ret = 2;
	} else {
		fputs(json, stdout);
		ret = fflush(stdout) || ferror(stdout) ? 2 : 0;
		if (ret)
			fprintf(stderr, "vmemfs-kernel: writing stdout: %s\n",
				strerror(errno));
	}
	free(json);
	vmi_kernel_free(k);
	vmi_phys_file_close(&p);
	return ret;
}
