#!/usr/bin/env bash
# bench/scale.sh
#
# Memory and scale (issue #12), one dualgate at a time on 127.0.0.1:
#   1. memory under steady traffic: bench/loadgen at RATE calls/s (default 8000) through one
#      dualgate; its RSS and peak RSS (VmHWM) after 100 000 calls and after 1 000 000.
#   2. the national mapping (bench/national.rs: 340 areas with a queue each, 10 000 legacy
#      numbers): start to ready (bound and every series registered), SIGHUP reload times (the log's "mappings reloaded" against
#      the signal), RSS after 0, 1, 10, 50 and RELOADS (100) reloads, and a /metrics scrape
#      (bytes, lines, seconds).
# Environment: RATE [8000], RELOADS [100], SKIP_TRAFFIC [0], WORK [bench/out/scale-<time>],
#   CARGO_TARGET_DIR [<repo>/target], BIN [the gateway built here; set it to measure another
#   build, e.g. the previous commit's, in the same run], SIP_PORT [15060], METRICS_PORT [19190],
#   BACKEND_PORT [15090] (another set of ports lets two runs share a machine).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
RATE="${RATE:-8000}"
RELOADS="${RELOADS:-100}"
NOW="${NOW:-2025-04-20T10:00:00+08:00}"
WORK="${WORK:-$HERE/out/scale-$(date -u +%Y%m%dT%H%M%SZ)}"
SIP_PORT="${SIP_PORT:-15060}"
METRICS_PORT="${METRICS_PORT:-19190}"
BACKEND_PORT="${BACKEND_PORT:-15090}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
mkdir -p "$WORK"
(cd "$REPO" && cargo build --release --quiet) || exit 2
(cd "$HERE/loadgen" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/loadgen" cargo build --release --quiet) || exit 2
BIN="${BIN:-$CARGO_TARGET_DIR/release/dualgate}"
LG="$CARGO_TARGET_DIR/loadgen/release/dualgate-loadgen"
. "$HERE/mappings.sh"
PID=""
stop() { [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; }
trap stop EXIT INT TERM
mem() { awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{printf "rss_kb=%s hwm_kb=%s", r, h}' "/proc/$1/status"; }
echo "date: $(date -u +%FT%TZ) dualgate $(git -C "$REPO" rev-parse --short HEAD) loadavg: $(cat /proc/loadavg)" | tee "$WORK/machine.txt"

if [ "${SKIP_TRAFFIC:-0}" != 1 ]; then
  write_loadgen_mappings "$WORK/m.toml" "$SIP_PORT" "$METRICS_PORT" "$BACKEND_PORT" 16
  RUST_LOG=warn "$BIN" run --config "$WORK/m.toml" --sip-udp "127.0.0.1:$SIP_PORT" --sip-tcp off \
    --metrics "127.0.0.1:$METRICS_PORT" --now "$NOW" >"$WORK/traffic.log" 2>&1 &
  PID=$!
  sleep 1
  echo "MEM calls=0 $(mem $PID)" | tee -a "$WORK/results.txt"
  done_calls=0
  for n in 100000 900000; do
    "$LG" gen --target "127.0.0.1:$SIP_PORT" --uas-base "$BACKEND_PORT" --uac-base $((BACKEND_PORT + 110)) --calls $n --rate "$RATE" --window 4096 --max-secs 300 --pid $PID >"$WORK/gen-$n.txt"
    done_calls=$((done_calls + n))
    echo "MEM calls=$done_calls $(mem $PID) load=$(cut -d' ' -f1 /proc/loadavg) gen: $(cut -d' ' -f3-6 "$WORK/gen-$n.txt")" | tee -a "$WORK/results.txt"
  done
  stop
fi

"$LG" national --port "$SIP_PORT" --metrics "$METRICS_PORT" --backend "$BACKEND_PORT" >"$WORK/national.toml"
T0=$(date +%s.%N)
RUST_LOG=info "$BIN" run --config "$WORK/national.toml" --sip-udp "127.0.0.1:$SIP_PORT" --sip-tcp off \
  --metrics "127.0.0.1:$METRICS_PORT" --now "$NOW" >"$WORK/national.log" 2>&1 &
PID=$!
# Ready = the "dualgate listening" log line: bound, and every series registered.
for _ in $(seq 6000); do grep -q "dualgate listening" "$WORK/national.log" && break; sleep 0.005; done
T1=$(date +%s.%N)
echo "NATIONAL start_to_ready_s=$(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.3f", b-a}') $(mem $PID)" | tee -a "$WORK/results.txt"
scrape() {
  curl -s -o "$WORK/metrics.txt" -w '%{size_download} %{time_total}' "http://127.0.0.1:$METRICS_PORT/metrics"
}
read -r size secs < <(scrape)
echo "SCRAPE bytes=$size lines=$(wc -l <"$WORK/metrics.txt") seconds=$secs $(mem $PID)" | tee -a "$WORK/results.txt"
times=()
for i in $(seq "$RELOADS"); do
  before=$(grep -c "mappings reloaded" "$WORK/national.log")
  t0=$(date +%s%N)
  kill -HUP $PID
  for _ in $(seq 15000); do [ "$(grep -c "mappings reloaded" "$WORK/national.log")" -gt "$before" ] && break; sleep 0.002; done
  t1=$(date +%s%N)
  times+=($(( (t1 - t0) / 1000000 )))
  case $i in 1|10|20|50|"$RELOADS") echo "RELOAD n=$i ms=${times[-1]} $(mem $PID)" | tee -a "$WORK/results.txt";; esac
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
echo "RELOADS n=$RELOADS median_ms=$(echo "$sorted" | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}') max_ms=$(echo "$sorted" | tail -1)" | tee -a "$WORK/results.txt"
# Builds that log the parts of a reload: file read + parse + validation, diff + fingerprints,
# metric registration (medians over the reloads).
for part in load_ms diff_ms metrics_ms; do
  grep "mappings reloaded" "$WORK/national.log" | grep -o "$part=[0-9.]*" | cut -d= -f2 | sort -n |
    awk -v p="$part" '{a[NR]=$1} END{if (NR) printf "RELOAD_PART %s median=%.1f max=%.1f\n", p, a[int((NR+1)/2)], a[NR]}'
done | tee -a "$WORK/results.txt"
read -r size secs < <(scrape)
echo "SCRAPE after_reloads bytes=$size seconds=$secs $(mem $PID)" | tee -a "$WORK/results.txt"
stop
echo "results: $WORK/results.txt"
