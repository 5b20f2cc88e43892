"""Fixtures of the functional tests: the command line in a subprocess, a browser."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.functional.browser import launch

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nobody listens on right now (the server binds it next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_cli(*args: str, seconds: float = 10.0,
               stdout: int = subprocess.PIPE) -> tuple[subprocess.Popen, int]:
    """Run ``python -m wsgiserver *args --port P``; (process, P) once it accepts
    connections. The caller ends the process (a failed start is killed here)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wsgiserver", *args, "--port", str(port)],
        cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"server did not start: {process.communicate(timeout=5)}")


@pytest.fixture
def start_cli():
    """Factory: ``start_cli(*args)`` is launch_cli; every process is ended
    (SIGTERM, then SIGKILL) afterwards."""
    processes = []

    def start(*args: str) -> tuple[subprocess.Popen, int]:
        process, port = launch_cli(*args)
        processes.append(process)
        return process, port

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        process.communicate(timeout=15)


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium on loopback and a DevTools connection to it
    (skips, saying how to install it, when there is no Chromium)."""
    with launch(tmp_path) as devtools:
        yield devtools
