"""Integration-test DAG: `explode` exits 1, so the run fails and `after_failure` ends upstream_failed.

The dag_id must equal the file name.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="it_failing",
    description="Fails on its second task",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["it"],
    default_args={"owner": "ops", "retries": 0},
) as dag:
    prepare = BashOperator(task_id="prepare", bash_command="echo ok")
    explode = BashOperator(task_id="explode", bash_command="echo failing; exit 1")
    after_failure = BashOperator(task_id="after_failure", bash_command="echo never")
    prepare >> explode >> after_failure
