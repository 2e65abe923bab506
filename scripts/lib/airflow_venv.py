"""The Airflow venv of scripts/airflow: installed once with uv from the pinned lock
(scripts/airflow-requirements.txt), shared by every instance (AIRFLOW_INSTANCE_DIR)."""

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

UV_VERSION = "0.13.8"
INSTALL_REV = 2  # bump when ensure_venv changes how the venv is built


def pip_ok(*cmd: str) -> bool:
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def find_uv(af_dir: Path, log: Callable[[str], None]) -> list[str]:
    """A uv command: on PATH, as a python3 module, or installed privately under af_dir."""
    if shutil.which("uv"):
        return ["uv"]
    if pip_ok("python3", "-m", "uv", "--version"):
        return ["python3", "-m", "uv"]
    # not on this machine: install it into a private venv (no change to the system Python),
    # or, where python3 has no venv module, with the system pip
    private = af_dir / "uv-venv"
    if os.access(private / "bin/uv", os.X_OK):
        return [str(private / "bin/uv")]
    log(f"installing uv {UV_VERSION}")
    shutil.rmtree(private, ignore_errors=True)
    if pip_ok("python3", "-m", "venv", str(private)) and subprocess.run(
        [str(private / "bin/python"), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"]
    ).returncode == 0:
        return [str(private / "bin/uv")]
    shutil.rmtree(private, ignore_errors=True)
    subprocess.run(["python3", "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"], check=True)
    return ["python3", "-m", "uv"]


def venv_stamp(py: str, venv: Path, lock: Path) -> Path:
    """The marker of a venv built from this lock, this python and INSTALL_REV (the same name
    the bash version of this script wrote, so an existing venv is kept)."""
    lock_line = hashlib.sha256(lock.read_bytes()).hexdigest() + "  -\n"
    version = subprocess.run([py, "-c", "import sys; print(sys.version)"],
                             capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256(f"{lock_line}{version}{INSTALL_REV}\n".encode()).hexdigest()
    return venv / f".installed-{digest[:16]}"


def ensure_venv(af_dir: Path, venv: Path, lock_file: Path, log: Callable[[str], None], die) -> None:
    """Installs Airflow from the lock into the shared venv unless it is there already."""
    py = shutil.which("python3") or die("python3 not found")
    stamp = venv_stamp(py, venv, lock_file)
    ready = lambda: stamp.is_file() and os.access(venv / "bin/airflow", os.X_OK)  # noqa: E731
    if ready():
        return
    # instances (AIRFLOW_INSTANCE_DIR) share the venv: one installs it, the others wait
    with open(af_dir / "venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready():
            return
        uv = find_uv(af_dir, log)
        log(f"installing Apache Airflow from scripts/airflow-requirements.txt into {venv} (a few minutes, once)")
        shutil.rmtree(venv, ignore_errors=True)
        env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
        subprocess.run([*uv, "venv", "--quiet", "--python", py, str(venv)], env=env, check=True)
        # --compile-bytecode: write every .pyc now, so that no start pays for compiling (and
        # starts stay fast where PYTHONDONTWRITEBYTECODE is set)
        subprocess.run([*uv, "pip", "sync", "--quiet", "--compile-bytecode", "--python",
                        str(venv / "bin/python"), str(lock_file)], env=env, check=True)
        if subprocess.run([str(venv / "bin/airflow"), "version"], stdout=subprocess.DEVNULL).returncode:
            die("the installed airflow does not run")
        stamp.touch()
