"""`make bench`: every benchmark in turn, each printing its table and writing bench/results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("serving.py", "scale.py", "features_bench.py")


def main() -> int:
    for script in SCRIPTS:
        print(f"== bench/{script}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script), *sys.argv[1:]], check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
