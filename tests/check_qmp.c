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

#include "lib/fakeqmp.h"
#include "lib/suite.h"

enum mode {
	ECHO,		/* reply {"return": {"echo": args}} to each command */
	REVERSE4,	/* collect 4 commands, reply in reverse, events between */
	SILENT,		/* never reply */
	ERROR,		/* reply with a QMP error */
	HANGUP,		/* close the connection on the first command */
};

struct script {
	enum mode mode;
	json_object *held[4];
	int nheld;
};

static void echo(int fd, json_object *cmd)
{
	json_object *ret = json_object_new_object(), *args;

	if (json_object_object_get_ex(cmd, "arguments", &args))
		json_object_object_add(ret, "echo", json_object_get(args));
	fakeqmp_reply(fd, cmd, ret);
}

static bool on_command(struct fakeqmp *s, int fd, json_object *cmd,
		       void *opaque)
{
	struct script *sc = opaque;
	int i;

	(void)s;
	switch (sc->mode) {
	case ECHO:
		echo(fd, cmd);
		break;
	case REVERSE4:
		sc->held[sc->nheld++] = cmd;
		if (sc->nheld < 4)
			return true;
		for (i = 3; i >= 0; i--) {
			fakeqmp_send(fd, "{\"event\": \"TICK\", \"data\": {\"n\": 1}}");
			echo(fd, sc->held[i]);
			json_object_put(sc->held[i]);
		}
		sc->nheld = 0;
		return true;
	case SILENT:
		break;
	case ERROR:
		fakeqmp_error(fd, cmd, "no such range");
		break;
	case HANGUP:
		json_object_put(cmd);
		return false;
	}
	json_object_put(cmd);
	return true;
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
	struct fakeqmp sv = { 0 };
	struct vmem_qmp *q;
	json_object *ret;
	char err[256];

	struct script sc_ECHO = { .mode = ECHO };
	fakeqmp_start(&sv, on_command, &sc_ECHO, 1);
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
	vmem_qmp_free(q);
	fakeqmp_stop(&sv);
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
	struct fakeqmp sv = { 0 };
	struct caller c[4];
	pthread_t t[4];
	struct vmem_qmp *q;
	int i;

	struct script sc_REVERSE4 = { .mode = REVERSE4 };
	fakeqmp_start(&sv, on_command, &sc_REVERSE4, 1);
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
	vmem_qmp_free(q);
	fakeqmp_stop(&sv);
}
END_TEST

START_TEST(qemu_error_is_reported)
{
	struct fakeqmp sv = { 0 };
	struct vmem_qmp *q;
	json_object *ret;
	char err[256];

	struct script sc_ERROR = { .mode = ERROR };
	fakeqmp_start(&sv, on_command, &sc_ERROR, 1);
	q = vmem_qmp_new(sv.path, 2000);
	ck_assert_int_eq(vmem_qmp_execute(q, "vmem-page-in", NULL, &ret, err,
					  sizeof(err)), -EREMOTEIO);
	ck_assert_ptr_null(ret);
	ck_assert_str_eq(err, "vmem-page-in: no such range");
	vmem_qmp_free(q);
	fakeqmp_stop(&sv);
}
END_TEST

START_TEST(silent_vm_times_out)
{
	struct fakeqmp sv = { 0 };
	struct vmem_qmp *q;
	char err[256];
	double t0, dt;

	struct script sc_SILENT = { .mode = SILENT };
	fakeqmp_start(&sv, on_command, &sc_SILENT, 1);
	q = vmem_qmp_new(sv.path, 300);
	t0 = now_s();
	ck_assert_int_eq(vmem_qmp_execute(q, "x", NULL, NULL, err, sizeof(err)),
			 -EIO);
	dt = now_s() - t0;
	ck_assert_msg(dt >= 0.29 && dt < 0.8, "timed out after %.3f s", dt);
	ck_assert_ptr_nonnull(strstr(err, "no reply within 300 ms"));
	printf("info: silent VM: EIO after %.3f s (timeout 0.3 s)\n", dt);
	vmem_qmp_free(q);	/* shuts the socket: the server sees EOF */
	fakeqmp_stop(&sv);
}
END_TEST

START_TEST(vm_gone_then_back)
{
	struct fakeqmp sv = { 0 };
	struct vmem_qmp *q;
	json_object *ret;
	char err[256];
	double t0, dt;

	/* QEMU drops the connection mid-command: EIO at once, not at timeout. */
	struct script sc_HANGUP = { .mode = HANGUP };
	fakeqmp_start(&sv, on_command, &sc_HANGUP, 1);
	q = vmem_qmp_new(sv.path, 5000);
	t0 = now_s();
	ck_assert_int_eq(vmem_qmp_execute(q, "x", NULL, NULL, err, sizeof(err)),
			 -EIO);
	dt = now_s() - t0;
	ck_assert_msg(dt < 1.0, "EIO after %.3f s", dt);
	ck_assert_ptr_nonnull(strstr(err, "connection to the VM lost"));
	fakeqmp_stop(&sv);

	/* Nobody listens: EIO at once. */
	t0 = now_s();
	ck_assert_int_eq(vmem_qmp_execute(q, "x", NULL, NULL, err, sizeof(err)),
			 -EIO);
	ck_assert(now_s() - t0 < 1.0);

	/* A new QEMU on the same socket is picked up. */
	memset(&sv, 0, sizeof(sv));
	struct script sc_ECHO = { .mode = ECHO };
	fakeqmp_start(&sv, on_command, &sc_ECHO, 1);
	usleep(150 * 1000);	/* past the reconnect hold-off */
	ck_assert_int_eq(vmem_qmp_execute(q, "x", args_n(5), &ret, err,
					  sizeof(err)), 0);
	ck_assert_int_eq(echoed_n(ret), 5);
	json_object_put(ret);
	ck_assert_uint_eq(vmem_qmp_connects(q), 2);
	vmem_qmp_free(q);
	fakeqmp_stop(&sv);
}
END_TEST

START_TEST(batch_is_pipelined)
{
	struct fakeqmp sv = { 0 };
	struct script sc = { .mode = REVERSE4 };
	json_object *args[4];
	struct vmem_qmp *q;
	char err[256];
	int i;

	/* REVERSE4 answers only once 4 commands have arrived: a client
	 * that waited for each reply before sending the next would hang. */
	fakeqmp_start(&sv, on_command, &sc, 1);
	q = vmem_qmp_new(sv.path, 2000);
	for (i = 0; i < 4; i++)
		args[i] = args_n(i);
	ck_assert_int_eq(vmem_qmp_execute_batch(q, "vmem-page-in", 4, args, err,
						sizeof(err)), 0);
	vmem_qmp_free(q);
	fakeqmp_stop(&sv);

	memset(&sv, 0, sizeof(sv));
	sc = (struct script){ .mode = ERROR };
	fakeqmp_start(&sv, on_command, &sc, 1);
	q = vmem_qmp_new(sv.path, 2000);
	for (i = 0; i < 3; i++)
		args[i] = args_n(i);
	ck_assert_int_eq(vmem_qmp_execute_batch(q, "vmem-page-in", 3, args, err,
						sizeof(err)), -EREMOTEIO);
	ck_assert_str_eq(err, "vmem-page-in: no such range");
	vmem_qmp_free(q);
	fakeqmp_stop(&sv);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("qmp");
	TCase *tc = vt_tcase_checked(s, "client", NULL, NULL, 20);

	tcase_add_test(tc, execute_returns_value);
	tcase_add_test(tc, out_of_order_replies_and_events);
	tcase_add_test(tc, qemu_error_is_reported);
	tcase_add_test(tc, silent_vm_times_out);
	tcase_add_test(tc, vm_gone_then_back);
	tcase_add_test(tc, batch_is_pipelined);
	return vt_run_suite(s);
}
