"""`control retrain`: one idempotent command a scheduler runs every day per model."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import typer

from bidscore.errors import BidscoreError
from control.cli.options import (
    AliasOpt,
    ExecutorOpt,
    JsonOpt,
    MemoryBudgetOpt,
    OnDiskOpt,
    RayCpusOpt,
    RegistryOpt,
    SpecsOpt,
    StoreOpt,
    registry_url,
    store_url,
)
from control.cli.output import console, err_console, fail, print_json, user_errors
from control.exits import EXIT_ALREADY_RUNNING
from control.retrain.lock import AlreadyRunningError
from control.retrain.params import parse_overrides
from control.retrain.partitions import parse_day, parse_days
from control.retrain.report import render_run
from control.retrain.validate import ValidationPolicy


def retrain(  # noqa: PLR0917 - every Typer option is a parameter
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            help="Model to retrain: ctr, cvr; repeat it to retrain several at once (each its"
            " own run, lock, gates and promotion).",
        ),
    ],
    data: Annotated[
        str,
        typer.Option(
            "--data", help="Directory or s3:// prefix of daily partitions dt=YYYY-MM-DD/."
        ),
    ],
    window: Annotated[str, typer.Option(help="Days of training data before the holdout.")] = "7d",
    holdout: Annotated[
        str, typer.Option(help="Newest days, ending at --date, that both models are scored on.")
    ] = "1d",
    day: Annotated[
        str | None,
        typer.Option("--date", help="Run for this day YYYY-MM-DD (default: newest partition)."),
    ] = None,
    alias: AliasOpt = "production",
    auto_promote: Annotated[
        bool,
        typer.Option(
            "--auto-promote/--no-auto-promote",
            help="Move the alias when every gate passes (compare-and-set).",
        ),
    ] = True,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Select and validate only; write nothing.")
    ] = False,
    allow_gaps: Annotated[
        bool, typer.Option("--allow-gaps", help="Train even if days of the window are missing.")
    ] = False,
    algo: Annotated[
        str | None,
        typer.Option(help="ffm or lr. Default: the production version's, else the spec's."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Override a hyper-parameter, NAME=VALUE (repeatable), e.g. --param eta=0.1.",
        ),
    ] = None,
    params_source: Annotated[
        str,
        typer.Option(
            "--params",
            help="saved: start from the parameters `control tune --save` recorded for the"
            " model; default: ignore them. --param wins either way.",
        ),
    ] = "saved",
    max_row_drop: Annotated[
        float,
        typer.Option(help="Stop if a day has fewer rows than (1 - this) x the trailing average."),
    ] = 0.3,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Stop on a PSI alarm (> 0.25), not just warn.")
    ] = False,
    lock_ttl: Annotated[
        float, typer.Option(help="Seconds a dead run's lock outlives it (renewed while alive).")
    ] = 120.0,
    threads: Annotated[int, typer.Option(help="Training threads.")] = 1,
    executor: ExecutorOpt = None,
    ray_cpus: RayCpusOpt = None,
    on_disk: OnDiskOpt = False,
    memory_budget: MemoryBudgetOpt = "auto",
    warm_start: Annotated[
        bool,
        typer.Option(
            "--warm-start",
            help="Start from the alias's (production's) version's weights; a cold start when"
            " there is none. Refused if its algorithm, hash bits, k or feature spec differ.",
        ),
    ] = False,
    registry: RegistryOpt = None,
    specs: SpecsOpt = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Retrain a model on the newest window of logs, score it against the alias's version on
    the same holdout days, and promote it when every gate passes.

    Exit codes: 0 promoted/held/no-op, 1 error, 5 stopped by validation, 75 already running.
    With several --model: 0 when every model's run exited 0, else 100 + a mask of the failed
    models (bit i for the i-th --model: 101 the first, 102 the second, 103 both); each
    model's own code is in the summary table.
    """
    # Heavy imports (rust_core, boto3, the feature code) only when a run really starts.
    from bidscore.store import open_store  # noqa: PLC0415
    from control.cli.registries import for_writing  # noqa: PLC0415
    from control.prepared import parse_budget  # noqa: PLC0415
    from control.retrain.pipeline import RetrainRequest, run_retrain  # noqa: PLC0415
    from control.retrain.trainer import hyper_parameter_names  # noqa: PLC0415
    from control.scale.executor import parse_executor, session  # noqa: PLC0415
    from control.tuning.saved import check_source  # noqa: PLC0415

    with user_errors(json_out):
        runner = parse_executor(executor, ray_cpus=ray_cpus)
        names = list(dict.fromkeys(model))
        try:
            request = RetrainRequest(
                model=names[0],
                data_root=data,
                window_days=parse_days(window, "--window"),
                holdout_days=parse_days(holdout, "--holdout"),
                day=parse_day(day) if day else None,
                alias=alias,
                auto_promote=auto_promote,
                dry_run=dry_run,
                allow_gaps=allow_gaps,
                algo=algo,
                overrides=parse_overrides(param or [], hyper_parameter_names()),
                params_source=check_source(params_source),
                policy=ValidationPolicy(max_row_drop=max_row_drop, fail_on_drift=fail_on_drift),
                lock_ttl=lock_ttl,
                threads=threads,
                specs=specs,
                executor=runner.name,
                on_disk=on_disk,
                memory_budget=parse_budget(memory_budget),
                warm_start=warm_start,
            )
            if len(names) > 1:
                _retrain_several(
                    [replace(request, model=name) for name in names],
                    registry_url(registry),
                    store_url(store),
                    runner,
                    json_out,
                )
                return
            with for_writing(registry) as reg, session(runner):
                result = run_retrain(
                    request,
                    reg,
                    open_store(store_url(store)),
                    notify=(lambda _: None)
                    if json_out
                    else lambda line: err_console.print(line, markup=False, highlight=False),
                )
        except AlreadyRunningError as exc:
            fail(str(exc), EXIT_ALREADY_RUNNING)
        except BidscoreError as exc:
            fail(str(exc))
    if json_out:
        print_json(result.run)
    else:
        render_run(result.run, console)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _retrain_several(
    requests: list[Any], registry: str, store: str, runner: Any, json_out: bool
) -> None:
    """Every model's run at once (control.scale.parallel); a summary row per model."""
    from control.cli.registries import for_writing  # noqa: PLC0415
    from control.retrain.trainer import spec_for  # noqa: PLC0415
    from control.scale.executor import session  # noqa: PLC0415
    from control.scale.jobs import RetrainJob, retrain_job  # noqa: PLC0415
    from control.scale.parallel import (  # noqa: PLC0415
        MAX_MODELS,
        exit_code,
        run_jobs,
        summary_table,
    )
    from features.catalog import load as load_catalog  # noqa: PLC0415

    if len(requests) > MAX_MODELS:
        fail(f"at most {MAX_MODELS} --model at once, got {len(requests)}")
    for request in requests:  # an unknown model is a usage error, before any run starts
        spec_for(request.model, load_catalog(request.specs))
    jobs = [RetrainJob(r, registry, store) for r in requests]
    # Ray first: an unreachable cluster fails before anything is created.
    with session(runner) as ray:
        with for_writing(registry):
            pass  # created once here, not by two runs racing
        outcomes = run_jobs(retrain_job, jobs, threads=requests[0].threads, ray=ray)
    code = exit_code(outcomes)
    if json_out:
        print_json({"models": [o.to_json() for o in outcomes], "exit_code": code})
    else:
        console.print(summary_table(outcomes, f"control retrain ({runner.name})"))
    if code:
        raise typer.Exit(code)
