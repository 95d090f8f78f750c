#!/usr/bin/env bash
# bench/gateway-traces.sh: the gateway's throughput with trace export on (OTLP/HTTP to a
# local collector that accepts and discards) against export off, same binary, same run,
# interleaved rounds. Target: on >= 0.9 of off (requests/s).
#
# Usage: bench/gateway-traces.sh BINARY [ROUNDS]   (default 3 rounds; a release build)
# Env: DURATION (wrk run, default 8s), CONNECTIONS (default 32), PROTOCOL (http/protobuf
#      or http/json, default http/protobuf).
# Setup as bench/gateway-cpu.sh: nginx (one worker) as the upstream, the lab of
# bench/upstream.yaml.tmpl, the access log to a file, wrk -t1 against the gateway. The
# collector is a second nginx (one worker) answering 200 to every POST /v1/traces.
# Prints per run: requests/s, µs of gateway CPU per request, and for "on" the spans the
# gateway exported and dropped (from /metrics); then the medians and on/off.
# Runs as root (installs nginx and wrk if missing).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${1:?usage: bench/gateway-traces.sh BINARY [ROUNDS]}"
ROUNDS="${2:-3}"
DURATION="${DURATION:-8s}"
CONNECTIONS="${CONNECTIONS:-32}"
PROTOCOL="${PROTOCOL:-http/protobuf}"
[[ -x "$BIN" ]] || { echo "gateway-traces: $BIN is not an executable" >&2; exit 2; }
"$BENCH_DIR/../scripts/setup" nginx wrk curl
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NGINX_PORT="$(free_port)"
COLLECTOR_PORT="$(free_port)"
mkdir -p "$TMP/upstream" "$TMP/collector"
sed -e "s|@TMP@|$TMP/upstream|g" -e "s|@NGINX_PORT@|$NGINX_PORT|g" "$BENCH_DIR/nginx.conf.tmpl" > "$TMP/upstream/nginx.conf"
# The collector: the same fixed-answer nginx on its own port (any path, 200, body discarded).
sed -e "s|@TMP@|$TMP/collector|g" -e "s|@NGINX_PORT@|$COLLECTOR_PORT|g" -e 's|client_body_buffer_size 16k;|client_body_buffer_size 16k; client_max_body_size 64m;|' "$BENCH_DIR/nginx.conf.tmpl" > "$TMP/collector/nginx.conf"
sed -e "s|@NGINX_PORT@|$NGINX_PORT|g" "$BENCH_DIR/upstream.yaml.tmpl" > "$TMP/lab.yaml"
nginx -p "$TMP/upstream" -c "$TMP/upstream/nginx.conf" > "$TMP/upstream/nginx.out" 2>&1 &
PIDS+=($!)
nginx -p "$TMP/collector" -c "$TMP/collector/nginx.conf" > "$TMP/collector/nginx.out" 2>&1 &
PIDS+=($!)
BODY='{"model": "", "messages": [{"role": "user", "content": "What is 2+2?"}]}'
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "'$BODY'" > "$TMP/post.lua"
ticks=$(getconf CLK_TCK)
URL_PATH=/bench/v1/chat/completions

# run on|off: prints "requests/s cpu-us-per-request exported dropped" for one wrk run.
run() {
    local mode="$1" port admin pid out before after requests rps metrics exported dropped
    port="$(free_port)"; admin="$(free_port)"
    local args=(gateway "$TMP/lab.yaml" --port "$port" --admin-port "$admin" --access-log "$TMP/access.log")
    if [[ "$mode" == on ]]; then
        OTEL_EXPORTER_OTLP_PROTOCOL="$PROTOCOL" "$BIN" "${args[@]}" --otlp-endpoint "http://127.0.0.1:$COLLECTOR_PORT" > "$TMP/gw.out" 2>&1 &
    else
        env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "$BIN" "${args[@]}" > "$TMP/gw.out" 2>&1 &
    fi
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null -X POST -d "$BODY" "http://127.0.0.1:$port$URL_PATH" && break; sleep 0.1; done
    wrk -t1 -c"$CONNECTIONS" -d2s -s "$TMP/post.lua" "http://127.0.0.1:$port$URL_PATH" > /dev/null
    before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$TMP/post.lua" "http://127.0.0.1:$port$URL_PATH")
    after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    sleep 1.5  # the last batch goes out
    metrics=$(curl -sf "http://127.0.0.1:$admin/metrics" || true)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    exported=$(echo "$metrics" | awk '/^failover_trace_spans_exported_total / {print $2}')
    dropped=$(echo "$metrics" | awk '/^failover_trace_spans_dropped_total / {print $2}')
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    python3 -c "print(f'{$rps:.0f} {($after - $before) / $ticks / $requests * 1e6:.2f} ${exported:--} ${dropped:--}')"
}

off=(); on=()
for r in $(seq "$ROUNDS"); do
    # Alternate which goes first: the second run of a pair was seen to pay for the first's leftovers.
    if ((r % 2)); then a=$(run off); b=$(run on); else b=$(run on); a=$(run off); fi
    off+=("$a"); on+=("$b")
    echo "round $r: off $a | on $b   (req/s, cpu us/request, spans exported, dropped)"
done
python3 - "$(printf '%s;' "${off[@]}")" "$(printf '%s;' "${on[@]}")" <<'PY'
import statistics, sys
def rows(arg): return [r.split() for r in arg.split(";") if r.strip()]
off, on = rows(sys.argv[1]), rows(sys.argv[2])
med = lambda rs, i: statistics.median(float(r[i]) for r in rs)
print(f"median requests/s: off {med(off, 0):.0f}, on {med(on, 0):.0f}, on/off {med(on, 0) / med(off, 0):.3f} (target >= 0.9)")
print(f"median cpu us/request: off {med(off, 1):.2f}, on {med(on, 1):.2f}, on/off {med(on, 1) / med(off, 1):.3f}")
print("spans exported/dropped per 'on' run: " + ", ".join(f"{r[2]}/{r[3]}" for r in on))
PY
