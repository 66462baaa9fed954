# vmemtrans: vmemfs daemon, tests, benchmarks.
#   make deps      install the Debian packages everything needs (root)
#   make           build build/vmemfs
#   make check     build and run every test, and what they need: the
#                  patched QEMU (scripts/build-qemu.sh) and the test guest
#                  (scripts/guest/build-guest.sh), each only when its
#                  inputs changed; a missing part is a failed test, never a
#                  skip.  Ends with "tests: N passed, N failed".
#   make check-quick    reduced run: every test program that boots no
#                  guest, plus the fuzz smoke runs; says so on its last line
#   make check SANITIZE=1   the same reduced run with everything built with
#                  ASan+UBSan into build-san/
#   make fuzz      run each libFuzzer harness (fuzz/) for FUZZ_SECONDS (60)
#   make bench     run the vmemfs speed benchmarks (prints ratios)
#   make bench-qemu     split-VM costs: guest reads, page-in throughput
#   make bench-compare  direct fetch vs VM remote paging on a real guest
#   make bench-proc     the paper's experiment: shadow /proc build per chunk size
#   make bench-kernel   kernel recognition, drgn and vmcore copies vs QEMU dumps
#   make bench-tls TLS to the sub-hosts against clear NBD: vmemfs reads,
#                  vmem-page-in, the handshake (scripts/bench-tls.sh)
#   make demo      boot the small test guest split across a sub-host in a
#                  network namespace, mount vmemfs on it and run ps aux,
#                  netstat -tan, lsmod (vmemfs-exec), kernel and
#                  makedumpfile --dump-dmesg of vmcore; removes everything
#                  on exit (scripts/demo.sh; builds QEMU and the guest
#                  first if needed; then a few seconds: 4 s on 2 CPUs)
#   make demo-file quick variant, no VM: a 256 MiB memory file and two
#                  nbdkit sub-hosts on loopback (scripts/demo-file.sh)
#   make install   PREFIX=/usr/local DESTDIR=
# Variables:
#   WERROR=0       build without -Werror (for packagers whose compiler
#                  warns about more); the default, used by CI and the
#                  tests, keeps -Werror
#   VMEM_QEMU=PATH run the guest tests and make demo against this patched
#                  QEMU instead of building build/qemu
#   FUZZ_CHECK_SECONDS=N  length of each fuzz run in make check (5)

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/vmemtrans
SYSTEMDDIR ?= /etc/systemd/system
LIBVIRTHOOKDIR ?= $(SYSCONFDIR)/libvirt/hooks

CC ?= gcc
CFLAGS ?= -O2 -g
WERROR ?= 1
VERSION := 0.1.0
PKGS := fuse3 libnbd json-c libbpf libvirt libvirt-qemu
WERROR_FLAG := $(if $(filter 1,$(WERROR)),-Werror)
override CFLAGS += -std=gnu11 -Wall -Wextra $(WERROR_FLAG) -D_GNU_SOURCE \
	-pthread -DVMEM_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS))
LIBS := $(shell pkg-config --libs $(PKGS)) -pthread
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

# SANITIZE=1: a build dir of its own, so sanitized and plain objects never
# mix (every rule below links with $(CFLAGS), so the flags reach the link).
ifeq ($(SANITIZE),1)
B := build-san
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
else
B := build
endif
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
# The programs that boot the test guest under the patched QEMU.
GUEST_TEST_BINS := $(patsubst tests/%.c,$(B)/tests/%,\
	$(wildcard tests/check_qemu_*.c))
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRCS))

DEPS_PKGS := build-essential pkg-config libfuse3-dev fuse3 libjson-c-dev \
	dpkg-dev meson ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev \
	gcc-multilib seabios cpio \
	check libnbd-dev libnbd-bin nbdkit iproute2 kmod gnuplot-nox \
	ca-certificates clang libclang-rt-14-dev
DEPS_PKGS += libbpf-dev bpftool xz-utils lz4 zstd file binutils
# The forensics tools the kernel tests open vmcore with.
DEPS_PKGS += python3-drgn crash makedumpfile
# The host tools the shadow /proc tests and make demo run on the guest.
DEPS_PKGS += procps net-tools
# The TLS tests capture the sub-hosts' traffic and make X.509
# certificates with certtool (tests/check_*tls.c).
DEPS_PKGS += tcpdump gnutls-bin
# VMs under libvirt: the client library, and libvirtd for the tests.
DEPS_PKGS += libvirt-dev libvirt-clients libvirt-daemon-system

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

# The TLS bench boots the test guest and starts nbdkit with the tests'
# helpers (scripts/bench-tls.sh).
$(B)/bench/tlsbench: bench/tlsbench.c $(CORE_OBJS) $(B)/obj/tests/lib/hosts.o \
		$(B)/obj/tests/lib/guest.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $(filter %.c %.o,$^) $(LIBS)

# ---- what the guest tests boot --------------------------------------
# The patched QEMU and the test guest always live in build/ (the scripts'
# place), also with SANITIZE=1.  Both scripts are idempotent and decide
# for themselves (build-qemu.sh hashes its inputs: the patches, common/,
# pager/ and itself); these stamps only spare make from asking them on
# every run.  A missing output forces a run even with a fresh stamp.
QEMU_BIN := build/qemu/qemu-system-x86_64
QEMU_INPUTS := scripts/build-qemu.sh \
	$(wildcard qemu-patches/*.patch common/*.[ch] pager/*.[ch])
GUEST_FILES := build/guest/vmlinuz build/guest/initramfs.cpio.gz
GUEST_INPUTS := scripts/guest/build-guest.sh scripts/guest/init \
	tests/guest/vmt-procs.c
missing = $(if $(filter-out $(wildcard $(1)),$(1)),FORCE)

build/stamp/guest: $(GUEST_INPUTS) $(call missing,$(GUEST_FILES))
	scripts/guest/build-guest.sh >/dev/null
	@mkdir -p $(dir $@) && touch $@

# After the guest: build-qemu.sh builds it too, and two at once would race.
build/stamp/qemu: $(QEMU_INPUTS) $(call missing,$(QEMU_BIN)) \
		| build/stamp/guest
	scripts/build-qemu.sh
	@mkdir -p $(dir $@) && touch $@

GUEST_PARTS := build/stamp/guest $(if $(VMEM_QEMU),,build/stamp/qemu)

# ---- fuzzing (fuzz/README.md) ---------------------------------------
# clang's libFuzzer with ASan+UBSan; objects of their own under $(B)/fuzz.
CLANG ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CHECK_SECONDS ?= 5
FZ := $(B)/fuzz
FUZZ_SAN := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -g -O1 -std=gnu11 -Wall -Wextra $(WERROR_FLAG) -D_GNU_SOURCE \
	-pthread $(shell pkg-config --cflags json-c)
FUZZ_BINS := $(FZ)/fuzz_config $(FZ)/fuzz_qmp

$(FZ)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) $(FUZZ_SAN) -MMD -MP -c -o $@ $<

$(FZ)/fuzz_config: $(FZ)/obj/fuzz/fuzz_config.o $(FZ)/obj/common/config.o \
	$(FZ)/obj/common/config_values.o
$(FZ)/fuzz_qmp: $(FZ)/obj/fuzz/fuzz_qmp.o $(FZ)/obj/vmemfs/qmp.o \
	$(FZ)/obj/vmemfs/log.o
$(FUZZ_BINS):
	$(CLANG) $(FUZZ_SAN) -o $@ $^ $(shell pkg-config --libs json-c) -pthread

# One bounded run per harness; in the test runs each counts as one test.
FUZZ_RUNS = $(foreach f,$(FUZZ_BINS),"fuzz/run.sh $(f) $(FUZZ_CHECK_SECONDS)")

fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do fuzz/run.sh $$f $(FUZZ_SECONDS) || exit 1; done

# ---- test runs --------------------------------------------------------
RUN_TESTS = VMEMFS=$(CURDIR)/$(B)/vmemfs \
	$(if $(VMEM_QEMU),VMEM_QEMU=$(VMEM_QEMU)) tests/run-tests.sh
QUICK_TEST_BINS = $(filter-out $(GUEST_TEST_BINS),$(TEST_BINS))
QUICK_NOTE := reduced run: guest tests not run

ifeq ($(SANITIZE),1)
# The unit and mount tests; the guest tests would run an unsanitized QEMU
# for minutes and add nothing the mount tests do not cover of vmemfs.
# Reports go to files, so that one from a daemon (whose exit status a test
# may not check) still fails the run.  tests/asan.supp says why its one
# suppression is a false positive.
SAN_LOGS := $(CURDIR)/$(B)/sanitizer-logs
check: all tests $(FUZZ_BINS)
	rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	ASAN_OPTIONS=log_path=$(SAN_LOGS)/asan:suppressions=$(CURDIR)/tests/asan.supp \
	UBSAN_OPTIONS=log_path=$(SAN_LOGS)/ubsan:print_stacktrace=1 \
	$(RUN_TESTS) --label "check SANITIZE=1" --note "ASan+UBSan; \
	$(QUICK_NOTE)" --sanitizer-logs $(SAN_LOGS) $(QUICK_TEST_BINS) \
	--plain $(FUZZ_RUNS)
else
check: all tests $(GUEST_PARTS) $(FUZZ_BINS)
	$(RUN_TESTS) $(TEST_BINS) --plain $(FUZZ_RUNS)
endif

check-quick: all tests $(FUZZ_BINS)
	$(RUN_TESTS) --label check-quick --note "$(QUICK_NOTE)" \
		$(QUICK_TEST_BINS) --plain $(FUZZ_RUNS)

bench: all $(BENCH_BINS)
	scripts/bench.sh

bench-qemu: all
	scripts/bench-qemu.sh

bench-libvirt: all $(B)/bench/ids_reader $(GUEST_PARTS)
	scripts/bench-libvirt.sh

bench-compare: all $(B)/bench/ids_reader $(GUEST_PARTS)
	scripts/bench-compare.sh

bench-kernel: all
	scripts/bench-kernel.sh

bench-proc: all $(GUEST_PARTS)
	scripts/bench-proc.sh

bench-tls: all $(B)/bench/tlsbench $(GUEST_PARTS)
	scripts/bench-tls.sh

# The demo's split VM: the guest tests' helpers, without Check.
DEMO_HELPER_OBJS := $(patsubst %.c,$(B)/obj/%.o,tests/lib/hosts.c \
	tests/lib/guest.c tests/lib/splitvm.c)

$(B)/demo/demo-vm: scripts/demo/demo-vm.c $(DEMO_HELPER_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $(filter %.c %.o,$^) $(LIBS)

demo: all $(B)/demo/demo-vm $(GUEST_PARTS)
	DEMO_BUILD=$(CURDIR)/$(B) $(if $(VMEM_QEMU),VMEM_QEMU=$(VMEM_QEMU)) \
		scripts/demo.sh

demo-file: all
	VMEMFS=$(CURDIR)/$(B)/vmemfs scripts/demo-file.sh

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
	# libvirt domains (vmemfs(8), LIBVIRT): the hook, the unit, an example.
	install -D -m 0644 scripts/libvirt/vmem-split-domain.xml \
		$(DESTDIR)$(DOCDIR)/examples/vmem-split-domain.xml
	install -d $(DESTDIR)$(LIBVIRTHOOKDIR)
	@h=$(DESTDIR)$(LIBVIRTHOOKDIR)/qemu; \
	if [ -e $$h ] && ! cmp -s $$h scripts/libvirt/qemu-hook; then \
		echo "install: $$h exists: installing ours as $$h.vmemtrans"; \
		h=$$h.vmemtrans; fi; \
	install -m 0755 scripts/libvirt/qemu-hook $$h
	install -d $(DESTDIR)$(SYSTEMDDIR)
	sed 's|@SBINDIR@|$(SBINDIR)|g' 'scripts/libvirt/vmemfs@.service' \
		> '$(DESTDIR)$(SYSTEMDDIR)/vmemfs@.service'

clean:
	rm -rf build build-san

FORCE:

.PHONY: all tests check check-quick fuzz bench bench-qemu bench-compare \
	bench-kernel bench-proc bench-tls bench-libvirt demo demo-file deps install clean FORCE
# Test helpers are shared by every test program: keep them between runs.
.SECONDARY: $(TEST_HELPER_OBJS)
-include $(wildcard $(B)/obj/*/*.d $(B)/obj/tests/lib/*.d $(B)/tests/*.d \
	$(B)/bench/*.d $(B)/demo/*.d $(FZ)/obj/*/*.d)
include pager/pager.mk
