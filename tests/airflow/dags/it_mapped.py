"""Integration-test DAG: dynamic task mapping over 3 items (map_index 0, 1, 2), then a reduce.

The dag_id must equal the file name.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

with DAG(
    dag_id="it_mapped",
    description="Dynamic task mapping over three items",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["it"],
    default_args={"owner": "data-team", "retries": 0},
) as dag:

    @task
    def square(x: int) -> int:
        print("squaring", x)
        return x * x

    @task
    def total(values) -> int:
        result = sum(values)
        print("total", result)
        return result

    total(square.expand(x=[1, 2, 3]))
