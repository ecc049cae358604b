"""Population stability index between two data profiles (`control.profile`), per feature.

PSI = sum over bins of (a - e) * ln(a / e), where e and a are the shares of the expected
(older) and actual (newer) data in each bin; 0.1 is a noticeable and 0.25 a large shift.

Bins, always including one for missing values:
- categorical features (strings, and integers whose profile lists every distinct value): the
  values of either profile's top list, plus "any other value". A profile stores only its top
  values, so the share of a value that is in one top list but not the other is taken as the
  smallest share in the other list (a bound: it would have been listed if it were more
  common), capped so that the estimates fit in that profile's "other" share. Using the bound
  rather than zero keeps sampling noise at the end of a top list from looking like drift.
- numeric features: the expected profile's histogram bins (deciles of the older data). The
  actual data is counted in the same bins when both histograms share edges (serving data is
  re-counted with `histogram_counts`); otherwise its shares are read off its own histogram's
  piecewise-linear CDF at the expected edges. Values outside the expected range go to the
  outer bins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from control.profile import TOP_K

FloatArray = npt.NDArray[np.float64]
# Empty bins are floored at this share so that ln(a / e) stays finite.
SHARE_FLOOR = 1e-4


def psi(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> float:
    """PSI of one feature's profile against another's (see the module docstring)."""
    if _is_numeric(expected) and _is_numeric(actual):
        e, a = _numeric_shares(expected, actual)
    else:
        e, a = _categorical_shares(expected, actual)
    return _psi(e, a)


def _psi(expected: FloatArray, actual: FloatArray) -> float:
    e = np.maximum(expected, SHARE_FLOOR)
    a = np.maximum(actual, SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def lists_every_value(profile: Mapping[str, Any]) -> bool:
    """The top list holds every distinct value (nothing hides in "other")."""
    return len(profile.get("top", [])) < TOP_K and profile.get("other_frequency", 0.0) <= 0.0


def _is_numeric(profile: Mapping[str, Any]) -> bool:
    histogram = profile.get("histogram") or {}
    if profile.get("type") not in ("int", "float") or not histogram.get("counts"):
        return False
    # Integers with a handful of values (banner_pos) compare better value by value.
    return not (profile.get("type") == "int" and lists_every_value(profile))


def _categorical_shares(
    expected: Mapping[str, Any], actual: Mapping[str, Any]
) -> tuple[FloatArray, FloatArray]:
    values = list(
        dict.fromkeys(
            [t["value"] for t in expected.get("top", [])]
            + [t["value"] for t in actual.get("top", [])]
        )
    )
    return _value_shares(expected, values), _value_shares(actual, values)


def _value_shares(profile: Mapping[str, Any], values: Sequence[str]) -> FloatArray:
    """Shares of `values`, then "other", then missing, in one profile."""
    top = {t["value"]: float(t["frequency"]) for t in profile.get("top", [])}
    other = float(profile.get("other_frequency", 0.0))
    unlisted = [v for v in values if v not in top]
    bound = 0.0 if lists_every_value(profile) or not top else min(top.values())
    estimate = bound
    if unlisted and bound * len(unlisted) > other:
        estimate = other / len(unlisted)
    shares = [top.get(v, estimate) for v in values]
    rest = max(other - estimate * len(unlisted), 0.0)
    return np.array([*shares, rest, float(profile.get("missing_rate", 0.0))], dtype=np.float64)


def _numeric_shares(
    expected: Mapping[str, Any], actual: Mapping[str, Any]
) -> tuple[FloatArray, FloatArray]:
    e_hist, a_hist = expected["histogram"], actual["histogram"]
    edges = np.asarray(e_hist["edges"], dtype=np.float64)
    e_counts = np.asarray(e_hist["counts"], dtype=np.float64)
    a_present = 1.0 - float(actual.get("missing_rate", 0.0))
    e_present = 1.0 - float(expected.get("missing_rate", 0.0))
    e_shares = e_counts / max(e_counts.sum(), 1.0) * e_present
    if list(a_hist["edges"]) == list(e_hist["edges"]):
        a_counts = np.asarray(a_hist["counts"], dtype=np.float64)
        a_mass = a_counts / max(a_counts.sum(), 1.0)
    else:
        a_mass = _mass_in_bins(
            edges, np.asarray(a_hist["edges"], np.float64), np.asarray(a_hist["counts"], np.float64)
        )
    return (
        np.append(e_shares, expected.get("missing_rate", 0.0)),
        np.append(a_mass * a_present, actual.get("missing_rate", 0.0)),
    )


def _mass_in_bins(edges: FloatArray, own_edges: FloatArray, own_counts: FloatArray) -> FloatArray:
    """Share of a histogram (`own_edges`, `own_counts`) in each bin of `edges`, the outer bins
    open-ended."""
    total = own_counts.sum()
    if total <= 0 or edges.size < 2:
        return np.full(max(edges.size - 1, 1), 1.0 / max(edges.size - 1, 1))
    if own_edges.size == 2 and own_edges[0] == own_edges[1]:
        # All values equal one number: the bin that holds it gets everything.
        return _point_mass(edges, float(own_edges[0]))
    cdf = np.concatenate([[0.0], np.cumsum(own_counts) / total])
    inner = np.interp(edges[1:-1], own_edges, cdf, left=0.0, right=1.0)
    bounds = np.concatenate([[0.0], inner, [1.0]])
    return np.diff(bounds)


def _point_mass(edges: FloatArray, x: float) -> FloatArray:
    shares = np.zeros(edges.size - 1)
    index = int(np.searchsorted(edges, x, side="right")) - 1
    shares[min(max(index, 0), shares.size - 1)] = 1.0
    return shares


def score_psi(expected: FloatArray, actual: FloatArray, bins: int = 10) -> float:
    """PSI of one score distribution against another, on the deciles of `expected` (a canary's
    treatment scores against control's); NaN if either is empty."""
    if expected.size == 0 or actual.size == 0:
        return float("nan")
    inner = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(inner, expected, side="right"), minlength=inner.size + 1)
    a = np.bincount(np.searchsorted(inner, actual, side="right"), minlength=inner.size + 1)
    return _psi(e / expected.size, a / actual.size)
