"""The fixed synthetic world the data generator samples traffic from.

Vocabularies (apps, sites, devices, campaigns...), their popularity and the planted model's
weights are drawn once from `WORLD_SEED`, never from the caller's seed: the seed passed to
`control.datagen.generate` only draws traffic. That is what lets `planted_ctr(table)` recover
the true click probability of any generated row from its values alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

WORLD_SEED = 20261101

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# --- fixed value lists (realistic names make demos and profiles readable) ------------------

CATEGORIES = (
    "games", "social", "news", "shopping", "entertainment", "music", "sports", "travel",
    "finance", "utilities", "health", "education", "food", "weather", "lifestyle",
)  # fmt: skip
CATEGORY_SHARE = (24, 12, 9, 10, 8, 6, 5, 4, 4, 6, 3, 3, 3, 2, 1)
COUNTRIES = (
    "US", "BR", "IN", "ID", "MX", "GB", "DE", "JP", "FR", "TR", "PH", "VN", "TH",
    "KR", "CA", "ES", "IT", "AR", "CO", "PL", "EG", "NG", "SA", "AU", "ZA",
)  # fmt: skip
# Price tier per country: 0 = premium, 1 = mid, 2 = emerging (drives bid floors).
COUNTRY_TIER = (0, 1, 2, 2, 1, 0, 0, 0, 0, 1, 2, 2, 2, 0, 0, 1, 1, 1, 2, 1, 2, 2, 1, 0, 2)
COUNTRY_LANGUAGE = (
    "en", "pt", "hi", "id", "es", "en", "de", "ja", "fr", "tr", "tl", "vi", "th",
    "ko", "en", "es", "it", "es", "es", "pl", "ar", "en", "ar", "en", "en",
)  # fmt: skip
DEVICE_OS = ("android", "ios")
OS_SHARE = (0.70, 0.30)
OS_SHARE_SHIFTED = (0.40, 0.60)  # a large iOS supply partner joins (PSI 0.38: an alarm)
OS_VERSIONS = (("10", "11", "12", "13", "14", "15"), ("15", "16", "17", "18"))
OS_VERSION_SHARE = ((4, 8, 14, 24, 30, 20), (8, 20, 35, 37))
MAKES = (
    ("samsung", "xiaomi", "oppo", "vivo", "google", "motorola", "oneplus", "huawei", "realme"),
    ("apple",),
)
MAKE_SHARE = ((35, 15, 10, 10, 8, 7, 5, 5, 5), (1,))
DEVICE_TYPES = ("phone", "tablet")
DEVICE_TYPE_SHARE = (0.88, 0.12)
CONNECTION_TYPES = ("wifi", "4g", "5g", "3g")
CONNECTION_SHARE = (0.55, 0.30, 0.10, 0.05)
BANNER_POS = (0, 1, 2, 3, 4, 5, 7)
BANNER_POS_SHARE = (0.58, 0.30, 0.04, 0.03, 0.02, 0.02, 0.01)
AD_SIZES = ("320x50", "300x250", "320x480", "728x90", "768x1024", "480x320", "1920x1080")
# Slot size given the device type (phones rarely get leaderboards, tablets rarely 320x50).
AD_SIZE_SHARE = (
    (0.42, 0.26, 0.20, 0.00, 0.00, 0.08, 0.04),
    (0.08, 0.32, 0.00, 0.30, 0.20, 0.00, 0.10),
)
USER_SEGMENTS = (
    "cart_abandoner_1d", "cart_abandoner_7d", "product_viewer_1d", "product_viewer_7d",
    "past_buyer_30d", "past_buyer_90d", "lapsed_90d", "installed_inactive", "high_value",
    "lookalike",
)  # fmt: skip
SEGMENT_SHARE = (4, 8, 6, 14, 6, 10, 16, 14, 2, 20)
AD_CATEGORIES = (
    "retail", "gaming", "travel", "finance", "food_delivery", "ride_hailing", "streaming",
    "dating", "education", "health", "social", "news",
)  # fmt: skip
CREATIVE_FORMATS = ("banner", "native", "video", "interstitial", "playable")
FORMAT_SHARE = (0.45, 0.2, 0.17, 0.13, 0.05)
HOUR_SHARE = tuple(1.0 + 0.55 * np.cos(2 * np.pi * (h - 20) / 24) for h in range(24))

N_APPS = 3000
N_SITES = 1500
N_SITE_DOMAINS = 1100
N_PUBLISHERS = 700
N_ADVERTISERS = 80
N_CAMPAIGNS = 400
MAX_CREATIVES = 6
APP_SHARE_OF_TRAFFIC = 0.8  # in-app vs mobile web requests
LATENT_K = 4


def zipf(n: int, s: float) -> FloatArray:
    """Zipf-like popularity of n items ranked 1..n."""
    p: FloatArray = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    out: FloatArray = p / p.sum()
    return out


def normalized(weights: object) -> FloatArray:
    p: FloatArray = np.asarray(weights, dtype=np.float64)
    out: FloatArray = p / p.sum(axis=-1, keepdims=True)
    return out


def _hex_ids(rng: np.random.Generator, n: int, prefix: str) -> list[str]:
    ids: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        v = f"{prefix}{int(rng.integers(0, 2**32)):08x}"
        if v not in ids:
            ids.add(v)
            out.append(v)
    return out


@dataclass(frozen=True)
class Inventory:
    """Apps and sites, the supply side; `category` indexes CATEGORIES."""

    app_ids: list[str]
    app_category: IntArray
    app_publisher: IntArray
    app_popularity: FloatArray
    app_popularity_shifted: FloatArray
    site_ids: list[str]
    site_domain: IntArray
    site_domains: list[str]
    site_category: IntArray
    site_publisher: IntArray
    site_popularity: FloatArray
    publishers: list[str]


@dataclass(frozen=True)
class Devices:
    """Device models per (make, device type); `model_make` and `model_type` index MAKES/TYPES."""

    makes: list[str]  # flattened over both OSes
    make_os: IntArray
    models: list[str]
    model_make: IntArray
    model_type: IntArray
    # (make x device type) -> probabilities over all models (zero outside that group)
    model_given_make_type: FloatArray


@dataclass(frozen=True)
class Geography:
    regions: list[str]
    region_country: IntArray
    region_given_country: FloatArray
    carriers: list[str]
    carrier_given_country: FloatArray
    languages: list[str]
    language_given_country: FloatArray


@dataclass(frozen=True)
class Demand:
    """Advertisers, campaigns and their creatives, the candidate side."""

    advertisers: list[str]
    advertiser_category: IntArray  # indexes AD_CATEGORIES
    landing_domains: list[str]
    campaigns: list[str]
    campaign_advertiser: IntArray
    campaign_landing: IntArray
    campaign_base_bid: FloatArray
    campaign_popularity: FloatArray
    creatives: list[str]
    creative_format: IntArray
    creative_size: IntArray  # indexes AD_SIZES
    # (campaign, slot size) -> the campaign's creative of that size, or -1 when it has none
    creative_for_size: IntArray
    campaign_creatives: IntArray  # (campaign, MAX_CREATIVES), padded by repeating
    campaign_n_creatives: IntArray


@dataclass(frozen=True)
class Planted:
    """The planted model: per-value linear weights and latent vectors per interacting pair.

    Every table has one extra trailing row of zeros, the weight of a value the world does not
    know (see `datagen_planted`).
    """

    ctr_bias: float
    cvr_bias: float
    ctr_linear: dict[str, FloatArray]
    cvr_linear: dict[str, FloatArray]
    # (context field, candidate field) -> (latent table of the context field, of the candidate)
    ctr_pairs: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = field(default_factory=dict)
    cvr_pairs: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = field(default_factory=dict)


@dataclass(frozen=True)
class World:
    inventory: Inventory
    devices: Devices
    geography: Geography
    demand: Demand
    planted: Planted
    vocab: dict[str, list[str]]  # field -> values, the index space of every planted table


def _inventory(rng: np.random.Generator) -> Inventory:
    cat_p = normalized(CATEGORY_SHARE)
    app_category = rng.choice(len(CATEGORIES), N_APPS, p=cat_p)
    publishers = _hex_ids(rng, N_PUBLISHERS, "pub-")
    pub_p = zipf(N_PUBLISHERS, 0.9)
    app_ids = [f"com.{CATEGORIES[c]}.app{i:04d}" for i, c in enumerate(app_category)]
    popularity = zipf(N_APPS, 1.1)
    # The shift re-ranks apps (fresh apps become hot) and games grow: both move app_id,
    # app_category and publisher_id, and nothing else.
    shifted = popularity[rng.permutation(N_APPS)] * np.where(
        app_category == CATEGORIES.index("games"), 3.0, 1.0
    )
    site_domains = [f"site{i:04d}.example" for i in range(N_SITE_DOMAINS)]
    return Inventory(
        app_ids=app_ids,
        app_category=app_category.astype(np.int64),
        app_publisher=rng.choice(N_PUBLISHERS, N_APPS, p=pub_p).astype(np.int64),
        app_popularity=popularity,
        app_popularity_shifted=shifted / shifted.sum(),
        site_ids=_hex_ids(rng, N_SITES, ""),
        site_domain=rng.choice(N_SITE_DOMAINS, N_SITES, p=zipf(N_SITE_DOMAINS, 0.7)).astype(
            np.int64
        ),
        site_domains=site_domains,
        site_category=rng.choice(len(CATEGORIES), N_SITES, p=cat_p).astype(np.int64),
        site_publisher=rng.choice(N_PUBLISHERS, N_SITES, p=pub_p).astype(np.int64),
        site_popularity=zipf(N_SITES, 1.0),
        publishers=publishers,
    )


def _devices(rng: np.random.Generator) -> Devices:
    makes = [m for group in MAKES for m in group]
    make_os = np.array([o for o, group in enumerate(MAKES) for _ in group], dtype=np.int64)
    models: list[str] = []
    model_make: list[int] = []
    model_type: list[int] = []
    for m, make in enumerate(makes):
        for t, dtype in enumerate(DEVICE_TYPES):
            count = int(rng.integers(3, 12)) if dtype == "phone" else int(rng.integers(1, 4))
            for j in range(count):
                models.append(f"{make}-{dtype}-{j + 1}")
                model_make.append(m)
                model_type.append(t)
    mm = np.array(model_make, dtype=np.int64)
    mt = np.array(model_type, dtype=np.int64)
    table = np.zeros((len(makes) * len(DEVICE_TYPES), len(models)))
    for m in range(len(makes)):
        for t in range(len(DEVICE_TYPES)):
            idx = np.flatnonzero((mm == m) & (mt == t))
            table[m * len(DEVICE_TYPES) + t, idx] = zipf(len(idx), 1.0)
    return Devices(makes, make_os, models, mm, mt, table)


def _geography(rng: np.random.Generator) -> Geography:
    regions: list[str] = []
    region_country: list[int] = []
    carriers: list[str] = []
    carrier_country: list[int] = []
    for c, code in enumerate(COUNTRIES):
        for r in range(int(rng.integers(3, 9))):
            regions.append(f"{code}-R{r + 1}")
            region_country.append(c)
        for k in range(int(rng.integers(2, 5))):
            carriers.append(f"{code.lower()}-carrier-{k + 1}")
            carrier_country.append(c)
    languages = sorted(set(COUNTRY_LANGUAGE))
    rc = np.array(region_country, dtype=np.int64)
    cc = np.array(carrier_country, dtype=np.int64)
    n = len(COUNTRIES)
    region_p = np.zeros((n, len(regions)))
    carrier_p = np.zeros((n, len(carriers)))
    language_p = np.zeros((n, len(languages)))
    for c in range(n):
        idx = np.flatnonzero(rc == c)
        region_p[c, idx] = zipf(len(idx), 0.8)
        idx = np.flatnonzero(cc == c)
        carrier_p[c, idx] = zipf(len(idx), 0.6)
        language_p[c, languages.index(COUNTRY_LANGUAGE[c])] += 0.85
        language_p[c, languages.index("en")] += 0.15
    return Geography(regions, rc, region_p, carriers, carrier_p, languages, language_p)


def _demand(rng: np.random.Generator) -> Demand:
    advertisers = [f"adv-{i:03d}" for i in range(N_ADVERTISERS)]
    adv_category = rng.integers(0, len(AD_CATEGORIES), N_ADVERTISERS)
    landing_domains = [f"adv{i:03d}-{AD_CATEGORIES[c]}.example" for i, c in enumerate(adv_category)]
    campaign_adv = rng.choice(N_ADVERTISERS, N_CAMPAIGNS, p=zipf(N_ADVERTISERS, 0.8))
    campaigns = [f"cmp-{i:04d}" for i in range(N_CAMPAIGNS)]
    creatives: list[str] = []
    creative_format: list[int] = []
    creative_size: list[int] = []
    for_size = np.full((N_CAMPAIGNS, len(AD_SIZES)), -1, dtype=np.int64)
    per_campaign = np.zeros((N_CAMPAIGNS, MAX_CREATIVES), dtype=np.int64)
    n_creatives = rng.integers(2, MAX_CREATIVES + 1, N_CAMPAIGNS)
    for c in range(N_CAMPAIGNS):
        sizes = rng.choice(len(AD_SIZES), int(n_creatives[c]), replace=False)
        for j, s in enumerate(sizes):
            g = len(creatives)
            creatives.append(f"cr-{c:04d}-{j}")
            creative_format.append(int(rng.choice(len(CREATIVE_FORMATS), p=FORMAT_SHARE)))
            creative_size.append(int(s))
            for_size[c, s] = g
            per_campaign[c, j] = g
        per_campaign[c, int(n_creatives[c]) :] = per_campaign[c, 0]
    popularity = zipf(N_CAMPAIGNS, 0.9)[rng.permutation(N_CAMPAIGNS)]
    return Demand(
        advertisers=advertisers,
        advertiser_category=adv_category.astype(np.int64),
        landing_domains=landing_domains,
        campaigns=campaigns,
        campaign_advertiser=campaign_adv.astype(np.int64),
        campaign_landing=campaign_adv.astype(np.int64),
        campaign_base_bid=np.exp(rng.normal(0.6, 0.5, N_CAMPAIGNS)),
        campaign_popularity=popularity,
        creatives=creatives,
        creative_format=np.array(creative_format, dtype=np.int64),
        creative_size=np.array(creative_size, dtype=np.int64),
        creative_for_size=for_size,
        campaign_creatives=per_campaign,
        campaign_n_creatives=n_creatives.astype(np.int64),
    )


def _table(rng: np.random.Generator, n: int, scale: float) -> FloatArray:
    """n weights plus the zero weight of an unknown value."""
    return np.append(rng.normal(0.0, scale, n), 0.0)


def _latent(rng: np.random.Generator, n: int, pair_std: float) -> FloatArray:
    """Latent vectors whose dot product with another such table has std `pair_std`."""
    a = (pair_std**2 / LATENT_K) ** 0.25
    return np.vstack([rng.normal(0.0, a, (n, LATENT_K)), np.zeros((1, LATENT_K))])


def _planted(rng: np.random.Generator, vocab: dict[str, list[str]]) -> Planted:
    size = {name: len(values) for name, values in vocab.items()}
    ctr_scales = {
        "app_id": 0.35, "site_id": 0.3, "publisher_id": 0.2, "app_category": 0.3,
        "device_os": 0.15, "device_model": 0.15, "device_type": 0.15, "country": 0.2,
        "connection_type": 0.15, "banner_pos": 0.3, "ad_size": 0.35, "user_segment": 0.4,
        "hour": 0.12, "campaign_id": 0.3, "creative_id": 0.25, "advertiser_id": 0.2,
        "ad_category": 0.2, "creative_format": 0.3, "language": 0.05,
    }  # fmt: skip
    ctr_linear = {f: _table(rng, size[f], s) for f, s in ctr_scales.items()}
    # A creative that does not fit the slot gets clicked less; index 1 = mismatch.
    ctr_linear["size_mismatch"] = np.array([0.0, -0.7, 0.0])
    # Interstitials and rewarded formats are clicked more; keep the fixed shape recognisable.
    ctr_linear["ad_size"][AD_SIZES.index("320x480")] += 0.6
    ctr_linear["ad_size"][AD_SIZES.index("320x50")] -= 0.3
    ctr_pairs = {
        ("app_category", "ad_category"): 0.5,
        ("user_segment", "advertiser_id"): 0.45,
        ("device_os", "creative_format"): 0.3,
        ("country", "campaign_id"): 0.3,
        ("app_id", "ad_category"): 0.35,
    }
    cvr_scales = {
        "user_segment": 0.6, "advertiser_id": 0.3, "ad_category": 0.25, "country": 0.2,
        "device_os": 0.15, "campaign_id": 0.2,
    }  # fmt: skip
    cvr_linear = {f: _table(rng, size[f], s) for f, s in cvr_scales.items()}
    # Retargeting: people who nearly bought convert; lookalikes rarely do.
    for segment, boost in (
        ("cart_abandoner_1d", 1.3), ("cart_abandoner_7d", 0.8), ("past_buyer_30d", 0.7),
        ("high_value", 0.9), ("lookalike", -0.8), ("lapsed_90d", -0.4),
    ):  # fmt: skip
        cvr_linear["user_segment"][USER_SEGMENTS.index(segment)] += boost
    cvr_pairs = {("user_segment", "ad_category"): 0.45, ("app_category", "advertiser_id"): 0.3}
    return Planted(
        ctr_bias=-3.27,
        cvr_bias=-2.78,
        ctr_linear=ctr_linear,
        cvr_linear=cvr_linear,
        ctr_pairs={
            (a, b): (_latent(rng, size[a], s), _latent(rng, size[b], s))
            for (a, b), s in ctr_pairs.items()
        },
        cvr_pairs={
            (a, b): (_latent(rng, size[a], s), _latent(rng, size[b], s))
            for (a, b), s in cvr_pairs.items()
        },
    )


@functools.cache
def world() -> World:
    """The world, built once per process (a few milliseconds)."""
    rng = np.random.default_rng(WORLD_SEED)
    inventory = _inventory(rng)
    devices = _devices(rng)
    geography = _geography(rng)
    demand = _demand(rng)
    vocab: dict[str, list[str]] = {
        "app_id": inventory.app_ids,
        "site_id": inventory.site_ids,
        "publisher_id": inventory.publishers,
        "app_category": list(CATEGORIES),
        "device_os": list(DEVICE_OS),
        "device_model": devices.models,
        "device_type": list(DEVICE_TYPES),
        "country": list(COUNTRIES),
        "connection_type": list(CONNECTION_TYPES),
        "banner_pos": [str(p) for p in BANNER_POS],
        "ad_size": list(AD_SIZES),
        "user_segment": list(USER_SEGMENTS),
        "language": geography.languages,
        "hour": [str(h) for h in range(24)],
        "campaign_id": demand.campaigns,
        "creative_id": demand.creatives,
        "advertiser_id": demand.advertisers,
        "ad_category": list(AD_CATEGORIES),
        "creative_format": list(CREATIVE_FORMATS),
        "size_mismatch": ["0", "1"],
    }
    return World(inventory, devices, geography, demand, _planted(rng, vocab), vocab)
