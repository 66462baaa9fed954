// SPDX-License-Identifier: MIT
/*
 * vmemfs-exec MOUNTPOINT COMMAND [ARG...]: run an unmodified host tool
 * (ps, netstat, lsmod) against a VM, through the shadow /proc of its
 * vmemfs mount.  COMMAND runs in a new mount namespace where /proc is
 * MOUNTPOINT/proc and /sys/module is MOUNTPOINT/sys/module (when the
 * mount has one), and in a new UTS namespace whose hostname is the
 * guest's.  No PID namespace: the tool and the daemon must see the same
 * pids (proc/self names the caller by its host pid).  The exit status is
 * COMMAND's (we exec it); 127/126 when it cannot be run, 1 for our own
 * errors, 2 for usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#define MAX_BINDS 16

static void usage(FILE *f)
{
	fprintf(f,
"Usage: vmemfs-exec [OPTION]... MOUNTPOINT COMMAND [ARG]...\n"
"Run COMMAND with the guest's shadow /proc of the vmemfs mount MOUNTPOINT\n"
"on /proc (and MOUNTPOINT/sys/module on /sys/module), in a mount and UTS\n"
"namespace of its own whose hostname is the guest's.  Root only.\n"
"\n"
"  -b, --bind NAME:TARGET  also bind MOUNTPOINT/NAME on TARGET\n"
"  -h, --help              this text\n"
"  -V, --version           the version\n"
"\n"
"The exit status is COMMAND's; 126/127 when it cannot be run; 1 when the\n"
"namespace cannot be set up (not root, not a vmemfs mount, the guest\n"
"kernel not recognised yet); 2 for a usage error.\n");
}

__attribute__((format(printf, 1, 2)))
static int die(const char *fmt, ...)
{
	va_list ap;

	fputs("vmemfs-exec: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* Is @dir (a real path) the mount point of a fuse.vmemfs file system? */
static int is_vmemfs(const char *dir)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	int found = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], *sep;
		char fstype[64];

		/* id parent major:minor root MOUNTPOINT ... - FSTYPE ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		sep = strstr(line, " - ");
		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1)
			continue;
		if (strcmp(mnt, dir) == 0)
			found = strcmp(fstype, "fuse.vmemfs") == 0 ? 1 : 0;
	}
	fclose(f);
	return found;
}

/* The whole of a small file, NUL-terminated; NULL with errno. */
static char *slurp(const char *path)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2) {
			char *nb = cap < (1u << 24) ? realloc(buf, cap * 2) : NULL;

			if (!nb) {
				free(buf);
				close(fd);
				errno = EFBIG;
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
	}
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

static int bind(const char *src, const char *dst)
{
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0) {
		die("cannot bind %s on %s: %s", src, dst, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bind", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *binds[MAX_BINDS];
	char mnt[PATH_MAX], path[PATH_MAX + 64];
	char *text, *host;
	json_object *k, *e;
	struct stat st;
	int c, nb = 0, i, rc;

	while ((c = getopt_long(argc, argv, "+b:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (nb == MAX_BINDS || !strchr(optarg, ':')) {
				fprintf(stderr, "vmemfs-exec: --bind NAME:TARGET"
					" (at most %d)\n", MAX_BINDS);
				return 2;
			}
			binds[nb++] = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vmemfs-exec %s\n", VMEM_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind < 2) {
		usage(stderr);
		return 2;
	}
	if (geteuid() != 0)
		return die("must be run as root (it makes mount namespaces)");
	if (!realpath(argv[optind], mnt))
		return die("%s: %s", argv[optind], strerror(errno));
	rc = is_vmemfs(mnt);
	if (rc < 0)
		return die("cannot read /proc/self/mountinfo: %s",
			   strerror(errno));
	if (rc == 0)
		return die("%s is not a vmemfs mount point", mnt);

	/* The guest kernel must be known, else proc/ has nothing. */
	snprintf(path, sizeof(path), "%s/kernel", mnt);
	text = slurp(path);
	if (!text)
		return die("%s: %s", path, strerror(errno));
	k = json_tokener_parse(text);
	free(text);
	if (!k)
		return die("%s: not JSON", path);
	if (json_object_object_get_ex(k, "error", &e)) {
		rc = die("guest kernel not recognised yet: %s",
			 json_object_get_string(e));
		json_object_put(k);
		return rc;
	}
	json_object_put(k);
	snprintf(path, sizeof(path), "%s/proc/sys/kernel/hostname", mnt);
	host = slurp(path);
	if (!host)
		return die("%s: %s", path, strerror(errno));
	host[strcspn(host, "\n")] = '\0';

	if (unshare(CLONE_NEWNS | CLONE_NEWUTS) < 0)
		return die("unshare(CLONE_NEWNS|CLONE_NEWUTS): %s",
			   strerror(errno));
	/* Nothing we mount may leak back to the host's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return die("making / a slave mount: %s", strerror(errno));
	if (sethostname(host, strlen(host)) < 0)
		return die("sethostname(%s): %s", host, strerror(errno));
	free(host);
	snprintf(path, sizeof(path), "%s/proc", mnt);
	if (bind(path, "/proc") < 0)
		return 1;
	snprintf(path, sizeof(path), "%s/sys/module", mnt);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
	    stat("/sys/module", &st) == 0 && bind(path, "/sys/module") < 0)
		return 1;
	for (i = 0; i < nb; i++) {
		char *target = strchr(binds[i], ':');

		snprintf(path, sizeof(path), "%s/%.*s", mnt,
			 (int)(target - binds[i]), binds[i]);
		if (bind(path, target + 1) < 0)
			return 1;
	}
	execvp(argv[optind + 1], argv + optind + 1);
	rc = errno;
	fprintf(stderr, "vmemfs-exec: %s: %s\n", argv[optind + 1],
		strerror(rc));
	return rc == ENOENT ? 127 : 126;
}
