#!/bin/bash
# SPDX-License-Identifier: MIT
#
# scripts/bench.sh - the speed benchmark of vmemfs (issue 2, "Speed").
#
# Sets up everything it measures and tears it down again, also on error
# or Ctrl-C:
#   - a 1 GiB sparse memory file in /dev/shm, [0, 512M) data, [512M, 1G)
#     a hole;
#   - `nbdkit memory 1G` on a free loopback port holding [512M, 1G), the
#     sub-host;
#   - vmemfs mounted three times on that memory file, no cache: chunk-size
#     64K (local and sequential remote), 4K (remote 4 KiB latency, so that
#     vmemfs fetches exactly the bytes raw libnbd fetches) and 1M (for
#     information: sequential remote with one chunk per 1 MiB read; with
#     64K chunks a 1 MiB read is one request too, of sixteen chunks);
#   - bench/refdaemon, the minimal libfuse daemon, serving the same file.
# It checks that each mount serves the right bytes, then runs every
# measurement RUNS times, the two sides of each ratio back to back, and
# prints a table of ratios.  Everything is measured in this one run.
#
# Where the processes run matters more than anything vmemfs does: on a
# small VM a wake-up across CPUs can cost more than a whole FUSE round
# trip, and where the scheduler happens to put the client and the daemon
# would otherwise decide the latency ratios.  So the bench pins them, and
# by default measures two placements, one table each:
#   split  the main host (measuring client, vmemfs, refdaemon) on one CPU,
#          the sub-host (nbdkit) on another, as if it were another machine
#   one    everything on one CPU: the steadiest numbers, but loopback NBD
#          is then cheaper than any real network
#   none   no pinning
#
# Environment knobs (defaults in brackets):
#   BENCH_CPUS ["split one"]  placements to measure, in that order
#   BENCH_RUNS [5]      rounds per placement (after one warm-up round)
#   BENCH_MINSEC [0.5]  minimum seconds of each sequential run
#   BENCH_NLOCAL [30000] BENCH_NREMOTE [6000]  reads per latency run
#   BENCH_MAXSEC [3]    a latency run stops after this long even if short
#                       of its count (a slow daemon cannot stall the bench)
#   BENCH_HOLD=1        set up, check, print the mount points, then wait
#                       for Ctrl-C/SIGTERM instead of measuring (to look at
#                       the daemons with perf, strace, -d by hand)
#   BENCH_OUT [build/bench-results.txt]  where the tables are also written
#   VMEMFS [build/vmemfs]
#
# Output: the tables on stdout and in BENCH_OUT; every raw result line in
# build/bench-raw-PLACEMENT.txt.  See bench/README.md for how to read them.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build
VMEMFS=${VMEMFS:-$B/vmemfs}
MEMREAD=$B/bench/memread
REFD=$B/bench/refdaemon
RUNS=${BENCH_RUNS:-5}
MINSEC=${BENCH_MINSEC:-0.5}
NLOCAL=${BENCH_NLOCAL:-30000}
NREMOTE=${BENCH_NREMOTE:-6000}
MAXSEC=${BENCH_MAXSEC:-3}
OUT=${BENCH_OUT:-$B/bench-results.txt}
PLACEMENTS=${BENCH_CPUS:-split one}

SEED_LOCAL=1111
SEED_REMOTE=2222

die() { echo "bench: $*" >&2; exit 1; }

for f in "$VMEMFS" "$MEMREAD" "$REFD"; do
	[ -x "$f" ] || die "$f missing: run 'make bench' (or make $f)"
done
for c in nbdkit nbdinfo taskset ss; do
	command -v "$c" >/dev/null || die "$c not installed (make deps)"
done
[ -w /dev/fuse ] || die "/dev/fuse not usable (need root and the fuse module)"
NCPU=$(nproc)
for p in $PLACEMENTS; do
	case $p in
	split | one | none) ;;
	*) die "BENCH_CPUS: '$p' is not split, one or none" ;;
	esac
done

WORK=$(mktemp -d /tmp/vmemfs-bench.XXXXXX)
MEMFILE=/dev/shm/vmt-bench-$$.mem
NBD_PID=
declare -A MNT_PID=()	# mountpoint -> daemon pid

is_mounted() { grep -qs " $1 fuse" /proc/self/mounts; }

cleanup() {
	local rc=$? m pid i
	trap - EXIT INT TERM
	for m in "${!MNT_PID[@]}"; do
		kill -TERM "${MNT_PID[$m]}" 2>/dev/null || true
	done
	for m in "${!MNT_PID[@]}"; do
		pid=${MNT_PID[$m]}
		for i in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "bench: daemon $pid on $m ignored SIGTERM," \
			     "killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
		if is_mounted "$m"; then
			echo "bench: $m still mounted after its daemon" \
			     "exited, unmounting" >&2
			fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" ||
				true
		fi
	done
	if [ -n "$NBD_PID" ]; then
		kill -TERM "$NBD_PID" 2>/dev/null || true
		wait "$NBD_PID" 2>/dev/null || true
	fi
	rm -f "$MEMFILE"
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port nothing listens on; nbdkit may still lose a race for it, which
# start_nbdkit notices and retries.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		[ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] && break
	done
	echo "$p"
}

start_nbdkit() {
	local try i
	for try in 1 2 3 4 5; do
		PORT=$(free_port)
		URI=nbd://127.0.0.1:$PORT
		nbdkit -f --exit-with-parent -i 127.0.0.1 -p "$PORT" \
			memory 1G >"$WORK/nbdkit.log" 2>&1 &
		NBD_PID=$!
		for i in $(seq 50); do
			kill -0 "$NBD_PID" 2>/dev/null || break
			if nbdinfo --size "$URI" >/dev/null 2>&1; then
				return 0
			fi
			sleep 0.1
		done
		kill -TERM "$NBD_PID" 2>/dev/null || true
		wait "$NBD_PID" 2>/dev/null || true
		NBD_PID=
	done
	cat "$WORK/nbdkit.log" >&2
	die "could not start nbdkit"
}

# wait_mount MOUNTPOINT PID LOG: until MOUNTPOINT/mem has size 1 GiB.
wait_mount() {
	local m=$1 pid=$2 log=$3 i
	for i in $(seq 100); do
		if [ "$(stat -c %s "$m/mem" 2>/dev/null)" = 1073741824 ]; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			cat "$log" >&2
			die "daemon for $m exited before mounting"
		fi
		sleep 0.1
	done
	cat "$log" >&2
	die "$m/mem did not appear within 10 s"
}

mount_vmemfs() {
	local vm=$1 m=$WORK/$1
	mkdir -p "$m"
	"$VMEMFS" -c "$WORK/bench.conf" --vm "$vm" -f "$m" \
		>"$WORK/$vm.log" 2>&1 &
	MNT_PID[$m]=$!
	wait_mount "$m" "${MNT_PID[$m]}" "$WORK/$vm.log"
}

mount_ref() {
	local m=$WORK/ref
	mkdir -p "$m"
	"$REFD" "$MEMFILE" "$m" >"$WORK/ref.log" 2>&1 &
	MNT_PID[$m]=$!
	wait_mount "$m" "${MNT_PID[$m]}" "$WORK/ref.log"
}

# place PLACEMENT: move the daemons (every thread; threads started later
# inherit it) and nbdkit to their CPUs, and set MAIN_ON, the prefix that
# runs the measuring client on the main host's CPU.
place() {
	local main sub all=0-$((NCPU - 1)) m
	case $1 in
	split)	main=$((NCPU - 1))
		sub=$((NCPU > 1 ? NCPU - 2 : 0)) ;;
	one)	main=$((NCPU - 1))
		sub=$main ;;
	none)	main=$all
		sub=$all ;;
	esac
	for m in "${!MNT_PID[@]}"; do
		taskset -a -p -c "$main" "${MNT_PID[$m]}" >/dev/null
	done
	taskset -a -p -c "$sub" "$NBD_PID" >/dev/null
	MAIN_ON=(taskset -c "$main")
	case $1 in
	split)	PLACE_TEXT="main host on CPU $main, sub-host on CPU $sub" ;;
	one)	PLACE_TEXT="everything on CPU $main" ;;
	none)	PLACE_TEXT="not pinned" ;;
	esac
}

# --- setup -------------------------------------------------------------
echo "bench: setting up (memory file, nbdkit, mounts)" >&2
rm -f "$MEMFILE"
truncate -s 1G "$MEMFILE"
"$MEMREAD" fill "$MEMFILE" 0 512M "$SEED_LOCAL"
start_nbdkit
"$MEMREAD" nbdfill "$URI" 512M 512M "$SEED_REMOTE"

cat >"$WORK/bench.conf" <<EOF
# generated by scripts/bench.sh
[bench]
memory-file = $MEMFILE
ram-size    = 1G
backend     = direct
chunk-size  = 64K
cache-size  = 0          # measure the remote path, not a cache
timeout     = 5s
subhost     = $URI 512M-1G
tls         = off

[bench4k]
memory-file = $MEMFILE
ram-size    = 1G
backend     = direct
chunk-size  = 4K         # one 4 KiB read = one 4 KiB NBD request, as raw
cache-size  = 0
timeout     = 5s
subhost     = $URI 512M-1G
tls         = off

[bench1m]
memory-file = $MEMFILE
ram-size    = 1G
backend     = direct
chunk-size  = 1M         # one 1 MiB read = one NBD request, as raw
cache-size  = 0
timeout     = 5s
subhost     = $URI 512M-1G
tls         = off
EOF

mount_vmemfs bench
mount_vmemfs bench4k
mount_vmemfs bench1m
mount_ref
VM=$WORK/bench/mem
VM4K=$WORK/bench4k/mem
VM1M=$WORK/bench1m/mem
REF=$WORK/ref/mem

# Numbers from a daemon that serves wrong bytes mean nothing: check a
# slice of each region through each mount first.
CHECKLOG=$WORK/check.txt
check() {
	"$MEMREAD" -n "$1" check "$2" "$3" "$4" "$5" >>"$CHECKLOG" ||
		die "$1: $2 does not hold the expected bytes at $3+$4"
}
check vm-local "$VM" 0 32M $SEED_LOCAL
check vm-local-end "$VM" 480M 32M $SEED_LOCAL
check vm-remote "$VM" 512M 32M $SEED_REMOTE
check vm-remote-end "$VM" 992M 32M $SEED_REMOTE
check vm4k-remote "$VM4K" 512M 8M $SEED_REMOTE
check vm1m-remote "$VM1M" 512M 32M $SEED_REMOTE
check ref-local "$REF" 0 32M $SEED_LOCAL

# Each mount scans guest memory for a kernel when it starts (the
# `kernel` file), which here reads the whole remote half page by page,
# a chunk fetched per page: seconds of both CPUs, more with the 1M
# chunks.  Measure only once every mount's sub-host traffic has stopped.
sub_requests() {
	tr -d ' \n' <"$1/stats" | grep -o '"requests":[0-9]*' |
		awk -F: '{ n += $2 } END { print n + 0 }'
}
wait_quiet() {
	local vm prev cur i
	for vm in bench bench4k bench1m; do
		prev=-1
		for i in $(seq 240); do
			cur=$(sub_requests "$WORK/$vm")
			[ "$cur" = "$prev" ] && break
			prev=$cur
			sleep 0.5
		done
		[ "$cur" = "$prev" ] ||
			die "$vm: sub-host requests still growing after 120 s"
	done
}
echo "bench: waiting for the mounts' kernel scans to end" >&2
wait_quiet

if [ -n "${BENCH_HOLD:-}" ]; then
	echo "bench: holding; memory file $MEMFILE, sub-host $URI" \
	     "(pid $NBD_PID)"
	for m in "${!MNT_PID[@]}"; do
		echo "bench: $m/mem served by pid ${MNT_PID[$m]}"
	done
	echo "bench: Ctrl-C or SIGTERM to $$ cleans up"
	while :; do sleep 1; done
fi

# --- measurements ------------------------------------------------------
mr() { "${MAIN_ON[@]}" "$MEMREAD" "$@" >>"$RAW"; }

m_pread_seq() { mr -n pread_seq -t "$MINSEC" seq "$MEMFILE" 0 512M 1M; }
m_vm_local_seq() { mr -n vm_local_seq -t "$MINSEC" seq "$VM" 0 512M 1M; }
m_ref_local_seq() { mr -n ref_local_seq -t "$MINSEC" seq "$REF" 0 512M 1M; }
m_vm_local_rand() {
	mr -n vm_local_rand -s "$R" -T "$MAXSEC" rand "$VM" 0 512M 4K "$NLOCAL"
}
m_ref_local_rand() {
	mr -n ref_local_rand -s "$R" -T "$MAXSEC" rand "$REF" 0 512M 4K \
		"$NLOCAL"
}
m_vm_remote_seq() { mr -n vm_remote_seq -t "$MINSEC" seq "$VM" 512M 512M 1M; }
m_vm1m_remote_seq() {
	mr -n vm1m_remote_seq -t "$MINSEC" seq "$VM1M" 512M 512M 1M
}
# Raw libnbd's best: one read in flight is fastest when nbdkit shares the
# client's CPU, four when it has a CPU of its own.  The baseline is the
# better of the two in this round, so vmemfs is held to the hardest one.
m_nbd_remote_seq() {
	local before
	before=$(wc -l <"$RAW")
	mr -n nbd_remote_seq_d1 -t "$MINSEC" nbdseq "$URI" 512M 512M 1M 1
	mr -n nbd_remote_seq_d4 -t "$MINSEC" nbdseq "$URI" 512M 512M 1M 4
	tail -n +"$((before + 1))" "$RAW" | awk '
		{ for (i = 3; i <= NF; i++) {
			split($i, kv, "=")
			if (kv[1] == "GiBps" && kv[2] + 0 > best) {
				best = kv[2] + 0; from = $2
			}
		} }
		END { sub("name=", "", from)
		      print "result name=nbd_remote_seq GiBps=" best \
			    " from=" from }' >>"$RAW"
}
m_vm_remote_rand() {
	mr -n vm_remote_rand -s "$R" -T "$MAXSEC" rand "$VM4K" 512M 512M 4K \
		"$NREMOTE"
}
m_nbd_remote_rand() {
	mr -n nbd_remote_rand -s "$R" -T "$MAXSEC" nbdrand "$URI" 512M 512M \
		4K "$NREMOTE"
}

# Run the sides of a ratio back to back, in reverse order every other
# round, so that neither side always runs first (right after a switch of
# daemon) and drift of a shared machine hits both alike.
sides() {
	local f
	if ((R % 2)); then
		for f in "$@"; do "$f"; done
	else
		for f in $(printf '%s\n' "$@" | tac); do "$f"; done
	fi
}

measure_round() {
	sides m_vm_local_seq m_ref_local_seq m_pread_seq
	sides m_vm_local_rand m_ref_local_rand
	sides m_vm_remote_seq m_nbd_remote_seq m_vm1m_remote_seq
	sides m_vm_remote_rand m_nbd_remote_rand
}

# --- table -------------------------------------------------------------
# values NAME FIELD: FIELD of every result line NAME in $RAW, one a line,
# in the order measured.
values() {
	awk -v n="$1" -v f="$2" '
		$1 == "result" && $2 == "name=" n {
			for (i = 3; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] == f) print kv[2] + 0
			}
		}' "$RAW"
}
# ratios NAME_A NAME_B FIELD: A/B of each round, the k-th A with the k-th
# B (measured back to back).
ratios() {
	paste <(values "$1" "$3") <(values "$2" "$3") |
		awk '$2 > 0 { print $1 / $2 }'
}
median_of() {
	sort -g | awk '
		{ v[NR] = $1 }
		END {
			if (!NR) print "nan"
			else if (NR % 2) print v[(NR + 1) / 2]
			else print (v[NR / 2] + v[NR / 2 + 1]) / 2
		}'
}
spread_of() {
	sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 }
		END { printf "%.3g..%.3g", lo, hi }'
}
med() { values "$1" "$2" | median_of; }

# The ratio is the median of the per-round ratios, not the ratio of the
# medians: each round's A and B ran seconds apart, so a load spike from
# elsewhere on the machine lands on both sides of that round's ratio.
row() {	# LABEL NAME_A NAME_B FIELD UNIT OP TARGET
	local label=$1 a=$2 b=$3 f=$4 unit=$5 op=$6 target=$7 ratio ok
	ratio=$(ratios "$a" "$b" "$f" | median_of)
	ratio=$(awk -v r="$ratio" 'BEGIN { printf "%.2f", r }')
	ok=$(awk -v r="$ratio" -v t="$target" -v op="$op" 'BEGIN {
		if (t == "-") print "info"
		else print ((op == ">=" ? r >= t : r <= t) ? "PASS" : "MISS")
	}')
	printf '%-42s %7.2f %-5s %7.2f %-5s %5s %2s%-4s %s\n' \
		"$label" "$(med "$a" "$f")" "$unit" "$(med "$b" "$f")" "$unit" \
		"$ratio" "$op" "$target" "$ok"
	printf '    rounds: A %s, B %s, A/B %s\n' \
		"$(values "$a" "$f" | spread_of)" \
		"$(values "$b" "$f" | spread_of)" \
		"$(ratios "$a" "$b" "$f" | spread_of)"
}

table() {
	local d1 d4
	d1=$(grep -c '^result name=nbd_remote_seq .*from=nbd_remote_seq_d1' \
		"$RAW" || true)
	d4=$((RUNS - d1))
	echo "== $1: $PLACE_TEXT; median of $RUNS rounds"
	printf '%-42s %13s %13s %5s %6s %s\n' "A / B" "A" "B" "A/B" \
		"target" "result"
	row "local 1M seq: vmemfs / pread of the file" \
		vm_local_seq pread_seq GiBps GiB/s ">=" 0.30
	row "local 1M seq: vmemfs / refdaemon" \
		vm_local_seq ref_local_seq GiBps GiB/s ">=" 0.9
	row "local 4K rand p50: vmemfs / refdaemon" \
		vm_local_rand ref_local_rand p50_us us "<=" 1.2
	row "remote 1M seq: vmemfs / libnbd" \
		vm_remote_seq nbd_remote_seq GiBps GiB/s ">=" 0.7
	row "remote 4K rand p50: vmemfs / libnbd" \
		vm_remote_rand nbd_remote_rand p50_us us "<=" 1.3
	row "local 4K rand mean: vmemfs / refdaemon" \
		vm_local_rand ref_local_rand mean_us us "  " -
	row "remote 4K rand mean: vmemfs / libnbd" \
		vm_remote_rand nbd_remote_rand mean_us us "  " -
	row "remote 1M seq, 1M chunks: vmemfs / libnbd" \
		vm1m_remote_seq nbd_remote_seq GiBps GiB/s "  " -
	echo "    (libnbd sequential baseline: best of depth 1 and 4; depth 1" \
	     "won $d1, depth 4 won $d4 rounds)"
	# What a 1 MiB read costs any FUSE daemon beyond the bytes: the
	# minimal daemon's time per GiB minus pread's (a copy of every byte
	# into the reader's pages, and the round trip).  Added to raw
	# libnbd's time it bounds the ratio when everything runs in series
	# (one CPU); with the sub-host on its own CPU its work overlaps and
	# the bound is looser.
	awk -v n="$(med nbd_remote_seq GiBps)" \
	    -v f="$(med ref_local_seq GiBps)" \
	    -v p="$(med pread_seq GiBps)" 'BEGIN {
		fo = 1 / f - 1 / p
		printf "    remote 1M seq: libnbd %.3f s/GiB + FUSE itself" \
		       " %.3f s/GiB (refdaemon - pread); in series any FUSE" \
		       " daemon is at most %.2f of libnbd\n", 1 / n, fo,
		       (1 / n) / (1 / n + fo) }'
	# Where a remote 4K read's time goes: libnbd's own round trip, a
	# FUSE round trip (what refdaemon costs per read), and the rest.
	# The FUSE round trip alone sets a floor no FUSE daemon can beat.
	awk -v v="$(med vm_remote_rand p50_us)" \
	    -v n="$(med nbd_remote_rand p50_us)" \
	    -v f="$(med ref_local_rand p50_us)" 'BEGIN {
		printf "    remote 4K p50 %.1f us = libnbd %.1f + FUSE round" \
		       " trip %.1f + vmemfs own %.1f us; floor for any FUSE" \
		       " daemon: %.2f\n", v, n, f, v - n - f, (n + f) / n }'
}

{
	echo "vmemfs bench $(date -u +%Y-%m-%dT%H:%MZ), Linux $(uname -r)," \
	     "$NCPU CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "local = [0,512M) of a /dev/shm memory file (pread 1 MiB as" \
	     "the ceiling); remote = [512M,1G) from nbdkit memory over" \
	     "loopback TCP; vmemfs chunk-size 64K (4K for the 4K reads)," \
	     "cache-size 0"
} >"$WORK/results.txt"
for p in $PLACEMENTS; do
	RAW=$B/bench-raw-$p.txt
	: >"$RAW"
	place "$p"
	# The warm-up's lines are kept but renamed so the table ignores them.
	echo "bench: $p: warm-up" >&2
	R=0
	measure_round
	sed -i 's/^result /warmup /' "$RAW"
	for R in $(seq "$RUNS"); do
		echo "bench: $p: round $R/$RUNS" >&2
		measure_round
	done
	# What vmemfs itself counted, kept with the raw numbers.
	for vm in bench bench4k bench1m; do
		if [ -r "$WORK/$vm/stats" ]; then
			echo "stats $vm $(tr -d '\n' <"$WORK/$vm/stats")" \
				>>"$RAW"
		fi
	done
	table "$p" >>"$WORK/results.txt"
done
mv "$WORK/results.txt" "$OUT"
cat "$OUT"
echo "bench: tables written to $OUT, raw results in $B/bench-raw-*.txt" >&2
exit 0
