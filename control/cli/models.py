"""`control models list [MODEL]`, `control models show MODEL VERSION` and `control models
params MODEL` (the saved tuned parameters)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from bidscore.registry import NotFoundError, Registry, Version
from control.cli.options import JsonOpt, RegistryOpt
from control.cli.output import console, print_json, user_errors
from control.cli.registries import for_reading

app = typer.Typer(help="Registered model versions and their metrics.", no_args_is_help=True)

ModelArg = Annotated[str, typer.Argument(help="Model name, e.g. ctr or cvr.")]


def _aliases_by_version(
    registry: Registry, versions: list[Version]
) -> dict[tuple[str, str], list[str]]:
    """Which aliases point at each (model, version), for the listing's alias column."""
    names: dict[tuple[str, str], list[str]] = {}
    for model in sorted({v.model for v in versions}):
        for pointer in registry.list_aliases(model):
            names.setdefault((model, pointer.version), []).append(pointer.alias)
    return names


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def _saved_table(model: str, saved: dict[str, Any]) -> Table:
    """The saved tuned parameters of `model`, with where and when they were found."""
    table = Table(title=f"saved parameters of {model} (control tune --save)", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("algorithm", _fmt(saved.get("algorithm")))
    for name, value in sorted(dict(saved.get("params", {})).items()):
        table.add_row(f"param {name}", _fmt(value, 6))
    study = dict(saved.get("study", {}))
    table.add_row("valid logloss", _fmt(study.get("valid_logloss"), 6))
    table.add_row("trials", f"{study.get('trials')} ({study.get('pruned')} pruned)")
    window = dict(saved.get("data", {})).get("window") or {}
    table.add_row("data window", f"{window.get('start', '-')} .. {window.get('end', '-')}")
    table.add_row("saved at", _fmt(saved.get("saved_at")))
    return table


@app.command("list")
def list_models(
    model: Annotated[str | None, typer.Argument(help="Only this model (default: all).")] = None,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List registered versions with their held-out metrics and aliases."""
    with user_errors(json_out):
        reg = for_reading(registry)
        versions = reg.list_versions(model)
        if model is not None and not versions:
            raise NotFoundError(f"unknown model {model!r}: no version registered")
        aliases = _aliases_by_version(reg, versions)
    if not versions and not json_out:
        console.print(
            f"no versions yet in {reg.url}: run `control train --model ctr --data LOGS`"
            " (`control datagen --out LOGS` writes sample logs), then `control promote ctr 1`",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    if json_out:
        print_json(
            [
                {
                    "model": v.model,
                    "version": v.version,
                    "created_at": v.created_at,
                    "algorithm": v.manifest.algorithm,
                    "metrics": v.manifest.metrics,
                    "aliases": aliases.get((v.model, v.version), []),
                    "artifact_uri": v.artifact_uri,
                }
                for v in versions
            ]
        )
        return
    table = Table(title="registered versions" if model is None else f"versions of {model}")
    for column in (
        "model",
        "version",
        "created",
        "algo",
        "valid rows",
        "logloss",
        "auc",
        "ne",
        "calib",
    ):
        table.add_column(column, justify="right" if column in {"version", "valid rows"} else "left")
    table.add_column("aliases")
    for v in versions:
        metrics = v.manifest.metrics
        table.add_row(
            v.model,
            v.version,
            v.created_at[:19].replace("T", " "),
            v.manifest.algorithm or "-",
            _fmt(metrics.get("rows")),
            _fmt(metrics.get("logloss")),
            _fmt(metrics.get("auc")),
            _fmt(metrics.get("ne")),
            _fmt(metrics.get("calibration"), 3),
            ", ".join(aliases.get((v.model, v.version), [])),
        )
    console.print(table)


@app.command("show")
def show_model(
    model: ModelArg,
    version: Annotated[str, typer.Argument(help="Version number, e.g. 3.")],
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one version: metrics, training parameters, data and the profile summary, and the
    model's saved tuned parameters (`control tune --save`), which training starts from."""
    with user_errors(json_out):
        reg = for_reading(registry)
        found = reg.get_version(model, version)
        saved = reg.get_params(model)
    manifest = found.manifest
    if json_out:
        print_json(found.to_dict() | {"saved_params": saved})
        return
    summary = Table(title=f"{model} version {version}", show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value")
    for name in ("algorithm", "fingerprint", "checksum", "sha256", "code_version", "created_at"):
        summary.add_row(name, _fmt(getattr(manifest, name)))
    summary.add_row("artifact", found.artifact_uri)
    for name, value in manifest.metrics.items():
        summary.add_row(f"metric {name}", _fmt(value, 6))
    for name, value in manifest.params.items():
        summary.add_row(f"param {name}", _fmt(value, 6))
    data = manifest.data
    summary.add_row("data paths", ", ".join(map(str, data.get("paths", []))))
    summary.add_row("data rows", _fmt(data.get("rows")))
    console.print(summary)
    if saved is not None:
        console.print(_saved_table(model, saved))
    profile = manifest.profile
    if profile:
        table = Table(title="training data profile")
        for column in ("feature", "type", "missing", "distinct", "top value", "top freq"):
            table.add_column(column)
        for name, entry in profile.items():
            top = (entry.get("top") or [{}])[0] if entry.get("top") else {}
            table.add_row(
                name,
                str(entry.get("type", "")),
                f"{entry.get('missing_rate', 0.0):.2%}",
                str(entry.get("distinct", "")),
                str(top.get("value", "-"))[:40],
                f"{top.get('frequency', 0.0):.2%}" if top else "-",
            )
        console.print(table)


@app.command("params")
def show_params(
    model: ModelArg,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show the model's saved tuned parameters (`control tune --save`)."""
    with user_errors(json_out):
        saved = for_reading(registry).get_params(model)
        if saved is None:
            raise NotFoundError(f"no saved parameters for {model!r} (control tune --save)")
    if json_out:
        print_json(saved)
        return
    console.print(_saved_table(model, saved))
