# SPDX-License-Identifier: MIT
#
# scripts/lib/bench.sh - what the split-VM benches (bench-compare.sh,
# bench-kernel.sh, bench-proc.sh) share: messages, timing arithmetic, the
# sub-host in a network namespace, booting the patched QEMU on it, and
# talking to QEMU (QMP) and to the guest (its serial console).  Sourced,
# never run.
#
# The sourcing script sets, before it calls anything here:
#   BENCH_NAME  prefix of messages ("bench-kernel")
#   BENCH_MARK  marker of grun's end lines in the console ("BK")
#   TMP         its run directory (logs: nbdkit.log, qemu.log)
#   NS VH VN    the namespace and the two ends of its veth pair
#   HA NA       the addresses of the host and namespace ends (/30)
#   NBD_PORT URI  where the sub-host listens, and its nbd:// URI
#   QEMU B GUEST  the QEMU binary, build/ and the test guest
#   BENCH_GOUT  1: grun leaves the guest's output in GOUT (optional)
#   MEM MNT     the memory file, and where vmemfs is mounted (teardown)
#   HOME_START HOME_LEN  the homed range (page_out_home)
#   RAWOUT MED_KIND  the raw result lines, and med's default line kind
# and reads back QEMU_PID, NBD_PID, SER and QMP (file descriptors), and
# with BENCH_GOUT=1 GOUT.
# Every wait here has a timeout; die() ends the script, whose EXIT trap
# stops what was started.

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
log() { echo "$BENCH_NAME: $*" >&2; }

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# ratio A B: A / B, or "-" when B is 0 or either is "nan" (no result).
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "nan" ||
		b == "nan") print "-"; else printf "%.2f", a / b }'
}
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / 1048576 / s }'; }

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		ss -ltnH "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
	die "no free TCP port"
}

# subhost_up SIZE: the namespace, its veth pair, and in it
# `nbdkit memory SIZE` at $URI, answering.
subhost_up() {
	local i
	ip netns add "$NS"
	ip link add "$VH" type veth peer name "$VN"
	ip link set "$VN" netns "$NS"
	ip addr add "$HA/30" dev "$VH"
	ip link set "$VH" up
	ip -n "$NS" addr add "$NA/30" dev "$VN"
	ip -n "$NS" link set "$VN" up
	ip -n "$NS" link set lo up
	ip netns exec "$NS" nbdkit -f -i "$NA" -p "$NBD_PORT" memory "$1" \
		>"$TMP/nbdkit.log" 2>&1 &
	NBD_PID=$!
	for i in $(seq 100); do
		nbdinfo --size "$URI" >/dev/null 2>&1 && break
		[ "$i" = 100 ] && die "nbdkit did not come up: $(cat "$TMP/nbdkit.log")"
		sleep 0.1
	done
}

# tcp_open VAR PORT: connect fd VAR to 127.0.0.1:PORT, retrying while
# QEMU creates its sockets (the QMP ones only after the serial client).
tcp_open() {
	local i fd
	for i in $(seq 300); do
		if exec {fd}<>"/dev/tcp/127.0.0.1/$2"; then
			printf -v "$1" '%s' "$fd"
			return
		fi 2>/dev/null
		kill -0 "$QEMU_PID" 2>/dev/null ||
			die "QEMU exited: $(tail -5 "$TMP/qemu.log")"
		sleep 0.1
	done
	die "cannot connect to QEMU's port $2"
}

# qemu_split_boot MEM SIZE MIB CONF VM QMP2 BOOT_SECS [QEMU ARGS...]:
# QEMU (TCG) on memory file MEM of SIZE (MIB MiB), split by vmemtrans
# config CONF ([VM]), a second QMP socket QMP2 for vmemfs, booting the
# test guest; returns when the guest says VMT-GUEST-READY, with SER and
# QMP connected (QMP in command mode).
qemu_split_boot() {
	local mem=$1 size=$2 mib=$3 conf=$4 vm=$5 qmp2=$6 secs=$7 sport qport
	local line
	shift 7
	sport=$(free_port)
	qport=$(free_port)
	[ "$sport" != "$qport" ] || qport=$((sport + 1))
	"$QEMU" -L "$B/qemu/share" -accel tcg -smp 1 -m "$mib" \
		-nodefaults -no-user-config -display none -no-reboot \
		-object "memory-backend-file,id=ram0,size=$size,mem-path=$mem,share=on" \
		-machine pc,memory-backend=ram0 "$@" \
		-object "vmem-split,id=vs0,memdev=ram0,config=$conf,vm=$vm" \
		-kernel "$GUEST/vmlinuz" -initrd "$GUEST/initramfs.cpio.gz" \
		-append "console=ttyS0 quiet panic=-1" \
		-chardev "socket,id=ser0,host=127.0.0.1,port=$sport,server=on,wait=on" \
		-serial chardev:ser0 \
		-qmp "tcp:127.0.0.1:$qport,server=on,wait=off" \
		-qmp "unix:$qmp2,server=on,wait=off" \
		>"$TMP/qemu.log" 2>&1 &
	QEMU_PID=$!
	tcp_open SER "$sport"
	tcp_open QMP "$qport"
	read -r -t 30 -u "$QMP" line || die "no QMP greeting"
	qmp '{"execute":"qmp_capabilities"}' >/dev/null
	while read -r -t "$secs" -u "$SER" line; do
		[ "$line" = VMT-GUEST-READY ] && break
	done
	[ "${line:-}" = VMT-GUEST-READY ] ||
		die "guest did not boot: $(tail -5 "$TMP/qemu.log")"
}

# qmp JSON: print the answer line; fail on {"error": ...}; die after
# ${BENCH_QMP_SECS:-300} s without an answer.
qmp() {
	local line
	printf '%s\n' "$1" >&"$QMP"
	while read -r -t "${BENCH_QMP_SECS:-300}" -u "$QMP" line; do
		case $line in
		'{"return"'*) echo "$line"; return 0 ;;
		'{"error"'*) log "QMP $1: $line"; return 1 ;;
		esac
	done
	die "QMP $1: no answer"
}

SEQ=0 GOUT=
# grun CMD TIMEOUT: run one shell line in the guest; its output on stdout,
# or with BENCH_GOUT=1 in GOUT instead (call it then not in a command
# substitution: SEQ must advance in this shell); returns its exit status.
grun() {
	local line out="" st
	SEQ=$((SEQ + 1))
	printf '%s; printf "\\n@@%s-%d %%d\\n" $?\n' "$1" "$BENCH_MARK" \
		"$SEQ" >&"$SER"
	while read -r -t "$2" -u "$SER" line; do
		case $line in
		"@@$BENCH_MARK-$SEQ "*) st=${line#"@@$BENCH_MARK-$SEQ "}
			if [ "${BENCH_GOUT:-0}" = 1 ]; then
				GOUT=$out
			else
				printf '%s' "$out"
			fi
			return "$st" ;;
		esac
		out+="$line"$'\n'
	done
	die "guest: \`$1\` timed out after $2 s (so far: ${out:0:300})"
}

# ---- the guest's memory, as QEMU and the main host see it -------------

# vmem_field KEY: the number after the first "KEY": in query-vmem's answer.
vmem_field() {
	qmp '{"execute":"query-vmem"}' |
		grep -o "\"$1\": *[0-9]*" | head -n 1 | grep -o '[0-9]*$'
}

# page_out_home: the whole homed range to the sub-host (vmem-page-out).
page_out_home() {
	qmp "{\"execute\":\"vmem-page-out\",\"arguments\":{\"offset\":$HOME_START,\"length\":$HOME_LEN}}" >/dev/null ||
		die "vmem-page-out failed"
}

# memfile_mib: what the memory file holds on the main host, in MiB.
memfile_mib() {
	echo $(( $(stat -c '%b * %B' "$MEM") >> 20 ))
}

# med NAME FIELD [KIND]: the median of FIELD over the raw lines
# "KIND name=NAME ..." (KIND defaults to MED_KIND); "nan" if none.
med() {
	grep "^${3:-$MED_KIND} name=$1 " "$RAWOUT" | grep -o " $2=[0-9.]*" |
		cut -d= -f2 | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "nan";
			else if (NR % 2) print v[(NR + 1) / 2];
			else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---- teardown ----------------------------------------------------------
# Both are safe to call at any point, twice, and under set -e.

# vmemfs_down: stop the vmemfs of VFS_PID and unmount MNT.
vmemfs_down() {
	if [ -n "${VFS_PID:-}" ]; then
		kill "$VFS_PID" 2>/dev/null || true
		wait "$VFS_PID" 2>/dev/null || true
	fi
	VFS_PID=
	fusermount3 -u -z "$MNT" 2>/dev/null || true
}

# split_vm_down: vmemfs, QEMU and the sub-host stopped, the namespace
# and its veth gone, the memory file and its sequence file removed.
split_vm_down() {
	vmemfs_down
	if [ -n "${QEMU_PID:-}" ]; then
		kill -9 "$QEMU_PID" 2>/dev/null || true
		wait "$QEMU_PID" 2>/dev/null || true
	fi
	if [ -n "${NBD_PID:-}" ]; then
		kill -9 "$NBD_PID" 2>/dev/null || true
		wait "$NBD_PID" 2>/dev/null || true
	fi
	QEMU_PID= NBD_PID=
	ip link del "$VH" 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	rm -f "$MEM" "$MEM.seq" "$MEM.ctl"
}
