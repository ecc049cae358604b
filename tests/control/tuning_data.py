"""Small generated logs for the tuning suites: the datagen world's planted FFM (context x
candidate interactions), tokenised for the tiny 2^10-bucket ctr spec of the load-test suite
so that models stay a few hundred KB."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

import rust_core
from control.datagen import generate, write_dataset
from features.tokenize import tokenize_table
from tests.control.loadtest_specs import CTR

SPECS = "tests.control.loadtest_specs:SPECS"


def planted_split(rows: int = 6000, seed: int = 3) -> tuple[rust_core.Dataset, rust_core.Dataset]:
    """(train, valid) datasets: the first 75% of generated rows and the rest."""
    table = generate(rows, seed)
    cut = rows * 3 // 4
    train, valid = table.slice(0, cut), table.slice(cut)
    return tokenize_table(train, CTR, "click"), tokenize_table(valid, CTR, "click")


def write_logs(out: Path, rows: int, seed: int, days: int | None = None) -> Path:
    if days is None:
        write_dataset(out, rows=rows, seed=seed)
    else:
        write_dataset(out, rows=rows, seed=seed, days=days)
    return out


def one_label_logs(out: Path, rows: int = 500) -> Path:
    """Logs whose click label is 0 on every row."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    table = generate(rows, 5)
    index = table.schema.get_field_index("click")
    table = table.set_column(index, "click", pa.array([0] * rows, type=table["click"].type))
    pq.write_table(table, out)
    return out
