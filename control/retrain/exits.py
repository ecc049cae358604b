"""Exit codes of `control retrain` that a scheduler can branch on (docs/retraining.md).

1 (any error: bad data, unreachable registry) comes from `control.cli.output`.
"""

EXIT_OK = 0  # a version was promoted, held by a gate, or the run was a no-op
EXIT_STOPPED = 5  # data validation stopped the run before training
EXIT_ALREADY_RUNNING = 75  # EX_TEMPFAIL: another run of the model holds the lock; retry later
