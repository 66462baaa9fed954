#!/bin/bash
# SPDX-License-Identifier: MIT
#
# scripts/bench-kernel.sh - what knowing the guest kernel costs (issue 9).
#
# For a 1 GiB and a 4 GiB guest (TCG, the test guest booting Debian's
# cloud kernel with KASLR), RAM [SIZE/2, SIZE) homed on an nbdkit sub-host
# in a network namespace, the guest having written SIZE/4 of random data
# into its tmpfs and then paused (QMP stop):
#   recognise  mount vmemfs and wait until `kernel` is known: wall time
#              and the library's recognition_ms, with all RAM local and
#              with the homed half paged out (all but the chunk holding
#              the VMCOREINFO note, so the note stays local); against
#              reading as many bytes of `mem` as recognition read
#              (vmemfs stats), sequentially from 0, on a fresh mount
#   drgn       drgn listing the tasks from `vmcore`, and from QEMU's
#              dump-guest-memory (paging=true) of the same paused guest
#   copy       cp of all of `vmcore` vs QEMU's dump-guest-memory
#              (paging=false), and reading all of `mem`
# Ratios are printed; target: cp vmcore >= 0.8x the speed of reading mem.
# QEMU runs with -device vmcoreinfo and the guest loads qemu_fw_cfg, so
# that QEMU's dump has a VMCOREINFO note (drgn refuses it otherwise).
#
#   scripts/bench-kernel.sh        (BENCH_KERNEL_SIZES="1 4" GiB)
#
# The table goes to stdout and build/bench-kernel.txt.  Needs root, about
# SIZE x 3 free in /dev/shm, and a few minutes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build
QEMU=${VMEM_QEMU:-$B/qemu/qemu-system-x86_64}
VMEMFS=${VMEMFS:-$B/vmemfs}
GUEST=$B/guest
SIZES=${BENCH_KERNEL_SIZES:-"1 4"}
OUT=$B/bench-kernel.txt
CHUNK=65536
NBD_PORT=10809

BENCH_NAME=bench-kernel BENCH_MARK=BK BENCH_QMP_SECS=600
# shellcheck source=scripts/lib/bench.sh
. "$ROOT/scripts/lib/bench.sh"

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, FUSE)"
[ -x "$QEMU" ] || die "$QEMU missing: run scripts/build-qemu.sh"
"$ROOT/scripts/guest/build-guest.sh" >/dev/null
make -s -C "$ROOT" build/vmemfs >&2

TMP=$(mktemp -d /tmp/vmt-bk.XXXXXX)
MEM=/dev/shm/vmt-bk-$$.mem
NS=vmtbk$$
VH=vbkh$$
VN=vbkn$$
NET=$((($$ % 250) + 1))
HA=10.215.$NET.1
NA=10.215.$NET.2
URI=nbd://$NA:$NBD_PORT
MNT=$TMP/mnt
QEMU_PID= NBD_PID= VFS_PID= SER= QMP=

stop_vm() {
	split_vm_down
	rm -f "$TMP"/dump-*.elf "$TMP"/copy.core
	rm -f /dev/shm/vmt-bk-$$-*.elf /dev/shm/vmt-bk-$$-copy.core
}

cleanup() {
	set +e
	stop_vm
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# boot_vm GIB: sub-host, QEMU, guest up with SIZE/4 of random data, paused.
boot_vm() {
	local gib=$1
	subhost_up "${gib}G"
	cat >"$TMP/qemu.conf" <<EOF
[bk]
memory-file = $MEM
ram-size    = ${gib}G
chunk-size  = 64K
timeout     = 5s
subhost     = $URI $((gib * 512))M-${gib}G
tls         = off
EOF
	cat >"$TMP/vmemfs.conf" <<EOF
[bk]
memory-file = $MEM
chunk-size  = 64K
timeout     = 5s
qmp         = $TMP/vmemfs-qmp.sock
tls         = off
EOF
	qemu_split_boot "$MEM" "${gib}G" "$((gib * 1024))" "$TMP/qemu.conf" bk \
		"$TMP/vmemfs-qmp.sock" 300 -device vmcoreinfo
	# The guest's VMCOREINFO to QEMU, or drgn refuses QEMU's own dump.
	grun "insmod /lib/modules/qemu_fw_cfg.ko" 120 >/dev/null ||
		die "the guest could not load qemu_fw_cfg"
	grun "dd if=/dev/urandom of=/tmp/data bs=1M count=$((gib * 256)) 2>/dev/null" 900 >/dev/null ||
		die "the guest could not write its data"
	qmp '{"execute":"stop"}' >/dev/null
}

mount_vmemfs() {
	mkdir -p "$MNT"
	"$VMEMFS" -f -c "$TMP/vmemfs.conf" "$MNT" >"$TMP/vmemfs.log" 2>&1 &
	VFS_PID=$!
	for i in $(seq 400); do
		[ -e "$MNT/mem" ] && return
		kill -0 "$VFS_PID" 2>/dev/null || die "vmemfs exited: $(tail -5 "$TMP/vmemfs.log")"
		sleep 0.05
	done
	die "vmemfs did not mount"
}

json_num() { grep -o "\"$1\": *-\?[0-9]*" | head -n 1 | grep -o -- '-\?[0-9]*$'; }

# recognise LABEL: mount, wait for `kernel`, then read as many bytes of
# `mem` on a fresh mount.  Prints one result line.
recognise() {
	local t0 t1 k ms bytes mib t2 t3
	mount_vmemfs
	t0=$(now)
	for i in $(seq 1200); do
		k=$(cat "$MNT/kernel")
		case $k in *'"release"'*) break ;; esac
		sleep 0.05
	done
	t1=$(now)
	case $k in *'"release"'*) ;; *) die "kernel not recognised: $k" ;; esac
	ms=$(json_num recognition_ms <<<"$k")
	NOTE_GPA=$(json_num vmcoreinfo_gpa <<<"$k")
	# Every byte recognition read went through the reader: its counters.
	bytes=$(grep -oE '"bytes_(local|remote|zero)": *[0-9]+' "$MNT/stats" |
		awk -F': *' '{ n += $2 } END { print n }')
	vmemfs_down
	mib=$(((bytes + 1048575) >> 20))
	mount_vmemfs
	t2=$(now)
	dd if="$MNT/mem" of=/dev/null bs=1M count="$mib" 2>/dev/null
	t3=$(now)
	vmemfs_down
	printf '%-4s %-24s %9s %9s %9s %9s %8s\n' "${GIB}G" "$1" "$ms" \
		"$(elapsed "$t0" "$t1")" "$mib" "$(elapsed "$t2" "$t3")" \
		"$(ratio "$(awk -v m="$ms" 'BEGIN { print m / 1000 }')" \
			 "$(elapsed "$t2" "$t3")")" | tee -a "$OUT.new"
}

# page_out_but_note: the homed half out to the sub-host, except the 2 MiB
# holding the note (the scan asks local-or-not per 2 MiB; pc: RAM above 3G
# sits at 4G when RAM >= 3.5G).
page_out_but_note() {
	local size=$((GIB << 30)) home=$((GIB << 29)) ram nc keep=$((2 << 20))
	ram=$NOTE_GPA
	if [ "$GIB" -ge 4 ] && [ "$NOTE_GPA" -ge $((4 << 30)) ]; then
		ram=$((NOTE_GPA - (1 << 30)))
	fi
	nc=$((ram / keep * keep))
	if [ "$nc" -ge "$home" ]; then
		[ "$nc" -gt "$home" ] && qmp "{\"execute\":\"vmem-page-out\",\"arguments\":{\"offset\":$home,\"length\":$((nc - home))}}" >/dev/null
		[ $((nc + keep)) -lt "$size" ] && qmp "{\"execute\":\"vmem-page-out\",\"arguments\":{\"offset\":$((nc + keep)),\"length\":$((size - nc - keep))}}" >/dev/null
	else
		qmp "{\"execute\":\"vmem-page-out\",\"arguments\":{\"offset\":$home,\"length\":$((size - home))}}" >/dev/null
	fi
	true
}

drgn_tasks() {	# drgn_tasks CORE OUT: the tasks ("pid comm") into OUT
	/usr/bin/drgn -q -c "$1" -s "$GUEST/vmlinux" "$TMP/tasks.py" >"$2" 2>&1 ||
		true
}

# tools: drgn and copies on the paused, all-local guest.
tools() {
	local t0 t1 td tq nd nq size msize tc tcm tm tp tv
	cat >"$TMP/tasks.py" <<'EOF'
from drgn.helpers.linux.pid import for_each_task
for t in sorted(for_each_task(prog), key=lambda t: t.pid.value_()):
    print(t.pid.value_(), t.comm.string_().decode())
EOF
	mount_vmemfs
	cat "$MNT/kernel" >/dev/null
	t0=$(now); drgn_tasks "$MNT/vmcore" "$TMP/tasks-vmcore"; t1=$(now)
	nd=$(wc -l <"$TMP/tasks-vmcore")
	td=$(elapsed "$t0" "$t1")
	t0=$(now)
	qmp "{\"execute\":\"dump-guest-memory\",\"arguments\":{\"paging\":true,\"protocol\":\"file:/dev/shm/vmt-bk-$$-paging.elf\"}}" >/dev/null
	t1=$(now)
	tp=$(elapsed "$t0" "$t1")
	t0=$(now); drgn_tasks "/dev/shm/vmt-bk-$$-paging.elf" "$TMP/tasks-dump"; t1=$(now)
	tq=$(elapsed "$t0" "$t1")
	if cmp -s "$TMP/tasks-vmcore" "$TMP/tasks-dump"; then
		nq="the same $nd tasks"
	else
		nq="DIFFERENT: $(diff "$TMP/tasks-vmcore" "$TMP/tasks-dump" | head -n 4 | tr '\n' ' ')"
	fi
	rm -f "/dev/shm/vmt-bk-$$-paging.elf"
	printf '%-4s drgn tasks: vmcore %s s (%s tasks); dump-guest-memory paging=true %s s, then drgn %s s: %s; ratio (dump + drgn) / vmcore %s\n' \
		"${GIB}G" "$td" "$nd" "$tp" "$tq" "${nq:0:120}" \
		"$(ratio "$(awk -v a="$tp" -v b="$tq" 'BEGIN { print a + b }')" "$td")"
	size=$(stat -c %s "$MNT/vmcore")
	t0=$(now); cp "$MNT/vmcore" "/dev/shm/vmt-bk-$$-copy.core"; t1=$(now)
	tc=$(elapsed "$t0" "$t1")
	rm -f "/dev/shm/vmt-bk-$$-copy.core"
	t0=$(now); cp "$MNT/mem" "/dev/shm/vmt-bk-$$-copy.core"; t1=$(now)
	tcm=$(elapsed "$t0" "$t1")
	rm -f "/dev/shm/vmt-bk-$$-copy.core"
	t0=$(now); dd if="$MNT/mem" of=/dev/null bs=1M 2>/dev/null; t1=$(now)
	tm=$(elapsed "$t0" "$t1")
	t0=$(now); dd if="$MNT/vmcore" of=/dev/null bs=1M 2>/dev/null; t1=$(now)
	tv=$(elapsed "$t0" "$t1")
	msize=$(stat -c %s "$MNT/mem")
	t0=$(now)
	qmp "{\"execute\":\"dump-guest-memory\",\"arguments\":{\"paging\":false,\"protocol\":\"file:/dev/shm/vmt-bk-$$-plain.elf\"}}" >/dev/null
	t1=$(now)
	tq=$(elapsed "$t0" "$t1")
	rm -f "/dev/shm/vmt-bk-$$-plain.elf"
	vmemfs_down
	printf '%-4s copy to /dev/shm: cp vmcore %s s (%s MB/s), cp mem %s s (%s MB/s), dump-guest-memory paging=false %s s (%s MB/s); to /dev/null: read vmcore %s s (%s MB/s), read mem %s s (%s MB/s)\n' \
		"${GIB}G" "$tc" "$(mbps "$size" "$tc")" "$tcm" "$(mbps "$msize" "$tcm")" \
		"$tq" "$(mbps "$size" "$tq")" "$tv" "$(mbps "$size" "$tv")" \
		"$tm" "$(mbps "$msize" "$tm")"
	printf '%-4s speed ratios: cp vmcore / cp mem %s (target >= 0.8); cp vmcore / read mem %s; read vmcore / read mem %s; cp vmcore / dump-guest-memory %s\n' \
		"${GIB}G" "$(ratio "$(awk -v a="$size" -v t="$tc" 'BEGIN { print a / t }')" "$(awk -v a="$msize" -v t="$tcm" 'BEGIN { print a / t }')")" \
		"$(ratio "$(awk -v a="$size" -v t="$tc" 'BEGIN { print a / t }')" "$(awk -v a="$msize" -v t="$tm" 'BEGIN { print a / t }')")" \
		"$(ratio "$(awk -v a="$size" -v t="$tv" 'BEGIN { print a / t }')" "$(awk -v a="$msize" -v t="$tm" 'BEGIN { print a / t }')")" \
		"$(ratio "$tq" "$tc")"
}

{
	echo "# bench-kernel $(date -u +%FT%TZ): $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# guest: TCG, $(cat "$GUEST/kernel-version"), KASLR; RAM [SIZE/2, SIZE) homed on nbdkit in a netns; paused"
	echo "# recog ms: the library's recognition_ms (from the mount); known s: mount to kernel known;"
	echo "# read MiB: what recognition read (vmemfs stats); mem s: reading as much of mem from 0; ratio: recog / mem"
	printf '%-4s %-24s %9s %9s %9s %9s %8s\n' size state "recog ms" "known s" "read MiB" "mem s" "ratio"
} | tee "$OUT.new"
for GIB in $SIZES; do
	log "booting a ${GIB} GiB guest"
	boot_vm "$GIB"
	recognise "all local"
	tools | tee -a "$OUT.new"
	page_out_but_note
	recognise "half remote, note local"
	stop_vm
done
mv "$OUT.new" "$OUT"
