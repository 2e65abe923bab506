"""The benchmark's DAGs (scripts/bench): one DAG per entry of bench_dags.json next to this file,
as written by `orchestration admin generate --airflow-export` (same dag ids, descriptions,
owners, tags, schedules and task ids as the generated space). Tasks are EmptyOperators: the
benchmark never runs them, its runs and task instances are inserted by bench/airflow_load.py.
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_dags.json")
START = pendulum.datetime(2024, 1, 1, tz="UTC")


def build(spec):
    with DAG(
        dag_id=spec["dag_id"],
        description=spec["description"],
        schedule=spec["schedule"],
        start_date=START,
        catchup=False,
        tags=spec["tags"],
        default_args={"owner": ",".join(spec["owners"]), "retries": 1},
    ) as dag:
        previous = None
        for task in spec["tasks"]:
            current = EmptyOperator(task_id=task["task_id"])
            if previous is not None:
                previous >> current
            previous = current
    return dag


if os.path.exists(SPEC):
    with open(SPEC) as spec_file:
        for _spec in json.load(spec_file)["dags"]:
            globals()[_spec["dag_id"]] = build(_spec)
