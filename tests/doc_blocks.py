"""The command blocks of README.md and docs/*.md, and how a test runs them.

Every fenced block that holds commands (an `sh`/`bash`/`console` fence, or any fence with
`$ ` prompts) is preceded by one HTML comment that says what happens to it:

    <!-- doc-test: NAME -->               run by the test named NAME (tests/test_doc_commands.py)
    <!-- not runnable here: REASON -->    e.g. it needs a Kubernetes cluster

`tests/test_doc_commands.py` fails on a block with neither, so a new command cannot land
unrun and unexplained. Blocks with the same NAME run in document order as one session.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARK = re.compile(r"^<!--\s*(doc-test|not runnable here):\s*(.+?)\s*-->\s*$")
_SHELL = {"sh", "bash", "shell", "console"}
# `control runs list` prints run ids such as ctr-20261127T014112Z-22b186; a transcript's ids
# are replaced by the ones the same position produces in the test's own run.
RUN_ID = re.compile(r"\b[a-z][a-z0-9_.-]*-\d{8}T\d{6}Z-[0-9a-f]{6}\b")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    mark: str | None  # "doc-test" | "not runnable here" | None
    value: str  # the test name or the reason

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def command_blocks(paths: list[Path] = DOCS) -> list[Block]:
    """Every fenced block with commands, in document order, with the mark before it."""
    blocks: list[Block] = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            fence = _FENCE.match(lines[i])
            if fence is None:
                i += 1
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            body = "\n".join(lines[i + 1 : end]) + "\n"
            lang = fence.group(1)
            if lang in _SHELL or any(line.startswith("$ ") for line in lines[i + 1 : end]):
                mark = _MARK.match(lines[i - 1]) if i > 0 else None
                blocks.append(
                    Block(
                        path,
                        i + 1,
                        lang,
                        body,
                        mark.group(1) if mark else None,
                        mark.group(2) if mark else "",
                    )
                )
            i = end + 1
    return blocks


def blocks_named(name: str) -> list[Block]:
    found = [b for b in command_blocks() if b.mark == "doc-test" and b.value == name]
    assert found, f"no block is marked <!-- doc-test: {name} -->"
    return found


# --- running them ----------------------------------------------------------------------------


def substitute(text: str, replacements: dict[str, str]) -> str:
    """`text` with each replacement applied; a replacement that no longer matches fails the
    test (the docs changed under it)."""
    for old, new in replacements.items():
        assert old in text, f"the documented commands no longer contain {old!r}"
        text = text.replace(old, new)
    return text


def reader_path() -> str:
    """PATH as a reader has it after `. .venv/bin/activate`: the venv's bin first, and without
    the .tools/bin that the Makefile puts on make's own PATH, so a tool the commands need but
    the venv lacks fails here as it would for the reader."""
    venv = str(Path(sys.executable).parent)
    if shutil.which("ghz", path=venv) is None:
        pytest.fail("ghz is not in the venv: run `make install` (it links .tools/bin/ghz there)")
    tools = str(REPO / ".tools" / "bin")
    rest = [d for d in os.environ["PATH"].split(os.pathsep) if d and Path(d) != Path(tools)]
    return os.pathsep.join([venv, *rest])


def doc_env(home: Path) -> dict[str, str]:
    """The environment a reader has after `. .venv/bin/activate`, with a private
    BIDSCORE_HOME and none of the caller's registry/store/spec settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"BIDSCORE_REGISTRY", "BIDSCORE_STORE", "BIDSCORE_SPECS"}
    }
    return env | {
        "BIDSCORE_HOME": str(home),
        "PATH": reader_path(),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        "COLUMNS": "160",
    }


def run_script(script: str, cwd: Path, *, timeout: float = 600) -> str:
    """Run a `sh` block as one `bash -euo pipefail` script; its output, or a failed test."""
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=doc_env(cwd / ".home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout[-6000:]}"
    return proc.stdout


@dataclass(frozen=True)
class Step:
    """One `$ command` of a console transcript and the output the transcript shows for it."""

    command: str
    shown: list[str]


def transcript(blocks: list[Block]) -> list[Step]:
    steps: list[Step] = []
    lines = [line for block in blocks for line in block.text.splitlines()]
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        command = [lines[i][2:]]
        while command[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            command.append(lines[i])
        i += 1
        shown = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        steps.append(Step("\n".join(command), shown))
    return steps


# Lines of a transcript that must come out the same, word for word: the ones a reader acts
# on. Tables hold timings and metrics of one machine; they are shown, not compared.
_ANCHORS = ("decision:", "select:", "validate:", "wrote ", "exit ", "error:", "read ")


def run_transcript(blocks: list[Block], cwd: Path, *, timeout: float = 600) -> str:
    """Run each `$ command` of the transcript in order (one shell each, shared directory and
    environment). A command must succeed unless its shown output is an `error:` line; each
    anchor line it shows must appear in its real output. Returns everything printed."""
    env = doc_env(cwd / ".home")
    ids: dict[str, str] = {}
    printed = []
    for step in transcript(blocks):
        command = RUN_ID.sub(lambda m: ids.get(m.group(0), m.group(0)), step.command)
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        out = proc.stdout
        printed.append(f"$ {command}\n{out}")
        fails = any(line.startswith("error:") for line in step.shown)
        assert (proc.returncode != 0) == fails, (
            f"$ {command}\nexit {proc.returncode}:\n{out[-6000:]}"
        )
        real = [line.strip() for line in out.splitlines()]
        for line in step.shown:
            if line.startswith(_ANCHORS):
                # A shown line may be cut short with "..."; the rest must match.
                expected = line.strip().removesuffix("...").rstrip()
                assert any(r.startswith(expected) for r in real), (
                    f"$ {command}\nthe docs show {line.strip()!r}; it printed:\n{out[-6000:]}"
                )
        # Run ids the docs show, matched by position with the ones this run printed.
        shown_ids = list(dict.fromkeys(RUN_ID.findall("\n".join(step.shown))))
        real_ids = list(dict.fromkeys(RUN_ID.findall(out)))
        ids.update(zip(shown_ids, real_ids, strict=False))
    return "".join(printed)
