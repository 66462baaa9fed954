#!/bin/bash
# Run test programs one after the other and end with one summary line:
#
#   tests/run-tests.sh [--label L] [--note TEXT] [--sanitizer-logs DIR]
#                      CHECK_PROGRAM... [--plain COMMAND...]
#
# A Check program counts the tests its closing "NN%: Checks: ..." line
# reports; one that exits nonzero or prints no such line is a failing
# program (and, without the line, one failed test).  After --plain, each
# argument is a command line (split on spaces) that is one test of its
# own: it passes when it exits 0 (the fuzz runs).  The last line is
# "L: N passed, N failed" (L defaults to "tests", the line CI reads),
# followed by " (TEXT)" when --note is given (reduced runs say so).
# --sanitizer-logs: DIR is where ASan/UBSan write their reports (log_path),
# from every process the tests start, daemons included, whose exit status
# a test may not look at; one more test at the end fails if any is there.
# Exit nonzero if anything failed.
set -u
label=tests note= sanlogs=
while [ $# -gt 0 ]; do
	case $1 in
	--label) label=$2; shift 2 ;;
	--note) note=$2; shift 2 ;;
	--sanitizer-logs) sanlogs=$2; shift 2 ;;
	*) break ;;
	esac
done
passed=0 failed=0 bad=() plain=0
for t in "$@"; do
	if [ "$t" = --plain ]; then
		plain=1
		continue
	fi
	if [ $plain -eq 1 ]; then
		read -r -a cmd <<<"$t"
		echo "=== $t"
		"${cmd[@]}" 2>&1
		rc=$?
		if [ $rc -eq 0 ]; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			bad+=("'$t'")
		fi
		continue
	fi
	name=$(basename "$t")
	echo "=== $name"
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	# Check's closing line: "NN%: Checks: N, Failures: F, Errors: E"
	line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
	if [ -n "$line" ]; then
		n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
		f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
		e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
		passed=$((passed + n - f - e))
		failed=$((failed + f + e))
	fi
	if [ $rc -ne 0 ] || [ -z "$line" ]; then
		bad+=("$name")
		[ -z "$line" ] && failed=$((failed + 1))
	fi
done
if [ -n "$sanlogs" ]; then
	echo "=== sanitizer reports in $sanlogs"
	reports=$(find "$sanlogs" -type f 2>/dev/null | sort)
	if [ -z "$reports" ]; then
		passed=$((passed + 1))
	else
		for r in $reports; do
			echo "--- $r"
			cat "$r"
		done
		failed=$((failed + 1))
		bad+=("sanitizer-reports")
	fi
fi
echo
[ ${#bad[@]} -gt 0 ] && echo "failing programs: ${bad[*]}"
echo "$label: $passed passed, $failed failed${note:+ ($note)}"
[ ${#bad[@]} -eq 0 ]
