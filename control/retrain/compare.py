"""Challenger against champion on the same fresh holdout, and the gates that decide.

Both models score the same newest days, so the comparison measures the models and not the
luck of two different validation sets. The gates reuse `control.promotion`'s tolerances
(documented there): logloss may be at most `LOGLOSS_TOLERANCE` (relative) worse, AUC at most
`AUC_TOLERANCE` (absolute) lower; and the challenger must beat the constant base-rate
predictor (NE < 1) whether or not there is a champion.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import rust_core
from bidscore.errors import IntegrityError
from bidscore.manifest import verify_artifact
from bidscore.registry.base import Version
from bidscore.store.base import ArtifactStore
from control.metrics import evaluate
from control.promotion import AUC_TOLERANCE, LOGLOSS_TOLERANCE, current_fingerprint
from control.retrain.data import Tables, target_rows
from control.retrain.report import LOWER_IS_BETTER, METRICS
from features.catalog import Catalog
from features.readers.cast import WEIGHT_COLUMN


def score_holdout(
    model: rust_core.Model, model_name: str, holdout: pa.Table, catalog: Catalog | None = None
) -> dict[str, Any]:
    """Metrics of `model` on the holdout rows its target learns from."""
    from features.catalog import load  # noqa: PLC0415 - the feature code is read late
    from features.tokenize import tokenize_table  # noqa: PLC0415

    rows, label = target_rows(holdout, model_name, catalog)
    weights = WEIGHT_COLUMN if WEIGHT_COLUMN in rows.schema.names else None
    dataset = tokenize_table(rows, (catalog or load()).spec(model_name), label, weights)
    predictions = np.asarray(model.predict(dataset), dtype=np.float64)
    weight_values = rows.column(WEIGHT_COLUMN).to_numpy() if weights else None
    return evaluate(dataset.labels, predictions, weight_values).to_dict()


def load_champion(
    store: ArtifactStore, version: Version, workdir: Path, catalog: Catalog | None = None
) -> rust_core.Model:
    """Download and verify the champion's artifact (checksum, format, fingerprint)."""
    local = workdir / "champion.model"
    store.get(version.artifact_uri, local)
    return verify_artifact(local, version.manifest, current_fingerprint(version.model, catalog))


def metric_row(
    metric: str, champion: dict[str, Any] | None, challenger: dict[str, Any]
) -> dict[str, Any]:
    new = float(challenger[metric])
    old = float(champion[metric]) if champion else None
    better = None
    if old is not None:
        if metric == "calibration":
            gap_old, gap_new = abs(old - 1.0), abs(new - 1.0)
        elif metric in LOWER_IS_BETTER:
            gap_old, gap_new = old, new
        else:
            gap_old, gap_new = -old, -new
        better = "tie" if gap_new == gap_old else "challenger" if gap_new < gap_old else "champion"
    return {
        "metric": metric,
        "champion": old,
        "challenger": new,
        "delta": None if old is None else new - old,
        "better": better,
    }


def compare_on_holdout(
    model_name: str,
    tables: Tables,
    challenger: rust_core.Model,
    champion: Version | None,
    store: ArtifactStore,
    *,
    catalog: Catalog | None = None,
) -> dict[str, Any]:
    """Score both models on the holdout; the side-by-side rows and the gate verdicts."""
    challenger_metrics = score_holdout(challenger, model_name, tables.holdout, catalog)
    champion_metrics = None
    note = None
    if champion is not None:
        try:
            with tempfile.TemporaryDirectory(prefix="bidscore-retrain-") as tmp:
                loaded = load_champion(store, champion, Path(tmp), catalog)
                champion_metrics = score_holdout(loaded, model_name, tables.holdout, catalog)
        except IntegrityError as exc:
            note = f"champion v{champion.version} cannot be scored: {exc}"
    comparison: dict[str, Any] = {
        "holdout": {
            "start": tables.holdout_days[0],
            "end": tables.holdout_days[1],
            "rows": challenger_metrics["rows"],
            "positives": challenger_metrics["positives"],
        },
        "champion": (
            {"version": champion.version, "metrics": champion_metrics}
            if champion is not None
            else None
        ),
        "challenger": {"metrics": challenger_metrics},
        "rows": [metric_row(m, champion_metrics, challenger_metrics) for m in METRICS],
        "note": note,
    }
    comparison["gates"] = gates(comparison)
    return comparison


def gates(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """Each gate's verdict with both values, as the run record and the table show them."""
    new = comparison["challenger"]["metrics"]
    champion = comparison.get("champion") or {}
    old = champion.get("metrics")
    results = [
        {
            "name": "beats_base_rate",
            "passed": new["ne"] < 1.0,
            "detail": f"challenger NE {new['ne']:.5f} (must be < 1: better than the base rate)",
        }
    ]
    if champion and old is None:
        results.append(
            {
                "name": "champion_comparable",
                "passed": False,
                "detail": comparison.get("note") or "champion could not be scored",
            }
        )
    if old is not None:
        limit = old["logloss"] * (1 + LOGLOSS_TOLERANCE)
        results.append(
            {
                "name": "logloss",
                "passed": new["logloss"] <= limit,
                "detail": f"challenger {new['logloss']:.6f} vs champion v{champion['version']} "
                f"{old['logloss']:.6f} (allowed <= {limit:.6f})",
            }
        )
        floor = old["auc"] - AUC_TOLERANCE
        results.append(
            {
                "name": "auc",
                "passed": new["auc"] >= floor,
                "detail": f"challenger {new['auc']:.6f} vs champion v{champion['version']} "
                f"{old['auc']:.6f} (allowed >= {floor:.6f})",
            }
        )
    return results


def gate_failures(comparison: dict[str, Any]) -> list[str]:
    """`name: detail` of every failed gate (empty: the challenger may be promoted)."""
    if not comparison:
        return ["no comparison recorded"]
    return [f"{g['name']}: {g['detail']}" for g in comparison.get("gates", []) if not g["passed"]]


def summary(comparison: dict[str, Any]) -> str:
    """One line: challenger against champion on the holdout."""
    new = comparison["challenger"]["metrics"]
    champion = comparison.get("champion")
    text = f"challenger logloss {new['logloss']:.5f} auc {new['auc']:.4f}"
    if champion and champion.get("metrics"):
        old = champion["metrics"]
        text += (
            f" vs champion v{champion['version']} logloss {old['logloss']:.5f} auc {old['auc']:.4f}"
        )
    elif champion:
        text += f" (champion v{champion['version']} not comparable)"
    else:
        text += " (no champion)"
    return text
