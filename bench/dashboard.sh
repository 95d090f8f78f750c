#!/usr/bin/env bash
# What the dashboard costs: the same traffic twice, once drawn in a tmux pane, once
# --headless (stdout to /dev/null), with CPU seconds and peak RSS of each.
#
#   bench/dashboard.sh                 2,000 requests/s for 60 s (the issue's figures)
#   RATE=500/s SECONDS_RUN=20 bench/dashboard.sh
#   SOAK=1 bench/dashboard.sh          also: RSS after 1 and 10 minutes at 1,000 requests/s,
#                                      the charts on their 10-minute window
#   SOAK=1 SOAK_ONLY=1 SOAK_MINUTES=2 bench/dashboard.sh   a shorter soak alone
#
#   STREAMS=5000 bench/dashboard.sh    LLM scale instead (issue 15): `run --no-steps
#                                      --concurrency 5000 --stream --stand-in openai='ttft 100ms
#                                      tokens 20 rate 20/s'` for SECONDS_RUN (30) s, drawn and
#                                      --headless: CPU seconds of each, and the dashboard's frame
#                                      time p50/p99/max and its CPU (FAILOVER_LAB_FRAME_TIMES=1; target < 20 ms,
#                                      CPU within +10 % of headless). SHAPE= changes the shape;
#                                      ROUNDS (3) alternating pairs, with the median of
#                                      dashboard against headless CPU per finished request.
#
# The seed lab's http-429 stand-in is made healthy (--stand-in http-429=healthy), so all
# traffic goes to group 1 and the dashboard has a full request log to draw.
# Needs tmux and GNU time (/usr/bin/time). Builds a release binary into .build-tui.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-2000/s}
SECONDS_RUN=${SECONDS_RUN:-60}
SCRATCH=${SCRATCH:-.build-tui}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"

command -v tmux >/dev/null || { echo "bench/dashboard.sh: tmux is needed (apt-get install tmux)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/dashboard.sh: GNU time is needed (apt-get install time)" >&2; exit 1; }

if [ -z "${BIN:-}" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product failover-lab >&2
  BIN="$SCRATCH/release/failover-lab"
fi
ARGS=(run --port 0 --stand-in http-429=healthy --rate "$RATE" --duration "${SECONDS_RUN}s")
stamp=$(date -u +%Y%m%dT%H%M%SZ)

sock="fl-bench-$$"
trap 'tmux -L "$sock" kill-server 2>/dev/null || true' EXIT

# One drawn run in a tmux pane: COMMAND must write time(1)'s figures to $OUT/NAME.time. The
# screen at half of SECONDS_RUN goes to NAME.screen, and the pane once the run ended (the
# report is printed when the terminal is restored) to NAME.report.
# drawn NAME WIDTH HEIGHT COMMAND
drawn() {
  tmux -L "$sock" new-session -d -s bench -x "$2" -y "$3" "$4; sleep 60"
  sleep $((SECONDS_RUN / 2))
  tmux -L "$sock" capture-pane -p -t bench > "$OUT/$1.screen" || true
  for _ in $(seq 1 $((SECONDS_RUN + 60))); do
    [ -s "$OUT/$1.time" ] && break
    sleep 1
  done
  tmux -L "$sock" capture-pane -p -S -200 -t bench > "$OUT/$1.report" || true
  tmux -L "$sock" kill-session -t bench 2>/dev/null || true
}

if [ -n "${STREAMS:-}" ]; then
  # Each stream is a socket in the driver, two in the gateway, one in the mock: raise the
  # soft limit to the hard one (a tmux pane inherits it from the server, started below).
  ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
  [ "$(ulimit -Sn)" = unlimited ] || [ "$(ulimit -Sn)" -ge $((STREAMS * 4 + 1024)) ] \
    || echo "bench/dashboard.sh: file-descriptor limit $(ulimit -Sn) is below $((STREAMS * 4 + 1024)); raise the hard limit" >&2
  SECONDS_RUN=${SECONDS_RUN_STREAMS:-30}
  SHAPE=${SHAPE:-ttft 100ms tokens 20 rate 20/s}
  SARGS=(run --port 0 --no-steps --concurrency "$STREAMS" --stream --duration "${SECONDS_RUN}s")
  ROUNDS=${ROUNDS:-3}
  echo "dashboard at LLM scale: $STREAMS streams ('$SHAPE') for ${SECONDS_RUN}s, one process (gateway, mock, driver, dashboard), $ROUNDS rounds, headless then drawn"
  printf "  %-6s %-10s %8s %10s %10s %9s\n" round mode "CPU s" requests "us/request" "peak RSS"
  : > "$OUT/streams-rounds-$stamp.txt"
  for round in $(seq 1 "$ROUNDS"); do
    tag="$stamp-$round"
    /usr/bin/time -f "%U %S %M" -o "$OUT/streams-headless-$tag.time" "$BIN" "${SARGS[@]}" --stand-in "openai=$SHAPE" --headless > "$OUT/streams-headless-$tag.out"
    read -r hu hs hm < "$OUT/streams-headless-$tag.time"
    drawn "streams-dashboard-$tag" 160 48 \
      "FAILOVER_LAB_FRAME_TIMES=1 /usr/bin/time -f '%U %S %M' -o '$OUT/streams-dashboard-$tag.time' '$BIN' ${SARGS[*]} --stand-in 'openai=$SHAPE' 2>'$OUT/streams-frames-$tag.txt'"
    read -r du ds dm < "$OUT/streams-dashboard-$tag.time"
    hc=$(awk "BEGIN { printf \"%.2f\", $hu + $hs }"); dc=$(awk "BEGIN { printf \"%.2f\", $du + $ds }")
    # The two runs do not finish the same number of requests (the machine is shared, the
    # chain saturates it): CPU per finished request is the fair comparison.
    hn=$(grep -h '^requests' "$OUT/streams-headless-$tag.out" | tail -1 | awk '{print $2}')
    dn=$(grep -h '^requests' "$OUT/streams-dashboard-$tag.report" | tail -1 | awk '{print $2}')
    # The dashboard's own frames' CPU ("... s in all"), next to the headless run's whole CPU.
    fc=$(grep -ho 'CPU [^;]*, [0-9.]* s in all' "$OUT/streams-frames-$tag.txt" | awk '{print $(NF-3)}')
    printf "  %-6s %-10s %8s %10s %10.0f %6d MiB\n" "$round" headless "$hc" "${hn:-?}" "$(awk "BEGIN { print (${hn:-0} > 0 ? $hc / ${hn:-1} * 1e6 : 0) }")" $((hm / 1024))
    printf "  %-6s %-10s %8s %10s %10.0f %6d MiB\n" "$round" dashboard "$dc" "${dn:-?}" "$(awk "BEGIN { print (${dn:-0} > 0 ? $dc / ${dn:-1} * 1e6 : 0) }")" $((dm / 1024))
    echo "         $(grep -h '^frame time' "$OUT/streams-frames-$tag.txt" | cut -c1-150 || echo 'frame time: not printed')"
    echo "$hc ${hn:-0} $dc ${dn:-0} ${fc:-0}" >> "$OUT/streams-rounds-$stamp.txt"
  done
  python3 - "$OUT/streams-rounds-$stamp.txt" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
per = [((d / dn) - (h / hn)) / (h / hn) * 100 for h, hn, d, dn, f in rows if hn > 0 and dn > 0]
whole = [(d - h) / h * 100 for h, hn, d, dn, f in rows]
frames = [f / h * 100 for h, hn, d, dn, f in rows]
fmt = lambda xs: ", ".join(f"{x:+.1f}%" for x in xs)
print(f"  dashboard over headless, CPU per finished request: {fmt(per)}; median {statistics.median(per):+.1f}% (target: at most +10%)" if per else "  CPU per request: not read")
print(f"  the same, whole runs: {fmt(whole)}")
print(f"  the dashboard's own frames' CPU, as a share of the headless run's: {', '.join(f'{x:.2f}%' for x in frames)}")
PY
  exit 0
fi

if [ -z "${SOAK_ONLY:-}" ]; then
# --- headless: stdout is not a terminal, so it prints lines instead of drawing.
/usr/bin/time -f "%U %S %M" -o "$OUT/headless-$stamp.time" "$BIN" "${ARGS[@]}" --headless > /dev/null
read -r hu hs hm < "$OUT/headless-$stamp.time"

# --- dashboard: a 120x40 tmux pane; time's output goes to a file.
drawn "dashboard-$stamp" 120 40 "/usr/bin/time -f '%U %S %M' -o '$OUT/dashboard-$stamp.time' '$BIN' ${ARGS[*]}"
read -r du ds dm < "$OUT/dashboard-$stamp.time"

cpu() { awk "BEGIN { printf \"%.2f\", $1 + $2 }"; }
hc=$(cpu "$hu" "$hs"); dc=$(cpu "$du" "$ds")
echo "dashboard benchmark: $RATE for ${SECONDS_RUN}s against the seed lab (http-429 stand-in healthy)"
printf "  %-10s %10s %12s\n" mode "CPU s" "peak RSS"
printf "  %-10s %10s %9d MiB\n" headless "$hc" $((hm / 1024))
printf "  %-10s %10s %9d MiB\n" dashboard "$dc" $((dm / 1024))
awk "BEGIN { printf \"  dashboard adds %.1f%% CPU over headless (target: at most 10%%)\n\", ($dc - $hc) * 100 / $hc }"
grep -E "^requests|^rate" "$OUT/dashboard-$stamp.report" | sed 's/^/  dashboard run: /' || true
echo "  screen at ${SECONDS_RUN}/2 s: $OUT/dashboard-$stamp.screen"

fi

# --- soak: RSS must not grow with the run's length (history lives in bounded rings; the
# charts keep 10 minutes of seconds, each with a fixed-size latency sketch).
if [ -n "${SOAK:-}" ]; then
  minutes=${SOAK_MINUTES:-10}
  # Its stdout is the pane, so it draws (sent to /dev/null, it would run headless).
  tmux -L "$sock" new-session -d -s soak -x 120 -y 40 "'$BIN' run --port 0 --stand-in http-429=healthy --rate 1000/s --chart-window 10m --duration $((minutes + 1))m"
  sleep 2
  pid=$(pgrep -n -f "failover-lab run --port 0 --stand-in http-429=healthy --rate 1000/s")
  rss() { awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$pid/status"; }
  sleep 58; r1=$(rss)
  sleep $(( (minutes - 1) * 60 )); rn=$(rss)
  tmux -L "$sock" capture-pane -p -t soak > "$OUT/soak-$stamp.screen" || true
  echo "soak at 1000/s, charts on a 10 min window: RSS after 1 min ${r1} MiB, after ${minutes} min ${rn} MiB, growth $((rn - r1)) MiB (target: < 20 MiB)"
  echo "  screen at the end: $OUT/soak-$stamp.screen"
fi
