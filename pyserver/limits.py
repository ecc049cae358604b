"""The size bound of a response, known from the server's limits before any request arrives.

The limits themselves are checked where the request is parsed, in rust_core: the candidate
count (`--max-candidates`) and the `models` list (`--max-models`, each name at most once).
With this bound, `ServerConfig` checks that `--max-candidates` x `--max-models` scores always
fit in a response the transport accepts.
"""

from __future__ import annotations

# ScoreResponse overhead, an upper bound in bytes: per candidate the CandidateScores tag,
# length and id tag (the id itself is counted in the request's length), and the packed
# scores' tag and length; per model the ModelVersion tag, lengths and the version string.
_PER_CANDIDATE_BYTES = 16
_PER_MODEL_BYTES = 64
_SCORE_BYTES = 4  # one f32


def response_bound(request_bytes: int, candidates: int, models: int) -> int:
    """An upper bound of the ScoreResponse's size in bytes, known before it is built."""
    return (
        request_bytes
        + candidates * (_PER_CANDIDATE_BYTES + _SCORE_BYTES * models)
        + models * _PER_MODEL_BYTES
    )
