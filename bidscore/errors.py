"""Expected failures shared by the control plane and the server: each carries a one-line
message meant for a person.

`control.cli.output.user_errors` turns these into `error: ...` on stderr and an exit code; the
server logs them and keeps serving its last good model.
"""

from __future__ import annotations


class BidscoreError(Exception):
    """Base of every expected failure (bad input, unreachable backend, refused artifact)."""


class RegistryError(BidscoreError):
    """The registry cannot be reached or read (bad URL, network, I/O, missing table)."""


class ConflictError(BidscoreError):
    """A compare-and-set lost: the alias moved since the caller read it."""


class NotFoundError(BidscoreError):
    """An unknown model, version, alias or run."""


class StoreError(BidscoreError):
    """The artifact store cannot be reached, or an upload or download failed."""


class IntegrityError(BidscoreError):
    """An artifact does not match its manifest (checksum, fingerprint, format)."""


class InputError(BidscoreError, ValueError):
    """Bad input from the caller: an invalid name, option or file."""
