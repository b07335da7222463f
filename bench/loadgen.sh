#!/usr/bin/env bash
# bench/loadgen.sh [CALLS]
#
# Throughput with the project's own load generator (bench/loadgen): each step starts one proxy,
# replays CALLS whole calls through it as fast as it forwards them (closed loop, WINDOW calls in
# flight; 7 messages per call), stops it, and prints one LOADGEN line. Configurations,
# interleaved step by step and repeated REPEATS times (medians in the table):
#   relay-w1 / relay-w2      the bare relay (transport::udp::relay: the gateway's own UDP loop,
#                            no SIP), 1 and 2 workers
#   dualgate-w1 / -w2        dualgate --udp-workers 1 / 2, batched (recvmmsg/sendmmsg, BATCH)
#   dualgate-w1-b1 / -w2-b1  the same with DUALGATE_UDP_BATCH=1 (recvfrom/sendto per message)
#   *-pin                    the proxy pinned to CPU 1 (taskset), the generator to CPU 0: the
#                            proxy's own one-core capacity (dualgate 1 worker, Kamailio 1 child)
#   kamailio-n2 / -n1-pin    Kamailio 5.6 (-x tlsf, bench/kamailio.cfg), when installed
# Environment: REPEATS [3], WINDOW [256], CONFIGS [all of the above], WORK [bench/out/lg-<time>], BIN
#   [the gateway built here; another build for an A/B in one sitting],
#   NUMBER [12356], FLOWS [16], CARGO_TARGET_DIR [<repo>/target].
# Only 127.0.0.1; every step is bounded by CALLS and the generator's --max-secs (60).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
CALLS="${1:-100000}"
REPEATS="${REPEATS:-3}"
WINDOW="${WINDOW:-256}"
FLOWS="${FLOWS:-16}"
NUMBER="${NUMBER:-12356}"
NOW="${NOW:-2025-04-20T10:00:00+08:00}"
WORK="${WORK:-$HERE/out/lg-$(date -u +%Y%m%dT%H%M%SZ)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
CONFIGS="${CONFIGS:-relay-w1 relay-w2 dualgate-w1 dualgate-w2 dualgate-w1-b1 dualgate-w2-b1 relay-w1-pin dualgate-w1-pin kamailio-n2 kamailio-n1-pin}"
# Ports away from the usual 5060: other gateways on this machine could join an SO_REUSEPORT group.
DG_PORT=15060; DG_METRICS=19190; K_PORT=5070; UAS_BASE=15090; UAC_BASE=15200
mkdir -p "$WORK"
RES="$WORK/results.txt"; : >"$RES"

(cd "$REPO" && cargo build --release --quiet) || exit 2
(cd "$HERE/loadgen" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/loadgen" cargo build --release --quiet) || exit 2
BIN="${BIN:-$CARGO_TARGET_DIR/release/dualgate}"
LG="$CARGO_TARGET_DIR/loadgen/release/dualgate-loadgen"
# shellcheck source=bench/mappings.sh
. "$HERE/mappings.sh"
CONF="$WORK/loadgen-mappings.toml"
write_loadgen_mappings "$CONF" "$DG_PORT" "$DG_METRICS" "$UAS_BASE" "$FLOWS"

PID=""
stop() {
  [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null || { PID=""; return 0; }
  kill -TERM "$PID"
  for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$PID" 2>/dev/null && kill -KILL "$PID"
  wait "$PID" 2>/dev/null; PID=""
}
trap stop EXIT INT TERM
wait_port() { for _ in $(seq 50); do ss -lun | grep -q "127.0.0.1:$1 " && return 0; sleep 0.1; done; return 1; }

step() { # step CONFIG REP
  local c=$1 rep=$2 port=$DG_PORT pin="" genpin="" batch="" line
  case "$c" in *-pin) pin="taskset -c 1"; genpin="taskset -c 0";; esac
  case "$c" in *-b1*) batch=1;; esac
  case "$c" in
    relay-w*) local w=${c#relay-w}; w=${w%%-*}
      $pin "$LG" relay --listen "127.0.0.1:$DG_PORT" --uas-base $UAS_BASE --uac-base $UAC_BASE --workers "$w" --batch "${batch:-16}" --flows "$FLOWS" --max-secs 90 \
        >"$WORK/$c-$rep.log" 2>&1 & PID=$!;;
    dualgate-w*) local w=${c#dualgate-w}; w=${w%%-*}
      DUALGATE_UDP_BATCH="${batch:-16}" RUST_LOG=warn $pin "$BIN" run --config "$CONF" \
        --sip-udp "127.0.0.1:$DG_PORT" --sip-tcp off --metrics "127.0.0.1:$DG_METRICS" \
        --now "$NOW" --udp-workers "$w" >"$WORK/$c-$rep.log" 2>&1 & PID=$!;;
    kamailio-n*) command -v kamailio >/dev/null || { echo "SKIP $c (no kamailio)"; return; }
      local n=${c#kamailio-n}; n=${n%%-*}; port=$K_PORT
      $pin kamailio -f "$HERE/kamailio.cfg" -A "BACKEND=\"sip:127.0.0.1:$UAS_BASE\"" -DD -E -m 64 -M 8 -x tlsf -n "$n" \
        -P "$WORK/kamailio.pid" -w "$WORK" >"$WORK/$c-$rep.log" 2>&1 & PID=$!;;
  esac
  wait_port $port || { echo "$c did not start"; cat "$WORK/$c-$rep.log"; stop; return; }
  sleep 0.5
  line=$($genpin "$LG" gen --target "127.0.0.1:$port" --calls "$CALLS" --window "$WINDOW" \
           --flows "$FLOWS" --uas-base $UAS_BASE --uac-base $UAC_BASE --number "$NUMBER" \
           --max-secs 60 --pid "$PID")
  echo "$line config=$c rep=$rep load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RES"
  stop
  sleep 1
}

{ echo "date: $(date -u +%FT%TZ)  loadavg before: $(cat /proc/loadavg)"
  echo "dualgate: $(git -C "$REPO" rev-parse --short HEAD)  calls per step: $CALLS  window: $WINDOW  flows: $FLOWS"
} | tee "$WORK/machine.txt"
for rep in $(seq "$REPEATS"); do
  for c in $CONFIGS; do step "$c" "$rep"; done
done

awk '
  function median(s,   a, n, i, j, t) { n = split(s, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  /^LOADGEN/ { delete f
    for (i = 2; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v); f[k] = v }
    c = f["config"]; if (!(c in seen)) { seen[c] = 1; order[++n] = c }
    mps[c] = mps[c] " " f["msgs_per_s"]; upc[c] = upc[c] " " f["proxy_us_per_call"]
    gen[c] = gen[c] " " f["gen_cpu_s"]; fail[c] = fail[c] " " f["failed"]; load[c] = load[c] " " f["load"] }
  END {
    print "| config | msgs/s (each) | **median msgs/s** | proxy CPU µs/call (each) | median µs/call | failed calls (each) | load (each) |"
    print "|---|---|---:|---|---:|---|---|"
    for (i = 1; i <= n; i++) { c = order[i]; m[c] = median(mps[c])
      printf "| %s | %s | **%s** | %s | %s | %s | %s |\n", c, substr(mps[c], 2), m[c], substr(upc[c], 2), median(upc[c]), substr(fail[c], 2), substr(load[c], 2) }
    print ""
    r = "| ratio | value |\n|---|---:|"
    print r
    if (m["dualgate-w1"] > 0) printf "| dualgate 2 workers ÷ 1 worker | %.2f |\n", m["dualgate-w2"] / m["dualgate-w1"]
    if (m["relay-w1"] > 0) printf "| relay 2 workers ÷ 1 worker | %.2f |\n", m["relay-w2"] / m["relay-w1"]
    if (m["relay-w2"] > 0) printf "| dualgate ÷ relay, 2 workers | %.2f |\n", m["dualgate-w2"] / m["relay-w2"]
    if (m["relay-w1"] > 0) printf "| dualgate ÷ relay, 1 worker | %.2f |\n", m["dualgate-w1"] / m["relay-w1"]
    if (m["relay-w1-pin"] > 0) printf "| dualgate ÷ relay, 1 worker pinned | %.2f |\n", m["dualgate-w1-pin"] / m["relay-w1-pin"]
    if (m["dualgate-w1-b1"] > 0) printf "| batched ÷ unbatched, 1 worker | %.2f |\n", m["dualgate-w1"] / m["dualgate-w1-b1"]
    if (m["dualgate-w2-b1"] > 0) printf "| batched ÷ unbatched, 2 workers | %.2f |\n", m["dualgate-w2"] / m["dualgate-w2-b1"]
    if (m["kamailio-n1-pin"] > 0) printf "| dualgate ÷ Kamailio, one core pinned | %.2f |\n", m["dualgate-w1-pin"] / m["kamailio-n1-pin"]
    if (m["kamailio-n2"] > 0) printf "| dualgate 2 workers ÷ Kamailio 2 children | %.2f |\n", m["dualgate-w2"] / m["kamailio-n2"]
  }' "$RES" | tee "$WORK/table.md"
echo "results: $RES  table: $WORK/table.md"
