"""The search's own page: logloss per trial (pruned trials at their last reported epoch's
place), best so far, and how strongly each parameter goes with the score.

Drawn the monitoring report's way (`control.monitor.plots`): matplotlib figures without
pyplot, inlined as SVG, one self-contained HTML file.

Importance here is the absolute Spearman rank correlation between a parameter and the
validation logloss over complete trials, normalised to sum to 1: a cheap, dependency-free
reading (fANOVA would need scikit-learn at run time), good enough to see which knobs matter.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from control.monitor.plots import _empty, _figure, _styled, to_svg
from control.tuning.search import TuneResult


def _ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    ranks: npt.NDArray[np.float64] = np.argsort(np.argsort(values)).astype(np.float64)
    return ranks


def importances(result: TuneResult) -> dict[str, float]:
    """|Spearman rho| of each parameter with the logloss, normalised (complete trials)."""
    done = [t for t in result.trials if t.valid_logloss is not None]
    if len(done) < 3:
        return {}
    scores = _ranks(np.array([t.valid_logloss for t in done], dtype=np.float64))
    raw: dict[str, float] = {}
    for name in sorted({n for t in done for n in t.params}):
        values = np.array([float(t.params.get(name, math.nan)) for t in done], dtype=np.float64)
        ranks = _ranks(values)
        if np.isnan(values).any() or ranks.std() == 0 or scores.std() == 0:
            raw[name] = 0.0
            continue
        raw[name] = abs(float(np.corrcoef(ranks, scores)[0, 1]))
    total = sum(raw.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in raw.items()}


@_styled
def trials_plot(result: TuneResult) -> str:
    """Validation logloss of each complete trial and the best so far, by trial number."""
    done = [t for t in result.trials if t.valid_logloss is not None]
    if not done:
        return _empty("no complete trial")
    fig, axes = _figure()
    ax = axes[0][0]
    ax.scatter(
        [t.number for t in done], [t.valid_logloss for t in done], s=14, label="complete trial"
    )
    pruned = [t.number for t in result.trials if t.state == "pruned"]
    if pruned:
        low = min(t.valid_logloss for t in done if t.valid_logloss is not None)
        ax.scatter(pruned, [low] * len(pruned), marker="x", color="#999999", label="pruned")
    best: list[float] = []
    xs: list[int] = []
    for t in sorted(done, key=lambda t: t.number):
        assert t.valid_logloss is not None
        best.append(min(best[-1], t.valid_logloss) if best else t.valid_logloss)
        xs.append(t.number)
    ax.step(xs, best, where="post", color="#d62728", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation logloss")
    ax.legend(loc="best")
    fig.tight_layout()
    return to_svg(fig)


@_styled
def importance_plot(result: TuneResult) -> str:
    """Horizontal bars: each parameter's share of rank correlation with the score."""
    shares = importances(result)
    if not shares:
        return _empty("fewer than 3 complete trials: no importances")
    names = sorted(shares, key=lambda n: shares[n])
    fig, axes = _figure(height=0.5 + 0.35 * len(names))
    ax = axes[0][0]
    ax.barh(names, [shares[n] for n in names])
    ax.set_xlabel("importance (normalised |Spearman rho| with logloss)")
    fig.tight_layout()
    return to_svg(fig)


def page(result: TuneResult, title: str) -> str:
    """The search as one HTML page."""
    rows = "".join(
        f"<tr><td>{t.number}</td><td>{t.valid_logloss:.6f}</td><td>{t.best_epoch}</td>"
        f"<td>{html.escape(', '.join(f'{k}={_short(v)}' for k, v in t.params.items()))}</td></tr>"
        for t in result.top(10)
    )
    chosen = html.escape(", ".join(f"{k}={_short(v)}" for k, v in result.params.items()))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "td,th{padding:2px 8px;text-align:left}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>Chosen: {chosen}; validation logloss {result.valid_logloss:.6f}"
        f" (spread {result.spread:.6f}).</p>"
        f"<figure><figcaption>Validation logloss per trial</figcaption>{trials_plot(result)}"
        "</figure>"
        f"<figure><figcaption>Parameter importances</figcaption>{importance_plot(result)}"
        "</figure>"
        "<h2>Top trials</h2><table><tr><th>trial</th><th>logloss</th><th>epochs</th>"
        f"<th>parameters</th></tr>{rows}</table></body></html>"
    )


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write(result: TuneResult, out: Path, title: str = "bidscore tuning") -> Path:
    """Write the page atomically (temporary name beside it, then rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page(result, title), encoding="utf-8")
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
