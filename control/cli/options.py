"""Options shared by every `control` command, as `Annotated` types.

Other command modules (datagen, serve, monitor, retrain, runs...) reuse these so that
`--registry`, `--store` and `--json` read the same everywhere.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bidscore import settings

RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar=settings.REGISTRY_ENV,
        help="Registry URL: sqlite:///path/registry.db or dynamodb://TABLE?region=..&endpoint_url=.."
        "&create=1. Default: sqlite under $BIDSCORE_HOME.",
        show_default=False,
    ),
]

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar=settings.STORE_ENV,
        help="Artifact store URL: file:///dir or s3://bucket/prefix?endpoint_url=.. "
        "Default: $BIDSCORE_HOME/artifacts.",
        show_default=False,
    ),
]

JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print machine-readable JSON on stdout instead of tables."),
]

AliasOpt = Annotated[
    str,
    typer.Option("--alias", help="The alias pointer to act on (production, canary, ...)."),
]


def registry_url(value: str | None) -> str:
    """The option's value, else the default (env var or sqlite under BIDSCORE_HOME)."""
    return value or settings.default_registry_url()


def store_url(value: str | None) -> str:
    """The option's value, else the default (env var or the artifact dir under BIDSCORE_HOME)."""
    return value or settings.default_store_url()


SpecsOpt = Annotated[
    str | None,
    typer.Option(
        "--specs",
        envvar="BIDSCORE_SPECS",
        help="Model catalogue, module:attribute (a features.catalog.Catalog or a dict of "
        "ModelSpec). Default: features.bid:CATALOG.",
        show_default=False,
    ),
]

ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Where the work runs: local (this process), ray (a Ray started on this machine)"
        " or ray://HOST:PORT (a Ray cluster through Ray Client; needs bidscore[ray])."
        " Default: $BIDSCORE_EXECUTOR, else local.",
        show_default=False,
    ),
]

RayCpusOpt = Annotated[
    int | None,
    typer.Option(
        "--ray-cpus",
        help="CPUs of the Ray that --executor ray starts (default: the machine's cores).",
        show_default=False,
    ),
]

# Out-of-core training and warm starts (`control train`, `control retrain`; issue 18).
OnDiskOpt = Annotated[
    bool,
    typer.Option(
        "--on-disk",
        help="Tokenise the training rows into CSR shards in a temporary directory ($TMPDIR)"
        " and train from them out of core, a few shards in memory at a time.",
    ),
]

MemoryBudgetOpt = Annotated[
    str,
    typer.Option(
        "--memory-budget",
        help="BYTES (e.g. 8G, 512M) or auto (half of the available memory): train on disk"
        " when the prepared rows are estimated to exceed it.",
    ),
]

WarmStartOpt = Annotated[
    str | None,
    typer.Option(
        "--warm-start",
        help="Start from a registered version's weights: a version number or an alias"
        " (production). Algorithm, hash bits, k and feature spec must match.",
        show_default=False,
    ),
]
