#!/usr/bin/env bash
# What `report --html` costs on a big run: writes N records (default 1,000,000) of a failover
# run with a small Python generator (the records' JSON-lines format, as drive writes it), then
# times the text report and `report --html` and prints the page's size.
#
#   bench/report.sh                       1M records, release build into .build-report
#   N=200000 bench/report.sh
#   BIN=.build/debug/failover-lab bench/report.sh    # an existing binary, no build
#
# Targets (issue 14): report --html on 1M records in under 5 s, the page under 2 MB.
# It also times the page with FAILOVER_LAB_RECORDS_READER=general (every line through the
# general JSON reader, as before the byte-level reader of our own lines) and compares the pages.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000000}
SCRATCH=${SCRATCH:-.build-report}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"

if [ -z "${BIN:-}" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product failover-lab >&2
  BIN="$SCRATCH/release/failover-lab"
fi

records="$OUT/report-$N.jsonl"
if [ ! -s "$records" ]; then
  # 2,000 requests/s; http-429-provider answers 429 every 5,000th request and is then out for
  # 2 s while openai-provider serves; latencies 1-50 ms with a slow tail.
  python3 - "$N" "$records" <<'PY'
import sys, random, datetime
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(14)
start_ns = 1_795_769_622_000_000_000
def ts(ns):
    s = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.timezone.utc)
    return s.strftime('%Y-%m-%dT%H:%M:%S') + '.%06dZ' % ((ns % 1_000_000_000) // 1000)
def ms(ns): return '%d.%06d' % (ns // 1_000_000, ns % 1_000_000)
out_until = -1
with open(path, 'w') as f:
    for i in range(n):
        t = i * 500_000
        sent = t + random.randint(20_000, 200_000)
        lat = random.randint(1_000_000, 50_000_000) if random.random() > 0.001 else random.randint(100_000_000, 900_000_000)
        if i % 5000 == 0 and sent > out_until:
            prov, status, att = 'http-429-provider', 429, '[{"provider":"http-429-provider","status":429}]'
            out_until = sent + 2_000_000_000
        elif sent <= out_until:
            prov, status, att = 'openai-provider', 200, '[{"provider":"openai-provider","status":200}]'
        else:
            prov, status, att = 'http-429-provider', 200, '[{"provider":"http-429-provider","status":200}]'
        f.write('{"seq":%d,"intended_at":"%s","intended_offset_ns":%d,"sent_at":"%s","sent_offset_ns":%d,"late":false,'
                '"method":"POST","url":"http://127.0.0.1:8080/http-429","model":null,"status":%d,"latency_ms":%s,'
                '"latency_corrected_ms":%s,"ttfb_ms":%s,"ttft_ms":null,"itl_ms":null,"bytes_in":512,"bytes_out":230,'
                '"error":null,"provider":"%s","attempts":%s,"tokens":{"prompt":13,"completion":1,"total":14}}\n'
                % (i, ts(start_ns + t), t, ts(start_ns + sent), sent, status, ms(lat), ms(lat + sent - t), ms(lat // 2), prov, att))
PY
fi
echo "records: $records ($(wc -l < "$records") lines, $(du -h "$records" | cut -f1))"

t0=$(date +%s.%N)
"$BIN" report "$records" > /dev/null
t1=$(date +%s.%N)
"$BIN" report "$records" --html "$OUT/report-$N.html" > /dev/null
t2=$(date +%s.%N)
size=$(stat -c %s "$OUT/report-$N.html")
# The same with the general JSON reader only (what every line went through before the fast one).
FAILOVER_LAB_RECORDS_READER=general "$BIN" report "$records" --html "$OUT/report-$N-general.html" > /dev/null
t3=$(date +%s.%N)
cmp -s "$OUT/report-$N.html" "$OUT/report-$N-general.html" && same="same page" || same="PAGES DIFFER"
printf 'report (text)      %.2f s\n' "$(echo "$t1 - $t0" | bc)"
printf 'report --html      %.2f s   page %d bytes (target: < 5 s, < 2000000 bytes)\n' "$(echo "$t2 - $t1" | bc)" "$size"
printf 'report --html, general reader only  %.2f s   (%s)\n' "$(echo "$t3 - $t2" | bc)" "$same"
