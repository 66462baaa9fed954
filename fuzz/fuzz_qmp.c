// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the QMP stream parser (vmemfs/qmp.c,
 * vmem_qmp_feed): any bytes as what QEMU's monitor socket sent.  QEMU is
 * not trusted: garbage, deep nesting, huge numbers, replies with strange
 * ids and events with strange data must be taken or refused, never crash,
 * leak or hit undefined behaviour (the build adds ASan and UBSan).
 *
 * Input: the first byte sets the size of the pieces the rest is fed in
 * (1..256 bytes), as recv() may cut the stream anywhere.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../vmemfs/qmp.h"

static size_t seen;

/* Look at what an event hands over, as a real callback would. */
static void on_event(void *opaque, const char *event, json_object *data)
{
	(void)opaque;
	seen += strlen(event);
	if (data)
		seen += strlen(json_object_to_json_string(data));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vmem_qmp *q;
	json_tokener *tok;
	size_t piece, off, msg = 0;
	const char *why = NULL;

	if (!q) {
		/* Never connects: only the parser and dispatcher run. */
		q = vmem_qmp_new("/nonexistent/fuzz-qmp.sock", 1000);
		if (!q)
			abort();
		vmem_qmp_set_event_cb(q, on_event, NULL);
	}
	if (size < 1)
		return 0;
	piece = (size_t)data[0] + 1;
	tok = json_tokener_new();
	if (!tok)
		return 0;
	for (off = 1; off < size; off += piece) {
		size_t n = size - off < piece ? size - off : piece;

		if (vmem_qmp_feed(q, tok, &msg, (const char *)data + off, n,
				  &why) < 0)
			break;	/* the reader would drop the connection */
	}
	json_tokener_free(tok);
	return 0;
}
