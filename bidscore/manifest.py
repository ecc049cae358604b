"""A version's manifest: the typed record stored beside its model file (`<key>.json`) and in
the registry, and the checks that tie an artifact to it.

`Manifest` is the one definition: training builds it, publishing completes it, the registry
stores `to_json()` and every reader gets it back through `from_json()`, which reads every
manifest written so far (schema 1 carried the algorithm twice, as `algorithm` and
`params.algo`; schema 2 keeps only `algorithm`). Keys this code does not know are kept in
`extra` and written back unchanged.

Fields beyond the obvious ones:
- `checksum`: the XXH3-64 payload checksum of the model file (hex, as `Model.checksum` reports
  it), compared with the loaded model by every reader (the servers do too);
- `sha256`: SHA-256 (hex) of the whole file, header included, checked by `verify_artifact`
  after each download by `control` (promote, rollback, experiment start); the server does
  not hash the file again: `rust_core.load_model` checks the header and payload checksums
  and the server compares `checksum`, which covers the same bytes without a second read;
- `key`: the artifact key in the store; `idempotency_key`: the registry's idempotency key;
- `version`: None in the copy uploaded to the store, because the registry hands out the
  number only after both uploads complete; the registry's copy carries it;
- `comparison`, `retrain`: what `control retrain` adds (holdout comparison, run and window);
- `parent_version`: the version a warm-started model's training started from (None: a cold
  start, and every manifest written before warm starts existed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import rust_core
from bidscore.errors import IntegrityError

MANIFEST_SUFFIX = ".json"
SCHEMA_VERSION = 2
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Manifest:
    """Everything recorded about one model version (see the module docstring)."""

    model: str = ""
    algorithm: str = ""
    fingerprint: str = ""
    checksum: str = ""
    version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    created_at: str = ""
    sha256: str = ""
    key: str = ""
    idempotency_key: str | None = None
    artifact_uri: str = ""
    comparison: dict[str, Any] | None = None
    retrain: dict[str, Any] | None = None
    parent_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def metric(self, name: str) -> float | None:
        value = self.metrics.get(name)
        return None if value is None else float(value)

    def replace(self, **changes: Any) -> Manifest:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: every field, with `extra`'s keys at the top level."""
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        extra = body.pop("extra")
        return {**extra, **body}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Manifest:
        """Read a manifest of any schema so far; unknown keys go to `extra`."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in body.items() if k in known}
        extra = {k: v for k, v in body.items() if k not in known}
        params = dict(values.get("params") or {})
        legacy_algo = params.pop("algo", None)  # schema 1 repeated the algorithm here
        values["params"] = params
        values["algorithm"] = values.get("algorithm") or legacy_algo or ""
        if values.get("version") is not None:
            values["version"] = str(values["version"])
        for name in ("metrics", "profile", "data", "spec"):
            values[name] = values.get(name) or {}
        values["schema"] = SCHEMA_VERSION
        return cls(**values, extra=extra)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def loads(cls, text: str) -> Manifest:
        body = json.loads(text)
        if not isinstance(body, dict):
            raise IntegrityError("a manifest must be a JSON object")
        return cls.from_json(body)


def file_sha256(path: Path | str) -> str:
    """SHA-256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def code_version() -> str:
    """The bidscore package version, plus the git commit when running from a checkout."""
    try:
        version = metadata.version("bidscore")
    except metadata.PackageNotFoundError:
        version = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}" if commit else version


def write_manifest(manifest: Manifest, path: Path) -> None:
    path.write_text(manifest.dumps(), encoding="utf-8")


def verify_artifact(
    path: Path | str, manifest: Manifest, expected_fingerprint: str | None
) -> rust_core.Model:
    """Check a downloaded model file against its manifest and load it.

    In order: the file's SHA-256 equals `manifest.sha256`; `rust_core.load_model` parses
    it (header and payload checksums, bounds); the model's payload checksum equals
    `manifest.checksum`; its fingerprint equals the manifest's and, when given,
    `expected_fingerprint` (the fingerprint the running feature code computes for this model's
    spec). Any mismatch is an IntegrityError naming both values.
    """
    expected_sha = manifest.sha256
    actual_sha = file_sha256(path)
    if actual_sha != expected_sha:
        raise IntegrityError(
            f"artifact checksum mismatch: file sha256 {actual_sha}, manifest {expected_sha}"
        )
    try:
        model = rust_core.load_model(str(path))
    except ValueError as exc:  # rust_core.ModelFormatError is a ValueError
        raise IntegrityError(f"artifact {path} is not a valid model file: {exc}") from exc
    if model.checksum.lower() != manifest.checksum.lower():
        raise IntegrityError(
            f"artifact checksum mismatch: model payload {model.checksum},"
            f" manifest {manifest.checksum}"
        )
    if model.fingerprint != manifest.fingerprint:
        raise IntegrityError(
            f"model file fingerprint {model.fingerprint} != manifest fingerprint"
            f" {manifest.fingerprint}"
        )
    if expected_fingerprint is not None and model.fingerprint != expected_fingerprint:
        raise IntegrityError(
            f"feature spec mismatch: model fingerprint {model.fingerprint}, current feature code"
            f" gives {expected_fingerprint} (the model was trained on different features)"
        )
    return model
