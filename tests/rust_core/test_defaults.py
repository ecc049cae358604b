"""train_ffm/train_lr keyword defaults have one source: Rust's FfmParams/LrParams::default(),
exposed as rust_core.ffm_defaults()/lr_defaults(). The signatures and the stub must agree."""

import ast
import inspect
from pathlib import Path

import pytest

import rust_core

STUB = Path(__file__).parents[2] / "rust_core.pyi"
CASES = [
    (rust_core.ffm_defaults, rust_core.train_ffm, "train_ffm"),
    (rust_core.lr_defaults, rust_core.train_lr, "train_lr"),
]


def stub_defaults(name: str) -> dict[str, object]:
    tree = ast.parse(STUB.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            args = node.args
            out: dict[str, object] = {}
            for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                if default is not None:
                    out[arg.arg] = ast.literal_eval(default)
            return out
    raise AssertionError(f"{name} not in the stub")


def test_the_defaults_are_the_rust_structs():
    assert rust_core.ffm_defaults() == {
        "k": 4,
        "eta": 0.2,
        "l2": 2e-5,
        "normalize": True,
        "linear": True,
        "epochs": 15,
        "auto_stop": False,
        "threads": 1,
        "seed": 0,
        "downsample_rate": 1.0,
        "shuffle": True,
    }
    lr = rust_core.lr_defaults()
    assert (lr["alpha"], lr["beta"], lr["epochs"]) == (0.1, 1.0, 15)
    # Fresh dicts: a caller mutating one does not change the next.
    lr["alpha"] = 9.0
    assert rust_core.lr_defaults()["alpha"] == 0.1


@pytest.mark.parametrize(("defaults", "train", "name"), CASES, ids=["ffm", "lr"])
def test_signature_defaults_match(defaults, train, name):
    params = inspect.signature(train).parameters
    expected = defaults()
    for key, value in expected.items():
        shown = params[key].default
        assert (shown, type(shown)) == (value, type(value)), key
    # Every other keyword default is "nothing" (None or ""), so the table misses no number.
    rest = {
        k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k not in expected
    }
    assert set(rest.values()) <= {None, ""}, rest


@pytest.mark.parametrize(("defaults", "train", "name"), CASES, ids=["ffm", "lr"])
def test_stub_defaults_match(defaults, train, name):
    stub = stub_defaults(name)
    for key, value in defaults().items():
        assert (stub[key], type(stub[key])) == (value, type(value)), key
