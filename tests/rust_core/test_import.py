import subprocess
import sys


def test_import_from_outside_the_repo(tmp_path):
    code = (
        "import rust_core, numpy as np;"
        "print(rust_core.hash_tokens(['a'], seed=0, bits=8)[0], rust_core.Dataset.__name__,"
        " rust_core.Model.__module__, issubclass(rust_core.ModelFormatError, ValueError))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == [str(0xE6C632B61E964E1F & 255), "Dataset", "rust_core", "True"]
