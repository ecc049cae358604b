"""A realistic data generator: labelled bid logs of an app-retargeting DSP.

One row per shown ad candidate; K candidates of a request share its context and request_id.

Context (once per request): `ts` (UTC seconds, spread over the day by a diurnal curve peaking
around 20:00, sorted), in-app (80%) or mobile-web inventory (`app_id` or `site_id` and
`site_domain`, the other side ""), with Zipf-like popularity, its `app_category` (the
inventory's category, also for sites) and `publisher_id`; `device_os` / `_os_version` /
`_make` / `_model` / `device_type`; `country` with `region`, `carrier` and `language`;
`connection_type`, `banner_pos`, `ad_size` (depends on the device type), a retargeting
`user_segment`, and a `bid_floor` (CPM; by country tier and slot size). Each request also
carries `user_id` (one of `N_USERS` simulated users, stable across requests and days): not a
model feature, a key for experiments (request payloads send it in the context).
Candidate (once per row): `campaign_id`, `creative_id` (usually the campaign's creative that
fits the slot), `advertiser_id`, `ad_category`, `creative_format`, `creative_size`,
`landing_domain`, `bid_price` (>= 1.05 x floor).
Labels: `click` from the planted model of `control.datagen.planted` (linear terms plus
context x candidate latent interactions; CTR about 3%); `conversion` given a click (about 7%).

Options:
- `days`: `rows` is per day; day d is drawn from (seed, d) alone, so the first days of a
  longer run are the same bytes as a shorter run's.
- `downsample_negatives=r`: keep each negative (click = 0) with probability r; a `weight`
  column holds 1/r for kept negatives and 1 for positives; the Parquet key-value metadata
  `bidscore.downsample_rate` holds r. The kept rows are a subset of the rows without it.
- `shift_from_day=d`: from day index d on, the distributions of `SHIFTED_FEATURES` change: the
  device OS mix moves from 70/30 to 40/60 Android/iOS (and with it OS version, make and model),
  and app popularity is re-ranked with games apps boosted (app_id, app_category, publisher_id).
  Every other feature keeps its distribution, and P(click | features) does not change
  (covariate shift). `ts` only moves with the day.
- `shrink_from_day=d`, `shrink_factor=f`: from day index d on, each day has round(rows * f)
  rows (a lost supply source, for monitoring drills).

Deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from control.datagen import world as w
from control.datagen.planted import ctr_logit, cvr_logit, planted_ctr, planted_cvr, sigmoid
from control.datagen.traffic import Traffic, planted_indices, sample_day
from features.readers.cast import DOWNSAMPLE_RATE_KEY, WEIGHT_COLUMN
from features.transforms import value_text

__all__ = [
    "CANDIDATE_COLUMNS",
    "CONTEXT_COLUMNS",
    "DOWNSAMPLE_RATE_KEY",
    "N_USERS",
    "SHIFTED_FEATURES",
    "USER_ID_COLUMN",
    "DatagenSummary",
    "generate",
    "planted_ctr",
    "planted_cvr",
    "request_payloads",
    "write_dataset",
]

CONTEXT_COLUMNS = (
    "ts", "app_id", "app_category", "site_id", "site_domain", "publisher_id", "device_os",
    "device_os_version", "device_make", "device_model", "device_type", "country", "region",
    "connection_type", "carrier", "banner_pos", "ad_size", "user_segment", "language",
    "bid_floor",
)  # fmt: skip
CANDIDATE_COLUMNS = (
    "campaign_id", "creative_id", "advertiser_id", "ad_category", "creative_format",
    "creative_size", "landing_domain", "bid_price",
)  # fmt: skip
SHIFTED_FEATURES = (
    "device_os", "device_os_version", "device_make", "device_model",
    "app_id", "app_category", "publisher_id",
)  # fmt: skip
# A stable id of the simulated user behind each request, sent in the request context (never a
# model feature: the schema does not define it, so training and scoring ignore it). Experiments,
# demos and tests key on it (`control experiment start ... --key user_id`).
USER_ID_COLUMN = "user_id"
N_USERS = 50_000
GENERATOR_KEY = b"bidscore.datagen"
MAX_SEED = 2**63 - 1

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass
class DatagenSummary:
    """What `write_dataset` wrote."""

    files: list[Path] = field(default_factory=list)
    rows: int = 0
    clicks: int = 0
    conversions: int = 0

    @property
    def ctr(self) -> float:
        return self.clicks / self.rows if self.rows else 0.0

    @property
    def cvr(self) -> float:
        return self.conversions / self.clicks if self.clicks else 0.0


def _vocabularies() -> dict[str, pa.Array]:
    world = w.world()
    inv, dev, geo, dem = world.inventory, world.devices, world.geography, world.demand

    def strings(values: list[str] | tuple[str, ...], na: bool = False) -> pa.Array:
        return pa.array([*values, ""] if na else list(values), pa.string())

    return {
        "app_id": strings(inv.app_ids, na=True),
        "site_id": strings(inv.site_ids, na=True),
        "site_domain": strings(inv.site_domains, na=True),
        "app_category": strings(w.CATEGORIES),
        "publisher_id": strings(inv.publishers),
        "device_os": strings(w.DEVICE_OS),
        "device_os_version": strings([v for vs in w.OS_VERSIONS for v in vs]),
        "device_make": strings(dev.makes),
        "device_model": strings(dev.models),
        "device_type": strings(w.DEVICE_TYPES),
        "country": strings(w.COUNTRIES),
        "region": strings(geo.regions),
        "connection_type": strings(w.CONNECTION_TYPES),
        "carrier": strings(geo.carriers),
        "banner_pos": pa.array(w.BANNER_POS, pa.int64()),
        "ad_size": strings(w.AD_SIZES),
        "user_segment": strings(w.USER_SEGMENTS),
        "language": strings(geo.languages),
        "campaign_id": strings(dem.campaigns),
        "creative_id": strings(dem.creatives),
        "advertiser_id": strings(dem.advertisers),
        "ad_category": strings(w.AD_CATEGORIES),
        "creative_format": strings(w.CREATIVE_FORMATS),
        "creative_size": strings(w.AD_SIZES),
        "landing_domain": strings(dem.landing_domains),
    }


def _hex_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """n random 32-hex-digit ids, built as one Arrow buffer (no Python string per row)."""
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 15]
    offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(digits.tobytes()))


@functools.cache
def _user_ids() -> pa.Array:
    return pa.array([f"user-{i:05d}" for i in range(N_USERS)], pa.string())


def _seed_sequence(seed: int, day: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, day])


def _day_table(
    rows: int,
    seed: int,
    day: int,
    day_start: int,
    *,
    candidates: int,
    shifted: bool,
    downsample: float | None,
) -> pa.Table:
    # Separate streams: labels and downsampling do not disturb the features, so a downsampled
    # run keeps a subset of the rows of the same run without it.
    # A fifth stream for the user ids: the first four children are those of spawn(4), so
    # every other column is what it was before user ids existed.
    traffic_ss, label_ss, keep_ss, id_ss, user_ss = _seed_sequence(seed, day).spawn(5)
    traffic = sample_day(
        np.random.default_rng(traffic_ss), rows, candidates, day_start, shifted=shifted
    )
    label_rng = np.random.default_rng(label_ss)
    idx = planted_indices(traffic)
    click = label_rng.random(rows) < sigmoid(ctr_logit(idx))
    conversion = click & (label_rng.random(rows) < sigmoid(cvr_logit(idx)))
    table = _to_table(traffic, np.random.default_rng(id_ss), click, conversion)
    users = np.random.default_rng(user_ss).integers(0, N_USERS, len(traffic.ts))
    table = table.append_column(
        USER_ID_COLUMN, pc.take(_user_ids(), pa.array(users[traffic.request_of_row]))
    )
    if downsample is None:
        return table
    keep = click | (np.random.default_rng(keep_ss).random(rows) < downsample)
    weight = np.where(click, 1.0, 1.0 / downsample)[keep]
    table = table.filter(pa.array(keep)).append_column(
        WEIGHT_COLUMN, pa.array(weight, pa.float64())
    )
    return table


def _to_table(
    traffic: Traffic, rng: np.random.Generator, click: np.ndarray, conversion: np.ndarray
) -> pa.Table:
    vocab = _vocabularies()
    r = pa.array(traffic.request_of_row)
    request_ids = pc.take(_hex_ids(rng, len(traffic.ts)), r)
    slot = pc.cast(pa.array(traffic.slot_of_row), pa.string())
    columns: dict[str, pa.Array] = {
        "request_id": request_ids,
        "candidate_id": pc.binary_join_element_wise(request_ids, slot, "-"),
    }
    for name in CONTEXT_COLUMNS:
        if name == "ts":
            columns[name] = pa.array(traffic.ts[traffic.request_of_row], pa.int64())
        elif name == "bid_floor":
            columns[name] = pa.array(traffic.bid_floor[traffic.request_of_row], pa.float64())
        else:
            columns[name] = pc.take(vocab[name], pc.take(pa.array(traffic.ctx[name]), r))
    for name in CANDIDATE_COLUMNS:
        if name == "bid_price":
            columns[name] = pa.array(traffic.bid_price, pa.float64())
        else:
            columns[name] = pc.take(vocab[name], pa.array(traffic.cand[name]))
    columns["click"] = pa.array(click.astype(np.int64))
    columns["conversion"] = pa.array(conversion.astype(np.int64))
    return pa.table(columns)


def _check(
    *,
    rows: int,
    seed: int,
    candidates: int,
    days: int | None,
    downsample_negatives: float | None,
    shrink_factor: float,
) -> None:
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in 0..2**63-1, got {seed}")
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    if days is not None and days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if downsample_negatives is not None and not 0 < downsample_negatives <= 1:
        raise ValueError(f"downsample rate must be in (0, 1], got {downsample_negatives}")
    if not 0 < shrink_factor <= 1:
        raise ValueError(f"shrink factor must be in (0, 1], got {shrink_factor}")


def _start_ts(start: str | dt.date) -> tuple[dt.date, int]:
    try:
        day = start if isinstance(start, dt.date) else dt.date.fromisoformat(start)
    except ValueError:
        raise ValueError(f"start must be a date YYYY-MM-DD, got {start!r}") from None
    return day, int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


class DayOptions(TypedDict, total=False):
    """The options of `generate` and `write_dataset` (see the module docstring); their
    defaults are `_days`'s. Declared once so that both entry points take the same options and
    a new one is added in one place."""

    candidates: int
    days: int | None
    start: str | dt.date
    downsample_negatives: float | None
    shift_from_day: int | None
    shrink_from_day: int | None
    shrink_factor: float


def _days(
    rows: int,
    seed: int,
    *,
    candidates: int = 1,
    days: int | None = None,
    start: str | dt.date = "2026-11-01",
    downsample_negatives: float | None = None,
    shift_from_day: int | None = None,
    shrink_from_day: int | None = None,
    shrink_factor: float = 0.5,
) -> list[tuple[dt.date, Callable[[], pa.Table]]]:
    """(date, thunk) per day, so writers can stream days without holding them all."""
    _check(
        rows=rows,
        seed=seed,
        candidates=candidates,
        days=days,
        downsample_negatives=downsample_negatives,
        shrink_factor=shrink_factor,
    )
    first, start_ts = _start_ts(start)
    plan: list[tuple[dt.date, Callable[[], pa.Table]]] = []
    for d in range(days or 1):
        day_rows = rows
        if shrink_from_day is not None and d >= shrink_from_day:
            day_rows = max(1, round(rows * shrink_factor))
        shifted = shift_from_day is not None and d >= shift_from_day

        def make(d: int = d, day_rows: int = day_rows, shifted: bool = shifted) -> pa.Table:
            table = _day_table(
                day_rows,
                seed,
                d,
                start_ts + d * 86400,
                candidates=candidates,
                shifted=shifted,
                downsample=downsample_negatives,
            )
            generator = {"seed": seed, "day": d, "shifted": shifted}
            return table.replace_schema_metadata(_metadata(generator, downsample_negatives))

        plan.append((first + dt.timedelta(days=d), make))
    return plan


def _metadata(generator: dict[str, Any], downsample_negatives: float | None) -> dict[bytes, str]:
    """Parquet key-value metadata saying how a table was generated, the same for one day and
    for several concatenated; `features.readers.downsample_rate` reads the rate back."""
    meta = {GENERATOR_KEY: json.dumps(generator)}
    if downsample_negatives is not None:
        meta[DOWNSAMPLE_RATE_KEY] = repr(float(downsample_negatives))
    return meta


def generate(rows: int, seed: int, **options: Unpack[DayOptions]) -> pa.Table:
    """Labelled bid logs in memory (all days concatenated); see the module docstring."""
    tables = [make() for _, make in _days(rows, seed, **options)]
    if len(tables) == 1:
        return tables[0]
    generator = {"seed": seed, "days": len(tables)}
    meta = _metadata(generator, options.get("downsample_negatives"))
    return pa.concat_tables(tables).replace_schema_metadata(meta)


def _write_file(table: pa.Table, path: Path) -> None:
    """Write by extension, atomically: readers of a partition never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        pq.write_table(table, tmp, compression="zstd", row_group_size=256 * 1024)
    elif suffix == ".csv":
        pacsv.write_csv(table, tmp)
    elif suffix in (".jsonl", ".ndjson"):
        with tmp.open("w", encoding="utf-8") as out:
            for batch in table.to_batches(64 * 1024):
                for record in batch.to_pylist():
                    out.write(json.dumps(record, separators=(",", ":")) + "\n")
    else:
        raise ValueError(f"{path}: output must end in .parquet, .csv or .jsonl")
    os.replace(tmp, path)


def write_dataset(
    out: str | Path,
    rows: int,
    seed: int,
    *,
    progress: Callable[[int, int], None] | None = None,
    **options: Unpack[DayOptions],
) -> DatagenSummary:
    """Write the logs: with `days`, `out` is a directory of `dt=YYYY-MM-DD/part-0.parquet`
    (one day in memory at a time); without, one file (.parquet, .csv or .jsonl).

    `progress(done, total)` is called after each day.
    """
    out = Path(out)
    days = options.get("days")
    if days is None and out.suffix.lower() not in (".parquet", ".pq", ".csv", ".jsonl", ".ndjson"):
        raise ValueError(f"{out}: output must end in .parquet, .csv or .jsonl (or pass days)")
    plan = _days(rows, seed, **options)
    summary = DatagenSummary()
    for i, (date, make) in enumerate(plan):
        table = make()
        path = out / f"dt={date.isoformat()}" / "part-0.parquet" if days is not None else out
        _write_file(table, path)
        summary.files.append(path)
        summary.rows += table.num_rows
        summary.clicks += int(pc.sum(table["click"]).as_py() or 0)
        summary.conversions += int(pc.sum(table["conversion"]).as_py() or 0)
        if progress is not None:
            progress(i + 1, len(plan))
    return summary


def request_payloads(n: int, seed: int, candidates: int = 10) -> list[dict[str, Any]]:
    """n scoring requests for load tests, in the wire format (every value a string):
    `{"request_id", "context": {feature: text}, "candidates": [{"id", "features": {...}}]}`."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    table = generate(n * candidates, seed, candidates=candidates)
    cols = {name: table[name].to_pylist() for name in table.column_names}
    payloads: list[dict[str, Any]] = []
    for r in range(n):
        first = r * candidates
        context = {name: value_text(cols[name][first]) for name in CONTEXT_COLUMNS}
        context[USER_ID_COLUMN] = cols[USER_ID_COLUMN][first]
        payloads.append(
            {
                "request_id": cols["request_id"][first],
                "context": context,
                "candidates": [
                    {
                        "id": cols["candidate_id"][i],
                        "features": {name: value_text(cols[name][i]) for name in CANDIDATE_COLUMNS},
                    }
                    for i in range(first, first + candidates)
                ],
            }
        )
    return payloads
