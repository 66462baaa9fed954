// SPDX-License-Identifier: MIT
/* A scripted QMP server for tests.  See fakeqmp.h. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fakeqmp.h"

static json_object *read_json(int fd, json_tokener *tok)
{
	char c;

	/* A byte at a time keeps a test server simple; speed is no issue. */
	while (recv(fd, &c, 1, 0) == 1) {
		json_object *o = json_tokener_parse_ex(tok, &c, 1);

		if (o) {
			json_tokener_reset(tok);
			return o;
		}
		if (json_tokener_get_error(tok) != json_tokener_continue)
			return NULL;
	}
	return NULL;
}

void fakeqmp_send(int fd, const char *text)
{
	ssize_t n = send(fd, text, strlen(text), MSG_NOSIGNAL);

	(void)n;	/* a client that left is the test's business */
}

static void send_obj(int fd, json_object *o)
{
	char *s;

	if (asprintf(&s, "%s\r\n", json_object_to_json_string(o)) > 0) {
		fakeqmp_send(fd, s);
		free(s);
	}
}

void fakeqmp_reply(int fd, json_object *cmd, json_object *ret)
{
	json_object *r = json_object_new_object(), *id;

	json_object_object_add(r, "return", ret ? ret : json_object_new_object());
	if (json_object_object_get_ex(cmd, "id", &id))
		json_object_object_add(r, "id", json_object_get(id));
	send_obj(fd, r);
	json_object_put(r);
}

void fakeqmp_error(int fd, json_object *cmd, const char *desc)
{
	json_object *r = json_object_new_object(), *e = json_object_new_object(),
		    *id;

	json_object_object_add(e, "class", json_object_new_string("GenericError"));
	json_object_object_add(e, "desc", json_object_new_string(desc));
	json_object_object_add(r, "error", e);
	if (json_object_object_get_ex(cmd, "id", &id))
		json_object_object_add(r, "id", json_object_get(id));
	send_obj(fd, r);
	json_object_put(r);
}

static void serve_conn(struct fakeqmp *s, int fd)
{
	json_tokener *tok = json_tokener_new();
	json_object *o;

	fakeqmp_send(fd, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
	o = read_json(fd, tok);
	if (o) {
		json_object_put(o);
		fakeqmp_send(fd, "{\"event\": \"EARLY\", \"data\": {}, "
			     "\"timestamp\": {}}\r\n");
		fakeqmp_send(fd, "{\"return\": {}, \"id\": \"caps\"}\r\n");
		while ((o = read_json(fd, tok)))
			if (!s->fn(s, fd, o, s->opaque))
				break;
	}
	json_tokener_free(tok);
	close(fd);
}

static void *server_main(void *arg)
{
	struct fakeqmp *s = arg;
	int i;

	for (i = 0; i < s->max_conns; i++) {
		int fd = accept(s->lfd, NULL, NULL);

		if (fd < 0)
			break;
		serve_conn(s, fd);
	}
	return NULL;
}

void fakeqmp_start(struct fakeqmp *s, fakeqmp_cmd_fn *fn, void *opaque,
		   int max_conns)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	s->fn = fn;
	s->opaque = opaque;
	s->max_conns = max_conns;
	if (!s->path[0])
		snprintf(s->path, sizeof(s->path), "/tmp/vmt-qmp-%d.sock", getpid());
	unlink(s->path);
	strcpy(sa.sun_path, s->path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(s->lfd, 0);
	ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(s->lfd, 4), 0);
	ck_assert_int_eq(pthread_create(&s->thr, NULL, server_main, s), 0);
}

void fakeqmp_stop(struct fakeqmp *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	close(s->lfd);
	unlink(s->path);
	pthread_join(s->thr, NULL);
}
