#!/usr/bin/env bash
# The JVM client's benchmark (docs/clients.md): against a local bidscore server with 1 and 2
# workers, ghz's auctions/s and the client's (unary, and stream once the server has ScoreStream),
# the client's CPU per call (ghz's own too, from its user+sys time), and the client's share of
# ghz's throughput, all in the same run. The client is measured after WARMUP seconds (JIT).
#
#   clients/jvm/bench/run.sh            # from the repository root, after `make install`
#   DURATION=10 CONCURRENCY=50 WORKERS="1 2" clients/jvm/bench/run.sh
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
CP="$ROOT/clients/jvm/bench/target/classes:$(cat "$CP_FILE")"

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

printf '%-8s %-8s %12s %14s %12s\n' workers client auctions/s cpu_us/call vs_ghz
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
  printf '%-8s %-8s %12.0f %14s %12s\n' "$workers" ghz "$ghz_rps" "$ghz_us" 100%
  for transport in unary stream; do
    if ! line="$(java -cp "$CP" dev.bidscore.bench.ClientBench "127.0.0.1:$port" "$transport" \
        "$WORK/requests.json" "$CONCURRENCY" "$WARMUP" "$DURATION" 2>"$WORK/bench-$transport.err")"; then
      printf "%-8s %-8s failed:\n" "$workers" "$transport"; head -5 "$WORK/bench-$transport.err"
      continue
    fi
    rps="$(echo "$line" | json_field 'd["auctions_per_s"]')"
    cpu="$(echo "$line" | json_field 'd["cpu_us_per_call"]')"
    fallbacks="$(echo "$line" | json_field 'd["fallbacks"]')"
    share="$("$VENV/bin/python" -c "print(f'{100*$rps/$ghz_rps:.0f}%')")"
    note=""; [[ "$fallbacks" != "0" ]] && note="  ($fallbacks fallbacks: no ScoreStream on this server?)"
    printf '%-8s %-8s %12.0f %14.2f %12s%s\n' "$workers" "$transport" "$rps" "$cpu" "$share" "$note"
  done
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
done
