"""Client-side TLS for `control loadtest`: a CA to trust, and for mTLS a client pair."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from control.loadtest.errors import LoadTestError
from pyserver.tls import client_channel


@dataclass(frozen=True)
class ClientTls:
    ca: Path
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise LoadTestError("--tls-cert and --tls-key go together")
        for path in (self.ca, self.cert, self.key):
            if path is not None and not path.is_file():
                raise LoadTestError(f"TLS file not found: {path}")

    def ghz_args(self) -> list[str]:
        args = [f"--cacert={self.ca}"]
        if self.cert is not None and self.key is not None:
            args += [f"--cert={self.cert}", f"--key={self.key}"]
        return args

    def channel(self, target: str) -> grpc.Channel:
        return client_channel(target, self.ca, self.cert, self.key)


def client_tls(ca: Path | None, cert: Path | None, key: Path | None) -> ClientTls | None:
    """The options' TLS settings; None for plaintext. A client pair without a CA is an error."""
    if ca is None:
        if cert is not None or key is not None:
            raise LoadTestError("--tls-cert/--tls-key need --tls-ca")
        return None
    return ClientTls(ca, cert, key)
