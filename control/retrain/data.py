"""Reading a run's partitions: one table per day for validation, concatenated for training.

Listing and reading belong to `features.readers` (directories and `s3://` prefixes alike);
this module only arranges what they return the way a run needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from control.retrain.partitions import Partition, Selection, to_partitions
from control.retrain.validate import DayStats, day_stats
from features.catalog import Catalog


@dataclass(frozen=True)
class Tables:
    """The run's data, read once: training window, holdout, and per-day statistics."""

    train: pa.Table
    holdout: pa.Table
    label: str
    day_stats: list[DayStats]
    holdout_days: tuple[str, str]


def list_partitions(root: str) -> list[Partition]:
    """The `dt=YYYY-MM-DD` partitions under a directory or `s3://` prefix, oldest first."""
    from features.readers import list_partitions as list_dated  # noqa: PLC0415 - pyarrow-heavy

    return to_partitions(list_dated(root))


def target_rows(
    table: pa.Table, model: str, catalog: Catalog | None = None
) -> tuple[pa.Table, str]:
    """The rows the model learns from (cvr: clicked rows only) and its label column."""
    from features.catalog import load  # noqa: PLC0415 - keeps `control --help` light

    target = (catalog or load()).target(model)
    if target.where is not None and target.where in table.schema.names:
        table = table.filter(pc.equal(table.column(target.where), 1))
    return table, target.label


def read_selection(
    selection: Selection,
    model: str,
    notify: Callable[[str], None],
    catalog: Catalog | None = None,
) -> Tables:
    """Read every partition of the selection once; statistics per day, tables per role."""
    from features.catalog import load  # noqa: PLC0415
    from features.readers import combine_tables, read_logs  # noqa: PLC0415

    target = (catalog or load()).target(model)
    label = target.label
    required = [label] + ([target.where] if target.where else [])
    by_role: dict[str, list[pa.Table]] = {"train": [], "holdout": []}
    stats = []
    for role, parts in (("train", selection.train), ("holdout", selection.holdout)):
        for part in parts:
            table = read_logs(part.path, required_labels=required)
            by_role[role].append(table)
            rows, _ = target_rows(table, model, catalog)
            stats.append(day_stats(part.day, table, label, rows))
        notify(f"read {len(parts)} {role} partitions")
    first, last = selection.holdout_days
    return Tables(
        train=combine_tables(by_role["train"], [p.path for p in selection.train]),
        holdout=combine_tables(by_role["holdout"], [p.path for p in selection.holdout]),
        label=label,
        day_stats=stats,
        holdout_days=(first.isoformat(), last.isoformat()),
    )


def baseline_missing(profile: Mapping[str, Any]) -> dict[str, float]:
    """Missing rate per feature from the production model's data profile.

    The profile counts only nulls as missing, while validation also counts empty strings;
    so the baseline is the larger of the null rate and the empty-string share of its top.
    """
    rates = {}
    for name, entry in profile.items():
        empty = sum(t["frequency"] for t in entry.get("top", []) if t.get("value") == "")
        rates[name] = max(float(entry.get("missing_rate", 0.0)), float(empty))
    return rates


def psi_against(
    profile: Mapping[str, Any], holdout: pa.Table, model: str, catalog: Catalog | None = None
) -> dict[str, float]:
    """PSI per feature of the freshest days against the production model's training data."""
    from control.monitor.drift import psi_by_feature  # noqa: PLC0415 - matplotlib-heavy package
    from control.profile import profile_table, spec_features  # noqa: PLC0415
    from features.catalog import load  # noqa: PLC0415

    rows, _ = target_rows(holdout, model, catalog)
    fresh = profile_table(rows, spec_features((catalog or load()).spec(model)))
    return psi_by_feature(profile, fresh)
