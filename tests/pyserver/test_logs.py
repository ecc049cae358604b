"""`--log-format json`: every line the server logs is one JSON object."""

from __future__ import annotations

import json

import pytest

from tests.pyserver.serve_harness import Published, ServerFactory

pytestmark = pytest.mark.timeout(120)


def test_json_logs(published: Published, start_server: ServerFactory) -> None:
    server = start_server(published.registry_url, published.store_url, "--log-format", "json")
    server.stop()
    records = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    listening = [r for r in records if "listening on" in r["message"]]
    assert len(listening) == 1
    assert {"time", "level", "logger", "pid"} <= set(listening[0])
    assert listening[0]["level"] == "INFO"
    assert listening[0]["pid"] == server.proc.pid
