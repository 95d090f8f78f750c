#!/usr/bin/env bash
# bench/driver.sh: how fast and how punctual `failover-lab drive` is.
#
# What it measures. nginx (one worker) answers every POST on loopback with a small
# static JSON body. At the same concurrency and duration, one after the other:
#   drive     failover-lab drive --concurrency N (closed loop), release build
#   baseline  bench/curl_baseline.c: a minimal C loop on libcurl's multi interface with
#             N reused handles, nothing recorded: the ceiling for any libcurl driver
#   wrk       wrk -t1 -cN (POST via a Lua script)
#   hey       hey -cN -m POST
# The four run in turn, ROUNDS times, so that a burst of other work on the machine hits
# all of them alike; the summary gives the best and the median round of each. Then drive
# sends a constant 2,000 requests/s for RATE_DURATION and reports the achieved rate and
# the p99 of (sent - intended).
#
# Targets (from issue 4):
#   drive >= hey;  drive >= 0.90 x baseline;
#   constant 2,000/s: achieved within 1%, p99(sent - intended) < 1 ms.
# Everything shares the same 2 cores, so compare ratios. The exit code is 0 even when
# a target is missed; non-zero means something could not run.
#
# Usage: bench/driver.sh [--no-build]
# Env: DURATION (10), ROUNDS (3), CONCURRENCY (32), RATE (2000), RATE_DURATION (10), PORT (18091),
#      BIN (a failover-lab binary to use instead of building), BODY_TYPE (json|text).
# Results: bench/out/driver-<timestamp>/ (summary.txt, summary.json, raw outputs).

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-32}"
RATE="${RATE:-2000}"
RATE_DURATION="${RATE_DURATION:-10}"
PORT="${PORT:-18091}"
BODY_TYPE="${BODY_TYPE:-json}"
BUILD=1
[[ "${1:-}" == "--no-build" ]] && BUILD=0
[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0; }

log() { printf '[driver-bench] %s\n' "$*" >&2; }
die() { printf '[driver-bench] ERROR: %s\n' "$*" >&2; exit 1; }

for tool in nginx wrk hey cc python3; do
  command -v "$tool" >/dev/null 2>&1 || [[ -x "/usr/sbin/$tool" ]] || die "$tool is missing (apt-get install nginx wrk hey gcc python3)"
done
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

OUT="$BENCH_DIR/out/driver-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
URL="http://127.0.0.1:$PORT/v1/chat/completions"
BODY='{"model": "", "messages": [{"role": "user", "content": "What is 2+2?"}]}'

if [[ -n "${BIN:-}" ]]; then
  FL="$BIN"
elif [[ $BUILD == 1 ]]; then
  log "building failover-lab (release, scratch .build-driver)"
  (cd "$REPO_DIR" && swift build -c release --scratch-path .build-driver --product failover-lab >"$OUT/build.log" 2>&1) \
    || die "swift build failed; see $OUT/build.log"
  FL="$REPO_DIR/.build-driver/release/failover-lab"
else
  FL="$REPO_DIR/.build-driver/release/failover-lab"
fi
[[ -x "$FL" ]] || die "no failover-lab binary at $FL"

log "compiling bench/curl_baseline.c"
cc -O2 -Wall -o "$OUT/curl_baseline" "$BENCH_DIR/curl_baseline.c" -lcurl || die "cannot compile curl_baseline.c (apt-get install libcurl4-openssl-dev)"

if [[ $BODY_TYPE == json ]]; then
  CT=application/json
  RESPONSE='{"id":"chatcmpl-bench","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}],"usage":{"prompt_tokens":13,"completion_tokens":1,"total_tokens":14}}'
else
  CT=text/plain
  RESPONSE='ok'
fi
cat >"$OUT/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $OUT/nginx-body;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$PORT;
    location / { default_type $CT; return 200 '$RESPONSE'; }
  }
}
NGINX
"$NGINX" -c "$OUT/nginx.conf" -e "$OUT/nginx-error.log" &
NGINX_PID=$!
trap 'kill $NGINX_PID 2>/dev/null || true; wait $NGINX_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -s -o /dev/null -X POST -d "$BODY" "$URL" && break
  sleep 0.1
done
curl -s -o /dev/null -X POST -d "$BODY" "$URL" || die "nginx did not start on port $PORT (see $OUT/nginx-error.log)"

cat >"$OUT/post.lua" <<LUA
wrk.method = "POST"
wrk.body   = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA

log "warm-up"
"$OUT/curl_baseline" "$URL" "$CONCURRENCY" 1 >/dev/null

for round in $(seq "$ROUNDS"); do
  log "round $round/$ROUNDS: drive (closed loop, $CONCURRENCY in flight, ${DURATION}s)"
  "$FL" drive "$URL" --concurrency "$CONCURRENCY" --duration "${DURATION}s" --json --no-progress >"$OUT/drive-$round.json"
  log "round $round/$ROUNDS: C libcurl baseline ($CONCURRENCY handles)"
  "$OUT/curl_baseline" "$URL" "$CONCURRENCY" "$DURATION" >"$OUT/baseline-$round.txt"
  log "round $round/$ROUNDS: wrk -t1 -c$CONCURRENCY"
  wrk -t1 -c"$CONCURRENCY" -d"${DURATION}s" -s "$OUT/post.lua" "$URL" >"$OUT/wrk-$round.txt"
  log "round $round/$ROUNDS: hey -c$CONCURRENCY"
  hey -c "$CONCURRENCY" -z "${DURATION}s" -m POST -T application/json -d "$BODY" "$URL" >"$OUT/hey-$round.txt"
done
log "drive: constant $RATE/s for ${RATE_DURATION}s"
"$FL" drive "$URL" --rate "$RATE/s" --duration "${RATE_DURATION}s" --json --no-progress >"$OUT/rate.json"

python3 - "$OUT" "$RATE" "$CONCURRENCY" "$DURATION" "$ROUNDS" <<'PY'
import json, re, statistics, sys
out, rate, conc, dur, rounds = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def grab(pattern, name):
    return [float(re.search(pattern, open(f"{out}/{name}-{i}.txt").read()).group(1)) for i in range(1, rounds + 1)]
drives = [json.load(open(f"{out}/drive-{i}.json")) for i in range(1, rounds + 1)]
runs = {
    "drive": [d["throughput"] for d in drives],
    "baseline": grab(r"rps=([\d.]+)", "baseline"),
    "wrk": grab(r"Requests/sec:\s+([\d.]+)", "wrk"),
    "hey": grab(r"Requests/sec:\s+([\d.]+)", "hey"),
}
best = {k: max(v) for k, v in runs.items()}
median = {k: statistics.median(v) for k, v in runs.items()}
drive_rps, base, wrk, hey = best["drive"], best["baseline"], best["wrk"], best["hey"]
errors = sum(d["errors"] for d in drives)
r = json.load(open(f"{out}/rate.json"))
achieved = r["achieved_rate"]
lag = r["send_lag_ms"] or {}
lag99 = lag.get("p99", float("nan"))
err = abs(achieved - rate) / rate
def row(name, k):
    return f"  {name:20} {best[k]:10.0f} req/s best, {median[k]:10.0f} median   ({', '.join(f'{x:.0f}' for x in runs[k])})"
lines = [
    f"closed loop, {conc} in flight, {dur}s x {rounds} rounds, POST on loopback to nginx (1 worker)",
    row("failover-lab drive", "drive") + f"  errors {errors}",
    row("C libcurl baseline", "baseline"),
    row("wrk -t1", "wrk"),
    row("hey", "hey"),
    f"  drive / baseline     {drive_rps / base:10.3f} best, {median['drive'] / median['baseline']:.3f} median   (target >= 0.90)  {'ok' if drive_rps >= 0.9 * base else 'MISSED'}",
    f"  drive / hey          {drive_rps / hey:10.3f} best, {median['drive'] / median['hey']:.3f} median   (target >= 1.00)  {'ok' if drive_rps >= hey else 'MISSED'}",
    f"  drive / wrk          {drive_rps / wrk:10.3f} best",
    f"constant {rate:.0f}/s for the rate run",
    f"  achieved             {achieved:10.1f} req/s  ({err*100:.2f}% off; target <= 1%)  {'ok' if err <= 0.01 else 'MISSED'}",
    f"  sent - intended p99  {lag99:10.3f} ms     (target < 1 ms)  {'ok' if lag99 < 1 else 'MISSED'}",
    f"  sent - intended p50  {lag.get('p50', float('nan')):10.3f} ms, max {lag.get('max', float('nan')):.3f} ms; late {r['late']}",
    f"  latency corrected p99 {r['latency_corrected_ms']['p99']:.3f} ms, from send p99 {r['latency_ms']['p99']:.3f} ms",
]
text = "\n".join(lines)
print(text)
open(f"{out}/summary.txt", "w").write(text + "\n")
json.dump({"runs": runs, "drive_rps": drive_rps, "baseline_rps": base, "wrk_rps": wrk, "hey_rps": hey,
           "rate_target": rate, "rate_achieved": achieved, "send_lag_p99_ms": lag99}, open(f"{out}/summary.json", "w"), indent=1)
PY
log "results in $OUT"
