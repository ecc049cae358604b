"""The `control` CLI: the full cycle through CliRunner on both backend pairs, bad input with
one-line errors, and the installed entry point racing itself in 8 processes."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner, Result

from bidscore.registry import open_registry
from bidscore.store import open_store
from control.cli.app import app
from control.cli.progress import RichObserver
from control.exits import EXIT_USAGE
from control.promotion import promote
from control.training import publish

runner = CliRunner()
CONTROL = str(Path(sys.executable).parent / "control")


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(*args: str) -> object:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# ctr as LR: the ctr spec's FFM file is ~105 MB, too heavy to copy around in every test.
CTR_LR = ("--model", "ctr", "--algo", "lr", "--epochs", "2")


def test_full_cycle(backends: tuple[str, str], small_logs: Path, medium_logs: Path) -> None:
    urls = ["--registry", backends[0], "--store", backends[1]]
    trained = ok_json("train", *CTR_LR, "--data", str(small_logs), *urls)
    assert trained["version"] == "1"
    assert set(trained["metrics"]) >= {"logloss", "auc", "ne", "calibration", "rows", "positives"}
    assert trained["algorithm"] == "lr"
    assert "algo" not in trained["params"]  # schema 2: the algorithm is recorded once
    second = ok_json("train", *CTR_LR, "--data", str(small_logs), "--seed", "3", *urls)
    assert second["version"] == "2"
    cvr = ok_json("train", "--model", "cvr", "--data", str(medium_logs), "--epochs", "2", *urls)
    assert (cvr["version"], cvr["algorithm"]) == ("1", "lr")

    listed = ok_json("models", "list", *urls[:2])
    assert [(v["model"], v["version"]) for v in listed] == [
        ("ctr", "1"),
        ("ctr", "2"),
        ("cvr", "1"),
    ]
    table = invoke("models", "list", "ctr", *urls[:2])
    assert table.exit_code == 0
    assert "versions of ctr" in table.stdout
    shown = ok_json("models", "show", "ctr", "2", *urls[:2])
    assert shown["manifest"]["metrics"] == second["metrics"]
    assert invoke("models", "show", "ctr", "2", *urls[:2]).exit_code == 0

    first = ok_json("promote", "ctr", "1", *urls)
    assert (first["alias"]["version"], first["alias"]["generation"]) == ("1", 1)
    moved = ok_json("promote", "ctr", "2", "--force", "--reason", "fresh data", *urls)
    assert (moved["previous_version"], moved["alias"]["version"]) == ("1", "2")
    listed = ok_json("models", "list", "ctr", *urls[:2])
    assert [v["aliases"] for v in listed] == [[], ["production"]]

    history = ok_json("history", "ctr", *urls[:2])
    assert [(m["from_version"], m["to_version"]) for m in history] == [(None, "1"), ("1", "2")]
    assert history[0]["reason"] == "promote"
    # --force records the gates it overrode (if any) after the operator's reason.
    assert history[1]["reason"].startswith("fresh data")
    back = ok_json("rollback", "ctr", *urls)
    assert (back["previous_version"], back["alias"]["version"]) == ("2", "1")
    history = ok_json("history", "ctr", *urls[:2])
    assert [(m["kind"], m["to_version"]) for m in history][-1] == ("rollback", "1")
    rendered = invoke("history", "ctr", *urls[:2])
    assert "rollback" in rendered.stdout


def test_defaults_live_under_bidscore_home(bidscore_home: Path, small_logs: Path) -> None:
    result = invoke("train", *CTR_LR, "--data", str(small_logs))
    assert result.exit_code == 0, result.stderr
    assert (bidscore_home / "registry.db").is_file()
    assert list((bidscore_home / "artifacts" / "ctr").glob("*.model"))
    assert invoke("promote", "ctr", "1").exit_code == 0


EXPERIMENT_SPLIT = ("--share", "0.1", "--key", "user_id")


@pytest.mark.parametrize(
    "command",
    [
        ("models", "list"),
        ("models", "show", "ctr", "1"),
        ("history", "ctr"),
        ("runs", "list", "ctr"),
        ("promote", "ctr", "1"),
        ("rollback", "ctr"),
        ("monitor", "offline", "ctr"),
        (
            "experiment",
            "start",
            "e",
            "--model",
            "ctr",
            "--treatment",
            "2",
            "--share",
            "0.1",
            "--key",
            "user_id",
        ),
        ("experiment", "status", "e"),
        ("experiment", "stop", "e"),
        ("experiment", "list"),
        ("experiment", "history", "e"),
    ],
)
def test_reading_commands_refuse_a_registry_that_does_not_exist(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    # Defect 12: a mistyped sqlite path created a new, empty registry even for `models list`.
    typo = tmp_path / "regsitry.db"
    result = invoke(*command, "--registry", f"sqlite://{typo}")
    one_line_error(result, str(typo), "does not exist")
    assert not typo.exists()


def test_a_writing_command_creates_the_registry_and_says_so_once(
    tmp_path: Path, small_logs: Path
) -> None:
    urls = ["--registry", f"sqlite://{tmp_path / 'new.db'}", "--store", f"file://{tmp_path / 's'}"]
    first = invoke("train", *CTR_LR, "--data", str(small_logs), *urls)
    assert first.exit_code == 0, first.stderr
    assert first.stderr.count(f"created a new registry at {tmp_path / 'new.db'}") == 1
    second = invoke("train", *CTR_LR, "--data", str(small_logs), "--seed", "3", *urls)
    assert second.exit_code == 0, second.stderr
    assert "created a new registry" not in second.stderr
    assert invoke("models", "list", *urls[:2]).exit_code == 0


def test_artifacts_manifests_and_registry_get_explicit_modes(
    tmp_path: Path, small_logs: Path
) -> None:
    # Defect 14: modes came from the umask (0666 files and 0777 directories under umask 0).
    urls = ["--registry", f"sqlite://{tmp_path / 'db' / 'r.db'}"]
    urls += ["--store", f"file://{tmp_path / 'store'}"]
    old = os.umask(0)
    try:
        result = invoke("train", *CTR_LR, "--data", str(small_logs), *urls)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    files = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".model", ".json"}
    for path in [*files, tmp_path / "db" / "r.db"]:
        assert path.stat().st_mode & 0o777 == 0o640, path
    for path in [tmp_path / "store", tmp_path / "store" / "ctr", tmp_path / "db"]:
        assert path.stat().st_mode & 0o777 == 0o750, path


def test_environment_variables_choose_the_backends(tmp_path: Path, small_logs: Path) -> None:
    env = {
        "BIDSCORE_REGISTRY": f"sqlite://{tmp_path / 'env.db'}",
        "BIDSCORE_STORE": f"file://{tmp_path / 'env-store'}",
    }
    result = invoke("train", *CTR_LR, "--data", str(small_logs), env=env)
    assert result.exit_code == 0, result.stderr
    assert open_registry(env["BIDSCORE_REGISTRY"]).get_version("ctr", "1")
    assert open_store(env["BIDSCORE_STORE"]).list_keys()


@pytest.fixture
def sqlite_urls(tmp_path: Path) -> list[str]:
    return ["--registry", f"sqlite://{tmp_path / 'r.db'}", "--store", f"file://{tmp_path / 's'}"]


def _bad_files(small_logs: Path, tmp_path: Path) -> dict[str, Path]:
    table = pq.read_table(small_logs)
    ones = table.set_column(
        table.column_names.index("click"), "click", pa.array([1] * table.num_rows, pa.int64())
    )
    pq.write_table(ones, tmp_path / "ones.parquet")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "malformed.csv").write_text("ts,app_id,click\n5,a,1\n6,b,maybe\n")
    return {
        "missing": tmp_path / "absent.parquet",
        "empty": tmp_path / "empty.jsonl",
        "one label": tmp_path / "ones.parquet",
        "malformed": tmp_path / "malformed.csv",
    }


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing", "absent.parquet"),
        ("empty", "empty.jsonl"),
        ("one label", "click is 1 in all 4000 rows"),
        ("malformed", "click"),
    ],
)
def test_bad_training_data(
    case: str, fragment: str, small_logs: Path, tmp_path: Path, sqlite_urls: list[str]
) -> None:
    path = _bad_files(small_logs, tmp_path)[case]
    result = invoke("train", "--model", "ctr", "--data", str(path), *sqlite_urls)
    one_line_error(result, fragment)
    assert open_registry(sqlite_urls[1]).list_versions() == []
    assert open_store(sqlite_urls[3]).list_keys() == []


def test_bad_names_and_versions(small_logs: Path, sqlite_urls: list[str]) -> None:
    one_line_error(
        invoke("train", "--model", "ltv", "--data", str(small_logs), *sqlite_urls),
        "unknown model 'ltv'",
    )
    # The failed train leaves no registry behind (it would have been created by it).
    one_line_error(invoke("models", "list", *sqlite_urls[:2]), "does not exist")
    assert (
        invoke(
            "train", "--model", "ctr", "--data", str(small_logs), "--epochs", "1", *sqlite_urls
        ).exit_code
        == 0
    )
    one_line_error(invoke("models", "show", "cvr", "1", *sqlite_urls[:2]), "unknown model 'cvr'")
    one_line_error(invoke("models", "list", "cvr", *sqlite_urls[:2]), "unknown model 'cvr'")
    one_line_error(invoke("history", "cvr", *sqlite_urls[:2]), "unknown model 'cvr'")
    one_line_error(invoke("promote", "ctr", "9", *sqlite_urls), "no version '9'")
    one_line_error(invoke("rollback", "ctr", *sqlite_urls), "never been set")
    one_line_error(
        invoke(
            "train",
            "--model",
            "ctr",
            "--data",
            str(small_logs),
            "--k",
            "4",
            "--algo",
            "lr",
            *sqlite_urls,
        ),
        "lr has no hyper-parameter 'k'",
    )
    assert [v.version for v in open_registry(sqlite_urls[1]).list_versions()] == ["1"]


def test_unreachable_registry(small_logs: Path, tmp_path: Path, free_port) -> None:
    dead = f"dynamodb://t?region=us-east-1&endpoint_url=http://127.0.0.1:{free_port()}"
    store = ["--store", f"file://{tmp_path / 's'}"]
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    for args in (
        ["train", "--model", "ctr", "--data", str(small_logs), *store],
        ["models", "list"],
        ["promote", "ctr", "1", *store],
        ["history", "ctr"],
    ):
        one_line_error(invoke(*args, "--registry", dead, env=env), "unreachable")
    assert not (tmp_path / "s").exists()
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    one_line_error(invoke("models", "list", "--registry", f"sqlite://{blocked}/r.db"), "registry")


def test_promotion_refused_by_a_gate_exits_4(
    trained_ctr, sqlite_urls: list[str], publish_claiming
) -> None:
    registry, store = open_registry(sqlite_urls[1]), open_store(sqlite_urls[3])
    publish_claiming(trained_ctr, registry, store, logloss=0.40, auc=0.75)
    publish_claiming(trained_ctr, registry, store, logloss=0.50, auc=0.75)
    assert invoke("promote", "ctr", "1", *sqlite_urls).exit_code == 0
    result = invoke("promote", "ctr", "2", *sqlite_urls)
    assert result.exit_code == 4
    one_line_error(result, "gate logloss", "0.500000", "0.400000")


def test_a_first_version_below_the_base_rate_is_refused_unless_forced(
    trained_ctr, sqlite_urls: list[str], publish_claiming
) -> None:
    registry, store = open_registry(sqlite_urls[1]), open_store(sqlite_urls[3])
    publish_claiming(trained_ctr, registry, store, ne=1.1)
    result = invoke("promote", "ctr", "1", *sqlite_urls)
    assert result.exit_code == 4
    one_line_error(result, "gate base rate", "ne v1 1.1000", "--force")
    forced = invoke("promote", "ctr", "1", "--force", *sqlite_urls)
    assert forced.exit_code == 0, forced.stderr
    assert "forced past failed gates (recorded in the history): base rate" in forced.stdout
    [move] = ok_json("history", "ctr", *sqlite_urls[:2])
    assert "forced past base rate gate" in move["reason"]
    assert "forced past base rate gate" in invoke("history", "ctr", *sqlite_urls[:2]).stdout


def test_promote_scores_both_versions_on_the_same_rows(
    trained_ctr, sqlite_urls: list[str], medium_logs: Path
) -> None:
    registry, store = open_registry(sqlite_urls[1]), open_store(sqlite_urls[3])
    publish(trained_ctr, registry, store)
    publish(trained_ctr, registry, store)
    assert invoke("promote", "ctr", "1", *sqlite_urls).exit_code == 0
    result = invoke("promote", "ctr", "2", "--data", str(medium_logs), *sqlite_urls)
    assert result.exit_code == 0, result.stderr
    assert "measured on the same 30,000 log rows" in result.stdout
    assert "candidate v2" in result.stdout
    assert "current v1" in result.stdout
    assert "different rows" not in result.stdout
    # Without --data: the candidate's own validation rows, re-read from its logs.
    publish(trained_ctr, registry, store)
    moved = ok_json("promote", "ctr", "3", *sqlite_urls)
    evaluation = moved["evaluation"]
    assert evaluation["same_rows"]
    assert "v3's validation rows" in evaluation["rows"]
    assert evaluation["candidate"]["metrics"]["rows"] == evaluation["current"]["metrics"]["rows"]


def test_promote_says_when_the_metrics_come_from_different_rows(
    trained_ctr, sqlite_urls: list[str], publish_claiming
) -> None:
    registry, store = open_registry(sqlite_urls[1]), open_store(sqlite_urls[3])
    publish_claiming(trained_ctr, registry, store, logloss=0.40, auc=0.75)
    publish_claiming(trained_ctr, registry, store, logloss=0.39, auc=0.76)
    assert invoke("promote", "ctr", "1", *sqlite_urls).exit_code == 0
    result = invoke("promote", "ctr", "2", *sqlite_urls)
    assert result.exit_code == 0, result.stderr
    assert "note: " in result.stdout
    assert "different rows" in result.stdout
    assert "--data" in result.stdout


def test_entry_point_race_of_eight_processes(trained_ctr, tmp_path: Path) -> None:
    # Eight real `control` processes against one SQLite file (DynamoDB races run with threads
    # in test_promotion.py: each process start costs seconds of imports on a small machine).
    backends = (f"sqlite://{tmp_path / 'r.db'}", f"file://{tmp_path / 'artifacts'}")
    registry, store = open_registry(backends[0]), open_store(backends[1])
    for _ in range(9):
        publish(trained_ctr, registry, store)
    promote(registry, store, "ctr", "1", actor="seed")
    env = os.environ | {"BIDSCORE_REGISTRY": backends[0], "BIDSCORE_STORE": backends[1]}
    procs = [
        subprocess.Popen(
            [CONTROL, "promote", "ctr", str(v), "--expect-version", "1", "--json"],
            env=env | {"BIDSCORE_ACTOR": f"op{v}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in range(2, 10)
    ]
    results = {
        v: (p.wait(timeout=120), *p.communicate()) for v, p in zip(range(2, 10), procs, strict=True)
    }
    winners = [v for v, (code, _, _) in results.items() if code == 0]
    assert len(winners) == 1, results
    for v, (code, _, err) in results.items():
        if v != winners[0]:
            assert code == 3, err
            assert len(err.strip().splitlines()) == 1
    history = registry.alias_history("ctr", "production")
    assert [(m.generation, m.from_version, m.to_version, m.actor) for m in history] == [
        (1, None, "1", "seed"),
        (2, "1", str(winners[0]), f"op{winners[0]}"),
    ]


def test_progress_bars_on_a_terminal() -> None:
    out = io.StringIO()
    terminal = Console(file=out, force_terminal=True, width=120)
    with RichObserver(terminal) as observer:
        observer.stage("reading logs.parquet")
        observer.stage("training")
        for epoch in (1, 2, 3):
            observer.epoch(epoch, 3, 0.2 / epoch, 0.25 / epoch)
        observer.transfer("model", 2048)
        observer.advance(2048)
    text = out.getvalue()
    assert "reading logs.parquet" in text
    assert "epoch 3: train 0.06667 valid 0.08333" in text
    assert "upload model" in text
    quiet = io.StringIO()
    with RichObserver(Console(file=quiet, force_terminal=False)) as observer:
        observer.stage("reading")
    assert quiet.getvalue() == ""  # logs and pipes stay clean


def test_corrupted_artifact_refused_by_the_cli_even_with_force(
    trained_ctr, tmp_path: Path, sqlite_urls: list[str]
) -> None:
    registry, store = open_registry(sqlite_urls[1]), open_store(sqlite_urls[3])
    version = publish(trained_ctr, registry, store)
    path = store.local_path(version.artifact_uri)
    assert path is not None
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit of the last weight
    path.write_bytes(bytes(data))
    result = invoke("promote", "ctr", "1", "--force", *sqlite_urls)
    assert result.exit_code == 4
    one_line_error(result, "checksum mismatch")
    assert registry.get_alias("ctr", "production") is None


def test_promote_to_an_unknown_alias_suggests_the_closest(
    trained_ctr, sqlite_urls: list[str]
) -> None:
    registry, store = open_registry(sqlite_urls[1]), open_store(sqlite_urls[3])
    publish(trained_ctr, registry, store)
    publish(trained_ctr, registry, store)
    assert invoke("promote", "ctr", "1", *sqlite_urls).exit_code == 0
    result = invoke("promote", "ctr", "2", "--alias", "prodution", *sqlite_urls)
    assert result.exit_code == EXIT_USAGE
    one_line_error(
        result, "its aliases: production", "did you mean 'production'?", "--create-alias"
    )
    created = invoke("promote", "ctr", "2", "--alias", "canary", "--create-alias", *sqlite_urls)
    assert created.exit_code == 0, created.stderr
    listed = ok_json("models", "list", "ctr", *sqlite_urls[:2])
    assert [v["aliases"] for v in listed] == [["production"], ["canary"]]


# --- output for scripts and logs ----------------------------------------------------------


def test_training_in_a_log_prints_plain_progress_lines(
    sqlite_urls: list[str], small_logs: Path
) -> None:
    # CliRunner's stdout is not a terminal, like a CI log or a scheduler's.
    result = invoke("train", *CTR_LR, "--data", str(small_logs), *sqlite_urls)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"reading {small_logs}"
    assert any(line.startswith("profiling ") and "training rows" in line for line in lines)
    assert any(line.startswith("tokenising ") and "validation rows" in line for line in lines)
    assert "training lr: up to 2 epochs, 1 thread(s)" in lines
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [e.split(":")[0] for e in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert any(line.startswith("uploading model: ") and "bytes" in line for line in lines)
    assert "registered ctr version 1" in result.stdout
    assert "\x1b[" not in result.stdout  # no bars, no colour codes in a log


def test_plain_progress_stays_out_of_json(sqlite_urls: list[str], small_logs: Path) -> None:
    result = invoke("train", *CTR_LR, "--data", str(small_logs), *sqlite_urls, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["version"] == "1"


@pytest.fixture
def blocked_registry(tmp_path: Path) -> str:
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    return f"sqlite://{blocked}/r.db"


def _failing_invocations(tmp_path: Path, dead: str) -> dict[str, list[str]]:
    """One failing invocation of every command that has --json."""
    absent = str(tmp_path / "absent.parquet")
    return {
        "train": ["train", "--model", "ctr", "--data", absent, "--registry", dead],
        "models list": ["models", "list", "--registry", dead],
        "models show": ["models", "show", "ctr", "1", "--registry", dead],
        "promote": ["promote", "ctr", "1", "--registry", dead],
        "rollback": ["rollback", "ctr", "--registry", dead],
        "history": ["history", "ctr", "--registry", dead],
        "datagen": ["datagen", "--rows", "10", "--out", absent, "--shift-from-day", "2"],
        "loadtest": ["loadtest", "--target", "127.0.0.1:1", "--duration", "0"],
        "retrain": ["retrain", "--model", "ctr", "--data", absent, "--registry", dead],
        "runs list": ["runs", "list", "ctr", "--registry", dead],
        "runs show": ["runs", "show", "no-such-run", "--registry", dead],
        "monitor offline": ["monitor", "offline", "ctr", "--registry", dead],
        "monitor online": ["monitor", "online"],
        "monitor drift": ["monitor", "drift", "ctr", "--registry", dead],
        "models params": ["models", "params", "ctr", "--registry", dead],
        "tune": ["tune", "--model", "ctr", "--data", absent, "--trials", "0"],
        "experiment start": ["experiment", "start", "e", "--model", "ctr", "--treatment", "2",
                             "--share", "0.1", "--key", "user_id", "--registry", dead],
        "experiment status": ["experiment", "status", "e", "--predictions", absent],
        "experiment stop": ["experiment", "stop", "e", "--registry", dead],
        "experiment list": ["experiment", "list", "--registry", dead],
        "experiment history": ["experiment", "history", "e", "--registry", dead],
    }  # fmt: skip


def _commands_with_json() -> set[str]:
    found = set()

    # Typer ships its own click: walk the command tree by its attributes.
    def walk(command: Any, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            for name, sub in subcommands.items():
                walk(sub, [*path, name])
        elif any("--json" in p.opts for p in command.params):
            found.add(" ".join(path))

    walk(typer.main.get_command(app), [])
    return found


def test_every_json_command_reports_errors_as_json(
    tmp_path: Path, blocked_registry: str, bidscore_home: Path
) -> None:
    cases = _failing_invocations(tmp_path, blocked_registry)
    assert set(cases) == _commands_with_json()  # a new --json command needs a case here
    for name, args in cases.items():
        result = invoke(*args, "--json")
        assert result.exit_code not in (0, 2), (name, result.stdout, result.stderr)
        error = json.loads(result.stdout)
        assert set(error) == {"error", "exit_code"}, name
        assert error["exit_code"] == result.exit_code, name
        # The one line on stderr says the same, for people reading the log.
        assert one_line_error(result) == f"error: {error['error']}", name


def test_usage_errors_of_the_entry_point_are_json_too(bidscore_home: Path) -> None:
    for args, fragment in [
        (["promote", "ctr", "--json"], "Missing argument 'version'"),
        (["models", "list", "--json", "--bogus"], "No such option: --bogus"),
    ]:
        done = subprocess.run(
            [CONTROL, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == EXIT_USAGE, done.stderr
        error = json.loads(done.stdout)
        assert error == {"error": error["error"], "exit_code": EXIT_USAGE}
        assert fragment in error["error"]
        assert fragment in done.stderr  # Click's usage text, as without --json


def test_models_list_on_an_empty_registry_says_what_to_do(sqlite_urls: list[str]) -> None:
    open_registry(sqlite_urls[1]).list_versions()  # an empty registry (missing: refused)
    result = invoke("models", "list", *sqlite_urls[:2])
    assert result.exit_code == 0
    assert "no versions yet" in result.stdout
    assert "run `control train --model ctr --data LOGS`" in result.stdout
    assert ok_json("models", "list", *sqlite_urls[:2]) == []


def test_version_from_the_package_metadata() -> None:
    expected = importlib.metadata.version("bidscore")
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"control (bidscore) {expected}")
    completed = subprocess.run(
        [CONTROL, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"control (bidscore) {expected}")
