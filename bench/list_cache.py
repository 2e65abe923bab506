"""The pipeline list where the per-process cache does not help (scripts/bench, issue 15).

Usage: python3 bench/list_cache.py BIN DATA_DIR SPACE API_KEY [SAMPLES]

Against `BIN serve` on the embedded store in DATA_DIR (nothing else may have it open):
- cold: the first `GET /pipelines` of the space in a fresh process (a new server per sample;
  the request includes the key's first authentication, as a new Lambda instance's does);
- after_write: a list right after a criticality change of a pipeline on the page (the
  listing version moved: the process re-reads what changed);
- warm: the same list again and again (the cached listing).
Prints one JSON object: p50/p95/max in ms and the sample count of each.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

LIST = "/pipelines?size=100"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method: str, url: str, key: str, body: dict | None = None) -> tuple[int, float]:
    """(status, milliseconds) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as response:
        response.read()
        status = response.status
    return status, (time.perf_counter() - started) * 1000


class Server:
    def __init__(self, binary: str, data_dir: str):
        self.port = free_port()
        env = {**os.environ, "ORCHESTRATION_DATA_DIR": data_dir,
               "ORCHESTRATION_RATE_LIMIT_PER_MINUTE": "0", "RUST_LOG": "warn"}
        self.proc = subprocess.Popen([binary, "serve", "--port", str(self.port), "--host", "127.0.0.1"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.base + "/health", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    sys.exit("list_cache.py: the server did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50": round(statistics.median(ordered), 2),
            "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
            "max": round(ordered[-1], 2), "samples": len(ordered)}


def measure(binary: str, data_dir: str, space: str, key: str, samples: int = 20) -> dict:
    prefix = f"/api/v1.0/spaces/{space}/orchestration"
    cold = []
    for _ in range(samples):
        server = Server(binary, data_dir)
        try:
            status, ms = request("GET", server.base + prefix + LIST, key)
            if status != 200:
                sys.exit(f"list_cache.py: the list answered {status}")
            cold.append(ms)
        finally:
            server.stop()
    server = Server(binary, data_dir)
    try:
        with urllib.request.urlopen(urllib.request.Request(
                server.base + prefix + LIST, headers={"Authorization": f"Bearer {key}"}), timeout=30) as r:
            page = json.loads(r.read())
        target = page[0]["id"]
        warm = [request("GET", server.base + prefix + LIST, key)[1] for _ in range(samples * 10)]
        after_write = []
        for i in range(samples * 5):
            level = "high" if i % 2 == 0 else "low"
            status, _ = request("PATCH", f"{server.base}{prefix}/pipelines/{target}/criticality", key,
                                {"criticality": level})
            if status != 200:
                sys.exit(f"list_cache.py: the write answered {status}")
            after_write.append(request("GET", server.base + prefix + LIST, key)[1])
    finally:
        server.stop()
    return {"cold": summary(cold), "after_write": summary(after_write), "warm": summary(warm)}


def main() -> None:
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    binary, data_dir, space, key = sys.argv[1:5]
    samples = int(sys.argv[5]) if len(sys.argv) == 6 else 20
    print(json.dumps(measure(binary, data_dir, space, key, samples)))


if __name__ == "__main__":
    main()
