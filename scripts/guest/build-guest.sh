#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build the test guest: Debian bookworm's cloud kernel (the vmlinuz of
# linux-image-cloud-amd64's dependency), its debug vmlinux (from the
# matching -dbg package, for drgn and crash), and a busybox-static
# initramfs whose /init is scripts/guest/init.  Only `apt-get download`
# reaches the network.  No kernel modules are needed to boot: the serial
# console, tmpfs, devtmpfs and gzip initramfs support are built into the
# kernel.  A few small modules from the same kernel package ($MODULES: two
# without dependencies, and tcp_yeah, which uses tcp_vegas) go into
# /lib/modules/ of the initramfs, for tests that load them (insmod
# /lib/modules/dummy.ko) and read them back out of guest memory
# (/proc/modules, lsmod, holders).
#
# The cloud kernel rather than the standard one: it boots this guest the
# same way, and its -dbg package is 283 MB instead of 929 MB.
#
# Output:  build/guest/vmlinuz  build/guest/initramfs.cpio.gz
#          (with /lib/modules/qemu_fw_cfg.ko, not loaded by default)
#          build/guest/vmlinux  (DWARF of exactly that vmlinuz)
#          build/guest/kernel-version  (vmlinuz-<release>)
#          build/guest/vmt-procs  (tests/guest/vmt-procs.c, also in the
#          initramfs as /bin/vmt-procs)
# Idempotent: nothing is downloaded or rebuilt when the outputs are there
# and newer than their inputs; a cache holding another kernel (the
# standard one of earlier versions of this script) is replaced.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/guest
DEBS=$OUT/debs
INIT=$ROOT/scripts/guest/init
FLAVOUR=cloud-amd64
MODULES="drivers/net/dummy.ko drivers/net/nlmon.ko"
MODULES="$MODULES net/ipv4/tcp_vegas.ko net/ipv4/tcp_yeah.ko"

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

mkdir -p "$DEBS"
cd "$DEBS"

# The real kernel package behind the linux-image-cloud-amd64 metapackage.
kpkg() {
	apt-cache depends "linux-image-$FLAVOUR" 2>/dev/null |
		sed -nE 's/^ *Depends: (linux-image-[0-9][^ ]*)$/\1/p' | head -n 1
}

fetch() {	# fetch PKG [VERSION]: download its .deb unless one is here
	local pkg=$1 ver=${2:-}
	ls "$DEBS/${pkg}"_*.deb >/dev/null 2>&1 && return 0
	log "apt-get download $pkg${ver:+=$ver}"
	apt-get download -q "$pkg${ver:+=$ver}" >&2 2>/dev/null ||
		{ apt-get update -q >&2 &&
		  apt-get download -q "$pkg${ver:+=$ver}" >&2; } ||
		die "cannot download $pkg${ver:+=$ver}"
}

# A vmlinuz of another flavour (or none) is rebuilt.
case $(cat "$OUT/kernel-version" 2>/dev/null) in
vmlinuz-*-$FLAVOUR) ;;
*) rm -f "$OUT/vmlinuz" "$OUT/vmlinux" "$OUT/vmlinux-version" ;;
esac

if [ ! -s "$OUT/vmlinuz" ]; then
	k=$(kpkg)
	if [ -z "$k" ]; then
		apt-get update -q >&2
		k=$(kpkg)
	fi
	[ -n "$k" ] || die "linux-image-$FLAVOUR has no kernel dependency"
	fetch "$k"
	rm -rf "$OUT/kx"
	dpkg-deb -x "$DEBS/${k}"_*.deb "$OUT/kx"
	v=$(ls "$OUT"/kx/boot/vmlinuz-* | head -n 1)
	[ -f "$v" ] || die "no vmlinuz in $k"
	cp "$v" "$OUT/vmlinuz.new"
	mv "$OUT/vmlinuz.new" "$OUT/vmlinuz"
	basename "$v" >"$OUT/kernel-version"
	rm -rf "$OUT/kx"	# modules are not used
	log "kernel: $(cat "$OUT/kernel-version")"
fi

# The debug vmlinux of exactly this kernel: same release, same Debian
# version of the package.  Only ./usr/lib/debug/boot/vmlinux-* is taken
# out of the -dbg package (the modules' debug info is most of its 1.7 GB
# unpacked), and the 283 MB .deb is dropped afterwards.
rel=$(sed 's/^vmlinuz-//' "$OUT/kernel-version")

# qemu_fw_cfg.ko, in the initramfs as /lib/modules/qemu_fw_cfg.ko: once
# loaded, it hands the guest's VMCOREINFO to QEMU's -device vmcoreinfo, so
# that QEMU's own dump-guest-memory carries it (scripts/bench-kernel.sh
# compares vmcore with that dump).  Nothing loads it by default.
if [ ! -s "$OUT/qemu_fw_cfg.ko" ]; then
	kdeb=$(ls "$DEBS/linux-image-${rel}"_*.deb 2>/dev/null | head -n 1)
	[ -n "$kdeb" ] || fetch "linux-image-$rel"
	kdeb=$(ls "$DEBS/linux-image-${rel}"_*.deb | head -n 1)
	dpkg-deb --fsys-tarfile "$kdeb" |
		tar -xO --wildcards \
			"./lib/modules/$rel/kernel/drivers/firmware/qemu_fw_cfg.ko" \
			>"$OUT/qemu_fw_cfg.ko.new" ||
		die "no qemu_fw_cfg.ko in $kdeb"
	mv "$OUT/qemu_fw_cfg.ko.new" "$OUT/qemu_fw_cfg.ko"
fi

if [ ! -s "$OUT/vmlinux" ] ||
   [ "$(cat "$OUT/vmlinux-version" 2>/dev/null)" != "$rel" ]; then
	kdeb=$(ls "$DEBS/linux-image-${rel}"_*.deb 2>/dev/null | head -n 1)
	[ -n "$kdeb" ] || die "no .deb of linux-image-$rel in $DEBS"
	kver=$(dpkg-deb -f "$kdeb" Version)
	dbg=linux-image-${rel}-dbg
	fetch "$dbg" "$kver"
	rm -rf "$OUT/dx"
	mkdir -p "$OUT/dx"
	dpkg-deb --fsys-tarfile "$DEBS/${dbg}"_*.deb |
		tar -x -C "$OUT/dx" --wildcards "./usr/lib/debug/boot/vmlinux-*" ||
		die "no ./usr/lib/debug/boot/vmlinux-* in $dbg"
	[ -s "$OUT/dx/usr/lib/debug/boot/vmlinux-$rel" ] ||
		die "$dbg has no vmlinux-$rel"
	mv "$OUT/dx/usr/lib/debug/boot/vmlinux-$rel" "$OUT/vmlinux"
	echo "$rel" >"$OUT/vmlinux-version"
	rm -rf "$OUT/dx" "$DEBS/${dbg}"_*.deb
	log "debug vmlinux: $(stat -c %s "$OUT/vmlinux") bytes"
fi

# The test modules, out of the kernel package of exactly this vmlinuz.
if [ "$(cat "$OUT/modules/list" 2>/dev/null)" != "$rel $MODULES" ]; then
	kdeb=$(ls "$DEBS/linux-image-${rel}"_*.deb 2>/dev/null | head -n 1)
	[ -n "$kdeb" ] || fetch "linux-image-$rel"
	kdeb=$(ls "$DEBS/linux-image-${rel}"_*.deb | head -n 1)
	rm -rf "$OUT/modules" "$OUT/mx"
	mkdir -p "$OUT/modules" "$OUT/mx"
	for m in $MODULES; do
		dpkg-deb --fsys-tarfile "$kdeb" |
			tar -x -C "$OUT/mx" "./lib/modules/$rel/kernel/$m" ||
			die "no $m in $kdeb"
		cp "$OUT/mx/lib/modules/$rel/kernel/$m" "$OUT/modules/"
	done
	rm -rf "$OUT/mx"
	echo "$rel $MODULES" >"$OUT/modules/list"
	rm -f "$OUT/initramfs.cpio.gz"
	log "modules: $MODULES"
fi

# The process and socket zoo of the shadow /proc tests, static so that it
# needs nothing of the guest (tests/guest/vmt-procs.c).
PROCS_SRC=$ROOT/tests/guest/vmt-procs.c
if [ ! -s "$OUT/vmt-procs" ] || [ "$PROCS_SRC" -nt "$OUT/vmt-procs" ]; then
	${CC:-gcc} -static -O2 -Wall -Wextra -Werror -pthread \
		-o "$OUT/vmt-procs.new" "$PROCS_SRC" ||
		die "cannot build $PROCS_SRC (gcc -static needs libc6-dev)"
	mv "$OUT/vmt-procs.new" "$OUT/vmt-procs"
fi

if [ ! -s "$OUT/initramfs.cpio.gz" ] || [ "$INIT" -nt "$OUT/initramfs.cpio.gz" ] ||
   [ "$OUT/vmt-procs" -nt "$OUT/initramfs.cpio.gz" ] ||
   [ "$OUT/qemu_fw_cfg.ko" -nt "$OUT/initramfs.cpio.gz" ]; then
	fetch busybox-static
	rm -rf "$OUT/bx" "$OUT/root"
	dpkg-deb -x "$DEBS"/busybox-static_*.deb "$OUT/bx"
	mkdir -p "$OUT/root/bin" "$OUT/root/dev" "$OUT/root/proc" \
		"$OUT/root/sys" "$OUT/root/tmp" "$OUT/root/lib/modules"
	cp "$OUT/bx/bin/busybox" "$OUT/root/bin/busybox"
	install -m 0755 "$OUT/vmt-procs" "$OUT/root/bin/vmt-procs"
	cp "$OUT"/modules/*.ko "$OUT/root/lib/modules/"
	cp "$OUT/qemu_fw_cfg.ko" "$OUT/root/lib/modules/qemu_fw_cfg.ko"
	install -m 0755 "$INIT" "$OUT/root/init"
	# The kernel opens /dev/console before /init runs, when there is
	# no devtmpfs yet, so the node must be in the archive.
	mknod -m 600 "$OUT/root/dev/console" c 5 1
	command -v cpio >/dev/null || die "cpio is needed (apt-get install cpio)"
	(
		cd "$OUT/root"
		find . -print0 | sort -z |
			cpio --null -o -H newc --owner=0:0 --quiet
	) | gzip -9 >"$OUT/initramfs.cpio.gz.new"
	mv "$OUT/initramfs.cpio.gz.new" "$OUT/initramfs.cpio.gz"
	rm -rf "$OUT/bx" "$OUT/root"
	log "initramfs: $(stat -c %s "$OUT/initramfs.cpio.gz") bytes"
fi
echo "$OUT"
