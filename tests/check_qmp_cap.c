// SPDX-License-Identifier: MIT
/*
 * QMP messages are bounded: a peer that sends a reply of 100 MB (one
 * JSON string) must not make the client hold it.  The client drops the
 * connection once a message passes its cap (4 MiB), the command fails
 * with EIO well inside its timeout, a log line says why, the memory used
 * stays bounded (VmHWM), and the next command reconnects to a
 * well-behaved server.  A reply just under the cap still gets through.
 * The same cap holds for the greeting, read while connecting.
 */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../vmemfs/qmp.h"

#include "lib/fakeqmp.h"
#include "lib/hosts.h"
#include "lib/suite.h"

#define MiB (1ul << 20)

struct script {
	size_t huge;		/* bytes of the string in the first reply */
	int conns_huge;		/* connections that get it (then echo) */
	int conn;		/* connections seen */
	size_t sent;		/* string bytes the peer took */
};

/* {"id": ID, "return": "xxx...x"} with @len x's, streamed in pieces so
 * the server itself holds only one piece. */
static bool send_huge(int fd, json_object *cmd, size_t len, size_t *sent)
{
	static char piece[64 * 1024];
	json_object *id = NULL;
	char head[64];

	memset(piece, 'x', sizeof(piece));
	json_object_object_get_ex(cmd, "id", &id);
	snprintf(head, sizeof(head), "{\"id\": %s, \"return\": \"",
		 json_object_to_json_string(id));
	if (send(fd, head, strlen(head), MSG_NOSIGNAL) < 0)
		return false;
	__atomic_store_n(sent, 0, __ATOMIC_RELAXED);
	while (*sent < len) {
		size_t k = len - *sent < sizeof(piece) ? len - *sent :
			   sizeof(piece);
		ssize_t n = send(fd, piece, k, MSG_NOSIGNAL);

		if (n <= 0)
			return false;	/* the client hung up: good */
		__atomic_store_n(sent, *sent + (size_t)n, __ATOMIC_RELAXED);
	}
	return send(fd, "\"}\r\n", 4, MSG_NOSIGNAL) == 4;
}

static bool on_command(struct fakeqmp *s, int fd, json_object *cmd,
		       void *opaque)
{
	struct script *sc = opaque;
	json_object *args;
	bool keep = true;

	(void)s;
	if (sc->conn < sc->conns_huge) {
		keep = send_huge(fd, cmd, sc->huge, &sc->sent);
		sc->conn++;
	} else {
		json_object *ret = json_object_new_object();

		if (json_object_object_get_ex(cmd, "arguments", &args))
			json_object_object_add(ret, "echo",
					       json_object_get(args));
		fakeqmp_reply(fd, cmd, ret);
	}
	json_object_put(cmd);
	return keep;
}

/* VmHWM of this process, in KiB. */
static long hwm_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	ck_assert_int_gt(kib, 0);
	return kib;
}

/* Send stderr (where vmem_log writes) to a memfd; returns the old fd. */
static int stderr_to(int memfd)
{
	int old = dup(2);

	ck_assert_int_ge(old, 0);
	ck_assert_int_eq(dup2(memfd, 2), 2);
	return old;
}

static void stderr_back(int old, int memfd, char *buf, size_t len)
{
	ssize_t n;

	fflush(stderr);
	ck_assert_int_eq(dup2(old, 2), 2);
	close(old);
	n = pread(memfd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(memfd);
}

START_TEST(oversized_reply_is_a_broken_peer)
{
	struct script sc = { .huge = 100 * MiB, .conns_huge = 1 };
	struct fakeqmp sv = { 0 };
	json_object *ret = NULL, *echo;
	struct vmem_qmp *q;
	char err[256], log[1024];
	long before, after;
	size_t sent;
	double t0, ms;
	int rc, old, mfd;

	fakeqmp_start(&sv, on_command, &sc, 2);
	q = vmem_qmp_new(sv.path, 5000);
	mfd = memfd_create("vt-log", 0);
	ck_assert_int_ge(mfd, 0);

	before = hwm_kib();
	old = stderr_to(mfd);
	t0 = vt_now_ms();
	rc = vmem_qmp_execute(q, "human-monitor-command", NULL, &ret, err,
			      sizeof(err));
	ms = vt_now_ms() - t0;
	stderr_back(old, mfd, log, sizeof(log));
	after = hwm_kib();

	sent = __atomic_load_n(&sc.sent, __ATOMIC_RELAXED);
	printf("oversized: rc %d in %.0f ms after %zu bytes sent; VmHWM "
	       "%ld -> %ld KiB; err: %s\n", rc, ms, sent, before, after,
	       err);
	ck_assert_msg(rc == -EIO, "rc %d (%s)", rc, rc ? err : "a reply");
	ck_assert_ptr_null(ret);
	ck_assert_msg(strstr(err, "connection to the VM lost: QEMU sent a "
			     "message larger than 4 MiB"), "err: %s", err);
	ck_assert_msg(strstr(log, "message larger than 4 MiB; dropping the "
			     "connection"), "log: '%s'", log);
	/* The client stopped reading soon after the cap (socket buffers
	 * hold a few MiB more), long before the 100 MB were through... */
	ck_assert_msg(sent < 40 * MiB, "peer sent %zu bytes", sent);
	/* ...and well inside the timeout. */
	ck_assert_msg(ms < 4000, "took %.0f ms", ms);
	/* Bounded memory: the cap, doubled by the tokener's buffer, plus
	 * slack for a loaded machine; without a cap this grew by 200 MB. */
	ck_assert_msg(after - before < 40 * 1024,
		      "VmHWM grew by %ld KiB", after - before);

	/* The next command reconnects and works. */
	rc = vmem_qmp_execute(q, "query-status",
			      json_tokener_parse("{\"n\": 7}"), &ret, err,
			      sizeof(err));
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert(json_object_object_get_ex(ret, "echo", &echo));
	ck_assert_str_eq(json_object_to_json_string(echo), "{ \"n\": 7 }");
	json_object_put(ret);
	ck_assert_uint_eq(vmem_qmp_connects(q), 2);

	vmem_qmp_free(q);
	fakeqmp_stop(&sv);
}
END_TEST

START_TEST(large_reply_under_the_cap_passes)
{
	/* 3 MiB: far above any real answer, still under the cap. */
	struct script sc = { .huge = 3 * MiB, .conns_huge = 1 };
	struct fakeqmp sv = { 0 };
	json_object *ret = NULL;
	struct vmem_qmp *q;
	char err[256];
	int rc;

	fakeqmp_start(&sv, on_command, &sc, 1);
	q = vmem_qmp_new(sv.path, 5000);
	rc = vmem_qmp_execute(q, "human-monitor-command", NULL, &ret, err,
			      sizeof(err));
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert(json_object_is_type(ret, json_type_string));
	ck_assert_uint_eq(json_object_get_string_len(ret), 3 * MiB);
	json_object_put(ret);
	ck_assert_uint_eq(vmem_qmp_connects(q), 1);
	vmem_qmp_free(q);
	fakeqmp_stop(&sv);
}
END_TEST

/* A peer whose greeting never ends: {"QMP": "xxx... (100 MB). */
struct raw_peer {
	char path[108];
	int lfd;
	size_t sent;
	pthread_t thr;
};

static void *raw_peer_main(void *arg)
{
	struct raw_peer *p = arg;
	static char piece[64 * 1024];
	int fd = accept(p->lfd, NULL, NULL);
	size_t sent = 0;

	memset(piece, 'x', sizeof(piece));
	if (fd < 0)
		return NULL;
	if (send(fd, "{\"QMP\": \"", 9, MSG_NOSIGNAL) == 9) {
		while (sent < 100 * MiB) {
			ssize_t n = send(fd, piece, sizeof(piece), MSG_NOSIGNAL);

			if (n <= 0)
				break;
			sent += (size_t)n;
			__atomic_store_n(&p->sent, sent, __ATOMIC_RELAXED);
		}
	}
	close(fd);
	return NULL;
}

START_TEST(oversized_greeting_is_refused)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct raw_peer p = { .sent = 0 };
	struct vmem_qmp *q;
	char err[256];
	long before, after;
	size_t sent;
	int rc;

	snprintf(p.path, sizeof(p.path), "/tmp/vmt-qmpcap-%d.sock",
		 (int)getpid());
	unlink(p.path);
	strcpy(sa.sun_path, p.path);
	p.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(p.lfd, 0);
	ck_assert_int_eq(bind(p.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(p.lfd, 1), 0);
	ck_assert_int_eq(pthread_create(&p.thr, NULL, raw_peer_main, &p), 0);

	q = vmem_qmp_new(p.path, 5000);
	before = hwm_kib();
	rc = vmem_qmp_execute(q, "query-status", NULL, NULL, err, sizeof(err));
	after = hwm_kib();
	vmem_qmp_free(q);
	pthread_join(p.thr, NULL);
	close(p.lfd);
	unlink(p.path);
	sent = __atomic_load_n(&p.sent, __ATOMIC_RELAXED);
	printf("oversized greeting: rc %d after %zu bytes; VmHWM %ld -> %ld "
	       "KiB; err: %s\n", rc, sent, before, after, err);
	ck_assert_int_eq(rc, -EIO);
	ck_assert_msg(strstr(err, "no QMP greeting"), "err: %s", err);
	ck_assert_msg(sent < 40 * MiB, "peer sent %zu bytes", sent);
	ck_assert_msg(after - before < 40 * 1024, "VmHWM grew by %ld KiB",
		      after - before);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("qmp_cap");
	TCase *tc = vt_tcase_checked(s, "cap", NULL, NULL, 30);

	tcase_add_test(tc, oversized_reply_is_a_broken_peer);
	tcase_add_test(tc, large_reply_under_the_cap_passes);
	tcase_add_test(tc, oversized_greeting_is_refused);
	return vt_run_suite(s);
}
