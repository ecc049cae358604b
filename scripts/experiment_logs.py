"""Simulated prediction logs and outcomes of a running experiment, without a server.

    python scripts/experiment_logs.py NAME --out DIR [--control noise=1.0] [--treatment ""]
        [--rows 40000] [--candidates 2] [--users 200000] [--seed 1] [--drop-treatment 0.0]

Reads experiment NAME from the registry (`--registry` or BIDSCORE_REGISTRY / BIDSCORE_HOME,
like `control`), so the arms, share and salt are the recorded ones; writes
DIR/predictions/*.jsonl in the prediction-log format with the experiment fields and
DIR/outcomes/clicks.parquet (`control.datagen.experiment_logs`). Each arm's model is simulated
from the planted click probability: "" is the truth, `noise=1.0` a weaker model,
`shift=0.7` a miscalibrated one. Prints the --as-of at which every prediction is settled.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bidscore.registry import open_registry
from bidscore.settings import default_registry_url
from control.datagen.experiment_logs import Scorer, settled_after, write_experiment_logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--registry", default=None)
    parser.add_argument("--control", default="noise=1.0", help="control's simulated model")
    parser.add_argument("--treatment", default="", help="treatment's simulated model")
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drop-treatment", type=float, default=0.0)
    args = parser.parse_args()
    experiment = open_registry(
        args.registry or default_registry_url(), create=False
    ).get_experiment(args.name)
    written = write_experiment_logs(
        args.out,
        experiment,
        control=Scorer.parse(args.control),
        treatment=Scorer.parse(args.treatment),
        rows=args.rows,
        candidates=args.candidates,
        users=args.users,
        seed=args.seed,
        drop_treatment=args.drop_treatment,
    )
    print(
        f"wrote {written.log} ({written.requests['control']:,} control and"
        f" {written.requests['treatment']:,} treatment requests) and {written.outcomes}"
    )
    print(f"every prediction settled by --as-of {settled_after(written):.0f}")


if __name__ == "__main__":
    main()
