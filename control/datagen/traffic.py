"""Sampling one day of bid traffic from the world, as value indices (vectorised numpy).

Every column is drawn as an integer index into its vocabulary; `control.datagen` turns
indices into Arrow columns. Index `len(values)` of a vocabulary means "not applicable"
(an app request has no site, a web request no app) and is written as "".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from control.datagen import world as w
from control.datagen.world import FloatArray, IntArray

# Floor multiplier per slot size (AD_SIZES order): big and video slots cost more.
_SIZE_FLOOR = np.array([0.6, 1.3, 2.2, 1.0, 2.4, 1.8, 3.0])
_TIER_FLOOR = np.array([2.0, 0.9, 0.35])


@dataclass
class Traffic:
    """One day's rows: `ctx` arrays have one entry per request, `cand` one per row."""

    ts: IntArray
    ctx: dict[str, IntArray]
    bid_floor: FloatArray
    request_of_row: IntArray
    slot_of_row: IntArray  # candidate position within its request, 0-based
    cand: dict[str, IntArray]
    bid_price: FloatArray


def choice_given(rng: np.random.Generator, parent: IntArray, table: FloatArray) -> IntArray:
    """Draw one child index per row from `table[parent]` (rows of probabilities), vectorised.

    Row g's CDF is shifted by g so all rows form one increasing sequence; one searchsorted then
    serves every parent at once.
    """
    groups, width = table.shape
    cdf = np.cumsum(table, axis=1)
    cdf /= np.where(cdf[:, -1:] > 0, cdf[:, -1:], 1.0)
    flat = (cdf + np.arange(groups)[:, None]).ravel()
    u = np.minimum(rng.random(len(parent)), 1.0 - 1e-9)
    pos = np.searchsorted(flat, parent + u, side="right") - parent * width
    out: IntArray = np.clip(pos, 0, width - 1).astype(np.int64)
    return out


def _choice(rng: np.random.Generator, p: object, n: int) -> IntArray:
    probs = w.normalized(p)
    return rng.choice(len(probs), n, p=probs).astype(np.int64)


def sample_context(
    rng: np.random.Generator, n: int, day_start: int, *, shifted: bool
) -> tuple[IntArray, dict[str, IntArray], FloatArray]:
    """Timestamps (sorted, diurnal), context value indices and bid floors of n requests."""
    world = w.world()
    inv, dev, geo = world.inventory, world.devices, world.geography
    hour = _choice(rng, w.HOUR_SHARE, n)
    ts = np.sort(day_start + hour * 3600 + rng.integers(0, 3600, n))

    is_app = rng.random(n) < w.APP_SHARE_OF_TRAFFIC
    app = _choice(rng, inv.app_popularity_shifted if shifted else inv.app_popularity, n)
    site = _choice(rng, inv.site_popularity, n)
    ctx: dict[str, IntArray] = {
        "app_id": np.where(is_app, app, w.N_APPS),
        "site_id": np.where(is_app, w.N_SITES, site),
        "site_domain": np.where(is_app, w.N_SITE_DOMAINS, inv.site_domain[site]),
        "app_category": np.where(is_app, inv.app_category[app], inv.site_category[site]),
        "publisher_id": np.where(is_app, inv.app_publisher[app], inv.site_publisher[site]),
    }

    os_ = _choice(rng, w.OS_SHARE_SHIFTED if shifted else w.OS_SHARE, n)
    n_versions = [len(v) for v in w.OS_VERSIONS]
    version_p = np.zeros((len(w.DEVICE_OS), sum(n_versions)))
    version_p[0, : n_versions[0]] = w.normalized(w.OS_VERSION_SHARE[0])
    version_p[1, n_versions[0] :] = w.normalized(w.OS_VERSION_SHARE[1])
    make_p = np.zeros((len(w.DEVICE_OS), len(dev.makes)))
    for o in range(len(w.DEVICE_OS)):
        make_p[o, dev.make_os == o] = w.normalized(w.MAKE_SHARE[o])
    dtype = _choice(rng, w.DEVICE_TYPE_SHARE, n)
    make = choice_given(rng, os_, make_p)
    country = _choice(rng, w.zipf(len(w.COUNTRIES), 1.0), n)
    ad_size = choice_given(rng, dtype, np.array(w.AD_SIZE_SHARE))
    ctx.update(
        device_os=os_,
        device_os_version=choice_given(rng, os_, version_p),
        device_make=make,
        device_model=choice_given(
            rng, make * len(w.DEVICE_TYPES) + dtype, dev.model_given_make_type
        ),
        device_type=dtype,
        country=country,
        region=choice_given(rng, country, geo.region_given_country),
        connection_type=_choice(rng, w.CONNECTION_SHARE, n),
        carrier=choice_given(rng, country, geo.carrier_given_country),
        banner_pos=_choice(rng, w.BANNER_POS_SHARE, n),
        ad_size=ad_size,
        user_segment=_choice(rng, w.SEGMENT_SHARE, n),
        language=choice_given(rng, country, geo.language_given_country),
    )
    tier = np.asarray(w.COUNTRY_TIER)[country]
    floor = _TIER_FLOOR[tier] * _SIZE_FLOOR[ad_size] * np.exp(rng.normal(0.0, 0.35, n))
    return ts, ctx, np.maximum(np.round(floor, 2), 0.01)


def sample_candidates(
    rng: np.random.Generator, n_requests: int, k: int, bid_floor: FloatArray, ad_size: IntArray
) -> tuple[dict[str, IntArray], FloatArray]:
    """k candidates per request (campaign, creative, advertiser...) and their bid prices."""
    demand = w.world().demand
    rows = n_requests * k
    request = np.repeat(np.arange(n_requests), k)
    campaign = _choice(rng, demand.campaign_popularity, rows)
    slot = ad_size[request]
    fitted = demand.creative_for_size[campaign, slot]
    any_creative = demand.campaign_creatives[
        campaign, rng.integers(0, demand.campaign_n_creatives[campaign])
    ]
    # Most of the time the ad server picks the campaign's creative that fits the slot.
    creative = np.where((fitted >= 0) & (rng.random(rows) < 0.9), fitted, any_creative)
    advertiser = demand.campaign_advertiser[campaign]
    cand = {
        "campaign_id": campaign,
        "creative_id": creative,
        "advertiser_id": advertiser,
        "ad_category": demand.advertiser_category[advertiser],
        "creative_format": demand.creative_format[creative],
        "creative_size": demand.creative_size[creative],
        "landing_domain": demand.campaign_landing[campaign],
    }
    price = demand.campaign_base_bid[campaign] * np.exp(rng.normal(0.0, 0.25, rows))
    price = np.maximum(price, bid_floor[request] * 1.05)
    return cand, np.round(price, 2)


def sample_day(
    rng: np.random.Generator, rows: int, k: int, day_start: int, *, shifted: bool
) -> Traffic:
    """`rows` rows: ceil(rows / k) requests of k candidates, the last one cut short."""
    n_requests = -(-rows // k)
    ts, ctx, floor = sample_context(rng, n_requests, day_start, shifted=shifted)
    cand, price = sample_candidates(rng, n_requests, k, floor, ctx["ad_size"])
    request = np.repeat(np.arange(n_requests), k)[:rows]
    slot = np.tile(np.arange(k), n_requests)[:rows]
    return Traffic(
        ts=ts,
        ctx=ctx,
        bid_floor=floor,
        request_of_row=request,
        slot_of_row=slot,
        cand={name: v[:rows] for name, v in cand.items()},
        bid_price=price[:rows],
    )


def planted_indices(traffic: Traffic) -> dict[str, IntArray]:
    """The planted model's inputs for every row, straight from the sampled indices."""
    r = traffic.request_of_row
    idx = {name: v[r] for name, v in traffic.ctx.items()}
    idx.update(traffic.cand)
    idx["hour"] = (traffic.ts[r] // 3600) % 24
    idx["size_mismatch"] = (idx["ad_size"] != idx["creative_size"]).astype(np.int64)
    return idx
