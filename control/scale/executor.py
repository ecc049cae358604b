"""Where `control train`, `control retrain` and `control tune` run their work: `--executor`.

- `local` (the default): this process, as before; Ray is never imported.
- `ray`: a Ray instance started on this machine for the command (`--ray-cpus`, default the
  machine's cores) and shut down when it ends.
- `ray://HOST:PORT`: an existing cluster through Ray Client (KubeRay's head service, say).

`BIDSCORE_EXECUTOR` sets the default. Ray is the optional extra `bidscore[ray]`; asking for
it without it installed, or naming a cluster that does not answer within
`CONNECT_TIMEOUT_S`, is a one-line `ExecutorError` before any work starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from bidscore.errors import BidscoreError

EXECUTOR_ENV = "BIDSCORE_EXECUTOR"
# How long a ray:// address gets to accept a TCP connection before the command gives up.
CONNECT_TIMEOUT_S = 5.0
_RAY_MISSING = (
    "--executor {0} needs Ray, which is not installed: pip install 'bidscore[ray]'"
    " (or use --executor local)"
)


class ExecutorError(BidscoreError):
    """An executor that cannot be used: unknown name, Ray missing, cluster unreachable."""


@dataclass(frozen=True)
class Executor:
    """A parsed `--executor`: `kind` local or ray; `address` for a Ray Client cluster."""

    kind: Literal["local", "ray"]
    address: str | None = None  # "ray://host:port", or None for a Ray started here
    cpus: int | None = None  # CPUs of a Ray started here (default: the machine's)

    @property
    def name(self) -> str:
        return self.address or self.kind

    @property
    def is_ray(self) -> bool:
        return self.kind == "ray"


def parse_executor(text: str | None, *, ray_cpus: int | None = None) -> Executor:
    """`--executor` (None: `$BIDSCORE_EXECUTOR`, else local) as an Executor; one-line errors."""
    value = (text if text is not None else os.environ.get(EXECUTOR_ENV, "")).strip() or "local"
    if ray_cpus is not None and ray_cpus < 1:
        raise ExecutorError(f"--ray-cpus must be >= 1, got {ray_cpus}")
    if value == "local":
        if ray_cpus is not None:
            raise ExecutorError("--ray-cpus needs --executor ray")
        return Executor("local")
    if value == "ray":
        return Executor("ray", cpus=ray_cpus)
    if value.startswith("ray://"):
        host, _, port = value.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            raise ExecutorError(f"--executor {value}: expected ray://HOST:PORT")
        if ray_cpus is not None:
            raise ExecutorError("--ray-cpus applies to --executor ray, not to a cluster address")
        return Executor("ray", address=value)
    raise ExecutorError(f"unknown executor {value!r} (use local, ray or ray://HOST:PORT)")


def import_ray(executor: Executor) -> Any:
    """The `ray` module, or a one-line ExecutorError naming the extra to install."""
    try:
        import ray  # noqa: PLC0415 - optional extra, imported only when asked for
    except ImportError:
        raise ExecutorError(_RAY_MISSING.format(executor.name)) from None
    return ray


def running_ray(executor: str) -> Any | None:
    """The `ray` module when `executor` is a Ray one and Ray is connected in this process (the
    command's session, or inside a Ray task), else None: the work stays in this process."""
    if executor == "local":
        return None
    ray = import_ray(parse_executor(executor))
    return ray if ray.is_initialized() else None


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A TCP connection to a ray:// address within `timeout`, or a one-line ExecutorError
    (Ray Client itself retries for about a minute before it gives up)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ExecutorError(
            f"cannot reach the Ray cluster at {address} within {timeout:g}s ({exc.strerror or exc})"
        ) from None


@contextlib.contextmanager
def ray_session(executor: Executor) -> Iterator[Any]:
    """Ray connected for the block (started here, or a cluster through Ray Client), shut
    down after it; yields the `ray` module. Inside a Ray worker, the running Ray is reused."""
    ray = import_ray(executor)
    if ray.is_initialized():
        yield ray
        return
    if executor.address is not None:
        check_reachable(executor.address)
        try:
            ray.init(address=executor.address, logging_level="ERROR")
        except Exception as exc:  # Ray Client raises ConnectionError and grpc errors alike
            raise ExecutorError(
                f"cannot connect to the Ray cluster at {executor.address}: {exc}"
            ) from None
    else:
        ray.init(
            num_cpus=executor.cpus or os.cpu_count() or 1,
            include_dashboard=False,
            logging_level="ERROR",
            # The driver's packages are importable by the workers: same machine, same venv.
            configure_logging=True,
        )
    try:
        yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def session(executor: Executor) -> Iterator[Any | None]:
    """`ray_session` for a Ray executor; nothing (yields None) for local."""
    if not executor.is_ray:
        yield None
        return
    with ray_session(executor) as ray:
        yield ray
