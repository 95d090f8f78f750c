#!/usr/bin/env bash
# bench/streams.sh: LLM-scale streaming through the chain (issue 15's targets).
#
# Two processes, as in real life: the mock OpenAI alone (`failover-lab standins`, shaped
# like a model) and the gateway (`failover-lab gateway`, a lab file that points at the
# mock's port, no stand-ins of its own), so the gateway's memory and CPU are its own.
# `failover-lab drive --stream --concurrency N` (closed loop) measures, in turn:
#   mock alone     drive -> mock                       TTFT and inter-token gaps
#   direct / via   drive -> mock, drive -> gateway     at the same N, one after the other:
#                  gateway added TTFT = via - direct (p50, p99), and every answer 200
#   RSS            the gateway's RSS idle, then with RSS_N (2 x SMALL_N) long streams open,
#                  opened at once and over --ramp-up 2s: growth per stream
# Then `report` on 8 shard files of RECORDS records in all against one file of the same
# records (same percentiles; wall time), and, when aiperf is installed (pip install
# aiperf), aiperf against drive on the same mock and concurrency.
#
# Targets (issue 15):
#   mock alone, 5,000 streams, TTFT 100 ms, 20 tokens at 20/s: TTFT p99 <= 110 ms, ITL p99 <= 60 ms
#   gateway added TTFT at 1,000 streams <= 2 ms / <= 10 ms (p50 / p99)
#   gateway added TTFT at 5,000 streams <= 5 ms / <= 25 ms, every answer 200
#   gateway RSS growth per open stream <= 8 KiB
#   report on 8 shards of 1M records: the one run's percentiles, under 5 s
# Everything shares this machine's cores, so the figures are ratios of runs made together.
# Exit code 0 even when a target is missed; non-zero when something could not run.
#
# The file-descriptor limit: each open stream is a socket in the driver, and two in the
# gateway (client and upstream). The script raises its soft limit to the hard limit; with
# a hard limit under 2 x the largest N + 1024 (the gateway's share) it says so and lowers N.
#
# Usage: bench/streams.sh [--no-build]
# The mock-alone run also gives CPU per token: the CPU-seconds (utime + stime from
# /proc/PID/stat) the mock (`standins`) and the driver spent during it, divided by the
# tokens delivered (answers x 20).
#
# Env: SMALL_N (1000), LARGE_N (5000), DURATION (20: seconds a load runs), RECORDS (1000000),
#      MOCK_ONLY (1: only the mock-alone run, at LARGE_N, then SMALL_N when MOCK_ONLY_BOTH=1),
#      BIN (a failover-lab binary), PORT (18300), WARMUP (3: seconds left out of the
#      second set of added-TTFT figures), SKIP_AIPERF (1 skips it), AIPERF (its
#      path; default: on PATH), AIPERF_N (250), SKIP_MAIN (1: only the aiperf comparison),
#      ONLY=added (only the added-TTFT runs, at ADDED_N: default "SMALL_N LARGE_N"),
#      RAMP_UP (1s: the added-TTFT runs again with `drive --ramp-up`, the closed loop's
#      streams started evenly over that long; 0 skips them), RSS_N (2 x SMALL_N).
# Results: bench/out/streams-<timestamp>/summary.txt and the raw JSON reports.

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
SMALL_N="${SMALL_N:-1000}"
LARGE_N="${LARGE_N:-5000}"
DURATION="${DURATION:-20}"
RECORDS="${RECORDS:-1000000}"
PORT="${PORT:-18300}"
RAMP_UP="${RAMP_UP:-1s}"
BUILD=1
[[ "${1:-}" == "--no-build" ]] && BUILD=0
[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0; }

log() { printf '[streams-bench] %s\n' "$*" >&2; }
die() { printf '[streams-bench] ERROR: %s\n' "$*" >&2; exit 1; }

OUT="$BENCH_DIR/out/streams-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"

# File descriptors: soft up to hard.
HARD="$(ulimit -Hn)"
if [[ "$HARD" == unlimited ]]; then HARD=1048576; fi
ulimit -Sn "$HARD" 2>/dev/null || true
SOFT="$(ulimit -Sn)"
# Per process: the gateway holds two sockets a stream (client and upstream), the driver and the mock one.
NEED=$((LARGE_N * 2 + 1024))
if (( SOFT < NEED )); then
  LARGE_N=$(( (SOFT - 1024) / 2 ))
  log "file-descriptor limit $SOFT is below $NEED; LARGE_N lowered to $LARGE_N (raise the hard limit: ulimit -Hn, or LimitNOFILE)"
fi
log "file-descriptor limit $SOFT"

if [[ -n "${BIN:-}" ]]; then
  FL="$BIN"
elif [[ $BUILD == 1 ]]; then
  log "building failover-lab (release, scratch .build-release)"
  (cd "$REPO_DIR" && swift build -c release --scratch-path .build-release --product failover-lab >"$OUT/build.log" 2>&1) \
    || die "swift build failed; see $OUT/build.log"
  FL="$REPO_DIR/.build-release/release/failover-lab"
else
  FL="$REPO_DIR/.build-release/release/failover-lab"
fi
[[ -x "$FL" ]] || die "no failover-lab binary at $FL"

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# The mock alone: `standins` on a lab whose Scenario shapes it. $1: shape, $2: port.
start_mock() {
  sed -e "s|model: \".*\"|model: \"$1\"|" "$BENCH_DIR/streams-lab.yaml" >"$OUT/mock-lab.yaml"
  "$FL" standins "$OUT/mock-lab.yaml" >"$OUT/mock.out" 2>&1 &
  MOCK_PID=$!
  PIDS+=("$MOCK_PID")
  for _ in $(seq 100); do
    MOCK_URL="$(grep -o 'http://127.0.0.1:[0-9]*' "$OUT/mock.out" | head -1 || true)"
    [[ -n "$MOCK_URL" ]] && break
    sleep 0.1
  done
  [[ -n "$MOCK_URL" ]] || die "the mock did not start; see $OUT/mock.out"
}

# The gateway, pointed at the mock's port by a lab without stand-ins.
start_gateway() {
  local mock_port="${MOCK_URL##*:}"
  cat >"$OUT/gateway-lab.yaml" <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: stream, namespace: bench}
spec:
  rules:
    - matches: [{path: {type: PathPrefix, value: /stream}}]
      backendRefs: [{name: stream, group: agentgateway.dev, kind: AgentgatewayBackend}]
      timeouts: {request: "120s"}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: stream, namespace: bench}
spec:
  ai:
    groups:
      - providers:
          - name: mock
            openai: {model: "gpt-4o-mini"}
            host: 127.0.0.1
            port: $mock_port
YAML
  "$FL" gateway "$OUT/gateway-lab.yaml" --port "$PORT" --no-admin --access-log /dev/null \
    --max-connections $((LARGE_N * 2 + 256)) >"$OUT/gateway.out" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  for _ in $(seq 100); do
    grep -q "listening on" "$OUT/gateway.out" && break
    sleep 0.1
  done
  grep -q "listening on" "$OUT/gateway.out" || die "the gateway did not start; see $OUT/gateway.out"
  GW_URL="http://127.0.0.1:$PORT/stream"
}

stop_all() { cleanup; PIDS=(); }

# drive a closed loop of $2 streams at $1 for DURATION seconds; JSON report to $3.
# drive URL N REPORT [RECORDS [more drive flags]]
drive() {
  local record=()
  [[ -n "${4:-}" ]] && record=(--record "$4")
  "$FL" drive "$1" --stream --concurrency "$2" --duration "${DURATION}s" --timeout 60s --json --no-progress "${record[@]}" "${@:5}" >"$3" 2>"$3.err" \
    || die "drive failed; see $3.err"
}

py() { python3 - "$@"; }

field() { # file, python expression on r (the report)
  py "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))
PY
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU-seconds (utime + stime) of a process so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }

# The mock alone at $1 streams: TTFT, ITL, and CPU per token of the mock and the driver.
mock_alone() {
  local n="$1"
  start_mock "ttft 100ms tokens 20 rate 20/s"
  local before; before="$(cpu_s "$MOCK_PID")"
  /usr/bin/time -f "%U %S" -o "$OUT/mock-alone-$n.time" \
    "$FL" drive "$MOCK_URL/stream" --stream --concurrency "$n" --duration "${DURATION}s" --timeout 60s --json --no-progress \
    >"$OUT/mock-alone-$n.json" 2>"$OUT/mock-alone-$n.err" || die "drive failed; see $OUT/mock-alone-$n.err"
  local after; after="$(cpu_s "$MOCK_PID")"
  stop_all
  local f="$OUT/mock-alone-$n.json"
  echo "mock alone, $n streams (ttft 100ms, 20 tokens at 20/s), ${DURATION} s:"
  echo "  answers $(field "$f" 'r["responses"]'), errors $(field "$f" 'r["errors"]'), status $(field "$f" '{k: v["count"] for k, v in r["status"].items()}')"
  echo "  TTFT p50 $(field "$f" 'r["ttft_ms"]["p50"]') ms, p99 $(field "$f" 'r["ttft_ms"]["p99"]') ms   (target p99 <= 110)"
  echo "  ITL (mean gap per answer) p50 $(field "$f" 'r["itl_ms"]["p50"]') ms, p99 $(field "$f" 'r["itl_ms"]["p99"]') ms   (target p99 <= 60)"
  echo "  ITL (largest gap per answer) p50 $(field "$f" 'r["itl_max_ms"]["p50"]') ms, p99 $(field "$f" 'r["itl_max_ms"]["p99"]') ms"
  py "$f" "$before" "$after" "$OUT/mock-alone-$n.time" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
tokens = r["responses"] * 20
mock = float(sys.argv[3]) - float(sys.argv[2])
u, s = open(sys.argv[4]).read().split()[-2:]
drv = float(u) + float(s)
per = lambda c: c / tokens * 1e6 if tokens else float("nan")
print(f"  CPU: mock {mock:.2f} s = {per(mock):.2f} us/token; driver {drv:.2f} s = {per(drv):.2f} us/token ({tokens} tokens)")
PY
  echo
}

{
echo "bench/streams.sh  $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(nproc) cores  fd limit $SOFT"
echo

if [[ "${MOCK_ONLY:-0}" == 1 ]]; then
  log "mock alone: $LARGE_N streams, ttft 100ms, 20 tokens at 20/s"
  mock_alone "$LARGE_N"
  if [[ "${MOCK_ONLY_BOTH:-0}" == 1 ]]; then
    log "mock alone: $SMALL_N streams"
    mock_alone "$SMALL_N"
  fi
elif [[ "${SKIP_MAIN:-0}" != 1 ]]; then
# Added TTFT of a via run over a direct one. added N DIRECT_JSON VIA_JSON LABEL
# (each JSON's records are the same path with .jsonl).
added() {
  py "$2" "$3" "$1" "$4" <<'PY'
import json, sys
d, v, n = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
t = {1000: (2, 10), 5000: (5, 25)}.get(n, (5, 25))
def count(st, code):
    x = st.get(code, 0)
    return x.get("count", 0) if isinstance(x, dict) else x
ok = count(v["status"], "200")
print(f"gateway added TTFT at {n} streams, {sys.argv[4]}: p50 {v['ttft_ms']['p50'] - d['ttft_ms']['p50']:+.2f} ms, p99 {v['ttft_ms']['p99'] - d['ttft_ms']['p99']:+.2f} ms"
      f"   (target <= {t[0]} / <= {t[1]})")
print(f"  direct TTFT p50 {d['ttft_ms']['p50']:.2f} p99 {d['ttft_ms']['p99']:.2f}; via p50 {v['ttft_ms']['p50']:.2f} p99 {v['ttft_ms']['p99']:.2f}")
print(f"  via: {v['responses']} answers, {ok} of them 200 ({'every answer 200' if ok == v['responses'] and v['errors'] == 0 else 'NOT every answer 200: ' + str({k: count(v['status'], k) for k in v['status']}) + ', errors ' + str(v['errors'])}), "
      f"ITL p99 {v['itl_ms']['p99']:.2f} ms (direct {d['itl_ms']['p99']:.2f}), finished/s {v['throughput']:.0f} (direct {d['throughput']:.0f})")
# The first N requests all start at once (a closed loop of N), so the whole run's tail is
# mostly that cold start: N connections accepted and, through the gateway, N more opened
# upstream. The same figures for the requests sent after the first WARMUP seconds:
warm = float(__import__("os").environ.get("WARMUP", "3"))
def after(path):
    out = []
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            if r.get("ttft_ms") is not None and r.get("sent_offset_ns", 0) >= warm * 1e9:
                out.append(r["ttft_ms"])
    return sorted(out)
def q(v, p): return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")
dw, vw = after(sys.argv[1] + "l"), after(sys.argv[2] + "l")
print(f"  after the first {warm:g} s ({len(vw)} answers via, {len(dw)} direct): added TTFT p50 {q(vw, .5) - q(dw, .5):+.2f} ms, p99 {q(vw, .99) - q(dw, .99):+.2f} ms"
      f"  (direct p50 {q(dw, .5):.2f} p99 {q(dw, .99):.2f}; via p50 {q(vw, .5):.2f} p99 {q(vw, .99):.2f})")
PY
}

# 1. The mock alone, LARGE_N streams, TTFT 100 ms, 20 tokens at 20/s.
if [[ "${ONLY:-}" != added ]]; then
log "1/5 mock alone: $LARGE_N streams, ttft 100ms, 20 tokens at 20/s"
mock_alone "$LARGE_N"
fi

# 2-3. Added TTFT: direct, then through the gateway, at SMALL_N and LARGE_N.
start_mock "ttft 100ms tokens 20 rate 20/s"
start_gateway
for n in ${ADDED_N:-$SMALL_N $LARGE_N}; do
  log "2-3/5 added TTFT at $n streams: direct, then through the gateway"
  drive "$MOCK_URL/stream" "$n" "$OUT/direct-$n.json" "$OUT/direct-$n.jsonl"
  drive "$GW_URL" "$n" "$OUT/via-$n.json" "$OUT/via-$n.jsonl"
  added "$n" "$OUT/direct-$n.json" "$OUT/via-$n.json" "all $n streams started at once"
  if [[ "$RAMP_UP" != 0 ]]; then
    log "2-3/5 added TTFT at $n streams, --ramp-up $RAMP_UP: direct, then through the gateway"
    drive "$MOCK_URL/stream" "$n" "$OUT/direct-$n-ramp.json" "$OUT/direct-$n-ramp.jsonl" --ramp-up "$RAMP_UP"
    drive "$GW_URL" "$n" "$OUT/via-$n-ramp.json" "$OUT/via-$n-ramp.jsonl" --ramp-up "$RAMP_UP"
    added "$n" "$OUT/direct-$n-ramp.json" "$OUT/via-$n-ramp.json" "the $n streams started evenly over --ramp-up $RAMP_UP"
  fi
  echo
done
stop_all

if [[ "${ONLY:-}" != added ]]; then
# 4. RSS per open stream: long streams (400 tokens at 20/s = 20 s) held open, RSS_N of them
# (default 2 x SMALL_N, for resolution), opened all at once and then over --ramp-up 2s. All at
# once, the burst's short-lived allocations (a thousand connects and requests in one go) leave
# the heap fragmented, and that is counted too.
RSS_N="${RSS_N:-$((SMALL_N * 2))}"
rss_run() { # label, drive flags...
  start_mock "ttft 100ms tokens 400 rate 20/s"
  start_gateway
  sleep 1
  curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"model":"","messages":[{"role":"user","content":"hi"}]}' "$GW_URL" || true
  local idle; idle="$(rss_kib "$GW_PID")"
  "$FL" drive "$GW_URL" --stream --concurrency "$RSS_N" --duration 15s --timeout 60s --json --no-progress "${@:2}" >"$OUT/rss.json" 2>"$OUT/rss.err" &
  local drive_pid=$!
  sleep 8
  local open; open="$(rss_kib "$GW_PID")"
  wait "$drive_pid" || true
  echo "gateway RSS, $RSS_N streams $1: idle $idle KiB, open $open KiB: $(py "$idle" "$open" "$RSS_N" <<'PY'
import sys
idle, open_, n = map(int, sys.argv[1:4])
print(f"{(open_ - idle) * 1024 / n / 1024:.2f}")
PY
) KiB per open stream   (target <= 8)"
  stop_all
}
log "4/5 gateway RSS per open stream ($RSS_N long streams, at once, then over --ramp-up 2s)"
rss_run "opened at once"
rss_run "opened over --ramp-up 2s" --ramp-up 2s
echo

# 5. report on 8 shards against one file of the same records.
log "5/5 report on 8 shards of $RECORDS records"
py "$OUT" "$RECORDS" <<'PY'
import random, sys, os
out, total = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
shards = [open(os.path.join(out, f"shard-{k}.jsonl"), "w") for k in range(8)]
one = open(os.path.join(out, "all.jsonl"), "w")
for i in range(total):
    k = i % 8
    lat = rng.lognormvariate(3.0, 0.6)  # ms
    status = 200 if rng.random() > 0.02 else 429
    line = ('{"seq":%d,"intended_at":"2026-01-01T00:00:00.000000Z","intended_offset_ns":%d,"sent_at":"2026-01-01T00:00:00.000000Z",'
            '"sent_offset_ns":%d,"late":false,"method":"POST","url":"http://127.0.0.1:8080/http-429","model":"","status":%d,'
            '"latency_ms":%.6f,"latency_corrected_ms":%.6f,"ttfb_ms":%.6f,"ttft_ms":null,"itl_ms":null,"bytes_in":300,"bytes_out":100,'
            '"error":null,"provider":"%s","attempts":[{"provider":"%s","status":%d}],"tokens":{"prompt":13,"completion":8,"total":21}}\n'
            % (i, i * 1000, i * 1000, status, lat, lat, lat * 0.9, "openai-provider" if status == 200 else "http-429-provider",
               "openai-provider" if status == 200 else "http-429-provider", status))
    shards[k].write(line)
    one.write(line)
for f in shards + [one]:
    f.close()
PY
START=$(date +%s.%N)
"$FL" report "$OUT"/shard-*.jsonl --json >"$OUT/report-shards.json"
END=$(date +%s.%N)
"$FL" report "$OUT/all.jsonl" --json >"$OUT/report-one.json"
py "$OUT/report-shards.json" "$OUT/report-one.json" "$START" "$END" "$RECORDS" <<'PY'
import json, sys
s, o = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
secs = float(sys.argv[4]) - float(sys.argv[3])
keys = ["p50", "p90", "p99", "p99.9", "max"]
same = all(s["latency_ms"][k] == o["latency_ms"][k] for k in keys) and s["requests"] == o["requests"] and s["status"] == o["status"]
print(f"report on 8 shards of {int(sys.argv[5])} records: {secs:.2f} s   (target < 5 s); "
      f"{'the same' if same else 'NOT the same'} counts and percentiles as one file "
      f"(p50 {s['latency_ms']['p50']} / {o['latency_ms']['p50']}, p99 {s['latency_ms']['p99']} / {o['latency_ms']['p99']})")
PY
rm -f "$OUT"/shard-*.jsonl "$OUT/all.jsonl"
echo
fi

fi

# aiperf, when installed, on the same mock at the same concurrency: drive at AIPERF_N and
# twice that, aiperf at AIPERF_N. aiperf wants a Hugging Face tokenizer even for a
# dataset file; offline, a word-level one is written into the local HF cache
# (models--local--tok) and the prompts come from a file.
AIPERF="${AIPERF:-$(command -v aiperf || true)}"
AIPERF_N="${AIPERF_N:-250}"
if [[ "${MOCK_ONLY:-0}" != 1 && "${SKIP_AIPERF:-0}" != 1 && -n "$AIPERF" && -x "$AIPERF" ]]; then
  log "aiperf at $AIPERF_N streams against drive at $AIPERF_N and $((AIPERF_N * 2))"
  "$(dirname "$AIPERF")/python" - <<'PY' || die "cannot write the local tokenizer (aiperf's transformers/tokenizers)"
import os
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
vocab = {"[UNK]": 0, "[PAD]": 1}
for w in "what is 2+2? the a mock openai stand-in of failover-lab your request reached group 2 . , equals 4 token".split():
    vocab.setdefault(w, len(vocab))
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
hub = os.path.expanduser("~/.cache/huggingface/hub/models--local--tok")
snap = os.path.join(hub, "snapshots", "local")
os.makedirs(snap, exist_ok=True)
os.makedirs(os.path.join(hub, "refs"), exist_ok=True)
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(snap)
open(os.path.join(snap, "config.json"), "w").write('{"model_type": "gpt2"}')
open(os.path.join(hub, "refs", "main"), "w").write("local")
PY
  for _ in $(seq 20000); do echo '{"text": "What is 2+2?"}'; done >"$OUT/prompts.jsonl"
  start_mock "ttft 100ms tokens 20 rate 20/s"
  for n in "$AIPERF_N" $((AIPERF_N * 2)); do
    /usr/bin/time -f "%U %S" -o "$OUT/drive-$n.time" "$FL" drive "$MOCK_URL/stream" --stream --concurrency "$n" --duration "${DURATION}s" --json --no-progress >"$OUT/drive-$n.json" 2>/dev/null || true
  done
  HF_HUB_OFFLINE=1 /usr/bin/time -f "%U %S" -o "$OUT/aiperf.time" "$AIPERF" profile --url "$MOCK_URL" --endpoint /stream --endpoint-type chat --streaming \
    --concurrency "$AIPERF_N" --benchmark-duration "$DURATION" --model gpt-4o-mini --tokenizer local/tok --use-server-token-count \
    --input-file "$OUT/prompts.jsonl" --custom-dataset-type single_turn --output-artifact-dir "$OUT/aiperf" >"$OUT/aiperf.out" 2>&1 || true
  for n in "$AIPERF_N" $((AIPERF_N * 2)); do
    echo "drive at $n streams: CPU $(tail -1 "$OUT/drive-$n.time" | awk '{print $1 + $2}') s; $(field "$OUT/drive-$n.json" '"TTFT p50 %.1f ms (%+.0f%% of 100), p99 %.1f ms, %d answers" % (r["ttft_ms"]["p50"], r["ttft_ms"]["p50"] - 100, r["ttft_ms"]["p99"], r["responses"])')"
  done
  # time(1) puts "Command exited with non-zero status" first when aiperf exits non-zero (it
  # does after printing its table here): the figures are on the last line.
  echo "aiperf at $AIPERF_N streams: CPU $(tail -1 "$OUT/aiperf.time" | awk '{print $1 + $2}') s (its start-up included); its table:"
  grep -E "Metric|Time to First Token \(ms\)|Inter Token Latency|Request Throughput|Completed Requests" "$OUT/aiperf.out" | sed 's/^/  /'
  stop_all
else
  echo "aiperf: not installed (pip install aiperf; AIPERF=path), not compared"
fi
} | tee "$OUT/summary.txt"
log "summary: $OUT/summary.txt"
