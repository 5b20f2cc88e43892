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


@pytest.fixture
def start_cli():
    """Factory: ``start_cli(*args)`` runs ``python -m wsgiserver *args --port P``
    and returns (process, P) once it accepts connections; every process is
    ended (SIGTERM, then SIGKILL) afterwards."""
    processes = []

    def start(*args: str) -> tuple[subprocess.Popen, int]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "wsgiserver", *args, "--port", str(port)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        processes.append(process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return process, port
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.05)
        raise AssertionError(f"server did not start: {process.communicate(timeout=5)}")

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
