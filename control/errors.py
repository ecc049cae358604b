"""The control plane's error types: each one is a one-line message meant for a person.

`control.cli.output.user_errors` turns these (and the data errors of `features` and
`rust_core`) into `error: ...` on stderr and an exit code.
"""

from __future__ import annotations


class ControlError(Exception):
    """Base of every expected failure of the control plane."""


class RegistryError(ControlError):
    """The registry cannot be reached or read (bad URL, network, I/O, missing table)."""


class ConflictError(ControlError):
    """A compare-and-set lost: the alias moved since the caller read it."""


class NotFoundError(ControlError):
    """An unknown model, version, alias or run."""


class StoreError(ControlError):
    """The artifact store cannot be reached, or an upload or download failed."""


class IntegrityError(ControlError):
    """An artifact does not match its manifest (checksum, fingerprint, format)."""


class GateError(ControlError):
    """A promotion refused by a metric or compatibility gate."""


class InputError(ControlError, ValueError):
    """Bad input from the caller: an invalid name, option or file."""


class TrainingInputError(InputError):
    """Training data that cannot produce a model (empty, one label value, bad options)."""
