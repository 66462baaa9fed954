/* SPDX-License-Identifier: MIT */
/*
 * A scripted QMP server on a unix socket for tests: it sends the greeting,
 * answers qmp_capabilities (with an event before the reply, to keep
 * clients honest), and hands every later command to a callback.
 */
#ifndef TESTS_FAKEQMP_H
#define TESTS_FAKEQMP_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>

struct fakeqmp;

/*
 * Called on the server thread for each command; @cmd is owned by the
 * callback.  Return false to hang up the connection.
 */
typedef bool fakeqmp_cmd_fn(struct fakeqmp *s, int fd, json_object *cmd,
			    void *opaque);

struct fakeqmp {
	char path[108];
	int lfd;
	int max_conns;
	fakeqmp_cmd_fn *fn;
	void *opaque;
	pthread_t thr;
};

/* Listen on @s->path (a per-PID default if empty) and serve @max_conns
 * connections one after the other. */
void fakeqmp_start(struct fakeqmp *s, fakeqmp_cmd_fn *fn, void *opaque,
		   int max_conns);
/* Stop listening and wait for the server thread (its connection must end). */
void fakeqmp_stop(struct fakeqmp *s);

void fakeqmp_send(int fd, const char *text);
/* {"return": @ret (taken; NULL = {}), "id": <cmd's id>} */
void fakeqmp_reply(int fd, json_object *cmd, json_object *ret);
/* {"error": {"class": "GenericError", "desc": @desc}, "id": ...} */
void fakeqmp_error(int fd, json_object *cmd, const char *desc);

#endif
