"""Every feature written once in Python, executed identically for training and serving.

A `FeatureSchema` declares typed raw inputs and derived features; a `ModelSpec` names the
features that become a model's fields. `features.tokenize` runs them through `rust_core`.
"""

from features.errors import FeatureError
from features.schema import FeatureSchema, candidate, context
from features.spec import Field, ModelSpec, Target, categorical, numeric
from features.transforms import Bucketize, Clip, Cross, DayOfWeek, HourOfDay, LogBucket, Lower

__all__ = [
    "Bucketize",
    "Clip",
    "Cross",
    "DayOfWeek",
    "FeatureError",
    "FeatureSchema",
    "Field",
    "HourOfDay",
    "LogBucket",
    "Lower",
    "ModelSpec",
    "Target",
    "candidate",
    "categorical",
    "context",
    "numeric",
]
