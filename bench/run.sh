#!/usr/bin/env bash
# bench/run.sh [RATE ...]
#
# dualgate's performance benchmark: sipp UAC -> proxy -> sipp UAS on 127.0.0.1 over UDP, a
# ladder of bounded load steps (RATE calls/s for RATE*DUR calls each), against dualgate and --
# when `kamailio` is installed -- against Kamailio as a stateless proxy, interleaved step by
# step in the same run, so CPU per call is compared on the same machine at the same moment.
#
#   bench/run.sh                       # default ladder 1000 2000 4000 5000 ... 10000 (fine steps)
#   bench/run.sh 500 1000              # your own rates
#
# Environment (defaults in brackets):
#   DUR [10]               seconds of load per step (CALLS = RATE * DUR)
#   REPEAT_FROM [4000]     rates >= this are repeated REPEATS times (the edge: a step near the
#   REPEATS [3]            limit either passes cleanly or collapses); tables show medians
#   NUMBER [12356]         dialled number of the ladder
#   LEGACY_NUMBER [059185666661]  one extra step per proxy with this number (dualgate adds
#   LEGACY_RATE [4000]     History-Info during the parallel period); LEGACY_RATE=0 skips it
#   NOW [2025-04-20T10:00:00+08:00]  dualgate --now: inside Fujian's parallel period
#   KAMAILIO [auto]        auto: run it when installed; 0: dualgate only
#   UDP_WORKERS [one per core]  dualgate's --udp-workers
#   DIRECT [0]             1: also run the ladder with sipp straight to the UAS (sipp's ceiling)
#   WORK [bench/out/<utc-time>]  logs, mapping file, results.txt, table.md
#   CARGO_TARGET_DIR [<repo>/target]
# Ports (all 127.0.0.1/UDP): dualgate 5060, its metrics 9190, Kamailio 5070, UAS 5090, UAC 5061.
# Every sipp is bounded by -m and -timeout; a proxy that failed two steps in a row skips the
# higher rates.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
RATES=("$@"); [ ${#RATES[@]} -gt 0 ] || RATES=(1000 2000 4000 5000 6000 7000 8000 9000 10000)
DUR="${DUR:-10}"
REPEAT_FROM="${REPEAT_FROM:-4000}"
REPEATS="${REPEATS:-3}"
NUMBER="${NUMBER:-12356}"
LEGACY_NUMBER="${LEGACY_NUMBER:-059185666661}"
LEGACY_RATE="${LEGACY_RATE:-4000}"
NOW="${NOW:-2025-04-20T10:00:00+08:00}"
KAMAILIO="${KAMAILIO:-auto}"
DIRECT="${DIRECT:-0}"
WORK="${WORK:-$HERE/out/$(date -u +%Y%m%dT%H%M%SZ)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
DG_PORT=5060; DG_METRICS=9190; K_PORT=5070; UAS_PORT=5090; UAC_PORT=5061
mkdir -p "$WORK"
RES="$WORK/results.txt"; : >"$RES"

for b in sipp ss cargo; do
  command -v "$b" >/dev/null || { echo "missing $b (apt-get install -y sip-tester iproute2)" >&2; exit 2; }
done
case "$KAMAILIO" in
  auto) if command -v kamailio >/dev/null; then KAMAILIO=1; else KAMAILIO=0;
          echo "kamailio not installed: dualgate only (apt-get install -y kamailio for the comparison)"; fi;;
esac
for port in $DG_PORT $UAS_PORT $UAC_PORT $K_PORT; do
  if ss -lun | grep -q "127.0.0.1:$port "; then echo "udp 127.0.0.1:$port is busy" >&2; exit 1; fi
done

# ---- build ---------------------------------------------------------------------------------
echo "== building (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$REPO" && cargo build --release --quiet) || { echo "build failed" >&2; exit 2; }
BIN="$CARGO_TARGET_DIR/release/dualgate"

# ---- the bench mapping file ----------------------------------------------------------------
# shellcheck source=bench/mappings.sh
. "$REPO/bench/mappings.sh"
CONF="$WORK/bench-mappings.toml"
write_bench_mappings "$CONF" "$DG_PORT" "$DG_METRICS" "$UAS_PORT"
"$BIN" check --config "$CONF" --at "$NOW" >"$WORK/check.txt" 2>&1 || { cat "$WORK/check.txt"; exit 2; }

DG_PID=""; K_PID=""
stop() { # stop PID
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1"
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$1" 2>/dev/null && kill -KILL "$1"
  wait "$1" 2>/dev/null
}
cleanup() { stop "$DG_PID"; stop "$K_PID"; }
trap cleanup EXIT INT TERM
wait_port() { for _ in $(seq 50); do ss -lun | grep -q "127.0.0.1:$1 " && return 0; sleep 0.1; done; return 1; }

# ---- start the proxies -----------------------------------------------------------------------
RUST_LOG=warn "$BIN" run --config "$CONF" --sip-udp "127.0.0.1:$DG_PORT" --sip-tcp off \
  --metrics "127.0.0.1:$DG_METRICS" --now "$NOW" ${UDP_WORKERS:+--udp-workers "$UDP_WORKERS"} \
  >"$WORK/dualgate.log" 2>&1 &
DG_PID=$!
wait_port $DG_PORT || { echo "dualgate did not start:"; cat "$WORK/dualgate.log"; exit 1; }
if [ "$KAMAILIO" = 1 ]; then
  kamailio -f "$HERE/kamailio.cfg" -DD -E -m 64 -M 8 -x tlsf -n 2 \
    -P "$WORK/kamailio.pid" -w "$WORK" >"$WORK/kamailio.log" 2>&1 &
  K_PID=$!
  wait_port $K_PORT || { echo "kamailio did not start:"; cat "$WORK/kamailio.log"; exit 1; }
fi

{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
  echo "net.core.rmem_max=$(cat /proc/sys/net/core/rmem_max) wmem_max=$(cat /proc/sys/net/core/wmem_max)"
  echo "sipp: $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*')"
  echo "dualgate: $(git -C "$REPO" rev-parse --short HEAD) ($BIN, ${UDP_WORKERS:-$(nproc)} UDP workers)"
  [ "$KAMAILIO" = 1 ] && echo "kamailio: $(kamailio -v | head -1) -x tlsf, children=2, pids $K_PID $(ps -o pid= --ppid "$K_PID" | tr -s ' \n' ' ')"
  echo "rates: ${RATES[*]} (x$REPEATS from $REPEAT_FROM), $DUR s per step, number $NUMBER; legacy $LEGACY_NUMBER at $LEGACY_RATE"
} | tee "$WORK/machine.txt"
echo "== work dir: $WORK"

# ---- the ladder ----------------------------------------------------------------------------------
declare -A BAD=()
step() { # step LABEL PORT PID RATE NUMBER REP
  local label=$1 port=$2 pid=$3 rate=$4 number=$5 rep=$6 line
  if [ "${BAD[$label]:-0}" -ge 2 ]; then
    echo "SKIP label=$label rate=$rate (two failing steps in a row)" | tee -a "$RES"; return
  fi
  line=$(PROXY_PID="$pid" LABEL="$label" NUMBER="$number" UAS_PORT=$UAS_PORT UAC_PORT=$UAC_PORT \
         OUTDIR="$WORK/$label-$number-$rate-$rep" "$HERE/step.sh" "$port" "$rate" $((rate * DUR)) | grep '^RESULT')
  echo "$line rep=$rep" | tee -a "$RES"
  case "$line" in
    *" failed=0 unfinished=0 "*) BAD[$label]=0;;
    *) BAD[$label]=$(( ${BAD[$label]:-0} + 1 ));;
  esac
  sleep 1
}
for r in "${RATES[@]}"; do
  n=1; [ "$r" -ge "$REPEAT_FROM" ] && n=$REPEATS
  for rep in $(seq "$n"); do
    step dualgate $DG_PORT "$DG_PID" "$r" "$NUMBER" "$rep"
    [ "$KAMAILIO" = 1 ] && step kamailio $K_PORT "$K_PID" "$r" "$NUMBER" "$rep"
  done
done
if [ "$LEGACY_RATE" -gt 0 ]; then
  BAD[dualgate]=0; BAD[kamailio]=0
  step dualgate $DG_PORT "$DG_PID" "$LEGACY_RATE" "$LEGACY_NUMBER" 1
  [ "$KAMAILIO" = 1 ] && step kamailio $K_PORT "$K_PID" "$LEGACY_RATE" "$LEGACY_NUMBER" 1
fi
if [ "$DIRECT" = 1 ]; then
  for r in "${RATES[@]}"; do step direct $UAS_PORT "" "$r" "$NUMBER" 1; done
fi

# what dualgate itself counted (a cross-check of the sipp figures)
if command -v curl >/dev/null; then
  curl -s "http://127.0.0.1:$DG_METRICS/metrics" >"$WORK/dualgate-metrics.txt" || true
fi
cleanup; DG_PID=""; K_PID=""

# ---- report: medians per (proxy, number, rate) ---------------------------------------------------
awk -v msgs=7 '
  function median(s,   a, n, i, j, t) { n = split(s, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  /^RESULT/ { delete f
    for (i = 2; i <= NF; i++) { key = $i; sub(/=.*/, "", key); val = $i; sub(/^[^=]*=/, "", val); f[key] = val }
    g = f["label"] SUBSEP f["number"] SUBSEP f["rate"]
    if (!(g in seen)) { seen[g] = 1; order[++ng] = g }
    reps[g]++; ok[g] = ok[g] " " f["ok"]; fail[g] = fail[g] " " (f["failed"] + f["unfinished"])
    cpu[g] = cpu[g] " " f["cpu_s"]; upc[g] = upc[g] " " f["us_per_call"]
    drops[g] = drops[g] " " (f["rcvbuf_errs"] "/" f["proxy_sock_drops"])
    mem[g] = (f["label"] == "kamailio") ? f["pss_kb"] " (PSS)" : f["hwm_kb"]
    clean[g] = clean[g] ((f["failed"] + f["unfinished"] == 0) ? "y" : "n")
    if (f["label"] != "direct") { u[f["label"], f["number"], f["rate"]] = median(upc[g]) }
  }
  END {
    print "| proxy | number | rate (cps) | steps clean | ok (each step) | failed+unfinished (each) | proxy CPU s (each) | median CPU µs/call | median µs/msg | memory kB | rcvbuf errs / proxy socket drops (each) |"
    print "|---|---|---:|---|---|---|---|---:|---:|---:|---|"
    for (i = 1; i <= ng; i++) { g = order[i]; split(g, k, SUBSEP)
      nclean = gsub(/y/, "y", clean[g])
      m = (k[1] == "direct") ? "-" : median(upc[g])
      printf "| %s | %s | %s | %d/%d | %s | %s | %s | %s | %s | %s | %s |\n", k[1], k[2], k[3], nclean, reps[g],
        substr(ok[g], 2), substr(fail[g], 2), (k[1] == "direct") ? "-" : substr(cpu[g], 2), m,
        (m == "-" || m == "NA") ? "-" : sprintf("%.1f", m / msgs), (k[1] == "direct") ? "-" : mem[g], substr(drops[g], 2) }
    print ""
    print "| number | rate (cps) | dualgate µs/call | Kamailio µs/call | ratio dualgate ÷ Kamailio |"
    print "|---|---:|---:|---:|---:|"
    for (i = 1; i <= ng; i++) { g = order[i]; split(g, k, SUBSEP)
      if (k[1] != "dualgate" || !((("kamailio") SUBSEP k[2] SUBSEP k[3]) in u)) continue
      d = u["dualgate", k[2], k[3]]; q = u["kamailio", k[2], k[3]]
      printf "| %s | %s | %s | %s | %s |\n", k[2], k[3], d, q, (q + 0 > 0 && d != "NA") ? sprintf("%.2f", d / q) : "-" }
  }' "$RES" | tee "$WORK/table.md"
echo
echo "results: $RES   table: $WORK/table.md"
