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
# The table goes to stdout and to build/bench-migrate.txt, a plot of its
# medians to doc/migrate-bench.png (MIGRATE_PNG).  Needs root
# (network namespace, userfaultfd), nbdkit, and about 1.5 GiB free in
# /dev/shm.  Takes about two minutes; killed after BENCH_MIGRATE_TIMEOUT
# seconds (600).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BENCH_NAME=bench-migrate
# shellcheck source=lib/runbench.sh
. scripts/lib/runbench.sh
TIMEOUT=${BENCH_MIGRATE_TIMEOUT:-600}
BIN=build/pager/bench_migrate
OUT=build/bench-migrate.txt
PNG=${MIGRATE_PNG:-doc/migrate-bench.png}

cleanup() {
	local rc=$?
	local pid=$RUNBENCH_PID
	runbench_stop
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

: >"$OUT.new"
runbench "$TIMEOUT" "$OUT.new" "$BIN" "$@" || { cat "$OUT.new"; echo "bench-migrate: bench_migrate failed" >&2; exit 1; }
mv "$OUT.new" "$OUT"
cat "$OUT"

# The plot: the medians the table shows, from its "dat:" lines.
dat=build/bench-migrate.dat
sed -n 's/^dat: //p' "$OUT" >"$dat"
if [ -s "$dat" ] && command -v gnuplot >/dev/null; then
	if gnuplot -e 'set terminal pngcairo' -e 'exit' 2>/dev/null; then
		term="pngcairo size 1400,400 font 'sans,10'"
	else
		term="png size 1400,400"
	fi
	gnuplot <<GP
set terminal $term
set output '$PNG'
set multiplot layout 1,4 title "Moving a 512 MiB TCG guest onto a destination with local-limit 256M (medians)"
set style data histograms
set style fill solid 0.7 border -1
set boxwidth 0.7
set grid ytics
set yrange [0:*]
set key off
set ylabel 'ms'
set title '(a) total migration time'
plot '$dat' using 2:xtic(1) lc rgb '#4477aa'
set title '(b) downtime'
plot '$dat' using 3:xtic(1) lc rgb '#66ccee'
set ylabel 'MiB'
set title '(c) main-host peak memory'
plot '$dat' using 6:xtic(1) lc rgb '#228833'
set ylabel 'ms'
set key top left
set title '(d) re-read after migration'
plot '$dat' using 7:xtic(1) title 'hot 16 MiB' lc rgb '#ccbb44', \
     '' using 8 title 'cold 96 MiB' lc rgb '#ee6677'
unset multiplot
GP
	echo "bench-migrate: plot in $PNG" >&2
fi
