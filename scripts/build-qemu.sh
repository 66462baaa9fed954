#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build a patched qemu-system-x86_64 from Debian bookworm's own QEMU source
# plus the series in qemu-patches/, into build/qemu/.
#
#   scripts/build-qemu.sh            build (or do nothing if up to date)
#   scripts/build-qemu.sh --force    rebuild even if the stamp matches
#
# Layout (all under build/, never committed):
#   build/qemu-src/              apt-get source output; the extracted tree
#                                is a git repo whose tag "debian" is the
#                                source exactly as dpkg-source left it
#   build/qemu-src/<tree>/_b/    the meson build directory (incremental)
#   build/qemu/qemu-system-x86_64   the result
#   build/qemu/share/            firmware dir for -L (seabios + option ROMs)
#   build/qemu/stamp             hash of everything the result depends on
#
# Why not reset and re-patch the whole tree each time: patched files such
# as qapi/qapi-schema.json regenerate headers that most of QEMU includes,
# so rewriting them with a new mtime costs a near-full rebuild.  Instead
# the series is applied to copies of the files it touches, and only files
# whose content really changed are written into the tree.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build
SRC=$B/qemu-src
OUT=$B/qemu
PATCHES=$ROOT/qemu-patches
QEMU_VERSION_GLOB='qemu-7.2+dfsg'
# Our own C files compiled into QEMU; the patch series refers to this dir.
VMEM_SUBDIR=backends/vmem
FORCE=0
[ "${1:-}" = --force ] && FORCE=1
# Debian's python3 and meson, not a python a user may have put first in
# PATH (configure runs whatever "python3" is, and meson needs its own).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# Packages the build needs (also in DEPS_PKGS of the Makefile).
BUILD_PKGS="dpkg-dev build-essential ninja-build meson pkg-config \
libglib2.0-dev libpixman-1-dev libfdt-dev libnbd-dev seabios gcc-multilib"
# gcc-multilib: configure only builds the x86 option ROMs (linuxboot_dma.bin,
# needed for -kernel) when it can link 32-bit code against libgcc.

log() { echo "build-qemu: $*" >&2; }
die() { echo "build-qemu: error: $*" >&2; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. A deb-src entry for the mirror this machine already uses.
ensure_deb_src() {
	if grep -rqsE '^[[:space:]]*(Types:.*deb-src|deb-src[[:space:]])' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null; then
		return 0
	fi
	local f=/etc/apt/sources.list.d/debian.sources
	local dst=/etc/apt/sources.list.d/vmemtrans-deb-src.sources
	if [ -f "$f" ]; then
		# Same stanzas (URIs, suites, keyring), source type only.
		log "adding $dst (deb-src twin of $f)"
		sed -E 's/^Types:.*/Types: deb-src/' "$f" |
			as_root tee "$dst" >/dev/null
	elif grep -qsE '^deb[[:space:]]' /etc/apt/sources.list; then
		dst=/etc/apt/sources.list.d/vmemtrans-deb-src.list
		log "adding $dst (deb-src twin of /etc/apt/sources.list)"
		grep -E '^deb[[:space:]]' /etc/apt/sources.list |
			sed -E 's/^deb /deb-src /' | as_root tee "$dst" >/dev/null
	else
		die "no Debian apt source found to derive a deb-src entry from"
	fi
	as_root apt-get update -q
}

ensure_pkgs() {
	local missing=() p
	for p in $BUILD_PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}"
}

# 2. The Debian source, extracted once, as a git repo tagged "debian".
find_tree() {
	local d
	for d in "$SRC"/$QEMU_VERSION_GLOB; do
		[ -d "$d/.git" ] && [ -f "$d/VERSION" ] && { echo "$d"; return; }
	done
	return 1
}

ensure_source() {
	if TREE=$(find_tree); then
		return 0
	fi
	ensure_deb_src
	rm -rf "$SRC"
	mkdir -p "$SRC"
	log "apt-get source qemu"
	(cd "$SRC" && apt-get source -q qemu) >&2 ||
		{ as_root apt-get update -q &&
		  (cd "$SRC" && apt-get source -q qemu) >&2; } ||
		die "apt-get source qemu failed"
	local d
	for d in "$SRC"/$QEMU_VERSION_GLOB; do
		[ -f "$d/VERSION" ] && TREE=$d
	done
	[ -n "${TREE:-}" ] || die "no $QEMU_VERSION_GLOB tree after apt-get source"
	log "recording the pristine tree in git ($(cat "$TREE/VERSION"))"
	git -C "$TREE" init -q
	printf '/_b/\n/%s/\n' "$VMEM_SUBDIR" >"$TREE/.git/info/exclude"
	git -C "$TREE" add -A
	git -C "$TREE" -c user.name=vmemtrans -c user.email=vmemtrans@localhost \
		commit -q -m "Debian $(basename "$TREE") as apt-get source left it"
	git -C "$TREE" tag debian
}

# Write $2 to $1 only if the content differs (keeps mtimes, see top).
sync_file() {
	local src=$1 dst=$2
	if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
		return 0
	fi
	mkdir -p "$(dirname "$dst")"
	cp "$src" "$dst"
	log "  updated ${dst#$TREE/}"
}

# The series as git format-patch makes it (qemu-patches/README.md): in
# file order, [PATCH i/n] of one series, each patch signed off.
check_series() {
	local n=$# i=0 p subj want
	for p in "$@"; do
		i=$((i + 1))
		want="[PATCH $i/$n]"
		[ "$n" -eq 1 ] && want="[PATCH]"
		subj=$(sed -n '1,/^$/s/^Subject: //p' "$p")
		case $subj in
		"$want "*) ;;
		*) die "$p: subject '$subj' does not start with '$want'" \
		       "(regenerate the series, qemu-patches/README.md)" ;;
		esac
		grep -q '^Signed-off-by: ' "$p" ||
			die "$p: no Signed-off-by line"
	done
}

# 3. Bring the tree to: debian + qemu-patches/*.patch + our sources.
apply_series() {
	local stage=$B/qemu-stage state=$TREE/_b/vmem-touched
	rm -rf "$stage"
	mkdir -p "$stage/tree" "$TREE/_b"

	local patches=() p f
	shopt -s nullglob
	patches=("$PATCHES"/*.patch)
	shopt -u nullglob

	# Files the series touches, with their pristine content.
	local files=()
	if [ ${#patches[@]} -gt 0 ]; then
		mapfile -t files < <(cat "${patches[@]}" |
			sed -nE 's#^(\+\+\+|---) [ab]/([^[:space:]]+).*#\2#p' |
			sort -u)
	fi
	for f in "${files[@]}"; do
		if git -C "$TREE" cat-file -e "refs/tags/debian:$f" 2>/dev/null; then
			mkdir -p "$stage/tree/$(dirname "$f")"
			git -C "$TREE" show "refs/tags/debian:$f" >"$stage/tree/$f"
		fi
	done
	check_series "${patches[@]}"
	for p in "${patches[@]}"; do
		log "applying $(basename "$p")"
		patch -p1 -s -N -d "$stage/tree" <"$p" ||
			die "$(basename "$p") does not apply"
	done

	# Files an older series touched but this one does not: back to pristine.
	if [ -f "$state" ]; then
		while read -r f; do
			[ -e "$stage/tree/$f" ] && continue
			if git -C "$TREE" cat-file -e "refs/tags/debian:$f" 2>/dev/null; then
				git -C "$TREE" show "refs/tags/debian:$f" >"$stage/pristine"
				sync_file "$stage/pristine" "$TREE/$f"
			else
				rm -f "$TREE/$f"
			fi
		done <"$state"
	fi
	(cd "$stage/tree" && find . -type f | sed 's#^\./##') >"$state.new"
	while read -r f; do
		sync_file "$stage/tree/$f" "$TREE/$f"
	done <"$state.new"
	mv "$state.new" "$state"

	# Our library sources, copied as they are, keeping common/ and pager/
	# side by side so their relative #includes still work.
	local d
	for d in common pager; do
		mkdir -p "$stage/vmem/$d"
		for f in "$ROOT/$d"/*.[ch]; do
			[ -f "$f" ] && cp "$f" "$stage/vmem/$d/"
		done
	done
	# The meson list of what was copied (pager/ is still growing, so the
	# list is generated rather than fixed in a patch).
	{
		echo "# Generated by scripts/build-qemu.sh: vmemtrans sources."
		echo "vmem_lib_srcs = files("
		(cd "$stage/vmem" && ls common/*.c pager/*.c 2>/dev/null) |
			sed "s/.*/  '&',/"
		echo ")"
	} >"$stage/vmem/meson.build"
	(cd "$stage/vmem" && find . -type f | sed 's#^\./##') |
	while read -r f; do
		sync_file "$stage/vmem/$f" "$TREE/$VMEM_SUBDIR/$f"
	done
	if [ -d "$TREE/$VMEM_SUBDIR" ]; then
		(cd "$TREE/$VMEM_SUBDIR" && find . -type f | sed 's#^\./##') |
		while read -r f; do
			[ -e "$stage/vmem/$f" ] || rm -f "$TREE/$VMEM_SUBDIR/$f"
		done
	fi
	rm -rf "$stage"
}

CONFIGURE_ARGS=(
	--target-list=x86_64-softmmu
	--without-default-features
	--enable-kvm --enable-tcg
	--enable-fdt=system
	--disable-docs
	--disable-werror
	--disable-install-blobs
	--with-git-submodules=ignore
	--meson=/usr/bin/meson
)

configure_and_build() {
	local bdir=$TREE/_b want have
	want=$(printf '%s\n' "${CONFIGURE_ARGS[@]}")
	have=$(cat "$bdir/vmem-configure-args" 2>/dev/null || true)
	if [ ! -f "$bdir/build.ninja" ] || [ "$want" != "$have" ] ||
	   [ ! -f "$bdir/pc-bios/optionrom/config.mak" ]; then
		log "configure"
		(cd "$bdir" && ../configure "${CONFIGURE_ARGS[@]}") >&2 ||
			die "configure failed (see above)"
		printf '%s\n' "$want" >"$bdir/vmem-configure-args"
	fi
	log "building with $(nproc) jobs"
	make -C "$bdir" -j"$(nproc)" qemu-system-x86_64 >&2 ||
		die "build failed"
	# Option ROMs (linuxboot_dma.bin for -kernel) come from this tree;
	# everything else from Debian's seabios package.
	make -C "$bdir/pc-bios/optionrom" -j"$(nproc)" >&2 ||
		die "option ROM build failed"
}

install_result() {
	local bdir=$TREE/_b f
	mkdir -p "$OUT/share"
	cp "$bdir/qemu-system-x86_64" "$OUT/qemu-system-x86_64.new"
	mv "$OUT/qemu-system-x86_64.new" "$OUT/qemu-system-x86_64"
	for f in /usr/share/seabios/*; do
		ln -sfn "$f" "$OUT/share/$(basename "$f")"
	done
	for f in "$bdir"/pc-bios/optionrom/*.bin; do
		cp "$f" "$OUT/share/"
	done
	# The pc machine loads these by name; keymaps etc. are not needed
	# with -display none.
	for f in "$bdir"/pc-bios/*.bin; do
		[ -f "$f" ] && cp "$f" "$OUT/share/"
	done
	return 0
}

stamp_of() {
	{
		echo "tree $(basename "$TREE") $(git -C "$TREE" rev-parse refs/tags/debian)"
		printf 'arg %s\n' "${CONFIGURE_ARGS[@]}"
		sha256sum "$0"
		local f
		for f in "$PATCHES"/*.patch "$ROOT"/common/*.[ch] \
			 "$ROOT"/pager/*.[ch]; do
			[ -f "$f" ] && sha256sum "$f"
		done
		true
	} | sha256sum | cut -d' ' -f1
}

main() {
	local t0=$SECONDS stamp
	mkdir -p "$B"
	ensure_pkgs
	ensure_source
	stamp=$(stamp_of)
	# The test guest goes with the binary: a test that finds QEMU can
	# count on the guest too.  Cheap when it is already there.
	"$ROOT/scripts/guest/build-guest.sh" >/dev/null
	if [ $FORCE -eq 0 ] && [ -x "$OUT/qemu-system-x86_64" ] &&
	   [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$stamp" ]; then
		log "up to date ($OUT/qemu-system-x86_64)"
		return 0
	fi
	rm -f "$OUT/stamp"
	apply_series
	configure_and_build
	install_result
	echo "$stamp" >"$OUT/stamp"
	log "done in $((SECONDS - t0)) s: $OUT/qemu-system-x86_64"
}

main
