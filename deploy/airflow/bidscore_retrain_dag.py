"""Example Apache Airflow DAG: retrain every bidscore model once a day.

An example to copy into the dags/ folder of an Airflow 2.4+ deployment; bidscore itself does
not depend on Airflow (the file is not imported by the package or its tests).

One task per model runs `control retrain` for the DAG run's logical date (`{{ ds }}`), so a
backfill or a rerun of a past day retrains that day's window, and a rerun of a day that
already succeeded is a no-op (the command is idempotent). Exit code 75 (another run of the
model still holds the registry lock) becomes a task failure that Airflow retries later; 5
(data validation stopped the run) fails the task too, and its retries re-validate the same
data and stop again, harmlessly, until someone fixes the logs and clears the task.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

# model -> (training window, holdout)
MODELS = {"ctr": ("7d", "1d"), "cvr": ("14d", "1d")}

ENV = {
    "BIDSCORE_REGISTRY": "dynamodb://bidscore-registry?region=us-east-1",
    "BIDSCORE_STORE": "s3://bidscore-artifacts/models",
    "PATH": "/opt/bidscore/.venv/bin:/usr/bin:/bin",
}
DATA = "s3://bidscore-logs/bid-logs"

# 75 = "already running": say so in the log and fail, so Airflow retries after retry_delay.
COMMAND = """
set +e
control retrain --model {model} --data {data} --window {window} --holdout {holdout} \\
    --date {{{{ ds }}}} --auto-promote --json
code=$?
if [ "$code" -eq 75 ]; then echo "another retrain of {model} is running; retrying" >&2; exit 1; fi
exit $code
"""

with DAG(
    dag_id="bidscore_retrain",
    description="Daily retraining of the bidscore CTR/CVR models",
    schedule="15 4 * * *",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "ml-platform",
        "retries": 3,
        "retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(hours=2),
    },
    tags=["bidscore", "retraining"],
) as dag:
    for model, (window, holdout) in MODELS.items():
        BashOperator(
            task_id=f"retrain_{model}",
            bash_command=COMMAND.format(model=model, data=DATA, window=window, holdout=holdout),
            env=ENV,
            append_env=True,
        )
