#!/usr/bin/env python3
"""Searches what the test suite exposed for the secrets it used; exits 1 on any hit.

    scripts/scan_exposure.py DIR

DIR is the capture folder of a test run (`ORCHESTRATION_EXPOSURE_DIR`, see
tests/src/exposure.rs): per test process, `*.secrets.jsonl` (secrets the suite used),
`*.responses.jsonl` (every API response: status, headers, body), `*.log.jsonl` (every log line)
and `*.output.log` (output of spawned processes).

Two searches, over responses, log lines and process output:
- every recorded secret, in each form it could leak in: as is, JSON-escaped (once and twice),
  percent-encoded (three ways), base64 (standard and URL-safe, padded or not) and, for a password that goes
  with a user name, base64 of `user:password` (a basic-auth header);
- secrets nobody recorded, by shape: API keys (`orch_` + 40), JWTs, basic-auth credentials,
  and the field name `key_hash`.

Secrets shorter than MIN_SECRET_LEN cannot be told from ordinary text (tests use `admin` as a
password): they are counted and reported, not searched.

A hit prints the file, line and a redacted excerpt (the secret never appears in the output).
The scan fails too when the capture is missing or empty, so it can never pass by default.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
from collections import Counter
from pathlib import Path

MIN_SECRET_LEN = 8
STREAMS = ("responses.jsonl", "log.jsonl", "output.log")
# Secrets nobody recorded, by shape (grep -E syntax).
SHAPES = {
    "API key": r"orch_[A-Za-z0-9]{40}",
    "JWT": r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
    "basic-auth credentials": r"[Bb]asic [A-Za-z0-9+/]{8,}={0,2}",
    "key hash field": r"key_hash",
}
MAX_REPORTED = 50


def json_escaped(text: str) -> str:
    return json.dumps(text)[1:-1]


def forms(value: str, username: str | None) -> set[str]:
    """The ways `value` could appear in a body or a log line."""
    raw = value.encode()
    found = {
        value,
        json_escaped(value),
        json_escaped(json_escaped(value)),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
        # Every byte but letters and digits encoded (Rust's NON_ALPHANUMERIC set).
        "".join(chr(b) if chr(b).isalnum() and b < 128 else f"%{b:02X}" for b in raw),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    if username is not None:
        found.add(base64.b64encode(f"{username}:{value}".encode()).decode())
    # grep -F patterns are lines: a form with a line break cannot be searched as one.
    return {f for f in found if f and "\n" not in f and "\r" not in f}


def grep(args: list[str], files: list[Path]) -> list[tuple[str, int, str]]:
    """(file, line number, matched text) of every match."""
    if not files:
        return []
    result = subprocess.run(
        ["grep", "-H", "-n", "-o", "-a", *args, "--", *map(str, files)],
        capture_output=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    if result.returncode not in (0, 1):  # 1: no match
        sys.exit(f"exposure scan: grep failed: {result.stderr.decode(errors='replace')}")
    hits = []
    for line in result.stdout.decode(errors="replace").splitlines():
        # file:line:match (file names of the capture have no colon).
        name, number, match = line.split(":", 2)
        hits.append((name, int(number), match))
    return hits


def is_basic_credential(match: str) -> bool:
    """Whether `Basic xxx` really carries base64 of `user:password` (not prose)."""
    try:
        decoded = base64.b64decode(match.split(" ", 1)[1], validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    return ":" in decoded


class Redactor:
    """Replaces every secret form and shape in a line by a label."""

    def __init__(self, by_form: dict[str, str], kinds: dict[str, str]):
        self.forms = sorted(by_form.items(), key=lambda item: len(item[0]), reverse=True)
        self.kinds = kinds
        self.shapes = [
            (name, re.compile(pattern))
            for name, pattern in SHAPES.items()
            if name != "key hash field"
        ]

    def __call__(self, text: str) -> str:
        for form, value in self.forms:
            if form in text:
                text = text.replace(form, f"<REDACTED {self.kinds[value]}>")
        for name, pattern in self.shapes:
            text = pattern.sub(f"<REDACTED {name}>", text)
        return text


def excerpt(path: str, number: int, redact: Redactor) -> str:
    """The offending line, redacted and shortened."""
    with open(path, "rb") as handle:
        for index, line in enumerate(handle, 1):
            if index == number:
                text = redact(line.decode(errors="replace").rstrip("\n"))
                break
        else:
            return ""
    start = max(0, text.find("<REDACTED") - 150)
    end = start + 400
    return ("…" if start else "") + text[start:end] + ("…" if len(text) > end else "")


def scan(folder: Path) -> int:
    if not folder.is_dir():
        print(f"exposure scan: {folder} does not exist: the tests did not capture anything")
        return 1
    streams = {stream: sorted(folder.glob(f"*.{stream}")) for stream in STREAMS}
    secret_files = sorted(folder.glob("*.secrets.jsonl"))
    processes = {p.name.split(".", 1)[0] for p in folder.iterdir()}

    def lines(files: list[Path]) -> int:
        total = 0
        for path in files:
            with open(path, "rb") as handle:
                total += sum(1 for _ in handle)
        return total

    counts = {stream: lines(files) for stream, files in streams.items()}

    secrets: dict[str, tuple[str, str | None]] = {}
    for path in secret_files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                secrets.setdefault(record["value"], (record["kind"], record.get("username")))
    kinds = Counter(kind for kind, _ in secrets.values())
    weak = {v: k for v, (k, _) in secrets.items() if len(v) < MIN_SECRET_LEN}

    print(f"exposure scan of {folder}: {len(processes)} test processes")
    print(
        f"  scanned: {counts['responses.jsonl']} API responses (status, headers, body), "
        f"{counts['log.jsonl']} log lines, {counts['output.log']} process output lines"
    )
    print(
        f"  secrets: {len(secrets)} distinct ("
        + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        + ")"
    )
    if weak:
        weak_kinds = Counter(weak.values())
        print(
            f"  not searched: {len(weak)} shorter than {MIN_SECRET_LEN} characters, "
            "which cannot be told from ordinary text ("
            + ", ".join(f"{kind} {n}" for kind, n in sorted(weak_kinds.items()))
            + ")"
        )

    problems = []
    if not secret_files or not secrets:
        problems.append("no secrets were recorded")
    if counts["responses.jsonl"] == 0:
        problems.append("no API response was recorded")
    if counts["log.jsonl"] == 0:
        problems.append("no log line was recorded")
    if problems:
        print(
            "exposure scan FAILED: "
            + "; ".join(problems)
            + f" (run the tests with ORCHESTRATION_EXPOSURE_DIR={folder})"
        )
        return 1

    # form -> the secret it encodes
    by_form: dict[str, str] = {}
    for value, (_, username) in secrets.items():
        if value in weak:
            continue
        for form in forms(value, username):
            by_form.setdefault(form, value)
    print(f"  searched for: {len(by_form)} forms of the secrets, and {len(SHAPES)} secret shapes")

    scanned = [f for files in streams.values() for f in files]
    found: list[tuple[str, int, str]] = []  # file, line, what
    with tempfile.NamedTemporaryFile("w", suffix=".patterns", delete=False) as patterns:
        patterns.write("\n".join(by_form) + "\n")
    try:
        for name, number, match in grep(["-F", "-f", patterns.name], scanned):
            value = by_form.get(match)
            if value is None:  # a longer form that contains a shorter one: find which
                value = next(v for f, v in by_form.items() if f in match)
            found.append((name, number, secrets[value][0]))
    finally:
        os.unlink(patterns.name)
    for shape, pattern in SHAPES.items():
        for name, number, match in grep(["-E", pattern], scanned):
            if shape == "basic-auth credentials" and not is_basic_credential(match):
                continue
            found.append((name, number, shape))

    redact = Redactor(by_form, {value: kind for value, (kind, _) in secrets.items()})
    hits = [
        f"{name}:{number}: {what} found\n    {excerpt(name, number, redact)}"
        for name, number, what in found[:MAX_REPORTED]
    ]
    if found:
        print(f"exposure scan FAILED: {len(found)} hits")
        for hit in hits:
            print(hit)
        if len(found) > MAX_REPORTED:
            print(f"... and {len(found) - MAX_REPORTED} more")
        return 1
    print("  hits: 0")
    return 0


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    return scan(Path(sys.argv[1]))


if __name__ == "__main__":
    sys.exit(main())
