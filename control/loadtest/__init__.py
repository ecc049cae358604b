"""Load tests of a scoring server with ghz: payloads, the ghz run, and its report.

`run_loadtest(target, payloads, duration_s, concurrency, ...)` is the library entry point
(used by `control loadtest` and the demo); `local_server(...)` starts a server on the
embedded defaults when there is no target to aim at.
"""

from control.loadtest.errors import LoadTestError
from control.loadtest.ghz import GhzSettings
from control.loadtest.local_server import local_server
from control.loadtest.payloads import generated_payloads, payloads_from_logs
from control.loadtest.report import LoadReport
from control.loadtest.run import run_loadtest

__all__ = [
    "GhzSettings",
    "LoadReport",
    "LoadTestError",
    "generated_payloads",
    "local_server",
    "payloads_from_logs",
    "run_loadtest",
]
