#!/usr/bin/env bash
# bench/instr.sh [N]
#
# Instructions per forwarded message, counted by valgrind (callgrind), not timed: the same
# binary and input give the same count whatever else the machine runs, so an A/B of the hot
# path needs no quiet machine. Runs benches/handle.rs's cases N times each (default 20000;
# messages + metrics, as `transport::process` handles them) and prints instructions per
# message for each case. Needs valgrind.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
N="${1:-20000}"
command -v valgrind >/dev/null || { echo "valgrind not installed" >&2; exit 2; }
BIN="$(cd "$REPO" && cargo bench --bench handle --no-run 2>&1 | grep -o 'target/release/deps/handle-[0-9a-f]*' | tail -1)"
[ -n "$BIN" ] || { echo "bench build failed" >&2; exit 2; }
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
for CASE in "10 numbers/INVITE 12356" "10 numbers/200 OK" "10 numbers/INVITE legacy" \
            "10 numbers/ACK" "10 numbers/BYE" \
            "national 10k/INVITE 12356" "national 10k/INVITE legacy"; do
  F="$OUT/cg.out"
  HANDLE_INSTR="$N" HANDLE_CASE="$CASE" valgrind --tool=callgrind --callgrind-out-file="$F" \
    --toggle-collect='*handle::measured*' "$REPO/$BIN" >"$OUT/log" 2>&1 || { cat "$OUT/log"; exit 1; }
  TOTAL="$(awk '/^(summary|totals):/{print $2; exit}' "$F")"
  awk -v c="$CASE" -v t="$TOTAL" -v n="$N" 'BEGIN{printf "%-28s %7.0f instructions/message\n", c, t/n}'
done
