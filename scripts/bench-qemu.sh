#!/bin/bash
# SPDX-License-Identifier: MIT
#
# What remote paging costs a split VM, measured under the patched QEMU:
#   (a) the guest reads a 128 MiB file all local, half on the sub-host,
#       all on the sub-host (ratios to all local);
#   (b) vmem-page-in throughput (1 MiB chunk) against raw libnbd reads of
#       the same 256 MiB from the same sub-host (target: >= 0.5x).
# The work is done by build/pager/bench_qemu (pager/bench/bench_qemu.c);
# this script builds what it needs, bounds the run and cleans up.
#
#   scripts/bench-qemu.sh [-r REPS] [-m FILE_MIB]
#
# The table goes to stdout and to build/bench-qemu.txt.  Needs root (network
# namespace, userfaultfd), nbdkit, and about 1.5 GiB free in /dev/shm.  Takes
# about a minute; it is killed after BENCH_QEMU_TIMEOUT seconds (280).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BENCH_NAME=bench-qemu
# shellcheck source=lib/runbench.sh
. scripts/lib/runbench.sh
TIMEOUT=${BENCH_QEMU_TIMEOUT:-280}
BIN=build/pager/bench_qemu
OUT=build/bench-qemu.txt

cleanup() {
	local rc=$?
	local pid=$RUNBENCH_PID
	runbench_stop
	if [ -n "$pid" ]; then
		# What a SIGKILLed run may leave, all named after its PID.
		if ip netns list 2>/dev/null | grep -qw "vmt-bq-$pid"; then
			for p in $(ip netns pids "vmt-bq-$pid" 2>/dev/null); do
				kill -KILL "$p" 2>/dev/null || true
			done
			ip netns delete "vmt-bq-$pid" 2>/dev/null || true
		fi
		rm -f "/dev/shm/vmt-bq-$pid.mem" "/dev/shm/vmt-bq-$pid.mem.seq" \
			"/dev/shm/vmt-bq-$pid.mem.ctl"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" -eq 0 ] || { echo "bench-qemu: needs root" >&2; exit 1; }
# Both are idempotent: seconds when nothing changed.
scripts/build-qemu.sh >&2
scripts/guest/build-guest.sh >&2
make -s "$BIN" >&2

: >"$OUT.new"
runbench "$TIMEOUT" "$OUT.new" "$BIN" "$@" || { echo "bench-qemu: bench_qemu failed" >&2; exit 1; }
mv "$OUT.new" "$OUT"
cat "$OUT"
