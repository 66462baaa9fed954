# vmemtrans: vmemfs daemon, tests, benchmarks.
#   make deps      install the Debian packages everything needs (root)
#   make           build build/vmemfs
#   make check     build and run every test
#   make bench     run the vmemfs speed benchmarks (prints ratios)
#   make bench-qemu     split-VM costs: guest reads, page-in throughput
#   make bench-compare  direct fetch vs VM remote paging on a real guest
#   make bench-kernel   kernel recognition, drgn and vmcore copies vs QEMU dumps
#   make demo      mount a demo VM memory and look at it
#   make install   PREFIX=/usr/local DESTDIR=

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/vmemtrans

CC ?= gcc
CFLAGS ?= -O2 -g
VERSION := 0.1.0
PKGS := fuse3 libnbd json-c libbpf
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread \
	-DVMEM_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS))
LIBS := $(shell pkg-config --libs $(PKGS)) -pthread
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

B := build
COMMON_SRCS := $(wildcard common/*.c)
VMEMFS_SRCS := $(filter-out vmemfs/main.c,$(wildcard vmemfs/*.c))
# The guest-kernel library (no FUSE, QMP or NBD in it): linked into
# vmemfs, the tests and the tool vmemfs-kernel.
INTROSPECT_SRCS := $(wildcard introspect/*.c)
INTROSPECT_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(INTROSPECT_SRCS))
# The shadow /proc: snapshots and their formatters (no FUSE in it).
PROCFS_SRCS := $(wildcard procfs/*.c)
CORE_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(COMMON_SRCS) $(VMEMFS_SRCS)) \
	$(INTROSPECT_OBJS) $(patsubst %.c,$(B)/obj/%.o,$(PROCFS_SRCS))
TEST_SRCS := $(wildcard tests/check_*.c)
TEST_BINS := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRCS))
TEST_HELPER_SRCS := $(wildcard tests/lib/*.c)
TEST_HELPER_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(TEST_HELPER_SRCS))
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRCS))

DEPS_PKGS := build-essential pkg-config libfuse3-dev fuse3 libjson-c-dev \
	dpkg-dev meson ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev \
	gcc-multilib seabios cpio \
	check libnbd-dev libnbd-bin nbdkit iproute2 kmod gnuplot-nox \
	ca-certificates
DEPS_PKGS += libbpf-dev bpftool xz-utils lz4 zstd file binutils
# The forensics tools the kernel tests open vmcore with.
DEPS_PKGS += python3-drgn crash makedumpfile

all: $(B)/vmemfs

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/vmemfs: $(B)/obj/vmemfs/main.o $(CORE_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

all: $(B)/vmemfs-kernel $(B)/vmemfs-exec

$(B)/vmemfs-exec: $(B)/obj/tools/vmemfs-exec.o
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

$(B)/vmemfs-kernel: $(B)/obj/tools/vmemfs-kernel.o $(INTROSPECT_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/%: tests/%.c $(CORE_OBJS) $(TEST_HELPER_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $(filter %.c %.o,$^) $(LIBS) $(CHECK_LIBS)

$(B)/bench/%: bench/%.c $(CORE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $(filter %.c %.o,$^) $(LIBS)

tests: $(TEST_BINS)

check: all tests
	VMEMFS=$(CURDIR)/$(B)/vmemfs tests/run-tests.sh $(TEST_BINS)

bench: all $(BENCH_BINS)
	scripts/bench.sh

bench-qemu: all
	scripts/bench-qemu.sh

bench-compare: all $(B)/bench/ids_reader
	scripts/bench-compare.sh

bench-kernel: all
	scripts/bench-kernel.sh

demo: all
	scripts/demo.sh

deps:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEPS_PKGS)

install: all
	install -D -m 0755 $(B)/vmemfs $(DESTDIR)$(SBINDIR)/vmemfs
	install -D -m 0755 $(B)/vmemfs-kernel $(DESTDIR)$(SBINDIR)/vmemfs-kernel
	install -D -m 0644 doc/vmemfs-kernel.8 $(DESTDIR)$(MANDIR)/man8/vmemfs-kernel.8
	install -D -m 0755 $(B)/vmemfs-exec $(DESTDIR)$(SBINDIR)/vmemfs-exec
	install -D -m 0644 doc/vmemfs-exec.8 $(DESTDIR)$(MANDIR)/man8/vmemfs-exec.8
	install -D -m 0644 vmemtrans.conf $(DESTDIR)$(DOCDIR)/examples/vmemtrans.conf
	install -D -m 0644 doc/vmemfs.8 $(DESTDIR)$(MANDIR)/man8/vmemfs.8
	install -D -m 0644 doc/vmemtrans.conf.5 $(DESTDIR)$(MANDIR)/man5/vmemtrans.conf.5

clean:
	rm -rf $(B)

.PHONY: all tests check bench bench-qemu bench-compare bench-kernel demo deps \
	install clean
# Test helpers are shared by every test program: keep them between runs.
.SECONDARY: $(TEST_HELPER_OBJS)
-include $(wildcard $(B)/obj/*/*.d $(B)/obj/tests/lib/*.d $(B)/tests/*.d \
	$(B)/bench/*.d)
include pager/pager.mk
