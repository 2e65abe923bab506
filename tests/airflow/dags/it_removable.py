"""Integration-test DAG that tests delete from the dags folder to watch it turn stale.

The dag_id must equal the file name.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="it_removable",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["it"],
) as dag:
    BashOperator(task_id="noop", bash_command="echo noop")
