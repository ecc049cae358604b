"""The project's real schema and specs: the log columns, the derived features, the specs'
sizes, and that generated logs tokenise for both specs."""

from __future__ import annotations

import numpy as np
import pytest

from control.datagen import CANDIDATE_COLUMNS, CONTEXT_COLUMNS, generate
from features.bid import SPECS, TARGETS, BidRequest
from features.spec import Target
from features.tokenize import plan_for, python_values, table_csr, tokenize_table
from features.transforms import value_text

CONTEXT = [
    "ts", "app_id", "app_category", "site_id", "site_domain", "publisher_id", "device_os",
    "device_os_version", "device_make", "device_model", "device_type", "country", "region",
    "connection_type", "carrier", "banner_pos", "ad_size", "user_segment", "language",
    "bid_floor",
]  # fmt: skip
CANDIDATE = [
    "campaign_id", "creative_id", "advertiser_id", "ad_category", "creative_format",
    "creative_size", "landing_domain", "bid_price",
]  # fmt: skip


def test_raw_columns_are_the_log_layout():
    raw = BidRequest.schema_info().raw
    assert [n for n, f in raw.items() if f.source == "context"] == CONTEXT
    assert [n for n, f in raw.items() if f.source == "candidate"] == CANDIDATE
    assert (tuple(CONTEXT), tuple(CANDIDATE)) == (CONTEXT_COLUMNS, CANDIDATE_COLUMNS)
    ints = {n for n, f in raw.items() if f.type == "int"}
    floats = {n for n, f in raw.items() if f.type == "float"}
    assert (ints, floats) == ({"ts", "banner_pos"}, {"bid_floor", "bid_price"})
    assert all(f.default is not None for f in raw.values())  # logs may omit any column


def test_derived_features():
    r = BidRequest.from_dict(
        {"ts": "1700000000", "device_os": "iPadOS", "ad_category": "games", "app_id": "com.x",
         "bid_floor": "0.3", "bid_price": "7", "site_domain": "News.EXAMPLE.com",
         "ad_size": "320x50", "creative_size": "320x50", "banner_pos": "1"}
    )  # fmt: skip
    assert (r.hour, r.dow, r.floor_bucket, r.price_log) == (22, 1, 3, 3)
    assert r.site_domain_lc == "news.example.com"
    assert (r.category_media, r.hour_category) == ("games^com.x", "22^games")
    assert r.size_match == "320x50^320x50^1"
    assert r.os_family == "apple"
    assert BidRequest.from_dict({"device_os": "PalmOS"}).os_family == "other"


def test_specs_and_targets():
    ctr, cvr = SPECS["ctr"], SPECS["cvr"]
    assert (ctr.name, ctr.algorithm, ctr.bits, len(ctr.fields)) == ("ctr", "ffm", 18, 25)
    assert (cvr.name, cvr.algorithm, cvr.bits, len(cvr.fields)) == ("cvr", "lr", 18, 15)
    assert ctr.fingerprint != cvr.fingerprint
    assert {"category_media", "os_format", "segment_advertiser", "hour_category"} <= {
        f.feature for f in ctr.fields
    }
    assert {"ctr": Target("click"), "cvr": Target("conversion", where="click")} == TARGETS
    # No production spec reaches a Python property: serving ctr and cvr stays native.
    assert python_values(BidRequest, list(SPECS.values()), {}, [{}]) is None


@pytest.mark.parametrize("name", ["ctr", "cvr"])
def test_generated_logs_tokenise_and_serve_alike(name):
    spec = SPECS[name]
    table = generate(40, seed=5, candidates=4)
    data = tokenize_table(table, spec, label=TARGETS[name].label)
    assert data.num_rows == 40
    assert data.labels.tolist() == table[TARGETS[name].label].to_numpy().astype(np.float32).tolist()
    plan = plan_for(SPECS.values())
    rows = table.to_pylist()
    ctx = {c: value_text(rows[0][c]) for c in CONTEXT}
    cands = [{c: value_text(r[c]) for c in CANDIDATE} for r in rows[:4]]
    served = plan.tokenize_request(ctx, cands, name)
    _, fields, indices, values = table_csr(table.slice(0, 4), spec)
    assert np.concatenate([s[0] for s in served]).tolist() == fields.tolist()
    assert np.concatenate([s[1] for s in served]).tolist() == indices.tolist()
    assert np.concatenate([s[2] for s in served]).tolist() == values.tolist()
