"""Fixtures shared by every suite.

- `free_port` returns a function giving an unused TCP port on 127.0.0.1.
- `moto_server` (session): a real `moto_server` subprocess (AWS emulator) on a free port;
  yields its endpoint URL and sets dummy AWS credentials for the session.
- `aws_backends`: a fresh DynamoDB registry URL and S3 store URL (unique table and bucket) on
  that server.
- `backends`: parametrised (registry_url, store_url) for "sqlite+file" and "dynamodb+s3".
- `bidscore_home`: a temporary BIDSCORE_HOME, so the default registry and store are private.
- `small_logs`: a small generated Parquet log file (control.datagen), shared by the session.
- Hypothesis profiles: `HYPOTHESIS_PROFILE=ci` (default, quick) or `thorough`.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

AWS_REGION = "us-east-1"


def _free_port() -> int:
    # Bind to port 0 and let the kernel pick; the tiny window before the caller binds it is
    # acceptable on a test machine.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """`port = free_port()`: an unused TCP port on 127.0.0.1."""
    return _free_port


@pytest.fixture
def bidscore_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private BIDSCORE_HOME; registry/store overrides from the environment are removed."""
    home = tmp_path / "bidscore-home"
    monkeypatch.setenv("BIDSCORE_HOME", str(home))
    monkeypatch.delenv("BIDSCORE_REGISTRY", raising=False)
    monkeypatch.delenv("BIDSCORE_STORE", raising=False)
    return home


_MOTO_SERIAL = Path(__file__).with_name("moto_serial.py")


def _require_moto() -> None:
    if importlib.util.find_spec("moto.server") is None:
        pytest.fail("moto's server is not installed (pip install 'moto[server]')")


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"moto_server exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    pytest.fail(f"moto_server did not answer on {url} within {timeout}s")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server process on 127.0.0.1; yields its endpoint URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as mp:
        # Dummy credentials: boto3 refuses to sign without some, and real ones must never
        # be used by the test suite.
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_SESSION_TOKEN", "testing")
        mp.setenv("AWS_DEFAULT_REGION", AWS_REGION)
        mp.delenv("AWS_PROFILE", raising=False)
        _require_moto()
        proc = subprocess.Popen(
            # moto_server with DynamoDB requests serialised (see tests/moto_serial.py).
            [sys.executable, str(_MOTO_SERIAL), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until_up(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def aws_backends(moto_server: str) -> tuple[str, str]:
    """(registry_url, store_url): a new DynamoDB table (created on first use) and S3 bucket."""
    suffix = uuid.uuid4().hex[:12]
    bucket = f"bidscore-test-{suffix}"
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=AWS_REGION)
    s3.create_bucket(Bucket=bucket)
    registry_url = (
        f"dynamodb://bidscore-test-{suffix}?region={AWS_REGION}&endpoint_url={moto_server}&create=1"
    )
    store_url = f"s3://{bucket}/artifacts?endpoint_url={moto_server}&region={AWS_REGION}"
    return registry_url, store_url


@pytest.fixture(params=["sqlite+file", pytest.param("dynamodb+s3", marks=pytest.mark.aws)])
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(registry_url, store_url) for each backend pair: a SQLite file and a directory, or a
    DynamoDB table and an S3 bucket on the moto server. Tests using it run once per pair."""
    if request.param == "sqlite+file":
        return f"sqlite://{tmp_path / 'registry.db'}", f"file://{tmp_path / 'artifacts'}"
    pair: tuple[str, str] = request.getfixturevalue("aws_backends")
    return pair


@pytest.fixture(scope="session")
def small_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4,000 labelled bid-log rows (one Parquet file), generated once per session."""
    from control.datagen import write_dataset  # noqa: PLC0415 -- only suites that need data

    path = tmp_path_factory.mktemp("logs") / "small.parquet"
    write_dataset(path, rows=4000, seed=7)
    return path


# Suites that start real scoring servers (or ghz) are left out of `make test-fast`.
_SERVER_SUITES = {
    "tests/pyserver/test_service.py",
    "tests/pyserver/test_server.py",
    "tests/pyserver/test_reloader.py",
    "tests/pyserver/test_predlog.py",
    "tests/pyserver/test_workers.py",
    "tests/pyserver/test_pyserver_cli.py",
    "tests/pyserver/test_stream.py",
    "tests/pyserver/test_metrics.py",
    "tests/pyserver/test_tls.py",
    "tests/pyserver/test_logs.py",
    "tests/pyserver/test_experiments_serving.py",
    "tests/control/test_loadtest.py",
    "tests/control/test_loadtest_stream.py",
    "tests/test_readme.py",
    "tests/test_experiment_end_to_end.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        if Path(item.path).relative_to(root).as_posix() in _SERVER_SUITES:
            item.add_marker(pytest.mark.server)
