"""`control experiment start|status|stop|list|history|watch`: A/B tests, canaries and shadows
of one model, judged on realised outcomes (docs/experiments.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from bidscore import settings
from bidscore.experiments import Experiment
from bidscore.store import open_store
from control.cli.monitor import AsOfOpt, OutcomesOpt, PredictionsOpt, WindowOpt, attribution_windows
from control.cli.options import JsonOpt, RegistryOpt, SpecsOpt, StoreOpt, store_url
from control.cli.output import console, fail, print_json, user_errors
from control.cli.registries import for_reading
from control.exits import EXIT_GUARDRAIL

if TYPE_CHECKING:
    from control.experiments.guardrails import GuardrailResult
    from control.experiments.status import StatusInputs

app = typer.Typer(
    help="Experiments: A/B tests, canaries (stopped automatically on a guardrail breach) and "
    "shadows of one model, measured on the prediction log joined with realised outcomes.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Experiment name, e.g. ctr-v7.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why, for the experiment's history.")]
MetricsUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--metrics-url",
        help="A scoring server's Prometheus /metrics URL, for the canary's error-rate guardrail"
        " (per-arm request counts by grpc_code). Without it that guardrail is not evaluated.",
    ),
]


# --- start ----------------------------------------------------------------------------------


@app.command("start")
def start(  # noqa: PLR0917 -- Typer maps each parameter to one option
    name: NameArg,
    model: Annotated[str, typer.Option("--model", help="Model name, e.g. ctr.")],
    treatment: Annotated[str, typer.Option("--treatment", help="The version under test.")],
    share: Annotated[
        float,
        typer.Option("--share", help="Treatment's share of requests, in (0, 1) (shadow: (0, 1])."),
    ],
    key: Annotated[
        str,
        typer.Option(
            "--key",
            help="The request context key that assigns a request to an arm (user_id, device_id,"
            " request_id...); a request without it goes to control.",
        ),
    ],
    control: Annotated[
        str | None,
        typer.Option("--control", help="Control version. Default: the production alias's."),
    ] = None,
    mode: Annotated[
        Literal["ab", "canary", "shadow"],
        typer.Option(
            "--mode",
            help="ab: split traffic; canary: split with guardrails; shadow: the treatment also"
            " scores --share of requests for the log only, the bidder sees control.",
        ),
    ] = "ab",
    salt: Annotated[
        str | None,
        typer.Option("--salt", help="Assignment salt. Default: random, recorded."),
    ] = None,
    guardrail: Annotated[
        list[str] | None,
        typer.Option(
            "--guardrail",
            help="Canary limit (repeatable): calibration=LOW:HIGH, psi=MAX, error-rate=MAX"
            " (treatment above control, absolute), min-outcomes=N. Default: 0.8:1.25, 0.25,"
            " 0.001, 50.",
        ),
    ] = None,
    reason: ReasonOpt = "",
    registry: RegistryOpt = None,
    store: StoreOpt = None,
    specs: SpecsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Start an experiment on MODEL: both arms' artifacts are verified like `control promote`
    does (checksum, model file, fingerprint); a model has at most one running experiment.

    Exit codes: 1 bad input (nothing written), 3 the model already has a running experiment,
    4 an arm's artifact fails an integrity check.
    """
    from control.experiments import lifecycle  # noqa: PLC0415 -- keep --help fast
    from features import catalog  # noqa: PLC0415

    with user_errors(json_out):
        rails = lifecycle.parse_guardrails(guardrail) if guardrail else None
        experiment = lifecycle.start(
            for_reading(registry),
            open_store(store_url(store)),
            name=name,
            model=model,
            treatment=treatment,
            control=control,
            share=share,
            key=key,
            mode=mode,
            salt=salt,
            guardrails=rails,
            actor=settings.default_actor(),
            reason=reason,
            catalog=catalog.load(specs),
        )
    if json_out:
        print_json(experiment.to_json())
        return
    _say(
        f"started {experiment.name}: {experiment.mode} of {experiment.model}, control"
        f" v{experiment.control} vs treatment v{experiment.treatment} at share"
        f" {experiment.share:g}, key {experiment.key}, salt {experiment.salt}"
        f" (generation {experiment.generation}, by {experiment.started_by})"
    )
    if experiment.guardrails is not None:
        g = experiment.guardrails
        _say(
            f"guardrails: calibration [{g.calibration_low:g}, {g.calibration_high:g}] after"
            f" {g.min_outcomes} outcomes, PSI <= {g.max_psi:g}, error rate <= control +"
            f" {g.max_error_rate_increase:g}"
        )


# --- status ---------------------------------------------------------------------------------


@app.command("status")
def status(  # noqa: PLR0917 -- Typer maps each parameter to one option
    name: NameArg,
    predictions: PredictionsOpt = None,
    outcomes: OutcomesOpt = None,
    window: WindowOpt = None,
    as_of: AsOfOpt = None,
    metrics_url: MetricsUrlOpt = None,
    registry: RegistryOpt = None,
    specs: SpecsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Per arm: requests, settled impressions, observed rate, mean prediction, calibration,
    logloss and AUC with 95% intervals, treatment - control, the sample-ratio test and the
    verdict (decided on logloss per impression). A canary's guardrails too.

    Without --predictions and --outcomes: the record alone.
    """
    from control.experiments.status import experiment_status  # noqa: PLC0415

    if bool(predictions) != bool(outcomes):
        fail(
            "give both the prediction log (--predictions) and the outcomes (--outcomes)",
            json_out=json_out,
        )
    with user_errors(json_out):
        experiment = for_reading(registry).get_experiment(name)
        inputs = _inputs(experiment, predictions, outcomes, window, as_of, metrics_url, specs)
        result = experiment_status(experiment, inputs)
    if json_out:
        print_json(result.to_dict())
        return
    from control.cli.experiment_tables import print_status  # noqa: PLC0415

    print_status(result)


def _inputs(  # noqa: PLR0917 -- the status options
    experiment: Experiment,
    predictions: list[str] | None,
    outcomes: list[str] | None,
    window: list[str] | None,
    as_of: str | None,
    metrics_url: str | None,
    specs: str | None,
) -> StatusInputs | None:
    from control.experiments.status import StatusInputs  # noqa: PLC0415
    from control.monitor.durations import parse_instant  # noqa: PLC0415
    from control.monitor.predictions import read_predictions  # noqa: PLC0415
    from features import catalog  # noqa: PLC0415

    if not predictions or not outcomes:
        return None
    return StatusInputs(
        log=read_predictions(predictions),
        outcomes=outcomes,
        target=catalog.load(specs).target(experiment.model),
        windows=attribution_windows(window or []),
        as_of=parse_instant(as_of) if as_of else None,
        metrics_url=metrics_url,
    )


# --- stop -----------------------------------------------------------------------------------


@app.command("stop")
def stop(  # noqa: PLR0917 -- Typer maps each parameter to one option
    name: NameArg,
    promote: Annotated[
        Literal["treatment", "control"] | None,
        typer.Option(
            "--promote",
            help="Also move the production alias to this arm's version, through the same"
            " integrity checks, gates and compare-and-set as `control promote`.",
        ),
    ] = None,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="With --promote: logs to score the arm and production on (the same rows)."
            " Default: the arm's validation rows, as `control promote` does.",
        ),
    ] = None,
    reason: ReasonOpt = "",
    registry: RegistryOpt = None,
    store: StoreOpt = None,
    specs: SpecsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Stop an experiment (compare-and-set): every server returns all traffic to the production
    alias on its next poll. With --promote, the arm is promoted first; a refused promotion
    (exit 4) leaves the experiment running.

    Exit codes: 1 error, 3 the experiment moved meanwhile or is already stopped, 4 promotion
    refused by a gate or an integrity check.
    """
    from control.experiments import lifecycle  # noqa: PLC0415
    from control.monitor.drift import promotion_gate  # noqa: PLC0415
    from control.rescoring import candidate_validation_rows, rows_from_logs  # noqa: PLC0415
    from features import catalog  # noqa: PLC0415

    with user_errors(json_out):
        reg = for_reading(registry)
        models = catalog.load(specs)
        rows = None
        if promote is not None:
            experiment = reg.get_experiment(name)
            rows = (
                rows_from_logs(experiment.model, data, models)
                if data
                else candidate_validation_rows(
                    reg.get_version(experiment.model, experiment.version_of(promote)), models
                )
            )
        stopped, promotion = lifecycle.stop(
            reg,
            open_store(store_url(store)),
            name,
            actor=settings.default_actor(),
            reason=reason,
            promote_arm=promote,
            rows=rows,
            extra_gates=[promotion_gate],
            catalog=models,
        )
    if json_out:
        body = stopped.to_json()
        body["promotion"] = None if promotion is None else promotion.to_dict()
        print_json(body)
        return
    _say(
        f"stopped {stopped.name} (generation {stopped.generation}, by {stopped.stopped_by}):"
        f" all traffic of {stopped.model} back on the production alias at the servers' next poll"
    )
    if promotion is not None:
        from control.cli.promote import report_promotion  # noqa: PLC0415

        report_promotion(promotion, "promoted")
    elif promote is not None:
        _say(f"production already pointed at the {promote} (v{stopped.version_of(promote)})")


# --- list / history -------------------------------------------------------------------------


@app.command("list")
def list_(
    model: Annotated[
        str | None, typer.Option("--model", help="Only this model's experiments.")
    ] = None,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Every experiment (or one model's), running or stopped."""
    with user_errors(json_out):
        experiments = for_reading(registry).list_experiments(model)
    if json_out:
        print_json([e.to_json() for e in experiments])
        return
    if not experiments:
        _say("no experiments yet: start one with control experiment start NAME --model ...")
        return
    table = Table(title="experiments")
    for column in ("name", "model", "mode", "state", "control", "treatment", "share", "key",
                   "started (UTC)", "stopped (UTC)", "promoted"):  # fmt: skip
        table.add_column(column)
    for e in experiments:
        table.add_row(
            e.name,
            e.model,
            e.mode,
            e.state,
            e.control,
            e.treatment,
            f"{e.share:g}",
            e.key,
            _when(e.started_at),
            _when(e.stopped_at),
            e.promoted or "-",
        )
    console.print(table)


@app.command("history")
def history(name: NameArg, registry: RegistryOpt = None, json_out: JsonOpt = False) -> None:
    """Every state move of an experiment: who, when, why (oldest first)."""
    with user_errors(json_out):
        events = for_reading(registry).experiment_history(name)
        if not events:
            from bidscore.errors import NotFoundError  # noqa: PLC0415

            raise NotFoundError(f"unknown experiment {name!r}")
    if json_out:
        print_json([e.to_dict() for e in events])
        return
    table = Table(title=f"history of experiment {name}")
    for column in ("gen", "when (UTC)", "kind", "state", "by", "reason"):
        table.add_column(column, justify="right" if column == "gen" else "left")
    for e in events:
        table.add_row(str(e.generation), _when(e.at), e.kind, e.state, e.actor, escape(e.reason))
    console.print(table)


# --- watch ----------------------------------------------------------------------------------


@app.command("watch")
def watch(  # noqa: PLR0917 -- Typer maps each parameter to one option
    name: NameArg,
    predictions: PredictionsOpt = None,
    outcomes: OutcomesOpt = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between rounds.")] = 60.0,
    max_iterations: Annotated[
        int | None,
        typer.Option("--max-iterations", help="Stop after N rounds (default: until stopped)."),
    ] = None,
    window: WindowOpt = None,
    as_of: AsOfOpt = None,
    metrics_url: MetricsUrlOpt = None,
    registry: RegistryOpt = None,
    specs: SpecsOpt = None,
) -> None:
    """Check a canary's guardrails every --interval seconds (re-reading the log and the
    outcomes) and stop it on a breach (actor "watch", the breach as the reason). Ends by itself
    once the experiment is stopped.

    Exit codes: 0 the experiment is stopped (not by this watch) or --max-iterations passed,
    6 this watch stopped the canary on a guardrail breach, 1 error.
    """
    from control.experiments.status import experiment_status  # noqa: PLC0415
    from control.experiments.watch import watch as watch_loop  # noqa: PLC0415

    if not predictions or not outcomes:
        fail("give the prediction log (--predictions) and the outcomes (--outcomes)")

    def check(experiment: Experiment) -> list[GuardrailResult]:
        inputs = _inputs(experiment, predictions, outcomes, window, as_of, metrics_url, specs)
        return experiment_status(experiment, inputs).guardrails

    with user_errors():
        result = watch_loop(
            for_reading(registry),
            name,
            check,
            interval=interval,
            max_iterations=max_iterations,
            say=_say,
        )
    if result.outcome == "breach":
        raise typer.Exit(EXIT_GUARDRAIL)


# --- shared ---------------------------------------------------------------------------------


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _when(at: str | None) -> str:
    return "-" if not at else at[:19].replace("T", " ")
