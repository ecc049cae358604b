"""How many cores a load generator's Go scheduler runs on (ghz `--cpus`, streamload `-cpus`).

Go runs its scheduler on every core by default. Next to a server on a small machine, an idle
scheduler thread spins looking for work on the cores the server needs. One core suits a
generator that one core can carry (streamload: ~0.04 ms per message); ghz, at ~0.3 ms per
call, is then capped itself near 4,000 calls/s (docs/benchmarks.md, "The load generators' own
CPU"). 0 keeps Go's default.
"""

from __future__ import annotations

from control.loadtest.errors import LoadTestError

ALL = 0
MAX_CPUS = 1024


def check_cpus(cpus: int) -> None:
    if not ALL <= cpus <= MAX_CPUS:
        raise LoadTestError(f"--cpus must be in 0..{MAX_CPUS} (0 = all cores), got {cpus}")
