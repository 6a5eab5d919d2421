#!/usr/bin/env bash
# The coordinator benchmark of issue 6 in one command (docs/OPERATIONS.md "Benchmark"):
# a coordinator with --launcher none on a temp state dir, 10k preloaded jobs, 100 clients in a
# closed loop (saturation), then 100 clients at --rate 10 each (1000 req/s offered); prints the
# load generator's JSON and the coordinator's server-side handling-time percentiles.
#   server/bench/run_bench.sh [BUILD_DIR]        (default: build)
set -euo pipefail
BUILD=${1:-build}
STATE=$(mktemp -d /tmp/vicreg-bench-XXXXXX)
"$BUILD/server/vicreg_coordinator" --state-dir "$STATE" --listen 127.0.0.1:0 --metrics-port 0 \
  --launcher none --slots 2 --log-level warn --allow-unauthenticated-loopback > "$STATE.log" 2>&1 &
COORD=$!
trap 'kill $COORD 2>/dev/null; wait $COORD 2>/dev/null; rm -rf "$STATE" "$STATE.log"' EXIT
for _ in $(seq 100); do [[ -s "$STATE/coordinator.json" ]] && break; sleep 0.1; done
read -r GRPC METRICS < <(/usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(j['grpc'], j['metrics'])" "$STATE/coordinator.json")
echo "== uptime: $(uptime)"
echo "== closed loop, 100 clients, 10k jobs preloaded"
"$BUILD/server/bench/vicreg_coordinator_bench" --server "$GRPC" --clients 100 --duration 10 --preload 10000
echo "== open loop, 100 clients x 10 req/s"
"$BUILD/server/bench/vicreg_coordinator_bench" --server "$GRPC" --clients 100 --duration 10 --rate 10
echo "== server-side handling time (vicreg_grpc_request_duration_seconds, both runs)"
curl -s "http://$METRICS/metrics" | /usr/bin/python3 -c '
import re, sys
buckets = {}
for line in sys.stdin:
    m = re.match(r"vicreg_grpc_request_duration_seconds_bucket\{.*method=\"(\w+)\".*le=\"([^\"]+)\"\} (\S+)", line)
    if m:
        buckets.setdefault(m.group(1), []).append((float("inf") if m.group(2) == "+Inf" else float(m.group(2)), float(m.group(3))))
for method, b in sorted(buckets.items()):
    b.sort()
    total = b[-1][1]
    if total == 0:
        continue
    def q(p):
        for le, c in b:
            if c >= p * total:
                return le
    print(f"{method:10s} n={int(total):7d}  p50 <= {q(0.5)*1e3:g} ms  p99 <= {q(0.99)*1e3:g} ms")
'
echo "== uptime: $(uptime)"
