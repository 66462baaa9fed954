// SPDX-License-Identifier: MIT
/*
 * The QMP client against a scripted QMP server on a unix socket: greeting
 * and capabilities, replies matched by id when they come back out of
 * order and with events between them, QEMU errors, timeouts, a VM that
 * goes away and one that comes back.
 */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../vmemfs/qmp.h"

enum mode {
	ECHO,		/* reply {"return": {"echo": args}} to each command */
	REVERSE4,	/* collect 4 commands, reply in reverse, events between */
	SILENT,		/* never reply */
	ERROR,		/* reply with a QMP error */
	HANGUP,		/* close the connection on the first command */
};

struct server {
	char path[108];
	int lfd;
	enum mode mode;
	int max_conns;
	pthread_t thr;
};

static char *read_json(int fd, json_tokener *tok, json_object **out)
{
	char c;

	/* Byte at a time is fine for a test server and keeps it simple. */
	while (recv(fd, &c, 1, 0) == 1) {
		json_object *o = json_tokener_parse_ex(tok, &c, 1);

		if (o) {
			json_tokener_reset(tok);
			*out = o;
			return "";
		}
		if (json_tokener_get_error(tok) != json_tokener_continue)
			return NULL;
	}
	return NULL;
}

static void say(int fd, const char *s)
{
	ssize_t n = send(fd, s, strlen(s), MSG_NOSIGNAL);

	(void)n;
}

static void reply(int fd, json_object *cmd)
{
	json_object *r = json_object_new_object(), *ret = json_object_new_object(),
		    *id, *args;
	char *s;

	if (json_object_object_get_ex(cmd, "arguments", &args))
		json_object_object_add(ret, "echo", json_object_get(args));
	json_object_object_add(r, "return", ret);
	if (json_object_object_get_ex(cmd, "id", &id))
		json_object_object_add(r, "id", json_object_get(id));
	if (asprintf(&s, "%s\r\n", json_object_to_json_string(r)) > 0) {
		say(fd, s);
		free(s);
	}
	json_object_put(r);
}

static void serve_conn(struct server *sv, int fd)
{
	json_tokener *tok = json_tokener_new();
	json_object *held[4] = { 0 }, *o;
	int nheld = 0, i;

	say(fd, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
	if (!read_json(fd, tok, &o))
		goto out;
	/* An event before the capabilities reply must not confuse it. */
	say(fd, "{\"event\": \"EARLY\", \"data\": {}, \"timestamp\": {}}\r\n");
	say(fd, "{\"return\": {}, \"id\": \"caps\"}\r\n");
	json_object_put(o);
	while (read_json(fd, tok, &o)) {
		switch (sv->mode) {
		case ECHO:
			reply(fd, o);
			json_object_put(o);
			break;
		case REVERSE4:
			held[nheld++] = o;
			if (nheld < 4)
				break;
			for (i = 3; i >= 0; i--) {
				say(fd, "{\"event\": \"TICK\", \"data\": {\"n\": 1}}");
				reply(fd, held[i]);
				json_object_put(held[i]);
			}
			nheld = 0;
			break;
		case SILENT:
			json_object_put(o);
			break;
		case ERROR: {
			json_object *id;
			char *s;

			json_object_object_get_ex(o, "id", &id);
			if (asprintf(&s, "{\"error\": {\"class\": \"GenericError\", "
				     "\"desc\": \"no such range\"}, \"id\": %s}\r\n",
				     json_object_to_json_string(id)) > 0) {
				say(fd, s);
				free(s);
			}
			json_object_put(o);
			break;
		}
		case HANGUP:
			json_object_put(o);
			goto out;
		}
	}
out:
	json_tokener_free(tok);
	close(fd);
}

static void *server_main(void *arg)
{
	struct server *sv = arg;
	int i;

	for (i = 0; i < sv->max_conns; i++) {
		int fd = accept(sv->lfd, NULL, NULL);

		if (fd < 0)
			break;
		serve_conn(sv, fd);
	}
	return NULL;
}

static void server_start(struct server *sv, enum mode mode, int max_conns)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	sv->mode = mode;
	sv->max_conns = max_conns;
	if (!sv->path[0])
		snprintf(sv->path, sizeof(sv->path), "/tmp/vmt-qmp-%d.sock", getpid());
	unlink(sv->path);
	strcpy(sa.sun_path, sv->path);
	sv->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(sv->lfd, 0);
	ck_assert_int_eq(bind(sv->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(sv->lfd, 4), 0);
	ck_assert_int_eq(pthread_create(&sv->thr, NULL, server_main, sv), 0);
}

/* Stop listening; the server thread ends once its connections do. */
static void server_stop(struct server *sv)
{
	shutdown(sv->lfd, SHUT_RDWR);
	close(sv->lfd);
	unlink(sv->path);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static json_object *args_n(int n)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "n", json_object_new_int(n));
	return a;
}

static int echoed_n(json_object *ret)
{
	json_object *e, *n;

	ck_assert(json_object_object_get_ex(ret, "echo", &e));
	ck_assert(json_object_object_get_ex(e, "n", &n));
	return json_object_get_int(n);
}

START_TEST(execute_returns_value)
{
	struct server sv = { 0 };
	struct vmem_qmp *q;
	json_object *ret;
	char err[256];

	server_start(&sv, ECHO, 1);
	q = vmem_qmp_new(sv.path, 2000);
	ck_assert_int_eq(vmem_qmp_execute(q, "query-vmem", args_n(42), &ret, err,
					  sizeof(err)), 0);
	ck_assert_int_eq(echoed_n(ret), 42);
	json_object_put(ret);
	ck_assert_int_eq(vmem_qmp_execute(q, "x", args_n(7), &ret, err,
					  sizeof(err)), 0);
	ck_assert_int_eq(echoed_n(ret), 7);
	json_object_put(ret);
	ck_assert_uint_eq(vmem_qmp_connects(q), 1);
	server_stop(&sv);
	vmem_qmp_free(q);
	pthread_join(sv.thr, NULL);
}
END_TEST

struct caller {
	struct vmem_qmp *q;
	int n;
	int got;
	int rc;
};

static void *call_main(void *arg)
{
	struct caller *c = arg;
	json_object *ret = NULL;
	char err[256];

	c->rc = vmem_qmp_execute(c->q, "x", args_n(c->n), &ret, err, sizeof(err));
	if (c->rc == 0)
		c->got = echoed_n(ret);
	json_object_put(ret);
	return NULL;
}

static int events_seen;

static void on_event(void *opaque, const char *event, json_object *data)
{
	(void)opaque;
	(void)data;
	if (strcmp(event, "TICK") == 0)
		__atomic_fetch_add(&events_seen, 1, __ATOMIC_RELAXED);
}

START_TEST(out_of_order_replies_and_events)
{
	struct server sv = { 0 };
	struct caller c[4];
	pthread_t t[4];
	struct vmem_qmp *q;
	int i;

	server_start(&sv, REVERSE4, 1);
	q = vmem_qmp_new(sv.path, 3000);
	vmem_qmp_set_event_cb(q, on_event, NULL);
	for (i = 0; i < 4; i++) {
		c[i] = (struct caller){ .q = q, .n = 100 + i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, call_main, &c[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(c[i].rc, 0);
		ck_assert_int_eq(c[i].got, 100 + i);
	}
	ck_assert_int_eq(__atomic_load_n(&events_seen, __ATOMIC_RELAXED), 4);
	server_stop(&sv);
	vmem_qmp_free(q);
	pthread_join(sv.thr, NULL);
}
END_TEST

START_TEST(qemu_error_is_reported)
{
	struct server sv = { 0 };
	struct vmem_qmp *q;
	json_object *ret;
	char err[256];

	server_start(&sv, ERROR, 1);
	q = vmem_qmp_new(sv.path, 2000);
	ck_assert_int_eq(vmem_qmp_execute(q, "vmem-page-in", NULL, &ret, err,
					  sizeof(err)), -EREMOTEIO);
	ck_assert_ptr_null(ret);
	ck_assert_str_eq(err, "vmem-page-in: no such range");
	server_stop(&sv);
	vmem_qmp_free(q);
	pthread_join(sv.thr, NULL);
}
END_TEST

START_TEST(silent_vm_times_out)
{
	struct server sv = { 0 };
	struct vmem_qmp *q;
	char err[256];
	double t0, dt;

	server_start(&sv, SILENT, 1);
	q = vmem_qmp_new(sv.path, 300);
	t0 = now_s();
	ck_assert_int_eq(vmem_qmp_execute(q, "x", NULL, NULL, err, sizeof(err)),
			 -EIO);
	dt = now_s() - t0;
	ck_assert_msg(dt >= 0.29 && dt < 0.8, "timed out after %.3f s", dt);
	ck_assert_ptr_nonnull(strstr(err, "no reply within 300 ms"));
	printf("info: silent VM: EIO after %.3f s (timeout 0.3 s)\n", dt);
	server_stop(&sv);
	vmem_qmp_free(q);	/* shuts the socket: the server sees EOF */
	pthread_join(sv.thr, NULL);
}
END_TEST

START_TEST(vm_gone_then_back)
{
	struct server sv = { 0 };
	struct vmem_qmp *q;
	json_object *ret;
	char err[256];
	double t0, dt;

	/* QEMU drops the connection mid-command: EIO at once, not at timeout. */
	server_start(&sv, HANGUP, 1);
	q = vmem_qmp_new(sv.path, 5000);
	t0 = now_s();
	ck_assert_int_eq(vmem_qmp_execute(q, "x", NULL, NULL, err, sizeof(err)),
			 -EIO);
	dt = now_s() - t0;
	ck_assert_msg(dt < 1.0, "EIO after %.3f s", dt);
	ck_assert_ptr_nonnull(strstr(err, "connection to the VM lost"));
	pthread_join(sv.thr, NULL);
	server_stop(&sv);

	/* Nobody listens: EIO at once. */
	t0 = now_s();
	ck_assert_int_eq(vmem_qmp_execute(q, "x", NULL, NULL, err, sizeof(err)),
			 -EIO);
	ck_assert(now_s() - t0 < 1.0);

	/* A new QEMU on the same socket is picked up. */
	server_start(&sv, ECHO, 1);
	usleep(150 * 1000);	/* past the reconnect hold-off */
	ck_assert_int_eq(vmem_qmp_execute(q, "x", args_n(5), &ret, err,
					  sizeof(err)), 0);
	ck_assert_int_eq(echoed_n(ret), 5);
	json_object_put(ret);
	ck_assert_uint_eq(vmem_qmp_connects(q), 2);
	server_stop(&sv);
	vmem_qmp_free(q);
	pthread_join(sv.thr, NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("qmp");
	TCase *tc = tcase_create("client");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, execute_returns_value);
	tcase_add_test(tc, out_of_order_replies_and_events);
	tcase_add_test(tc, qemu_error_is_reported);
	tcase_add_test(tc, silent_vm_times_out);
	tcase_add_test(tc, vm_gone_then_back);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
