"""`control tune` through CliRunner: --save then `control train` / `control retrain` use the
saved parameters (explicit ones win), `models show` lists them, --cv folds by day and at
random, and bad input fails with one line, a non-zero exit and nothing saved. The registry
cases run on both backend pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bidscore.registry import open_registry
from control.cli.app import app
from control.training import FFM_DEFAULTS
from tests.control.tuning_data import SPECS, one_label_logs, write_logs

pytestmark = pytest.mark.timeout(180)

runner = CliRunner()
SMALL = ("--specs", SPECS)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(tmp_path_factory.mktemp("tune") / "logs.parquet", rows=3000, seed=7)


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(tmp_path_factory.mktemp("tune") / "days", rows=800, seed=7, days=5)


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok_json(*args: str) -> dict:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert fragment in lines[0], lines[0]


def test_save_then_train_uses_the_saved_params(backends, logs):
    registry, store = backends
    urls = ("--registry", registry, "--store", store)
    tuned = ok_json(
        "tune", "--model", "ctr", "--data", str(logs), "--trials", "4", "--save",
        "--registry", registry, *SMALL,
    )  # fmt: skip
    assert tuned["saved"] is True
    assert tuned["study"]["trials"] == 4
    chosen = {k: tuned["params"][k] for k in ("k", "eta", "l2", "normalize", "epochs")}
    saved = open_registry(registry).get_params("ctr")
    assert saved is not None
    assert saved["params"] == chosen | {"auto_stop": False}
    assert saved["study"]["valid_logloss"] == tuned["valid_logloss"]
    assert saved["data"]["window"] == tuned["data"]["window"] is not None

    trained = ok_json("train", "--model", "ctr", "--data", str(logs), *urls, *SMALL)
    params = trained["params"]
    assert {k: params[k] for k in chosen} == chosen
    assert params["params_source"] == "saved"

    one = ok_json(
        "train", "--model", "ctr", "--data", str(logs), "--param", "eta=0.123", *urls, *SMALL
    )
    assert one["params"]["eta"] == 0.123
    assert {k: one["params"][k] for k in ("k", "l2", "epochs")} == {
        k: chosen[k] for k in ("k", "l2", "epochs")
    }
    explicit = ok_json("train", "--model", "ctr", "--data", str(logs), "--k", "5", *urls, *SMALL)
    assert (explicit["params"]["k"], explicit["params"]["eta"]) == (5, chosen["eta"])

    ignored = ok_json(
        "train", "--model", "ctr", "--data", str(logs), "--params", "default", *urls, *SMALL
    )
    assert {k: ignored["params"][k] for k in chosen} == {k: FFM_DEFAULTS[k] for k in chosen}
    assert ignored["params"]["params_source"] == "default"

    shown = ok_json("models", "show", "ctr", trained["version"], "--registry", registry)
    assert shown["saved_params"]["params"] == saved["params"]
    assert shown["manifest"]["params"]["params_source"] == "saved"
    table = invoke("models", "show", "ctr", trained["version"], "--registry", registry)
    assert table.exit_code == 0
    assert "saved parameters of ctr" in table.stdout
    assert ok_json("models", "params", "ctr", "--registry", registry) == saved
    one_line_error(invoke("models", "params", "cvr", "--registry", registry), "no saved")


def test_no_linear_tunes_libffms_model_and_train_keeps_it(tmp_path, logs):
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    urls = ("--registry", registry, "--store", f"file://{tmp_path / 'artifacts'}")
    tuned = ok_json(
        "tune", "--model", "ctr", "--data", str(logs), "--trials", "3", "--no-linear", "--save",
        "--registry", registry, *SMALL,
    )  # fmt: skip
    assert tuned["params"]["linear"] is False
    # Held for every trial, not searched.
    assert all("linear" not in t["params"] for t in tuned["trials"])
    saved = open_registry(registry).get_params("ctr")
    assert saved is not None
    assert saved["params"]["linear"] is False
    trained = ok_json("train", "--model", "ctr", "--data", str(logs), *urls, *SMALL)
    assert trained["params"]["linear"] is False
    assert trained["params"]["params_source"] == "saved"


def test_retrain_starts_from_the_saved_params(tmp_path, days):
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    store = f"file://{tmp_path / 'artifacts'}"
    tuned = ok_json(
        "tune", "--model", "ctr", "--data", str(days), "--trials", "3", "--save",
        "--registry", registry, *SMALL,
    )  # fmt: skip
    run = ok_json(
        "retrain", "--model", "ctr", "--data", str(days), "--window", "3d", "--holdout", "1d",
        "--param", "eta=0.05", "--registry", registry, "--store", store, *SMALL,
    )  # fmt: skip
    params = run["inputs"]["params"]
    assert params["eta"] == 0.05
    assert (params["k"], params["l2"]) == (tuned["params"]["k"], tuned["params"]["l2"])
    assert "eta" not in run["inputs"]["params_from_saved"]
    assert "k" in run["inputs"]["params_from_saved"]
    (version,) = open_registry(registry).list_versions("ctr")
    assert version.manifest.params["params_source"] == "saved"
    assert version.manifest.params["eta"] == 0.05


def test_cv_by_day_never_validates_on_a_training_day(days):
    out = ok_json(
        "tune", "--model", "ctr", "--data", str(days), "--trials", "2", "--cv", "3", *SMALL
    )
    cv = out["data"]["cv"]
    assert cv["kind"] == "day"
    assert [f["valid"] for f in cv["folds"]] == ["2026-11-03", "2026-11-04", "2026-11-05"]
    for fold in cv["folds"]:
        assert fold["valid"] not in fold["train"]
        assert max(fold["train"]) < fold["valid"]
    assert len(out["study"]["folds"]) == 3
    assert out["spread"] > 0


def test_cv_without_partitions_is_random_k_fold(logs):
    out = ok_json(
        "tune", "--model", "ctr", "--data", str(logs), "--trials", "2", "--cv", "3", *SMALL
    )
    assert out["data"]["cv"] == {"kind": "random", "k": 3}
    assert len(out["study"]["folds"]) == 3


def test_table_output_and_plot(logs, tmp_path):
    plot = tmp_path / "tune.html"
    result = invoke(
        "tune", "--model", "ctr", "--data", str(logs), "--trials", "3", "--plot", str(plot),
        "--executor", "local", "--workers", "2", *SMALL,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "top trials" in result.stdout
    assert "chosen: k=" in result.stdout
    # Not a terminal: plain progress lines, one per trial.
    assert result.stderr.count("trial ") >= 3
    assert plot.read_text().count("<svg") == 2


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--trials", "0"), "--trials must be >= 1"),
        (("--executor", "ray://head"), "expected ray://HOST:PORT"),
        (("--executor", "ray", "--workers", "0"), "--workers must be >= 1"),
        (("--cv", "1"), "--cv needs K >= 2"),
        (("--algo", "lr", "--no-linear"), "--no-linear applies to ffm models"),
    ],
)
def test_bad_options_fail_with_one_line_and_save_nothing(backends, logs, args, fragment):
    registry = backends[0]
    result = invoke(
        "tune", "--model", "ctr", "--data", str(logs), "--save", "--registry", registry,
        *SMALL, *args,
    )  # fmt: skip
    one_line_error(result, fragment)
    assert open_registry(registry).get_params("ctr") is None


def test_unknown_model_and_one_label_data_save_nothing(backends, logs, tmp_path):
    registry = backends[0]
    unknown = invoke(
        "tune", "--model", "nope", "--data", str(logs), "--save", "--registry", registry, *SMALL
    )
    one_line_error(unknown, "nope")
    flat = one_label_logs(tmp_path / "flat.parquet")
    result = invoke(
        "tune", "--model", "ctr", "--data", str(flat), "--save", "--registry", registry, *SMALL
    )
    one_line_error(result, "needs both label values")
    reg = open_registry(registry)
    assert reg.get_params("ctr") is None
    assert reg.get_params("nope") is None


def test_params_option_is_checked(tmp_path, logs):
    result = invoke(
        "train", "--model", "ctr", "--data", str(logs), "--params", "best",
        "--registry", f"sqlite:///{tmp_path / 'r.db'}", *SMALL,
    )  # fmt: skip
    one_line_error(result, "--params must be saved or default")
