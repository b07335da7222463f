#!/usr/bin/env bash
# bench/profile.sh [RATE] [DUR]
#
# Where dualgate's CPU goes under load: starts dualgate with the bench mappings (as run.sh does,
# on its own ports), runs one step.sh load step (RATE cps, default 6000, for DUR s, default 10)
# and samples the dualgate process with `perf record` during it (software cpu-clock event: this
# works in VMs without hardware counters; DWARF call graphs because the release build has no
# frame pointers). Writes perf.data, a flat profile (self time, by symbol) and a caller-inclusive
# one to WORK (default bench/out/profile-<utc time>). Needs `perf` (linux-perf).
# Falls back to nothing: without perf, use valgrind --tool=callgrind on a short run by hand.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
RATE="${1:-6000}"
DUR="${2:-10}"
NOW="${NOW:-2025-04-20T10:00:00+08:00}"
NUMBER="${NUMBER:-12356}"
WORK="${WORK:-$HERE/out/profile-$(date -u +%Y%m%dT%H%M%SZ)}"
FREQ="${FREQ:-997}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
DG_PORT=5160; DG_METRICS=9191; UAS_PORT=5190; UAC_PORT=5161
mkdir -p "$WORK"
command -v perf >/dev/null || { echo "perf not installed" >&2; exit 2; }
(cd "$REPO" && cargo build --release --quiet) || exit 2
BIN="$CARGO_TARGET_DIR/release/dualgate"

# shellcheck source=bench/mappings.sh
. "$REPO/bench/mappings.sh"
CONF="$WORK/bench-mappings.toml"
write_bench_mappings "$CONF" "$DG_PORT" "$DG_METRICS" "$UAS_PORT"

RUST_LOG=warn "$BIN" run --config "$CONF" --sip-udp "127.0.0.1:$DG_PORT" --sip-tcp off \
  --metrics "127.0.0.1:$DG_METRICS" --now "$NOW" >"$WORK/dualgate.log" 2>&1 &
DG_PID=$!
PERF_PID=""
cleanup() {
  [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null
  kill -TERM "$DG_PID" 2>/dev/null; wait "$DG_PID" 2>/dev/null
}
trap cleanup EXIT INT TERM
for _ in $(seq 50); do ss -lun | grep -q "127.0.0.1:$DG_PORT " && break; sleep 0.1; done

perf record -F "$FREQ" --call-graph dwarf,16384 -p "$DG_PID" -o "$WORK/perf.data" \
  -- sleep $((DUR + 1)) >"$WORK/perf-record.log" 2>&1 &
PERF_PID=$!
sleep 0.5
PROXY_PID=$DG_PID LABEL=dualgate-profile NUMBER="$NUMBER" UAS_PORT=$UAS_PORT UAC_PORT=$UAC_PORT \
  OUTDIR="$WORK/step" "$HERE/step.sh" $DG_PORT "$RATE" $((RATE * DUR)) | grep '^RESULT'
wait "$PERF_PID"; PERF_PID=""

perf report -i "$WORK/perf.data" --no-children --sort symbol --percent-limit 0.7 --stdio -g none \
  >"$WORK/flat.txt" 2>/dev/null
perf report -i "$WORK/perf.data" --children --sort symbol --percent-limit 2 --stdio -g none \
  >"$WORK/inclusive.txt" 2>/dev/null
perf report -i "$WORK/perf.data" --no-children --sort dso --stdio -g none >"$WORK/dso.txt" 2>/dev/null
echo "== self time by symbol (top 40)"; grep -v '^#' "$WORK/flat.txt" | grep -v '^$' | head -40
echo "== inclusive (children) time (top 50)"; grep -v '^#' "$WORK/inclusive.txt" | grep -v '^$' | head -50
echo "profile: $WORK"
