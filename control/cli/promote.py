"""`control promote MODEL VERSION` and `control rollback MODEL`: move an alias, safely."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bidscore import settings
from bidscore.settings import DEFAULT_ALIAS
from bidscore.store import open_store
from control.cli.options import (
    AliasOpt,
    JsonOpt,
    RegistryOpt,
    SpecsOpt,
    StoreOpt,
    store_url,
)
from control.cli.output import console, print_json, user_errors
from control.cli.registries import for_reading
from control.monitor.drift import promotion_gate
from control.promotion import (
    AUC_TOLERANCE,
    BASE_RATE_NE,
    LOGLOSS_TOLERANCE,
    Evaluation,
    PromotionResult,
)
from control.promotion import promote as promote_version
from control.promotion import rollback as rollback_alias
from control.rescoring import candidate_validation_rows, rows_from_logs
from features import catalog

ReasonOpt = Annotated[str, typer.Option("--reason", help="Why, for the alias history.")]


_COMPARED = ("logloss", "auc", "ne", "calibration", "rows", "positives")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return "-" if value is None else str(value)


def _comparison(evaluation: Evaluation) -> Table:
    table = Table()
    table.add_column("metric")
    table.add_column(f"candidate v{evaluation.candidate_version}", justify="right")
    if evaluation.current_version is not None:
        table.add_column(f"current v{evaluation.current_version}", justify="right")
    for name in _COMPARED:
        cells = [_fmt(evaluation.candidate.get(name))]
        if evaluation.current_version is not None:
            cells.append(_fmt((evaluation.current or {}).get(name)))
        table.add_row(name, *cells)
    return table


def report_promotion(result: PromotionResult, verb: str) -> None:
    alias = result.alias
    console.print(
        f"{verb} [bold]{alias.model}/{alias.alias}[/]: {result.previous or '(unset)'} ->"
        f" [bold]{alias.version}[/] (generation {alias.generation}, by {alias.updated_by})"
    )
    if result.evaluation is not None:
        evaluation = result.evaluation
        # A comparison on different rows is weaker evidence: say so before the numbers.
        prefix = "measured on" if evaluation.same_rows else "note: measured on"
        console.print(f"{prefix} {evaluation.rows}", markup=False, highlight=False, soft_wrap=True)
        console.print(_comparison(evaluation))
    if result.overridden:
        console.print(
            "forced past failed gates (recorded in the history): "
            + "; ".join(g.name for g in result.overridden),
            markup=False,
            highlight=False,
        )
    if result.gates:
        table = Table(title="gates")
        table.add_column("gate")
        table.add_column("result")
        table.add_column("detail")
        for gate in result.gates:
            table.add_row(gate.name, "pass" if gate.passed else "FAIL", gate.detail)
        console.print(table)


def promote(
    model: Annotated[str, typer.Argument(help="Model name, e.g. ctr.")],
    version: Annotated[str, typer.Argument(help="The version to put behind the alias.")],
    *,
    alias: AliasOpt = "production",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote even if a metric gate fails; the overridden gates are recorded in the"
            " alias history. Integrity checks (checksum, fingerprint) stay.",
        ),
    ] = False,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="Logs to score the candidate and the current version on (the same rows)."
            " Default: the candidate's validation rows, re-read; else the manifests' metrics.",
        ),
    ] = None,
    expect_version: Annotated[
        str | None,
        typer.Option(
            "--expect-version",
            help="Refuse (exit 3) unless the alias points at this version now ('none' = unset).",
        ),
    ] = None,
    create_alias: Annotated[
        bool,
        typer.Option(
            "--create-alias",
            help=f"Create --alias if the model does not have it yet ({DEFAULT_ALIAS!r} needs no"
            " flag). Without it, an unknown alias is an error (exit 2) naming the existing ones.",
        ),
    ] = False,
    reason: ReasonOpt = "",
    registry: RegistryOpt = None,
    store: StoreOpt = None,
    specs: SpecsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify a version, check its gates and move the alias to it (compare-and-set).

    Integrity (always): artifact checksum, model file, fingerprint == the current feature code.

    Gates: NE < {ne:g} (beats predicting the base rate; also for a first version), and vs the
    alias's current version, both scored on the same rows: logloss <= +{ll:.1%} (relative),
    AUC >= -{auc}.

    Exit codes: 1 error, 2 an alias that does not exist (see --create-alias), 3 the alias moved
    meanwhile (retry), 4 refused by a gate or a check.
    """
    with user_errors(json_out):
        reg = for_reading(registry)
        models = catalog.load(specs)
        rows = (
            rows_from_logs(model, data, models)
            if data
            else candidate_validation_rows(reg.get_version(model, version), models)
        )
        result = promote_version(
            reg,
            open_store(store_url(store)),
            model,
            version,
            alias=alias,
            actor=settings.default_actor(),
            reason=reason,
            force=force,
            create_alias=create_alias,
            rows=rows,
            expected_version=expect_version,
            extra_gates=[promotion_gate],
            catalog=models,
        )
    if json_out:
        print_json(result.to_dict())
    else:
        report_promotion(result, "promoted")


# The docstring doubles as --help; fill in the real tolerances rather than repeating numbers.
promote.__doc__ = (promote.__doc__ or "").format(
    ne=BASE_RATE_NE, ll=LOGLOSS_TOLERANCE, auc=AUC_TOLERANCE
)


def rollback(
    model: Annotated[str, typer.Argument(help="Model name, e.g. ctr.")],
    *,
    alias: AliasOpt = "production",
    reason: ReasonOpt = "",
    registry: RegistryOpt = None,
    store: StoreOpt = None,
    specs: SpecsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Move the alias back to the version before the current one in its history.

    Repeated rollbacks walk further back through earlier promotions.

    The target's artifact is integrity-checked; metric gates do not apply.
    """
    with user_errors(json_out):
        result = rollback_alias(
            for_reading(registry),
            open_store(store_url(store)),
            model,
            alias=alias,
            actor=settings.default_actor(),
            reason=reason,
            catalog=catalog.load(specs),
        )
    if json_out:
        print_json(result.to_dict())
    else:
        report_promotion(result, "rolled back")
