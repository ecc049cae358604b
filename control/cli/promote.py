"""`control promote MODEL VERSION` and `control rollback MODEL`: move an alias, safely."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from bidscore import settings
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
from control.promotion import AUC_TOLERANCE, LOGLOSS_TOLERANCE, PromotionResult
from control.promotion import promote as promote_version
from control.promotion import rollback as rollback_alias
from features import catalog

ReasonOpt = Annotated[str, typer.Option("--reason", help="Why, for the alias history.")]


def _report(result: PromotionResult, verb: str) -> None:
    alias = result.alias
    console.print(
        f"{verb} [bold]{alias.model}/{alias.alias}[/]: {result.previous or '(unset)'} ->"
        f" [bold]{alias.version}[/] (generation {alias.generation}, by {alias.updated_by})"
    )
    if result.gates:
        table = Table(title="gates")
        table.add_column("gate")
        table.add_column("result")
        table.add_column("detail")
        for gate in result.gates:
            table.add_row(gate.name, "pass" if gate.passed else "FAIL", gate.detail)
        console.print(table)
    elif result.forced:
        console.print("metric gates skipped (--force); integrity checks passed")


def promote(
    model: Annotated[str, typer.Argument(help="Model name, e.g. ctr.")],
    version: Annotated[str, typer.Argument(help="The version to put behind the alias.")],
    *,
    alias: AliasOpt = "production",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Skip the metric gates. Integrity checks (checksum, fingerprint) stay."
        ),
    ] = False,
    expect_version: Annotated[
        str | None,
        typer.Option(
            "--expect-version",
            help="Refuse (exit 3) unless the alias points at this version now ('none' = unset).",
        ),
    ] = None,
    reason: ReasonOpt = "",
    registry: RegistryOpt = None,
    store: StoreOpt = None,
    specs: SpecsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify a version, check its gates and move the alias to it (compare-and-set).

    Integrity (always): artifact checksum, model file, fingerprint == the current feature code.

    Gates vs the alias's current version: logloss <= +{ll:.1%} (relative), AUC >= -{auc}.

    Exit codes: 1 error, 3 the alias moved meanwhile (retry), 4 refused by a gate or a check.
    """
    with user_errors():
        result = promote_version(
            for_reading(registry),
            open_store(store_url(store)),
            model,
            version,
            alias=alias,
            actor=settings.default_actor(),
            reason=reason,
            force=force,
            expected_version=expect_version,
            extra_gates=[promotion_gate],
            catalog=catalog.load(specs),
        )
    if json_out:
        print_json(result.to_dict())
    else:
        _report(result, "promoted")


# The docstring doubles as --help; fill in the real tolerances rather than repeating numbers.
promote.__doc__ = (promote.__doc__ or "").format(ll=LOGLOSS_TOLERANCE, auc=AUC_TOLERANCE)


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
    with user_errors():
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
        _report(result, "rolled back")
