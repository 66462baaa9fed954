#!/bin/bash
# vmemtrans quick demo (`make demo-file`; `make demo` is the full one, on
# a real split VM): a VM memory of 256 MiB split three ways, mounted as
# one file, with no VM and no QEMU.  Nothing is needed from the user;
# everything is made here, on loopback, and removed on exit.
#
#   [  0M,  64M)  on the main host, in the sparse memory file
#   [ 64M, 160M)  home: sub-host 1 (nbdkit on 127.0.0.1)
#   [160M, 256M)  home: sub-host 2 (nbdkit on 127.0.0.1)
#
# A marker string is put in each place; grep finds all three through
# `mem`, although the memory file itself holds only one.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
vmemfs=${VMEMFS:-$top/build/vmemfs}
[ -x "$vmemfs" ] || { echo "demo: $vmemfs not built; run 'make' first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "demo: run as root (FUSE mount, /dev/shm)" >&2; exit 1; }

work=$(mktemp -d /tmp/vmemtrans-demo.XXXXXX)
mem=/dev/shm/vmemtrans-demo-$$.mem
pids=()
vpid=
cleanup() {
	set +e
	# vmemfs first (it unmounts itself on SIGTERM), so that no read of
	# its is in flight when the sub-hosts go away.
	if [ -n "$vpid" ]; then
		kill "$vpid" 2>/dev/null
		wait "$vpid" 2>/dev/null
	fi
	if mountpoint -q "$work/mnt" 2>/dev/null; then
		fusermount3 -u "$work/mnt" 2>/dev/null || umount -l "$work/mnt"
	fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work" "$mem"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
	python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])
PY
}

MiB=$((1024 * 1024))
# The main host's share: data in [0, 64M), a hole elsewhere.
truncate -s 256M "$mem"
head -c $((64 * MiB)) /dev/urandom | dd of="$mem" conv=notrunc status=none
printf 'VMEMTRANS-DEMO-MARKER main-host\n' |
	dd of="$mem" bs=1 seek=$((40 * MiB)) conv=notrunc status=none

# Two sub-hosts, each serving the VM's full RAM size, holding data only
# in its home range (nbdkit's data plugin: a sparse, writable disk).
port1=$(free_port); port2=$(free_port)
while [ "$port2" = "$port1" ]; do port2=$(free_port); done
nbdkit --foreground --exit-with-parent -i 127.0.0.1 -p "$port1" data \
	data="@$((100 * MiB)) \"VMEMTRANS-DEMO-MARKER sub-host-1\" @$((64 * MiB)) \"DATA\"*1024" \
	size=256M &
pids+=($!)
nbdkit --foreground --exit-with-parent -i 127.0.0.1 -p "$port2" data \
	data="@$((200 * MiB)) \"VMEMTRANS-DEMO-MARKER sub-host-2\"" size=256M &
pids+=($!)

cat > "$work/vmemtrans.conf" <<CONF
[demo]
memory-file = $mem
ram-size    = 256M
backend     = direct
chunk-size  = 64K
cache-size  = 4M
cache-ttl   = 100ms
timeout     = 2s
subhost     = nbd://127.0.0.1:$port1   64M-160M
subhost     = nbd://127.0.0.1:$port2   160M-256M
CONF

for p in $port1 $port2; do
	for _ in $(seq 100); do
		nbdinfo --size "nbd://127.0.0.1:$p" >/dev/null 2>&1 && break
		sleep 0.05
	done
done

echo "== config ($work/vmemtrans.conf)"
"$vmemfs" --check-config -c "$work/vmemtrans.conf"
mkdir "$work/mnt"
"$vmemfs" -f -c "$work/vmemtrans.conf" "$work/mnt" &
vpid=$!
for _ in $(seq 100); do
	[ -e "$work/mnt/mem" ] && break
	sleep 0.05
done
[ -e "$work/mnt/mem" ] || { echo "demo: mount did not come up" >&2; exit 1; }

echo
echo "== ls -l $work/mnt"
ls -l "$work/mnt"
echo
echo "== the memory file on the main host holds $(du -k "$mem" | cut -f1) KiB of 262144 KiB"
echo "== markers in the memory file itself:"
grep -a -o 'VMEMTRANS-DEMO-MARKER [a-z0-9-]*' "$mem" | sed 's/^/   /' || true
echo "== markers in $work/mnt/mem (byte offset: text):"
grep -a -b -o 'VMEMTRANS-DEMO-MARKER [a-z0-9-]*' "$work/mnt/mem" | sed 's/^/   /'
echo
echo "== map"
cat "$work/mnt/map"
echo "== stats"
cat "$work/mnt/stats"
echo
echo "== the memory file still holds $(du -k "$mem" | cut -f1) KiB: reading it through vmemfs did not fill its holes"
