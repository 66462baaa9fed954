#!/bin/bash
# SPDX-License-Identifier: MIT
#
# What TLS to the sub-hosts costs, against clear NBD to the same nbdkit in
# the same run (bench/tlsbench.c does the work and says what it measures):
# vmemfs 1 MiB sequential and 4 KiB random reads, vmem-page-in throughput
# of a paused split guest, and the handshake at connect and reconnect.
# Targets: TLS >= 0.80x throughput at 1 MiB, <= 1.30x latency at 4 KiB.
#
#   scripts/bench-tls.sh [-r REPS]
#
# The table goes to stdout and to build/bench-tls.txt.  Needs root
# (network namespace, FUSE, userfaultfd), nbdkit, the patched QEMU and the
# test guest (make bench-tls builds them).  Killed after BENCH_TLS_TIMEOUT
# seconds (600) per table.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BENCH_NAME=bench-tls
# shellcheck source=lib/runbench.sh
. scripts/lib/runbench.sh
TIMEOUT=${BENCH_TLS_TIMEOUT:-600}
BIN=build/bench/tlsbench
OUT=build/bench-tls.txt

cleanup() {
	local rc=$?
	runbench_stop
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" -eq 0 ] || { echo "bench-tls: needs root" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench-tls: $BIN missing: make bench-tls" >&2; exit 1; }
{
	echo "# bench-tls $(date -u +%Y-%m-%dT%H:%M:%SZ): $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# nbdkit $(nbdkit --version | cut -d' ' -f2), libnbd $(dpkg-query -W -f '${Version}' libnbd0 2>/dev/null), GnuTLS $(dpkg-query -W -f '${Version}' libgnutls30 2>/dev/null)"
} >"$OUT.new"
# run TITLE [ENV=VALUE]: one table, every process (tlsbench, nbdkit,
# vmemfs, QEMU) with the same environment.
run() {
	local title=$1
	shift
	printf '\n%s\n\n' "$title" >>"$OUT.new"
	# shellcheck disable=SC2086
	runbench "$TIMEOUT" "$OUT.new" env "$@" VMEMFS="$ROOT/build/vmemfs" "$BIN" $ARGS ||
		{ echo "bench-tls: tlsbench failed" >&2; exit 1; }
}
ARGS="$*"
# GnuTLS's own choice of cipher (libnbd and nbdkit both ask for NORMAL).
run "GnuTLS default priorities:"
# The same with ChaCha20-Poly1305 disabled system-wide for these processes
# (GnuTLS's [overrides] in a priority file), so AES-GCM is negotiated.
PRIO=$(mktemp /tmp/vmt-tlsbench-prio.XXXXXX)
printf '[overrides]\ntls-disabled-cipher = CHACHA20-POLY1305\n' >"$PRIO"
run "ChaCha20-Poly1305 disabled (GNUTLS_SYSTEM_PRIORITY_FILE), AES-GCM negotiated:" \
	GNUTLS_SYSTEM_PRIORITY_FILE="$PRIO"
rm -f "$PRIO"
mv "$OUT.new" "$OUT"
cat "$OUT"
