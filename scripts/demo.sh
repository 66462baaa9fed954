#!/bin/bash
# SPDX-License-Identifier: MIT
#
# vmemtrans demo (`make demo`): the whole mission on a real split VM, with
# nothing from the user.  Everything is made here and removed on exit,
# also on failure and on Ctrl-C.
#
#   1. build/demo/demo-vm (scripts/demo/demo-vm.c) boots the small test
#      guest under the patched QEMU, its RAM [256M, 512M) homed on an
#      nbdkit sub-host in a network namespace of its own; starts named
#      processes and TCP listeners in the guest (tests/guest/vmt-procs.c),
#      loads a module, writes a line to the guest's kernel log, and pages
#      the homed half out to the sub-host;
#   2. this script (run by demo-vm as `demo.sh --inside DIR`) mounts
#      vmemfs on the VM (direct backend: it reads the sub-host's pages
#      over NBD and changes nothing in the VM), waits for the guest kernel
#      to be recognised, and shows: the mount, the `kernel` file, ps aux,
#      netstat -tan, lsmod and the hostname through the shadow /proc
#      (vmemfs-exec), and the tail of the guest's log read from `vmcore`
#      by makedumpfile --dump-dmesg.  Each step checks what it shows (the
#      guest's processes, its listener, its module, its log line) and the
#      demo fails with a message naming the step otherwise;
#   3. vmemfs is unmounted and stopped, demo-vm stops QEMU and nbdkit by
#      PID and deletes the namespace and the memory file in /dev/shm.
#
# Needs root, the build (make), the patched QEMU and the test guest
# (make build/stamp/qemu build/stamp/guest; `make demo` builds them).
# Exit status 0, or nonzero with "demo: FAILED: ..." on stderr.
# scripts/demo-file.sh (make demo-file) is the quick variant: no VM.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${DEMO_BUILD:-$top/build}
vmemfs=$build/vmemfs
vexec=$build/vmemfs-exec
drv=$build/demo/demo-vm

die() {
	echo "demo: FAILED: $*" >&2
	exit 1
}

# ---- inside: run by demo-vm once the split VM is up ------------------

inside() {
	local t0 i
	# Global: the EXIT trap runs after this function has returned.
	work=$1 mnt=$1/mnt vpid= out=$1/out.txt log=$1/vmemfs.log

	inside_cleanup() {
		set +e
		trap '' INT TERM HUP
		# vmemfs unmounts itself on SIGTERM.
		if [ -n "$vpid" ]; then
			kill "$vpid" 2>/dev/null
			wait "$vpid" 2>/dev/null
		fi
		if mountpoint -q "$mnt" 2>/dev/null; then
			fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
		fi
	}
	trap inside_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP

	# step TITLE COMMAND...: show what runs, fail with its output if it
	# fails or takes over 2 minutes; its output is in $out.
	step() {
		local title=$1 rc=0
		shift
		echo
		echo "== $title"
		timeout 120 "$@" >"$out" 2>&1 || rc=$?
		if [ "$rc" = 124 ]; then
			die "step '$title' did not finish in 120 s"
		elif [ "$rc" != 0 ]; then
			sed 's/^/   | /' "$out" | tail -n 20 >&2
			die "step '$title' exited $rc"
		fi
	}
	# expect WHAT PATTERN: the last step's output must match.
	expect() {
		grep -qE -- "$2" "$out" ||
			die "$1: no line matching '$2' in the output above"
	}

	mkdir "$mnt"
	echo
	echo "== vmemfs -f -c $DEMO_CONF --vm vm $mnt"
	sed 's/^/   /' "$DEMO_CONF"
	"$vmemfs" -f -c "$DEMO_CONF" --vm vm "$mnt" >"$log" 2>&1 &
	vpid=$!
	for _ in $(seq 300); do
		[ -e "$mnt/mem" ] && break
		kill -0 "$vpid" 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -e "$mnt/mem" ]; then
		sed 's/^/   | /' "$log" | tail -n 20 >&2
		die "vmemfs did not mount $mnt within 30 s (its log above)"
	fi
	t0=$(date +%s%N)

	step "ls -l $mnt" ls -l "$mnt"
	cat "$out"
	# `map` lists every run of pages (hundreds here: the guest touched
	# pages of the homed half again after the page-out): summed up.
	step "cat $mnt/map    (summed by where the bytes are)" cat "$mnt/map"
	awk -F': ' '/"start"/ { s = $2 + 0 } /"end"/ { e = $2 + 0 }
		/"where"/ { w = $2; gsub(/[",]/, "", w); b[w] += e - s; n[w]++ }
		END { for (w in b) printf "   %-28s %6.1f MiB in %d runs\n",
			w, b[w] / 1048576, n[w] }' "$out" | sort
	expect "map" '"where": "nbd://'

	# The kernel is recognised in the background after the mount; until
	# then `kernel` says why not.
	for i in $(seq 120); do
		if cat "$mnt/kernel" >"$out" 2>&1 && ! grep -q '"error"' "$out"
		then
			break
		fi
		[ "$i" = 120 ] && { cat "$out" >&2
			die "the guest kernel was not recognised in 60 s"; }
		sleep 0.5
	done
	t0=$((($(date +%s%N) - t0) / 1000000))
	step "cat $mnt/kernel    (recognised $t0 ms after the mount)" \
		cat "$mnt/kernel"
	expect "kernel" '"release"'
	head -n 14 "$out"
	echo "  ... ($(wc -l <"$out") lines)"

	step "vmemfs-exec $mnt hostname" "$vexec" "$mnt" hostname
	cat "$out"
	expect "hostname" "^$DEMO_HOSTNAME\$"

	step "vmemfs-exec $mnt ps aux" "$vexec" "$mnt" ps aux
	for p in vmt-long vmt-threads vmt-user vmt-root vmt-net; do
		expect "ps aux" "vmt-procs child $p"
	done
	expect "ps aux" '^root +1 .*/init'
	# Kernel threads ([name]) are most of the list: counted, not shown.
	awk '$11 ~ /^\[/ { k++; next } { print } END {
		printf "   (and %d kernel threads)\n", k }' "$out" | cut -c1-150

	step "vmemfs-exec $mnt netstat -tan" "$vexec" "$mnt" netstat -tan
	cat "$out"
	expect "netstat -tan" '127\.0\.0\.1:7001 +0\.0\.0\.0:\* +LISTEN'
	expect "netstat -tan" 'ESTABLISHED'

	step "vmemfs-exec $mnt lsmod" "$vexec" "$mnt" lsmod
	cat "$out"
	expect "lsmod" '^tcp_vegas +[0-9]+ +[0-9]+'

	rm -f "$work/dmesg.txt"
	step "makedumpfile --dump-dmesg $mnt/vmcore $work/dmesg.txt" \
		makedumpfile --dump-dmesg "$mnt/vmcore" "$work/dmesg.txt"
	sed 's/^/   /' "$out"
	echo "== tail -n 4 $work/dmesg.txt"
	tail -n 4 "$work/dmesg.txt" | cut -c1-150
	grep -qF "$DEMO_KMSG" "$work/dmesg.txt" ||
		die "makedumpfile: the guest's log read from vmcore lacks" \
		    "the line the demo wrote to it ('$DEMO_KMSG')"

	# What the guest's own structures needed may all be local; show the
	# sub-host's half read too: 1 MiB of ram at 256M (the homed half).
	step "dd if=$mnt/ram bs=64K skip=4096 count=16 | md5sum    (1 MiB of the homed half)" \
		sh -c "dd if='$mnt/ram' bs=64K skip=4096 count=16 status=none | md5sum"
	cat "$out"
	step "grep bytes_ $mnt/stats" grep -E '"bytes_(local|remote)"' \
		"$mnt/stats"
	cat "$out"
	expect "stats after reading the homed half" '"bytes_remote": [1-9]'
	echo
	echo "demo: vmemfs read the VM's memory from the main host's memory" \
		"file and, over NBD, from the sub-host; reading changed" \
		"nothing in the VM"
}

if [ "${1:-}" = --inside ]; then
	inside "$2"
	exit 0
fi

# ---- outside: check, start demo-vm, clean up ---------------------------

[ "$(id -u)" = 0 ] || die "run as root (network namespace, FUSE mount," \
	"/dev/shm)"
for f in "$vmemfs" "$vexec" "$drv"; do
	[ -x "$f" ] || die "$f is not built: run 'make demo'"
done
for c in ip nbdkit makedumpfile ps netstat lsmod fusermount3 mountpoint \
	timeout; do
	command -v "$c" >/dev/null || die "'$c' not found: run 'make deps'"
done

start=$SECONDS
work=$(mktemp -d /tmp/vmemtrans-demo.XXXXXX)
ns=vmt-demo-$$
mem=/dev/shm/vmt-demo-$$.mem
dpid=

cleanup() {
	local rc=$?
	set +e
	trap '' INT TERM HUP
	if [ -n "$dpid" ] && kill -0 "$dpid" 2>/dev/null; then
		# It stops QEMU and nbdkit, deletes the namespace and the
		# memory file on SIGTERM.
		kill -TERM "$dpid"
		for _ in $(seq 300); do
			kill -0 "$dpid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$dpid" 2>/dev/null
		wait "$dpid" 2>/dev/null
	fi
	# What a killed demo-vm may leave behind, all named after our PID.
	if mountpoint -q "$work/mnt" 2>/dev/null; then
		fusermount3 -u "$work/mnt" 2>/dev/null || umount -l "$work/mnt"
	fi
	if ip netns list 2>/dev/null | grep -qw "$ns"; then
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$p" 2>/dev/null
		done
		ip netns del "$ns"
	fi
	rm -f "$mem" "$mem.seq" "$mem.ctl"
	rm -rf "$work"
	if [ "$rc" = 0 ]; then
		echo "demo: done in $((SECONDS - start)) s; QEMU, nbdkit," \
			"vmemfs, netns $ns and $mem are gone"
	else
		case $rc in
		129|130|143) what="interrupted (exit $rc)" ;;
		*) what="FAILED (exit $rc)" ;;
		esac
		echo "demo: $what after $((SECONDS - start)) s; what it" \
			"started is stopped and removed" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# In the background, so that a signal reaches our trap at once (demo-vm
# installs its own handlers, so it gets Ctrl-C too).
"$drv" -d "$work" -m "$mem" -n "$ns" -- "$top/scripts/demo.sh" --inside \
	"$work" &
dpid=$!
rc=0
wait "$dpid" || rc=$?
dpid=
exit "$rc"
