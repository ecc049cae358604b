"""TLS for the scoring port: server certificate and key, optionally a client CA (mTLS), re-read
from disk when they change so that certificates rotate without a restart.

gRPC asks `fetch()` at the start of every new connection's handshake; it returns a new
configuration only when a file's (mtime, size) changed and the new files load, else None (keep
the current one). Connections already open keep the certificate they were made with; clients
that reconnect, or open new connections, get the new one. A half-written rotation (a key that
does not match its certificate, an unreadable file) is logged and the previous pair keeps
serving.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from pyserver.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: clients must present a certificate signed by it

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())


def client_channel(
    target: str,
    ca: Path,
    cert: Path | None = None,
    key: Path | None = None,
    *,
    server_name: str | None = None,
) -> grpc.Channel:
    """A TLS channel trusting `ca`, with a client certificate for mTLS when given (the health
    check and `control loadtest` both connect this way)."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(target, credentials, options=options)


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int], ...]:
    stats = [p.stat() for p in paths]
    return tuple((s.st_mtime_ns, s.st_size) for s in stats)


def _check_pair(cert: bytes, key: bytes) -> None:
    """Refuse a key that does not belong to the certificate (a rotation caught half-way)."""
    from cryptography import x509  # noqa: PLC0415 -- only TLS servers need it
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    public = x509.load_pem_x509_certificate(cert).public_key()
    private = serialization.load_pem_private_key(key, password=None)
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if public.public_bytes(*raw) != private.public_key().public_bytes(*raw):
        raise ValueError("the private key does not match the certificate")


class ReloadingCredentials:
    """Server credentials whose files are re-read when they change (see the module doc)."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        try:
            self._stamp = _stamp(files.paths)
            self._initial = self._load()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot use the TLS files: {exc}") from exc
        self.reloads = 0

    def _load(self) -> grpc.ServerCertificateConfiguration:
        cert, key = self.files.cert.read_bytes(), self.files.key.read_bytes()
        _check_pair(cert, key)
        root = self.files.client_ca.read_bytes() if self.files.client_ca else None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=root)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            try:
                stamp = _stamp(self.files.paths)
                if stamp == self._stamp:
                    return None
                config = self._load()
            except (OSError, ValueError) as exc:
                log.warning("TLS files changed but cannot be used yet, keeping the old: %s", exc)
                return None
            self._stamp = stamp
            self.reloads += 1
            log.info("TLS certificate reloaded from %s", self.files.cert)
            return config

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self.fetch,
            require_client_authentication=self.files.client_ca is not None,
        )
