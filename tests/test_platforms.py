"""The command line on simulated Windows and macOS (tests/platforms.py): it
starts, serves, takes an upload into a spool file, streams a file back and
stops gracefully on each system's signals; every feature the system lacks
is one line saying so. Real processes, 127.0.0.1 only."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time

import pytest

from tests.platforms import simulated_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(system: str, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(simulated_command(system, *args, "--port", str(port)), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"did not start: {process.communicate(timeout=10)}")


def stop(process: subprocess.Popen, number: int) -> tuple[int, str]:
    process.send_signal(number)
    try:
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate(timeout=10)
        raise AssertionError(f"did not stop on signal {number}: {stderr}") from None
    return process.returncode, stderr


def fetch(port: int, method: str, target: str, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, target, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# (system, the poller auto picks, the signals that stop it gracefully)
SYSTEMS = [
    ("windows", "select", [("SIGINT", signal.SIGINT), ("SIGBREAK", signal.SIGUSR2)]),
    ("macos", "poll", [("SIGTERM", signal.SIGTERM), ("SIGINT", signal.SIGINT)]),
]


@pytest.mark.parametrize("system, poller, signals", SYSTEMS, ids=[s[0] for s in SYSTEMS])
def test_serves_uploads_streams_and_stops_gracefully(system, poller, signals, tmp_path):
    upload = os.urandom(3 << 20)  # past the memory threshold: spooled to a file
    for name, number in signals:
        process, port = start(system, "microapp:app", "--directory", str(tmp_path))
        assert fetch(port, "GET", "/")[0] == 200
        assert fetch(port, "POST", "/files/big.bin", upload)[0] == 201
        status, body = fetch(port, "GET", "/files/big.bin")
        assert status == 200 and body == upload  # sendfile or its fallback
        code, stderr = stop(process, number)
        assert code == 0, stderr
        assert f"({poller})" in stderr and "stopped" in stderr, (name, stderr)
        (tmp_path / "big.bin").unlink()


def run(system: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(simulated_command(system, "tests.functional.apps:hello_app",
                                            "--port", "0", *args),
                          cwd=ROOT, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("system, args, says", [
    ("windows", ("--workers", "2"), "--workers 2 or more needs os.fork"),
    ("windows", ("--bind", "unix:/tmp/wsgiserver-never.sock"), "needs Unix domain sockets"),
    ("windows", ("--bind", "fd://3"), "needs sockets passed by number"),
    ("windows", ("--poller", "epoll"), "--poller epoll needs epoll"),
    ("windows", ("--poller", "poll"), "--poller poll needs poll()"),
    ("macos", ("--poller", "epoll"), "--poller epoll needs epoll"),
])
def test_what_a_system_lacks_is_one_line(system, args, says):
    result = run(system, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert "which this system (" in lines[0]


def test_workers_run_on_simulated_macos(tmp_path):
    process, port = start("macos", "tests.functional.apps:hello_app", "--workers", "2")
    assert fetch(port, "GET", "/") == (200, b"Hello, World!")
    code, stderr = stop(process, signal.SIGTERM)
    assert code == 0, stderr
