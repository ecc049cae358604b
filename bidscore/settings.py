"""Where the control plane keeps its state by default, and how users override it.

`BIDSCORE_HOME` (default `./.bidscore`, relative to the working directory) holds the embedded
registry `registry.db` and the artifact directory `artifacts/`. `BIDSCORE_REGISTRY` and
`BIDSCORE_STORE` replace the two URLs outright (for example with DynamoDB and S3).
"""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path

HOME_ENV = "BIDSCORE_HOME"
REGISTRY_ENV = "BIDSCORE_REGISTRY"
STORE_ENV = "BIDSCORE_STORE"
ACTOR_ENV = "BIDSCORE_ACTOR"
# The alias `control serve` follows and `control promote` moves unless told otherwise; the
# one alias a first promotion may create without `--create-alias`.
DEFAULT_ALIAS = "production"


def bidscore_home() -> Path:
    """The project-local data directory, absolute (backends create what they use in it)."""
    return Path(os.environ.get(HOME_ENV) or ".bidscore").absolute()


def default_registry_url() -> str:
    """`BIDSCORE_REGISTRY`, else the SQLite file under `bidscore_home()`."""
    return (
        os.environ.get(REGISTRY_ENV) or f"sqlite://{(bidscore_home() / 'registry.db').as_posix()}"
    )


def default_store_url() -> str:
    """`BIDSCORE_STORE`, else the artifact directory under `bidscore_home()`."""
    return os.environ.get(STORE_ENV) or f"file://{(bidscore_home() / 'artifacts').as_posix()}"


def default_actor() -> str:
    """Who is acting, for the alias history: `BIDSCORE_ACTOR`, else user@host."""
    if actor := os.environ.get(ACTOR_ENV):
        return actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"
