"""`make bench`: every benchmark in turn with its defaults, each printing its table.

Each script has options of its own for a shorter or a focused run (`--help`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "rust_core_bench.py",
    "features_bench.py",
    "predlog_bench.py",
    "serving.py",
    "scale.py",
    "tune_bench.py",
)


def main() -> int:
    for script in SCRIPTS:
        print(f"== bench/{script}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script)], check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
