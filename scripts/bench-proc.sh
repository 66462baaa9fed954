#!/bin/bash
# SPDX-License-Identifier: MIT
#
# scripts/bench-proc.sh - the VMemTrans paper's experiment on the shadow
# /proc (issue 10): how long building the shadow /proc of a split VM takes
# per chunk size with direct fetch and with VM remote paging, and what
# each leaves behind for the VM.
#
# Sets up, and tears down again also on error or Ctrl-C:
#   - a network namespace with a veth pair, and in it `nbdkit memory 2G`,
#     the sub-host, home of RAM [1G, 2G) (the paper's 1 GB / 1 GB split);
#   - the patched QEMU, TCG, 2 GiB of RAM in a sparse shared memory file
#     in /dev/shm, split half local / half on the sub-host (vmem-split,
#     pager chunk 64K, no local limit), booting the test guest;
#   - in the guest: the vmt-procs zoo (sockets on IPv4/IPv6, TCP and UDP,
#     threads, uid 1000), three loaded kernel modules, and PROC_NPROCS
#     more processes, each with its own name (comm vmt-b-NNN) and its own
#     arguments (/bin/vmt-procs child ... re-executed: a real mm whose
#     argument pages sit in user memory).  The guest's kernel takes free
#     pages from low addresses first, so on an idle 2 GiB guest everything
#     would sit in the local half; a tmpfs ballast of PROC_BALLAST_MIB
#     (and a small spacer after it) fills the local half first and is
#     removed once the processes run,
#     so that their task structs, page tables and argument pages land in
#     the homed half, as on a VM whose memory is in use.
# Then, after the processes started, the homed half is paged out (QMP
# vmem-page-out) before every measured run, so that every run starts from
# the same split: the processes' task structs, page tables and argument
# pages live partly on the sub-host.  Per run (chunk size, backend):
#   - the guest is paused (QMP stop: every run reads the same bytes);
#   - vmemfs is mounted with that backend and chunk-size, proc-refresh = 0
#     (one full build per opendir of proc/) and a 60 s timeout (the
#     build's time budget: no build may be cut); the run waits until the
#     mount has recognised the kernel, then pages the homed half out again
#     (recognition read memory too, and remote paging would have pulled
#     it in) and waits out the direct backend's cache ttl;
#   (a) one opendir of proc/ (`ls MNT/proc`) is exactly one full build
#       (processes with cmdlines and environ, sockets, modules); its time,
#       and the bytes it read locally / from the sub-host, come from the
#       mount's `stats` (proc.last_build_ms etc.): that build time is the
#       number reported as (a);
#   - then `vmemfs-exec MNT ps aux >/dev/null`, timed from the host (the
#     unmodified tool end to end; its opendir of /proc builds again, from
#     what the first build left where it was): that build is the IDS's
#     "second look";
#   (c) the memory file's allocated bytes right after it (main-host
#       memory the VM's RAM takes);
#   - vmemfs is unmounted, the guest continued;
#   (b) `ps | wc -l` run inside the guest (busybox ps: every pid's stat
#       and cmdline), timed from the host over the console,
#       minus the round trip of an empty command (`true`) measured just
#       before it; with it what the guest had to page in from the
#       sub-host (query-vmem bytes-in) and the memory file afterwards.
# At the start and once per repetition, also "none": no build before the
# guest's ps (the guest alone after the page-out).  At the end the floor:
# the whole homed half paged in (vmem-page-in), so all memory is local,
# and the build timed PROC_RUNS times on a direct mount.
# A table goes to stdout and PROC_OUT, a PNG plot to PROC_PNG (gnuplot),
# every raw result line to PROC_RAW.
#
# Knobs (defaults in brackets):
#   PROC_CHUNKS ["4K 16K 64K 256K 1M"]
#   PROC_RUNS [5]              repetitions of every run (median reported)
#   PROC_RUNS_SMALL [PROC_RUNS] repetitions for the 4K and 16K chunks
#                              (the slow ones under remote paging)
#   PROC_NPROCS [200]          processes started besides the zoo
#   PROC_BALLAST_MIB [960]     tmpfs ballast written before the processes
#                              start and removed after (see above)
#   PROC_PAUSE [1]             pause the guest while vmemfs builds; 0
#                              builds from a running (idle) guest
#   PROC_OUT [build/proc-bench-results.txt]
#   PROC_RAW [build/proc-bench-raw.txt]
#   PROC_PNG [doc/proc-bench.png]
#   PROC_REPLOT=1              only redo the table and plot from PROC_RAW
#   VMEMFS [build/vmemfs]  VMEMFS_EXEC [build/vmemfs-exec]
#   VMEM_QEMU [build/qemu/qemu-system-x86_64]
#
# Needs root (namespaces, FUSE).  Bounded: every wait has a timeout.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build
QEMU=${VMEM_QEMU:-$B/qemu/qemu-system-x86_64}
GUEST=$B/guest
VMEMFS=${VMEMFS:-$B/vmemfs}
VEXEC=${VMEMFS_EXEC:-$B/vmemfs-exec}
CHUNKS=${PROC_CHUNKS:-"4K 16K 64K 256K 1M"}
RUNS=${PROC_RUNS:-5}
RUNS_SMALL=${PROC_RUNS_SMALL:-$RUNS}
NPROCS=${PROC_NPROCS:-200}
BALLAST_MIB=${PROC_BALLAST_MIB:-960}
PAUSE=${PROC_PAUSE:-1}
OUT=${PROC_OUT:-$B/proc-bench-results.txt}
RAWOUT=${PROC_RAW:-$B/proc-bench-raw.txt}
PNG=${PROC_PNG:-$ROOT/doc/proc-bench.png}

RAM=$((2048 << 20))
HOME_START=$((1024 << 20))
HOME_LEN=$((RAM - HOME_START))
NBD_PORT=10809

# grun leaves the guest's output in GOUT (see scripts/lib/bench.sh).
BENCH_NAME=bench-proc BENCH_MARK=BP BENCH_GOUT=1 MED_KIND=build
# shellcheck source=scripts/lib/bench.sh
. "$ROOT/scripts/lib/bench.sh"

# ---- the table and the plot, from PROC_RAW -----------------------------

mib() { awk -v k="$1" 'BEGIN { if (k == "nan") print "nan"; else print k / 1024 }'; }
count() { grep -c "^${2:-build} name=$1 " "$RAWOUT" || true; }

report() {
	local c d r floor none_ps none_in
	floor=$(med floor build_ms)
	none_ps=$(med none ps_s guest)
	none_in=$(med none in_kib guest)
	{
		sed -n 's/^# //p' "$RAWOUT"
		echo "floor (all 2 GiB local, direct mount): build $floor ms over $(count floor) run(s), $(med floor remote_kib) KiB remote"
		echo "guest ps with no build before (after the page-out): $none_ps s, paged in $none_in KiB"
		echo "one QMP command from a minimal client: query-status $(med query-status us diag) us, vmem-page-in of a remote 4K chunk $(med page-in-4K us diag) us (bash); $(med py-query-status us diag) / $(med py-page-in-4K us diag) us (python)"
		echo
		printf '%-5s|%2s|%7s %7s %6s|%6s %6s|%6s %6s|%6s %6s|%6s %6s|%6s %6s|%6s %6s|%6s %6s|%4s\n' \
			chunk n direct rpaging rp/dir aux-d aux-rp \
			req-d req-rp got-d got-rp 2nd-d 2nd-rp gps-d gps-rp \
			gin-d gin-rp mem-d mem-rp cut
		printf '%-5s|%2s|%7s %7s %6s|%6s %6s|%6s %6s|%6s %6s|%6s %6s|%6s %6s|%6s %6s|%6s %6s|%4s\n' \
			"" "" "(a)ms" "(a)ms" "" s s "" "" KiB KiB ms ms "(b)s" "(b)s" \
			MiB MiB "(c)MiB" "(c)MiB" ""
		for c in $CHUNKS; do
			d=$(med "direct-$c" build_ms)
			r=$(med "remote-paging-$c" build_ms)
			printf '%-5s|%2s|%7.0f %7.0f %6s|%6.2f %6.2f|%6.0f %6.0f|%6.0f %6.0f|%6.0f %6.0f|%6.2f %6.2f|%6.1f %6.1f|%6.0f %6.0f|%4s\n' \
				"$c" "$(count "direct-$c")" "$d" "$r" \
				"$(ratio "$r" "$d")" \
				"$(med "direct-$c" aux_s)" \
				"$(med "remote-paging-$c" aux_s)" \
				"$(med "direct-$c" requests)" \
				"$(med "remote-paging-$c" requests)" \
				"$(med "direct-$c" fetched_kib)" \
				"$(med "remote-paging-$c" fetched_kib)" \
				"$(med "direct-$c" build2_ms)" \
				"$(med "remote-paging-$c" build2_ms)" \
				"$(med "direct-$c" ps_s guest)" \
				"$(med "remote-paging-$c" ps_s guest)" \
				"$(mib "$(med "direct-$c" in_kib guest)")" \
				"$(mib "$(med "remote-paging-$c" in_kib guest)")" \
				"$(med "direct-$c" memfile_mib)" \
				"$(med "remote-paging-$c" memfile_mib)" \
				"$(grep -E "^build name=(direct|remote-paging)-$c " "$RAWOUT" |
					grep -vc ' cut=0 ' || true)"
		done
		echo
		echo "(a) shadow /proc build time: stats proc.last_build_ms of the one build one opendir of proc/ (\`ls MNT/proc\`) caused; floor: $floor ms"
		echo "aux: wall time of \`vmemfs-exec MNT ps aux >/dev/null\` right after (it builds again, $(med direct-64K aux_builds) time)"
		echo "req: sub-host requests of that build (direct: NBD reads; remote paging: vmem-page-in commands); got: KiB they moved"
		echo "the build read $(med direct-64K local_kib) KiB locally and $(med direct-64K remote_kib) KiB from the sub-host (stats proc.last_bytes_*, direct 64K)"
		echo "(b) busybox \`ps\` in the guest afterwards, host round trip minus an empty command's; gin: what it paged in (query-vmem bytes-in)"
		echo "2nd: the build of that ps aux (the IDS's next look: what stayed on the main host)"
		echo "(c) memory file allocated right after the build; $(med none memfile_mib guest) MiB after the guest's ps with no build before"
		echo "n: repetitions per backend; cut: builds cut by their time budget (must be 0)"
		echo "goal: rp/dir <= 1.3 at chunks >= 64K"
	} | tee "$OUT"
	plot
}

plot() {
	local dat=${TMP:-/tmp}/proc-plot.$$.dat i=0 c term
	for c in $CHUNKS; do
		echo "$i $c $(med "direct-$c" build_ms) $(med "remote-paging-$c" build_ms) $(med floor build_ms) $(med "direct-$c" ps_s guest) $(med "remote-paging-$c" ps_s guest) $(med none ps_s guest) $(med "direct-$c" memfile_mib) $(med "remote-paging-$c" memfile_mib) $(mib "$(med "direct-$c" remote_kib)")"
		i=$((i + 1))
	done >"$dat"
	if gnuplot -e 'set terminal pngcairo' -e 'exit' 2>/dev/null; then
		term="pngcairo size 1500,460 font 'sans,10'"
	else
		term="png size 1500,460"
	fi
	mkdir -p "$(dirname "$PNG")"
	gnuplot <<EOF
set terminal $term
set output '$PNG'
set multiplot layout 1,3 title "Shadow /proc of a split VM: 2 GiB TCG guest, [1G,2G) on an NBD sub-host, $NPROCS+ processes"
set xlabel 'chunk size'
set grid ytics
set key top right
set logscale y
set ylabel 'milliseconds (log)'
set title '(a) shadow /proc build'
plot '$dat' using 1:3:xtic(2) with linespoints lw 2 pt 7 title 'direct fetch', \
     '' using 1:4 with linespoints lw 2 pt 5 title 'VM remote paging', \
     '' using 1:5 with lines dt 2 lw 2 title 'all memory local (floor)'
unset logscale y
set yrange [0:*]
set ylabel 'seconds'
set key bottom left opaque box
set title '(b) ps in the guest afterwards'
plot '$dat' using 1:6:xtic(2) with linespoints lw 2 pt 7 title 'after direct fetch', \
     '' using 1:7 with linespoints lw 2 pt 5 title 'after VM remote paging', \
     '' using 1:8 with lines dt 2 lw 2 title 'no build before'
set ylabel 'MiB'
set key top left opaque box
set title '(c) main-host memory the build added (memory file)'
plot '$dat' using 1:(\$9-\$9):xtic(2) with linespoints lw 2 pt 7 title 'direct fetch', \
     '' using 1:(\$10-\$9) with linespoints lw 2 pt 5 title 'VM remote paging', \
     '' using 1:11 with lines dt 2 lw 2 title 'remote bytes the build read'
unset multiplot
EOF
	rm -f "$dat"
	log "table in $OUT, raw lines in $RAWOUT, plot in $PNG"
}

if [ "${PROC_REPLOT:-0}" = 1 ]; then
	[ -s "$RAWOUT" ] || die "PROC_REPLOT=1 needs $RAWOUT from an earlier run"
	report
	exit 0
fi

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, FUSE)"
[ -x "$QEMU" ] || die "$QEMU missing: run scripts/build-qemu.sh"
[ -r "$GUEST/vmlinuz" ] || die "$GUEST/vmlinuz missing: run scripts/build-qemu.sh"
[ -x "$GUEST/vmt-procs" ] ||
	die "$GUEST/vmt-procs missing: run scripts/guest/build-guest.sh"
command -v gnuplot >/dev/null || die "gnuplot missing (make deps)"
command -v nbdkit >/dev/null || die "nbdkit missing (make deps)"
make -s -C "$ROOT" build/vmemfs build/vmemfs-exec >&2

# ---- state, and its teardown ------------------------------------------

TMP=$(mktemp -d /tmp/vmt-bproc.XXXXXX)
MEM=/dev/shm/vmt-bproc-$$.mem
NS=vmtbp$$
VH=vbph$$
VN=vbpn$$
NET=$((($$ % 250) + 1))
HA=10.215.$NET.1
NA=10.215.$NET.2
URI=nbd://$NA:$NBD_PORT
QMP2=$TMP/vmemfs-qmp.sock
MNT=$TMP/mnt
QEMU_PID='' NBD_PID='' VFS_PID='' SER='' QMP=''

cleanup() {
	local rc=$?
	set +e
	if [ "$rc" != 0 ] && [ -d "$TMP" ]; then
		mkdir -p "$B/proc-bench-logs"
		cp "$TMP"/*.log "$B/proc-bench-logs/" 2>/dev/null
		echo "bench-proc: failed ($rc); logs in $B/proc-bench-logs" >&2
	fi
	split_vm_down
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- QMP (TCP, this script's own connection: qmp in scripts/lib) -------

stop_guest() {
	if [ "$PAUSE" = 1 ]; then qmp '{"execute":"stop"}' >/dev/null; fi
}

cont_guest() {
	if [ "$PAUSE" = 1 ]; then qmp '{"execute":"cont"}' >/dev/null; fi
}

# ---- one measured run --------------------------------------------------

# guest_ps NAME RUN: time busybox ps in the running guest, minus an empty
# command's round trip; what it paged in; the memory file afterwards.
guest_ps() {
	local t0 t1 t2 t3 in0 in1 n
	t0=$(now)
	grun true 60 || die "guest: true failed"
	t1=$(now)
	in0=$(vmem_field bytes-in)
	t2=$(now)
	grun "ps | wc -l" 600 || die "guest ps failed: $GOUT"
	t3=$(now)
	n=${GOUT//[!0-9]/}
	in1=$(vmem_field bytes-in)
	echo "guest name=$1 ps_s=$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" \
		'BEGIN { x = (d - c) - (b - a); printf "%.3f", x < 0 ? 0 : x }') empty_s=$(elapsed "$t0" "$t1") in_kib=$(((in1 - in0) >> 10)) lines=$n memfile_mib=$(memfile_mib) run=$2" |
		tee -a "$RAWOUT" >&2
}

# stats_field KEY: the first "KEY": N in the mount's stats.
stats_field() {
	kill -0 "$VFS_PID" 2>/dev/null ||
		die "vmemfs exited: $(tail -5 "$TMP/vmemfs.log")"
	grep -o "\"$1\": *[0-9]*" "$MNT/stats" | head -n 1 | grep -o '[0-9]*$'
}

# mount_vmemfs BACKEND CHUNK: mount, and wait until the kernel is known.
mount_vmemfs() {
	local conf=$TMP/vmemfs.conf i t0 k
	cat >"$conf" <<EOF
[bp]
memory-file  = $MEM
backend      = $1
chunk-size   = $2
# The build's time budget is the timeout: large, so no build is cut.
timeout      = 60s
qmp          = $QMP2
tls          = off
proc-refresh = 0ms
EOF
	mkdir -p "$MNT"
	"$VMEMFS" -f -c "$conf" "$MNT" >"$TMP/vmemfs.log" 2>&1 &
	VFS_PID=$!
	for i in $(seq 200); do
		[ -e "$MNT/stats" ] && break
		kill -0 "$VFS_PID" 2>/dev/null ||
			die "vmemfs exited: $(tail -5 "$TMP/vmemfs.log")"
		[ "$i" = 200 ] && die "vmemfs did not mount"
		sleep 0.05
	done
	t0=$(now)
	for i in $(seq 600); do
		k=$(cat "$MNT/kernel" 2>&1) || k="\"error\": $k"
		case $k in *'"error"'*) ;; *'"release"'*) break ;; esac
		[ "$i" = 600 ] && die "kernel not recognised in 300 s: ${k:0:300}"
		sleep 0.5
	done
	KERNEL_S=$(elapsed "$t0" "$(now)")
}

umount_vmemfs() {
	kill "$VFS_PID"
	wait "$VFS_PID" || true
	VFS_PID=
	fusermount3 -u -z "$MNT" 2>/dev/null || true
}

# The p50 per-request latency (us) of the sub-host in the mount's stats
# (over the mount's life: recognition's requests too).
sub_p50() {
	awk '/"subhosts"/ { s = 1 } s && /"p50"/ { gsub(/[^0-9.]/, "", $2);
		print $2; exit }' "$MNT/stats"
}

# build NAME RUN: one full build: one opendir of proc/ (`ls`) with
# proc-refresh = 0; then `vmemfs-exec MNT ps aux` (one more build, at its
# opendir of /proc, from what the first left where it was).
build() {
	local b0 b1 c0 c1 t0 t1 t2 in0 in1 r0 r1 y0 y1 lines line
	b0=$(stats_field builds)
	c0=$(stats_field builds_cut)
	in0=$(vmem_field bytes-in)
	r0=$(stats_field requests)
	y0=$(stats_field bytes)
	t0=$(now)
	ls "$MNT/proc" >"$TMP/ls.out" || die "ls $MNT/proc on $1: $(tail -3 "$TMP/vmemfs.log")"
	t1=$(now)
	in1=$(vmem_field bytes-in)
	r1=$(stats_field requests)
	y1=$(stats_field bytes)
	b1=$(stats_field builds)
	c1=$(stats_field builds_cut)
	[ "$b1" = $((b0 + 1)) ] ||
		die "$1: one opendir made $((b1 - b0)) builds, not 1 (proc-refresh = 0?)"
	lines=$(grep -c '^[0-9]' "$TMP/ls.out")
	[ "$lines" -gt "$NPROCS" ] ||
		die "$1: proc/ lists only $lines pids"
	line="build name=$1 build_ms=$(stats_field last_build_ms) ls_s=$(elapsed "$t0" "$t1") local_kib=$(($(stats_field last_bytes_local) >> 10)) remote_kib=$(($(stats_field last_bytes_remote) >> 10)) vm_in_kib=$(((in1 - in0) >> 10)) requests=$((r1 - r0)) fetched_kib=$(((y1 - y0) >> 10)) req_p50_us=$(sub_p50) pids=$lines cut=$((c1 - c0)) memfile_mib=$(memfile_mib) kernel_s=$KERNEL_S"
	"$VEXEC" "$MNT" ps aux >"$TMP/psaux.out" 2>"$TMP/psaux.err" ||
		die "vmemfs-exec ps aux on $1: $(head -3 "$TMP/psaux.err")"
	t2=$(now)
	lines=$(grep -c . "$TMP/psaux.out")
	[ "$lines" -gt "$NPROCS" ] ||
		die "$1: ps aux listed only $lines lines: $(head -3 "$TMP/psaux.out")"
	echo "$line aux_s=$(elapsed "$t1" "$t2") aux_lines=$lines aux_builds=$(($(stats_field builds) - b1)) build2_ms=$(stats_field last_build_ms) remote2_kib=$(($(stats_field last_bytes_remote) >> 10)) run=$2" |
		tee -a "$RAWOUT" >&2
}

# run_one BACKEND CHUNK RUN
run_one() {
	stop_guest
	page_out_home
	mount_vmemfs "$1" "$2"
	# Recognition read guest memory too: back to the same split.
	page_out_home
	sleep 0.2	# the direct backend's cache-ttl (100ms)
	build "$1-$2" "$3"
	umount_vmemfs
	cont_guest
	guest_ps "$1-$2" "$3"
}

# none RUN: the guest's ps right after the page-out, with no build.
run_none() {
	stop_guest
	page_out_home
	cont_guest
	guest_ps none "$1"
}

# diag_qmp NAME JSON: the mean time of 200 such commands (OFF in JSON is
# replaced by distinct offsets in the homed half).
diag_qmp() {
	local i t0 t1
	t0=$(now)
	for i in $(seq 200); do
		qmp "${2//OFF/$((HOME_START + i * 65536 + 4096))}" >/dev/null ||
			die "QMP $1 failed"
	done
	t1=$(now)
	echo "diag name=$1 us=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1e6 / 200 }')" |
		tee -a "$RAWOUT" >&2
}

# diag_py: the same two from a minimal client that reads whole lines (a
# bash `read` on a socket costs a system call per byte), on the second QMP
# socket (vmemfs's, free between mounts); page-ins at other offsets.
diag_py() {
	/usr/bin/python3 - "$QMP2" "$HOME_START" <<'PYEOF' | tee -a "$RAWOUT" >&2
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rb")
def cmd(c):
    s.sendall((json.dumps(c) + "\n").encode())
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            return r
f.readline()
cmd({"execute": "qmp_capabilities"})
for name, mk in (("py-query-status", lambda i: {"execute": "query-status"}),
                 ("py-page-in-4K", lambda i: {"execute": "vmem-page-in",
                  "arguments": {"offset": int(sys.argv[2]) + i * 65536 + 32768,
                                "length": 4096}})):
    t = time.monotonic()
    for i in range(1, 201):
        r = cmd(mk(i))
        if "error" in r:
            sys.exit("%s: %s" % (name, r))
    print("diag name=%s us=%.0f" % (name, (time.monotonic() - t) * 1e6 / 200))
PYEOF
}

# ---- set up, then measure ---------------------------------------------

measure() {
	local run c reps
	log "sub-host: nbdkit in namespace $NS at $URI"
	subhost_up 2G

	cat >"$TMP/qemu.conf" <<EOF
[bp]
memory-file = $MEM
ram-size    = 2G
chunk-size  = 64K
timeout     = 10s
subhost     = $URI 1G-2G
tls         = off
EOF

	log "booting the guest (TCG, 2 GiB, [1G, 2G) homed on the sub-host)"
	T0=$(now)
	qemu_split_boot "$MEM" "$RAM" 2048 "$TMP/qemu.conf" bp "$QMP2" 300
	log "guest up in $(elapsed "$T0" "$(now)") s; starting the zoo, 3 modules and $NPROCS processes"
	grun "hostname vmt-bench && vmt-procs start && insmod /lib/modules/tcp_vegas.ko && insmod /lib/modules/tcp_yeah.ko && insmod /lib/modules/dummy.ko" 300 ||
		die "guest: zoo or modules failed: ${GOUT:0:300}"
	case $GOUT in *VMT-PROCS-READY*) ;; *) die "guest: no zoo: ${GOUT:0:300}" ;; esac
	# The spacer (4K at a time) takes the pages the ballast's dd freed
	# when it exited (1 MiB buffer, its stack): freed pages are reused
	# first, and would otherwise take the processes back to the low half.
	grun "dd if=/dev/zero of=/tmp/ballast bs=1M count=$BALLAST_MIB 2>&1 && dd if=/dev/zero of=/tmp/spacer bs=4K count=1024 2>&1" 600 ||
		die "guest: ballast: ${GOUT:0:300}"
	log "guest: ballast ${BALLAST_MIB}M written; memory file $(memfile_mib) MiB"
	# Each its own comm (PR_SET_NAME from the role) and its own
	# arguments; fd 3 is the ready pipe vmt-procs child writes to.
	grun "i=0; while [ \$i -lt $NPROCS ]; do i=\$((i + 1)); n=\$(printf %03d \$i); vmt-procs child vmt-b-\$n --bench=\$n --arg-\$n-abcdefghijklmnopqrstuvwxyz --arg2-\$n-0123456789 3>/dev/null >/dev/null 2>&1 & done; sleep 2" 600 ||
		die "guest: could not start $NPROCS processes"
	grun "ls -d /proc/[0-9]* | wc -l; grep -l vmt-b- /proc/[0-9]*/comm 2>/dev/null | wc -l" 120 ||
		die "guest: cannot count processes"
	# shellcheck disable=SC2086
	set -- $GOUT
	[ "${2:-0}" -ge "$NPROCS" ] ||
		die "guest: only ${2:-0} of $NPROCS vmt-b processes run"
	grun "rm /tmp/ballast /tmp/spacer" 120 || die "guest: rm ballast: $GOUT"
	log "guest: $1 processes, $2 of them vmt-b-NNN; ballast removed"

	: >"$RAWOUT"
	{
		echo "bench-proc $(date -u +%FT%TZ): 2 GiB TCG guest, [1G,2G) on $URI (nbdkit in a netns), pager chunk 64K"
		echo "guest: $1 processes ($2 vmt-b-NNN, the zoo, kernel threads), 3 modules, started behind a ${BALLAST_MIB}M ballast; paused during builds: $([ "$PAUSE" = 1 ] && echo yes || echo no)"
		echo "host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); median of $RUNS run(s), $RUNS_SMALL for 4K and 16K"
	} | sed 's/^/# /' >>"$RAWOUT"

	for run in $(seq "$RUNS"); do
		log "run $run/$RUNS"
		run_none "$run"
		for c in $CHUNKS; do
			reps=$RUNS
			case $c in 4K | 16K) reps=$RUNS_SMALL ;; esac
			[ "$run" -le "$reps" ] || continue
			run_one direct "$c" "$run"
			run_one remote-paging "$c" "$run"
		done
	done

	# What one command costs, from this script's own QMP client: a no-op
	# (query-status), and vmem-page-in of one remote 4K chunk (distinct
	# chunks, 64K apart, of the freshly paged-out homed half).
	stop_guest
	page_out_home
	diag_qmp query-status '{"execute":"query-status"}'
	diag_qmp page-in-4K '{"execute":"vmem-page-in","arguments":{"offset":OFF,"length":4096}}'
	diag_py

	log "floor: all memory local"
	stop_guest
	qmp "{\"execute\":\"vmem-page-in\",\"arguments\":{\"offset\":$HOME_START,\"length\":$HOME_LEN}}" >/dev/null ||
		die "vmem-page-in of the homed half failed"
	mount_vmemfs direct 64K
	for run in $(seq "$RUNS"); do
		build floor "$run"
	done
	umount_vmemfs
	cont_guest
}

measure
report
