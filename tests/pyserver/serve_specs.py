"""Small model specs over the real BidRequest schema, for server tests.

The production specs hash into 2^20 (ctr) and 2^18 (cvr) buckets; a 2^20 x 25-field FFM file
is hundreds of MB, too big to train and copy in every test. These specs keep the same schema,
transforms and Python property (`os_family`) with a few thousand buckets. Servers started by
the tests load them with `--specs tests.pyserver.serve_specs:SPECS` (the repository root is on
PYTHONPATH).
"""

from __future__ import annotations

from features.bid import BidRequest
from features.spec import ModelSpec, numeric

CTR = ModelSpec(
    "ctr",
    BidRequest,
    [
        "app_id",
        "site_domain_lc",
        "device_os",
        "country",
        "banner_pos",
        "hour",
        "floor_bucket",
        "campaign_id",
        "ad_category",
        "price_log",
        "category_media",
        "os_format",
    ],
    bits=12,
    seed=11,
    algorithm="ffm",
)

CVR = ModelSpec(
    "cvr",
    BidRequest,
    [
        "app_id",
        "device_os",
        "os_family",
        "country",
        "campaign_id",
        "landing_domain_lc",
        "size_match",
        numeric("bid_price"),
    ],
    bits=12,
    seed=12,
    algorithm="lr",
)

WIN = ModelSpec(
    "win",
    BidRequest,
    ["publisher_id", "ad_size", "creative_size", "os_family", numeric("bid_floor")],
    bits=10,
    seed=13,
    algorithm="lr",
)

SPECS: dict[str, ModelSpec] = {"ctr": CTR, "cvr": CVR, "win": WIN}
