"""`control train`: read logs, train, evaluate, profile, store and register a model version."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from control.cli.options import (
    ExecutorOpt,
    JsonOpt,
    MemoryBudgetOpt,
    OnDiskOpt,
    RayCpusOpt,
    RegistryOpt,
    SpecsOpt,
    StoreOpt,
    WarmStartOpt,
    registry_url,
    store_url,
)
from control.cli.output import console, print_json, user_errors
from control.cli.progress import observer as progress_observer
from control.cli.registries import for_writing
from control.errors import TrainingInputError
from control.prepared import parse_budget
from control.retrain.params import parse_overrides
from control.retrain.trainer import hyper_parameter_names
from control.scale.executor import Executor, parse_executor, session
from control.scale.jobs import TrainJob, train_job, train_version
from control.scale.parallel import MAX_MODELS, exit_code, run_jobs, summary_table
from control.training import model_spec
from control.tuning.saved import check_source
from features import catalog

_HYPER = "Hyper-parameters (default: LIBFFM's for ffm, FTRL's for lr)"


def train(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            help="Model to train: ctr or cvr; repeat it to train several at once (each its"
            " own version).",
        ),
    ],
    data: Annotated[
        list[Path],
        typer.Option(
            "--data", help="Logs: .parquet/.csv/.jsonl file or dt=... directory; repeatable."
        ),
    ],
    *,
    valid: Annotated[
        list[Path] | None,
        typer.Option("--valid", help="Validation logs (instead of --valid-fraction); repeatable."),
    ] = None,
    valid_fraction: Annotated[
        float, typer.Option(help="Share of --data rows held out for validation (seeded).")
    ] = 0.1,
    algo: Annotated[
        str | None, typer.Option(help="ffm or lr (default: the model spec's, ctr ffm, cvr lr).")
    ] = None,
    k: Annotated[int | None, typer.Option(help="FFM latent size.", rich_help_panel=_HYPER)] = None,
    eta: Annotated[
        float | None, typer.Option(help="FFM learning rate.", rich_help_panel=_HYPER)
    ] = None,
    l2: Annotated[
        float | None, typer.Option(help="L2 regularisation.", rich_help_panel=_HYPER)
    ] = None,
    l1: Annotated[
        float | None, typer.Option(help="LR L1 regularisation.", rich_help_panel=_HYPER)
    ] = None,
    alpha: Annotated[
        float | None, typer.Option(help="LR FTRL alpha.", rich_help_panel=_HYPER)
    ] = None,
    beta: Annotated[
        float | None, typer.Option(help="LR FTRL beta.", rich_help_panel=_HYPER)
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Passes over the data.", rich_help_panel=_HYPER)
    ] = None,
    auto_stop: Annotated[
        bool | None,
        typer.Option(
            "--auto-stop/--no-auto-stop",
            help="Stop when validation logloss rises; keep the best epoch.",
            rich_help_panel=_HYPER,
            show_default=False,
        ),
    ] = None,
    normalize: Annotated[
        bool | None,
        typer.Option(
            "--normalize/--no-normalize",
            help="FFM instance normalisation.",
            rich_help_panel=_HYPER,
            show_default=False,
        ),
    ] = None,
    threads: Annotated[int, typer.Option(help="Training threads (1 is reproducible).")] = 1,
    executor: ExecutorOpt = None,
    ray_cpus: RayCpusOpt = None,
    downsample_negatives: Annotated[
        float | None,
        typer.Option(help="Keep each negative training row with this probability (0..1]."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split, downsampling and training.")] = 0,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Set a hyper-parameter, NAME=VALUE (repeatable), e.g. --param eta=0.1.",
            rich_help_panel=_HYPER,
        ),
    ] = None,
    params_source: Annotated[
        str,
        typer.Option(
            "--params",
            help="saved: start from the parameters `control tune --save` recorded for the"
            " model; default: ignore them. Explicit options and --param win either way.",
            rich_help_panel=_HYPER,
        ),
    ] = "saved",
    key: Annotated[
        str | None,
        typer.Option(help="Idempotency key: if a version has it already, return that version."),
    ] = None,
    on_disk: OnDiskOpt = False,
    memory_budget: MemoryBudgetOpt = "auto",
    warm_start: WarmStartOpt = None,
    registry: RegistryOpt = None,
    store: StoreOpt = None,
    specs: SpecsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train a model on labelled logs, evaluate it on held-out rows and register a version.

    Prints the version and its held-out metrics: logloss, AUC, NE, calibration, rows, positives.

    The model file and manifest (metrics, data profile, parameters) are uploaded to the store;
    the version is registered only when both uploads are complete.

    Hyper-parameters start from those `control tune --save` recorded for the model (unless
    `--params default`); explicit options and `--param NAME=VALUE` win.

    Training runs in memory, or out of core from shards on disk with `--on-disk` or when the
    prepared rows would exceed `--memory-budget`. `--warm-start` starts from a registered
    version's weights and records it as the new version's parent.
    """
    overrides = {
        "k": k,
        "eta": eta,
        "l2": l2,
        "l1": l1,
        "alpha": alpha,
        "beta": beta,
        "epochs": epochs,
        "auto_stop": auto_stop,
        "normalize": normalize,
    }
    with user_errors(json_out):
        check_source(params_source)
        budget = parse_budget(memory_budget)
        explicit = parse_overrides(param or [], hyper_parameter_names()) | {
            name: value for name, value in overrides.items() if value is not None
        }
        runner = parse_executor(executor, ray_cpus=ray_cpus)
        names = list(dict.fromkeys(model))
        if len(names) > MAX_MODELS:
            raise TrainingInputError(f"at most {MAX_MODELS} --model at once, got {len(names)}")
    job = TrainJob(
        model=names[0],
        data=tuple(map(str, data)),
        registry_url=registry_url(registry),
        store_url=store_url(store),
        executor=runner.name,
        valid=tuple(map(str, valid or ())),
        valid_fraction=valid_fraction,
        algo=algo,
        explicit=explicit,
        params_source=params_source,
        threads=threads,
        seed=seed,
        downsample=downsample_negatives,
        key=key,
        specs=specs,
        on_disk=on_disk,
        memory_budget=budget,
        warm_start=warm_start,
    )
    if len(names) > 1:
        _train_several([replace(job, model=name) for name in names], runner, json_out)
        return
    # Open the backends first: an unreachable registry should fail before minutes of work.
    with (
        user_errors(json_out),
        progress_observer(json_out) as observer,
        for_writing(registry) as reg,
        session(runner) as ray,
    ):
        version = train_version(job, observer, ray, registry=reg)
    metrics = version.manifest.metrics
    if json_out:
        print_json(
            {
                "model": version.model,
                "version": version.version,
                "artifact_uri": version.artifact_uri,
                "algorithm": version.manifest.algorithm,
                "metrics": metrics,
                "params": version.manifest.params,
                "parent_version": version.manifest.parent_version,
            }
        )
        return
    table = Table(title=f"{version.model} version {version.version}", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for name in ("logloss", "auc", "ne", "calibration", "rows", "positives"):
        value = metrics.get(name)
        table.add_row(name, f"{value:.6f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(
        f"registered {version.model} version {version.version} -> {version.artifact_uri}",
        soft_wrap=True,
    )


def _train_several(jobs: list[TrainJob], runner: Executor, json_out: bool) -> None:
    """Every model's job at once (control.scale.parallel); a summary row per model."""
    with user_errors(json_out):
        models = catalog.load(jobs[0].specs)
        for job in jobs:  # an unknown model is a usage error, before any job starts
            model_spec(job.model, models)
        # Ray first: an unreachable cluster fails before anything is created.
        with session(runner) as ray:
            with for_writing(jobs[0].registry_url):
                pass  # created once here, not by two jobs racing
            outcomes = run_jobs(train_job, jobs, threads=jobs[0].threads, ray=ray)
    code = exit_code(outcomes)
    if json_out:
        print_json({"models": [o.to_json() for o in outcomes], "exit_code": code})
    else:
        console.print(summary_table(outcomes, f"control train ({runner.name})"))
    if code:
        raise typer.Exit(code)
