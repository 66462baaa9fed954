// SPDX-License-Identifier: MIT
/* The shared split test VM (see splitvm.h). */
#include "splitvm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MiB ((uint64_t)1 << 20)

static int write_text(const char *path, const char *text, char *err,
		      size_t errlen)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		vt_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	fputs(text, f);
	if (fclose(f) != 0) {
		vt_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int vt_split_guest_start(const struct vt_split_opts *o, struct vt_netns *ns,
			 struct vt_nbdkit *sub, struct vt_guest *g,
			 char *err, size_t errlen)
{
	struct vt_guest_opts go = { 0 };
	char e[1024], text[1024];

	if (vt_netns_create(ns, o->netns, o->subnet, e, sizeof(e)) < 0) {
		vt_set_err(err, errlen, "netns: %s", e);
		return -1;
	}
	snprintf(sub->netns, sizeof(sub->netns), "%s", ns->name);
	snprintf(sub->addr, sizeof(sub->addr), "%s", ns->ns_addr);
	sub->port = o->nbd_port;
	snprintf(sub->size, sizeof(sub->size), "%" PRIu64 "M",
		 o->ram_size / MiB);
	if (vt_nbdkit_start(sub, true, e, sizeof(e)) < 0) {
		vt_set_err(err, errlen, "nbdkit: %s", e);
		return -1;
	}
	snprintf(text, sizeof(text),
		 "[vm]\nmemory-file = %s\nram-size = %" PRIu64 "M\n"
		 "chunk-size = %" PRIu64 "K\nlocal-limit = %" PRIu64 "M\n"
		 "timeout = %dms\nsubhost = %s %" PRIu64 "M-%" PRIu64 "M\n"
		 "tls = off\n",
		 o->mem_path, o->ram_size / MiB, o->chunk / 1024,
		 o->local_limit / MiB, o->timeout_ms, sub->uri,
		 o->home_start / MiB, o->home_end / MiB);
	if (write_text(o->qemu_conf, text, err, errlen) < 0)
		return -1;
	go.mem_path = o->mem_path;
	go.ram_size = o->ram_size;
	go.vmem_config = o->qemu_conf;
	go.vmem_vm = "vm";
	go.run_dir = o->run_dir;
	go.boot_timeout_ms = o->boot_timeout_ms;
	go.qmp2_path = o->qmp2_path;
	go.append = o->append;
	go.allow_reset = o->allow_reset;
	if (vt_guest_start(g, &go, e, sizeof(e)) < 0) {
		vt_set_err(err, errlen, "boot: %s", e);
		return -1;
	}
	return 0;
}

int vt_split_vmemfs_conf(const char *path, const struct vt_split_opts *o,
			 const char *backend, const char *extra,
			 char *err, size_t errlen)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "[vm]\nmemory-file = %s\nchunk-size = %" PRIu64 "K\n"
		 "timeout = %dms\nqmp = %s\nbackend = %s\ntls = off\n%s",
		 o->mem_path, o->chunk / 1024, o->timeout_ms, o->qmp2_path,
		 backend, extra ? extra : "");
	return write_text(path, text, err, errlen);
}

int vt_split_vmemfs_confs(const struct vt_split_opts *o, const char *rp_extra,
			  char *err, size_t errlen)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/direct.conf", o->run_dir);
	if (vt_split_vmemfs_conf(path, o, "direct", NULL, err, errlen) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/rp.conf", o->run_dir);
	return vt_split_vmemfs_conf(path, o, "remote-paging", rp_extra, err,
				    errlen);
}

int vt_split_page_out(struct vt_guest *g, const struct vt_split_opts *o,
		      char *err, size_t errlen)
{
	char cmd[256], reply[1024];
	int rc;

	snprintf(cmd, sizeof(cmd), "{\"execute\":\"vmem-page-out\",\"arguments"
		 "\":{\"offset\":%" PRIu64 ",\"length\":%" PRIu64 "}}",
		 o->home_start, o->home_end - o->home_start);
	rc = vt_guest_qmp(g, cmd, reply, sizeof(reply), 300000);
	if (rc != 0) {
		vt_set_err(err, errlen, "vmem-page-out: %d: %s", rc, reply);
		return -1;
	}
	return 0;
}

void vt_split_down(struct vt_guest *g, struct vt_nbdkit *sub,
		   struct vt_netns *ns)
{
	vt_guest_stop_started(g, 5000);
	vt_nbdkit_kill(sub);
	vt_netns_delete(ns);
	memset(ns, 0, sizeof(*ns));
}
