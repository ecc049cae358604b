"""A version's manifest: the JSON document stored beside its model file (`<key>.json`) and in
the registry, and the checks that tie an artifact to it.

Fields (docs/architecture.md): `model, version, algorithm, params, fingerprint, spec,
checksum, artifact_uri, metrics, profile, data, code_version, created_at`, plus:

- `checksum`: the XXH3-64 payload checksum of the model file (hex, as `Model.checksum` reports
  it; the header carries it and `rust_core.load_model` verifies the payload against it), which
  every reader compares with the loaded model (the servers do too);
- `sha256`: SHA-256 (hex) of the whole file, header included, checked after every download;
- `key`: the artifact key in the store (also the registry's idempotency key);
- `version`: null in the copy uploaded to the store, because the version number is handed out
  by the registry only after both uploads complete; the registry's copy carries it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import rust_core
from control.errors import IntegrityError

MANIFEST_SUFFIX = ".json"
_CHUNK = 1 << 20


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


def write_manifest(manifest: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def verify_artifact(
    path: Path | str, manifest: dict[str, Any], expected_fingerprint: str | None
) -> rust_core.Model:
    """Check a downloaded model file against its manifest and load it.

    In order: the file's SHA-256 equals `manifest["sha256"]`; `rust_core.load_model` parses
    it (header and payload checksums, bounds); the model's payload checksum equals
    `manifest["checksum"]`; its fingerprint equals the manifest's and, when given,
    `expected_fingerprint` (the fingerprint the running feature code computes for this model's
    spec). Any mismatch is an IntegrityError naming both values.
    """
    expected_sha = manifest.get("sha256")
    actual_sha = file_sha256(path)
    if actual_sha != expected_sha:
        raise IntegrityError(
            f"artifact checksum mismatch: file sha256 {actual_sha}, manifest {expected_sha}"
        )
    try:
        model = rust_core.load_model(str(path))
    except ValueError as exc:  # rust_core.ModelFormatError is a ValueError
        raise IntegrityError(f"artifact {path} is not a valid model file: {exc}") from exc
    if model.checksum.lower() != str(manifest.get("checksum", "")).lower():
        raise IntegrityError(
            f"artifact checksum mismatch: model payload {model.checksum},"
            f" manifest {manifest.get('checksum')}"
        )
    if model.fingerprint != manifest.get("fingerprint"):
        raise IntegrityError(
            f"model file fingerprint {model.fingerprint} != manifest fingerprint"
            f" {manifest.get('fingerprint')}"
        )
    if expected_fingerprint is not None and model.fingerprint != expected_fingerprint:
        raise IntegrityError(
            f"feature spec mismatch: model fingerprint {model.fingerprint}, current feature code"
            f" gives {expected_fingerprint} (the model was trained on different features)"
        )
    return model
