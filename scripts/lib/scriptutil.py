"""Small helpers shared by the Python scripts of scripts/ (scripts/airflow, scripts/bench).

Standard library only: the scripts run with the system python3 before any venv exists.
"""

import socket
import sys
from pathlib import Path

# The repository root: scripts/lib/ is two levels below it.
ROOT = Path(__file__).resolve().parent.parent.parent


class Logger:
    """Writes "<prefix>: message" lines to stderr, as the former bash scripts did."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def log(self, message: str) -> None:
        print(f"{self.prefix}: {message}", file=sys.stderr, flush=True)

    def die(self, message: str, code: int = 1) -> "NoReturn":  # noqa: F821
        self.log(message)
        sys.exit(code)


def free_port() -> int:
    """A loopback port that is free right now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a text file ("" if it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "".join(text.splitlines(keepends=True)[-lines:])
