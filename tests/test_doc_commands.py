"""Every command block of README.md and docs/*.md is run here, or marked as not runnable
here with the reason (see tests/doc_blocks.py for the marks).

Only what a test must change is substituted (fewer rows, fewer trials); transcripts are
checked line for line on the lines a reader acts on (decisions, errors, exit codes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doc_blocks import (
    REPO,
    blocks_named,
    command_blocks,
    run_script,
    run_transcript,
    substitute,
)

# Test name -> where it runs (this module unless said otherwise).
RUNNERS = {
    "readme-everyday": "tests/test_readme.py",
    "readme-retrain": __name__,
    "control-tour": __name__,
    "control-alias-typo": __name__,
    "control-past-memory": __name__,
    "retraining-story": __name__,
    "tuning": __name__,
    "experiments": __name__,
}


def test_every_command_block_is_run_or_marked() -> None:
    blocks = command_blocks()
    assert len(blocks) >= 10, "the block scanner found almost nothing: is it broken?"
    unmarked = [b.where for b in blocks if b.mark is None]
    assert not unmarked, (
        "command blocks with neither <!-- doc-test: NAME --> nor"
        f" <!-- not runnable here: REASON --> before them: {unmarked}"
    )
    unknown = [
        (b.where, b.value) for b in blocks if b.mark == "doc-test" and b.value not in RUNNERS
    ]
    assert not unknown, f"blocks name tests that do not exist: {unknown}"
    named = {b.value for b in blocks if b.mark == "doc-test"}
    assert named == set(RUNNERS), f"tests whose blocks are gone: {set(RUNNERS) - named}"
    empty_reasons = [b.where for b in blocks if b.mark == "not runnable here" and len(b.value) < 10]
    assert not empty_reasons, f"say why a block cannot run: {empty_reasons}"


def test_the_scanner_sees_marks_and_prompts(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- doc-test: demo -->\n```sh\nls\n```\n\n```text\n$ control models list\n```\n"
        "```python\nprint(1)\n```\n<!-- not runnable here: needs a cluster -->\n```console\n"
        "$ kubectl get pods\n```\n",
        encoding="utf-8",
    )
    found = [(b.line, b.mark, b.value) for b in command_blocks([page])]
    assert found == [
        (2, "doc-test", "demo"),
        (6, None, ""),
        (13, "not runnable here", "needs a cluster"),
    ]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_retrain_block(tmp_path: Path) -> None:
    (block,) = blocks_named("readme-retrain")
    out = run_script(substitute(block.text, {"--rows 20000": "--rows 6000"}), tmp_path)
    assert out.count("decision: ") == 2, out[-4000:]
    assert "ctr-" in out.splitlines()[-2]  # the runs table lists them


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_control_tour(tmp_path: Path) -> None:
    (block,) = blocks_named("control-tour")
    script = substitute(block.text, {"--rows 200000": "--rows 30000", "--trials 30": "--trials 3"})
    out = run_script(script, tmp_path)
    for expected in (
        "promoted ctr/production: 1 -> 2",
        "rolled back ctr/production: 2 -> 1",
        "saved: control train / retrain use these by default",
    ):
        assert expected in out, out[-4000:]
    run_transcript(blocks_named("control-alias-typo"), tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_training_past_memory(tmp_path: Path) -> None:
    (block,) = blocks_named("control-past-memory")
    # The block assumes a registry with a production ctr and a version 7: make one (with
    # --force: a small day need not beat the base rate) and point "7" at version 1.
    setup = (
        "control datagen --rows 3000 --days 2 --out logs\n"
        "control train --model ctr --data logs/ --auto-stop\n"
        "control promote ctr 1 --force\n"
    )
    out = run_script(setup + substitute(block.text, {"--warm-start 7": "--warm-start 1"}), tmp_path)
    assert "registered ctr version 5" in out, out[-4000:]
    assert out.count("on disk") >= 1, out[-4000:]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_retraining_story(tmp_path: Path) -> None:
    out = run_transcript(blocks_named("retraining-story"), tmp_path)
    assert "exit 5" in out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tuning_walkthrough(tmp_path: Path) -> None:
    out = run_transcript(blocks_named("tuning"), tmp_path)
    assert '"params_source":"saved"' in out, out[-4000:]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_experiments_walkthrough(tmp_path: Path) -> None:
    # The walk-through runs from the repository root; its simulation script is found there.
    (tmp_path / "scripts").symlink_to(REPO / "scripts")
    out = run_transcript(blocks_named("experiments"), tmp_path)
    for expected in (
        "treatment better: logloss difference",
        "stopped ctr-v3-canary: canary guardrail: treatment calibration",
        "promoted ctr/production: 1 -> 2",
    ):
        assert expected in out, out[-4000:]


def test_readme_is_scanned() -> None:
    assert any(b.path == REPO / "README.md" for b in command_blocks())
