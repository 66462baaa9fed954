#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build the test guest: Debian bookworm's kernel (linux-image-amd64's
# vmlinuz) and a busybox-static initramfs whose /init is scripts/guest/init.
# Only `apt-get download` reaches the network.  No kernel modules are
# needed: the serial console, tmpfs, devtmpfs and gzip initramfs support
# are built into Debian's kernel.
#
# Output:  build/guest/vmlinuz  build/guest/initramfs.cpio.gz
# Idempotent: nothing is downloaded or rebuilt when the outputs are newer
# than their inputs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/guest
DEBS=$OUT/debs
INIT=$ROOT/scripts/guest/init

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

mkdir -p "$DEBS"
cd "$DEBS"

# The real kernel package behind the linux-image-amd64 metapackage.
kpkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -nE 's/^ *Depends: (linux-image-[0-9][^ ]*)$/\1/p' | head -n 1
}

fetch() {	# fetch PKG: download its .deb unless one is already here
	local pkg=$1
	ls "$DEBS/${pkg}"_*.deb >/dev/null 2>&1 && return 0
	log "apt-get download $pkg"
	apt-get download -q "$pkg" >&2 2>/dev/null ||
		{ apt-get update -q >&2 && apt-get download -q "$pkg" >&2; } ||
		die "cannot download $pkg"
}

if [ ! -s "$OUT/vmlinuz" ]; then
	k=$(kpkg)
	if [ -z "$k" ]; then
		apt-get update -q >&2
		k=$(kpkg)
	fi
	[ -n "$k" ] || die "linux-image-amd64 has no kernel dependency"
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

if [ ! -s "$OUT/initramfs.cpio.gz" ] || [ "$INIT" -nt "$OUT/initramfs.cpio.gz" ]; then
	fetch busybox-static
	rm -rf "$OUT/bx" "$OUT/root"
	dpkg-deb -x "$DEBS"/busybox-static_*.deb "$OUT/bx"
	mkdir -p "$OUT/root/bin" "$OUT/root/dev" "$OUT/root/proc" \
		"$OUT/root/sys" "$OUT/root/tmp"
	cp "$OUT/bx/bin/busybox" "$OUT/root/bin/busybox"
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
