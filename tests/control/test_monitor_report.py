"""The HTML report, written by `control monitor report` and rendered by headless Chromium: flags
on top, every plot present with a real size and drawn content, nothing fetched from outside."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bidscore.registry import open_registry
from bidscore.settings import default_registry_url
from control import datagen
from control.cli.app import app
from control.monitor.report import PLOT_IDS, ReportInputs, render
from tests.control.monitor_data import days_of, register, write_outcomes, write_prediction_log

# Measures every figure after layout and writes the result into the DOM that --dump-dom prints.
PROBE = """
<script>
const result = {order: [], plots: {}};
for (const el of document.querySelectorAll("#flags, table, figure.plot")) {
  result.order.push(el.id || el.tagName.toLowerCase());
}
for (const fig of document.querySelectorAll("figure.plot")) {
  const svg = fig.querySelector("svg");
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  result.plots[fig.id] = {
    width: box.width, height: box.height,
    drawn: svg ? svg.querySelectorAll("path, use, rect, text, image").length : 0,
    inked: svg ? [...svg.querySelectorAll("path")].filter(p => {
      const b = p.getBBox(); return b.width > 0 || b.height > 0; }).length : 0,
  };
}
const out = document.createElement("pre");
out.id = "probe";
out.textContent = JSON.stringify(result);
document.body.appendChild(out);
</script>
"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run scripts/install-system-deps.sh")
    return found


def render_in_chromium(report: Path, tmp_path: Path) -> dict:
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    completed = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--window-size=1280,2000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    match = re.search(r'<pre id="probe">(.*?)</pre>', completed.stdout, re.S)
    assert match, completed.stdout[-2000:]
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture
def monitored(tmp_path: Path, bidscore_home: Path) -> dict[str, str]:
    """A registry with three ctr versions (a shift before the third and half the rows) and a
    prediction log with raw features and outcomes for the newest version."""
    registry = open_registry(default_registry_url())
    days = days_of(datagen.generate(3000, seed=4, days=3, shift_from_day=2, shrink_from_day=2))
    for i, day in enumerate(days):
        metrics = {
            "logloss": 0.12 + 0.01 * i,
            "auc": 0.74 - 0.02 * i,
            "ne": 0.9,
            "calibration": 1.0,
            "rows": day.num_rows // 10,
            "positives": 10,
        }
        register(registry, "ctr", day, metrics=metrics)
    traffic = datagen.generate(8000, seed=9, candidates=4, start="2026-11-04", shift_from_day=0)
    write_prediction_log(
        tmp_path / "log",
        traffic,
        np.clip(datagen.planted_ctr(traffic) * 2, 0, 1),
        version="3",
        include_features=True,
        context_columns=datagen.CONTEXT_COLUMNS,
        candidate_columns=datagen.CANDIDATE_COLUMNS,
    )
    write_outcomes(tmp_path / "outcomes.parquet", traffic)
    return {"log": str(tmp_path / "log"), "outcomes": str(tmp_path / "outcomes.parquet")}


@pytest.mark.timeout(180)
def test_report_renders_every_plot_with_flags_on_top(
    monitored: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            "report",
            "--out",
            str(out),
            "--predictions",
            monitored["log"],
            "--outcomes",
            monitored["outcomes"],
            "--bucket",
            "6h",
            "--as-of",
            "2026-12-01",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    html = out.read_text()

    # Self-contained: no scripts, stylesheets or images from anywhere, no remote URLs.
    assert "<script" not in html
    assert "<link" not in html
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", html)
    assert not re.search(r"url\(\s*['\"]?https?:", html)

    # The flags the data was built to raise are in the table at the top.
    flags_table = html[html.index('id="flags"') : html.index("<figure")]
    for expected in ("drift.psi", "drift.rows", "offline.auc", "online.calibration", "alarm"):
        assert expected in flags_table, expected

    probe = render_in_chromium(out, tmp_path)
    assert probe["order"][0] == "flags"
    assert probe["order"][1] == "table"  # the flags table comes before any plot
    assert set(probe["plots"]) == {f"plot-{name}" for name in PLOT_IDS}
    for name, plot in probe["plots"].items():
        assert plot["width"] > 200, (name, plot)
        assert plot["height"] > 100, (name, plot)
        assert plot["inked"] > 10, (name, plot)  # lines, markers, cells, glyphs: not a blank box


def test_report_without_online_data_says_so_in_each_online_plot() -> None:
    text = render(ReportInputs(offline=[], drift=[], online=None))
    assert text.count('class="plot"') == len(PLOT_IDS)
    assert 'id="no-flags"' in text
    # Empty plots still draw their explanation (as glyph paths), never an empty box.
    for plot_id in PLOT_IDS:
        figure = text[text.index(f'id="plot-{plot_id}"') :]
        figure = figure[: figure.index("</figure>")]
        assert figure.count("<path") > 5, plot_id


def test_report_cli_refuses_outcomes_without_a_log(tmp_path: Path, bidscore_home: Path) -> None:
    result = CliRunner().invoke(
        app, ["monitor", "report", "--out", str(tmp_path / "r.html"), "--outcomes", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "--outcomes needs --predictions" in result.stderr
    # No registry at all: a reading command refuses it rather than creating an empty one.
    empty = CliRunner().invoke(app, ["monitor", "report", "--out", str(tmp_path / "r.html")])
    assert empty.exit_code == 1
    assert "does not exist" in empty.stderr
    assert not (tmp_path / "r.html").exists()
