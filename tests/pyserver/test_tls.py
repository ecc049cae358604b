"""TLS and mTLS on the scoring port, and certificate rotation on disk under load."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import grpc
import pytest

from control import datagen
from control.loadtest import run_loadtest
from control.loadtest.tls import ClientTls
from pyserver import healthcheck
from pyserver.config import ServerConfig
from pyserver.errors import ConfigError
from tests.pki import Issued, issue
from tests.pyserver.serve_harness import (
    Published,
    ServerFactory,
    ServerProcess,
    metric_value,
    raw_score,
    request_bytes,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
REQUEST = request_bytes(datagen.request_payloads(1, seed=5, candidates=3)[0])


@pytest.fixture(scope="module")
def pki() -> dict[str, Issued]:
    ca1 = issue("bidscore test CA 1", ca=True)
    ca2 = issue("bidscore test CA 2", ca=True)
    return {
        "ca1": ca1,
        "ca2": ca2,
        "server1": issue("server-1", ca1),
        "server2": issue("server-2", ca2),
        "client": issue("bidder", ca1),
    }


def _wait_ready(server: ServerProcess) -> None:
    # Health over plaintext cannot reach a TLS port: the metrics endpoint (plain HTTP) can.
    def ready() -> bool:
        assert server.proc.poll() is None, server.log()[-3000:]
        try:
            return metric_value(server.metrics(), "bidscore_ready") == 1
        except OSError:  # the endpoint is not up yet
            return False

    wait_until(ready, timeout=60, message="the server to be ready")


def _tls_channel(target: str, roots: bytes, client: Issued | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=roots,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    return grpc.secure_channel(target, credentials)


def _code(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        raw_score(channel)(REQUEST, timeout=5)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_tls_serves_clients_that_trust_the_ca_only(
    published: Published, start_server: ServerFactory, pki: dict[str, Issued], tmp_path: Path
) -> None:
    cert, key = pki["server1"].write(tmp_path / "tls", "server")
    server = start_server(
        published.registry_url,
        published.store_url,
        "--tls-cert", str(cert),
        "--tls-key", str(key),
        wait=False,
    )  # fmt: skip
    _wait_ready(server)
    with _tls_channel(server.target, pki["ca1"].cert_pem) as channel:
        assert _code(channel) == grpc.StatusCode.OK
    with grpc.insecure_channel(server.target) as channel:
        assert _code(channel) == grpc.StatusCode.UNAVAILABLE
    with _tls_channel(server.target, pki["ca2"].cert_pem) as channel:
        assert _code(channel) == grpc.StatusCode.UNAVAILABLE

    # The container health check speaks TLS with the CA, and fails without it.
    ca_file = tmp_path / "tls" / "ca.crt"
    ca_file.write_bytes(pki["ca1"].cert_pem)
    assert healthcheck.main(["--target", server.target, "--tls-ca", str(ca_file)]) == 0
    assert healthcheck.main(["--target", server.target, "--timeout", "1"]) == 1

    # control loadtest speaks TLS too (ghz with --cacert); 0 errors.
    report = run_loadtest(
        server.target,
        datagen.request_payloads(20, seed=1, candidates=3),
        duration_s=1.0,
        concurrency=2,
        ghz=REPO / ".tools/bin/ghz",
        tls=ClientTls(ca_file),
    )
    assert report.count > 0
    assert report.errors == {}


def test_mtls_refuses_clients_without_a_certificate(
    published: Published, start_server: ServerFactory, pki: dict[str, Issued], tmp_path: Path
) -> None:
    cert, key = pki["server1"].write(tmp_path / "tls", "server")
    client_ca = tmp_path / "tls" / "clients.crt"
    client_ca.write_bytes(pki["ca1"].cert_pem)
    server = start_server(
        published.registry_url,
        published.store_url,
        "--tls-cert", str(cert),
        "--tls-key", str(key),
        "--tls-client-ca", str(client_ca),
        wait=False,
    )  # fmt: skip
    _wait_ready(server)
    with _tls_channel(server.target, pki["ca1"].cert_pem) as channel:
        assert _code(channel) == grpc.StatusCode.UNAVAILABLE
    with _tls_channel(server.target, pki["ca1"].cert_pem, pki["client"]) as channel:
        assert _code(channel) == grpc.StatusCode.OK


def test_certificates_rotate_on_disk_without_a_failed_call(
    published: Published, start_server: ServerFactory, pki: dict[str, Issued], tmp_path: Path
) -> None:
    tls = tmp_path / "tls"
    cert, key = pki["server1"].write(tls, "server")
    server = start_server(
        published.registry_url,
        published.store_url,
        "--tls-cert", str(cert),
        "--tls-key", str(key),
        wait=False,
    )  # fmt: skip
    _wait_ready(server)
    both = pki["ca1"].cert_pem + pki["ca2"].cert_pem
    failures: list[grpc.StatusCode] = []
    calls = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        # New connections keep coming (a channel per 5 calls), so handshakes see the rotation.
        while not stop.is_set():
            with _tls_channel(server.target, both) as channel:
                for _ in range(5):
                    code = _code(channel)
                    with lock:
                        calls[0] += 1
                        if code != grpc.StatusCode.OK:
                            failures.append(code)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: calls[0] >= 30, message="calls before the rotation")
        # Rotate as an operator would: new files renamed over the old ones (key, then cert;
        # between the two renames the pair does not match and the server keeps the old one).
        new_cert, new_key = pki["server2"].write(tls / "next", "server")
        os.replace(new_key, key)
        os.replace(new_cert, cert)

        def only_ca2_trusts() -> bool:
            with _tls_channel(server.target, pki["ca2"].cert_pem) as channel:
                return _code(channel) == grpc.StatusCode.OK

        wait_until(only_ca2_trusts, timeout=30, message="the new certificate")
        done = calls[0]
        wait_until(lambda: calls[0] >= done + 30, message="calls after the rotation")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    assert "TLS certificate reloaded" in server.log()
    with _tls_channel(server.target, pki["ca1"].cert_pem) as channel:
        assert _code(channel) == grpc.StatusCode.UNAVAILABLE  # the old CA no longer matches


def test_tls_settings_are_checked_at_start(tmp_path: Path, pki: dict[str, Issued]) -> None:
    cert, key = pki["server1"].write(tmp_path, "server")
    with pytest.raises(ConfigError, match="go together"):
        ServerConfig(tls_cert=cert)
    with pytest.raises(ConfigError, match="needs --tls-cert"):
        ServerConfig(tls_client_ca=cert)
    assert ServerConfig(tls_cert=cert, tls_key=key).tls is not None
    assert ServerConfig(host="127.0.0.1").loopback
    assert ServerConfig(host="localhost").loopback
    assert not ServerConfig(host="0.0.0.0").loopback
    assert not ServerConfig(host="10.1.2.3").loopback
