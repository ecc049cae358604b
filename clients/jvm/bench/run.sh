#!/usr/bin/env bash
# The JVM client's benchmark (docs/clients.md): against a local bidscore server with 1 and 2
# workers, ghz's auctions/s and the client's (unary, and stream once the server has ScoreStream),
# the client's CPU per call (ghz's own too, from its user+sys time), and the client's share of
# ghz's throughput, all in the same run; next to each client row, its floor: plain grpc-java
# (bare-unary: the generated async stub; bare-stream: raw ScoreStream calls), the same calls on
# the same kind of channel with none of the client's logic.
#
# CPU per call of a JVM row: the whole process's CPU time (user + system, every thread: gRPC's
# event loop, the client's, the JIT compilers, GC), over the measured window only, divided by
# the calls completed in it. The window starts after a warm-up under the same load: at least
# WARMUP seconds, then until the JIT compilers are nearly idle (at most BENCH_WARMUP_MAX_S,
# default 120); the jit column is the compiler threads' CPU that still fell in the window
# (already included in the CPU per call).
#
#   clients/jvm/bench/run.sh            # from the repository root, after `make install`
#   DURATION=10 CONCURRENCY=50 WORKERS="1 2" clients/jvm/bench/run.sh
#   MODES="unary stream"                  # only these rows (default: bare-unary unary bare-stream stream)
#   COMPARE_CLASSES=/other/checkout/clients/jvm/client/target/classes   # adds rows "unary@cmp",
#       "stream@cmp": the same bench through another build of the client (before/after, same run)
#   BENCH_THREADS=1                        # each row's CPU by thread, on stderr
#
# Servers listen on 127.0.0.1 only and are stopped on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
GHZ="${GHZ:-$ROOT/.tools/bin/ghz}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-10}"
CONCURRENCY="${CONCURRENCY:-50}"
WORKERS="${WORKERS:-1 2}"
REQUESTS="${REQUESTS:-50}"
CANDIDATES="${CANDIDATES:-10}"
WORK="$(mktemp -d)"
export BIDSCORE_HOME="$WORK/home"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building the client" >&2
mvn -B -q -f "$ROOT/clients/jvm/pom.xml" install -DskipTests
CP_FILE="$WORK/cp.txt"
mvn -B -q -f "$ROOT/clients/jvm/bench/pom.xml" dependency:build-classpath -Dmdep.outputFile="$CP_FILE" >&2
# This checkout's client classes first (not whichever snapshot ~/.m2 holds last).
CP="$ROOT/clients/jvm/bench/target/classes:$ROOT/clients/jvm/client/target/classes:$(cat "$CP_FILE")"

echo "== models" >&2
"$VENV/bin/control" datagen --rows 2000 --days 2 --out "$WORK/logs" >&2
for model in ctr cvr; do
  "$VENV/bin/control" train --model "$model" --algo lr --data "$WORK/logs" --epochs 2 >&2
  "$VENV/bin/control" promote "$model" 1 --force >&2
done
"$VENV/bin/python" - "$WORK/requests.json" "$REQUESTS" "$CANDIDATES" <<'PY'
import sys
from pathlib import Path
from control.loadtest.payloads import generated_payloads, write_data_file
write_data_file(generated_payloads(int(sys.argv[2]), 0, int(sys.argv[3]), ["ctr", "cvr"]), Path(sys.argv[1]))
PY

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { "$VENV/bin/python" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

echo "== $(date -u '+%F %H:%M UTC'); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
printf '%-8s %-12s %12s %14s %8s %10s %8s\n' workers client auctions/s cpu_us/call vs_ghz warmup_s jit_ms
for workers in $WORKERS; do
  port="$(free_port)"
  "$VENV/bin/control" serve --host 127.0.0.1 --port "$port" --workers "$workers" --models ctr,cvr \
    --cache-dir "$WORK/cache-$port" > "$WORK/serve-$port.log" 2>&1 &
  SERVER_PID=$!
  "$VENV/bin/python" - "$port" <<'PY'
import sys, time, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
deadline = time.monotonic() + 120
with grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}") as ch:
    while time.monotonic() < deadline:
        try:
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="bidscore.v1.Scorer"), timeout=1)
            if r.status == health_pb2.HealthCheckResponse.SERVING:
                sys.exit(0)
        except grpc.RpcError:
            pass
        time.sleep(0.2)
sys.exit("server not SERVING")
PY
  # ghz directly (the same flags as `control loadtest`), timed for its own CPU per call.
  TIMEFORMAT='%U %S'
  ghz_cpu="$( { time "$GHZ" --insecure --proto "$ROOT/proto/bidscore/v1/scorer.proto" \
    --import-paths "$ROOT/proto" --call bidscore.v1.Scorer.Score --data-file "$WORK/requests.json" \
    --disable-template-functions --disable-template-data --concurrency "$CONCURRENCY" \
    --connections 1 --duration "${DURATION}s" --duration-stop ignore --format json \
    "127.0.0.1:$port" > "$WORK/ghz.json"; } 2>&1 | tail -1)"
  ghz_rps="$(json_field 'd["rps"]' < "$WORK/ghz.json")"
  ghz_count="$(json_field 'd["count"]' < "$WORK/ghz.json")"
  ghz_us="$("$VENV/bin/python" -c "u, s = map(float, '$ghz_cpu'.split()); print(f'{(u + s) * 1e6 / $ghz_count:.2f}')")"
  printf '%-8s %-12s %12.0f %14s %8s\n' "$workers" ghz "$ghz_rps" "$ghz_us" 100%
  modes="${MODES:-bare-unary unary bare-stream stream}"
  [[ -n "${COMPARE_CLASSES:-}" ]] && modes="$modes unary@cmp stream@cmp"
  for transport in $modes; do
    cp="$CP"
    if [[ "$transport" == *@cmp ]]; then cp="${CP/$ROOT\/clients\/jvm\/client\/target\/classes/$COMPARE_CLASSES}"; fi
    if ! line="$(java -cp "$cp" dev.bidscore.bench.ClientBench "127.0.0.1:$port" "${transport%@cmp}" \
        "$WORK/requests.json" "$CONCURRENCY" "$WARMUP" "$DURATION" 2>"$WORK/bench-$transport.err")"; then
      printf "%-8s %-12s failed:\n" "$workers" "$transport"; head -5 "$WORK/bench-$transport.err"
      continue
    fi
    [[ -n "${BENCH_THREADS:-}" ]] && cat "$WORK/bench-$transport.err" >&2
    rps="$(echo "$line" | json_field 'd["auctions_per_s"]')"
    cpu="$(echo "$line" | json_field 'd["cpu_us_per_call"]')"
    fallbacks="$(echo "$line" | json_field 'd["fallbacks"]')"
    warmed="$(echo "$line" | json_field 'd["warmup_s"]')"
    jit="$(echo "$line" | json_field 'd["jit_cpu_ms_in_window"]')"
    share="$("$VENV/bin/python" -c "print(f'{100*$rps/$ghz_rps:.0f}%')")"
    note=""; [[ "$fallbacks" != "0" ]] && note="  ($fallbacks fallbacks or errors: no ScoreStream on this server?)"
    printf '%-8s %-12s %12.0f %14.2f %8s %10.0f %8s%s\n' "$workers" "$transport" "$rps" "$cpu" "$share" "$warmed" "$jit" "$note"
  done
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
done
