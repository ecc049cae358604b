"""The data profile stored with every model version: what its training data looked like,
feature by feature, so that monitoring can compare live traffic and newer data against it.

The profile is a JSON object `{feature_name: FeatureProfile}` over the raw input features the
model's spec reaches (the columns of the logs it was trained on). Every entry has:

- `type`: the raw type, "str", "int" or "float";
- `rows`: rows profiled; `missing`: null cells; `missing_rate`: missing / rows;
- `distinct`: number of distinct non-null values (exact up to `DISTINCT_EXACT_LIMIT` rows,
  estimated from an evenly spaced sample beyond that with the GEE estimator, flagged by
  `distinct_approximate`);
- `top`: up to `TOP_K` most frequent non-null values, most frequent first, each
  `{"value": text, "count": n, "frequency": n / rows}` (values as text: ints in decimal,
  floats in Python's shortest round-trip form); `other_frequency`: the share of rows that are
  neither missing nor in `top` (so missing_rate + sum(top frequencies) + other = 1);
- numeric features only (`int`, `float`): `min`, `max`, `mean` of the non-null values and
  `histogram`: `{"edges": [e0, ..., ek], "counts": [c1, ..., ck]}` — k bins at the deciles of
  the training data (merged where equal); bin i counts e(i-1) <= x < e(i), the last bin also
  includes its right edge. Live values outside [e0, ek] belong to no bin; to compare a new
  sample, count it with the same edges (`histogram_counts`) and clip to the outer bins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

TOP_K = 20
HISTOGRAM_BINS = 10
# Exact distinct counts cost a hash set per column; past this many rows a sample is counted
# and scaled (monitoring needs the order of magnitude, not the last unit).
DISTINCT_EXACT_LIMIT = 2_000_000

RawType = Literal["str", "int", "float"]
_ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
}


class TopValue(TypedDict):
    value: str
    count: int
    frequency: float


class Histogram(TypedDict):
    edges: list[float]
    counts: list[int]


class FeatureProfile(TypedDict):
    type: RawType
    rows: int
    missing: int
    missing_rate: float
    distinct: int
    distinct_approximate: bool
    top: list[TopValue]
    other_frequency: float
    min: NotRequired[float | None]
    max: NotRequired[float | None]
    mean: NotRequired[float | None]
    histogram: NotRequired[Histogram]
    merged_approximate: NotRequired[bool]  # merged from parts (merge_profiles)


def value_text(value: Any) -> str:
    """The text of a value as profiles store it (ints in decimal, floats shortest)."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _distinct(column: pa.ChunkedArray) -> tuple[int, bool]:
    if column.length() <= DISTINCT_EXACT_LIMIT:
        return int(pc.count_distinct(column).as_py()), False
    # GEE estimator (Charikar et al., "Towards estimation error guarantees for distinct
    # values", PODS 2000) on an evenly spaced sample: values seen once in the sample are
    # scaled by sqrt(N / n), values seen more often are counted once.
    step = column.length() // DISTINCT_EXACT_LIMIT + 1
    sample = column.take(pa.array(np.arange(0, column.length(), step))).drop_null()
    if len(sample) == 0:
        return 0, True
    counts = pc.value_counts(sample).field("counts").to_numpy()
    singletons = int(np.count_nonzero(counts == 1))
    scale = ((column.length() - column.null_count) / len(sample)) ** 0.5
    return round(scale * singletons) + int(np.count_nonzero(counts > 1)), True


def _top(column: pa.ChunkedArray, rows: int) -> list[TopValue]:
    counts = pc.value_counts(column.drop_null())
    if len(counts) == 0:
        return []
    values = counts.field("values").to_pylist()
    numbers = counts.field("counts").to_numpy()
    order = np.lexsort((np.arange(len(numbers)), -numbers))[:TOP_K]
    return [
        {
            "value": value_text(values[i]),
            "count": int(numbers[i]),
            "frequency": float(numbers[i]) / rows,
        }
        for i in order
    ]


def histogram_edges(values: npt.NDArray[np.float64], bins: int = HISTOGRAM_BINS) -> list[float]:
    """Bin edges at the quantiles of `values`, equal edges merged (at least one bin)."""
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    return [float(e) for e in edges]


def histogram_counts(values: npt.ArrayLike, edges: Sequence[float]) -> list[int]:
    """Counts of `values` in the bins of `edges` (the profile's convention, see above)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if len(edges) == 2 and edges[0] == edges[1]:
        return [int(np.count_nonzero(x == edges[0]))]
    counts, _ = np.histogram(x, bins=np.asarray(edges, dtype=np.float64))
    return [int(c) for c in counts]


def profile_column(column: pa.ChunkedArray | pa.Array, raw_type: RawType) -> FeatureProfile:
    """The profile of one column (see the module docstring for the fields)."""
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    if pa.types.is_null(column.type):
        column = column.cast(_ARROW_TYPES[raw_type])
    rows = column.length()
    missing = column.null_count
    top = _top(column, rows) if rows else []
    distinct, approximate = _distinct(column)
    in_top = sum(t["count"] for t in top)
    entry: FeatureProfile = {
        "type": raw_type,
        "rows": rows,
        "missing": missing,
        "missing_rate": missing / rows if rows else 0.0,
        "distinct": distinct,
        "distinct_approximate": approximate,
        "top": top,
        "other_frequency": (rows - missing - in_top) / rows if rows else 0.0,
    }
    if raw_type in ("int", "float"):
        values = column.drop_null().to_numpy().astype(np.float64)
        values = values[~np.isnan(values)]
        if values.size:
            edges = histogram_edges(values)
            entry["min"], entry["max"] = float(values.min()), float(values.max())
            entry["mean"] = float(values.mean())
            entry["histogram"] = {"edges": edges, "counts": histogram_counts(values, edges)}
        else:
            entry["min"] = entry["max"] = entry["mean"] = None
            entry["histogram"] = {"edges": [], "counts": []}
    return entry


def profile_table(table: pa.Table, features: Mapping[str, RawType]) -> dict[str, FeatureProfile]:
    """Profiles of the named columns of `table` (a feature absent from the table is all
    missing: the reader filled its default, so the model never saw a real value)."""
    profiles: dict[str, FeatureProfile] = {}
    for name, raw_type in features.items():
        if name in table.column_names:
            profiles[name] = profile_column(table.column(name), raw_type)
        else:
            profiles[name] = profile_column(
                pa.nulls(table.num_rows, _ARROW_TYPES[raw_type]), raw_type
            )
    return profiles


def spec_features(spec: Any) -> dict[str, RawType]:
    """The raw (column) features a `features.ModelSpec` reaches, with their types."""
    raw, _derived = spec.definitions()
    return {d["name"]: d["type"] for d in raw if d.get("source") in ("context", "candidate")}


def merge_profiles(parts: Sequence[Mapping[str, FeatureProfile]]) -> dict[str, FeatureProfile]:
    """One profile from the profiles of disjoint parts of a data set (shards prepared apart).

    Exact: `rows`, `missing`, `missing_rate`, `min`, `max`, `mean`. Approximate (flagged
    `merged_approximate`): `top` sums each part's own top counts (a value outside a part's top
    is missed there), `distinct` is the largest part's count (a lower bound), and the
    histogram averages the parts' decile edges weighted by their values and sums their bin
    counts when every part has the same number of bins (else it keeps the largest part's).
    One part is returned as it is."""
    present = [p for p in parts if p]
    if len(present) <= 1:
        return dict(present[0]) if present else {}
    merged: dict[str, FeatureProfile] = {}
    for name in present[0]:
        entries = [p[name] for p in present if name in p]
        merged[name] = _merge_entries(entries)
    return merged


def _merge_entries(entries: Sequence[FeatureProfile]) -> FeatureProfile:
    rows = sum(e["rows"] for e in entries)
    missing = sum(e["missing"] for e in entries)
    counts: dict[str, int] = {}
    for e in entries:
        for t in e["top"]:
            counts[t["value"]] = counts.get(t["value"], 0) + t["count"]
    # Most frequent first; ties by value text, so the merge does not depend on part order.
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_K]
    top: list[TopValue] = [
        {"value": v, "count": c, "frequency": c / rows if rows else 0.0} for v, c in ranked
    ]
    in_top = sum(t["count"] for t in top)
    entry: FeatureProfile = {
        "type": entries[0]["type"],
        "rows": rows,
        "missing": missing,
        "missing_rate": missing / rows if rows else 0.0,
        "distinct": max(e["distinct"] for e in entries),
        "distinct_approximate": True,
        "top": top,
        "other_frequency": max(0.0, (rows - missing - in_top) / rows) if rows else 0.0,
    }
    if entry["type"] in ("int", "float"):
        numeric = [e for e in entries if e.get("histogram", {}).get("counts")]
        if not numeric:
            entry["min"] = entry["max"] = entry["mean"] = None
            entry["histogram"] = {"edges": [], "counts": []}
            entry["merged_approximate"] = True
            return entry
        sizes = [sum(e["histogram"]["counts"]) for e in numeric]
        low = min(float(e.get("min") or 0.0) for e in numeric)
        high = max(float(e.get("max") or 0.0) for e in numeric)
        entry["min"], entry["max"] = low, high
        entry["mean"] = float(
            sum(float(e["mean"] or 0.0) * n for e, n in zip(numeric, sizes, strict=True))
            / max(1, sum(sizes))
        )
        bins = {len(e["histogram"]["counts"]) for e in numeric}
        if len(bins) == 1:
            weights = np.asarray(sizes, dtype=np.float64) / max(1, sum(sizes))
            edges = np.asarray([e["histogram"]["edges"] for e in numeric], dtype=np.float64)
            hist_edges = [float(x) for x in (weights @ edges)]
            hist_edges[0], hist_edges[-1] = low, high
            entry["histogram"] = {
                "edges": hist_edges,
                "counts": [int(c) for c in np.sum([e["histogram"]["counts"] for e in numeric], 0)],
            }
        else:
            entry["histogram"] = numeric[int(np.argmax(sizes))]["histogram"]
    entry["merged_approximate"] = True
    return entry
