"""`control serve`: the scoring server (implemented in pyserver.cli, shared with
`python -m pyserver`)."""

from __future__ import annotations

from pyserver.cli import serve

__all__ = ["serve"]
