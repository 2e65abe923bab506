"""Loads the benchmark's runs and task instances into a real Airflow 3 database through
Airflow's own ORM models (no scheduler involved), for scripts/bench.

Run in the instance's configuration, after its DAGs are serialized:

    scripts/airflow run python bench/airflow_load.py EXPORT.json

EXPORT.json is what `orchestration admin generate --airflow-export` wrote: the DAGs (for their
paused flag) and each DAG's most recent runs with every task try. The last try of a task is
its task instance; earlier tries go to the task-instance history, as Airflow keeps them.
Prints one JSON line with the counts.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime

from sqlalchemy import func, select, update

from airflow.models.dag import DagModel
from airflow.models.dag_version import DagVersion
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance, uuid7
from airflow.models.taskinstancehistory import TaskInstanceHistory
from airflow.models.tasklog import LogTemplate
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunTriggeredByType, DagRunType

CHUNK = 2000


def when(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def main(path):
    started = time.monotonic()
    with open(path) as export_file:
        export = json.load(export_file)
    now = datetime.fromisoformat(export["generated_at"].replace("Z", "+00:00"))
    with create_session() as session:
        versions = dict(
            session.execute(
                select(DagVersion.dag_id, func.max(DagVersion.id)).group_by(DagVersion.dag_id)
            ).all()
        )
        missing = [d["dag_id"] for d in export["dags"] if d["dag_id"] not in versions]
        if missing:
            sys.exit(f"{len(missing)} DAGs are not serialized (first: {missing[0]}): run `airflow dags reserialize` first")
        paused = [d["dag_id"] for d in export["dags"] if d["is_paused"]]
        session.execute(update(DagModel).values(is_paused=False))
        if paused:
            session.execute(update(DagModel).where(DagModel.dag_id.in_(paused)).values(is_paused=True))
        log_template = session.scalar(select(func.max(LogTemplate.id)))

        runs, instances, history = [], [], []
        for run in export["runs"]:
            version = versions[run["dag_id"]]
            scheduled = run["run_type"] == "scheduled"
            runs.append(
                {
                    "dag_id": run["dag_id"],
                    "run_id": run["run_id"],
                    "run_type": (DagRunType.SCHEDULED if scheduled else DagRunType.MANUAL).value,
                    "triggered_by": DagRunTriggeredByType.TIMETABLE if scheduled else DagRunTriggeredByType.REST_API,
                    "state": DagRunState(run["state"]).value,
                    "logical_date": when(run["logical_date"]),
                    "queued_at": when(run["queued_at"]),
                    "start_date": when(run["start_date"]),
                    "end_date": when(run["end_date"]),
                    "data_interval_start": when(run["data_interval_start"]),
                    "data_interval_end": when(run["data_interval_end"]),
                    "run_after": when(run["run_after"]),
                    "conf": {},
                    "clear_number": 0,
                    "log_template_id": log_template,
                    "created_dag_version_id": version,
                    "created_at": when(run["queued_at"]),
                    # as Airflow leaves it: last touched when the run finished (so that an
                    # incremental sync's updated_at_gte sees only recent changes)
                    "updated_at": when(run["end_date"]) or now,
                }
            )
            last_try = {}
            for ti in run["task_instances"]:
                key = ti["task_id"]
                if key not in last_try or ti["try_number"] > last_try[key]["try_number"]:
                    last_try[key] = ti
            for ti in run["task_instances"]:
                start, end = when(ti["start_date"]), when(ti["end_date"])
                row = {
                    "task_id": ti["task_id"],
                    "dag_id": run["dag_id"],
                    "run_id": run["run_id"],
                    "map_index": -1,
                    "try_number": ti["try_number"],
                    "max_tries": 1,
                    "state": ti["state"],
                    "start_date": start,
                    "end_date": end,
                    "duration": (end - start).total_seconds() if start and end else None,
                    "hostname": "bench-worker" if start else "",
                    "unixname": "airflow",
                    "pool": "default_pool",
                    "pool_slots": 1,
                    "queue": "default",
                    "priority_weight": 1,
                    "operator": "EmptyOperator",
                    "queued_dttm": start,
                    "scheduled_dttm": start,
                    "executor_config": {},
                    "task_display_name": ti["task_id"],
                    "dag_version_id": version,
                    "updated_at": end or start or when(run["queued_at"]),
                }
                if ti is last_try[ti["task_id"]]:
                    instances.append({"id": uuid7(), **row})
                else:
                    history.append({"task_instance_id": uuid7(), **row})

        for model, rows in ((DagRun, runs), (TaskInstance, instances), (TaskInstanceHistory, history)):
            for first in range(0, len(rows), CHUNK):
                # Core inserts on the models' tables: the ORM's bulk insert refuses to run in
                # Airflow's sessions (ResourceClosedError); column defaults still apply
                session.execute(model.__table__.insert(), rows[first : first + CHUNK])
    print(
        json.dumps(
            {
                "dags": len(export["dags"]),
                "runs": len(runs),
                "task_instances": len(instances),
                "earlier_tries": len(history),
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
