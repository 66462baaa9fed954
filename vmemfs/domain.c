// SPDX-License-Identifier: MIT
/* A libvirt domain's memory file.  See domain.h. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "domain.h"

static json_object *qom_args(const char *path, const char *prop)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "path", json_object_new_string(path));
	json_object_object_add(a, "property", json_object_new_string(prop));
	return a;
}

/* An object id as QEMU makes them (a letter, then [A-Za-z0-9._-]). */
static bool id_ok(const char *s)
{
	if (!isalpha((unsigned char)*s) || strlen(s) > 127)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-._", *s))
			return false;
	return true;
}

/* The QOM path of the machine's RAM backend into @obj. */
static int ram_backend(struct vmem_qmp *q, char *obj, size_t objlen,
		       char *err, size_t errlen)
{
	json_object *v = NULL, *list = NULL;
	const char *s;
	int rc = -1;

	if (vmem_qmp_execute(q, "qom-get", qom_args("/machine",
						    "memory-backend"),
			     &v, err, errlen) < 0)
		return -1;
	s = json_object_is_type(v, json_type_string) ?
	    json_object_get_string(v) : "";
	if (*s) {
		/* QEMU 7.2 gives the id; a link would be "/objects/ID". */
		if (strncmp(s, "/objects/", 9) == 0)
			s += 9;
		if (!id_ok(s)) {
			snprintf(err, errlen, "qom-get /machine memory-backend: "
				 "'%.64s' is not an object id", s);
			goto out;
		}
		snprintf(obj, objlen, "/objects/%s", s);
		rc = 0;
		goto out;
	}
	/* NUMA cells: each has a memdev of its own (libvirt: ram-nodeN). */
	if (vmem_qmp_execute(q, "query-memdev", NULL, &list, err, errlen) < 0)
		goto out;
	if (!json_object_is_type(list, json_type_array) ||
	    json_object_array_length(list) != 1) {
		snprintf(err, errlen, "the domain has %zu memory backends "
			 "(NUMA cells); vmemfs shows a VM with one",
			 json_object_is_type(list, json_type_array) ?
			 json_object_array_length(list) : (size_t)0);
		goto out;
	}
	{
		json_object *id;

		if (!json_object_object_get_ex(json_object_array_get_idx(list, 0),
					       "id", &id) ||
		    !json_object_is_type(id, json_type_string) ||
		    !id_ok(json_object_get_string(id))) {
			snprintf(err, errlen, "query-memdev: no usable id");
			goto out;
		}
		snprintf(obj, objlen, "/objects/%s", json_object_get_string(id));
		rc = 0;
	}
out:
	json_object_put(v);
	json_object_put(list);
	return rc;
}

/* The pid of the QEMU behind @q: the thread group of its first vCPU. */
static int qemu_pid(struct vmem_qmp *q, pid_t *pid, char *err, size_t errlen)
{
	json_object *cpus = NULL, *tid;
	char path[64], line[256];
	long long t = 0, tgid = 0;
	FILE *f;

	if (vmem_qmp_execute(q, "query-cpus-fast", NULL, &cpus, err,
			     errlen) < 0)
		return -1;
	if (json_object_is_type(cpus, json_type_array) &&
	    json_object_array_length(cpus) > 0 &&
	    json_object_object_get_ex(json_object_array_get_idx(cpus, 0),
				      "thread-id", &tid) &&
	    json_object_is_type(tid, json_type_int))
		t = json_object_get_int64(tid);
	json_object_put(cpus);
	if (t <= 0 || t > INT32_MAX) {
		snprintf(err, errlen, "query-cpus-fast: no vCPU thread id");
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%lld/status", t);
	f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "QEMU's vCPU thread %lld: %s (is QEMU "
			 "in another pid namespace, or on another host?)", t,
			 strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %lld", &tgid) == 1)
			break;
	fclose(f);
	if (tgid <= 0 || tgid > INT32_MAX) {
		snprintf(err, errlen, "%s: no Tgid", path);
		return -1;
	}
	*pid = (pid_t)tgid;
	return 0;
}

int vmem_domain_memory_file(struct vmem_qmp *q, char **path, pid_t *pid,
			    char *err, size_t errlen)
{
	json_object *mp = NULL;
	char obj[160];
	int rc = -1;

	*path = NULL;
	if (ram_backend(q, obj, sizeof(obj), err, errlen) < 0)
		return -1;
	if (vmem_qmp_execute(q, "qom-get", qom_args(obj, "mem-path"), &mp,
			     err, errlen) < 0) {
		/* memory-backend-ram has no mem-path. */
		if (strstr(err, "not found"))
			snprintf(err, errlen, "%s is not a memory-backend-file "
				 "(the domain needs <memoryBacking><source "
				 "type='file'/><access mode='shared'/>)", obj);
		return -1;
	}
	if (!json_object_is_type(mp, json_type_string) ||
	    json_object_get_string(mp)[0] != '/') {
		snprintf(err, errlen, "qom-get %s mem-path: not an absolute "
			 "path", obj);
		goto out;
	}
	if (qemu_pid(q, pid, err, errlen) < 0)
		goto out;
	*path = strdup(json_object_get_string(mp));
	if (!*path) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	json_object_put(mp);
	return rc;
}

int vmem_domain_check_mapped(pid_t pid, dev_t dev, ino_t ino,
			     const char *path, char *err, size_t errlen)
{
	char maps[64], *line = NULL;
	size_t cap = 0;
	bool found = false;
	FILE *f;

	snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)pid);
	f = fopen(maps, "re");
	if (!f) {
		snprintf(err, errlen, "%s: %s", maps, strerror(errno));
		return -1;
	}
	while (!found && getline(&line, &cap, f) > 0) {
		unsigned int maj, min;
		unsigned long long i;

		/* START-END PERMS OFFSET MAJ:MIN INODE [PATH] */
		if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &i) == 3)
			found = i == (unsigned long long)ino &&
				makedev(maj, min) == dev;
	}
	free(line);
	fclose(f);
	if (!found)
		snprintf(err, errlen, "%s is not the file QEMU (pid %d) maps: "
			 "refusing to serve it as the domain's memory", path,
			 (int)pid);
	return found ? 0 : -1;
}
