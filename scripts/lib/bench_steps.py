"""The measuring steps of scripts/bench (latency, mixed load, sync, side by side) and the
result files they write for bench/report.py. `ctx.bench` is the scripts/bench module: its
run/wrk/http helpers and the server."""

import datetime
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from scriptutil import ROOT, free_port

COMMENT_BODY = '{"content": "Benchmark note: source was **late**."}'


@dataclass
class Context:
    work: Path
    results: Path
    logs: Path
    space: str
    af_space: str
    seconds: int
    connections: int
    load_seconds: int
    rss_interval: int
    dynamodb: int
    dynamodb_seconds: int
    bench: ModuleType
    server: object = None
    moto: subprocess.Popen | None = None
    keys: dict = field(default_factory=dict)

    def serve(self, data: Path, logfile: Path):
        self.server = self.bench.Server(data, logfile)
        return self.server

    def cleanup(self) -> None:
        """Stops what the run started: the server, the bench Airflow, moto."""
        if self.server:
            self.server.stop()
        subprocess.run([str(ROOT / "scripts/airflow"), "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.moto and self.moto.poll() is None:
            self.moto.terminate()
            self.moto.wait()


def save_generate(generated: dict, store: Path, out: Path) -> None:
    """The generate result without its keys (results keep no key), with the store's size."""
    d = {k: v for k, v in generated.items() if k not in ("api_key", "viewer_key")}
    d["store_mib"] = os.path.getsize(store) / 2**20
    out.write_text(json.dumps(d))
    print("bench: %d pipelines, %d runs, %d task runs in %.1f s" % (
        d["pipelines"], d["runs"], d["task_runs"], d["elapsed_ms"] / 1000), file=sys.stderr)


def save_lambda(table: Path, out: Path, starts: int) -> None:
    """The rows of scripts/lambda-startup's Markdown table."""
    rows = []
    for line in table.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[1].endswith("MiB"):
            rows.append(dict(zip(("function", "size", "min", "median", "p95"), cells[:5])))
    out.write_text(json.dumps({"starts": starts, "rows": rows}, indent=1))


def endpoints(s: dict, team: str, rng: str) -> list[tuple[str, str, str, str, list[str]]]:
    """(key, name, request shown, method, paths) of every measured endpoint; requests rotate
    through the paths."""
    daily, recent, hourly = s["daily_pipeline_ids"], s["recent_run_ids"], s["hourly_pipeline_ids"][0]
    return [
        ("list", "list pipelines", "GET /pipelines (100 per page, days=7)", "GET", ["/pipelines"]),
        ("list_90", "list pipelines, 90-day summaries", "GET /pipelines?days=90", "GET", ["/pipelines?days=90"]),
        ("list_filtered", "list pipelines, filtered", "GET /pipelines?status=failed&q=orders", "GET",
         ["/pipelines?status=failed&q=orders"]),
        ("list_team", "list pipelines, by team and criticality", "GET /pipelines?team_id=…&criticality=high&days=90",
         "GET", [f"/pipelines?team_id={team}&criticality=high&days=90"]),
        ("list_page", "list pipelines, page 10", "GET /pipelines?size=100&page=10", "GET", ["/pipelines?size=100&page=10"]),
        ("pipeline", "get pipeline", "GET /pipelines/{id}?days=90 (20 daily pipelines)", "GET",
         [f"/pipelines/{p}?days=90" for p in daily]),
        ("runs", "list runs, recent", "GET /pipelines/{id}/runs (100 per page)", "GET", [f"/pipelines/{p}/runs" for p in daily]),
        ("runs_hourly", "list runs of an hourly pipeline", "GET /pipelines/{hourly}/runs", "GET", [f"/pipelines/{hourly}/runs"]),
        ("runs_middle", "list runs of an hourly pipeline, middle page", "GET /pipelines/{hourly}/runs?page=11 (of 22)",
         "GET", [f"/pipelines/{hourly}/runs?page=11"]),
        ("runs_deep", "list runs, 5 days 80 days back", "GET /pipelines/{hourly}/runs?started_from=…&started_to=…",
         "GET", [f"/pipelines/{hourly}/runs?{rng}"]),
        ("run", "get run (3-5 task runs)", "GET /runs/{id} (20 runs)", "GET", [f"/runs/{r}" for r in recent]),
        ("run_wide", "get run with 50 task runs", "GET /runs/{id}", "GET", [f"/runs/{s['wide_run_id']}"]),
        ("comment", "create comment", "POST /runs/{id}/comments", "POST", [f"/runs/{r}/comments" for r in recent]),
    ]


def latency(ctx: Context, generated: dict) -> None:
    """Latency (one connection) and throughput (several) of each endpoint, with wrk."""
    b, key, s = ctx.bench, generated["api_key"], generated["samples"]
    server = ctx.serve(ctx.work / "data/local", ctx.logs / "server-local.log")
    prefix = f"/api/v1.0/spaces/{ctx.space}/orchestration"
    enc = lambda v: urllib.parse.quote(v, safe="")  # noqa: E731
    rng = f"started_from={enc(s['deep_from'])}&started_to={enc(s['deep_to'])}"
    wide = b.get_json(f"{server.base}{prefix}/runs/{s['wide_run_id']}", key)
    if len(wide["task_runs"]) != 50:
        b.die(f"the wide run has {len(wide['task_runs'])} task runs, not 50")
    rows = []
    for name_key, name, shown, method, paths in endpoints(s, s["team_ids"][0], rng):
        body = COMMENT_BODY if method == "POST" else None
        # every GET path answers 200 before it is measured (a POST is checked once)
        for p in paths if method == "GET" else paths[:1]:
            status, _ = b.http(method, server.base + prefix + p, key, body)
            if not 200 <= status < 300:
                b.die(f"{method} {prefix}{p} answered {status}")
        env = {"BENCH_KEY": key, "BENCH_METHOD": method, "BENCH_BODY": body or "",
               "BENCH_PATHS": "".join(prefix + p + "\n" for p in paths)}
        serial = b.wrk(1, 1, ctx.seconds, "bench/wrk_endpoint.lua", server.base, env, name, ctx.work / "serial.json")
        concurrent = b.wrk(2, ctx.connections, ctx.seconds, "bench/wrk_endpoint.lua", server.base, env, name,
                           ctx.work / "concurrent.json")
        rows.append({"key": name_key, "name": name, "request": shown, "serial": serial, "concurrent": concurrent})
        (ctx.results / "latency.json").write_text(json.dumps(rows, indent=1))
        print("bench:   %-45s p50 %7.2f ms  p99 %7.2f ms  %7.0f req/s (1)  %7.0f req/s (n)" % (
            name, float(serial["latency_ms"]["p50"]), float(serial["latency_ms"]["p99"]),
            serial["rps"], concurrent["rps"]), file=sys.stderr)


def mixed_load(ctx: Context, generated: dict) -> None:
    """A mixed read/write load with wrk while the server's RSS is sampled."""
    b, key, s, server = ctx.bench, generated["api_key"], generated["samples"], ctx.server
    prefix = f"/api/v1.0/spaces/{ctx.space}/orchestration"
    pipelines = b.get_json(f"{server.base}{prefix}/pipelines?size=200&days=1", key)
    env = {"BENCH_KEY": key, "BENCH_PREFIX": prefix, "BENCH_PIPELINES": ",".join(p["id"] for p in pipelines),
           "BENCH_RUNS": ",".join(s["recent_run_ids"] + [s["wide_run_id"]])}
    samples, stop = [], threading.Event()

    def sample() -> None:
        start = int(time.time())
        while server.proc.poll() is None and not stop.is_set():
            samples.append(f"{int(time.time()) - start} {server.rss_kib()}")
            stop.wait(ctx.rss_interval)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        w = b.wrk(2, ctx.connections, ctx.load_seconds, "bench/wrk_mixed.lua", server.base, env, "the mixed load",
                  ctx.work / "load-wrk.json")
    finally:
        stop.set()
        sampler.join()
    samples.append(f"{ctx.load_seconds} {server.rss_kib()}")
    (ctx.work / "rss.tsv").write_text("".join(line + "\n" for line in samples))
    rss = [[int(a), int(b_)] for a, b_ in (line.split() for line in samples if len(line.split()) == 2)]
    (ctx.results / "load.json").write_text(json.dumps({
        "wrk": w, "rss": rss, "seconds": ctx.load_seconds, "connections": ctx.connections,
        "threads": 2, "interval": ctx.rss_interval}))
    print("bench:   %d requests, %.0f req/s, p99 %s ms, statuses %s, RSS %d -> %d KiB" % (
        w["requests"], w["rps"], w["latency_ms"]["p99"], w["statuses"], rss[0][1], rss[-1][1]), file=sys.stderr)
    server.stop()


def list_cache(ctx: Context, generated: dict, list_cost_bin: str) -> None:
    """Cold, after-a-write and warm lists (bench/list_cache.py) and their table cost
    (list_cost); the store must not be open elsewhere (run after the mixed load)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import list_cache as measure_lists  # noqa: E402 (bench/ is not a package)

    b, data = ctx.bench, ctx.work / "data/local"
    latency = measure_lists.measure(str(b.BIN), str(data), ctx.space, generated["api_key"])
    cost = json.loads(b.capture([list_cost_bin, data / "orchestration.redb", ctx.space],
                                err=ctx.logs / "list-cost.log", what="list_cost"))
    (ctx.results / "list_cache.json").write_text(json.dumps({"latency": latency, "cost": cost}))
    for name in ("cold", "after_write", "warm"):
        print("bench:   list %-12s p50 %7.2f ms  %d DynamoDB requests  %7.0f KiB" % (
            name, latency[name]["p50"], cost[name]["dynamodb_requests"], cost[name]["bytes_read"] / 1024),
            file=sys.stderr)


def measured_sync(ctx: Context, name: str, budget: int, env: dict | None = None) -> dict:
    """`admin sync` under bench/measure.py (wall time, peak RSS); its measure file."""
    b, work = ctx.bench, ctx.work
    with open(work / f"{name}-measure.json", "w") as f, open(ctx.logs / "sync.log", "a") as err:
        b.run(["python3", "bench/measure.py", work / f"{name}-record.json", b.BIN, "admin", "sync", "--space",
               ctx.af_space, "--budget-seconds", budget],
              env={"ORCHESTRATION_DATA_DIR": str(work / "data/airflow"), **(env or {})}, stdout=f, stderr=err,
              check=f"{name} failed", log_on_fail=ctx.logs / "sync.log")
    record = json.loads((work / f"{name}-record.json").read_text())
    b.log(f"{name}: {(work / f'{name}-measure.json').read_text().strip()} {record['counts']}")
    return json.loads((work / f"{name}-measure.json").read_text())


def space_with_connector(ctx: Context, password_args: list[str], env: dict | None = None) -> str:
    """The Airflow bench space, its admin and a connector to the bench Airflow; the admin's id."""
    b, af = ctx.bench, os.environ
    b.admin("create-space", "--slug", ctx.af_space, "--name", "Airflow bench")
    user = b.admin("create-user", "--name", "Bench Admin")["id"]
    b.admin("set-member", "--space", ctx.af_space, "--user", user, "--role", "admin")
    if not env:  # the embedded store's key, for the side-by-side listings
        ctx.keys["af"] = b.admin("create-key", "--user", user, "--name", "bench")["key"]
    b.admin("create-connector", "--space", ctx.af_space, "--name", "Bench Airflow", "--base-url", af["AIRFLOW_URL"],
            "--api-version", "v2", "--created-by", user, "--username", af["AIRFLOW_USERNAME"], *password_args, env=env)
    return user


def start_moto(ctx: Context) -> None:
    """moto on loopback (scripts/lib/tools.sh's start_moto), the SDK pointed at it."""
    subprocess.run(["bash", "-c", "source scripts/lib/tools.sh && ensure_python_tools"], check=True, cwd=ROOT)
    port = free_port()
    with open(ROOT / ".tools/moto.log", "w") as f:
        ctx.moto = subprocess.Popen([str(ROOT / ".tools/venv/bin/python"), "scripts/moto_server.py", "-H", "127.0.0.1",
                                     "-p", str(port)], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
            break
        except OSError:
            time.sleep(0.1)
    else:
        ctx.bench.die("moto did not start:\n" + (ROOT / ".tools/moto.log").read_text())
    os.environ.update(AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="test",
                      AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    print(f"==> moto listening on 127.0.0.1:{port} (pid {ctx.moto.pid})", file=sys.stderr)


def sync(ctx: Context) -> None:
    """The floor, a full sync and an unchanged re-sync (and, with BENCH_DYNAMODB=1, a bounded
    sync on moto)."""
    b, work, af = ctx.bench, ctx.work, os.environ
    space_with_connector(ctx, ["--password-stored", af["AIRFLOW_PASSWORD"]])
    with open(work / "floor-1.json", "w") as f:
        b.run(["python3", "bench/airflow_floor.py", af["AIRFLOW_URL"], af["AIRFLOW_USERNAME"], af["AIRFLOW_PASSWORD"]],
              stdout=f, check="bench/airflow_floor.py failed")
    b.log(f"floor pass 1: {(work / 'floor-1.json').read_text().strip()}")
    full = measured_sync(ctx, "full-sync", 3600)
    measured_sync(ctx, "re-sync", 3600)
    j = lambda name: json.loads((work / name).read_text())  # noqa: E731
    result = {"floor": [j("floor-1.json")],
              "full": {"measure": j("full-sync-measure.json"), "record": j("full-sync-record.json")},
              "resync": {"measure": j("re-sync-measure.json"), "record": j("re-sync-record.json")}}
    if ctx.dynamodb == 1:
        b.log(f"sync on the DynamoDB API (moto), at most {ctx.dynamodb_seconds} s: the embedded store peaked at "
              f"{full['max_rss_kib'] // 1024} MiB")
        start_moto(ctx)
        os.environ["DYNAMODB_TABLE"] = f"orchestration-bench-{os.getpid()}"
        b.admin("create-table")
        password = {"BENCH_AIRFLOW_PASSWORD": af["AIRFLOW_PASSWORD"]}
        space_with_connector(ctx, ["--password-env", "BENCH_AIRFLOW_PASSWORD"], env=password)
        measured_sync(ctx, "dynamodb-sync", ctx.dynamodb_seconds, env=password)
        del os.environ["DYNAMODB_TABLE"]
        result["dynamodb"] = {"measure": j("dynamodb-sync-measure.json"), "record": j("dynamodb-sync-record.json")}
    (ctx.results / "sync.json").write_text(json.dumps(result, indent=1))


def side_by_side(ctx: Context, airflow_version: str) -> None:
    """Airflow's DAG and run listings against this API's, on the same data, with wrk."""
    b, work, af = ctx.bench, ctx.work, os.environ
    server = ctx.serve(work / "data/airflow", ctx.logs / "server-airflow.log")
    api = f"/api/v1.0/spaces/{ctx.af_space}/orchestration"
    credentials = json.dumps({"username": af["AIRFLOW_USERNAME"], "password": af["AIRFLOW_PASSWORD"]}).encode()
    token = json.load(urllib.request.urlopen(urllib.request.Request(
        af["AIRFLOW_URL"] + "/auth/token", data=credentials, headers={"Content-Type": "application/json"}),
        timeout=30))["access_token"]
    # a daily DAG with its runs, on both sides
    export = json.loads((work / "airflow-export.json").read_text())
    daily = {x["dag_id"] for x in export["dags"]
             if x["schedule"] and x["schedule"].count(" ") == 4 and "*/6" not in x["schedule"]}
    dag = [r["dag_id"] for r in export["runs"] if r["dag_id"] in daily][0]
    listed = b.get_json(f"{server.base}{api}/pipelines?size=1000&q={dag}", ctx.keys["af"])
    pipeline = [p["id"] for p in listed if p["dag_id"] == dag][0]

    def side(name: str, key: str, base: str, path: str) -> dict:
        w = b.wrk(1, 1, ctx.seconds, "bench/wrk_endpoint.lua", base, {"BENCH_PATHS": path, "BENCH_KEY": key},
                  path, work / name)
        if sum(n for s, n in w["statuses"].items() if not s.startswith("2")):
            b.die(f"{path} answered errors: {(work / name).read_text().strip()}")
        return w

    cmp = {
        "af-dags": side("cmp-af-dags.json", token, af["AIRFLOW_URL"], "/api/v2/dags?limit=100"),
        "ours-dags": side("cmp-ours-dags.json", ctx.keys["af"], server.base, f"{api}/pipelines?size=100"),
        "af-runs": side("cmp-af-runs.json", token, af["AIRFLOW_URL"], f"/api/v2/dags/{dag}/dagRuns?limit=100"),
        "ours-runs": side("cmp-ours-runs.json", ctx.keys["af"], server.base, f"{api}/pipelines/{pipeline}/runs?size=100"),
    }
    server.stop()
    loaded = json.loads((work / "airflow-load.json").read_text())
    (ctx.results / "compare.json").write_text(json.dumps({
        "airflow_version": airflow_version, "seconds": ctx.seconds,
        **{k: loaded[k] for k in ("dags", "runs", "task_instances", "earlier_tries")},
        "airflow": {"dags": {"request": "GET /api/v2/dags?limit=100", "wrk": cmp["af-dags"]},
                    "runs": {"request": "GET /api/v2/dags/{dag_id}/dagRuns?limit=100", "wrk": cmp["af-runs"]}},
        "ours": {"dags": {"request": "GET /pipelines?size=100", "wrk": cmp["ours-dags"]},
                 "runs": {"request": "GET /pipelines/{id}/runs?size=100", "wrk": cmp["ours-runs"]}},
    }, indent=1))


def save_meta(out: Path, command: str, t0: int, phases: list[tuple[str, int]], settings: dict) -> None:
    """When, where and how the run was made, for the document."""
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.machine())
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    osname = next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release")
                   if l.startswith("PRETTY_NAME")), "Linux")
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    out.write_text(json.dumps({
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command, "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem / 2**20), "os": osname,
                    "kernel": platform.release()},
        "phases": phases, "total_seconds": int(time.time()) - int(t0), "settings": settings,
    }, indent=1))
