"""`control tune`: search a model's hyper-parameters on logs (optionally cross-validated),
print the best trials and the chosen parameters, and with `--save` record them in the
registry for `control train` / `control retrain`."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from control.cli.options import JsonOpt, RayCpusOpt, RegistryOpt, SpecsOpt, registry_url
from control.cli.output import console, err_console, print_json, user_errors

if TYPE_CHECKING:
    from control.tuning.search import TrialRecord, TuneResult


class TrialProgress:
    """Trials done and the best so far: a rich bar on a terminal, plain lines otherwise."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self.console = console or err_console
        self.total = total
        self.done = 0
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self._task = self._bar.add_task("tuning", total=total)

    def __enter__(self) -> TrialProgress:
        self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.stop()

    def __call__(self, trial: TrialRecord, best: TrialRecord | None) -> None:
        self.done += 1
        score = "-" if trial.valid_logloss is None else f"{trial.valid_logloss:.5f}"
        top = "-" if best is None else f"{best.valid_logloss:.5f} (trial {best.number})"
        line = f"trial {trial.number} {trial.state} logloss {score} epochs {trial.epochs}"
        if self.console.is_terminal:
            self._bar.update(self._task, completed=self.done, description=f"best {top}")
        else:
            self.console.print(
                f"{line}; best {top} [{self.done}/{self.total}]", markup=False, highlight=False
            )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _render(result: TuneResult, folds: list[tuple[str, int, int]], saved: bool) -> None:
    cv = len(folds) > 1
    table = Table(title=f"top trials ({result.algorithm}, {len(result.trials)} trials)")
    for column in ("trial", "logloss", *(["spread"] if cv else []), "best epoch", "parameters"):
        table.add_column(column, justify="left" if column == "parameters" else "right")
    for t in result.top(10):
        table.add_row(
            str(t.number),
            f"{t.valid_logloss:.6f}",
            *([f"{t.spread or 0.0:.6f}"] if cv else []),
            str(t.best_epoch),
            " ".join(f"{k}={_short(v)}" for k, v in t.params.items()),
        )
    console.print(table)
    if cv:
        for name, train_rows, valid_rows in folds:
            console.print(f"fold {name} ({train_rows} / {valid_rows} rows)", markup=False)
    s = result.summary()
    console.print(
        f"{s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed in"
        f" {s['seconds']:.1f}s; validation logloss {result.valid_logloss:.6f}"
        + (f" ± {result.spread:.6f} over {len(folds)} folds" if cv else ""),
        markup=False,
    )
    shown = " ".join(f"{k}={_short(v)}" for k, v in result.params.items())
    console.print(f"chosen: {shown}", markup=False, soft_wrap=True)
    if saved:
        console.print("saved: control train / retrain use these by default", markup=False)


def tune(
    model: Annotated[str, typer.Option("--model", help="Model to tune: ctr or cvr.")],
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="Logs: .parquet/.csv/.jsonl file or directory (dt=YYYY-MM-DD/ partitions for"
            " --cv by day); repeatable.",
        ),
    ],
    *,
    valid: Annotated[
        list[Path] | None,
        typer.Option("--valid", help="Validation logs (instead of --valid-fraction)."),
    ] = None,
    valid_fraction: Annotated[
        float, typer.Option(help="Share of --data rows held out for validation (seeded).")
    ] = 0.1,
    trials: Annotated[int, typer.Option(help="Trials to run (the first is the defaults).")] = 30,
    cv: Annotated[
        int | None,
        typer.Option(
            "--cv",
            help="K folds: forward-chaining by day for dt= partitions, random K-fold"
            " otherwise. Scores are the mean validation logloss over the folds.",
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Start no new trial after this many seconds.")
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            help="Run trials in parallel: local (a pool of --workers in this process), ray (a"
            " Ray started here) or ray://HOST:PORT (a Ray cluster): one Ray task per trial,"
            " reserving --threads CPUs, the study and its pruner in this process."
            " Default: one trial at a time."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Trials at once with --executor (default: cores, or the Ray cluster's CPUs,"
            " / threads)."
        ),
    ] = None,
    ray_cpus: RayCpusOpt = None,
    threads: Annotated[int, typer.Option(help="Training threads per trial.")] = 1,
    linear: Annotated[
        bool,
        typer.Option(
            "--linear/--no-linear",
            help="FFM: with a bias and linear terms (bidscore's model), or without them "
            "(LIBFFM's model, pairwise terms only) in every trial.",
        ),
    ] = True,
    algo: Annotated[str | None, typer.Option(help="ffm or lr (default: the model spec's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler, split, folds, training.")] = 0,
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Record the chosen parameters for the model in the registry (with the study"
            " summary and the data window).",
        ),
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(help="Write an HTML page of the search (logloss per trial, importances)."),
    ] = None,
    registry: RegistryOpt = None,
    specs: SpecsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Search hyper-parameters (Optuna TPE, seeded; trials pruned by their per-epoch
    validation logloss) and print the best trials and the chosen parameters.

    With --save, `control train` and `control retrain` start from the chosen parameters
    (`--params default` ignores them; explicit options win).
    """
    # optuna and rust_core only when a search really starts (`control --help` stays light).
    from bidscore.registry import open_registry  # noqa: PLC0415
    from control.scale.executor import session  # noqa: PLC0415
    from control.tuning import plots, saved  # noqa: PLC0415
    from control.tuning.executors import parse_executor  # noqa: PLC0415
    from control.tuning.run import TuneRequest, fold_rows, prepare, run  # noqa: PLC0415
    from control.tuning.search import SearchOptions  # noqa: PLC0415
    from features import catalog  # noqa: PLC0415

    with user_errors(json_out):
        pool = parse_executor(executor, workers, threads, ray_cpus)
        options = SearchOptions(
            trials=trials, seed=seed, threads=threads, timeout=timeout, workers=pool.workers or 1
        )
        options.check()
        # Open the registry first: an unreachable one should fail before minutes of work.
        reg = open_registry(registry_url(registry)) if save else None
        request = TuneRequest(
            model=model,
            data=data,
            valid=valid or (),
            valid_fraction=valid_fraction,
            cv=cv,
            algo=algo,
            options=options,
            linear=linear,
        )
        models = catalog.load(specs)
        with contextlib.ExitStack() as stack:
            ray = stack.enter_context(session(pool.ray)) if pool.ray is not None else None
            if ray is not None:
                pool = pool.on_ray(ray.cluster_resources().get("CPU", 1), threads)
                request = dataclasses.replace(
                    request, options=dataclasses.replace(options, workers=pool.workers)
                )
            prepared = prepare(request, models, arrays=ray is not None)
            with TrialProgress(trials) as progress:
                result, prepared = run(
                    request, models, on_trial=progress, prepared=prepared, ray=ray
                )
        if reg is not None:
            reg.put_params(model, saved.record(result, model, prepared.data))
        if plot is not None:
            plots.write(result, plot, title=f"{model}: {result.algorithm} tuning")
    if json_out:
        print_json(
            {
                "model": model,
                "algorithm": result.algorithm,
                "params": result.params,
                "valid_logloss": result.valid_logloss,
                "spread": result.spread,
                "study": result.summary(),
                "executor": {"name": pool.name, "workers": pool.workers},
                "top": [t.to_dict() for t in result.top(10)],
                "trials": [t.to_dict() for t in result.trials],
                "data": prepared.data,
                "saved": reg is not None,
            }
        )
        return
    _render(result, fold_rows(prepared), saved=reg is not None)
