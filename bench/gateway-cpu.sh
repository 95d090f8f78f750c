#!/usr/bin/env bash
# bench/gateway-cpu.sh: the gateway's CPU time per proxied request, for two binaries in
# turn (interleaved rounds), so a change's cost shows even on a busy machine, where
# requests/s swing with whatever else runs but CPU per request moves much less.
#
# Usage: bench/gateway-cpu.sh OLD_BINARY NEW_BINARY [ROUNDS]   (default 3 rounds)
# Env: DURATION (wrk run, default 8s), CONNECTIONS (default 32).
# Same setup as bench/gateway.sh: nginx (one worker) as the upstream, the lab of
# bench/upstream.yaml.tmpl, the access log to a file, wrk -t1 against the gateway.
# Rounds alternate which binary runs first. Prints µs of CPU (user + system, from /proc) per request for each run, the medians,
# and new/old. Runs as root (installs nginx and wrk if missing).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OLD="${1:?usage: bench/gateway-cpu.sh OLD_BINARY NEW_BINARY [ROUNDS]}"
NEW="${2:?usage: bench/gateway-cpu.sh OLD_BINARY NEW_BINARY [ROUNDS]}"
ROUNDS="${3:-3}"
DURATION="${DURATION:-8s}"
CONNECTIONS="${CONNECTIONS:-32}"
for b in "$OLD" "$NEW"; do [[ -x "$b" ]] || { echo "gateway-cpu: $b is not an executable" >&2; exit 2; }; done
"$BENCH_DIR/../scripts/setup" nginx wrk curl
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NGINX_PORT="$(free_port)"
sed -e "s|@TMP@|$TMP|g" -e "s|@NGINX_PORT@|$NGINX_PORT|g" "$BENCH_DIR/nginx.conf.tmpl" > "$TMP/nginx.conf"
sed -e "s|@NGINX_PORT@|$NGINX_PORT|g" "$BENCH_DIR/upstream.yaml.tmpl" > "$TMP/lab.yaml"
nginx -p "$TMP" -c "$TMP/nginx.conf" > "$TMP/nginx.out" 2>&1 &
PIDS+=($!)
BODY='{"model": "", "messages": [{"role": "user", "content": "What is 2+2?"}]}'
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "'$BODY'" > "$TMP/post.lua"
ticks=$(getconf CLK_TCK)

# run BINARY: prints µs of CPU per request for one wrk run.
run() {
    local bin="$1" port pid out before after requests
    port="$(free_port)"
    "$bin" gateway "$TMP/lab.yaml" --port "$port" --no-admin --access-log "$TMP/access.log" > "$TMP/gw.out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null -X POST -d "$BODY" "http://127.0.0.1:$port/bench/v1/chat/completions" && break; sleep 0.1; done
    wrk -t1 -c"$CONNECTIONS" -d2s -s "$TMP/post.lua" "http://127.0.0.1:$port/bench/v1/chat/completions" > /dev/null
    before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$TMP/post.lua" "http://127.0.0.1:$port/bench/v1/chat/completions")
    after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    python3 -c "print(f'{($after - $before) / $ticks / $requests * 1e6:.2f}')"
}

old=(); new=()
for r in $(seq "$ROUNDS"); do
    # Alternate which goes first: the second run of a pair was seen to pay for the first's leftovers.
    if ((r % 2)); then o=$(run "$OLD"); n=$(run "$NEW"); else n=$(run "$NEW"); o=$(run "$OLD"); fi
    old+=("$o"); new+=("$n")
    echo "round $r: old $o us/request, new $n us/request"
done
python3 - "${old[*]}" "${new[*]}" <<'PY'
import statistics, sys
old = [float(x) for x in sys.argv[1].split()]
new = [float(x) for x in sys.argv[2].split()]
mo, mn = statistics.median(old), statistics.median(new)
print(f"median CPU per request: old {mo:.2f} us, new {mn:.2f} us, new/old {mn / mo:.3f}")
PY
