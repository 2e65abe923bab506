"""Integration-test DAG: `flaky` fails on its first try and succeeds on its retry.

So every run has two tries of `flaky` (try 1 failed, try 2 success) and ends success.
Keyed on the try number, not on a marker file: no state outside Airflow. The dag_id must
equal the file name.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def _flaky(**context):
    try_number = context["ti"].try_number
    print("try", try_number, "of run", context["run_id"])
    if try_number <= 1:
        raise RuntimeError("first try fails on purpose")
    return "ok"


with DAG(
    dag_id="it_retries",
    description="A task that succeeds on its second try",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["it"],
    default_args={"owner": "ops"},
) as dag:
    flaky = PythonOperator(
        task_id="flaky",
        python_callable=_flaky,
        retries=1,
        retry_delay=timedelta(seconds=1),
        retry_exponential_backoff=0,
    )
    done = BashOperator(task_id="done", bash_command="echo done")
    flaky >> done
