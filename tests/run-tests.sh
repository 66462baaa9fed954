#!/bin/bash
# Run every Check test program given on the command line, one after the
# other, and end with one summary line.  Exit nonzero if any failed.
set -u
passed=0 failed=0 bad=()
for t in "$@"; do
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
echo
[ ${#bad[@]} -gt 0 ] && echo "failing programs: ${bad[*]}"
echo "tests: $passed passed, $failed failed"
[ ${#bad[@]} -eq 0 ]
