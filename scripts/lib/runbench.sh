# SPDX-License-Identifier: MIT
#
# scripts/lib/runbench.sh - what the benches that wrap one C program
# (bench-qemu.sh, bench-migrate.sh, bench-tls.sh) share: run it with a
# deadline, and stop it by PID when the script exits for any reason (the
# program stops what it started and removes its files on SIGTERM).
# Sourced, never run.
#
# The sourcing script sets BENCH_NAME (prefix of messages) and reads back
# RUNBENCH_PID, the PID of the last program started (kept after it ended:
# what a SIGKILLed run leaves behind is named after it).

RUNBENCH_PID=

# runbench_stop: SIGTERM the program if it still runs, SIGKILL after 5 s.
# For the sourcing script's EXIT trap.
runbench_stop() {
	local pid=$RUNBENCH_PID

	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# runbench TIMEOUT OUT CMD...: run CMD, its stdout appended to OUT; its
# exit status is runbench's.  After TIMEOUT seconds the script exits 1
# (and its EXIT trap stops CMD).
runbench() {
	local timeout=$1 out=$2 deadline
	shift 2
	"$@" >>"$out" &
	RUNBENCH_PID=$!
	deadline=$((SECONDS + timeout))
	while kill -0 "$RUNBENCH_PID" 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "$BENCH_NAME: no result after ${timeout} s; stopping" >&2
			exit 1
		fi
		sleep 1
	done
	wait "$RUNBENCH_PID"
}
