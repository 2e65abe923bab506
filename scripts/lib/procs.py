"""Process groups started by scripts/airflow: finding them again and stopping them.

A pids file has one line per component: "name pid starttime". Each component was started in a
session of its own, so its pid is also its process group. The start time (field 22 of
/proc/PID/stat) guards against a recycled pid; /proc/PID/environ cannot be used for that:
Airflow's setproctitle overwrites it.
"""

import os
import signal
import time
from pathlib import Path
from typing import Callable, NamedTuple


class Component(NamedTuple):
    name: str
    pid: int
    start: str


class Proc(NamedTuple):
    pid: int
    ppid: int
    pgid: int
    state: str
    start: str


def _stat(pid: int) -> Proc | None:
    """The fields of /proc/PID/stat we use (None if the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(") ", 1)[1].split()  # the command name may hold spaces and ")"
    return Proc(pid, int(fields[1]), int(fields[2]), fields[0], fields[19])


def starttime(pid: int) -> str:
    """Start time of a live process ("" if it is gone or a zombie)."""
    p = _stat(pid)
    return p.start if p and p.state != "Z" else ""


def _all_processes() -> list[Proc]:
    procs = (_stat(int(d)) for d in os.listdir("/proc") if d.isdigit())
    return [p for p in procs if p]


def read_pids(path: Path) -> list[Component]:
    """The components of a pids file (none if there is no file)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    parts = (line.split() for line in lines)
    return [Component(p[0], int(p[1]), p[2] if len(p) > 2 else "") for p in parts if len(p) >= 2]


def group_alive(c: Component, procs: list[Proc]) -> bool:
    """True while the component's process group has a live process."""
    now = starttime(c.pid)
    if now == c.start:
        return True
    # a pid is not reused while it is a group id in use: if it names another live process
    # now, our group is empty
    if now:
        return False
    # the leader is gone: live processes left in its group are still ours
    return any(p.pgid == c.pid and p.state != "Z" for p in procs)


def our_processes(components: list[Component]) -> set[tuple[int, str]]:
    """(pid, starttime) of every process of ours: the members of our groups and all their
    descendants (this process excluded)."""
    procs = _all_processes()
    groups = {c.pid for c in components if group_alive(c, procs)}
    if not groups:
        return set()
    ours = {p.pid for p in procs if p.pgid in groups}
    changed = True
    while changed:
        new = {p.pid for p in procs if p.pid not in ours and p.ppid in ours}
        ours |= new
        changed = bool(new)
    ours.discard(os.getpid())
    return {(pid, st) for pid in ours if (st := starttime(pid))}


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _reap_children() -> None:
    """Collects our own exited children (the components, when `start` gives up)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def stop_all(components: list[Component], log: Callable[[str], None]) -> None:
    """TERM to every group, KILL to whatever is left after 30 s, then a moment for parents
    (or init) to reap them, so nothing shows up in ps afterwards."""
    procs = our_processes(components)
    all_procs = _all_processes()
    for c in components:
        if group_alive(c, all_procs):
            _kill(-c.pid, signal.SIGTERM)
    alive = lambda: [(p, st) for p, st in procs if starttime(p) == st]  # noqa: E731
    for _ in range(60):
        # processes started meanwhile (a task the scheduler just launched) are ours too
        procs |= our_processes(components)
        if not alive():
            break
        time.sleep(0.5)
    else:
        if alive():
            log("processes still up after 30 s: KILL")
            for pid, _ in alive():
                _kill(pid, signal.SIGKILL)
    for _ in range(20):
        _reap_children()
        if not any(Path(f"/proc/{pid}").exists() for pid, _ in procs):
            break
        time.sleep(0.25)
