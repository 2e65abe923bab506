"""Schemathesis hooks of `scripts/fuzz`: aim generated requests at the demo space's real objects.

Left alone, schemathesis draws random slugs and UUIDs, so nearly every request would stop at a
404 and never reach the handlers' real work. Before the schema is loaded, every path parameter
(and the team id of `PATCH .../team`) is narrowed to the ids `scripts/fuzz_run.py` read from
the running demo server (file named by FUZZ_IDS). Positive cases then address real objects;
negative cases (any value outside the list, malformed or not) still exercise the 404 and 422
paths. Only request-side schemas change: responses are still checked against the committed
document.
"""

import json
import os

import schemathesis

_IDS = None


def _ids():
    global _IDS
    if _IDS is None:
        with open(os.environ["FUZZ_IDS"], encoding="utf-8") as f:
            _IDS = json.load(f)
    return _IDS


def _values_for(name):
    ids = _ids()
    if name == "slug":
        return [ids["slug"]]
    pools = {
        "pipeline_id": "pipelines",
        "run_id": "runs",
        "task_run_id": "task_runs",
        "comment_id": "comments",
        "connector_id": "connectors",
    }
    if name not in pools:
        raise KeyError(f"no demo ids for path parameter {name!r}: extend scripts/fuzz_hooks.py")
    values = ids[pools[name]]
    if not values:
        raise ValueError(f"the demo server gave no {pools[name]}")
    return values


@schemathesis.hook
def before_load_schema(context, raw_schema):
    for path_item in raw_schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") != "path":
                    continue
                schema = dict(parameter.get("schema", {}))
                schema["enum"] = _values_for(parameter["name"])
                parameter["schema"] = schema
    team_update = raw_schema["components"]["schemas"]["TeamUpdate"]
    team_update["properties"]["team_id"] = {
        "anyOf": [
            {"type": "string", "format": "uuid", "enum": _ids()["teams"]},
            {"type": "null"},
        ]
    }


# The demo's connectors point at Airflows that are not running here (and have no password
# set), so a valid trigger ends at Airflow: 502, documented for this operation, with a detail
# naming the cause (secret not set, Airflow unreachable). That answer is the API reporting an
# upstream outage, not a fault of its own; any other 5xx still fails.
@schemathesis.hook
def filter_failure(context, failure, case, response):
    body = _json(response)
    upstream_down = (
        failure.code == "ST101"
        and case.method.upper() == "POST"
        and case.path.endswith("/pipelines/{pipeline_id}/trigger")
        and response.status_code == 502
        and isinstance(body, dict)
        and list(body) == ["detail"]
        and isinstance(body["detail"], str)
        and body["detail"] != ""
    )
    return not upstream_down


def _json(response):
    try:
        return response.json()
    except ValueError:
        return None
