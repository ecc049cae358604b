"""The monitoring report's plots, each drawn by matplotlib as an inline SVG string.

SVG keeps the report one self-contained file: text is drawn as paths (`svg.fonttype: path`), so
no font or script is fetched when it is opened. A plot with nothing to show still renders, with
a sentence saying why, so a reader never wonders whether it failed.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from control.monitor.drift import PSI_ALARM, PSI_FLAG, DriftReport
from control.monitor.offline import OfflineReport
from control.monitor.online import OnlineReport

# Figures are built without pyplot: no global figure registry to leak into, no GUI backend
# to choose, safe to call from any thread.
_STYLE: dict[Any, Any] = {
    "svg.fonttype": "path",
    "svg.hashsalt": "bidscore",  # stable element ids: the same data gives the same file
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _styled(plot: Callable[..., str]) -> Callable[..., str]:
    """Run a plot function with the report's matplotlib style (read as artists are made)."""

    @functools.wraps(plot)
    def wrapper(*args: Any, **kwargs: Any) -> str:
        with mpl.rc_context(_STYLE):
            return plot(*args, **kwargs)

    return wrapper


def to_svg(fig: Figure) -> str:
    """The figure as an `<svg>` element (XML prologue and DOCTYPE dropped for inlining)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(
    width: float = 7.5, height: float = 3.2, nrows: int = 1, ncols: int = 1
) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(nrows, ncols, squeeze=False)


@_styled
def _empty(message: str) -> str:
    fig, axes = _figure(height=1.6)
    ax = axes[0][0]
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#555555")
    return to_svg(fig)


@_styled
def metrics_over_versions(reports: Sequence[OfflineReport]) -> str:
    """AUC, logloss and NE of every model, by version."""
    if not any(r.versions for r in reports):
        return _empty("no registered versions")
    fig, axes = _figure(width=9.5, height=3.0, ncols=3)
    for ax, metric in zip(axes[0], ("auc", "logloss", "ne"), strict=True):
        for report in reports:
            xs = [v.version for v in report.versions]
            ys = [getattr(v, metric) for v in report.versions]
            ax.plot(xs, ys, marker="o", label=report.model)
        ax.set_title({"auc": "AUC", "logloss": "logloss", "ne": "normalised entropy"}[metric])
        ax.set_xlabel("version")
    axes[0][0].legend(loc="best")
    fig.tight_layout()
    return to_svg(fig)


@_styled
def rows_over_versions(reports: Sequence[OfflineReport]) -> str:
    """Training rows of every model, by version (a shrinking source shows as a step down)."""
    if not any(r.versions for r in reports):
        return _empty("no registered versions")
    fig, axes = _figure()
    ax = axes[0][0]
    for report in reports:
        ax.plot(
            [v.version for v in report.versions],
            [v.rows for v in report.versions],
            marker="o",
            label=report.model,
        )
    ax.set_xlabel("version")
    ax.set_ylabel("training rows")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best")
    fig.tight_layout()
    return to_svg(fig)


@_styled
def psi_heatmap(reports: Sequence[DriftReport]) -> str:
    """PSI per feature (rows) and version (columns, each against the version before), per model."""
    shown = [r for r in reports if r.comparisons]
    if not shown:
        return _empty("fewer than two versions with a data profile: nothing to compare")
    heights = [max(len(r.features), 1) for r in shown]
    fig, axes = _figure(width=8.0, height=sum(0.22 * h + 1.2 for h in heights), nrows=len(shown))
    for ax, report in zip(axes[:, 0], shown, strict=True):
        features = report.features
        matrix = np.array(
            [[c.psi_of(f) for c in report.comparisons] for f in features], dtype=np.float64
        )
        shown_values = np.nan_to_num(matrix, nan=0.0)
        image = ax.imshow(
            shown_values,
            aspect="auto",
            cmap="YlOrRd",
            vmin=0.0,
            vmax=max(0.5, float(shown_values.max())),
        )
        ax.set_yticks(range(len(features)), labels=features)
        ax.set_xticks(
            range(len(report.comparisons)),
            labels=[f"v{c.baseline}→{c.label}" for c in report.comparisons],
        )
        ax.grid(False)
        ax.set_title(f"{report.model}: PSI per feature (flag > {PSI_FLAG}, alarm > {PSI_ALARM})")
        top = max(0.5, float(shown_values.max()))
        for (i, j), value in np.ndenumerate(matrix):
            if not math.isnan(value) and value > PSI_FLAG:
                # Light text on the dark end of the colour map, dark text elsewhere.
                color = "white" if value > 0.6 * top else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color)
        fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    return to_svg(fig)


@_styled
def online_calibration(report: OnlineReport | None) -> str:
    """Calibration (mean predicted / observed) per time bucket, one line per model version."""
    if report is None or not report.buckets:
        return _empty(
            "no prediction log and outcomes given (control monitor report --predictions --outcomes)"
        )
    fig, axes = _figure(width=9.0)
    ax = axes[0][0]
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for b in report.buckets:
        if math.isfinite(b.calibration):
            series.setdefault((b.model, b.version), []).append((b.start, b.calibration))
    for (model, version), points in sorted(series.items()):
        points.sort()
        ax.plot(
            [datetime.fromtimestamp(t, UTC) for t, _ in points],
            [c for _, c in points],
            marker="o",
            label=f"{model} v{version}",
        )
    ax.axhline(1.0, color="#333333", linewidth=0.8)
    low, high = report.thresholds.calibration_low, report.thresholds.calibration_high
    ax.axhspan(low, high, color="#2ca02c", alpha=0.08, label=f"band {low} to {high}")
    ax.set_ylabel("mean predicted / observed")
    ax.set_xlabel("time bucket (UTC)")
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return to_svg(fig)


@_styled
def reliability_curve(report: OnlineReport | None) -> str:
    """Observed rate against mean predicted score, in score-quantile bins, per model version."""
    if report is None or not report.reliability:
        return _empty("no settled online predictions to draw a reliability curve")
    fig, axes = _figure(width=5.0, height=4.2)
    ax = axes[0][0]
    top = 0.0
    for (model, version), bins in sorted(report.reliability.items()):
        xs = [b.mean_score for b in bins]
        ys = [b.observed for b in bins]
        top = max(top, *xs, *ys)
        ax.plot(xs, ys, marker="o", label=f"{model} v{version}")
    top = top * 1.05 or 1.0
    ax.plot([0, top], [0, top], linestyle="--", color="#333333", linewidth=0.8, label="perfect")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean predicted")
    ax.set_ylabel("observed rate")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return to_svg(fig)
