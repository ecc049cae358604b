"""Judging an experiment (`bidscore.experiments`) on realised outcomes: per-arm metrics with
confidence intervals, the sample-ratio-mismatch test, the verdict, and canary guardrails.

The statistics are pure functions over numpy arrays (`stats`, `srm`, `verdict`); `arms`
joins the prediction log with outcomes and splits it by arm; `guardrails` and `watch` act on
the result. `control experiment ...` (control/cli/experiment.py) is the front door.
"""
