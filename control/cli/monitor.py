"""`control monitor offline|online|drift|report`: accuracy and data drift across versions and
in serving, as tables, JSON (`--json`) or one HTML report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from control.cli.defaults import default_of
from control.cli.options import JsonOpt, RegistryOpt, SpecsOpt
from control.cli.output import console, fail, needs_extra, print_json, user_errors
from control.cli.registries import for_reading
from control.exits import EXIT_ALARM
from control.monitor.attribution import DEFAULT_WINDOW_SECONDS, AttributionWindows
from control.monitor.cells import (
    ACCURACY_COLUMNS,
    VERSION_COLUMNS,
    accuracy_cells,
    metric_text,
    version_cells,
)
from control.monitor.collect import OnlineSettings
from control.monitor.drift import DriftReport, DriftThresholds
from control.monitor.durations import parse_duration, parse_instant
from control.monitor.flags import Flag
from control.monitor.offline import OfflineReport, OfflineTolerances
from control.monitor.online import BucketMetrics, OnlineReport, OnlineThresholds, iso
from control.monitor.predictions import PredictionLogData
from control.monitor.sources import MonitorInputError

if TYPE_CHECKING:
    from bidscore.registry import Registry
    from control.experiments.status import ExperimentStatus

app = typer.Typer(
    help="Monitor models: offline metrics over versions, online accuracy from the prediction "
    "log, feature drift, and an HTML report.",
    no_args_is_help=True,
)

ModelArg = Annotated[str, typer.Argument(help="Model name, e.g. ctr.")]
PredictionsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--predictions",
        help="Prediction log: a file, directory, glob or s3://bucket/prefix (repeatable).",
    ),
]
OutcomesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--outcomes",
        help="Outcome files (Parquet/CSV/JSONL with request_id, candidate_id, click/conversion "
        "and optional ts): file, directory, glob or s3:// prefix (repeatable).",
    ),
]
BucketOpt = Annotated[str, typer.Option("--bucket", help="Time bucket length: 15m, 1h, 1d...")]
WindowOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--window",
        help="Attribution window for every label (e.g. 1d), or LABEL=DURATION for one "
        "(conversion=7d); repeatable. Default 1d.",
    ),
]
AsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of", help="When outcomes were collected (unix seconds or ISO 8601). Default: now."
    ),
]
_DEFAULT_BAND = (
    f"{default_of(OnlineThresholds, 'calibration_low')},"
    f"{default_of(OnlineThresholds, 'calibration_high')}"
)
BandOpt = Annotated[
    str, typer.Option("--calibration-band", help="LOW,HIGH: calibration outside it is flagged.")
]
MarginOpt = Annotated[
    float,
    typer.Option(
        "--logloss-margin",
        help="Flag a bucket whose logloss exceeds the version's training logloss by this fraction.",
    ),
]
MinPositivesOpt = Annotated[
    int, typer.Option("--min-positives", help="Buckets with fewer positives are not flagged.")
]


# --- offline --------------------------------------------------------------------------------


@app.command("offline")
def offline(  # noqa: PLR0917 -- Typer maps each parameter to one option
    model: ModelArg,
    auc_drop: Annotated[
        float, typer.Option(help="Flag an AUC drop above this fraction.")
    ] = default_of(OfflineTolerances, "auc_drop"),
    logloss_rise: Annotated[
        float, typer.Option(help="Flag a logloss rise above this fraction.")
    ] = default_of(OfflineTolerances, "logloss_rise"),
    rows_drop: Annotated[
        float, typer.Option(help="Flag a row-count fall above this fraction.")
    ] = default_of(OfflineTolerances, "rows_drop"),
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Metrics of every version of MODEL, flagging regressions against the version before."""
    from control.monitor.collect import offline_reports  # noqa: PLC0415 - keep --help fast

    with user_errors(json_out):
        tolerances = OfflineTolerances(
            auc_drop=auc_drop, logloss_rise=logloss_rise, rows_drop=rows_drop
        )
        (report,) = offline_reports(for_reading(registry), [model], tolerances)
    if json_out:
        print_json(report.to_dict())
        return
    console.print(_offline_table(report))
    _print_flags(report.flags)


def _offline_table(report: OfflineReport) -> Table:
    table = Table(title=f"offline metrics of {report.model}")
    for column in VERSION_COLUMNS:
        table.add_column(column, justify="left" if column in ("version", "created") else "right")
    flagged = {f.version for f in report.flags}
    for v in report.versions:
        table.add_row(*version_cells(v, " !" if v.version in flagged else ""))
    return table


# --- online ---------------------------------------------------------------------------------


@app.command("online")
def online(  # noqa: PLR0917 -- Typer maps each parameter to one option
    predictions: PredictionsOpt = None,
    outcomes: OutcomesOpt = None,
    bucket: BucketOpt = "1h",
    window: WindowOpt = None,
    as_of: AsOfOpt = None,
    calibration_band: BandOpt = _DEFAULT_BAND,
    logloss_margin: MarginOpt = default_of(OnlineThresholds, "logloss_margin"),
    min_positives: MinPositivesOpt = default_of(OnlineThresholds, "min_positives"),
    registry: RegistryOpt = None,
    specs: SpecsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Online accuracy per model, version and time bucket from the prediction log and outcomes."""
    if not predictions or not outcomes:
        fail(
            "give the prediction log (--predictions) and the outcomes (--outcomes)",
            json_out=json_out,
        )
    with user_errors(json_out):
        from control.monitor.predictions import read_predictions  # noqa: PLC0415

        settings = _online_settings(bucket, window, calibration_band, logloss_margin, min_positives)
        report = _online_report(
            read_predictions(predictions), outcomes, settings, as_of, registry, specs
        )
    if json_out:
        print_json(report.to_dict())
        return
    console.print(_online_table(report))
    _print_flags(report.flags)


def _online_settings(
    bucket: str, window: list[str] | None, band: str, margin: float, min_positives: int
) -> OnlineSettings:
    return OnlineSettings(
        bucket_seconds=parse_duration(bucket),
        windows=attribution_windows(window or []),
        thresholds=_thresholds(band, margin, min_positives),
    )


def _online_report(  # noqa: PLR0917 -- private helper of two commands
    log: PredictionLogData,
    outcomes: list[str],
    settings: OnlineSettings,
    as_of: str | None,
    registry: str | None,
    specs: str | None = None,
) -> OnlineReport:
    from control.monitor.collect import online_from_log  # noqa: PLC0415
    from features import catalog  # noqa: PLC0415

    models = catalog.load(specs)
    return online_from_log(
        log,
        outcomes,
        {name: models.target(name) for name in models.names},
        parse_instant(as_of) if as_of else time.time(),
        settings=settings,
        registry=for_reading(registry),
    )


def attribution_windows(values: list[str]) -> AttributionWindows:
    default, per_label = DEFAULT_WINDOW_SECONDS, {}
    for value in values:
        label, sep, duration = value.partition("=")
        if sep:
            per_label[label.strip()] = parse_duration(duration)
        else:
            default = parse_duration(value)
    return AttributionWindows(default=default, per_label=per_label)


def _thresholds(band: str, margin: float, min_positives: int) -> OnlineThresholds:
    try:
        low, high = (float(x) for x in band.split(","))
    except ValueError:
        raise MonitorInputError(f"--calibration-band must be LOW,HIGH, got {band!r}") from None
    return OnlineThresholds(
        calibration_low=low,
        calibration_high=high,
        logloss_margin=margin,
        min_positives=min_positives,
    )


def _online_cells(b: BucketMetrics) -> list[str]:
    return [f"{b.count:,}", f"{b.positives:,}", *accuracy_cells(b)]


def _online_table(report: OnlineReport) -> Table:
    table = Table(title=f"online accuracy per {report.bucket_seconds / 3600:g}h bucket")
    for column in ("model", "version", "bucket (UTC)", "n", "positives", *ACCURACY_COLUMNS):
        table.add_column(
            column, justify="left" if column in ("model", "version", "bucket (UTC)") else "right"
        )
    flagged = {(f.model, f.version, f.subject) for f in report.flags}
    for total in report.totals:
        mine = [b for b in report.buckets if (b.model, b.version) == (total.model, total.version)]
        for b in mine:
            mark = " !" if (b.model, b.version, iso(b.start)) in flagged else ""
            table.add_row(b.model, b.version, iso(b.start) + mark, *_online_cells(b))
        table.add_row(total.model, total.version, "all", *_online_cells(total), end_section=True)
    for (model, version), count in sorted(report.pending.items()):
        table.caption = (table.caption or "") + f"{model} v{version}: {count:,} pending. "
    return table


# --- drift ----------------------------------------------------------------------------------


@app.command("drift")
def drift(  # noqa: PLR0917 -- Typer maps each parameter to one option
    model: ModelArg,
    predictions: PredictionsOpt = None,
    psi_flag: Annotated[float, typer.Option(help="PSI above this is flagged.")] = default_of(
        DriftThresholds, "psi_flag"
    ),
    psi_alarm: Annotated[float, typer.Option(help="PSI above this is an alarm.")] = default_of(
        DriftThresholds, "psi_alarm"
    ),
    missing_change: Annotated[
        float, typer.Option(help="Flag a missing-rate change above this.")
    ] = default_of(DriftThresholds, "missing_change"),
    rows_drop: Annotated[
        float, typer.Option(help="Flag a training-row fall above this fraction.")
    ] = default_of(DriftThresholds, "rows_drop"),
    fail_on_alarm: Annotated[
        bool,
        typer.Option(
            "--fail-on-alarm",
            help=f"Exit {EXIT_ALARM} when any feature is at alarm level (for schedulers and CI).",
        ),
    ] = False,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Feature drift of MODEL's training data per version, and of serving traffic (--predictions).

    With --predictions (a prediction log with raw features), serving traffic is compared with
    the training data of the version that scored it."""
    from control.monitor.collect import drift_reports  # noqa: PLC0415
    from control.monitor.predictions import read_predictions  # noqa: PLC0415

    with user_errors(json_out):
        thresholds = DriftThresholds(
            psi_flag=psi_flag,
            psi_alarm=psi_alarm,
            missing_change=missing_change,
            rows_drop=rows_drop,
        )
        log = read_predictions(predictions) if predictions else None
        (report,) = drift_reports(for_reading(registry), [model], thresholds, log)
    if json_out:
        print_json(report.to_dict())
    else:
        console.print(_rows_table(report))
        console.print(_psi_table(report, thresholds))
        _print_flags(report.flags)
    alarms = [f for f in report.flags if f.severity == "alarm"]
    if fail_on_alarm and alarms:
        # The report is printed (JSON included); the verdict is the exit code and one line.
        fail(
            f"{len(alarms)} drift alarm(s) for {model}: {alarms[0].subject} {alarms[0].message}",
            EXIT_ALARM,
            json_out=False,
        )


def _rows_table(report: DriftReport) -> Table:
    table = Table(title=f"training rows of {report.model}")
    table.add_column("version")
    table.add_column("rows", justify="right")
    table.add_column("change", justify="right")
    previous = None
    for version, rows in report.rows:
        change = "" if not previous else f"{(rows - previous) / previous:+.1%}"
        table.add_row(version, f"{rows:,}", change)
        previous = rows
    return table


def _psi_table(report: DriftReport, t: DriftThresholds) -> Table:
    table = Table(
        title=f"PSI per feature of {report.model}",
        caption=f"flag > {t.psi_flag}, alarm > {t.psi_alarm}",
    )
    table.add_column("feature")
    for c in report.comparisons:
        table.add_column(f"v{c.baseline}→{c.label}", justify="right")
    for feature in report.features:
        cells = []
        for c in report.comparisons:
            value = c.psi_of(feature)
            style = "bold red" if value > t.psi_alarm else "yellow" if value > t.psi_flag else ""
            cells.append(f"[{style}]{value:.3f}[/]" if style else metric_text(value, 3))
        table.add_row(feature, *cells)
    return table


# --- report ---------------------------------------------------------------------------------


@app.command("report")
def report(  # noqa: PLR0917 -- Typer maps each parameter to one option
    out: Annotated[Path, typer.Option("--out", help="Where to write the HTML file.")],
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Models to include (repeatable). Default: all."),
    ] = None,
    predictions: PredictionsOpt = None,
    outcomes: OutcomesOpt = None,
    bucket: BucketOpt = "1h",
    window: WindowOpt = None,
    as_of: AsOfOpt = None,
    registry: RegistryOpt = None,
    specs: SpecsOpt = None,
) -> None:
    """Write one self-contained HTML report: flags, then plots of metrics, calibration and drift."""
    with needs_extra("monitor", "control monitor report"):
        from control.monitor import report as html_report  # noqa: PLC0415 - matplotlib is slow
    from control.monitor.collect import drift_reports, offline_reports, registered_models  # noqa: PLC0415
    from control.monitor.predictions import read_predictions  # noqa: PLC0415

    if outcomes and not predictions:
        fail("--outcomes needs --predictions (the prediction log to join them with)")
    with user_errors():
        reg = for_reading(registry)
        models = model or registered_models(reg)
        if not models:
            fail("the registry has no models yet: nothing to report")
        log = read_predictions(predictions) if predictions else None
        online_report = None
        if log is not None and outcomes:
            settings = _online_settings(
                bucket,
                window,
                _DEFAULT_BAND,
                default_of(OnlineThresholds, "logloss_margin"),
                default_of(OnlineThresholds, "min_positives"),
            )
            online_report = _online_report(log, outcomes, settings, as_of, registry, specs)
        serving = log if log is not None and log.features is not None else None
        inputs = html_report.ReportInputs(
            offline=offline_reports(reg, models),
            drift=drift_reports(reg, models, log=serving),
            online=online_report,
            experiments=_experiments(reg, log, outcomes, models, window, as_of, specs),
        )
        html_report.write(inputs, out)
    flags = inputs.flags
    alarms = sum(f.severity == "alarm" for f in flags)
    console.print(
        f"wrote {out} ({alarms} alarm(s), {len(flags) - alarms} flag(s))",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )


def _experiments(  # noqa: PLR0917 -- private helper of `report`
    registry: Registry,
    log: PredictionLogData | None,
    outcomes: list[str] | None,
    models: list[str],
    window: list[str] | None,
    as_of: str | None,
    specs: str | None,
) -> list[ExperimentStatus]:
    """The experiments that ran during the log's period, measured on it (none without a log
    and outcomes)."""
    if log is None or not outcomes:
        return []
    from control.experiments.status import (  # noqa: PLC0415
        StatusInputs,
        experiment_status,
        overlapping,
    )
    from features import catalog  # noqa: PLC0415

    targets = catalog.load(specs)
    return [
        experiment_status(
            e,
            StatusInputs(
                log=log,
                outcomes=outcomes,
                target=targets.target(e.model),
                windows=attribution_windows(window or []),
                as_of=parse_instant(as_of) if as_of else None,
            ),
        )
        for e in overlapping(registry.list_experiments(), log, models)
    ]


# --- shared ---------------------------------------------------------------------------------


def _print_flags(flags: list[Flag]) -> None:
    if not flags:
        console.print("no flags")
        return
    table = Table(title="flags")
    for column in ("severity", "check", "version", "subject", "finding"):
        table.add_column(column)
    for f in flags:
        style = "bold red" if f.severity == "alarm" else "yellow"
        table.add_row(f"[{style}]{f.severity}[/]", f.check, f.version, f.subject, f.message)
    console.print(table)
