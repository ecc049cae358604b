"""control.scale: the executor setting, preparation into shards, several models at once.

The Ray tests share one local Ray instance (2 CPUs) started once for the module; the
commands under test find it running and use it (they start and stop their own otherwise).
"Ray missing" is a real subprocess of `control` whose `import ray` fails (a `ray` package
on PYTHONPATH that raises ImportError), not a mock of our code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bidscore.registry import open_registry
from control.cli.app import app
from control.datagen import write_dataset
from control.retrain.lock import lock_name
from control.scale.executor import ExecutorError, parse_executor
from control.scale.jobs import Outcome
from control.scale.parallel import exit_code
from control.scale.prepare import Csr

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
pytestmark = pytest.mark.timeout(300)


# --- no Ray needed ------------------------------------------------------------------------


def test_executor_names(monkeypatch):
    monkeypatch.delenv("BIDSCORE_EXECUTOR", raising=False)
    assert parse_executor(None).kind == "local"
    assert parse_executor("ray", ray_cpus=2).cpus == 2
    cluster = parse_executor("ray://head:10001")
    assert (cluster.kind, cluster.address, cluster.name) == (
        "ray",
        "ray://head:10001",
        cluster.address,
    )
    monkeypatch.setenv("BIDSCORE_EXECUTOR", "ray")
    assert parse_executor(None).is_ray
    assert not parse_executor("local").is_ray  # the option wins over the environment
    for bad, message in [
        ("dask", "unknown executor 'dask'"),
        ("ray://head", "expected ray://HOST:PORT"),
    ]:
        with pytest.raises(ExecutorError, match=message):
            parse_executor(bad)
    with pytest.raises(ExecutorError, match="--ray-cpus needs --executor ray"):
        parse_executor("local", ray_cpus=2)


def test_exit_code_names_the_failed_models():
    ok, bad = Outcome("ctr", 0, "promoted", ""), Outcome("cvr", 5, "stopped", "")
    assert exit_code([ok, ok]) == 0
    assert exit_code([ok, bad]) == 102
    assert exit_code([bad, ok]) == 101
    assert exit_code([bad, bad]) == 103


def test_csr_take_keeps_rows_in_order():
    csr = Csr(
        indptr=np.array([0, 2, 3, 6], np.uint64),
        fields=np.arange(6, dtype=np.uint32),
        indices=np.arange(10, 16, dtype=np.uint32),
        values=np.ones(6, np.float32),
        labels=np.array([1, 0, 1], np.float32),
        weights=None,
    )
    kept = csr.take(np.array([True, False, True]))
    assert kept.indptr.tolist() == [0, 2, 5]
    assert kept.fields.tolist() == [0, 1, 3, 4, 5]
    assert kept.labels.tolist() == [1, 1]


def _no_ray_env(tmp_path: Path) -> dict[str, str]:
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIDSCORE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(shim.parent), str(REPO)])
    env["BIDSCORE_HOME"] = str(tmp_path / "home")
    env["COLUMNS"] = "200"
    return env


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nine days of 40k rows: enough clicked rows (~1k a day) for cvr to beat its base rate."""
    out = tmp_path_factory.mktemp("scale") / "logs"
    write_dataset(out, rows=40_000, seed=11, days=9)
    return out


def _nothing_registered_and_unlocked(registry: str, model: str = "ctr") -> None:
    reg = open_registry(registry, create=True)
    assert reg.list_versions(model) == []
    assert reg.acquire_lock(lock_name(model), "someone-else", 5.0)  # the lock is free


@pytest.mark.parametrize("command", ["train", "retrain"])
def test_ray_missing_is_one_line(tmp_path, days, command):
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    args = ["--model", "ctr", "--algo", "lr", "--data", str(days), "--registry", registry]
    done = subprocess.run(
        [sys.executable, "-m", "control", command, *args, "--executor", "ray"],
        env=_no_ray_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: --executor ray needs Ray, which is not installed")
    assert "pip install 'bidscore[ray]'" in line
    _nothing_registered_and_unlocked(registry)


def test_unreachable_cluster_is_one_line(tmp_path, days, free_port):
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    address = f"ray://127.0.0.1:{free_port()}"
    for models in (["--model", "ctr"], ["--model", "ctr", "--model", "cvr"]):
        result = runner.invoke(
            app,
            [
                "retrain",
                *models,
                "--algo",
                "lr",
                "--data",
                str(days),
                "--registry",
                registry,
                "--store",
                f"file://{tmp_path / 'artifacts'}",
                "--executor",
                address,
            ],
        )
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        [line] = lines
        assert line.startswith(f"error: cannot reach the Ray cluster at {address} within 5s")
    _nothing_registered_and_unlocked(registry)
    _nothing_registered_and_unlocked(registry, "cvr")


# --- on a local Ray instance ----------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()


def _train(tmp_path: Path, name: str, *args: str) -> dict:
    registry = f"sqlite:///{tmp_path / name / 'registry.db'}"
    result = runner.invoke(
        app,
        [
            "train",
            "--registry",
            registry,
            "--store",
            f"file://{tmp_path / name / 'store'}",
            "--threads",
            "1",
            "--seed",
            "3",
            "--json",
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.ray
def test_local_and_ray_register_identical_models(ray_instance, tmp_path, days):
    # Two dt= partitions of 10k rows, with negatives downsampled: the split, the downsampling
    # and cvr's clicked-rows filter all run on the prepared shards' rows.
    window = [str(days / "dt=2026-11-01"), str(days / "dt=2026-11-02")]
    data = [a for path in window for a in ("--data", path)]
    for model in (
        ["--model", "ctr", "--algo", "lr", "--downsample-negatives", "0.5"],
        ["--model", "cvr"],
    ):
        local = _train(tmp_path, f"local-{model[1]}", *model, *data, "--executor", "local")
        ray = _train(tmp_path, f"ray-{model[1]}", *model, *data, "--executor", "ray")
        registry = open_registry(f"sqlite:///{tmp_path / f'ray-{model[1]}' / 'registry.db'}")
        manifest = registry.get_version(model[1], ray["version"]).manifest
        local_manifest = (
            open_registry(f"sqlite:///{tmp_path / f'local-{model[1]}' / 'registry.db'}")
            .get_version(model[1], local["version"])
            .manifest
        )
        assert manifest.checksum == local_manifest.checksum
        assert ray["metrics"] == local["metrics"]
        assert manifest.data["prepared"]["shards"] == 2
        assert manifest.data["train_rows"] == local_manifest.data["train_rows"]


def _retrain(tmp_path: Path, data: Path, *args: str) -> tuple[int, dict, str]:
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    result = runner.invoke(
        app,
        [
            "retrain",
            "--model",
            "ctr",
            "--model",
            "cvr",
            "--algo",
            "lr",
            "--data",
            str(data),
            "--window",
            "7d",
            "--date",
            "2026-11-09",
            "--registry",
            registry,
            "--store",
            f"file://{tmp_path / 'store'}",
            "--executor",
            "ray",
            "--json",
            *args,
        ],
    )
    return result.exit_code, json.loads(result.stdout), result.stderr


@pytest.mark.ray
def test_two_models_retrain_in_parallel_on_ray(ray_instance, tmp_path, days):
    code, out, _ = _retrain(tmp_path, days)
    assert code == 0, out
    assert [(m["model"], m["action"], m["exit_code"]) for m in out["models"]] == [
        ("ctr", "promoted", 0),
        ("cvr", "promoted", 0),
    ]
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    for model in ("ctr", "cvr"):
        [run] = registry.list_runs(model)
        assert run["status"] == "succeeded"
        assert run["inputs"]["executor"] == "ray"
        assert registry.get_alias(model, "production") is not None


@pytest.fixture(scope="module")
def no_conversions(tmp_path_factory: pytest.TempPathFactory, days: Path) -> Path:
    """The same days with every conversion removed: cvr's validation must stop, ctr's not."""
    out = tmp_path_factory.getbasetemp() / "scale-no-conversions"
    for part in sorted(days.glob("dt=*/*.parquet")):
        table = pq.read_table(part)
        column = table.schema.get_field_index("conversion")
        table = table.set_column(column, "conversion", pa.array(np.zeros(table.num_rows, np.int64)))
        target = out / part.parent.name / part.name
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
    return out


@pytest.mark.ray
def test_a_model_stopped_by_validation_fails_alone(ray_instance, tmp_path, no_conversions):
    code, out, stderr = _retrain(tmp_path, no_conversions)
    assert code == 102, out  # 100 + bit 1: the second --model (cvr) failed
    by_model = {m["model"]: m for m in out["models"]}
    assert (by_model["ctr"]["action"], by_model["ctr"]["exit_code"]) == ("promoted", 0)
    assert (by_model["cvr"]["action"], by_model["cvr"]["exit_code"]) == ("stopped", 5)
    assert "[cvr] validate:" in stderr
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    assert registry.get_alias("ctr", "production") is not None
    assert registry.get_alias("cvr", "production") is None
    assert registry.list_versions("cvr") == []
    assert registry.acquire_lock(lock_name("cvr"), "someone-else", 5.0)


# --- issue 18 follow-up: validation from the tasks' profiles, out of core from shards --------


def test_shard_draws_are_the_whole_datas_draws():
    from control.scale.train import shard_draws  # noqa: PLC0415

    whole = np.random.default_rng(7).random(1000)
    starts = [0, 3, 250, 999]
    for a, b in zip(starts, [*starts[1:], 1000], strict=True):
        assert np.array_equal(shard_draws(7, a, b - a), whole[a:b])


@pytest.mark.ray
def test_local_and_ray_register_identical_models_out_of_core(ray_instance, tmp_path, days):
    # Out of core on both executors: one shard per input file, the validation rows and the
    # downsampling drawn shard by shard, training streamed from the shards (shuffled).
    window = [str(days / "dt=2026-11-01"), str(days / "dt=2026-11-02")]
    data = [a for path in window for a in ("--data", path)]
    model = ["--model", "ctr", "--algo", "lr", "--downsample-negatives", "0.5"]
    local = _train(tmp_path, "local-ooc", *model, *data, "--executor", "local", "--on-disk")
    ray = _train(tmp_path, "ray-ooc", *model, *data, "--executor", "ray", "--memory-budget", "64K")
    in_memory = _train(tmp_path, "local-mem", *model, *data, "--executor", "local")
    manifests = {
        name: open_registry(f"sqlite:///{tmp_path / name / 'registry.db'}")
        .get_version("ctr", out["version"])
        .manifest
        for name, out in (("local-ooc", local), ("ray-ooc", ray), ("local-mem", in_memory))
    }
    assert manifests["local-ooc"].checksum == manifests["ray-ooc"].checksum
    assert ray["metrics"] == local["metrics"]
    assert manifests["local-ooc"].data["prepared"]["storage"] == "disk"
    assert manifests["ray-ooc"].data["prepared"]["storage"] == "disk"
    assert "exceed the memory budget" in manifests["ray-ooc"].data["prepared"]["reason"]
    # The same rows as in memory: the split and the downsampling are the same draws.
    for key in ("rows", "train_rows", "valid_rows"):
        assert manifests["ray-ooc"].data[key] == manifests["local-mem"].data[key]
    # Shuffled shard by shard, not over the whole data: another model, as good.
    assert abs(ray["metrics"]["logloss"] - in_memory["metrics"]["logloss"]) < 0.01


@pytest.fixture(scope="module")
def shrunk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nine days of 20k rows, the last two at 40% (`control datagen --shrink-from-day 7`),
    and the second day in two files: the row-count check fails on 2026-11-08 and 09."""
    out = tmp_path_factory.mktemp("scale-shrunk") / "logs"
    result = runner.invoke(
        app,
        [
            "datagen", "--rows", "20000", "--seed", "5", "--days", "9", "--out", str(out),
            "--start", "2026-11-01", "--shrink-from-day", "7", "--shrink-factor", "0.4",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    day = out / "dt=2026-11-02"
    table = pq.read_table(day / "part-0.parquet")
    (day / "part-0.parquet").unlink()
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), day / "part-0.parquet")
    pq.write_table(table.slice(half), day / "part-1.parquet")
    return out


@pytest.mark.ray
@pytest.mark.parametrize("model", ["ctr", "cvr"])
def test_ray_validation_equals_local_validation(ray_instance, tmp_path, shrunk, model):
    import datetime as dt  # noqa: PLC0415

    import ray  # noqa: PLC0415

    from bidscore.store import open_store  # noqa: PLC0415
    from control.profile import profile_table, spec_features  # noqa: PLC0415
    from control.retrain import data  # noqa: PLC0415
    from control.retrain.partitions import select  # noqa: PLC0415
    from control.retrain.validate import ValidationPolicy, validate  # noqa: PLC0415
    from control.scale.prepare import cleanup, prepare, profile_files  # noqa: PLC0415
    from features.catalog import load  # noqa: PLC0415

    catalog = load()
    selection = select(
        data.list_partitions(str(shrunk)),
        window_days=7,
        holdout_days=1,
        day=dt.date(2026, 11, 9),
        allow_gaps=False,
    )
    local = data.read_selection(selection, model, lambda _: None, catalog)
    store = open_store(f"file://{tmp_path / 'store'}")
    prepared = prepare([p.path for p in selection.train], model, store=store, ray=ray)
    holdout = profile_files([p.path for p in selection.holdout], model, store=store, ray=ray)
    try:
        stats = data.stats_from_parts(selection, prepared.parts + holdout)
    finally:
        cleanup(prepared, store)
    assert stats == local.day_stats  # rows, positives, target rows, missing rates: exact
    # A "production" profile: the first day's target rows, profiled as training does.
    first, _ = data.target_rows(local.train.slice(0, 20_000), model, catalog)
    baseline = profile_table(first, spec_features(catalog.spec(model)))
    assert data.psi_from_parts(baseline, holdout) == data.psi_against(
        baseline, local.holdout, model, catalog
    )
    reports = [
        validate(
            days,
            [p.rows for p in selection.history],
            local.label,
            ValidationPolicy(),
            baseline_missing=data.baseline_missing(baseline),
            psi=psi,
        )
        for days, psi in (
            (local.day_stats, lambda: data.psi_against(baseline, local.holdout, model, catalog)),
            (stats, lambda: data.psi_from_parts(baseline, holdout)),
        )
    ]
    assert reports[0].checks == reports[1].checks
    assert [f"{c.name}:{c.subject}" for c in reports[1].failures] == [
        "row_count:2026-11-08",
        "row_count:2026-11-09",
    ]


@pytest.mark.ray
def test_retrain_on_ray_stops_on_the_shrunk_day_like_local(ray_instance, tmp_path, shrunk):
    runs = {}
    for executor in ("local", "ray"):
        registry = f"sqlite:///{tmp_path / executor / 'registry.db'}"
        result = runner.invoke(
            app,
            [
                "retrain", "--model", "ctr", "--algo", "lr", "--data", str(shrunk),
                "--window", "7d", "--date", "2026-11-09", "--registry", registry,
                "--store", f"file://{tmp_path / executor / 'store'}", "--executor", executor,
                "--json",
            ],
        )  # fmt: skip
        assert result.exit_code == 5, result.output
        [run] = open_registry(registry).list_runs("ctr")
        runs[executor] = run
        assert open_registry(registry).list_versions("ctr") == []
    steps = {k: {s["name"]: s for s in r["steps"]} for k, r in runs.items()}
    validations = {k: s["validate"]["detail"]["validation"] for k, s in steps.items()}
    assert validations["ray"] == validations["local"]
    assert validations["ray"]["failed"] == ["row_count:2026-11-08", "row_count:2026-11-09"]
    # 7 training days, one of them in two files
    assert steps["ray"]["validate"]["detail"]["prepared"]["shards"] == 8
    assert not list((tmp_path / "ray" / "store").glob("prepared/*/part-*"))  # cleaned up


@pytest.mark.ray
@pytest.mark.aws
def test_ray_retrains_from_s3_partitions_into_an_s3_store(
    tmp_path, days, aws_backends, moto_server
):
    # Data, registry and artifact store on the AWS emulator: a fresh `control` process starts
    # its own Ray instance, whose tasks read the dt= partitions from S3 and write their shards
    # under the S3 store (removed after training). The model equals the local executor's
    # (local run: SQLite registry and a directory store, same S3 data).
    import boto3  # noqa: PLC0415 -- the aws extra

    store_url = aws_backends[1]
    bucket = store_url.removeprefix("s3://").split("/", 1)[0]
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    for part in ("dt=2026-11-01", "dt=2026-11-02", "dt=2026-11-03"):
        for file in sorted((days / part).glob("*.parquet")):
            s3.upload_file(str(file), bucket, f"raw/{part}/{file.name}")
    data = f"s3://{bucket}/raw?endpoint_url={moto_server}&region=us-east-1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIDSCORE_")}
    env["PYTHONPATH"] = str(REPO)
    env["BIDSCORE_HOME"] = str(tmp_path / "home")
    local = (f"sqlite:///{tmp_path / 'local.db'}", f"file://{tmp_path / 'store'}")
    checksums = {}
    for executor, (registry, store) in (("local", local), ("ray", aws_backends)):
        args = ["retrain", "--model", "ctr", "--algo", "lr", "--data", data, "--window", "2d"]
        args += ["--date", "2026-11-03", "--registry", registry, "--store", store]
        args += ["--threads", "1", "--executor", executor, "--json"]
        done = subprocess.run(
            [sys.executable, "-m", "control", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        version = json.loads(done.stdout)["version"]
        manifest = open_registry(registry).get_version("ctr", version).manifest
        checksums[executor] = manifest.checksum
    assert checksums["ray"] == checksums["local"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(k.startswith("artifacts/") for k in keys), keys  # the model went to S3
    assert not [k for k in keys if "/prepared/" in k], keys  # the run's shards were removed
