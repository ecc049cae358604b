"""The project's real schema: one bid request (context) and its ad candidates, as the bidder
sends them and as the bid logs store them, and the ctr and cvr model specs over it."""

from __future__ import annotations

from features.catalog import Catalog
from features.schema import FeatureSchema, candidate, context
from features.spec import ModelSpec, Target, numeric
from features.transforms import Bucketize, Cross, DayOfWeek, HourOfDay, LogBucket, Lower

# Lower-cased OS names that share one model family: the bidder sends what the exchange sent.
_OS_FAMILIES = {
    "ios": "apple",
    "ipados": "apple",
    "tvos": "apple",
    "android": "android",
    "fireos": "android",
    "harmonyos": "android",
    "windows": "desktop",
    "macos": "desktop",
    "linux": "desktop",
}


class BidRequest(FeatureSchema):
    """One auction's context and one candidate ad: a row of the bid logs."""

    # context: the user, app or site, device, time (20 raw features)
    ts: int = context(default=0)  # unix seconds, UTC
    app_id: str = context(default="")
    app_category: str = context(default="")
    site_id: str = context(default="")
    site_domain: str = context(default="")
    publisher_id: str = context(default="")
    device_os: str = context(default="")
    device_os_version: str = context(default="")
    device_make: str = context(default="")
    device_model: str = context(default="")
    device_type: str = context(default="")
    country: str = context(default="")
    region: str = context(default="")
    connection_type: str = context(default="")
    carrier: str = context(default="")
    banner_pos: int = context(default=0)
    ad_size: str = context(default="")
    user_segment: str = context(default="")
    language: str = context(default="")
    bid_floor: float = context(default=0.0)  # CPM, USD

    # candidate: the ad (8 raw features)
    campaign_id: str = candidate(default="")
    creative_id: str = candidate(default="")
    advertiser_id: str = candidate(default="")
    ad_category: str = candidate(default="")
    creative_format: str = candidate(default="")
    creative_size: str = candidate(default="")
    landing_domain: str = candidate(default="")
    bid_price: float = candidate(default=0.0)  # CPM, USD

    # derived, built in (executed by rust_core in training and serving)
    hour = HourOfDay("ts")
    dow = DayOfWeek("ts")
    floor_bucket = Bucketize("bid_floor", edges=[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0])
    price_log = LogBucket("bid_price", base=2.0)
    site_domain_lc = Lower("site_domain")
    landing_domain_lc = Lower("landing_domain")
    category_media = Cross("ad_category", "app_id")
    os_format = Cross("device_os", "creative_format")
    segment_advertiser = Cross("user_segment", "advertiser_id")
    hour_category = Cross("hour", "ad_category")
    country_campaign = Cross("country", "campaign_id")
    size_match = Cross("ad_size", "creative_size", "banner_pos")

    # Derived in Python: the escape hatch, the same code in both paths but row by row. No
    # production spec uses it, so that serving ctr and cvr stays native end to end; the skew
    # tests exercise it through a spec of their own.
    @property
    def os_family(self) -> str:
        """Coarse OS family; unknown systems fall into "other"."""
        return _OS_FAMILIES.get(self.device_os.strip().lower(), "other")


CTR = ModelSpec(
    "ctr",
    BidRequest,
    [
        "app_id",
        "app_category",
        "site_id",
        "site_domain_lc",
        "publisher_id",
        "device_os",
        "device_model",
        "device_type",
        "country",
        "connection_type",
        "banner_pos",
        "user_segment",
        "hour",
        "dow",
        "floor_bucket",
        "campaign_id",
        "creative_id",
        "advertiser_id",
        "ad_category",
        "creative_format",
        "price_log",
        "category_media",
        "os_format",
        "segment_advertiser",
        "hour_category",
    ],
    # 2^18 buckets x 25 fields x k=4 f32 = a 105 MB file: room for ~100k distinct tokens at a
    # few percent collisions. Raise it with the vocabulary; every process maps one copy.
    bits=18,
    seed=1,
    algorithm="ffm",
)

CVR = ModelSpec(
    "cvr",
    BidRequest,
    [
        "app_id",
        "app_category",
        "device_os",
        "connection_type",
        "country",
        "user_segment",
        "hour",
        "campaign_id",
        "advertiser_id",
        "ad_category",
        "landing_domain_lc",
        "country_campaign",
        "size_match",
        "segment_advertiser",
        numeric("bid_price"),
    ],
    bits=18,
    seed=2,
    algorithm="lr",
)

SPECS: dict[str, ModelSpec] = {"ctr": CTR, "cvr": CVR}

TARGETS: dict[str, Target] = {
    "ctr": Target(label="click"),
    "cvr": Target(label="conversion", where="click"),  # trained on clicked rows
}

CATALOG = Catalog(SPECS, TARGETS)
