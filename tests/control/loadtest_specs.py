"""Tiny model specs over the real BidRequest schema for the load-test suite.

The production ctr spec is a 2^20-bucket, 25-field FFM (hundreds of MB); servers started by
these tests load these instead with `--specs tests.control.loadtest_specs:SPECS` (the
repository root is on the server's PYTHONPATH). Same schema and transforms, so the generated
payloads fit unchanged.
"""

from __future__ import annotations

from features.bid import BidRequest
from features.spec import ModelSpec, numeric

CTR = ModelSpec(
    "ctr",
    BidRequest,
    ["app_id", "device_os", "country", "hour", "campaign_id", "ad_category", "category_media"],
    bits=10,
    seed=21,
    algorithm="ffm",
)

CVR = ModelSpec(
    "cvr",
    BidRequest,
    ["app_id", "os_family", "country", "campaign_id", numeric("bid_price")],
    bits=10,
    seed=22,
    algorithm="lr",
)

SPECS: dict[str, ModelSpec] = {"ctr": CTR, "cvr": CVR}
