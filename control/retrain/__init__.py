"""Continuous retraining: `control retrain`, one idempotent run per model and day.

`pipeline.run_retrain` runs the steps; `partitions` picks the window and holdout, `validate`
checks the data, `trainer` and `compare` train and judge the challenger, `lock` and `record`
keep runs apart and on the record.
"""
