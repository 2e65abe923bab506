#!/usr/bin/env python3
"""A client generated from docs/openapi.json, as a client developer would, calls every operation.

Generates a Python client with openapi-python-client (pinned in scripts/requirements-tools.txt)
into .tools/generated-client/<hash of the document and the generator>/ (kept, so a warm run
only imports it), starts `orchestration serve --demo` on a free loopback port with a fresh data
folder (as scripts/fuzz_run.py does), and calls each of the document's operations through the
generated functions: lists, reads, team, criticality and freshness (set and cleared), events, watch and unwatch,
comments (create, list, PUT, PATCH with If-Match, delete, then 404), trigger without a body and
with one, sync and the sync history. Trigger ends at the demo's unreachable Airflow (502), so
there the check is that the client parses the error body instead of crashing.

Each call must answer a status the document lists (the client raises otherwise) and be parsed
into the documented model: every field the document calls required must be present, with the
documented type. Fails when an operation of the generated client was not called.

    scripts/check_generated_client.py --binary target/debug/orchestration
"""

import argparse
import datetime
import hashlib
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from http import HTTPStatus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import fuzz_run  # noqa: E402  (server start and stop, the demo key)

DOCUMENT = os.path.join(ROOT, "docs", "openapi.json")
CACHE = os.path.join(ROOT, ".tools", "generated-client")
PACKAGE = "orchestration_client"
OPERATIONS = 20


def generator_version(bin_dir):
    out = subprocess.run(
        [os.path.join(bin_dir, "openapi-python-client"), "--version"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def generate(bin_dir, document):
    """The generated package's parent folder, generating it unless this document's is cached."""
    with open(document, "rb") as f:
        digest = hashlib.sha256(f.read() + generator_version(bin_dir).encode()).hexdigest()[:16]
    target = os.path.join(CACHE, digest)
    if os.path.isdir(os.path.join(target, PACKAGE)):
        return target, False
    os.makedirs(CACHE, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="generating-", dir=CACHE)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))  # its ruff
    result = subprocess.run(
        [
            os.path.join(bin_dir, "openapi-python-client"), "generate",
            "--path", document, "--meta", "none", "--output-path", os.path.join(staging, PACKAGE),
        ],
        env=env, capture_output=True, text=True,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 or "Warning" in output or "Error" in output:
        shutil.rmtree(staging, ignore_errors=True)
        sys.exit(f"FAILED: openapi-python-client did not generate a clean client:\n{output}")
    for old in os.listdir(CACHE):  # one cached client: the current document's
        if old != os.path.basename(staging):
            shutil.rmtree(os.path.join(CACHE, old), ignore_errors=True)
    os.rename(staging, target)
    return target, True


class Calls:
    """Calls generated operations, checking the status and the parsed model of each answer."""

    def __init__(self, client):
        self.client = client
        self.called = set()
        self.count = 0

    def __call__(self, operation, status, model, *args, **kwargs):
        module = importlib.import_module(f"{PACKAGE}.api.{operation}")
        self.called.add(operation)
        self.count += 1
        response = module.sync_detailed(*args, client=self.client, **kwargs)
        where = f"{operation} {args} {kwargs}"
        if response.status_code != HTTPStatus(status):
            sys.exit(f"FAILED: {where} answered {int(response.status_code)}, not {status}: {response.content[:500]!r}")
        parsed = response.parsed
        if model is None:
            if response.content:
                sys.exit(f"FAILED: {where}: a {status} with a body: {response.content[:200]!r}")
        elif isinstance(model, list):
            if not isinstance(parsed, list) or not all(isinstance(item, model[0]) for item in parsed):
                sys.exit(f"FAILED: {where}: not parsed as a list of {model[0].__name__}: {parsed!r}")
        elif not isinstance(parsed, model):
            sys.exit(f"FAILED: {where}: not parsed as {model.__name__}: {parsed!r}")
        return response


def exercise(base, key):
    from orchestration_client import AuthenticatedClient
    from orchestration_client import models as m

    client = AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True, timeout=60)
    call = Calls(client)
    slug = fuzz_run.SLUG
    P = m.PipelineView

    # Pipelines: the list (defaults from the document), a filtered page, the detail.
    listed = call("pipelines.list_pipelines", 200, [P], slug, days=30)
    assert listed.headers["x-page-size"] == "100", "the document's default size is the server's"
    pipelines = listed.parsed
    assert pipelines, "the demo space has pipelines"
    page = call("pipelines.list_pipelines", 200, [P], slug, size=2, page=2, criticality=m.Criticality.HIGH)
    assert page.headers["x-page-size"] == "2" and len(page.parsed) <= 2
    capped = call("pipelines.list_pipelines", 200, [P], slug, size=2147483647)
    assert capped.headers["x-page-size"] == "1000", capped.headers
    too_big = call("pipelines.list_pipelines", 422, m.ValidationErrorBody, slug, size=2147483648).parsed
    assert [(e.loc, e.type_) for e in too_big.detail] == [(["query", "size"], "less_than_equal")], too_big
    with_runs = [p for p in pipelines if p.summary.runs_total > 0]
    pipeline = with_runs[0]
    detail = call("pipelines.get_pipeline", 200, P, slug, pipeline.id, days=90).parsed
    assert detail.id == pipeline.id and detail.summary.days == 90
    assert isinstance(detail.summary.last_run, (m.LastRunView, type(None)))

    # Runs: the list (run_type known, of Airflow 2, of a future Airflow), one run with its tries.
    runs = call("runs.list_runs", 200, [m.RunView], slug, pipeline.id).parsed
    assert runs, "the pipeline has runs"
    for run_type in ("scheduled", "dataset_triggered", "a_future_run_type"):
        call("runs.list_runs", 200, [m.RunView], slug, pipeline.id, run_type=run_type)
    bad = call("runs.list_runs", 422, m.ValidationErrorBody, slug, pipeline.id, run_type="Not-A-Type").parsed
    assert bad.detail[0].type_ == "string_pattern_mismatch", bad
    run = call("runs.get_run", 200, m.RunDetailView, slug, runs[0].id).parsed
    assert run.id == runs[0].id and run.task_runs, "the run has task runs"
    assert all(isinstance(t, m.TaskRunView) for t in run.task_runs)

    # Team and criticality: set, then cleared with null.
    team_id = next(p.team_id for p in pipelines if p.team_id)
    updated = call("pipelines.set_team", 200, P, slug, pipeline.id, body=m.TeamUpdate(team_id=team_id)).parsed
    assert updated.team_id == team_id
    updated = call("pipelines.set_team", 200, P, slug, pipeline.id, body=m.TeamUpdate(team_id=None)).parsed
    assert updated.team_id is None
    body = m.CriticalityUpdate(criticality=m.Criticality.CRITICAL)
    updated = call("pipelines.set_criticality", 200, P, slug, pipeline.id, body=body).parsed
    assert updated.criticality == m.Criticality.CRITICAL
    body = m.CriticalityUpdate(criticality=None)
    assert call("pipelines.set_criticality", 200, P, slug, pipeline.id, body=body).parsed.criticality is None

    # Freshness: an interval set, then derived from the schedule again with null.
    body = m.FreshnessUpdate(expected_interval_seconds=3600)
    updated = call("pipelines.set_freshness", 200, P, slug, pipeline.id, body=body).parsed
    assert updated.expected_interval_seconds == 3600 and updated.freshness_interval_seconds == 3600
    body = m.FreshnessUpdate(expected_interval_seconds=None)
    cleared = call("pipelines.set_freshness", 200, P, slug, pipeline.id, body=body).parsed
    assert cleared.expected_interval_seconds is None

    # Pipeline events (the demo has a few): newest first, and filtered by type.
    events = call("events.list_events", 200, [m.Event], slug, size=5)
    assert events.parsed and events.headers["x-page-size"] == "5", events.headers
    failed = call("events.list_events", 200, [m.Event], slug, type_=m.EventType.RUN_FAILED).parsed
    assert failed and all(e.type_ == m.EventType.RUN_FAILED for e in failed), failed

    # Watch and unwatch (204, no body).
    call("pipelines.watch", 204, None, slug, pipeline.id)
    watched = call("pipelines.get_pipeline", 200, P, slug, pipeline.id).parsed
    assert watched.watched is True and watched.summary.days == 7, "the document's default days"
    call("pipelines.unwatch", 204, None, slug, pipeline.id)
    assert call("pipelines.get_pipeline", 200, P, slug, pipeline.id).parsed.watched is False

    # Comments on a run and on a task run; edits with If-Match; delete; then gone.
    C = m.CommentView
    comment = call("comments.create_run_comment", 201, C, slug, run.id, body=m.CommentBody(content="Late **source**."))
    assert comment.headers["etag"] == '"1"' and comment.parsed.version == 1
    comment = comment.parsed
    empty = call("comments.create_run_comment", 422, m.ValidationErrorBody, slug, run.id, body=m.CommentBody(content="  "))
    assert [(e.loc, e.type_) for e in empty.parsed.detail] == [(["body", "content"], "string_too_short")]
    long = m.CommentBody(content="x" * 10001)
    long = call("comments.create_run_comment", 422, m.ValidationErrorBody, slug, run.id, body=long).parsed
    assert long.detail[0].type_ == "string_too_long", long
    listed = call("comments.list_run_comments", 200, [C], slug, run.id).parsed
    assert comment.id in [c.id for c in listed]
    task_run = run.task_runs[0]
    on_task = call("comments.create_task_run_comment", 201, C, slug, task_run.id, body=m.CommentBody(content="Retried.")).parsed
    assert on_task.target_type == m.CommentTarget.TASK_RUN
    assert on_task.id in [c.id for c in call("comments.list_task_run_comments", 200, [C], slug, task_run.id, size=100).parsed]
    edited = call("comments.update_comment", 200, C, slug, comment.id, body=m.CommentBody(content="Late."), if_match='"1"').parsed
    assert edited.version == 2 and edited.edited is True
    call("comments.patch_comment", 412, m.ErrorBody, slug, comment.id, body=m.CommentBody(content="Stale."), if_match='"1"')
    patched = call("comments.patch_comment", 200, C, slug, comment.id, body=m.CommentBody(content="Late by 2h."), if_match='"2"')
    assert patched.parsed.content == "Late by 2h."
    call("comments.delete_comment", 204, None, slug, comment.id)
    call("comments.patch_comment", 404, m.ErrorBody, slug, comment.id, body=m.CommentBody(content="Gone?"))
    call("comments.delete_comment", 204, None, slug, on_task.id, if_match='"1"')

    # Trigger, without a body and with one: the demo's Airflow is unreachable, so the answer is
    # the documented 502, parsed as an ErrorBody.
    call("pipelines.trigger", 502, m.ErrorBody, slug, pipeline.id)
    full = m.TriggerBody.from_dict(
        {"conf": {"source": "generated client"}, "logical_date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "note": "From the generated client"}
    )
    call("pipelines.trigger", 502, m.ErrorBody, slug, pipeline.id, body=full, idempotency_key=str(uuid.uuid4()))
    call("pipelines.trigger", 502, m.ErrorBody, slug, pipeline.id, body=m.TriggerBody())
    bad = call("pipelines.trigger", 422, m.ValidationErrorBody, slug, pipeline.id, idempotency_key="").parsed
    assert bad.detail[0].loc == ["header", "idempotency-key"], bad

    # Sync (a failed record: no Airflow) and the sync history.
    connector_id = pipeline.connector_id
    record = call("connectors.sync_now", 200, m.SyncRecord, slug, connector_id).parsed
    assert record.status == m.SyncStatus.FAILED and record.error, record
    history = call("connectors.list_syncs", 200, [m.SyncRecord], slug, connector_id).parsed
    assert record.id in [r.id for r in history]
    call("connectors.list_syncs", 404, m.ErrorBody, slug, uuid.uuid4())
    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True, help="the orchestration binary to serve")
    parser.add_argument("--document", default=DOCUMENT, help="the OpenAPI document (default: docs/openapi.json)")
    args = parser.parse_args()
    bin_dir = os.path.dirname(sys.executable)
    started = time.time()
    parent, fresh = generate(bin_dir, os.path.abspath(args.document))
    print(f"client {'generated' if fresh else 'cached'} in {os.path.relpath(parent, ROOT)} ({time.time() - started:.1f}s)")
    sys.path.insert(0, parent)
    api = importlib.import_module(f"{PACKAGE}.api")
    operations = {
        f"{group.name}.{op.name}"
        for group in pkgutil.iter_modules(api.__path__)
        for op in pkgutil.iter_modules([os.path.join(api.__path__[0], group.name)])
    }
    if len(operations) != OPERATIONS:
        sys.exit(f"FAILED: the generated client has {len(operations)} operations, {OPERATIONS} expected: {sorted(operations)}")

    out = os.path.join(ROOT, "target", "generated-client")
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, "server.log")
    with tempfile.TemporaryDirectory(prefix="orchestration-client-") as tmp:
        data_dir = os.path.join(tmp, "data")
        os.mkdir(data_dir)
        proc, base = fuzz_run.start_server(os.path.abspath(args.binary), data_dir, fuzz_run.free_port(), log_path)
        try:
            calls = exercise(base, fuzz_run.KEY)
        finally:
            fuzz_run.stop_server(proc, log_path)
    missing = operations - calls.called
    if missing:
        sys.exit(f"FAILED: operations of the generated client not called: {sorted(missing)}")
    print(
        f"generated client passed: {calls.count} calls over all {len(operations)} operations "
        f"({time.time() - started:.0f}s)"
    )


if __name__ == "__main__":
    main()
