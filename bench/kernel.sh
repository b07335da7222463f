#!/usr/bin/env bash
# bench/kernel.sh [RATE] [DUR]
#
# Where each proxy's CPU goes, kernel included, under the same sipp load: dualgate and Kamailio
# (stateless, as run.sh starts them) each take one step.sh step of RATE cps (default 6000) for
# DUR s (default 10) while `perf record -e cpu-clock -g` samples every thread of the proxy
# (Kamailio: the main process and its children). Prints, per proxy, its CPU per call (step.sh's
# figure) split into user space and kernel, and the kernel's part by what it was doing
# (inclusive: a sample counts under each of these frames on its stack):
#   sending    the sendto/sendmsg/sendmmsg calls: UDP and IP output and, on loopback, the
#              receiving side's network stack (softirq) and the wake-up of the reader: the
#              sender's kernel does both, in the sender's time
#   receiving  the recvfrom/recvmsg/recvmmsg calls: dequeue and copy to user space, and blocking
#              for the next datagram (the scheduler switching the thread out and back in)
#   other      every other system call
# and the top kernel symbols by self time. Software cpu-clock sampling works in VMs without
# hardware counters. UDP_WORKERS=n passes --udp-workers n to dualgate (default: one per core).
# Needs perf, sipp, kamailio. Writes WORK (default bench/out/kernel-<utc>).
# Only 127.0.0.1 is targeted; each sipp is bounded by -m and -timeout (step.sh).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
RATE="${1:-6000}"
DUR="${2:-10}"
NOW="${NOW:-2025-04-20T10:00:00+08:00}"
NUMBER="${NUMBER:-12356}"
FREQ="${FREQ:-1999}"
WORK="${WORK:-$HERE/out/kernel-$(date -u +%Y%m%dT%H%M%SZ)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
DG_PORT=5260; DG_METRICS=9291; K_PORT=5070; UAS_PORT=5290; UAC_PORT=5261
mkdir -p "$WORK"
for b in perf sipp kamailio ss; do
  command -v "$b" >/dev/null || { echo "missing $b" >&2; exit 2; }
done
(cd "$REPO" && cargo build --release --quiet) || exit 2
BIN="${BIN:-$CARGO_TARGET_DIR/release/dualgate}"

# shellcheck source=bench/mappings.sh
. "$REPO/bench/mappings.sh"
CONF="$WORK/bench-mappings.toml"
write_bench_mappings "$CONF" "$DG_PORT" "$DG_METRICS" "$UAS_PORT"
# Kamailio's config forwards to 127.0.0.1:5090: give it its own copy pointing at our UAS port.
KCFG="$WORK/kamailio.cfg"
sed "s/127\.0\.0\.1:5090/127.0.0.1:$UAS_PORT/g" "$HERE/kamailio.cfg" >"$KCFG"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT INT TERM
wait_port() { for _ in $(seq 50); do ss -lun | grep -q "127.0.0.1:$1 " && return 0; sleep 0.1; done; return 1; }

profile() { # profile LABEL PORT MAINPID
  local label=$1 port=$2 pid=$3 all result us
  all=$(echo "$pid" $(ps -o pid= --ppid "$pid") | tr -s ' ' ',' | sed 's/,$//')
  perf record -e cpu-clock -F "$FREQ" -g -p "$all" -o "$WORK/$label.data" \
    -- sleep $((DUR + 1)) >"$WORK/$label-record.log" 2>&1 &
  local perf_pid=$!
  sleep 0.5
  result=$(PROXY_PID="$pid" LABEL="$label" NUMBER="$NUMBER" UAS_PORT=$UAS_PORT UAC_PORT=$UAC_PORT \
    OUTDIR="$WORK/$label-step" "$HERE/step.sh" "$port" "$RATE" $((RATE * DUR)) | grep '^RESULT')
  echo "$result"
  us=$(echo "$result" | grep -o 'us_per_call=[0-9.]*' | cut -d= -f2)
  wait "$perf_pid"
  perf report -i "$WORK/$label.data" --children --sort symbol --stdio -g none \
    >"$WORK/$label-children.txt" 2>/dev/null
  perf report -i "$WORK/$label.data" --no-children --sort symbol --stdio -g none \
    >"$WORK/$label-self.txt" 2>/dev/null
  # perf's columns: children %, self %, [k] or [.], symbol (then padding).
  awk -v label="$label" -v us="${us:-0}" '
    /^#/ || NF < 4 { next }
    { pct = $1; sub("%", "", pct); self = $2; sub("%", "", self); kind = $3; sym = $4
      if (kind == "[k]") kernel += self; else user += self
      if (sym ~ /^__sys_(sendto|sendmsg|sendmmsg)$/) send += pct
      if (sym ~ /^(__sys_recvfrom|__sys_recvmsg|do_recvmmsg)$/) recv += pct
      if (sym == "net_rx_action" && pct > rx) rx = pct
      if (sym == "schedule" && pct > wait) wait = pct
      if (sym == "do_syscall_64" && pct > sys) sys = pct }
    END { u = us / 100
      printf "%s: %.1f us CPU per call: user %.1f %% (%.1f us), kernel %.1f %% (%.1f us)\n", label, us, user, user * u, kernel, kernel * u
      printf "  sending      %5.1f %% (%5.1f us), of which the receiver'"'"'s stack on loopback (softirq) %.1f %% (%.1f us)\n", send, send * u, rx, rx * u
      printf "  receiving    %5.1f %% (%5.1f us), of which blocked waiting (scheduler) %.1f %% (%.1f us)\n", recv, recv * u, wait, wait * u
      printf "  other calls  %5.1f %% (%5.1f us); kernel outside system calls %.1f %% (%.1f us)\n", sys - send - recv, (sys - send - recv) * u, kernel - sys, (kernel - sys) * u }
  ' "$WORK/$label-children.txt" | tee "$WORK/$label-summary.txt"
  echo "  top kernel symbols (self; with cpu-clock sampling, time with interrupts off lands where they are re-enabled):"
  grep '\[k\]' "$WORK/$label-self.txt" | head -12 | awk '{printf "    %7s  %s\n", $1, $3}'
}

RUST_LOG=warn "$BIN" run --config "$CONF" --sip-udp "127.0.0.1:$DG_PORT" --sip-tcp off \
  --metrics "127.0.0.1:$DG_METRICS" --now "$NOW" ${UDP_WORKERS:+--udp-workers "$UDP_WORKERS"} \
  >"$WORK/dualgate.log" 2>&1 &
DG_PID=$!; PIDS+=("$DG_PID")
wait_port $DG_PORT || { echo "dualgate did not start"; cat "$WORK/dualgate.log"; exit 1; }
profile dualgate $DG_PORT "$DG_PID"
kill -TERM "$DG_PID"; wait "$DG_PID" 2>/dev/null

kamailio -f "$KCFG" -DD -E -m 64 -M 8 -x tlsf -n 2 -P "$WORK/kamailio.pid" -w "$WORK" \
  >"$WORK/kamailio.log" 2>&1 &
K_PID=$!; PIDS+=("$K_PID")
wait_port $K_PORT || { echo "kamailio did not start"; cat "$WORK/kamailio.log"; exit 1; }
sleep 0.5
profile kamailio $K_PORT "$K_PID"
echo "work dir: $WORK"
