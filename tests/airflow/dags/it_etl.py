"""Integration-test DAG: three sequential tasks that succeed.

Used by the Rust integration tests via scripts/airflow (real Airflow 3.3.2 on loopback).
The dag_id must equal the file name (scripts/airflow waits for every file's DAG by that name).
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def _transform(**context):
    print("transforming", context["run_id"])
    return {"rows": 42}


with DAG(
    dag_id="it_etl",
    description="Tiny ETL pipeline for the integration tests",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["etl", "it"],
    default_args={"owner": "data-team", "retries": 0},
    doc_md="Extract, transform, load.",
) as dag:
    extract = BashOperator(task_id="extract", bash_command="echo extracting; sleep 1")
    transform = PythonOperator(task_id="transform", python_callable=_transform)
    load = BashOperator(task_id="load", bash_command="echo loading")
    extract >> transform >> load
