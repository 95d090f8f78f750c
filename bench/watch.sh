#!/usr/bin/env bash
# What `failover-lab watch` costs: an access log growing at 5,000 lines/s plus admin polls
# twice a second (--interval 500ms), CPU of the watch process as % of one core.
#
#   bench/watch.sh                       5,000 lines/s for 30 s, --json to /dev/null
#   RATE=2000 SECONDS_RUN=20 bench/watch.sh
#   BIN=.build/debug/failover-lab bench/watch.sh   (a debug binary: a pessimistic figure)
#   MODE=--headless bench/watch.sh
#
# The log writer is a small Python loop appending agentgateway-shaped request lines in
# batches every 50 ms; the admin port is Python's http.server serving a fixed config dump
# (three groups, one provider evicted). The figure is the watch process's user+system CPU
# seconds (from /proc) between the 5th second and the end, divided by that wall time.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-5000}
SECONDS_RUN=${SECONDS_RUN:-30}
MODE=${MODE:---json}
SCRATCH=${SCRATCH:-.build-watch}
if [ -z "${BIN:-}" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product failover-lab >&2
  BIN="$SCRATCH/release/failover-lab"
fi

dir=$(mktemp -d)
cleanup() { kill "${writer:-}" "${server:-}" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

cat > "$dir/config_dump" <<'EOF'
{"backends": [{"backend": {"ai": {"name": "failover", "namespace": "default", "target": {"providers": [
 {"active": {}, "rejected": {"http-429-provider": {"endpoint": {"name": "http-429-provider"},
   "info": {"health": 0.0, "requestLatency": 0.0, "pendingRequests": 0, "totalRequests": 3, "consecutiveFailures": 1, "timesEjected": 1, "evictedUntil": "59.876s"}}}},
 {"active": {"openai-provider": {"endpoint": {"name": "openai-provider"},
   "info": {"health": 0.99, "requestLatency": 0.4, "pendingRequests": 3, "totalRequests": 12000, "consecutiveFailures": 0, "timesEjected": 0, "evictedUntil": null}}}, "rejected": {}},
 {"active": {"backup": {"endpoint": {"name": "backup"}, "info": {"health": 1}}}, "rejected": {}}
]}}}}]}
EOF
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$dir" >/dev/null 2>&1 &
server=$!

python3 - "$dir/access.log" "$RATE" <<'EOF' &
import sys, time
path, rate = sys.argv[1], int(sys.argv[2])
line = ('{"level":"info","time":"2026-12-02T07:31:08.123456Z","scope":"request","gateway":"default/agentgateway",'
        '"route":"default/http-429","endpoint":"10.0.0.7:8080","http.method":"POST","http.path":"/http-429",'
        '"http.status":%d,"gen_ai.request.model":"gpt-4o-mini","gen_ai.usage.input_tokens":12,'
        '"gen_ai.usage.output_tokens":30,"duration":"12ms"}\n')
batch = max(1, rate // 20)
with open(path, "a", buffering=1 << 20) as f:
    start = time.monotonic(); n = 0
    while True:
        f.write("".join(line % (429 if (n + i) % 50 == 0 else 200) for i in range(batch)))
        f.flush(); n += batch
        delay = start + n / rate - time.monotonic()
        if delay > 0: time.sleep(delay)
EOF
writer=$!
sleep 1

"$BIN" watch "$MODE" --duration "${SECONDS_RUN}s" --interval 500ms --admin "gw=http://127.0.0.1:$port" --access-log "gw=$dir/access.log" > "$dir/out" &
watch=$!
sleep 5
ticks=$(getconf CLK_TCK)
read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$watch/stat")
t0=$(date +%s.%N)
sleep $((SECONDS_RUN - 7))
read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$watch/stat")
t1=$(date +%s.%N)
wait "$watch" || true
lines=$(wc -l < "$dir/access.log")
python3 - "$u0" "$s0" "$u1" "$s1" "$t0" "$t1" "$ticks" "$RATE" "$lines" "$dir/out" <<'EOF'
import sys, json
u0, s0, u1, s1, t0, t1, ticks, rate, lines, out = sys.argv[1:]
cpu = (int(u1) + int(s1) - int(u0) - int(s0)) / int(ticks)
wall = float(t1) - float(t0)
summary = {}
for l in open(out):
    if '"type":"summary"' in l: summary = json.loads(l)
print(f"watch: {rate} lines/s + 2 admin polls/s for {wall:.1f} s measured: CPU {cpu:.2f} s = {100 * cpu / wall:.1f}% of one core")
print(f"  log lines written {lines}, requests read {summary.get('requests')}, skipped {summary.get('skipped_lines')}, polls {summary.get('by_replica', {}).get('gw', {}).get('polls')}")
EOF
