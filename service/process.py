"""Run ``annvq serve`` in a child process: what the tests, the HTTP load bench and scripts need
to talk to a real uvicorn server on loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_in_subprocess(data_dir: str | os.PathLike, *args: str, log_path: str | os.PathLike,
                        timeout_s: float = 120.0) -> Iterator[str]:
    """Start ``annvq serve DATA_DIR --port <free> ARGS`` on 127.0.0.1 and yield its base URL once
    /healthz answers; always stop it on exit (SIGTERM, so the lifespan closes collections; SIGKILL
    if that hangs). Only `args` configure the child: ANNVQ_* variables are not passed on."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNVQ_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    cmd = [sys.executable, "-c", "from cli.main import cli; cli(prog_name='annvq')", "serve",
           os.fspath(data_dir), "--host", "127.0.0.1", "--port", str(port), *args]
    log_path = Path(log_path)

    def log_tail() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"annvq serve exited with {proc.returncode}:\n{log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"annvq serve not up after {timeout_s} s:\n{log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(client: httpx.Client, timeout_s: float = 120.0) -> dict:
    """Poll /readyz until 200 (collections open, kernels compiled); returns its body."""
    deadline = time.monotonic() + timeout_s
    while (r := client.get("/readyz")).status_code != 200:
        if r.status_code != 503 or time.monotonic() > deadline:
            raise RuntimeError(f"/readyz answered {r.status_code}: {r.text}")
        time.sleep(0.1)
    return r.json()
