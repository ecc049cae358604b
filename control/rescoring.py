"""Rows to score a promotion's candidate and current version on, so that the gates compare the
two models and not the luck of two different validation sets (`control.promotion.RowSource`).

- `rows_from_logs`: logs the operator names (`control promote --data LOGS`), read once;
- `candidate_validation_rows`: the candidate's own validation rows, re-read from the paths its
  manifest records (its `--valid` files, or its `--data` split again with the recorded
  fraction and seed), read on first use. Logs that are gone or changed raise
  `RowsUnavailable`, and promotion falls back to the manifests' metrics, saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

import rust_core
from bidscore.errors import BidscoreError
from bidscore.registry import Version
from control.promotion import RowSource, RowsUnavailable
from features.catalog import Catalog
from features.errors import FeatureError


def _scorer(
    model_name: str, table: Callable[[], pa.Table], catalog: Catalog | None
) -> Callable[[Version, rust_core.Model], Mapping[str, Any]]:
    from control.retrain.compare import score_holdout  # noqa: PLC0415 -- tokeniser, read late

    def rescore(_version: Version, model: rust_core.Model) -> Mapping[str, Any]:
        try:
            return score_holdout(model, model_name, table(), catalog)
        except (BidscoreError, FeatureError) as exc:
            raise RowsUnavailable(str(exc)) from exc

    return rescore


def rows_from_logs(
    model_name: str, paths: Sequence[str | Path], catalog: Catalog | None = None
) -> RowSource:
    """Score both versions on every row of `paths` the model learns from (cvr: clicked rows).
    Unreadable logs are the operator's error and raise at once."""
    from features.readers import read_logs  # noqa: PLC0415 -- pyarrow-heavy

    names = [str(p) for p in paths]
    table = read_logs(names)
    return RowSource(
        _scorer(model_name, lambda: table, catalog),
        f"the same {table.num_rows:,} log rows of {', '.join(names)} (--data)",
    )


def candidate_validation_rows(candidate: Version, catalog: Catalog | None = None) -> RowSource:
    """The candidate's validation rows, re-read lazily from the logs its manifest names."""
    from control.training import load_data  # noqa: PLC0415 -- pyarrow-heavy

    data, params = candidate.manifest.data, candidate.manifest.params
    paths = [str(p) for p in data.get("paths") or []]
    valid_paths = [str(p) for p in data.get("valid_paths") or []]
    cached: list[pa.Table] = []

    def table() -> pa.Table:
        if not cached:
            missing = [p for p in valid_paths or paths if not Path(p).exists()]
            if not paths or missing:
                raise RowsUnavailable(
                    f"the candidate's logs are not readable here ({', '.join(missing) or 'none'})"
                )
            loaded = load_data(
                candidate.model,
                paths,
                valid_paths=valid_paths,
                valid_fraction=float(params.get("valid_fraction") or 0.1),
                seed=int(params.get("seed") or 0),
                catalog=catalog,
            )
            if loaded.valid.num_rows != data.get("valid_rows", loaded.valid.num_rows):
                raise RowsUnavailable(
                    f"the candidate's logs changed since training ({loaded.valid.num_rows}"
                    f" validation rows now, {data.get('valid_rows')} then)"
                )
            cached.append(loaded.valid)
        return cached[0]

    where = ", ".join(valid_paths or paths) or "(no paths recorded)"
    return RowSource(
        _scorer(candidate.model, table, catalog),
        f"the same rows: v{candidate.version}'s validation rows, re-read from {where}",
        for_first_version=False,
    )
