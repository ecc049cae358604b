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
from control.retrain.validate import DayStats, day_stats, merge_day_counts, stats_from_counts
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


def read_holdout(
    selection: Selection,
    model: str,
    notify: Callable[[str], None],
    catalog: Catalog | None = None,
) -> Tables:
    """Only the holdout partitions (evaluation's data), for a run whose window was prepared
    and validated by preparation tasks: `train` is empty, `day_stats` come from the tasks."""
    from features.catalog import load  # noqa: PLC0415
    from features.readers import combine_tables, read_logs  # noqa: PLC0415

    target = (catalog or load()).target(model)
    required = [target.label] + ([target.where] if target.where else [])
    tables = [read_logs(p.path, required_labels=required) for p in selection.holdout]
    notify(f"read {len(tables)} holdout partitions")
    first, last = selection.holdout_days
    return Tables(
        train=pa.table({}),
        holdout=combine_tables(tables, [p.path for p in selection.holdout]),
        label=target.label,
        day_stats=[],
        holdout_days=(first.isoformat(), last.isoformat()),
    )


def stats_from_parts(selection: Selection, parts: list[dict[str, Any]]) -> list[DayStats]:
    """Per-day statistics of the selection (training days, then holdout days, as
    `read_selection` lists them) from preparation tasks' per-file counts
    (`control.scale.prepare.Prepared.parts`), added up by `dt=` partition."""
    by_day: dict[str, list[dict[str, Any]]] = {}
    for part in parts:
        if part["day"] is None:
            raise ValueError(f"{part['source']}: not in a dt= partition")
        by_day.setdefault(part["day"], []).append(part["counts"])
    stats = []
    for p in [*selection.train, *selection.holdout]:
        counts = by_day.get(p.day.isoformat())
        if not counts:
            raise ValueError(f"{p.path}: no file of this partition was prepared")
        stats.append(stats_from_counts(p.day, merge_day_counts(counts)))
    return stats


def psi_from_parts(
    profile: Mapping[str, Any], holdout_parts: list[dict[str, Any]]
) -> dict[str, float]:
    """`psi_against` from the holdout files' profiles (of their target rows) merged:
    the same values when the holdout is one file, approximate (`merge_profiles`) else."""
    from control.monitor.drift import psi_by_feature  # noqa: PLC0415
    from control.profile import merge_profiles  # noqa: PLC0415

    return psi_by_feature(profile, merge_profiles([p["profile"] for p in holdout_parts]))


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
