"""The planted model: the true click and conversion probabilities of generated traffic.

CTR logit = bias + one weight per value of a few context and candidate fields (app, site,
publisher, category, device, country, connection, banner position, slot size, user segment,
hour of day, campaign, creative, advertiser, ad category, creative format, slot/creative size
mismatch) + FFM-like interactions <v_a, v_b> between latent vectors of context x candidate
pairs (app_category x ad_category, user_segment x advertiser_id, device_os x creative_format,
country x campaign_id, app_id x ad_category). CVR given a click has its own weights and pairs.

The generator evaluates these functions on value indices; `planted_ctr(table)` maps any
table's values back to indices, so tests can compute the best achievable AUC.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from control.datagen.world import FloatArray, IntArray, world

# Fields the planted model reads besides the raw columns of the same name.
_DERIVED = ("hour", "size_mismatch")


def sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return out


def _logit(
    bias: float,
    linear: Mapping[str, FloatArray],
    pairs: Mapping[tuple[str, str], tuple[FloatArray, FloatArray]],
    idx: Mapping[str, IntArray],
) -> FloatArray:
    n = len(next(iter(idx.values())))
    z = np.full(n, bias)
    for name, weights in linear.items():
        z += weights[idx[name]]
    for (a, b), (va, vb) in pairs.items():
        z += np.einsum("ij,ij->i", va[idx[a]], vb[idx[b]])
    return z


def ctr_logit(idx: Mapping[str, IntArray]) -> FloatArray:
    """CTR logit from value indices (index len(vocab) = a value the world does not know)."""
    p = world().planted
    return _logit(p.ctr_bias, p.ctr_linear, p.ctr_pairs, idx)


def cvr_logit(idx: Mapping[str, IntArray]) -> FloatArray:
    """Logit of P(conversion | click) from value indices."""
    p = world().planted
    return _logit(p.cvr_bias, p.cvr_linear, p.cvr_pairs, idx)


def _index(column: pa.ChunkedArray | pa.Array, values: list[str]) -> IntArray:
    text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
    found = pc.index_in(text, value_set=pa.array(values, pa.string()))
    return np.asarray(pc.fill_null(found, len(values)).to_numpy(zero_copy_only=False), np.int64)


def indices_from_table(table: pa.Table) -> dict[str, IntArray]:
    """Value indices of every field the planted model reads; unknown or absent -> unknown."""
    vocab = world().vocab
    n = table.num_rows
    idx: dict[str, IntArray] = {}
    for name, values in vocab.items():
        if name in _DERIVED:
            continue
        if name in table.column_names:
            idx[name] = _index(table[name], values)
        else:
            idx[name] = np.full(n, len(values), np.int64)
    if "ts" in table.column_names:
        ts = np.asarray(pc.fill_null(table["ts"], 0).to_numpy(), np.int64)
        idx["hour"] = (ts // 3600) % 24
    else:
        idx["hour"] = np.full(n, 24, np.int64)
    if "ad_size" in table.column_names and "creative_size" in table.column_names:
        same = pc.equal(table["ad_size"], table["creative_size"])
        mismatch = pc.if_else(same, 0, 1)
        idx["size_mismatch"] = np.asarray(
            pc.fill_null(mismatch, 2).to_numpy(zero_copy_only=False), np.int64
        )
    else:
        idx["size_mismatch"] = np.full(n, 2, np.int64)
    return idx


def planted_ctr(table: pa.Table) -> FloatArray:
    """The true click probability of each row of a table with the generator's columns."""
    return sigmoid(ctr_logit(indices_from_table(table)))


def planted_cvr(table: pa.Table) -> FloatArray:
    """The true probability of a conversion given a click, per row."""
    return sigmoid(cvr_logit(indices_from_table(table)))
