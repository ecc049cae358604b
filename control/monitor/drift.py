"""Feature distributions over time: each version's training-data profile against the version
before it, or serving traffic (a prediction log with raw features) against a version's
training data.

Per feature: PSI (`control.monitor.psi`; flag above 0.1, alarm above 0.25), the change in
missing rate, values that clearly entered or left the top list; per version: the row-count
trend. `promotion_gate` turns the alarms into reasons to refuse a promotion.

The raw `ts` column is left out by default: timestamps move forward with every day of data, so
its distribution always "shifts"; the hour and weekday it feeds are what a model sees.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bidscore.manifest import Manifest
from bidscore.registry import Version
from control.monitor.flags import Flag, Severity
from control.monitor.offline import version_order
from control.monitor.psi import lists_every_value, psi
from control.monitor.sources import MonitorInputError
from control.profile import FeatureProfile, histogram_counts, profile_column

PSI_FLAG = 0.1
PSI_ALARM = 0.25
SERVING = "serving"


@dataclass(frozen=True)
class DriftThresholds:
    psi_flag: float = PSI_FLAG
    psi_alarm: float = PSI_ALARM
    missing_change: float = 0.05  # absolute change of the missing rate
    value_share: float = 0.05  # share of rows taken by values that entered or left the top
    rows_drop: float = 0.2  # relative fall of the training rows against the previous version
    ignore: tuple[str, ...] = ("ts",)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    missing_before: float
    missing_after: float
    new_values: list[str]
    vanished_values: list[str]
    value_share: float  # rows (of the newer data) in new values + (of the older) in vanished

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DriftComparison:
    """`version` ("3", or "serving") against `baseline` (the version before it)."""

    model: str
    version: str
    baseline: str
    rows: int
    baseline_rows: int
    features: list[FeatureDrift]

    @property
    def label(self) -> str:
        return self.version if self.version == SERVING else f"v{self.version}"

    def psi_of(self, feature: str) -> float:
        return next((f.psi for f in self.features if f.feature == feature), math.nan)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "baseline": self.baseline,
            "rows": self.rows,
            "baseline_rows": self.baseline_rows,
            "features": [f.to_dict() for f in self.features],
        }


@dataclass(frozen=True)
class DriftReport:
    model: str
    comparisons: list[DriftComparison]
    rows: list[tuple[str, int]]  # (version, training rows), in version order
    flags: list[Flag] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        """Every compared feature, in first-seen order."""
        return list(dict.fromkeys(f.feature for c in self.comparisons for f in c.features))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "rows": [{"version": v, "rows": n} for v, n in self.rows],
            "flags": [f.to_dict() for f in self.flags],
        }


# --- comparing two profiles -----------------------------------------------------------------


def psi_by_feature(
    expected: Mapping[str, FeatureProfile],
    actual: Mapping[str, FeatureProfile],
    ignore: Sequence[str] = DriftThresholds.ignore,
) -> dict[str, float]:
    """PSI of every feature profiled in both (except `ignore`)."""
    return {
        name: psi(expected[name], actual[name])
        for name in expected
        if name in actual and name not in ignore
    }


def compare_profiles(
    expected: Mapping[str, FeatureProfile],
    actual: Mapping[str, FeatureProfile],
    ignore: Sequence[str] = DriftThresholds.ignore,
) -> list[FeatureDrift]:
    """Per-feature drift of `actual` against `expected`, for features profiled in both."""
    out: list[FeatureDrift] = []
    for name, score in psi_by_feature(expected, actual, ignore).items():
        e, a = expected[name], actual[name]
        new, vanished, share = _top_changes(e, a)
        out.append(
            FeatureDrift(
                feature=name,
                psi=score,
                missing_before=float(e.get("missing_rate", 0.0)),
                missing_after=float(a.get("missing_rate", 0.0)),
                new_values=new,
                vanished_values=vanished,
                value_share=share,
            )
        )
    return out


def _top_changes(e: Mapping[str, Any], a: Mapping[str, Any]) -> tuple[list[str], list[str], float]:
    """Values that clearly entered or left the top list, and the rows they account for.

    "Clearly": the other profile lists every value, or the value's share is at least twice the
    smallest share in the other top list, so values merely trading places at the end of a
    top list are not reported. Floats are skipped (their top values are arbitrary numbers)."""
    if e.get("type") == "float" or a.get("type") == "float":
        return [], [], 0.0
    e_top = {t["value"]: float(t["frequency"]) for t in e.get("top", [])}
    a_top = {t["value"]: float(t["frequency"]) for t in a.get("top", [])}

    new = [v for v, s in a_top.items() if v not in e_top and s >= 2 * _listing_floor(e)]
    vanished = [v for v, s in e_top.items() if v not in a_top and s >= 2 * _listing_floor(a)]
    share = sum(a_top[v] for v in new) + sum(e_top[v] for v in vanished)
    return new, vanished, share


def _listing_floor(profile: Mapping[str, Any]) -> float:
    """The share below which a value may be missing from the profile's top list."""
    top = profile.get("top", [])
    if not top or lists_every_value(profile):
        return 0.0
    return min(float(t["frequency"]) for t in top)


def comparison_flags(c: DriftComparison, t: DriftThresholds) -> list[Flag]:
    flags: list[Flag] = []
    against = f"{c.model} {c.label} against v{c.baseline}"

    def add(
        check: str, severity: Severity, f: FeatureDrift | None, value: float, limit: float
    ) -> None:
        subject = f.feature if f else "rows"
        text = {
            "drift.psi": f"{subject} PSI {value:.3f} > {limit}",
            "drift.missing": f"{subject} missing rate changed by {value:+.1%}",
            "drift.values": f"{subject} top values changed ({len(f.new_values) if f else 0} new, "
            f"{len(f.vanished_values) if f else 0} vanished, {value:.1%} of rows)",
            "drift.rows": f"training rows fell {value:.1%} ({c.baseline_rows:,} -> {c.rows:,})",
        }[check]
        flags.append(
            Flag(
                check=check,
                severity=severity,
                model=c.model,
                version=c.version,
                subject=subject,
                value=value,
                threshold=limit,
                message=f"{against}: {text}" + (" (alarm)" if severity == "alarm" else ""),
            )
        )

    for f in c.features:
        if f.psi > t.psi_alarm:
            add("drift.psi", "alarm", f, f.psi, t.psi_alarm)
        elif f.psi > t.psi_flag:
            add("drift.psi", "flag", f, f.psi, t.psi_flag)
        change = f.missing_after - f.missing_before
        if abs(change) > t.missing_change:
            add("drift.missing", "flag", f, change, t.missing_change)
        if f.value_share > t.value_share:
            add("drift.values", "flag", f, f.value_share, t.value_share)
    if c.version != SERVING and c.baseline_rows > 0:
        drop = (c.baseline_rows - c.rows) / c.baseline_rows
        if drop > t.rows_drop:
            add("drift.rows", "flag", None, drop, t.rows_drop)
    return flags


# --- across versions ------------------------------------------------------------------------


def profile_of(version: Version) -> dict[str, FeatureProfile]:
    return version.manifest.profile


def rows_of(version: Version) -> int:
    """Training rows: the manifest's data section, else the rows its profile counted."""
    data = version.manifest.data
    if isinstance(data.get("rows"), int):
        return int(data["rows"])
    profile = profile_of(version)
    return max((int(p["rows"]) for p in profile.values()), default=0)


def drift_report(
    model: str, versions: Sequence[Version], thresholds: DriftThresholds | None = None
) -> DriftReport:
    """Each version with a profile against the previous version with a profile."""
    t = thresholds or DriftThresholds()
    ordered = [v for v in sorted(versions, key=version_order) if v.model == model and profile_of(v)]
    comparisons = [
        DriftComparison(
            model=model,
            version=new.version,
            baseline=old.version,
            rows=rows_of(new),
            baseline_rows=rows_of(old),
            features=compare_profiles(profile_of(old), profile_of(new), t.ignore),
        )
        for old, new in itertools.pairwise(ordered)
    ]
    flags = [f for c in comparisons for f in comparison_flags(c, t)]
    return DriftReport(
        model=model,
        comparisons=comparisons,
        rows=[(v.version, rows_of(v)) for v in ordered],
        flags=flags,
    )


# --- serving traffic against training data ----------------------------------------------------


def serving_profile(
    features: pa.Table,
    reference: Mapping[str, FeatureProfile],
    ignore: Sequence[str] = DriftThresholds.ignore,
) -> dict[str, FeatureProfile]:
    """Profile of logged raw features (wire strings) in the reference profile's terms: same
    types, and numeric values counted in the reference histogram's bins."""
    out: dict[str, FeatureProfile] = {}
    for name, ref in reference.items():
        if name in ignore:
            continue
        raw_type = ref.get("type", "str")
        column = (
            features[name]
            if name in features.column_names
            else pa.nulls(features.num_rows, pa.string())
        )
        typed = _typed(name, column, raw_type)
        prof = profile_column(typed, raw_type)
        edges = ref["histogram"]["edges"] if "histogram" in ref else []
        if raw_type in ("int", "float") and edges:
            values = pc.cast(typed, pa.float64()).drop_null().to_numpy(zero_copy_only=False)
            clipped = values.clip(edges[0], edges[-1])  # outside the range: the outer bins
            prof["histogram"] = {"edges": list(edges), "counts": histogram_counts(clipped, edges)}
        out[name] = prof
    return out


def _typed(
    name: str, column: pa.ChunkedArray | pa.Array, raw_type: str
) -> pa.ChunkedArray | pa.Array:
    if raw_type == "str":
        return column
    text = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
    try:
        return pc.cast(text, pa.int64() if raw_type == "int" else pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise MonitorInputError(
            f"prediction log feature {name!r} is not {raw_type}: {exc}"
        ) from exc


def serving_drift(
    version: Version, features: pa.Table, thresholds: DriftThresholds | None = None
) -> tuple[DriftComparison, list[Flag]]:
    """Serving traffic (`features` from the prediction log) against `version`'s training data."""
    t = thresholds or DriftThresholds()
    reference = profile_of(version)
    if not reference:
        raise MonitorInputError(
            f"{version.model} v{version.version} has no data profile to compare with"
        )
    actual = serving_profile(features, reference, t.ignore)
    comparison = DriftComparison(
        model=version.model,
        version=SERVING,
        baseline=version.version,
        rows=features.num_rows,
        baseline_rows=rows_of(version),
        features=compare_profiles(reference, actual, t.ignore),
    )
    return comparison, comparison_flags(comparison, t)


# --- promotion gate -------------------------------------------------------------------------


def promotion_gate(
    old_manifest: Manifest,
    new_manifest: Manifest,
    thresholds: DriftThresholds | None = None,
) -> list[str]:
    """Reasons to refuse promoting `new` over `old` (empty: pass): features whose PSI between
    the two training-data profiles is an alarm. Versions without a profile pass (nothing to
    compare)."""
    t = thresholds or DriftThresholds()
    old, new = old_manifest.profile, new_manifest.profile
    if not old or not new:
        return []
    scores = psi_by_feature(old, new, t.ignore)
    baseline = f"v{old_manifest.version or '?'}"
    return [
        f"drift alarm: {name} PSI {score:.3f} > {t.psi_alarm} against {baseline}"
        for name, score in sorted(scores.items(), key=lambda kv: -kv[1])
        if score > t.psi_alarm
    ]
