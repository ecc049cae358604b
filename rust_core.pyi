"""Type stub for the `rust_core` extension module (checked by `mypy.stubtest`)."""

from collections.abc import Callable
from os import PathLike
from typing import TypeAlias, final

import numpy as np
import numpy.typing as npt

# --- hashing ---------------------------------------------------------------------------

def hash_tokens(tokens: list[str], *, seed: int, bits: int) -> npt.NDArray[np.uint32]: ...

# --- FFM kernel dispatch ------------------------------------------------------------------

# Kernel names: "scalar" (reference), "legacy" (the version-1 kernels: unpadded, exact
# AdaGrad), "sse", "avx2", "avx512". BIDSCORE_KERNEL=<name> forces one for the process.
# {"kernel": "avx2", "chosen_by": "auto" | "BIDSCORE_KERNEL=...", "available": [...],
#  "features": {"sse2": True, "avx": True, "avx2": True, "fma": True, "avx512f": False}}
def cpu_features() -> dict[str, object]: ...

# --- errors ----------------------------------------------------------------------------

class ModelFormatError(ValueError): ...
class DataError(ValueError): ...

# --- data ------------------------------------------------------------------------------

@final
class Dataset:
    @staticmethod
    def from_libffm(path: str | PathLike[str]) -> Dataset: ...
    @staticmethod
    def from_csr(
        indptr: npt.NDArray[np.uint64] | npt.NDArray[np.int64],
        fields: npt.NDArray[np.uint32] | npt.NDArray[np.int32],
        indices: npt.NDArray[np.uint32] | npt.NDArray[np.int32],
        values: npt.NDArray[np.float32],
        labels: npt.NDArray[np.float32],
        weights: npt.NDArray[np.float32] | None = None,
    ) -> Dataset: ...
    @property
    def num_rows(self) -> int: ...
    @property
    def num_fields(self) -> int: ...
    @property
    def num_features(self) -> int: ...
    @property
    def nnz(self) -> int: ...
    @property
    def labels(self) -> npt.NDArray[np.float32]: ...
    @property
    def weights(self) -> npt.NDArray[np.float32] | None: ...
    def __len__(self) -> int: ...

# Training rows in CSR shards on disk (docs/scale.md, "Shard format"): a shard root with
# shards.json, or a list of shard directories. train_ffm/train_lr stream them, a background
# thread reading up to `prefetch` shards ahead (at most prefetch + 2 shards in memory).
@final
class ShardedDataset:
    def __new__(
        cls, source: str | PathLike[str] | list[str | PathLike[str]], *, prefetch: int = 2
    ) -> ShardedDataset: ...
    @property
    def num_rows(self) -> int: ...
    @property
    def nnz(self) -> int: ...
    @property
    def num_fields(self) -> int: ...
    @property
    def num_features(self) -> int: ...
    @property
    def num_shards(self) -> int: ...
    @property
    def label_sum(self) -> float: ...
    @property
    def weight_sum(self) -> float: ...
    @property
    def prefetch(self) -> int: ...
    @property
    def paths(self) -> list[str]: ...
    def __len__(self) -> int: ...

# --- models and training ---------------------------------------------------------------

_Progress: TypeAlias = Callable[[int, float, float | None], object]

@final
class Model:
    def predict(
        self, dataset: Dataset, *, kernel: str | None = None
    ) -> npt.NDArray[np.float32]: ...
    def predict_row(self, fields: list[int], indices: list[int], values: list[float]) -> float: ...
    def save(self, path: str | PathLike[str]) -> None: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def hash_bits(self) -> int: ...
    @property
    def num_fields(self) -> int: ...
    @property
    def k(self) -> int: ...
    @property
    def normalize(self) -> bool: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def downsample_rate(self) -> float: ...
    @property
    def checksum(self) -> str: ...
    @property
    def best_epoch(self) -> int | None: ...
    @property
    def stride(self) -> int: ...
    @property
    def huge_pages(self) -> bool: ...
    @property
    def mapped(self) -> bool: ...

def load_model(path: str | PathLike[str], *, huge_pages: bool = False) -> Model: ...

# train_ffm's / train_lr's keyword defaults (bits=None and fingerprint="" aside), from Rust's
# FfmParams::default() / LrParams::default(): the one source of them.
# ffm_defaults() == {"k": 4, "eta": 0.2, "l2": 2e-05, "normalize": True, "linear": True,
#                    "epochs": 15, "auto_stop": False, "threads": 1, "seed": 0,
#                    "downsample_rate": 1.0, "shuffle": True}
# linear=False: LIBFFM's model, pairwise terms only (the bias and linear weights stay 0).
# lr_defaults() == {"alpha": 0.1, "beta": 1.0, "l1": 0.0, "l2": 0.0, "epochs": 15,
#                   "auto_stop": False, "threads": 1, "seed": 0, "downsample_rate": 1.0,
#                   "shuffle": True}
# shuffle=False trains rows (and shards) in stored order: with threads=1 a ShardedDataset
# then gives the same model, bit for bit, as a Dataset of the concatenated rows.
# init: warm start from that model's weights (optimiser state starts fresh); refused with a
# DataError unless algorithm, hash bits, fields, k, stride, normalize and fingerprint match.
def ffm_defaults() -> dict[str, float | int | bool]: ...
def lr_defaults() -> dict[str, float | int | bool]: ...
def train_ffm(
    train: Dataset | ShardedDataset,
    valid: Dataset | None = None,
    *,
    k: int = 4,
    eta: float = 0.2,
    l2: float = 2e-05,
    epochs: int = 15,
    auto_stop: bool = False,
    normalize: bool = True,
    linear: bool = True,
    threads: int = 1,
    seed: int = 0,
    bits: int | None = None,
    fingerprint: str = "",
    downsample_rate: float = 1.0,
    shuffle: bool = True,
    progress: _Progress | None = None,
    kernel: str | None = None,
    init: Model | None = None,
) -> Model: ...
def train_lr(
    train: Dataset | ShardedDataset,
    valid: Dataset | None = None,
    *,
    alpha: float = 0.1,
    beta: float = 1.0,
    l1: float = 0.0,
    l2: float = 0.0,
    epochs: int = 15,
    auto_stop: bool = False,
    threads: int = 1,
    seed: int = 0,
    bits: int | None = None,
    fingerprint: str = "",
    downsample_rate: float = 1.0,
    shuffle: bool = True,
    progress: _Progress | None = None,
    init: Model | None = None,
) -> Model: ...

# --- features (issue 8) and serving (issue 4) ---------------------------------------------

# ("str", offsets int32|int64 [n+1], data uint8, valid bool[n] | None)
# ("int", values int64 [n], valid | None) or ("float", values float64 [n], valid | None)
_Column = tuple[object, ...]
_PythonValues = dict[str, list[str | None]]

class ScoreError(ValueError):
    code: str  # "INVALID_ARGUMENT" | "NOT_FOUND"
    message: str

@final
class FeaturePlan:
    def __new__(cls, plan_json: str) -> FeaturePlan: ...
    @property
    def models(self) -> list[str]: ...
    def fingerprint(self, model: str) -> str: ...
    def tokenize_columns(
        self,
        columns: dict[str, _Column],
        num_rows: int,
        model: str,
        python_columns: _PythonValues | None = None,
        *,
        labels: npt.NDArray[np.float32] | None = None,
        weights: npt.NDArray[np.float32] | None = None,
    ) -> Dataset: ...
    def tokenize_columns_csr(
        self,
        columns: dict[str, _Column],
        num_rows: int,
        model: str,
        python_columns: _PythonValues | None = None,
    ) -> tuple[
        npt.NDArray[np.uint64],
        npt.NDArray[np.uint32],
        npt.NDArray[np.uint32],
        npt.NDArray[np.float32],
    ]: ...
    def tokenize_wire(
        self, request: bytes, model: str, python_values: _PythonValues | None = None
    ) -> tuple[
        npt.NDArray[np.uint64],
        npt.NDArray[np.uint32],
        npt.NDArray[np.uint32],
        npt.NDArray[np.float32],
    ]: ...
    def tokenize_request(
        self,
        context: dict[str, str],
        candidates: list[dict[str, str]],
        model: str,
        python_values: _PythonValues | None = None,
    ) -> list[tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.float32]]]: ...

# model -> (experiment, mode "ab"|"canary"|"shadow", key, salt, share, (treatment, version) | None)
_Experiments = dict[str, tuple[str, str, str, str, float, tuple[Model, str] | None]]

def experiment_bucket(salt: str, value: str) -> float: ...

@final
class Scorer:
    def __new__(
        cls,
        plan: FeaturePlan,
        models: dict[str, tuple[Model, str]],
        max_candidates: int = 1000,
        experiments: _Experiments | None = None,
        max_models: int | None = None,
    ) -> Scorer: ...
    @property
    def models(self) -> list[tuple[str, str]]: ...
    @property
    def experiments(self) -> list[tuple[str, str, str | None]]: ...
    @property
    def max_candidates(self) -> int: ...
    @property
    def max_models(self) -> int | None: ...
    def score_request(
        self, request: bytes, python_values: _PythonValues | None = None
    ) -> bytes: ...
    def score_request_routed(
        self,
        request: bytes,
        python_values: _PythonValues | None = None,
        defer_over: int | None = None,
    ) -> tuple[bytes | None, int, int]: ...
    def score_shadow(
        self, request: bytes, python_values: _PythonValues | None = None
    ) -> bytes | None: ...
    def score_many(
        self,
        requests: list[bytes],
        max_request_bytes: int,
        defer_over: int | None = None,
        python_values: list[_PythonValues | None] | None = None,
    ) -> list[tuple[bytes | None, int, str, int]]: ...
    def score(
        self,
        context: dict[str, str],
        candidates: list[dict[str, str]],
        models: list[str],
        python_values: _PythonValues | None = None,
    ) -> npt.NDArray[np.float32]: ...
