#!/bin/bash
# SPDX-License-Identifier: MIT
#
# scripts/bench-libvirt.sh - remote paging through libvirt against a
# direct QMP socket, on one split VM under libvirt (README, "VMs under
# libvirt").
#
# Sets up, and tears down again also on error or Ctrl-C (everything by
# PID, in names with "libvirt" in them):
#   - virtlogd and libvirtd started by hand in a mount namespace of their
#     own (private /etc/libvirt, /run, /var/{lib,cache,log}/libvirt, and a
#     /dev/userfaultfd node root:kvm 0660 as the udev rule makes it), as
#     tests/check_qemu_libvirt.c does;
#   - a network namespace with `nbdkit memory 512M`, the sub-host, home of
#     RAM [256M, 512M);
#   - a domain: the test guest under TCG, 512 MiB of shared file memory on
#     /dev/shm, vmem-split, QEMU as libvirt-qemu, and one more QMP socket
#     (-qmp in <qemu:commandline>) for the direct way.
# Then for each chunk size and way (libvirt: vmemfs --domain; socket:
# memory-file + qmp = the extra socket; each also with -qmp, page-in
# commands over QMP instead of the pager's control socket), LV_RUNS times: the homed
# half is paged out (QMP through libvirt), the domain is suspended,
# vmemfs is mounted with backend remote-paging, bench/ids_reader reads
# `ram` (scattered small reads over the homed half, then a sequential
# scan), and vmemfs is unmounted.  The median of each is printed, with
# the ratio libvirt / socket measured in the same run.
#
# Knobs: LV_CHUNKS ["64K 1M"], LV_RUNS [3], LV_NSCATTER [1024],
# LV_SCATTER_BS [256], LV_SCAN_LEN [64M], LV_SCAN_BS [64K].
# Needs root.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build
VMEMFS=${VMEMFS:-$B/vmemfs}
READER=$B/bench/ids_reader
QEMU=${VMEM_QEMU:-$B/qemu/qemu-system-x86_64}
CHUNKS=${LV_CHUNKS:-64K 1M}
RUNS=${LV_RUNS:-3}
NSCATTER=${LV_NSCATTER:-1024}
SCATTER_BS=${LV_SCATTER_BS:-256}
SCAN_LEN=${LV_SCAN_LEN:-64M}
SCAN_BS=${LV_SCAN_BS:-64K}
NS=vmt-lvbench-$$
DOM=vmt-lvbench-$$
PORT=22810
D=$(mktemp -d /tmp/vmt-lvbench.XXXXXX)
SHM=/dev/shm/vmt-lvbench-$$
chmod 755 "$D"
URI="qemu+unix:///system?socket=$D/run/libvirt/libvirt-sock"
NBD_PID= REAPER_PID=

log() { echo "bench-libvirt: $*" >&2; }
virsh_() { virsh -q -c "$URI" "$@"; }

cleanup() {
	set +e
	for m in "$D"/mnt*; do
		mountpoint -q "$m" 2>/dev/null && fusermount3 -u -z "$m"
	done
	if [ -f "$D/libvirtd.pid" ]; then
		virsh_ destroy "$DOM" >/dev/null 2>&1
		kill "$(cat "$D/libvirtd.pid")" 2>/dev/null
		sleep 1
	fi
	[ -f "$D/virtlogd.pid" ] && kill "$(cat "$D/virtlogd.pid")" 2>/dev/null
	[ -n "$NBD_PID" ] && kill "$NBD_PID" 2>/dev/null
	[ -n "$REAPER_PID" ] && kill "$REAPER_PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	ip link del "vlb$$h" 2>/dev/null
	rm -rf "$SHM" "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make -s -C "$ROOT" build/vmemfs build/bench/ids_reader >&2

# ---- libvirtd, privately ------------------------------------------------
mkdir -p "$D"/{etc/hooks,run,lib/qemu,cache/qemu,log/qemu,s} "$SHM"
chmod 1777 "$D/s"
cat >"$D/etc/libvirtd.conf" <<EOF
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
EOF
echo "# defaults" >"$D/etc/virtlogd.conf"
cat >"$D/etc/qemu.conf" <<EOF
memory_backing_dir = "$SHM"
security_driver = "none"
cgroup_device_acl = [ "/dev/null", "/dev/full", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/ptmx", "/dev/kvm", "/dev/userfaultfd" ]
EOF
rdev=$(stat -c '%t %T' /dev/userfaultfd)
mknod "$D/uffd" c $((16#${rdev% *})) $((16#${rdev#* }))
chgrp kvm "$D/uffd" && chmod 0660 "$D/uffd"
# The emulator tree libvirt wants, hard-linked to our QEMU.
EMU=$B/libvirt-qemu/bin/qemu-system-x86_64
mkdir -p "$B/libvirt-qemu/bin" "$B/libvirt-qemu/share"
ln -f "$QEMU" "$EMU"
ln -sfn "$(dirname "$QEMU")/share" "$B/libvirt-qemu/share/qemu"
# The sub-reaper keeps libvirt's daemonized QEMUs from reparenting to
# whatever started us (see check_qemu_libvirt.c).
unshare -m --propagation private --fork /usr/bin/python3 -c '
import ctypes, os, subprocess, sys
d = sys.argv[1]
ctypes.CDLL(None).prctl(36, 1)          # PR_SET_CHILD_SUBREAPER
for src, dst in (("etc", "/etc/libvirt"), ("run", "/run"),
                 ("lib", "/var/lib/libvirt"), ("cache", "/var/cache/libvirt"),
                 ("log", "/var/log/libvirt"), ("uffd", "/dev/userfaultfd")):
    subprocess.check_call(["mount", "--bind", d + "/" + src, dst])
os.makedirs("/run/libvirt", exist_ok=True)
subprocess.check_call(["virtlogd", "-d", "-p", d + "/virtlogd.pid"])
subprocess.check_call(["libvirtd", "-d", "-p", d + "/libvirtd.pid"])
try:
    while True:
        os.wait()
except ChildProcessError:
    pass
' "$D" &
REAPER_PID=$!
for _ in $(seq 100); do virsh_ uri >/dev/null 2>&1 && break; sleep 0.1; done
virsh_ uri >/dev/null

# ---- the sub-host ------------------------------------------------------
ip netns add "$NS"
ip link add "vlb$$h" type veth peer name "vlb$$n"
ip link set "vlb$$n" netns "$NS"
ip addr add 10.213.250.1/30 dev "vlb$$h" && ip link set "vlb$$h" up
ip -n "$NS" addr add 10.213.250.2/30 dev "vlb$$n"
ip -n "$NS" link set "vlb$$n" up && ip -n "$NS" link set lo up
ip netns exec "$NS" nbdkit -f -i 10.213.250.2 -p $PORT memory 512M &
NBD_PID=$!
SUB=nbd://10.213.250.2:$PORT

# ---- the domain -------------------------------------------------------
cp "$B/guest/vmlinuz" "$B/guest/initramfs.cpio.gz" "$D/"
cat >"$D/vmt.conf" <<EOF
[$DOM]
domain = $DOM
libvirt = $URI
ram-size = 512M
chunk-size = 64K
timeout = 10s
tls = off
subhost = $SUB 256M-512M
EOF
chmod 644 "$D/vmt.conf"
cat >"$D/dom.xml" <<EOF
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$DOM</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$D/vmlinuz</kernel><initrd>$D/initramfs.cpio.gz</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline></os>
  <devices>
    <emulator>$EMU</emulator>
    <serial type='file'><source path='$D/s/serial.log'/></serial>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-object'/>
    <qemu:arg value='vmem-split,id=vs0,memdev=pc.ram,config=$D/vmt.conf,vm=$DOM'/>
    <qemu:arg value='-qmp'/>
    <qemu:arg value='unix:$D/s/qmp.sock,server=on,wait=off'/>
  </qemu:commandline>
</domain>
EOF
virsh_ define "$D/dom.xml" >/dev/null
virsh_ start "$DOM" >/dev/null
for _ in $(seq 600); do
	grep -q VMT-GUEST-READY "$D/s/serial.log" 2>/dev/null && break
	sleep 0.1
done
grep -q VMT-GUEST-READY "$D/s/serial.log" || { log "guest did not boot"; exit 1; }
MEMFILE=$(virsh_ qemu-monitor-command "$DOM" '{"execute":"query-vmem"}' |
	sed -n 's/.*"memory-file":"\([^"]*\)".*/\1/p')
log "domain $DOM up; QEMU as $(ps -o user= -p "$(cat "$D/run/libvirt/qemu/$DOM.pid")"); memory file $MEMFILE"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

one_run() {	# WAY[-qmp] CHUNK -> "scatter_s scan_s total_s"
	local way=${1%-qmp} chunk=$2 mnt=$D/mnt conf=$D/bench.conf out chan=
	# -qmp: page-in commands over QMP (through libvirt or the socket),
	# not the pager's control socket.
	[ "$1" != "$way" ] && chan=qmp
	virsh_ resume "$DOM" >/dev/null 2>&1 || true
	virsh_ qemu-monitor-command "$DOM" \
		'{"execute":"vmem-page-out","arguments":{"offset":268435456,"length":268435456}}' >/dev/null
	virsh_ suspend "$DOM" >/dev/null
	if [ "$way" = libvirt ]; then
		printf '[%s]\ndomain = %s\nlibvirt = %s\nchunk-size = %s\ntimeout = 10s\nbackend = remote-paging\n' \
			"$DOM" "$DOM" "$URI" "$chunk" >"$conf"
	else
		printf '[%s]\nmemory-file = %s\nqmp = %s\nchunk-size = %s\ntimeout = 10s\nbackend = remote-paging\n' \
			"$DOM" "$MEMFILE" "$D/s/qmp.sock" "$chunk" >"$conf"
	fi
	mkdir -p "$mnt"
	VMEMFS_PAGE_IN_CHANNEL=$chan "$VMEMFS" -f -c "$conf" --vm "$DOM" "$mnt" 2>"$D/vmemfs.log" &
	local vpid=$!
	for _ in $(seq 100); do [ -e "$mnt/ram" ] && break; sleep 0.1; done
	out=$("$READER" -n "$way" "$mnt/ram" 256M 256M "$NSCATTER" "$SCATTER_BS" \
		256M "$SCAN_LEN" "$SCAN_BS") || { tail -5 "$D/vmemfs.log" >&2; exit 1; }
	fusermount3 -u "$mnt"
	wait "$vpid"
	echo "$out" | sed -n 's/.*scatter_s=\([0-9.]*\) scan_s=\([0-9.]*\) total_s=\([0-9.]*\).*/\1 \2 \3/p'
}

printf '%-6s %-8s %10s %10s %10s\n' chunk way scatter_s scan_s total_s
for chunk in $CHUNKS; do
	declare -A tot=()
	for way in socket libvirt socket-qmp libvirt-qmp; do
		: >"$D/r"
		for _ in $(seq "$RUNS"); do one_run "$way" "$chunk" >>"$D/r"; done
		s=$(cut -d' ' -f1 "$D/r" | median)
		c=$(cut -d' ' -f2 "$D/r" | median)
		t=$(cut -d' ' -f3 "$D/r" | median)
		tot[$way]=$t
		printf '%-6s %-8s %10s %10s %10s\n' "$chunk" "$way" "$s" "$c" "$t"
	done
	awk -v a="${tot[libvirt]}" -v b="${tot[socket]}" -v c="$chunk" \
		-v d="${tot[libvirt-qmp]}" -v e="${tot[socket-qmp]}" \
		'BEGIN {printf "%-6s libvirt/socket total: %.2fx (page-ins on the pager control socket), %.2fx (page-ins over QMP)\n", c, a / b, d / e}'
done
