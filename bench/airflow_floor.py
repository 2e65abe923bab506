"""The sync's floor (scripts/bench): the time it takes merely to page through the Airflow
endpoints a full sync reads, with the same requests in the same order as shared/src/sync
(engine.rs, airflow/client.rs): a JWT from /auth/token; DAGs by 100 ordered by dag_id
(exclude_stale=false) until a short page or total_entries; DAG runs of all DAGs (`~`) by 100
ordered by id until a short page; task instances of all runs (`~/~`) by 100 ordered by id,
stepping back 10 items after every full page (the sync's overlap), and every try of each task
instance whose try_number is above 1. One keep-alive connection, each body parsed as JSON,
nothing stored.

Usage: python3 bench/airflow_floor.py BASE_URL USERNAME PASSWORD
Prints one JSON line: requests, seconds, items read per kind.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from urllib.parse import quote, urlencode, urlsplit

PAGE = 100
TASK_PAGE_OVERLAP = 10


class Airflow:
    def __init__(self, base):
        parts = urlsplit(base)
        self.prefix = parts.path.rstrip("/")
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        self.requests = 0
        self.token = None

    def send(self, method, path, body=None):
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        self.requests += 1
        self.connection.request(method, self.prefix + path, body=body, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 300:
            sys.exit(f"{method} {path}: HTTP {response.status}: {data[:200]!r}")
        return json.loads(data)

    def login(self, username, password):
        answer = self.send("POST", "/auth/token", json.dumps({"username": username, "password": password}))
        self.token = answer["access_token"]

    def get(self, segments, query=()):
        path = "/api/v2/" + "/".join(quote(s, safe="-._~") for s in segments)
        if query:
            path += "?" + urlencode(query)
        return self.send("GET", path)


def main(base, username, password):
    airflow = Airflow(base)
    started = time.perf_counter()
    airflow.login(username, password)
    items = {"dags": 0, "dag_runs": 0, "task_instances": 0, "tries": 0}

    offset = 0
    while True:
        page = airflow.get(["dags"], [("limit", PAGE), ("offset", offset), ("order_by", "dag_id"), ("exclude_stale", "false")])
        read = len(page["dags"])
        items["dags"] += read
        offset += read
        if read < PAGE or offset >= page["total_entries"]:
            break

    offset = 0
    while True:
        page = airflow.get(["dags", "~", "dagRuns"], [("limit", PAGE), ("offset", offset), ("order_by", "id")])
        read = len(page["dag_runs"])
        items["dag_runs"] += read
        offset += read
        if read < PAGE:
            break

    offset = 0
    while True:
        page = airflow.get(
            ["dags", "~", "dagRuns", "~", "taskInstances"],
            [("limit", PAGE), ("offset", offset), ("order_by", "id")],
        )
        instances = page["task_instances"]
        read = len(instances)
        items["task_instances"] += read
        for ti in instances:
            if ti["try_number"] > 1:
                tries = airflow.get(
                    ["dags", ti["dag_id"], "dagRuns", ti["dag_run_id"], "taskInstances", ti["task_id"], str(ti["map_index"]), "tries"]
                )
                items["tries"] += len(tries["task_instances"])
        offset += read - min(TASK_PAGE_OVERLAP, read // 2) if read == PAGE else read
        if read < PAGE:
            break

    seconds = time.perf_counter() - started
    print(json.dumps({"requests": airflow.requests, "seconds": round(seconds, 3), "items": items}))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
