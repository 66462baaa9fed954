#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Run one libFuzzer harness for a bounded time:
#   fuzz/run.sh BUILD/fuzz/fuzz_NAME SECONDS
# Seeds come from fuzz/corpus/NAME/ (committed, read only); what the run
# finds goes to BUILD/fuzz/corpus-NAME/ (kept between runs, so later runs
# start where earlier ones stopped) and a crashing input to
# BUILD/fuzz/NAME-crash-*.  Exit 0 when nothing crashed, leaked or hit
# undefined behaviour in the time given; otherwise libFuzzer's nonzero exit.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 FUZZER SECONDS" >&2; exit 2; }
bin=$1 secs=$2
here=$(cd "$(dirname "$0")" && pwd)
name=$(basename "$bin")
name=${name#fuzz_}
seeds=$here/corpus/$name
out=$(dirname "$bin")
[ -x "$bin" ] || { echo "$0: $bin is missing (make fuzz builds it)" >&2; exit 1; }
[ -d "$seeds" ] || { echo "$0: no seed corpus $seeds" >&2; exit 1; }
mkdir -p "$out/corpus-$name"
echo "fuzz $name: ${secs}s, seeds $seeds"
# -timeout: one input taking this long is a hang, i.e. a failure too.
# The first corpus directory receives new inputs; the seeds stay as they
# are.  -print_final_stats: the number of runs, for the log.
exec "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$out/$name-" \
	"$out/corpus-$name" "$seeds"
