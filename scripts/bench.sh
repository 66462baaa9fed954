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
#   - vmemfs mounted twice on that memory file: chunk-size 64K (local and
#     sequential remote) and chunk-size 4K (remote 4 KiB latency, so that
#     vmemfs fetches exactly the bytes raw libnbd fetches), no cache;
#   - bench/refdaemon, the minimal libfuse daemon, serving the same file.
# Then it runs every measurement RUNS times, interleaving the two sides of
# each ratio so that drift of the machine hits both, and prints a table of
# ratios of the medians.  Everything is measured in this one run.
#
# Environment knobs (defaults in brackets):
#   BENCH_RUNS [5]      runs per measurement (after one warm-up)
#   BENCH_MINSEC [1]    minimum seconds of each sequential run
#   BENCH_NLOCAL [50000] BENCH_NREMOTE [10000]  reads per latency run
#   BENCH_DEPTH [4]     raw libnbd reads in flight (remote sequential)
#   BENCH_OUT [build/bench-results.txt]  where the table is also written
#   VMEMFS [build/vmemfs]
#
# Output: the table on stdout and in BENCH_OUT; every raw result line in
# build/bench-raw.txt.  See bench/README.md for how to read it.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build
VMEMFS=${VMEMFS:-$B/vmemfs}
MEMREAD=$B/bench/memread
REFD=$B/bench/refdaemon
RUNS=${BENCH_RUNS:-5}
MINSEC=${BENCH_MINSEC:-1}
NLOCAL=${BENCH_NLOCAL:-50000}
NREMOTE=${BENCH_NREMOTE:-10000}
DEPTH=${BENCH_DEPTH:-4}
OUT=${BENCH_OUT:-$B/bench-results.txt}
RAW=$B/bench-raw.txt

SEED_LOCAL=1111
SEED_REMOTE=2222

die() { echo "bench: $*" >&2; exit 1; }

for f in "$VMEMFS" "$MEMREAD" "$REFD"; do
	[ -x "$f" ] || die "$f missing: run 'make bench' (or make $f)"
done
command -v nbdkit >/dev/null || die "nbdkit not installed (make deps)"
command -v nbdinfo >/dev/null || die "nbdinfo not installed (make deps)"
[ -w /dev/fuse ] || die "/dev/fuse not usable (need root and the fuse module)"

WORK=$(mktemp -d /tmp/vmemfs-bench.XXXXXX)
MEMFILE=/dev/shm/vmt-bench-$$.mem
NBD_PID=
declare -A MNT_PID=()	# mountpoint -> daemon pid

is_mounted() { grep -qs " $1 fuse" /proc/self/mounts; }

cleanup() {
	local rc=$? m pid i
	trap - EXIT INT TERM
	for m in "${!MNT_PID[@]}"; do
		pid=${MNT_PID[$m]}
		kill -TERM "$pid" 2>/dev/null || true
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
			fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" ||
				true
		fi
	done
	if [ -n "$NBD_PID" ]; then
		kill -TERM "$NBD_PID" 2>/dev/null || true
		wait "$NBD_PID" 2>/dev/null || true
	fi
	rm -f "$MEMFILE" "$MEMFILE.seq"
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
			if ! kill -0 "$NBD_PID" 2>/dev/null; then
				break
			fi
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

[bench4k]
memory-file = $MEMFILE
ram-size    = 1G
backend     = direct
chunk-size  = 4K         # one 4 KiB read = one 4 KiB NBD request, as raw
cache-size  = 0
timeout     = 5s
subhost     = $URI 512M-1G
EOF

mount_vmemfs bench
mount_vmemfs bench4k
mount_ref
VM=$WORK/bench/mem
VM4K=$WORK/bench4k/mem
REF=$WORK/ref/mem

# Numbers from a daemon that serves wrong bytes mean nothing: check a
# slice of each region through each mount first.
: >"$RAW"
check() { "$MEMREAD" -n "$1" check "$2" "$3" "$4" "$5" >>"$RAW" ||
	  die "$1: $2 does not hold the expected bytes at $3+$4"; }
check vm-local "$VM" 0 32M $SEED_LOCAL
check vm-local-end "$VM" 480M 32M $SEED_LOCAL
check vm-remote "$VM" 512M 32M $SEED_REMOTE
check vm-remote-end "$VM" 992M 32M $SEED_REMOTE
check vm4k-remote "$VM4K" 512M 8M $SEED_REMOTE
check ref-local "$REF" 0 32M $SEED_LOCAL

# --- measurements ------------------------------------------------------
mr() { "$MEMREAD" "$@" >>"$RAW"; }

measure_round() {	# $1 = run number (0 = warm-up), seeds the offsets
	local s=$(( $1 + 1 ))
	mr -n pread_seq -t "$MINSEC" seq "$MEMFILE" 0 512M 1M
	mr -n vm_local_seq -t "$MINSEC" seq "$VM" 0 512M 1M
	mr -n ref_local_seq -t "$MINSEC" seq "$REF" 0 512M 1M
	mr -n vm_local_rand -s "$s" rand "$VM" 0 512M 4K "$NLOCAL"
	mr -n ref_local_rand -s "$s" rand "$REF" 0 512M 4K "$NLOCAL"
	mr -n vm_remote_seq -t "$MINSEC" seq "$VM" 512M 512M 1M
	mr -n nbd_remote_seq -t "$MINSEC" nbdseq "$URI" 512M 512M 1M "$DEPTH"
	mr -n vm_remote_rand -s "$s" rand "$VM4K" 512M 512M 4K "$NREMOTE"
	mr -n nbd_remote_rand -s "$s" nbdrand "$URI" 512M 512M 4K "$NREMOTE"
}

# The warm-up's lines are kept but renamed so the table ignores them.
echo "bench: warm-up" >&2
mr() { "$MEMREAD" "$@" | sed 's/^result /warmup /' >>"$RAW"; }
measure_round 0
mr() { "$MEMREAD" "$@" >>"$RAW"; }
for r in $(seq "$RUNS"); do
	echo "bench: run $r/$RUNS" >&2
	measure_round "$r"
done

# What vmemfs itself counted, kept next to the raw numbers for diagnosis.
for vm in bench bench4k; do
	if [ -r "$WORK/$vm/stats" ]; then
		echo "stats $vm $(tr -d '\n' <"$WORK/$vm/stats")" >>"$RAW"
	fi
done

# --- table -------------------------------------------------------------
# values NAME FIELD: FIELD of every result line NAME, one a line.
values() {
	awk -v n="$1" -v f="$2" '
		$1 == "result" && $2 == "name=" n {
			for (i = 3; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] == f) print kv[2] + 0
			}
		}' "$RAW"
}
# median NAME FIELD: median over runs ("nan" when there are none).
median() {
	values "$1" "$2" | sort -g | awk '
		{ v[NR] = $1 }
		END {
			if (!NR) print "nan"
			else if (NR % 2) print v[(NR + 1) / 2]
			else print (v[NR / 2] + v[NR / 2 + 1]) / 2
		}'
}
# spread NAME FIELD: "min..max" over runs.
spread() {
	awk -v n="$1" -v f="$2" '
		$1 == "result" && $2 == "name=" n {
			for (i = 3; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] == f) {
					x = kv[2] + 0
					if (!c++ || x < lo) lo = x
					if (c == 1 || x > hi) hi = x
				}
			}
		}
		END { printf "%.4g..%.4g", lo, hi }' "$RAW"
}

row() {	# LABEL NAME_A NAME_B FIELD UNIT OP TARGET
	local label=$1 a=$2 b=$3 f=$4 unit=$5 op=$6 target=$7 va vb ratio ok
	va=$(median "$a" "$f")
	vb=$(median "$b" "$f")
	ratio=$(awk -v a="$va" -v b="$vb" 'BEGIN { printf "%.2f", a / b }')
	ok=$(awk -v r="$ratio" -v t="$target" -v op="$op" 'BEGIN {
		print ((op == ">=" ? r >= t : r <= t) ? "PASS" : "MISS") }')
	printf '%-44s %9.3f %-5s %9.3f %-5s %6s %2s%-5s %s\n' \
		"$label" "$va" "$unit" "$vb" "$unit" "$ratio" "$op" "$target" \
		"$ok"
	printf '    %-40s runs: %s / %s\n' "" "$(spread "$a" "$f")" \
		"$(spread "$b" "$f")"
}

table() {
	echo "vmemfs bench $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r)," \
	     "$(nproc) CPUs, median of $RUNS runs after warm-up"
	echo "local = [0,512M) of a /dev/shm memory file; remote = [512M,1G)" \
	     "from nbdkit memory over loopback TCP; no cache"
	printf '%-44s %15s %15s %6s %7s %s\n' "measurement (A / B)" "A" "B" \
		"A/B" "target" "result"
	row "local 1M seq: vmemfs / pread(memory file)" \
		vm_local_seq pread_seq GiBps GiB/s ">=" 0.30
	row "local 1M seq: vmemfs / refdaemon" \
		vm_local_seq ref_local_seq GiBps GiB/s ">=" 0.9
	row "local 4K rand mean: vmemfs / refdaemon" \
		vm_local_rand ref_local_rand mean_us us "<=" 1.2
	row "remote 1M seq: vmemfs / libnbd depth $DEPTH" \
		vm_remote_seq nbd_remote_seq GiBps GiB/s ">=" 0.7
	row "remote 4K rand mean: vmemfs(4K chunk) / libnbd" \
		vm_remote_rand nbd_remote_rand mean_us us "<=" 1.3
	echo "p50 latency (information): local vmemfs" \
	     "$(median vm_local_rand p50_us) us, refdaemon" \
	     "$(median ref_local_rand p50_us) us; remote vmemfs" \
	     "$(median vm_remote_rand p50_us) us, libnbd" \
	     "$(median nbd_remote_rand p50_us) us"
}

table | tee "$OUT"
echo "bench: table written to $OUT, raw results in $RAW" >&2
exit 0
