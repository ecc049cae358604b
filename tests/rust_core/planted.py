"""Small generators of CSR data labelled by a planted logistic model (for rust_core tests)."""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

import rust_core


@dataclass
class Planted:
    dataset: rust_core.Dataset
    probs: npt.NDArray[np.float64]
    labels: npt.NDArray[np.float32]


def planted_lr(
    rows: int,
    seed: int,
    *,
    fields: int = 8,
    vocab: int = 30,
    bias: float = -1.0,
    keep_negatives: float = 1.0,
    weight_negatives: bool = False,
) -> Planted:
    """One categorical feature per field (index = field * vocab + value), labels drawn from
    sigmoid(bias + sum of planted weights). Negatives are kept with probability
    `keep_negatives`; with `weight_negatives` kept negatives get weight 1/keep_negatives."""
    rng = np.random.default_rng(seed)
    truth = np.random.default_rng(1000).uniform(-1, 1, fields * vocab)
    values = (rng.random((rows, fields)) ** 2 * vocab).astype(np.int64)
    idx = values + np.arange(fields) * vocab
    p = 1 / (1 + np.exp(-(bias + truth[idx].sum(axis=1))))
    y = rng.random(rows) < p
    keep = y | (rng.random(rows) < keep_negatives)
    idx, p, y = idx[keep], p[keep], y[keep]
    n = len(y)
    labels = y.astype(np.float32)
    weights = None
    if weight_negatives:
        weights = np.where(y, 1.0, 1.0 / keep_negatives).astype(np.float32)
    ds = rust_core.Dataset.from_csr(
        np.arange(0, n * fields + 1, fields, dtype=np.uint64),
        np.tile(np.arange(fields, dtype=np.uint32), n),
        idx.astype(np.uint32).ravel(),
        np.ones(n * fields, dtype=np.float32),
        labels,
        weights,
    )
    return Planted(ds, p, labels)
