"""Every exit code `control` uses, in one place: schedulers and scripts branch on these
(docs/control.md, docs/retraining.md)."""

EXIT_OK = 0  # success; for retrain also "held by a gate" and "no-op"
EXIT_ERROR = 1  # any user or environment error (bad input, unreachable registry), one line
EXIT_USAGE = 2  # usage error: unknown option, missing argument, or (promote) an alias that
# does not exist without --create-alias: the command line needs fixing, not the world
EXIT_CONFLICT = 3  # a lost compare-and-set race: the alias moved meanwhile, a retry may help
EXIT_REFUSED = 4  # a promotion refused by a gate or an integrity check
EXIT_ALARM = 4  # monitor drift --fail-on-alarm: a feature drifted to alarm level
EXIT_STOPPED = 5  # retrain: data validation stopped the run before training
EXIT_SLOW = 5  # loadtest: the run met --max-p99-ms no more (a different command from retrain)
EXIT_ALREADY_RUNNING = 75  # EX_TEMPFAIL: another run of the model holds the lock; retry later
# train/retrain with several --model: 100 + a mask of the models that failed, bit i for the
# i-th --model (101: the first failed, 102: the second, 103: both); 0 when all succeeded.
EXIT_MODELS_FAILED = 100
EXIT_GUARDRAIL = 6  # experiment watch: a canary guardrail breached and watch stopped the canary
