#!/usr/bin/env bash
# bench/step.sh PROXY_PORT RATE [CALLS]
#
# One bounded load step on loopback (adapted from the shared Kamailio reference harness's
# run-peer.sh):
#   1. starts the sipp backend UAS (scenarios/uas.xml) on 127.0.0.1:$UAS_PORT
#   2. runs the sipp trunk UAC (scenarios/uac.xml) against 127.0.0.1:PROXY_PORT at RATE calls/s
#      for CALLS calls (default RATE*10, ~10 s)
#   3. stops the UAS and prints ONE line starting with "RESULT" (key=value fields).
# One call = INVITE, 100, 180, 200, ACK, BYE, 200: 7 messages forwarded by the proxy.
#
# Environment:
#   PROXY_PID=<pid>   the proxy process: report its CPU (utime+stime of the process, i.e. all
#                     of its threads, plus its direct child processes -- kamailio's workers)
#                     over the step, per call and per forwarded message, and its memory
#   LABEL=name        free text in the RESULT line
#   NUMBER=12356      dialled number (Request-URI user part)
#   PAUSE_MS=100      pause between ACK and BYE
#   OUTDIR=dir        where sipp's logs and stats go (default: fresh mktemp dir)
#   UAS_PORT=5090 UAC_PORT=5061
# Only 127.0.0.1 is targeted. Every sipp is bounded by -m and -timeout.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

PROXY_PORT="${1:?usage: step.sh PROXY_PORT RATE [CALLS]}"
RATE="${2:?usage: step.sh PROXY_PORT RATE [CALLS]}"
CALLS="${3:-$((RATE * 10))}"
NUMBER="${NUMBER:-12356}"
PAUSE_MS="${PAUSE_MS:-100}"
UAS_PORT="${UAS_PORT:-5090}"
UAC_PORT="${UAC_PORT:-5061}"
LABEL="${LABEL:-port$PROXY_PORT}"
PROXY_PID="${PROXY_PID:-}"
MSGS_PER_CALL=7
OUTDIR="${OUTDIR:-$(mktemp -d -t "dgbench-${LABEL}-${RATE}-XXXX")}"
mkdir -p "$OUTDIR"
cd "$OUTDIR" || exit 2

LOAD_S=$(( (CALLS + RATE - 1) / RATE ))
LIMIT_S=$(( LOAD_S + 20 ))          # hard cap for every sipp
BUF=4194304                         # sipp socket buffers (<= rmem_max)
TCK=$(getconf CLK_TCK)
ulimit -n 65536 2>/dev/null

UAS_PID=""
cleanup() {
  if [ -n "$UAS_PID" ] && kill -0 "$UAS_PID" 2>/dev/null; then
    kill -TERM "$UAS_PID" 2>/dev/null; sleep 0.3
    kill -KILL "$UAS_PID" 2>/dev/null
  fi
}
trap cleanup EXIT INT TERM

# "total user sys" clock ticks of PID (all its threads) and its direct children.
cpu_ticks() {
  local p t=0 u=0 s=0 pu ps kids
  kids=$(ps -o pid= --ppid "$1" 2>/dev/null)
  for p in "$1" $kids; do
    [ -r "/proc/$p/stat" ] || continue
    read -r pu ps < <(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12, $13}')
    t=$((t + pu + ps)); u=$((u + pu)); s=$((s + ps))
  done
  echo "$t $u $s"
}
# host-wide UDP receive-buffer errors (/proc/net/snmp Udp: RcvbufErrors)
udp_rcvbuf_errs() { awk '/^Udp:/{n++; if(n==2) print $6}' /proc/net/snmp; }
# drops counted on the sockets bound to 127.0.0.1:PORT (/proc/net/udp, last column)
sock_drops() {
  local hex; hex=$(printf '0100007F:%04X' "$1")
  awk -v a="$hex" '$2==a{d+=$NF} END{print d+0}' /proc/net/udp
}

# ---- 1. backend UAS ---------------------------------------------------------------------
if ss -lun 2>/dev/null | grep -q "127.0.0.1:$UAS_PORT "; then
  echo "RESULT label=$LABEL rate=$RATE error=uas_port_${UAS_PORT}_busy"; exit 1
fi
sipp -sf "$HERE/scenarios/uas.xml" -i 127.0.0.1 -p "$UAS_PORT" \
     -nostdin -buff_size $BUF -timeout "${LIMIT_S}s" \
     -trace_stat -stf uas_stat.csv -fd 1 -trace_err >uas.out 2>&1 &
UAS_PID=$!
for _ in $(seq 50); do
  ss -lunp 2>/dev/null | grep "127.0.0.1:$UAS_PORT " | grep -q "pid=$UAS_PID," && break
  sleep 0.1
done
if ! kill -0 "$UAS_PID" 2>/dev/null; then
  echo "RESULT label=$LABEL rate=$RATE error=uas_did_not_start logs=$OUTDIR"; exit 1
fi

# ---- 2. UAC load --------------------------------------------------------------------------
P0=""; [ -n "$PROXY_PID" ] && P0=$(cpu_ticks "$PROXY_PID")
E0=$(udp_rcvbuf_errs); D0=$(sock_drops "$PROXY_PORT")
T0=$(date +%s.%N)
TIMEFORMAT='%U %S'
{ time timeout -s INT $((LIMIT_S + 5)) \
    sipp "127.0.0.1:$PROXY_PORT" -sf "$HERE/scenarios/uac.xml" -s "$NUMBER" \
      -i 127.0.0.1 -p "$UAC_PORT" -m "$CALLS" -r "$RATE" -rp 1000 \
      -l $((RATE * 5 + 100)) -d "$PAUSE_MS" \
      -recv_timeout 10000 -timeout "${LIMIT_S}s" -nostdin -buff_size $BUF \
      -trace_stat -stf uac_stat.csv -fd 1 -trace_err -trace_screen \
      >uac.out 2>&1 ; } 2>uac.time
UAC_RC=$?
T1=$(date +%s.%N)
P1=""; [ -n "$PROXY_PID" ] && P1=$(cpu_ticks "$PROXY_PID")
E1=$(udp_rcvbuf_errs); D1=$(sock_drops "$PROXY_PORT")

# ---- 3. stop the UAS (SIGUSR1: graceful, final stats written) ------------------------------
UAS_CPU=$(sed 's/.*) //' "/proc/$UAS_PID/stat" 2>/dev/null | awk -v t="$TCK" '{printf "%.2f", ($12+$13)/t}')
kill -USR1 "$UAS_PID" 2>/dev/null
for _ in $(seq 80); do kill -0 "$UAS_PID" 2>/dev/null || break; sleep 0.1; done
cleanup; wait "$UAS_PID" 2>/dev/null; UAS_PID=""

# ---- summary -------------------------------------------------------------------------------
col() { # col FILE NAME -> column NAME of the last line of a sipp stat csv
  [ -r "$1" ] || { echo NA; return; }
  awk -F';' -v n="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==n) c=i} END{if(c) print $c; else print "NA"}' "$1"
}
OK=$(col uac_stat.csv 'SuccessfulCall(C)');  case "$OK" in ''|NA) OK=0;; esac
FAIL=$(col uac_stat.csv 'FailedCall(C)');    case "$FAIL" in ''|NA) FAIL=0;; esac
RETR=$(col uac_stat.csv 'Retransmissions(C)')
UAS_RETR=$(col uas_stat.csv 'Retransmissions(C)')
UNFIN=$((CALLS - OK - FAIL))
WALL=$(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.2f", b-a}')
read -r UU US < uac.time
UAC_CPU=$(awk -v u="${UU:-0}" -v s="${US:-0}" 'BEGIN{printf "%.2f", u+s}')
PROXY=""
if [ -n "$PROXY_PID" ]; then
  read -r PT0 PU0 PS0 <<<"$P0"; read -r PT1 PU1 PS1 <<<"$P1"
  PROXY=$(awk -v t0="$PT0" -v t1="$PT1" -v u0="$PU0" -v u1="$PU1" -v s0="$PS0" -v s1="$PS1" \
              -v tck="$TCK" -v ok="$OK" -v m="$MSGS_PER_CALL" 'BEGIN{
      c=(t1-t0)/tck; printf " cpu_s=%.2f usr_s=%.2f sys_s=%.2f", c, (u1-u0)/tck, (s1-s0)/tck
      if (ok > 0) printf " us_per_call=%.1f us_per_msg=%.2f", c*1e6/ok, c*1e6/ok/m
      else printf " us_per_call=NA us_per_msg=NA" }')
  # memory: VmHWM of the process; for a multi-process proxy also the summed PSS (shared
  # memory split fairly between its processes)
  HWM=$(awk '/^VmHWM:/{print $2}' "/proc/$PROXY_PID/status" 2>/dev/null)
  PSS=0
  for p in "$PROXY_PID" $(ps -o pid= --ppid "$PROXY_PID" 2>/dev/null); do
    v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null); PSS=$((PSS + ${v:-0}))
  done
  PROXY="$PROXY hwm_kb=${HWM:-NA} pss_kb=$PSS"
fi
echo "RESULT label=$LABEL number=$NUMBER rate=$RATE calls=$CALLS ok=$OK failed=$FAIL unfinished=$UNFIN retrans=$RETR uas_retrans=$UAS_RETR wall_s=$WALL rcvbuf_errs=$((E1 - E0)) proxy_sock_drops=$((D1 - D0)) uac_cpu_s=$UAC_CPU uas_cpu_s=$UAS_CPU${PROXY} uac_rc=$UAC_RC logs=$OUTDIR"
