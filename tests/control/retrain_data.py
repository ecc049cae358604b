"""Generated daily logs shared by the retraining suites (written once per session).

The suites retrain `ctr` with `--algo lr` (2^20 weights: a 4 MB model file) rather than its
spec's FFM (2^18 x 25 fields x k=4: a 105 MB file) to keep disk and emulator traffic small;
the feature spec and fingerprint are the same, and later runs inherit the algorithm from the
production version as they would in production. 10k rows a day give ~300 clicks a day: an LR
that beats the base rate on one holdout day by a clear margin (NE ~0.92).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from control.datagen import write_dataset

MODEL = ["--model", "ctr", "--algo", "lr"]
ROWS_PER_DAY = 10_000
SEED = 11


def daily_logs(factory: pytest.TempPathFactory, name: str, **options: Any) -> Path:
    """`days` of partitions under the session's base temp dir, generated on first use."""
    out = factory.getbasetemp() / "retrain-logs" / name
    if not out.exists():
        tmp = out.with_name(f".{name}.tmp")
        write_dataset(tmp, rows=ROWS_PER_DAY, seed=SEED, **options)
        tmp.rename(out)
    return out


def backend_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(registry URL, store URL) for the `sqlite+file` or `dynamodb+s3` parameter."""
    if request.param == "sqlite+file":
        return f"sqlite:///{tmp_path / 'registry.db'}", f"file://{tmp_path / 'artifacts'}"
    urls: tuple[str, str] = request.getfixturevalue("aws_backends")
    return urls
