#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Split migration against plain QEMU migration to one big destination and
# against the naive way (a stock migration into a split destination whose
# pager evicts what does not fit), same guest, workload and bandwidth
# limit, in one run: total time, downtime, bytes to each host, the main
# host's peak memory, the guest's hot and cold re-read times afterwards.
# The work is done by build/pager/bench_migrate
# (pager/bench/bench_migrate.c); this script builds what it needs, bounds
# the run and cleans up.
#
#   scripts/bench-migrate.sh [-b MiB/s]
#
# The table goes to stdout and to build/bench-migrate.txt.  Needs root
# (network namespace, userfaultfd), nbdkit, and about 1.5 GiB free in
# /dev/shm.  Takes about two minutes; killed after BENCH_MIGRATE_TIMEOUT
# seconds (600).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TIMEOUT=${BENCH_MIGRATE_TIMEOUT:-600}
BIN=build/pager/bench_migrate
OUT=build/bench-migrate.txt
pid=

cleanup() {
	local rc=$?
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		# It stops QEMU and nbdkit and removes its files on SIGTERM.
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if [ -n "$pid" ]; then
		# What a SIGKILLed run may leave, all named after its PID.
		if ip netns list 2>/dev/null | grep -qw "vmt-bm-$pid"; then
			for p in $(ip netns pids "vmt-bm-$pid" 2>/dev/null); do
				kill -KILL "$p" 2>/dev/null || true
			done
			ip netns delete "vmt-bm-$pid" 2>/dev/null || true
		fi
		rm -f "/dev/shm/vmt-bench-migrate-$pid.mem" \
		      "/dev/shm/vmt-bench-migrate-dst-$pid.mem" \
		      "/dev/shm/vmt-bench-migrate-dst-$pid.mem.seq"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" -eq 0 ] || { echo "bench-migrate: needs root" >&2; exit 1; }
# Both are idempotent: seconds when nothing changed.
scripts/build-qemu.sh >&2
scripts/guest/build-guest.sh >&2
make -s "$BIN" >&2

"$BIN" "$@" >"$OUT.new" &
pid=$!
deadline=$((SECONDS + TIMEOUT))
while kill -0 "$pid" 2>/dev/null; do
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "bench-migrate: no result after ${TIMEOUT} s; stopping" >&2
		exit 1
	fi
	sleep 1
done
wait "$pid" || { cat "$OUT.new"; echo "bench-migrate: bench_migrate failed" >&2; exit 1; }
mv "$OUT.new" "$OUT"
cat "$OUT"
