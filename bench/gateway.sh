#!/usr/bin/env bash
# bench/gateway.sh: throughput and added latency of the failover-lab gateway.
#
# What it measures. nginx (one worker) answers every POST with a fixed OpenAI
# chat completion: the fastest upstream we can get. wrk (-t1 -c32 by default)
# drives three targets in turn at the same concurrency:
#   direct   nginx itself                       (the ceiling)
#   haproxy  haproxy, one thread, in front      (a reference proxy)
#   gateway  `failover-lab gateway`, release build, every lab feature on
#            (model override, balancer, access log written to a file)
# Then hey sends a constant 1,000 requests/s (10 workers x 100 q/s) to direct,
# haproxy and the gateway, to see the p99 the gateway adds at a fixed rate.
#
# How to read it. "share" is requests/s relative to direct. Targets:
#   gateway/direct  >= 0.30
#   gateway/haproxy >= 0.65   (haproxy alone was about 0.47 of direct)
#   p99(gateway) - p99(direct) at 1,000 rps <= 1 ms
# Everything shares the same cores as wrk, so compare ratios, not absolutes.
# The summary is also written as JSON to bench/out/gateway-<timestamp>.json.
# The exit code is 0 even when a target is missed; non-zero means something
# could not run (the message says what).
#
# Usage: bench/gateway.sh [--no-build] [--skip-gateway] [--duration 10s]
#          [--connections 32] [--threads 1] [--warmup 2s] [--rate-duration 10s]
# Env: DURATION, CONNECTIONS, WRK_THREADS, WARMUP, RATE_DURATION,
#      GATEWAY_ARGS (extra args for `failover-lab gateway`, e.g. "--threads 2"),
#      GATEWAY_PATH (request path on the gateway, default /bench/v1/chat/completions),
#      GATEWAY_BIN (use this binary: no build, no `swift build --show-bin-path`),
#      KEEP_TMP=1 (keep the temp dir with configs, logs and raw wrk/hey output).
# Runs as root (installs nginx, haproxy, wrk, hey with apt-get if missing).

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
WRK_THREADS="${WRK_THREADS:-1}"
WARMUP="${WARMUP:-2s}"
RATE_DURATION="${RATE_DURATION:-10s}"
RATE_WORKERS=10
RATE_PER_WORKER=100 # 10 x 100 = 1,000 requests/s
GATEWAY_ARGS="${GATEWAY_ARGS:-}"
GATEWAY_PATH="${GATEWAY_PATH:-/bench/v1/chat/completions}"
BUILD=1
SKIP_GATEWAY=0
KEEP_TMP="${KEEP_TMP:-0}" # 1: keep the temp dir (configs, logs, raw wrk/hey output)

BODY='{"model": "", "messages": [{"role": "user", "content": "What is 2+2?"}]}'

TMP=""
PIDS=()  # servers started (nginx, haproxy, gateway)
CHILD="" # the load generator running now

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

parse_args() {
    while (($#)); do
        case "$1" in
            --no-build) BUILD=0 ;;
            --skip-gateway) SKIP_GATEWAY=1 ;;
            --duration) DURATION="${2:?--duration needs a value}"; shift ;;
            --connections) CONNECTIONS="${2:?--connections needs a value}"; shift ;;
            --threads) WRK_THREADS="${2:?--threads needs a value}"; shift ;;
            --warmup) WARMUP="${2:?--warmup needs a value}"; shift ;;
            --rate-duration) RATE_DURATION="${2:?--rate-duration needs a value}"; shift ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown argument: $1 (see --help)" ;;
        esac
        shift
    done
}

# --- setup and teardown -------------------------------------------------------

cleanup() {
    local pid
    [[ -z "$CHILD" ]] || kill -TERM "$CHILD" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        if ((KEEP_TMP)); then log "kept $TMP"; else rm -rf "$TMP"; fi
    fi
}

ensure_tools() {
    [[ $EUID -eq 0 ]] || die "run as root (it may apt-get install and runs nginx)"
    local missing=() tool pkg
    for tool in nginx haproxy wrk hey curl python3; do
        if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$tool" ]]; then
            case "$tool" in
                python3) pkg=python3-minimal ;;
                *) pkg="$tool" ;;
            esac
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]})); then
        log "installing: ${missing[*]}"
        apt-get update -qq || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
            || die "apt-get install ${missing[*]} failed"
    fi
    export PATH="$PATH:/usr/sbin:/sbin"
}

# run_child CMD...: run a load generator in the background and wait for it, so
# that INT/TERM are handled at once rather than when it finishes.
run_child() {
    local rc=0
    "$@" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# render TEMPLATE OUT: replace @TMP@, @NGINX_PORT@, @HAPROXY_PORT@.
render() {
    sed -e "s|@TMP@|$TMP|g" \
        -e "s|@NGINX_PORT@|$NGINX_PORT|g" \
        -e "s|@HAPROXY_PORT@|${HAPROXY_PORT:-}|g" \
        "$1" >"$2"
}

write_load_files() {
    printf '%s' "$BODY" >"$TMP/body.json"
    cat >"$TMP/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
EOF
}

# wait_ready NAME URL PID LOG: poll with a POST until 200 (10 s), checking the content.
wait_ready() {
    local name="$1" url="$2" pid="$3" logfile="$4" i out
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited early: $(tail -n 20 "$logfile")"
        if out="$(curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$TMP/body.json" "$url" 2>/dev/null)"; then
            [[ "$out" == *'"2 + 2 equals 4."'* ]] || die "$name answered 200 but not the fixed completion: $out"
            [[ "$out" == *'"model":"gpt-4o-mini"'* || "$out" == *'"model": "gpt-4o-mini"'* ]] \
                || die "$name answered without model gpt-4o-mini: $out"
            return 0
        fi
        sleep 0.1
    done
    die "$name did not answer 200 on $url within 10 s"
}

start_nginx() {
    NGINX_PORT="$(free_port)"
    render "$BENCH_DIR/nginx.conf.tmpl" "$TMP/nginx.conf"
    nginx -t -q -p "$TMP" -c "$TMP/nginx.conf" 2>"$TMP/nginx-check.log" \
        || die "nginx config check failed: $(cat "$TMP/nginx-check.log")"
    nginx -p "$TMP" -c "$TMP/nginx.conf" >"$TMP/nginx.out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    DIRECT_URL="http://127.0.0.1:$NGINX_PORT/v1/chat/completions"
    wait_ready nginx "$DIRECT_URL" "$pid" "$TMP/nginx.out"
    log "nginx on 127.0.0.1:$NGINX_PORT"
}

start_haproxy() {
    HAPROXY_PORT="$(free_port)"
    render "$BENCH_DIR/haproxy.cfg.tmpl" "$TMP/haproxy.cfg"
    haproxy -c -q -f "$TMP/haproxy.cfg" >"$TMP/haproxy-check.log" 2>&1 \
        || die "haproxy config check failed: $(cat "$TMP/haproxy-check.log")"
    haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    HAPROXY_URL="http://127.0.0.1:$HAPROXY_PORT/v1/chat/completions"
    wait_ready haproxy "$HAPROXY_URL" "$pid" "$TMP/haproxy.out"
    log "haproxy on 127.0.0.1:$HAPROXY_PORT"
}

gateway_binary() {
    if [[ -n "${GATEWAY_BIN:-}" ]]; then
        [[ -x "$GATEWAY_BIN" ]] || die "GATEWAY_BIN=$GATEWAY_BIN is not an executable"
        return 0
    fi
    command -v swift >/dev/null 2>&1 || die "swift not found on PATH (needed for the release build)"
    [[ -f "$REPO_DIR/Package.swift" ]] || die "no Package.swift in $REPO_DIR"
    if ((BUILD)); then
        log "swift build -c release (skip with --no-build)"
        (cd "$REPO_DIR" && swift build -c release >&2) || die "swift build -c release failed"
    fi
    local bin_dir
    bin_dir="$(cd "$REPO_DIR" && swift build -c release --show-bin-path)" \
        || die "swift build -c release --show-bin-path failed"
    GATEWAY_BIN="$bin_dir/failover-lab"
    [[ -x "$GATEWAY_BIN" ]] || die "no release binary at $GATEWAY_BIN (build it, or drop --no-build)"
}

start_gateway() {
    render "$BENCH_DIR/upstream.yaml.tmpl" "$TMP/lab.yaml"
    local args=()
    # shellcheck disable=SC2206 # GATEWAY_ARGS is deliberately word-split.
    [[ -n "$GATEWAY_ARGS" ]] && args=($GATEWAY_ARGS)
    "$GATEWAY_BIN" gateway "$TMP/lab.yaml" --port 0 --access-log "$TMP/access.log" "${args[@]}" \
        >"$TMP/gateway.out" 2>"$TMP/gateway.err" &
    local pid=$! i line=""
    PIDS+=("$pid")
    for ((i = 0; i < 300; i++)); do
        line="$(grep -m1 -o 'listening on http://[^ ]*' "$TMP/gateway.err" || true)"
        [[ -n "$line" ]] && break
        kill -0 "$pid" 2>/dev/null || die "gateway exited early: $(tail -n 20 "$TMP/gateway.err")"
        sleep 0.1
    done
    [[ -n "$line" ]] || die "gateway printed no 'listening on http://HOST:PORT' within 30 s: $(tail -n 20 "$TMP/gateway.err")"
    GATEWAY_PORT="${line##*:}"
    GATEWAY_PORT="${GATEWAY_PORT%%/*}"
    [[ "$GATEWAY_PORT" =~ ^[0-9]+$ ]] || die "could not parse a port from: $line"
    GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT$GATEWAY_PATH"
    wait_ready gateway "$GATEWAY_URL" "$pid" "$TMP/gateway.err"
    log "gateway on 127.0.0.1:$GATEWAY_PORT ($GATEWAY_BIN gateway ... $GATEWAY_ARGS)"
}

# --- measuring ----------------------------------------------------------------

# to_ms VALUE: wrk latency (e.g. 512.00us, 1.20ms, 1.01s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000
        else if (u == "m") n *= 60000; else if (u == "h") n *= 3600000
        else if (u != "ms") { print "NaN"; exit }
        printf "%.3f", n }'
}

# run_wrk NAME URL: sets RPS_<NAME>, P50_<NAME>, P99_<NAME> (ms).
run_wrk() {
    local name="$1" url="$2" out="$TMP/wrk-$1.txt" rps p50 p99 bad errs
    log "$name: warm-up $WARMUP, then wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION"
    run_child wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$TMP/post.lua" "$url" >/dev/null \
        || die "wrk warm-up against $name failed"
    run_child wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$TMP/post.lua" "$url" >"$out" \
        || die "wrk against $name failed: $(cat "$out")"
    rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    p50="$(awk '$1 == "50%" {print $2; exit}' "$out")"
    p99="$(awk '$1 == "99%" {print $2; exit}' "$out")"
    [[ -n "$rps" && -n "$p50" && -n "$p99" ]] || die "could not parse wrk output for $name: $(cat "$out")"
    bad="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")"
    errs="$(grep -m1 'Socket errors:' "$out" || true)"
    [[ -n "$bad" ]] && log "WARNING: $name: $bad non-2xx responses"
    [[ -n "$errs" ]] && log "WARNING: $name: $errs"
    printf -v "RPS_$name" '%s' "$rps"
    printf -v "P50_$name" '%s' "$(to_ms "$p50")"
    printf -v "P99_$name" '%s' "$(to_ms "$p99")"
    printf -v "BAD_$name" '%s' "${bad:-0}"
}

# run_hey NAME URL: constant 1,000 rps; sets HEYP99_<NAME> (ms), HEYRPS_<NAME>.
run_hey() {
    local name="$1" url="$2" out="$TMP/hey-$1.txt" p99 rps non200
    log "$name: hey -z $RATE_DURATION -c $RATE_WORKERS -q $RATE_PER_WORKER (constant rate)"
    run_child hey -z "$RATE_DURATION" -c "$RATE_WORKERS" -q "$RATE_PER_WORKER" -m POST \
        -T application/json -d "$BODY" "$url" >"$out" 2>&1 \
        || die "hey against $name failed: $(cat "$out")"
    p99="$(awk '$1 == "99%" && $2 == "in" {print $3; exit}' "$out")"
    rps="$(awk '/Requests\/sec:/ {print $2; exit}' "$out")"
    [[ -n "$p99" ]] || die "could not parse hey's p99 for $name: $(cat "$out")"
    non200="$(awk '/^Status code distribution:/ {s=1; next} s && /^ *\[/ && $1 != "[200]" {n += $2} END {print n+0}' "$out")"
    ((non200 == 0)) || log "WARNING: $name: $non200 non-200 responses from hey"
    grep -q '^Error distribution:' "$out" && log "WARNING: $name: hey reported errors (see $out)"
    if awk -v r="$rps" -v want="$((RATE_WORKERS * RATE_PER_WORKER))" 'BEGIN {exit !(r < 0.9 * want)}'; then
        log "WARNING: $name: only $rps requests/s at the constant rate: its p99 is not at 1,000 rps"
    fi
    printf -v "HEYP99_$name" '%s' "$(awk -v s="$p99" 'BEGIN {printf "%.3f", s * 1000}')"
    printf -v "HEYRPS_$name" '%s' "$rps"
}

# --- report -------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "NaN" }'; }
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {
    if (v == "NaN") { print "n/a"; exit }
    ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0); print ok ? "PASS" : "FAIL" }'; }

# shellcheck disable=SC2154 # RPS_*, P50_*, P99_*, HEYP99_*... are set by run_wrk/run_hey (printf -v).
report() {
    local targets=(direct haproxy) t rps p50 p99
    ((SKIP_GATEWAY)) || targets+=(gateway)
    local stamp json
    stamp="$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$BENCH_DIR/out"
    json="$BENCH_DIR/out/gateway-$stamp.json"

    echo
    echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION, POST $(printf '%s' "$BODY" | wc -c) bytes"
    printf '%-8s %12s %10s %10s %8s\n' target "requests/s" "p50 ms" "p99 ms" share
    for t in "${targets[@]}"; do
        rps="RPS_$t"; p50="P50_$t"; p99="P99_$t"
        printf '%-8s %12.0f %10.3f %10.3f %8s\n' "$t" "${!rps}" "${!p50}" "${!p99}" "$(ratio "${!rps}" "$RPS_direct")"
    done
    echo
    echo "constant rate: hey -z $RATE_DURATION -c $RATE_WORKERS -q $RATE_PER_WORKER (~$((RATE_WORKERS * RATE_PER_WORKER)) requests/s)"
    printf '%-8s %12s %10s\n' target "requests/s" "p99 ms"
    for t in "${targets[@]}"; do
        rps="HEYRPS_$t"; p99="HEYP99_$t"
        printf '%-8s %12.0f %10.3f\n' "$t" "${!rps}" "${!p99}"
    done

    local hap_direct g_direct="NaN" g_hap="NaN" added="NaN" added_hap
    hap_direct="$(ratio "$RPS_haproxy" "$RPS_direct")"
    added_hap="$(awk -v a="$HEYP99_haproxy" -v b="$HEYP99_direct" 'BEGIN {printf "%.3f", a - b}')"
    if ((!SKIP_GATEWAY)); then
        g_direct="$(ratio "$RPS_gateway" "$RPS_direct")"
        g_hap="$(ratio "$RPS_gateway" "$RPS_haproxy")"
        added="$(awk -v a="$HEYP99_gateway" -v b="$HEYP99_direct" 'BEGIN {printf "%.3f", a - b}')"
    fi
    echo
    printf 'haproxy/direct  %7s  (reference; about 0.47 measured before)\n' "$hap_direct"
    printf 'p99 added by haproxy at 1,000 rps: %s ms (reference)\n' "$added_hap"
    if ((SKIP_GATEWAY)); then
        echo "gateway skipped (--skip-gateway): no gateway ratios"
    else
        printf 'gateway/direct  %7s  target >= 0.30  %s\n' "$g_direct" "$(verdict "$g_direct" 0.30 '>=')"
        printf 'gateway/haproxy %7s  target >= 0.65  %s\n' "$g_hap" "$(verdict "$g_hap" 0.65 '>=')"
        printf 'p99 added by gateway at 1,000 rps: %s ms  target <= 1 ms  %s\n' "$added" "$(verdict "$added" 1 '<=')"
        local lines=0
        [[ -f "$TMP/access.log" ]] && lines="$(wc -l <"$TMP/access.log")"
        echo "gateway access log: $lines lines"
        ((lines > 0)) || log "WARNING: the gateway wrote no access log lines"
    fi

    {
        printf '{\n  "timestamp": "%s",\n' "$stamp"
        printf '  "wrk": {"threads": %s, "connections": %s, "duration": "%s"},\n' "$WRK_THREADS" "$CONNECTIONS" "$DURATION"
        printf '  "constant_rate": {"workers": %s, "per_worker_qps": %s, "duration": "%s"},\n' "$RATE_WORKERS" "$RATE_PER_WORKER" "$RATE_DURATION"
        printf '  "gateway_args": "%s",\n' "${GATEWAY_ARGS//\"/\\\"}"
        printf '  "targets": {'
        local sep=""
        for t in "${targets[@]}"; do
            rps="RPS_$t"; p50="P50_$t"; p99="P99_$t"
            local hr="HEYRPS_$t" hp="HEYP99_$t" bad="BAD_$t"
            printf '%s\n    "%s": {"requests_per_s": %s, "p50_ms": %s, "p99_ms": %s, "share_of_direct": %s, "non_2xx": %s, "rate_requests_per_s": %s, "rate_p99_ms": %s}' \
                "$sep" "$t" "${!rps}" "${!p50}" "${!p99}" "$(ratio "${!rps}" "$RPS_direct")" "${!bad}" "${!hr}" "${!hp}"
            sep=","
        done
        printf '\n  },\n'
        printf '  "ratios": {"haproxy_over_direct": %s' "$hap_direct"
        if ((!SKIP_GATEWAY)); then
            printf ', "gateway_over_direct": %s, "gateway_over_haproxy": %s' "$g_direct" "$g_hap"
        fi
        printf '},\n'
        printf '  "rate_p99_added_ms": {"haproxy": %s' "$added_hap"
        ((SKIP_GATEWAY)) || printf ', "gateway": %s' "$added"
        printf '},\n'
        if ((SKIP_GATEWAY)); then
            printf '  "gateway": null\n'
        else
            printf '  "targets_met": {"gateway_over_direct_ge_0_30": "%s", "gateway_over_haproxy_ge_0_65": "%s", "rate_p99_added_le_1ms": "%s"}\n' \
                "$(verdict "$g_direct" 0.30 '>=')" "$(verdict "$g_hap" 0.65 '>=')" "$(verdict "$added" 1 '<=')"
        fi
        printf '}\n'
    } >"$json"
    echo
    echo "JSON: ${json#"$REPO_DIR"/}"
}

main() {
    parse_args "$@"
    ensure_tools
    TMP="$(mktemp -d /tmp/bench-gateway.XXXXXX)"
    chmod 755 "$TMP"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    write_load_files
    ((SKIP_GATEWAY)) || gateway_binary # build first: fail before starting anything

    start_nginx
    start_haproxy
    ((SKIP_GATEWAY)) || start_gateway

    run_wrk direct "$DIRECT_URL"
    run_wrk haproxy "$HAPROXY_URL"
    ((SKIP_GATEWAY)) || run_wrk gateway "$GATEWAY_URL"

    run_hey direct "$DIRECT_URL"
    run_hey haproxy "$HAPROXY_URL"
    ((SKIP_GATEWAY)) || run_hey gateway "$GATEWAY_URL"

    report
}

main "$@"
