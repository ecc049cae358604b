"""README.md, CHANGELOG.md and docs/*.md stay inside the repository and point at what exists.

- A relative link resolves to a file or folder of the repository (never `../shared/...` or an
  absolute path on somebody's machine); web links (`https://...`) are left alone.
- A path written in the text (`control/cli/serve.py`, `rust_core/src/serving/wire.rs`) exists;
  one that became a folder (`pyserver/predlog.py` -> `pyserver/predlog/`) is named as such.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
# First path segments of the repository's own folders: a token starting with one is a path.
TOP_LEVEL = ("bench", "bidscore", "control", "deploy", "docs", "features", "proto", "pyserver",
             "rust_core", "scripts", "tests")  # fmt: skip
# Built by `make install`, not tracked.
GENERATED = (".tools/",)

LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w./:-])((?:" + "|".join(TOP_LEVEL) + r")/[\w./-]*\w)")
OUTSIDE = re.compile(r"(?<![\w.])(?:\.\./|/work/|/home/|/Users/|~/)[\w./-]+")


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("doc", DOCS, ids=_relative)
def test_links_stay_in_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            continue
        resolved = (doc.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            bad.append(target)
    bad += OUTSIDE.findall(text)
    assert bad == [], f"{_relative(doc)} points outside the repository or at nothing"


@pytest.mark.parametrize("doc", DOCS, ids=_relative)
def test_paths_in_the_text_exist(doc: Path) -> None:
    missing = []
    for token in PATH.findall(doc.read_text(encoding="utf-8")):
        if token.startswith(GENERATED) or (REPO / token).exists():
            continue
        folder = REPO / token.rsplit(".", 1)[0]
        missing.append(
            f"{token} (now the folder {_relative(folder)}/)" if folder.is_dir() else token
        )
    assert missing == [], f"{_relative(doc)} names paths that do not exist"


def test_the_check_sees_a_file_that_became_a_folder(tmp_path: Path) -> None:
    assert PATH.findall("see pyserver/predlog.py and `features/readers_cast.py`.") == [
        "pyserver/predlog.py",
        "features/readers_cast.py",
    ]
    assert OUTSIDE.findall("[style](../shared/STYLE.md) and /work/shared/x") == [
        "../shared/STYLE.md",
        "/work/shared/x",
    ]
