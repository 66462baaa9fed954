/* SPDX-License-Identifier: MIT */
/*
 * Everything read from the guest is hostile.  The checks every module
 * needs live here, in one place: canonical addresses, kernel-half
 * pointers, capped lengths, deadlines, and bounded, cycle-checked walks
 * of the kernel's linked lists.
 */
#ifndef VMI_GUARD_H
#define VMI_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* x86-64 kernel image mapping (__START_KERNEL_map). */
#define VMI_KERNEL_MAP		0xffffffff80000000ULL
/* Upper bound of any kernel image (KERNEL_IMAGE_SIZE is at most 1 GiB). */
#define VMI_KERNEL_IMAGE_MAX	(1ULL << 30)

/* Canonical for 4-level (48-bit) or 5-level (57-bit) paging. */
bool vmi_canonical(uint64_t va, int levels);
/* Canonical and in the upper (kernel) half. */
bool vmi_kernel_half(uint64_t va, int levels);

/* a + b without wrapping past UINT64_MAX: false when it would. */
static inline bool vmi_add_ok(uint64_t a, uint64_t b, uint64_t *sum)
{
	return !__builtin_add_overflow(a, b, sum);
}

/* Monotonic milliseconds, and a deadline that 0 ms means "none". */
uint64_t vmi_now_ms(void);
struct vmi_deadline {
	uint64_t at_ms;		/* 0: no deadline */
};
void vmi_deadline_set(struct vmi_deadline *d, uint64_t timeout_ms);
bool vmi_deadline_passed(const struct vmi_deadline *d);

/* Printf into err (err may be NULL), returns -@errnum for one-line use. */
int vmi_err(char *err, size_t errlen, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * What a collector (modules.c, sockets.c) says about guest data it cut:
 * counts it in *@cut, and gives the message to @log(@logctx, msg), or
 * without @log prints "vmemfs: @who: msg" on stderr.  Cut at 511 bytes.
 */
typedef void (*vmi_log_fn)(void *ctx, const char *msg);
void vmi_cut_log(unsigned int *cut, vmi_log_fn log, void *logctx,
		 const char *who, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/*
 * A bounded, cycle-checked walk of a circular `struct list_head` list.
 * @read reads @len bytes of kernel virtual memory (0 or -errno).
 * Starting at the list head @head (a kernel virtual address), calls
 * @visit with each entry's list_head address (not the head itself) until
 * the list comes back to @head.  Stops with -ELOOP when more than @max
 * entries are seen or a cycle that does not pass through @head is found
 * (Brent's algorithm), -EFAULT on a non-canonical or user-half pointer,
 * or @visit's nonzero return.  Returns the number of entries visited.
 */
typedef int (*vmi_kread_fn)(void *ctx, uint64_t va, void *buf, size_t len);
long vmi_walk_list(vmi_kread_fn read, void *ctx, uint64_t head, int levels,
		   unsigned long max,
		   int (*visit)(void *arg, uint64_t entry), void *arg);

/*
 * vmi_walk_list() that also checks, before @visit sees an entry, that
 * the entry's prev (the list_head's second word) is the entry before it
 * (the head for the first), as list_add() and list_del() leave a list:
 * a list bent into a cycle or onto a stray entry stops at the first wrong
 * entry, before any entry is visited twice.  On a wrong prev, -ELOOP;
 * on an unreadable one, the read's error; either way *@bad (when not
 * NULL) says which entry, the prev found (0 if unreadable) and the one
 * expected, for the caller's message.  bad->entry stays 0 when the walk
 * stopped for another reason.
 */
struct vmi_list_bad {
	uint64_t entry, prev, want;
};
long vmi_walk_list_linked(vmi_kread_fn read, void *ctx, uint64_t head,
			  int levels, unsigned long max,
			  int (*visit)(void *arg, uint64_t entry), void *arg,
			  struct vmi_list_bad *bad);

/*
 * Read a NUL-terminated string of at most @max - 1 bytes at kernel
 * virtual @va into @buf (always terminated).  Returns its length, or
 * -errno; -ENAMETOOLONG when no NUL is found within @max - 1 bytes.
 */
long vmi_read_cstr(vmi_kread_fn read, void *ctx, uint64_t va, char *buf,
		   size_t max);

#endif
