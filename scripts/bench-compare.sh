#!/bin/bash
# SPDX-License-Identifier: MIT
#
# scripts/bench-compare.sh - direct fetch vs VM remote paging on a real
# split VM: the comparison the VMemTrans paper reports (issue 4).
#
# Sets up, and tears down again also on error or Ctrl-C:
#   - a network namespace with a veth pair, and in it `nbdkit memory 1G`,
#     the sub-host, home of RAM [512M, 1G);
#   - the patched QEMU (scripts/build-qemu.sh), TCG, 1 GiB of RAM in a
#     sparse shared memory file in /dev/shm, split half local / half on
#     the sub-host (vmem-split, pager chunk 64K, no local limit), booting
#     the test guest (scripts/guest/build-guest.sh);
#   - the guest fills [most of] its RAM: a zero ballast, then a file of
#     random data that it re-reads later as its own workload.
# Then, before every measured run, the homed half is paged out (QMP
# vmem-page-out), so every run starts from the same split, and:
#   raw     bench/ids_reader reads its bytes straight from the sub-host
#           with libnbd (the floor for direct fetch)
#   none    no reader: the guest workload alone (baseline for (b))
#   for each chunk size and backend (direct, remote-paging): vmemfs is
#           mounted with that chunk-size and backend, bench/ids_reader
#           reads `ram` (scattered small reads over the homed half, then
#           a sequential scan), vmemfs is unmounted, the memory file's
#           allocation is taken, and the guest re-reads its file.
# Reported per run:
#   (a) the reader's time (scattered / scan / total)
#   (b) the guest workload's time afterwards, and how much it had to page
#       in from the sub-host (query-vmem bytes-in)
#   (c) resident main-host memory: the memory file's allocated bytes
#       after the reader ran, and vmemfs's own peak RSS
# A table goes to stdout and COMPARE_OUT; a PNG plot of (a) and (b) to
# COMPARE_PNG (gnuplot); every raw result line to COMPARE_RAW.
#
# Knobs (defaults in brackets):
#   COMPARE_CHUNKS ["4K 16K 64K 256K 1M"]
#   COMPARE_PAPER_CHUNKS ["64K 1M"]  also run both backends with
#                                fetch-merge = off (the paper's methods:
#                                one request / command per chunk) at
#                                these chunk sizes; "" for none
#   COMPARE_RUNS [3]             repetitions of every run (median reported)
#   COMPARE_NSCATTER [4096]      scattered reads ...
#   COMPARE_SCATTER_BS [256]     ... of this many bytes, over [512M, 1G)
#   COMPARE_SCAN_LEN [128M]      sequential scan of [512M, 512M+LEN) ...
#   COMPARE_SCAN_BS [64K]        ... in reads of this size
#   COMPARE_DATA_MIB [320]       the guest's file, re-read as its workload
#   COMPARE_BALLAST_MIB [320]    written first so the file lands high
#   COMPARE_PAUSE [1]            pause the guest (QMP stop) while readers
#                                run: same bytes for every reader, less
#                                noise; 0 reads a running (idle) guest
#   COMPARE_OUT [build/compare-results.txt]
#   COMPARE_RAW [build/compare-raw.txt]
#   COMPARE_PNG [doc/compare.png]
#   COMPARE_REPLOT=1             only redo the table and plot from COMPARE_RAW
#   VMEMFS [build/vmemfs]  VMEM_QEMU [build/qemu/qemu-system-x86_64]
#
# Needs root (namespaces, FUSE).  Bounded: every wait has a timeout, and
# a full run takes a few minutes on 2 CPUs.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build
QEMU=${VMEM_QEMU:-$B/qemu/qemu-system-x86_64}
GUEST=$B/guest
VMEMFS=${VMEMFS:-$B/vmemfs}
READER=$B/bench/ids_reader
CHUNKS=${COMPARE_CHUNKS:-"4K 16K 64K 256K 1M"}
PAPER_CHUNKS=${COMPARE_PAPER_CHUNKS-"64K 1M"}
RUNS=${COMPARE_RUNS:-3}
NSCATTER=${COMPARE_NSCATTER:-4096}
SCATTER_BS=${COMPARE_SCATTER_BS:-256}
SCAN_LEN=${COMPARE_SCAN_LEN:-128M}
SCAN_BS=${COMPARE_SCAN_BS:-64K}
DATA_MIB=${COMPARE_DATA_MIB:-320}
BALLAST_MIB=${COMPARE_BALLAST_MIB:-320}
PAUSE=${COMPARE_PAUSE:-1}
OUT=${COMPARE_OUT:-$B/compare-results.txt}
RAWOUT=${COMPARE_RAW:-$B/compare-raw.txt}
PNG=${COMPARE_PNG:-$ROOT/doc/compare.png}

RAM=$((1024 << 20))
HOME_START=$((512 << 20))
HOME_LEN=$((RAM - HOME_START))
NBD_PORT=10809

BENCH_NAME=bench-compare BENCH_MARK=CMP MED_KIND=result
# shellcheck source=scripts/lib/bench.sh
. "$ROOT/scripts/lib/bench.sh"

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, FUSE)"
[ -x "$QEMU" ] || die "$QEMU missing: run scripts/build-qemu.sh"
[ -r "$GUEST/vmlinuz" ] || die "$GUEST/vmlinuz missing: run scripts/build-qemu.sh"
command -v gnuplot >/dev/null || die "gnuplot missing (make deps)"
command -v nbdkit >/dev/null || die "nbdkit missing (make deps)"
make -s -C "$ROOT" build/vmemfs build/bench/ids_reader >&2

# ---- state, and its teardown ------------------------------------------

TMP=$(mktemp -d /tmp/vmt-compare.XXXXXX)
MEM=/dev/shm/vmt-compare-$$.mem
NS=vmtcmp$$
VH=vcmh$$
VN=vcmn$$
NET=$((($$ % 250) + 1))
HA=10.214.$NET.1
NA=10.214.$NET.2
URI=nbd://$NA:$NBD_PORT
QMP2=$TMP/vmemfs-qmp.sock
MNT=$TMP/mnt
QEMU_PID= NBD_PID= VFS_PID= SER= QMP=

cleanup() {
	set +e
	split_vm_down
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- QMP (TCP, this script's own connection) ---------------------------

# ---- one measured run --------------------------------------------------

# guest_workload LABEL: time the guest re-reading its file; record what it
# had to fetch from the sub-host.
guest_workload() {
	local in0 in1 t0 t1
	in0=$(vmem_field bytes-in)
	t0=$(now)
	# dd, not cat: cat may splice to /dev/null without touching a page.
	grun "dd if=/tmp/data of=/dev/null bs=64K 2>/dev/null" 600 >/dev/null ||
		die "guest workload failed"
	t1=$(now)
	in1=$(vmem_field bytes-in)
	echo "guest name=$1 secs=$(elapsed "$t0" "$t1") fetched_mib=$(((in1 - in0) >> 20))" |
		tee -a "$RAWOUT" >&2
}

reader_args() {
	echo "$HOME_START $HOME_LEN $NSCATTER $SCATTER_BS $HOME_START $SCAN_LEN $SCAN_BS"
}

# reset: the guest paused (its idle activity would change the bytes
# between runs and add noise) and the homed half all on the sub-host.
reset_split() {
	if [ "$PAUSE" = 1 ]; then qmp '{"execute":"stop"}' >/dev/null; fi
	page_out_home
}

resume() {
	if [ "$PAUSE" = 1 ]; then qmp '{"execute":"cont"}' >/dev/null; fi
}

# The p50 per-request latency (us) of the sub-host in vmemfs's stats.
sub_p50() {
	awk '/"subhosts"/ { s = 1 } s && /"p50"/ { gsub(/[^0-9.]/, "", $2);
		print $2; exit }' "$MNT/stats"
}

# run_vmemfs BACKEND CHUNK RUN [MERGE]
# MERGE off: fetch-merge = off, the paper's method, named BACKEND-paper-CHUNK.
run_vmemfs() {
	local name="$1-$2" conf="$TMP/vmemfs.conf" res raw rawc rawm req p50 rss same
	local merge=${4:-on}
	[ "$merge" = off ] && name="$1-paper-$2"
	cat >"$conf" <<EOF
[cmp]
memory-file = $MEM
backend     = $1
chunk-size  = $2
fetch-merge = $merge
timeout     = 5s
qmp         = $QMP2
tls         = off
# The reader reads ram (RAM offsets), so the guest-physical map is not
# needed; flat also keeps the mount independent of it.
layout      = flat
EOF
	reset_split
	# Raw libnbd, same state: the exact bytes, and the same chunks.
	# shellcheck disable=SC2046
	raw=$("$READER" -n raw "$URI" $(reader_args)) || die "raw reader"
	# shellcheck disable=SC2046
	rawc=$("$READER" -n "raw-$2" -c "$2" "$URI" $(reader_args)) ||
		die "raw chunked reader"
	echo "$raw memfile_mib=$(memfile_mib) run=$3 before=$name" >>"$RAWOUT"
	echo "$rawc run=$3 before=$name" >>"$RAWOUT"
	# ... and the same requests as direct fetch sends (adjacent chunks
	# of a read in one request), the floor for direct's own cost.
	if [ "$1" = direct ] && [ "$merge" = on ]; then
		# shellcheck disable=SC2046
		rawm=$("$READER" -n "rawm-$2" -c "$2" -m "$URI" $(reader_args)) ||
			die "raw merged reader"
		echo "$rawm run=$3 before=$name" >>"$RAWOUT"
	fi
	mkdir -p "$MNT"
	"$VMEMFS" -f -c "$conf" "$MNT" >"$TMP/vmemfs.log" 2>&1 &
	VFS_PID=$!
	for i in $(seq 200); do
		[ -e "$MNT/ram" ] && break
		kill -0 "$VFS_PID" 2>/dev/null || die "vmemfs exited: $(tail -5 "$TMP/vmemfs.log")"
		[ "$i" = 200 ] && die "vmemfs did not mount"
		sleep 0.05
	done
	# shellcheck disable=SC2046
	res=$("$READER" -n "$name" "$MNT/ram" $(reader_args)) ||
		die "reader failed on $name: $(tail -5 "$TMP/vmemfs.log")"
	req=$(grep -o '"requests": *[0-9]*' "$MNT/stats" | head -n 1 | grep -o '[0-9]*$')
	p50=$(sub_p50)
	rss=$(awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$VFS_PID/status")
	kill "$VFS_PID"
	wait "$VFS_PID" || true
	VFS_PID=
	fusermount3 -u -z "$MNT" 2>/dev/null || true
	same=no
	[ "${res##*sum=}" = "${raw##*sum=}" ] && same=yes
	echo "$res requests=$req req_p50_us=$p50 memfile_mib=$(memfile_mib) vmemfs_rss_mib=$rss same=$same run=$3" |
		tee -a "$RAWOUT" >&2
	resume
	guest_workload "$name"
}

# ---- set up, then measure ---------------------------------------------

# (Here-documents stay at the margin: their terminators must.)
measure() {
	log "sub-host: nbdkit in namespace $NS at $URI"
	subhost_up 1G

	cat >"$TMP/qemu.conf" <<EOF
[cmp]
memory-file = $MEM
ram-size    = 1G
chunk-size  = 64K
timeout     = 5s
subhost     = $URI 512M-1G
tls         = off
EOF

	log "booting the guest (TCG, 1 GiB, [512M, 1G) homed on the sub-host)"
	T0=$(now)
	qemu_split_boot "$MEM" "$RAM" 1024 "$TMP/qemu.conf" cmp "$QMP2" 180
	log "guest up in $(elapsed "$T0" "$(now)") s; writing ${BALLAST_MIB}M ballast and a ${DATA_MIB}M file"
	grun "dd if=/dev/zero of=/tmp/ballast bs=1M count=$BALLAST_MIB 2>/dev/null && dd if=/dev/urandom of=/tmp/data bs=1M count=$DATA_MIB 2>/dev/null && sync" 600 >/dev/null ||
		die "guest could not write its data"

	: >"$RAWOUT"
	{
		echo "# bench-compare $(date -u +%FT%TZ): 1 GiB TCG guest, [512M,1G) on $URI"
		echo "# reader: $NSCATTER x ${SCATTER_BS}B scattered over [512M,1G), scan of $SCAN_LEN from 512M in $SCAN_BS reads"
		echo "# host: $(date -u +%F), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	} >>"$RAWOUT"

	for run in $(seq "$RUNS"); do
		log "run $run/$RUNS"
		reset_split
		resume
		guest_workload none
		for c in $CHUNKS; do
			run_vmemfs direct "$c" "$run"
			run_vmemfs remote-paging "$c" "$run"
		done
		for c in $PAPER_CHUNKS; do
			run_vmemfs direct "$c" "$run" off
			run_vmemfs remote-paging "$c" "$run" off
		done
	done
}

if [ "${COMPARE_REPLOT:-0}" = 1 ]; then
	[ -s "$RAWOUT" ] || die "COMPARE_REPLOT=1 needs $RAWOUT from an earlier run"
	RUNS=$(grep -c '^guest name=none ' "$RAWOUT")
else
	measure
fi

# ---- the table ---------------------------------------------------------

# allsame NAME: yes if every run of NAME read the same bytes as raw libnbd.
allsame() {
	if grep "^result name=$1 " "$RAWOUT" | grep -q ' same=no'; then
		echo no
	else
		echo yes
	fi
}

raw_s=$(med raw total_s)
none_s=$(med none secs guest)
none_f=$(med none fetched_mib guest)
{
	echo "Direct fetch vs VM remote paging, $(sed -n 's/^# host: //p' "$RAWOUT"); median of $RUNS run(s)"
	echo "guest: TCG, 1 GiB, [512M,1G) on nbdkit in a network namespace; pager chunk 64K; guest paused while readers run: $([ "$PAUSE" = 1 ] && echo yes || echo no)"
	echo "reader: $NSCATTER x ${SCATTER_BS}B scattered over [512M,1G), then [512M,+$SCAN_LEN) in $SCAN_BS reads"
	echo "raw libnbd, exactly the bytes read: $raw_s s.  guest workload (dd of its ${DATA_MIB}M file) with no reader before: $none_s s, paged in $(printf %.0f "$none_f") MiB"
	echo
	printf '%-5s|%8s %8s %6s|%8s %8s %7s|%7s %7s|%6s %6s|%6s %6s|%7s %7s|%s\n' \
		chunk direct rpaging rp/dir raw-chnk dir/raw dir/rawc \
		gst-dir gst-rp in-d in-rp mem-d mem-rp p50-d p50-rp same
	printf '%-5s|%8s %8s %6s|%8s %8s %7s|%7s %7s|%6s %6s|%6s %6s|%7s %7s|\n' \
		"" "(a) s" "(a) s" "" "s" "" "" "(b) s" "(b) s" MiB MiB \
		"(c)MiB" "(c)MiB" "us/req" "us/req"
	for c in $CHUNKS; do
		d=$(med "direct-$c" total_s)
		r=$(med "remote-paging-$c" total_s)
		rc=$(med "raw-$c" total_s)
		same=no
		[ "$(allsame "direct-$c")" = yes ] &&
			[ "$(allsame "remote-paging-$c")" = yes ] && same=yes
		printf '%-5s|%8.3f %8.3f %6s|%8.3f %8s %7s|%7.3f %7.3f|%6.0f %6.0f|%6.0f %6.0f|%7.0f %7.0f|%s\n' \
			"$c" "$d" "$r" "$(ratio "$r" "$d")" "$rc" \
			"$(ratio "$d" "$raw_s")" "$(ratio "$d" "$rc")" \
			"$(med "direct-$c" secs guest)" \
			"$(med "remote-paging-$c" secs guest)" \
			"$(med "direct-$c" fetched_mib guest)" \
			"$(med "remote-paging-$c" fetched_mib guest)" \
			"$(med "direct-$c" memfile_mib)" \
			"$(med "remote-paging-$c" memfile_mib)" \
			"$(med "direct-$c" req_p50_us)" \
			"$(med "remote-paging-$c" req_p50_us)" "$same"
	done
	echo
	echo "(a) reader time: direct fetch, remote paging; raw-chnk: libnbd fetching the same chunks direct fetch fetches"
	echo "(b) guest workload time after the reader; in-*: what the guest then paged in from the sub-host"
	printf "(c) memory file allocated after the reader; %.0f MiB before it (the local half)\n" "$(med raw memfile_mib)"
	echo "p50: median time per chunk (direct: one NBD read; remote paging: a page-in command over the pager's control socket, or vmem-page-in over QMP with VMEMFS_PAGE_IN_CHANNEL=qmp, divided by its chunks)"
	echo "same: both backends read exactly the bytes raw libnbd read"
	echo "scattered / scan seconds:"
	for c in $CHUNKS; do
		printf '  %-5s direct %7.3f / %7.3f   remote paging %7.3f / %7.3f\n' "$c" \
			"$(med "direct-$c" scatter_s)" "$(med "direct-$c" scan_s)" \
			"$(med "remote-paging-$c" scatter_s)" "$(med "remote-paging-$c" scan_s)"
	done
	echo "direct fetch against raw libnbd sending the same requests (raw-same: synchronous nbd_pread, adjacent chunks of a read in one request, as the direct backend sends them):"
	for c in $CHUNKS; do
		d=$(med "direct-$c" total_s)
		rm_=$(med "rawm-$c" total_s)
		printf '  %-5s direct %8.3f s  raw-same %8.3f s  dir/raw-same %6s\n' \
			"$c" "$d" "$rm_" "$(ratio "$d" "$rm_")"
	done
	if [ -n "$PAPER_CHUNKS" ]; then
		echo "the paper's methods (fetch-merge = off: one NBD request / one page-in command per chunk) next to ours, (a) reader seconds:"
		for c in $PAPER_CHUNKS; do
			dp=$(med "direct-paper-$c" total_s)
			rpp=$(med "remote-paging-paper-$c" total_s)
			printf '  %-5s paper: direct %7.3f  rp %7.3f  rp/dir %6s   ours: direct %7.3f  rp %7.3f  rp/dir %6s\n' \
				"$c" "$dp" "$rpp" "$(ratio "$rpp" "$dp")" \
				"$(med "direct-$c" total_s)" "$(med "remote-paging-$c" total_s)" \
				"$(ratio "$(med "remote-paging-$c" total_s)" "$(med "direct-$c" total_s)")"
		done
	fi
	echo "goals: rp/dir <= 1.3 at chunks >= 64K; direct within 1.5x of raw libnbd"
} | tee "$OUT"

# ---- the plot ----------------------------------------------------------

DAT=$TMP/plot.dat
i=0
for c in $CHUNKS; do
	echo "$i $c $(med "direct-$c" total_s) $(med "remote-paging-$c" total_s) $raw_s $(med "direct-$c" secs guest) $(med "remote-paging-$c" secs guest) $none_s $(med "raw-$c" total_s)"
	i=$((i + 1))
done >"$DAT"
if gnuplot -e 'set terminal pngcairo' -e 'exit' 2>/dev/null; then
	TERM_PNG="pngcairo size 1100,460 font 'sans,10'"
else
	TERM_PNG="png size 1100,460"
fi
mkdir -p "$(dirname "$PNG")"
gnuplot <<EOF
set terminal $TERM_PNG
set output '$PNG'
set multiplot layout 1,2 title "Direct fetch vs VM remote paging: 1 GiB TCG guest, 512 MiB on an NBD sub-host"
set xlabel 'chunk size'
set grid ytics
set key top right
set logscale y
set ylabel 'seconds (log)'
set title '(a) IDS-like reader: scattered reads + scan of the remote half'
plot '$DAT' using 1:3:xtic(2) with linespoints lw 2 pt 7 title 'direct fetch', \
     '' using 1:4 with linespoints lw 2 pt 5 title 'VM remote paging', \
     '' using 1:9 with linespoints dt 3 lw 1 pt 1 title 'raw libnbd, same chunks', \
     '' using 1:5 with lines dt 2 lw 2 title 'raw libnbd, exact bytes'
unset logscale y
set yrange [0:*]
set ylabel 'seconds'
set key bottom left opaque box
set title '(b) guest re-reads its file afterwards'
plot '$DAT' using 1:6:xtic(2) with linespoints lw 2 pt 7 title 'after direct fetch', \
     '' using 1:7 with linespoints lw 2 pt 5 title 'after VM remote paging', \
     '' using 1:8 with lines dt 2 lw 2 title 'no reader before'
unset multiplot
EOF
log "table in $OUT, raw lines in $RAWOUT, plot in $PNG"
