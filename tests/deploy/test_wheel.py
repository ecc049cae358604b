"""The container image's build steps, without a container engine: build the manylinux wheel
with deploy/docker/build-wheel.sh, install it into a fresh virtualenv with the `serve` extra
only (no dev extras, as the image does), and serve and score with that install alone (the
data is generated, trained and promoted by that install too).

Slow (a release build of rust_core and a pip install from the package index): marked `slow`.
`BIDSCORE_WHEEL=path/to.whl` skips the build when a wheel from this tree is at hand.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import grpc
import pytest

from bidscore.v1 import scorer_pb2, scorer_pb2_grpc
from control import datagen
from control.loadtest.local_server import free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("BIDSCORE_WHEEL")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [str(ROOT / "deploy/docker/build-wheel.sh"), str(out)],
        check=True,
        env={**os.environ, "CARGO_TARGET_DIR": str(ROOT / "target/wheel")},
    )
    (found,) = out.glob("bidscore-*manylinux_2_28*.whl")
    return found


def test_the_wheel_installs_with_the_serve_extra_and_serves(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = env_dir / "bin/pip"
    subprocess.run([str(pip), "install", "-q", f"{wheel}[serve]"], check=True)
    installed = subprocess.run(
        [str(pip), "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    for dev_only in ("pytest", "moto", "scikit-learn", "mypy", "optuna", "matplotlib"):
        assert dev_only not in installed, installed

    # Generate, train, promote and serve with the fresh install alone.
    home = tmp_path / "home"
    env = {**os.environ, "BIDSCORE_HOME": str(home)}
    env.pop("BIDSCORE_REGISTRY", None)
    env.pop("BIDSCORE_STORE", None)

    clean_env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def control(*args: str) -> None:
        subprocess.run(
            [str(env_dir / "bin/control"), *args],
            check=True,
            env=clean_env,
            cwd=tmp_path,  # not the checkout: only the installed package can be imported
            capture_output=True,
        )

    control("datagen", "--rows", "3000", "--days", "2", "--out", str(tmp_path / "logs"))
    for model in ("ctr", "cvr"):
        control("train", "--model", model, "--algo", "lr", "--epochs", "2",
                "--data", str(tmp_path / "logs"))  # fmt: skip
        control("promote", model, "1", "--force")
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(env_dir / "bin/control"), "serve", "--port", str(port)],
            env=clean_env,
            cwd=tmp_path,  # not the checkout: only the installed package can be imported
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        payload = datagen.request_payloads(1, seed=4, candidates=3)[0]
        request = scorer_pb2.ScoreRequest(request_id="wheel", context=payload["context"])
        for cand in payload["candidates"]:
            request.candidates.add(id=cand["id"]).features.update(cand["features"])

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = scorer_pb2_grpc.ScorerStub(channel)

            def answers() -> bool:
                assert server.poll() is None, log_path.read_text(errors="replace")
                try:
                    return len(stub.Score(request, timeout=2).candidates) == 3
                except grpc.RpcError:
                    return False

            wait_until(answers, timeout=120, message="the wheel's server to score")
            reply = stub.Score(request, timeout=5)
        assert [m.name for m in reply.models] == ["ctr", "cvr"]
        assert all(0 < s < 1 for c in reply.candidates for s in c.scores)
    finally:
        server.terminate()
        server.wait(timeout=30)
