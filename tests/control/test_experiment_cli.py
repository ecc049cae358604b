"""`control experiment` through the real CLI (CliRunner) on both registry backends: start ->
status -> stop -> history -> list, bad input (one line, non-zero exit, nothing written), a
second running experiment refused, a corrupt treatment refused, stop --promote through the
promotion gates, and a miscalibrated canary stopped by `watch` with the reason recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bidscore.registry import Registry, open_registry
from bidscore.store import open_store
from control.cli.app import app
from control.exits import EXIT_CONFLICT, EXIT_GUARDRAIL, EXIT_REFUSED
from control.training import TrainedModel
from tests.control.experiment_data import Scorer, publish_versions, settled_after, simulate

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok_json(*args: str) -> object:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def one_line_error(result: Result, code: int, *fragments: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def urls(backends: tuple[str, str], trained_ctr: TrainedModel) -> list[str]:
    """Registry and store with ctr v1..v3 (real artifacts), production on v1."""
    registry = open_registry(backends[0], create=True)
    publish_versions(trained_ctr, registry, open_store(backends[1]), 3)
    return ["--registry", backends[0], "--store", backends[1]]


def _registry(urls: list[str]) -> Registry:
    return open_registry(urls[1])


START = ("experiment", "start", "ctr-v2", "--model", "ctr", "--treatment", "2", "--share", "0.1",
         "--key", "user_id")  # fmt: skip


def test_start_stop_history_list_round_trip(urls: list[str]) -> None:
    started = ok_json(*START, "--reason", "try v2", *urls)
    assert started["state"] == "running"
    assert (started["control"], started["treatment"], started["generation"]) == ("1", "2", 1)
    assert started["salt"]  # random, recorded
    shown = invoke("experiment", "status", "ctr-v2", *urls[:2])
    assert shown.exit_code == 0
    assert "control v1 vs treatment v2" in shown.stdout

    again = invoke(*START[:2], "ctr-v3", *START[3:], *urls)
    one_line_error(again, EXIT_CONFLICT, "already has a running experiment 'ctr-v2'")

    stopped = ok_json("experiment", "stop", "ctr-v2", "--reason", "enough", *urls)
    assert (stopped["state"], stopped["generation"], stopped["promoted"]) == ("stopped", 2, None)
    one_line_error(invoke("experiment", "stop", "ctr-v2", *urls), EXIT_CONFLICT, "already stopped")
    history = ok_json("experiment", "history", "ctr-v2", *urls[:2])
    assert [(e["kind"], e["reason"]) for e in history] == [("start", "try v2"), ("stop", "enough")]
    listed = ok_json("experiment", "list", "--model", "ctr", *urls[:2])
    assert [(e["name"], e["state"]) for e in listed] == [("ctr-v2", "stopped")]
    table = invoke("experiment", "list", *urls[:2])
    assert table.exit_code == 0
    assert "ctr-v2" in table.stdout
    assert invoke("experiment", "history", "ctr-v2", *urls[:2]).exit_code == 0


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"--model": "nope"}, "unknown model 'nope'"),
        ({"--treatment": "9"}, "no version '9'"),
        ({"--share": "1.5"}, "--share must be in (0, 1)"),
        ({"--share": "0"}, "--share must be in (0, 1)"),
        ({"--key": ""}, "--key must name a request context key"),
        ({"--treatment": "1"}, "treatment and control are both version 1"),
        ({"--guardrail": "psi=0.2"}, "--guardrail applies to --mode canary"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    urls: list[str], changes: dict[str, str], fragment: str
) -> None:
    args = list(START)
    for option, value in changes.items():
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    one_line_error(invoke(*args, *urls), 1, fragment)
    assert _registry(urls).list_experiments() == []


def test_a_model_without_production_is_refused(
    backends: tuple[str, str], trained_ctr: TrainedModel
) -> None:
    from control.training import publish  # noqa: PLC0415

    registry = open_registry(backends[0], create=True)
    store = open_store(backends[1])
    publish(trained_ctr, registry, store)
    publish(trained_ctr, registry, store)
    result = invoke(*START, "--control", "1", "--registry", backends[0], "--store", backends[1])
    one_line_error(result, 1, "no 'production' alias", "control promote ctr")
    assert registry.list_experiments() == []


def test_a_corrupt_treatment_is_refused(urls: list[str], tmp_path: Path) -> None:
    """Version 4 is v2's manifest over a copy of its artifact with one byte flipped: the
    checksum `control promote` verifies fails, and nothing is written."""
    registry = _registry(urls)
    version = registry.get_version("ctr", "2")
    store = open_store(urls[3])
    local = tmp_path / "model.bin"
    store.get(version.artifact_uri, local)
    data = bytearray(local.read_bytes())
    data[-1] ^= 0xFF
    local.write_bytes(bytes(data))
    registry.register_version("ctr", version.manifest, store.put(local, "ctr/corrupt.model"))
    result = invoke(*START[:6], "4", *START[7:], *urls)
    one_line_error(result, EXIT_REFUSED, "ctr v4 refused")
    assert registry.list_experiments() == []


def test_stop_promote_treatment_goes_through_the_gates(urls: list[str]) -> None:
    ok_json(*START, *urls)
    stopped = ok_json("experiment", "stop", "ctr-v2", "--promote", "treatment", *urls)
    assert stopped["promoted"] == "treatment"
    promotion = stopped["promotion"]
    assert (promotion["previous_version"], promotion["alias"]["version"]) == ("1", "2")
    assert {g["name"] for g in promotion["gates"]} >= {"base rate", "logloss", "auc"}
    registry = _registry(urls)
    assert registry.get_alias("ctr", "production").version == "2"  # type: ignore[union-attr]
    assert registry.get_experiment("ctr-v2").state == "stopped"


def test_status_of_a_planted_better_treatment(urls: list[str], tmp_path: Path) -> None:
    ok_json(*START[:-3], "0.3", "--key", "user_id", "--salt", "planted", *urls)
    experiment = _registry(urls).get_experiment("ctr-v2")
    written = simulate(
        tmp_path, experiment, control=Scorer(noise=1.0, scale=0.7), treatment=Scorer(), rows=60_000
    )
    logs = ["--predictions", str(written.log.parent), "--outcomes", str(written.outcomes)]
    as_of = ["--as-of", str(settled_after(written))]
    status = ok_json("experiment", "status", "ctr-v2", *logs, *as_of, *urls[:2])
    assert status["verdict"]["outcome"] == "better"  # type: ignore[index]
    assert status["differences"]["logloss"]["high"] < 0  # type: ignore[index]
    assert status["srm"]["flagged"] is False  # type: ignore[index]
    table = invoke("experiment", "status", "ctr-v2", *logs, *as_of, *urls[:2])
    assert table.exit_code == 0, table.stderr
    assert "treatment better: logloss difference" in table.stdout
    print(table.stdout)  # the closing note of issue 16 quotes it (pytest -s)


def test_watch_stops_a_miscalibrated_canary(urls: list[str], tmp_path: Path) -> None:
    canary = ok_json(
        *START[:-3], "0.2", "--key", "user_id", "--mode", "canary",
        "--guardrail", "calibration=0.8:1.25", "--guardrail", "min-outcomes=50", *urls,
    )  # fmt: skip
    assert canary["guardrails"]["calibration_high"] == 1.25  # type: ignore[index]
    experiment = _registry(urls).get_experiment("ctr-v2")
    # Treatment predicts about twice the true odds.
    written = simulate(
        tmp_path, experiment, control=Scorer(), treatment=Scorer(shift=0.7), rows=20_000
    )
    logs = ["--predictions", str(written.log.parent), "--outcomes", str(written.outcomes)]
    as_of = ["--as-of", str(settled_after(written))]
    status = ok_json("experiment", "status", "ctr-v2", *logs, *as_of, *urls[:2])
    rails = {g["name"]: g for g in status["guardrails"]}  # type: ignore[index]
    assert rails["calibration"]["state"] == "breach"
    assert rails["error-rate"]["detail"] == "error-rate guardrail not evaluated (no --metrics-url)"

    result = invoke(
        "experiment", "watch", "ctr-v2", *logs, *as_of, "--interval", "0", "--max-iterations",
        "3", *urls[:2],
    )  # fmt: skip
    assert result.exit_code == EXIT_GUARDRAIL, result.stdout + result.stderr
    stopped = _registry(urls).get_experiment("ctr-v2")
    assert (stopped.state, stopped.stopped_by) == ("stopped", "watch")
    assert stopped.stop_reason is not None
    assert stopped.stop_reason.startswith("canary guardrail: treatment calibration ")
    assert "outside [0.8, 1.25] over " in stopped.stop_reason
    assert _registry(urls).running_experiments() == []  # traffic back on control
    history = ok_json("experiment", "history", "ctr-v2", *urls[:2])
    assert history[-1]["actor"] == "watch"  # type: ignore[index]
    # A second watch finds it stopped and ends by itself (exit 0).
    again = invoke("experiment", "watch", "ctr-v2", *logs, "--interval", "0", *urls[:2])
    assert again.exit_code == 0
    assert "is stopped (by watch" in again.stdout


def test_the_monitoring_report_shows_experiments(urls: list[str], tmp_path: Path) -> None:
    """A skewed A/B test in the log: the report's experiments section puts the arms side by
    side with intervals, and the sample-ratio mismatch is an alarm on top."""
    ok_json(*START[:-3], "0.3", "--key", "user_id", *urls)
    experiment = _registry(urls).get_experiment("ctr-v2")
    written = simulate(
        tmp_path, experiment, control=Scorer(noise=1.0), treatment=Scorer(), rows=20_000,
        drop_treatment=0.3,
    )  # fmt: skip
    out = tmp_path / "report.html"
    result = invoke(
        "monitor", "report", "--out", str(out), "--predictions", str(written.log.parent),
        "--outcomes", str(written.outcomes), "--as-of", str(settled_after(written)), *urls[:2],
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    page = out.read_text()
    section = page[page.index('<h2 id="experiments">') : page.index("<h2>Feature distributions")]
    assert 'id="experiment-ctr-v2"' in section
    assert "control v1" in section
    assert "treatment v2" in section
    assert "logloss" in section
    assert '<p class="alarm srm">Sample ratio: SAMPLE RATIO MISMATCH' in section
    flags = page[page.index('<h2 id="flags">') : page.index("<h2>Offline")]
    assert "experiment.srm" in flags


def test_a_treatment_trained_on_other_features_is_refused(
    urls: list[str], trained_ctr: TrainedModel
) -> None:
    """A real model file carrying cvr's spec fingerprint, with a manifest that agrees: only the
    comparison with the running feature code catches it, as in `control promote`."""
    import dataclasses  # noqa: PLC0415

    import pyarrow.parquet as pq  # noqa: PLC0415

    import rust_core  # noqa: PLC0415
    from control.training import publish  # noqa: PLC0415
    from features.bid import SPECS  # noqa: PLC0415
    from features.tokenize import tokenize_table  # noqa: PLC0415

    rows = tokenize_table(pq.read_table(trained_ctr.data["paths"][0]), SPECS["ctr"], "click")
    other = rust_core.train_lr(
        rows, epochs=1, bits=SPECS["ctr"].bits, fingerprint=SPECS["cvr"].fingerprint
    )
    registry = _registry(urls)
    version = publish(dataclasses.replace(trained_ctr, model=other), registry, open_store(urls[3]))
    result = invoke(*START[:6], version.version, *START[7:], *urls)
    one_line_error(result, EXIT_REFUSED, f"ctr v{version.version} refused", "feature spec mismatch")
    assert registry.list_experiments() == []


def test_stop_promote_control_keeps_production(urls: list[str]) -> None:
    ok_json(*START, *urls)
    stopped = ok_json("experiment", "stop", "ctr-v2", "--promote", "control", *urls)
    assert (stopped["promoted"], stopped["promotion"]) == ("control", None)
    assert _registry(urls).get_alias("ctr", "production").version == "1"  # type: ignore[union-attr]


def test_watch_needs_a_canary_and_runs_bounded_rounds(urls: list[str], tmp_path: Path) -> None:
    ok_json(*START, *urls)
    experiment = _registry(urls).get_experiment("ctr-v2")
    written = simulate(tmp_path, experiment, control=Scorer(), treatment=Scorer(), rows=2_000)
    logs = ["--predictions", str(written.log.parent), "--outcomes", str(written.outcomes)]
    refused = invoke("experiment", "watch", "ctr-v2", *logs, "--interval", "0", *urls[:2])
    one_line_error(refused, 1, "watch needs a canary")
    ok_json("experiment", "stop", "ctr-v2", *urls)

    ok_json(*START[:2], "ctr-v2-canary", *START[3:], "--mode", "canary", *urls)
    canary = _registry(urls).get_experiment("ctr-v2-canary")
    written = simulate(tmp_path / "c", canary, control=Scorer(), treatment=Scorer(), rows=4_000)
    logs = ["--predictions", str(written.log.parent), "--outcomes", str(written.outcomes)]
    result = invoke(
        "experiment", "watch", "ctr-v2-canary", *logs, "--as-of", str(settled_after(written)),
        "--interval", "0", "--max-iterations", "2", *urls[:2],
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.count("round ") == 2
    assert _registry(urls).get_experiment("ctr-v2-canary").running


def test_the_error_rate_guardrail_reads_per_arm_failures(tmp_path: Path) -> None:
    """`--metrics-url`: a treatment failing 5 % against control's 1 % breaches the default
    +0.1 % limit; an endpoint without per-arm counts leaves the guardrail not evaluated."""
    import http.server  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from bidscore.experiments import Guardrails  # noqa: PLC0415
    from control.experiments.errors import fetch_arm_errors  # noqa: PLC0415
    from control.experiments.guardrails import error_rate  # noqa: PLC0415

    body = (
        b"# TYPE bidscore_experiment_requests_total counter\n"
        b'bidscore_experiment_requests_total{model="ctr",arm="control",grpc_code="OK"} 990\n'
        b'bidscore_experiment_requests_total{model="ctr",arm="control",grpc_code="INTERNAL"} 10\n'
        b'bidscore_experiment_requests_total{model="ctr",arm="treatment",grpc_code="OK"} 95\n'
        b'bidscore_experiment_requests_total{model="ctr",arm="treatment",grpc_code="INTERNAL"} 5\n'
    )

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body if self.path == "/metrics" else b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        counts, why = fetch_arm_errors(f"{url}/metrics", "ctr")
        result = error_rate(Guardrails(), counts, why)
        assert result.state == "breach", result
        assert "treatment error rate 5.0000% vs control 1.0000%" in result.detail
        counts, why = fetch_arm_errors(f"{url}/other", "ctr")
        assert counts is None
        assert error_rate(Guardrails(), counts, why).state == "not evaluated"
    finally:
        server.shutdown()
        server.server_close()


def test_two_concurrent_starts_through_the_entry_point_one_wins(urls: list[str]) -> None:
    """Two `control experiment start` processes on the same model at once: exactly one
    experiment runs, the other process exits 3 with one line."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "control", *START[:2], f"race-{i}", *START[3:], *urls],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, EXIT_CONFLICT], results
    loser = next(err for code, _, err in results if code == EXIT_CONFLICT)
    assert loser.strip().count("\n") == 0
    assert "already has a running experiment" in loser
    assert [e.name for e in _registry(urls).running_experiments()] in (["race-0"], ["race-1"])
