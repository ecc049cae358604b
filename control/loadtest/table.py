"""The load report as a one-row rich table: what `control loadtest` prints."""

from __future__ import annotations

from rich.table import Table

from control.loadtest.report import LoadReport


def report_table(report: LoadReport, title: str | None = None) -> Table:
    table = Table(title=title)
    # A stream run counts messages, and says over how many streams.
    calls = "calls" if report.streams is None else "messages"
    columns = ["QPS", "mean ms", "p50 ms", "p95 ms", "p99 ms", calls, "errors"]
    cells = [
        f"{report.qps:,.0f}",
        _ms(report.mean_ms),
        _ms(report.p50_ms),
        _ms(report.p95_ms),
        _ms(report.p99_ms),
        f"{report.count:,}",
        errors_text(report),
    ]
    if report.streams is not None:
        columns.append("streams")
        cells.append(str(report.streams))
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(*cells)
    return table


def errors_text(report: LoadReport) -> str:
    """`0`, or the count by status: `NotFound 1,204, Unavailable 3`."""
    if not report.errors:
        return "0"
    return ", ".join(f"{status} {n:,}" for status, n in sorted(report.errors.items()))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
