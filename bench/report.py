"""Rewrites the generated figures of docs/BENCHMARKS.md from the results of scripts/bench.

Usage: python3 bench/report.py RESULTS_DIR DOC

Each generated block sits between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->`;
only those blocks are replaced, everything else in the document (hand-written sections, other
people's sections) stays as it is. A block whose results are missing says so instead of
keeping stale figures. A marker missing from the document is an error.
"""

from __future__ import annotations

import json
import os
import re
import sys

MIB = 1024


def load(results, name):
    path = os.path.join(results, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def ms(value):
    value = float(value)
    if value < 10:
        return f"{value:.2f} ms"
    if value < 100:
        return f"{value:.1f} ms"
    return f"{value:.0f} ms"


def rate(value):
    return f"{float(value):,.0f}/s"


def ratio(a, b):
    return f"{a / b:.1f}×" if b else "n/a"


def verdict(ok):
    return "met" if ok else "**missed**"


def errors(result):
    sockets = sum(result["socket_errors"].values())
    bad = sum(n for status, n in result["statuses"].items() if not 200 <= int(status) < 300)
    return sockets + bad


def block_run(r):
    meta, gen = load(r, "meta"), load(r, "generate")
    if not meta:
        return "_No results: run `scripts/bench`._"
    m = meta["machine"]
    lines = [
        f"Last run: **{meta['date']}**, commit `{meta['commit']}`{' (with uncommitted changes)' if meta.get('dirty') else ''}, "
        f"{meta['total_seconds'] / 60:.1f} minutes in all.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, {m['os']}, Linux {m['kernel']}"
        f" (shared with other work: compare figures from the same run).",
        "",
        "Command:",
        "",
        "```sh",
        meta["command"],
        "```",
        "",
    ]
    if gen:
        lines += [
            f"Data set (`orchestration admin generate --pipelines {gen['pipelines']} --days {gen['days']}`): "
            f"{gen['pipelines']:,} pipelines, {gen['runs']:,} runs, {gen['task_runs']:,} task runs "
            f"(one DAG with {gen.get('wide_tasks', 50)} task runs per run), written through the repository's ingest path "
            f"in {gen['elapsed_ms'] / 1000:.1f} s; embedded store file {gen['store_mib']:.0f} MiB.",
            "",
        ]
    lines.append("Phases: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in meta["phases"]) + ".")
    return "\n".join(lines)


def block_latency(r):
    rows = load(r, "latency")
    meta = load(r, "meta")
    if not rows or not meta:
        return "_No results._"
    s = meta["settings"]
    lines = [
        f"`wrk` on loopback, {s['seconds']} s per line: latency with one connection (one request at a time), "
        f"throughput with {s['connections']} connections on 2 threads. The server is "
        "`target/release/orchestration serve` on the embedded store, logging every request at `info` to a file, "
        "rate limiting off (`ORCHESTRATION_RATE_LIMIT_PER_MINUTE=0`).",
        "",
        "| endpoint | request | p50 | p95 | p99 | req/s (1 conn.) | req/s (" + str(s["connections"]) + " conn.) | p99 (" + str(s["connections"]) + " conn.) | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        a, b = row["serial"], row["concurrent"]
        lines.append(
            f"| {row['name']} | `{row['request']}` | {ms(a['latency_ms']['p50'])} | {ms(a['latency_ms']['p95'])} | "
            f"{ms(a['latency_ms']['p99'])} | {rate(a['rps'])} | {rate(b['rps'])} | {ms(b['latency_ms']['p99'])} | "
            f"{errors(a) + errors(b)} |"
        )
    by_name = {row["key"]: row for row in rows}
    targets = []
    if "list" in by_name:
        p50 = float(by_name["list"]["serial"]["latency_ms"]["p50"])
        targets.append(f"list pipelines p50 ≤ 5 ms: {ms(p50)}, {verdict(p50 <= 5)}")
    if "run_wide" in by_name:
        p50 = float(by_name["run_wide"]["serial"]["latency_ms"]["p50"])
        targets.append(f"get run (50 task runs) p50 ≤ 1 ms: {ms(p50)}, {verdict(p50 <= 1)}")
    if targets:
        lines += ["", "Targets at " + f"{load(r, 'generate')['pipelines']:,} pipelines: " + "; ".join(targets) + "."]
    return "\n".join(lines)


def block_airflow(r):
    c = load(r, "compare")
    if not c:
        return "_No results._"
    lines = [
        f"Apache Airflow {c['airflow_version']} (`airflow api-server`, one worker, SQLite in WAL mode, the "
        f"scheduler and dag-processor stopped so they take no CPU) holding {c['dags']:,} DAGs, {c['runs']:,} DAG runs and "
        f"{c['task_instances']:,} task instances ({c['earlier_tries']:,} earlier tries), loaded through Airflow's ORM; this API holding "
        "exactly that data, synced from that Airflow (`admin sync`). `wrk`, one connection, "
        f"{c['seconds']} s per line, in the same run. Airflow is asked with a JWT from `/auth/token`.",
        "",
        "| listing | request | p50 | p95 | p99 | req/s | p50 ratio (Airflow / this API) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, label in (("dags", "DAGs / pipelines"), ("runs", "runs of one DAG")):
        air, ours = c["airflow"][kind], c["ours"][kind]
        for who, result in (("Airflow", air), ("this API", ours)):
            lat = result["wrk"]["latency_ms"]
            share = ratio(float(air["wrk"]["latency_ms"]["p50"]), float(ours["wrk"]["latency_ms"]["p50"])) if who == "this API" else ""
            lines.append(
                f"| {label}: {who} | `{result['request']}` | {ms(lat['p50'])} | {ms(lat['p95'])} | {ms(lat['p99'])} | "
                f"{rate(result['wrk']['rps'])} | {share} |"
            )
    worst = min(
        float(c["airflow"][k]["wrk"]["latency_ms"]["p50"]) / float(c["ours"][k]["wrk"]["latency_ms"]["p50"])
        for k in ("dags", "runs")
    )
    lines += ["", f"Target: this API's listings at least 10× faster than Airflow's: {worst:.1f}× at worst, {verdict(worst >= 10)}."]
    return "\n".join(lines)


def written(counts):
    return sum(counts[k]["added"] + counts[k]["updated"] for k in ("pipelines", "runs", "task_runs"))


def block_sync(r):
    s = load(r, "sync")
    if not s:
        return "_No results._"
    floors = s["floor"]
    floor = sum(f["seconds"] for f in floors) / len(floors)
    full, resync = s["full"], s["resync"]
    fr, rr = full["record"], resync["record"]
    lines = [
        "A full sync (`orchestration admin sync`, embedded store, fresh data folder) of the Airflow above, then an "
        "unchanged re-sync, next to the floor: `bench/airflow_floor.py` sending the very requests the sync sends, "
        "in the same order on one keep-alive connection, parsing each body and storing nothing, "
        "run just before the syncs.",
        "",
        "| | wall time | Airflow requests | read (DAGs / runs / task instances) | written (pipelines + runs + task runs) |",
        "|---|---|---|---|---|",
    ]
    for n, f in enumerate(floors, 1):
        i = f["items"]
        lines.append(
            f"| floor, pass {n} | {f['seconds']:.1f} s | {f['requests']:,} | {i['dags']:,} / {i['dag_runs']:,} / "
            f"{i['task_instances']:,} (+{i['tries']:,} tries) | — |"
        )
    for label, run, record in (("full sync", full, fr), ("unchanged re-sync", resync, rr)):
        c = record["counts"]
        seen = f"{sum(c['pipelines'].values()):,} / {sum(c['runs'].values()):,} / {sum(c['task_runs'].values()):,}"
        lines.append(
            f"| {label} | {run['measure']['seconds']:.1f} s | {record['airflow_requests']:,} | {seen} | {written(c):,} |"
        )
    full_ratio = full["measure"]["seconds"] / floor
    lines += [
        "",
        f"Targets: full sync ≤ 1.2× the floor: {full_ratio:.2f}×, {verdict(full_ratio <= 1.2)}; "
        f"unchanged re-sync writes nothing: {written(rr['counts'])} mirrored items written, {verdict(written(rr['counts']) == 0)} "
        f"(status `{fr['status']}` / `{rr['status']}`).",
    ]
    return "\n".join(lines)


def block_lambda(r):
    lam, s = load(r, "lambda"), load(r, "sync")
    lines = []
    if lam:
        lines += [
            f"Binaries of `cargo build --release` (x86_64; the tuned release profile), each started {lam['starts']} times by "
            "`scripts/lambda-startup` (process start to its first poll of the Runtime API):",
            "",
            "| function | binary | start-up min | median | p95 |",
            "|---|---|---|---|---|",
        ]
        for row in lam["rows"]:
            lines.append(f"| {row['function']} | {row['size']} | {row['min']} | {row['median']} | {row['p95']} |")
        worst = max(float(row["p95"].split()[0]) for row in lam["rows"])
        worst_median = max(float(row["median"].split()[0]) for row in lam["rows"])
        lines += ["", f"Target: start to ready ≤ 15 ms: median ≤ {worst_median:.1f} ms, p95 ≤ {worst:.1f} ms, {verdict(worst_median <= 15)}."]
    if s:
        full = s["full"]
        runs = sum(full["record"]["counts"]["runs"].values())
        peak = full["measure"]["max_rss_kib"] / MIB
        lines += [
            "",
            "Peak resident memory (kernel high-water mark, `getrusage`) of `orchestration admin sync`, the scheduled "
            f"sync's code, for the full sync of {runs:,} runs above:",
            "",
            "| store | peak RSS | wall time |",
            "|---|---|---|",
            f"| embedded (redb) | {peak:.1f} MiB | {full['measure']['seconds']:.1f} s |",
        ]
        dyn = s.get("dynamodb")
        if dyn:
            c = dyn["record"]["counts"]
            partial = " (stopped by its time budget: " + f"{written(c):,} items written)" if dyn["record"]["status"] != "succeeded" else ""
            lines.append(
                f"| DynamoDB API (moto on loopback){partial} | {dyn['measure']['max_rss_kib'] / MIB:.1f} MiB | {dyn['measure']['seconds']:.1f} s |"
            )
        best = min([peak] + ([dyn["measure"]["max_rss_kib"] / MIB] if dyn else []))
        lines += ["", f"Target: peak RSS ≤ 64 MiB: {verdict(best <= 64)} ({best:.1f} MiB{' on DynamoDB, the Lambda backend' if dyn and best < peak else ''})."]
    return "\n".join(lines) if lines else "_No results._"


def block_load(r):
    l = load(r, "load")
    if not l:
        return "_No results._"
    w = l["wrk"]
    total = w["requests"]
    bad = errors(w)
    rss = l["rss"]
    first, peak, last = rss[0][1] / MIB, max(k for _, k in rss) / MIB, rss[-1][1] / MIB
    later = [k for t, k in rss if t >= l["seconds"] / 2]
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(w["statuses"].items()))
    ops = ", ".join(f"{k} {v:,}" for k, v in sorted(w["operations"].items(), key=lambda kv: -kv[1]))
    series = " → ".join(f"{k / MIB:.0f}" for _, k in rss[:: max(1, len(rss) // 12)])
    lines = [
        f"`wrk` with `bench/wrk_mixed.lua`, {l['connections']} connections on {l['threads']} threads for {l['seconds']} s "
        "against the generated space: 75 % reads of lists and details, 25 % writes (comments created and edited with "
        "`If-Match`, criticality changes, watch / unwatch). The server's resident memory is read from "
        f"`/proc/<pid>/status` every {l['interval']} s.",
        "",
        "| requests | req/s | errors | error rate | p50 | p99 | max |",
        "|---|---|---|---|---|---|---|",
        f"| {total:,} | {rate(w['rps'])} | {bad:,} | {100 * bad / max(total, 1):.3f} % | {ms(w['latency_ms']['p50'])} | "
        f"{ms(w['latency_ms']['p99'])} | {ms(w['latency_ms']['max'])} |",
        "",
        f"Statuses: {statuses}. Operations: {ops}.",
        "",
        f"Server RSS (MiB) over the run: {series}; first sample {first:.1f}, peak {peak:.1f}, last {last:.1f}; "
        f"second half of the run within {min(later) / MIB:.1f}–{max(later) / MIB:.1f} MiB.",
    ]
    return "\n".join(lines)


def block_list_cache(r):
    c = load(r, "list_cache")
    if not c:
        return "_No results._"
    lat, cost = c["latency"], c["cost"]
    goals = {"cold": 10.0, "after_write": 5.0}
    names = {"cold": "first list of the space in a fresh process", "after_write": "list right after a write to a pipeline on the page",
             "warm": "the same list again (cached)"}
    lines = [
        f"`GET /pipelines?size=100` on the generated space ({cost['pipelines']:,} pipelines), `bench/list_cache.py` "
        f"against `orchestration serve`; table requests and bytes from `list_cost` (the same lists through "
        "`CountingTable`: DynamoDB requests count a batch read of more than 100 keys as one per 100; bytes are the "
        "items' sizes as DynamoDB counts them, `store::counting::dynamodb_item_size`).",
        "",
        "| list | p50 | p95 | max | samples | goal (p50) | table calls | DynamoDB requests | read |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ("cold", "after_write", "warm"):
        l, k = lat[key], cost[key]
        goal = f"≤ {goals[key]:.0f} ms: {verdict(l['p50'] <= goals[key])}" if key in goals else ""
        lines.append(f"| {names[key]} | {ms(l['p50'])} | {ms(l['p95'])} | {ms(l['max'])} | {l['samples']} | {goal} | "
                     f"{k['port_calls']} | {k['dynamodb_requests']} | {k['bytes_read'] / 1024:,.0f} KiB |")
    return "\n".join(lines)


BLOCKS = {
    "list_cache": block_list_cache,
    "run": block_run,
    "latency": block_latency,
    "airflow": block_airflow,
    "sync": block_sync,
    "lambda": block_lambda,
    "load": block_load,
}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results, doc = sys.argv[1:]
    with open(doc) as f:
        text = f.read()
    for name, render in BLOCKS.items():
        pattern = re.compile(
            rf"(<!-- bench:{name}:begin -->\n).*?(<!-- bench:{name}:end -->)", re.DOTALL
        )
        if not pattern.search(text):
            sys.exit(f"{doc} has no <!-- bench:{name}:begin --> ... <!-- bench:{name}:end --> block")
        body = render(results).rstrip("\n") + "\n"
        text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text, count=1)
    with open(doc, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
