"""Generate the Python protobuf and gRPC code under bidscore/ from proto/.

The one way generated code enters the tree: `python scripts/gen_proto.py` (or `make proto`).
`--check` regenerates into a temporary directory and fails when the checked-in files differ,
so CI catches a proto change without regenerated code.

Each .proto is also copied beside its generated code (bidscore/v1/scorer.proto), so the wheel
ships the contract as package data: clients in other languages find it next to the installed
server (`importlib.resources.files("bidscore.v1") / "scorer.proto"`).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_PACKAGE = "bidscore"


def generate(out_root: Path) -> list[Path]:
    protos = sorted(PROTO_DIR.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(p) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for proto in protos:
        copy = out_root / proto.relative_to(PROTO_DIR)
        copy.write_bytes(proto.read_bytes())
    # Every directory of generated code is a regular package, so it installs with the wheel.
    for directory in {p.parent for p in out_root.joinpath(OUT_PACKAGE).rglob("*.py")} | {
        out_root / OUT_PACKAGE
    }:
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated from proto/ by scripts/gen_proto.py. Do not edit."""\n')
    return sorted(
        p.relative_to(out_root)
        for pattern in ("*.py*", "*.proto")
        for p in out_root.joinpath(OUT_PACKAGE).rglob(pattern)
    )


def generated_dirs() -> list[Path]:
    """The packages protoc writes (bidscore/v1, ...): only these are wiped before regenerating.

    bidscore/ itself also holds hand-written code (registry, store, settings)."""
    return sorted({ROOT / p.parent.relative_to(PROTO_DIR) for p in PROTO_DIR.rglob("*.proto")})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if checked-in code is stale")
    opts = parser.parse_args()
    if not opts.check:
        for directory in generated_dirs():
            shutil.rmtree(directory, ignore_errors=True)
        dirs = generated_dirs()
        for rel in generate(ROOT):
            if (ROOT / rel).parent in dirs:
                print(f"wrote {rel}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        stale = [
            str(rel)
            for rel in generate(Path(tmp))
            if not (ROOT / rel).exists() or not filecmp.cmp(Path(tmp) / rel, ROOT / rel, False)
        ]
    if stale:
        print("generated protobuf code is stale; run `make proto`:", *stale, sep="\n  ")
        return 1
    print("generated protobuf code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
