"""Type stub for the `rust_core` extension module (checked by `mypy.stubtest`)."""

import numpy as np
import numpy.typing as npt

def hash_tokens(tokens: list[str], *, seed: int, bits: int) -> npt.NDArray[np.uint32]: ...
