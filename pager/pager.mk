# pager/pager.mk: the userfaultfd remote pager library (issue 3) and its
# test.  Included at the END of the top Makefile (it uses B, CC, CFLAGS,
# CHECK_LIBS and adds to all/tests/TEST_BINS; the check recipe expands
# TEST_BINS late, so appending here is enough).
#
# The test is tests/check_pager.c, beside the others (the top Makefile
# lists it in TEST_BINS); this explicit rule, which links the pager and
# the tests' shared helpers, takes precedence over the generic
# tests/check_% pattern rule, which links vmemfs instead.

# Objects have their own directory and rules so that this file does not
# depend on how the top Makefile lays out its objects.  Every pager/*.c
# is part of the library (pager.c, datamap.c, uffd.c, evict.c, fault.c,
# pagein.c, trim.c, ctl.c, remote.c; see README.md), as QEMU's build
# takes them all too.
PAGER_SRCS := $(wildcard pager/*.c)
PAGER_OBJDIR := $(B)/pager/obj
PAGER_OBJS := $(patsubst pager/%.c,$(PAGER_OBJDIR)/%.o,$(PAGER_SRCS)) \
	$(PAGER_OBJDIR)/config.o $(PAGER_OBJDIR)/config_values.o \
	$(PAGER_OBJDIR)/nbdconn.o
PAGER_LIB := $(B)/libvmempager.a
PAGER_LIBS := $(shell pkg-config --libs libnbd) -pthread
PAGER_TEST := $(B)/tests/check_pager
PAGER_BENCH := $(B)/pager/bench_pager

$(PAGER_OBJDIR)/%.o: pager/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(PAGER_OBJDIR)/config.o: common/config.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(PAGER_OBJDIR)/config_values.o: common/config_values.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(PAGER_OBJDIR)/nbdconn.o: common/nbdconn.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(PAGER_LIB): $(PAGER_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

# The test injects clock, cachestat and poll faults by wrapping those
# calls (see the top of check_pager.c); the library itself is unchanged.
PAGER_TEST_WRAP := -Wl,--wrap=clock_gettime -Wl,--wrap=syscall \
	-Wl,--wrap=poll

$(PAGER_TEST): tests/check_pager.c $(PAGER_LIB) $(TEST_HELPER_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(TEST_HELPER_OBJS) $(PAGER_LIB) \
		$(LIBS) $(CHECK_LIBS) $(PAGER_TEST_WRAP)

# Split migration's library (plan.c, migsend.c, incoming.c): its test
# links the pager library too, not vmemfs.
$(B)/tests/check_plan: tests/check_plan.c $(PAGER_LIB) $(TEST_HELPER_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(TEST_HELPER_OBJS) $(PAGER_LIB) \
		$(LIBS) $(CHECK_LIBS)

$(PAGER_BENCH): pager/bench/bench_pager.c $(PAGER_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(PAGER_LIB) $(PAGER_LIBS)

# The split-VM benchmark (scripts/bench-qemu.sh builds and runs it): it
# boots the test guest under the patched QEMU with the tests' own drivers.
PAGER_BENCH_QEMU := $(B)/pager/bench_qemu
BENCH_QEMU_SRCS := pager/bench/bench_qemu.c tests/lib/guest.c tests/lib/hosts.c

$(PAGER_BENCH_QEMU): $(BENCH_QEMU_SRCS) tests/lib/guest.h tests/lib/hosts.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(BENCH_QEMU_SRCS) $(PAGER_LIBS)

# Split migration against plain and naive migration
# (scripts/bench-migrate.sh builds and runs it).
PAGER_BENCH_MIGRATE := $(B)/pager/bench_migrate
BENCH_MIGRATE_SRCS := pager/bench/bench_migrate.c tests/lib/guest.c \
	tests/lib/hosts.c tests/lib/datamap.c

$(PAGER_BENCH_MIGRATE): $(BENCH_MIGRATE_SRCS) tests/lib/guest.h \
		tests/lib/hosts.h tests/lib/datamap.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(BENCH_MIGRATE_SRCS) $(PAGER_LIBS) -ljson-c

all: $(PAGER_LIB)
tests: $(PAGER_TEST)

# Page-in throughput and per-fault latency (needs nbdkit); not a test.
bench-pager: $(PAGER_BENCH)
	$(PAGER_BENCH)

# Split migration against plain and naive migration (needs root, nbdkit;
# builds QEMU and the guest; about two minutes).  Not a test.
bench-migrate: all
	scripts/bench-migrate.sh

.PHONY: bench-pager bench-migrate
-include $(wildcard $(PAGER_OBJDIR)/*.d $(B)/pager/*.d)
