"""The monitoring report: one self-contained HTML file with the flags on top and the plots
below (inline SVG; nothing is fetched when it is opened).

Every plot sits in `<figure class="plot" id="plot-NAME">`, so a test (or a person) can find
each one: metrics, rows, calibration, reliability, psi.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Template

from control.experiments.status import ExperimentStatus, experiment_flags
from control.experiments.text import ARM_ROWS, cell, header, interval, rate_name
from control.monitor import plots
from control.monitor.cells import ACCURACY_COLUMNS, VERSION_COLUMNS, accuracy_cells, version_cells
from control.monitor.drift import DriftReport
from control.monitor.flags import Flag
from control.monitor.offline import OfflineReport, version_key
from control.monitor.online import OnlineReport, iso

PLOT_IDS = ("metrics", "rows", "calibration", "reliability", "psi")


@dataclass(frozen=True)
class ReportInputs:
    offline: list[OfflineReport]
    drift: list[DriftReport]
    online: OnlineReport | None = None
    extra_flags: list[Flag] = field(default_factory=list)  # serving drift, for example
    # Experiments that ran during the log's period, measured on it (control.experiments).
    experiments: list[ExperimentStatus] = field(default_factory=list)

    @property
    def flags(self) -> list[Flag]:
        every = [
            *(f for r in self.offline for f in r.flags),
            *(f for r in self.drift for f in r.flags),
            *(self.online.flags if self.online else []),
            *self.extra_flags,
            *(f for e in self.experiments for f in experiment_flags(e)),
        ]
        # Alarms first, then by model and version as numbers where they are numbers.
        return sorted(
            every, key=lambda f: (f.severity != "alarm", f.model, version_key(f.version), f.check)
        )


def render(inputs: ReportInputs, title: str = "bidscore monitoring report") -> str:
    """The report as one HTML string."""
    template = Template(
        resources.files("control.monitor").joinpath("report_template.html").read_text("utf-8")
    )
    flags = inputs.flags
    alarms = sum(f.severity == "alarm" for f in flags)
    models = sorted({r.model for r in inputs.offline} | {r.model for r in inputs.drift})
    summary = (
        f"Models: {', '.join(models) or 'none'}. {alarms} alarm(s), {len(flags) - alarms} flag(s)."
    )
    return template.substitute(
        title=html.escape(title),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        summary=html.escape(summary),
        flags=_flags_table(flags),
        plot_metrics=_figure(
            "metrics",
            "AUC, logloss and normalised entropy by version",
            plots.metrics_over_versions(inputs.offline),
        ),
        offline_tables="\n".join(_offline_table(r) for r in inputs.offline),
        plot_rows=_figure(
            "rows", "Training rows by version", plots.rows_over_versions(inputs.offline)
        ),
        plot_calibration=_figure(
            "calibration",
            "Online calibration over time (mean predicted / observed)",
            plots.online_calibration(inputs.online),
        ),
        plot_reliability=_figure(
            "reliability",
            "Reliability curve (settled online predictions)",
            plots.reliability_curve(inputs.online),
        ),
        online_table=_online_table(inputs.online),
        experiments=_experiments_section(inputs.experiments),
        plot_psi=_figure(
            "psi",
            "Population stability index per feature, each version against the one before",
            plots.psi_heatmap(inputs.drift),
        ),
    )


def write(inputs: ReportInputs, out: Path, title: str = "bidscore monitoring report") -> Path:
    """Render and write atomically (a reader never sees half a report)."""
    text = render(inputs, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A private temporary name beside the target (created with the user's umask, unlike
    # mkstemp's 0600), then an atomic rename.
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _figure(plot_id: str, caption: str, svg: str) -> str:
    return (
        f'<figure class="plot" id="plot-{plot_id}">'
        f"<figcaption>{html.escape(caption)}</figcaption>\n{svg}\n</figure>"
    )


def _table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes else ""
        cells = "".join(
            f'<td class="num">{html.escape(c)}</td>'
            if _is_number(c)
            else f"<td>{html.escape(c)}</td>"
            for c in row
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _flags_table(flags: list[Flag]) -> str:
    if not flags:
        return '<p class="ok" id="no-flags">No flags: every check passed.</p>'
    return _table(
        ["severity", "check", "model", "version", "subject", "finding"],
        [[f.severity, f.check, f.model, f.version, f.subject, f.message] for f in flags],
        [f.severity for f in flags],
    )


def _offline_table(report: OfflineReport) -> str:
    flagged = {f.version for f in report.flags}
    return f"<h3>{html.escape(report.model)}</h3>" + _table(
        list(VERSION_COLUMNS),
        [version_cells(v) for v in report.versions],
        ["flag" if v.version in flagged else "" for v in report.versions],
    )


def _online_table(report: OnlineReport | None) -> str:
    if report is None or not report.totals:
        return ""
    rows = [
        [
            t.model,
            t.version,
            iso(t.start),
            f"{t.count:,}",
            f"{t.positives:,}",
            str(report.pending.get((t.model, t.version), 0)),
            *accuracy_cells(t),
        ]
        for t in report.totals
    ]
    header = ["model", "version", "from", "settled", "positives", "pending", *ACCURACY_COLUMNS]
    return _table(header, rows)


def _experiments_section(statuses: list[ExperimentStatus]) -> str:
    """Each experiment: its record, the arms side by side with 95 % intervals and the
    difference, the sample-ratio test (flagged), a canary's guardrails and the verdict."""
    if not statuses:
        return '<p id="no-experiments">No experiment ran during the log\'s period.</p>'
    parts = []
    for status in statuses:
        e, m = status.experiment, status.measurement
        body = [f"<p>{html.escape(header(status))}</p>"]
        if m is not None:
            rows, classes = [], []
            for label, attr, digits, diff in ARM_ROWS:
                cells = [cell(getattr(arm, attr), digits) for arm in (m.control, m.treatment)]
                delta = interval(m.differences[diff], digits, signed=True) if diff else ""
                rows.append([label.format(rate=rate_name(m.label)), *cells, delta])
                classes.append("")
            body.append(
                _table(
                    [
                        "metric",
                        f"control v{m.control.version}",
                        f"treatment v{m.treatment.version}",
                        "treatment - control",
                    ],
                    rows,
                    classes,
                )
            )
            srm_class = "alarm" if m.srm.flagged else "ok"
            body.append(
                f'<p class="{srm_class} srm">Sample ratio: {html.escape(m.srm.describe())}</p>'
            )
            if status.guardrails:
                body.append(
                    _table(
                        ["guardrail", "state", "detail"],
                        [[g.name, g.state, g.detail] for g in status.guardrails],
                        ["alarm" if g.breached else "" for g in status.guardrails],
                    )
                )
            body.append(f'<p class="verdict"><strong>{html.escape(m.verdict.line)}</strong></p>')
        parts.append(
            f'<section class="experiment" id="experiment-{html.escape(e.name)}">'
            f"<h3>{html.escape(e.name)}</h3>{''.join(body)}</section>"
        )
    return "\n".join(parts)
