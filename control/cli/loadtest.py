"""`control loadtest`: ghz against a scoring server, reported as QPS and tail latency.

`--stream` loads ScoreStream instead, with tools/streamload (ghz times a bidi call as a whole;
streamload times every message): QPS is messages per second, latencies are per message.

Exit codes: 0 all calls succeeded (and p99 within --max-p99-ms); 1 a call failed, or ghz or the
target could not be used; 5 p99 above --max-p99-ms.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from control.cli.options import JsonOpt
from control.cli.output import console, fail, needs_extra, print_json, user_errors
from control.exits import EXIT_SLOW
from pyserver.config import parse_models

if TYPE_CHECKING:
    from control.loadtest import LoadReport
    from control.loadtest.payloads import Payload


def loadtest(  # noqa: PLR0917 -- Typer maps each parameter to one option
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="host:port of a running server. Omitted: start one on the embedded defaults "
            "(BIDSCORE_HOME) for the duration of the test.",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        float, typer.Option("--duration", help="Seconds of load (ghz --duration).")
    ] = 10.0,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            help="Calls in flight (ghz --concurrency); with --stream, messages in flight per "
            "stream (in open loop, their cap).",
        ),
    ] = 16,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream", help="Load ScoreStream (auctions multiplexed on streams), per message."
        ),
    ] = False,
    streams: Annotated[
        int, typer.Option("--streams", help="With --stream: concurrent streams.")
    ] = 4,
    connections: Annotated[
        int, typer.Option("--connections", help="gRPC connections (ghz --connections).")
    ] = 1,
    rps: Annotated[
        int,
        typer.Option(
            "--rps",
            help="Request rate limit; 0 = as fast as answered. With --stream: open loop, "
            "messages per second over all streams, latency from when each was due.",
        ),
    ] = 0,
    skip_first: Annotated[
        int,
        typer.Option(
            "--skip-first", help="Calls left out of the tally, as warm-up (ghz --skipFirst)."
        ),
    ] = 0,
    models: Annotated[
        str, typer.Option("--models", help="Models asked for in every request, comma-separated.")
    ] = "ctr,cvr",
    requests: Annotated[
        int, typer.Option("--requests", help="Distinct requests, sent round-robin.")
    ] = 1000,
    candidates: Annotated[
        int, typer.Option("--candidates", help="Candidates per generated request.")
    ] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated requests.")] = 0,
    logs: Annotated[
        Path | None,
        typer.Option(
            "--logs",
            help="Build requests from this log file or directory instead of generating them.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes of the server started here.")
    ] = 1,
    specs: Annotated[
        str | None,
        typer.Option(
            "--specs",
            help="module:attribute of the model specs of the server started here "
            "(default: the server's own, features.bid:SPECS).",
            show_default=False,
        ),
    ] = None,
    max_p99_ms: Annotated[
        float | None,
        typer.Option("--max-p99-ms", help="Exit 5 when p99 exceeds this.", show_default=False),
    ] = None,
    cpus: Annotated[
        int,
        typer.Option(
            "--cpus",
            help="Cores the load generator's Go scheduler runs on (ghz --cpus, streamload -cpus);"
            " 0 = all. 1 keeps streamload off a co-located server's cores; ghz on one core caps"
            " itself near 4,000 calls/s.",
        ),
    ] = 0,
    ghz: Annotated[
        Path | None,
        typer.Option(
            "--ghz",
            envvar="BIDSCORE_GHZ",
            help="The ghz binary. Default: ghz on PATH.",
            show_default=False,
        ),
    ] = None,
    allow_remote: Annotated[
        bool,
        typer.Option("--allow-remote", help="Allow a --target that is not a loopback address."),
    ] = False,
    tls_ca: Annotated[
        Path | None, typer.Option(help="PEM CA bundle to verify the server: connect with TLS.")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM client certificate (mTLS), with --tls-key.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    ready_timeout: Annotated[
        float,
        typer.Option(
            "--ready-timeout",
            help="Seconds to wait for --target to listen and report SERVING (a server started"
            " just before is still loading its models).",
        ),
    ] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Load a scoring server with ghz and print QPS, mean, p50, p95, p99 and errors by status."""
    # grpc and ghz's helpers come with the [serve] extra: imported when the command runs, so
    # that `control --help` and the rest of the CLI work without them.
    with needs_extra("serve", "control loadtest"):
        from control.loadtest import GhzSettings, run_loadtest  # noqa: PLC0415
        from control.loadtest.stream import StreamSettings, run_stream_loadtest  # noqa: PLC0415
        from control.loadtest.table import report_table  # noqa: PLC0415
        from control.loadtest.tls import client_tls  # noqa: PLC0415

    model_names = parse_models(models)
    with user_errors(as_json):
        # Bad settings fail here, before a server is started or payloads are generated.
        if stream:
            stream_settings = StreamSettings(
                duration, streams, concurrency, connections, rps, cpus=cpus
            )
        else:
            GhzSettings(duration, concurrency, connections, rps, skip_first, cpus=cpus)
        tls = client_tls(tls_ca, tls_cert, tls_key)
        if tls is not None and (target is None or stream):
            fail(
                "--tls-ca needs --target, and the unary load (the server loadtest starts itself "
                "and streamload are plaintext)",
                json_out=as_json,
            )
        payloads = _payloads(logs, requests, candidates, seed, model_names)
        with _server(target, model_names, workers, specs) as address:
            if stream:
                report = run_stream_loadtest(
                    address, payloads, stream_settings, allow_remote=allow_remote
                )
            else:
                report = run_loadtest(
                    address,
                    payloads,
                    duration,
                    concurrency,
                    connections=connections,
                    rps=rps,
                    skip_first=skip_first,
                    ghz=ghz,
                    allow_remote=allow_remote,
                    tls=tls,
                    ready_timeout_s=ready_timeout,
                    cpus=cpus,
                )
    if as_json:
        print_json(report.to_json())
    elif stream:
        title = f"ScoreStream, {report.streams} streams, per message -> {address}"
        console.print(report_table(report, title=title))
    else:
        console.print(report_table(report, title=f"ghz {report.ghz_version} -> {address}"))
    _exit_for(report, max_p99_ms)


def _payloads(
    logs: Path | None, requests: int, candidates: int, seed: int, models: tuple[str, ...]
) -> list[Payload]:
    from control.loadtest import generated_payloads, payloads_from_logs  # noqa: PLC0415

    if logs is not None:
        return payloads_from_logs(logs, requests, models)
    return generated_payloads(requests, seed, candidates, models)


@contextmanager
def _server(
    target: str | None, models: tuple[str, ...], workers: int, specs: str | None
) -> Iterator[str]:
    if target is not None:
        yield target
        return
    from control.loadtest import local_server  # noqa: PLC0415

    with local_server(models, workers=workers, specs=specs) as server:
        yield server.target


def _exit_for(report: LoadReport, max_p99_ms: float | None) -> None:
    from control.loadtest.table import errors_text  # noqa: PLC0415

    if report.error_count:
        first = report.first_error() or "no message"
        fail(
            f"{report.error_count:,} of {report.count:,} calls failed ({errors_text(report)}); "
            f"most frequent: {first}"
        )
    if report.count == 0:
        fail("no call completed within the test's duration")
    p99 = report.p99_ms
    if max_p99_ms is not None and p99 is not None and p99 > max_p99_ms:
        fail(f"p99 {p99:.2f} ms exceeds --max-p99-ms {max_p99_ms:g}", EXIT_SLOW)
