// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the config parser (common/config.c): any bytes as
 * the text of a config file.  A hostile or broken file must give an error
 * message, never a crash, a leak or undefined behaviour (the build adds
 * ASan and UBSan).  A file that parses must also survive what
 * --check-config does with it: the printed settings parse again and print
 * the same (the round trip --check-config promises), and resolving it
 * without a running VM either succeeds or says why.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/config.h"

/* Every VM of @cfg as --check-config prints it; malloc'd. */
static char *print_all(const struct vmem_config *cfg, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		abort();
	for (size_t i = 0; i < cfg->n_vms; i++)
		vmem_vm_print(&cfg->vms[i], f);
	if (fclose(f) != 0)
		abort();
	return buf;
}

/* A failed call must leave a message. */
static void need_message(const char *err, const char *what)
{
	if (!err[0]) {
		fprintf(stderr, "%s failed without a message\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmem_config cfg, again;
	char err[512] = "";
	char *text, *p1, *p2;
	size_t l1, l2;

	/* The parser takes a NUL-terminated text (vmem_config_load reads
	 * the file into one); bytes after an embedded NUL are not seen. */
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	if (vmem_config_parse(text, "fuzz.conf", &cfg, err, sizeof(err)) < 0) {
		need_message(err, "vmem_config_parse");
		free(text);
		return 0;
	}
	p1 = print_all(&cfg, &l1);
	err[0] = '\0';
	if (vmem_config_parse(p1, "printed.conf", &again, err,
			      sizeof(err)) < 0) {
		fprintf(stderr, "printed settings do not parse: %s\n---\n%s",
			err, p1);
		abort();
	}
	p2 = print_all(&again, &l2);
	if (l1 != l2 || memcmp(p1, p2, l1) != 0) {
		fprintf(stderr, "print -> parse -> print differs:\n%s---\n%s",
			p1, p2);
		abort();
	}
	/* The memory files named by fuzz input are only stat'ed. */
	for (size_t i = 0; i < cfg.n_vms; i++) {
		err[0] = '\0';
		if (vmem_vm_resolve_unstarted(&cfg.vms[i], cfg.path, err,
					      sizeof(err)) != 0)
			need_message(err, "vmem_vm_resolve_unstarted");
	}
	free(p1);
	free(p2);
	vmem_config_free(&again);
	vmem_config_free(&cfg);
	free(text);
	return 0;
}
