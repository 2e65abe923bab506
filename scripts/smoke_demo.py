#!/usr/bin/env python3
"""Smoke test of the README's quick start: `scripts/server --demo` on a fresh data folder.

Starts the server exactly as a user would (through scripts/server), then checks the issue's
acceptance flow over HTTP: the demo list with summaries and pagination headers, 401 without a
key, 404 for a space the user is not in, 422 in the platform format. Restarts on the same
folder to check the demo is loaded once and the chosen key keeps working. Bounded in time.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "smoke-test-demo-key-0123456789"
START_TIMEOUT_S = 600  # includes building the binary on a cold cache


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(base, path, key=None):
    req = urllib.request.Request(base + path)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def start(data_dir, port):
    env = dict(os.environ, ORCHESTRATION_DATA_DIR=data_dir, ORCHESTRATION_DEMO_API_KEY=KEY, PORT=str(port))
    env.pop("DYNAMODB_TABLE", None)
    proc = subprocess.Popen([os.path.join(ROOT, "scripts", "server"), "--demo"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited early:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2):
                return proc, base
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit("server did not become healthy in time")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        sys.exit("server did not stop on SIGTERM")
    if proc.returncode != 0:
        sys.exit(f"server exited with {proc.returncode}:\n{out}")
    return out


def check(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")
    print(f"ok: {message}")


def main():
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        proc, base = start(data_dir, port)
        prefix = "/api/v1.0/spaces/demo/orchestration"
        try:
            status, headers, body = request(base, prefix + "/pipelines?days=30", KEY)
            headers = {k.lower(): v for k, v in headers.items()}
            check(status == 200, "demo list answers 200 with the demo key")
            check(headers.get("x-total-count") == "25" and len(body) == 25, "25 demo pipelines")
            for name in ("x-page", "x-page-size", "x-total-pages", "link"):
                check(name in headers, f"pagination header {name}")
            check(all(p["summary"]["days"] == 30 for p in body), "summaries over days=30")
            check(sum(p["summary"]["runs_total"] for p in body) > 1000, "30 days of runs behind the summaries")
            check(any(p["status"] == "failed" for p in body), "some pipelines are failing")
            status, _, body = request(base, prefix + "/pipelines", None)
            check(status == 401 and isinstance(body.get("detail"), str), "401 without a key")
            status, _, body = request(base, "/api/v1.0/spaces/elsewhere/orchestration/pipelines", KEY)
            check(status == 404 and body == {"detail": "Space not found"}, "404 for a space the user is not in")
            status, _, body = request(base, prefix + "/pipelines?size=abc", KEY)
            check(status == 422 and body["detail"][0]["loc"] == ["query", "size"], "422 for size=abc in the platform format")
            _, _, pipelines = request(base, prefix + "/pipelines?q=warehouse_daily_build", KEY)
            _, _, runs = request(base, prefix + f"/pipelines/{pipelines[0]['id']}/runs?size=5", KEY)
            status, _, run = request(base, prefix + f"/runs/{runs[0]['id']}", KEY)
            check(status == 200 and len(run["task_runs"]) > 0, "a run with its task runs")
        finally:
            out = stop(proc)
        check("Demo API key" in out and KEY in out, "the demo key is printed")

        proc, base = start(data_dir, port)
        try:
            status, headers, body = request(base, prefix + "/pipelines", KEY)
            check(status == 200 and len(body) == 25, "restart on the same store: demo loaded once, key still valid")
        finally:
            out = stop(proc)
        check("already present" in out, "the second start says the demo was already there")


if __name__ == "__main__":
    main()
