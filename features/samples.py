"""Schemas and specs for the raw Avazu and Criteo layouts of the shared sample data.

The samples (`../shared/data/`, or `$BIDSCORE_SAMPLES`) are small real click logs: fixtures
that prove the readers and the tokenizer handle real layouts, gaps and quirks. They are too
small to rank models; the generator (`control.datagen`) is for learning and speed.

```python
table = read_logs(sample_path("avazu"), schema=AvazuLog, required_labels=["click"])
dataset = tokenize_table(table, AVAZU_SPEC, label="click")
```
"""

from __future__ import annotations

import os
from pathlib import Path

from features.schema import FeatureSchema, candidate, context
from features.spec import ModelSpec
from features.transforms import Cross, LogBucket

SAMPLES_ENV = "BIDSCORE_SAMPLES"
_FILES = {
    "avazu": "avazu-sample/avazu_sample.csv",
    "criteo": "criteo-sample/criteo_sample.csv",
    "libffm_train": "criteo-libffm-sample/small_train.txt",
    "libffm_test": "criteo-libffm-sample/small_test.txt",
}


def samples_dir() -> Path:
    """`$BIDSCORE_SAMPLES`, else `shared/data` beside the repository."""
    env = os.environ.get(SAMPLES_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def sample_path(name: str) -> Path:
    """Path of a sample: `avazu`, `criteo`, `libffm_train` or `libffm_test`."""
    if name not in _FILES:
        raise KeyError(f"unknown sample {name!r}; known: {', '.join(_FILES)}")
    return samples_dir() / _FILES[name]


class AvazuLog(FeatureSchema):
    """Raw Avazu CTR log: `hour` is YYMMDDHH; C1 and C14..C21 are anonymised categoricals,
    C14..C21 describe the ad (so they are the candidate side)."""

    hour: int = context(default=None)  # YYMMDDHH, required: every Avazu row has it
    C1: str = context(default="")
    banner_pos: int = context(default=0)
    site_id: str = context(default="")
    site_domain: str = context(default="")
    site_category: str = context(default="")
    app_id: str = context(default="")
    app_domain: str = context(default="")
    app_category: str = context(default="")
    device_id: str = context(default="")
    device_ip: str = context(default="")
    device_model: str = context(default="")
    device_type: str = context(default="")
    device_conn_type: str = context(default="")
    C14: str = candidate(default="")
    C15: str = candidate(default="")
    C16: str = candidate(default="")
    C17: str = candidate(default="")
    C18: str = candidate(default="")
    C19: str = candidate(default="")
    C20: str = candidate(default="")
    C21: str = candidate(default="")

    site_ad = Cross("site_category", "C17")
    app_ad = Cross("app_category", "C17")

    @property
    def hour_of_day(self) -> int:
        """Avazu stores the hour as YYMMDDHH, not unix seconds: the last two digits."""
        return self.hour % 100


class CriteoLog(FeatureSchema):
    """Raw Criteo display-ads log: `label`, 13 counts I1..I13 (floats in the sample, gaps
    allowed: missing is 0) and 26 hashed categoricals C1..C26 (gaps allowed: missing is "")."""

    I1: float = context(default=0.0)
    I2: float = context(default=0.0)
    I3: float = context(default=0.0)
    I4: float = context(default=0.0)
    I5: float = context(default=0.0)
    I6: float = context(default=0.0)
    I7: float = context(default=0.0)
    I8: float = context(default=0.0)
    I9: float = context(default=0.0)
    I10: float = context(default=0.0)
    I11: float = context(default=0.0)
    I12: float = context(default=0.0)
    I13: float = context(default=0.0)
    C1: str = context(default="")
    C2: str = context(default="")
    C3: str = context(default="")
    C4: str = context(default="")
    C5: str = context(default="")
    C6: str = context(default="")
    C7: str = context(default="")
    C8: str = context(default="")
    C9: str = context(default="")
    C10: str = context(default="")
    C11: str = context(default="")
    C12: str = context(default="")
    C13: str = context(default="")
    C14: str = context(default="")
    C15: str = context(default="")
    C16: str = context(default="")
    C17: str = context(default="")
    C18: str = context(default="")
    C19: str = context(default="")
    C20: str = context(default="")
    C21: str = context(default="")
    C22: str = context(default="")
    C23: str = context(default="")
    C24: str = context(default="")
    C25: str = context(default="")
    C26: str = context(default="")

    # Counts are heavy-tailed: log buckets, as the Criteo competition winners did.
    I1_log = LogBucket("I1")
    I2_log = LogBucket("I2")
    I3_log = LogBucket("I3")
    I4_log = LogBucket("I4")
    I5_log = LogBucket("I5")
    I6_log = LogBucket("I6")
    I7_log = LogBucket("I7")
    I8_log = LogBucket("I8")
    I9_log = LogBucket("I9")
    I10_log = LogBucket("I10")
    I11_log = LogBucket("I11")
    I12_log = LogBucket("I12")
    I13_log = LogBucket("I13")


AVAZU_LABEL = "click"
CRITEO_LABEL = "label"

AVAZU_SPEC = ModelSpec(
    "avazu_ctr",
    AvazuLog,
    [
        "hour_of_day", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
        "app_domain", "app_category", "device_model", "device_type", "device_conn_type",
        "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21", "site_ad", "app_ad",
    ],
    bits=18,
    seed=7,
)  # fmt: skip

CRITEO_SPEC = ModelSpec(
    "criteo_ctr",
    CriteoLog,
    [*(f"I{i}_log" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))],
    bits=18,
    seed=7,
)
