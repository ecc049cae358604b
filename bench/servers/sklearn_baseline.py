"""The baseline: the same models served the way a plain-Python system would serve them.

Per request it parses the ScoreRequest with protobuf, builds each candidate's tokens in Python
(raw features as `name=value`, hour of day, day of week, an ad-category x app cross), hashes them
into a sparse matrix with scikit-learn's FeatureHasher and calls
`LogisticRegression.predict_proba` once per requested model. Both models are logistic
regressions (scikit-learn has no field-aware FM), fitted at start-up on generated logs, so no
model file (and no pickle) is involved.

    python -m bench.servers.sklearn_baseline --port 50071 --workers 2
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import grpc
import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import LogisticRegression

from bench.servers.runtime import Handler, HandlerFactory, common_args, serve
from bidscore.v1 import scorer_pb2
from control.datagen import CANDIDATE_COLUMNS, CONTEXT_COLUMNS, generate

HASH_BITS = 20
TRAIN_ROWS = 20_000
FIT_EPOCHS = 20
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86_400


def tokens(context: Mapping[str, str], candidate: Mapping[str, str]) -> list[str]:
    """One candidate's tokens, as an old Python feature pipeline would write them."""
    out = [f"{k}={v}" for k, v in context.items()]
    out.extend(f"{k}={v}" for k, v in candidate.items())
    ts = int(context.get("ts") or 0)
    out.append(f"hour={(ts // SECONDS_PER_HOUR) % 24}")
    out.append(f"dow={((ts // SECONDS_PER_DAY) + 3) % 7}")
    out.append(f"category_media={candidate.get('ad_category', '')}^{context.get('app_id', '')}")
    return out


def fit_models(seed: int = 7) -> tuple[FeatureHasher, dict[str, LogisticRegression]]:
    table = generate(TRAIN_ROWS, seed)
    cols = {name: [str(v) for v in table[name].to_pylist()] for name in table.column_names}
    rows = [
        tokens({c: cols[c][i] for c in CONTEXT_COLUMNS}, {c: cols[c][i] for c in CANDIDATE_COLUMNS})
        for i in range(table.num_rows)
    ]
    hasher = FeatureHasher(n_features=2**HASH_BITS, input_type="string", alternate_sign=False)
    x = hasher.transform(rows)
    click = np.asarray(table["click"].to_pylist())
    conversion = np.asarray(table["conversion"].to_pylist())
    with warnings.catch_warnings():
        # A few saga epochs: the benchmark measures predict_proba's cost, which does not depend
        # on how far the fit converged, and lbfgs takes a minute on 2^20 columns here.
        warnings.simplefilter("ignore", ConvergenceWarning)
        models = {
            "ctr": _fit(x, click),
            # As in bidscore, CVR learns from clicked rows only.
            "cvr": _fit(x[click == 1], conversion[click == 1]),
        }
    return hasher, models


def _fit(x: sparse.csr_matrix, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(solver="saga", max_iter=FIT_EPOCHS, tol=1e-3).fit(x, y)


def make_handler_factory() -> HandlerFactory:
    hasher, models = fit_models()  # in the parent, before the workers fork

    def make_handler() -> Handler:
        async def score(request_bytes: bytes, context: grpc.aio.ServicerContext) -> bytes:
            request = scorer_pb2.ScoreRequest.FromString(request_bytes)
            names = list(request.models) or list(models)
            unknown = [n for n in names if n not in models]
            if unknown:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {unknown[0]!r}")
            ctx = dict(request.context)
            x = hasher.transform(tokens(ctx, c.features) for c in request.candidates)
            scores = np.column_stack([models[n].predict_proba(x)[:, 1] for n in names])
            reply = scorer_pb2.ScoreResponse(
                request_id=request.request_id,
                models=[scorer_pb2.ModelVersion(name=n, version="sklearn") for n in names],
                candidates=[
                    scorer_pb2.CandidateScores(id=c.id, scores=row.tolist())
                    for c, row in zip(request.candidates, scores, strict=True)
                ],
            )
            return reply.SerializeToString()

        return score

    return make_handler


def main() -> None:
    args = common_args(__doc__ or "").parse_args()
    serve(make_handler_factory(), args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
