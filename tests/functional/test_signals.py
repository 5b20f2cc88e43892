"""A stop signal at any moment of start-up stops the server cleanly: exit 0,
no error line, no traceback.

The deterministic part runs the command line in a subprocess whose start-up
functions are wrapped to send the signal to the process itself at a chosen
point (while the application is imported, right after the socket listens,
after the poller exists, between worker threads, just before and after the
"serving on" line). The timed part sends it from outside after a spread of
delays, as an operator or an orchestrator would.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.functional.conftest import ROOT

DRIVER = r"""
import os, signal, sys
import wsgiserver.binding as binding
import wsgiserver.cli as cli
import wsgiserver.server as server

point, number = sys.argv[1], getattr(signal, sys.argv[2])
sent = []

def hit():  # once: a second SIGINT means "exit now", on purpose
    if not sent:
        sent.append(number)
        os.kill(os.getpid(), number)

def around(owner, name, before):
    original = getattr(owner, name)
    def wrapped(*args, **kwargs):
        if before:
            hit()
        result = original(*args, **kwargs)
        if not before:
            hit()
        return result
    setattr(owner, name, wrapped)

if point == "importing-the-app":
    around(cli, "load_app", before=True)
elif point == "socket-listening":
    around(binding, "open_listener", before=False)
elif point == "poller-created":
    around(server, "make_poller", before=False)
elif point == "first-worker":
    around(server.Server, "_spawn", before=True)
elif point == "all-workers":
    around(server.Server, "_spawn", before=False)
elif point in ("before-serving-line", "after-serving-line"):
    info = server.log.info
    def logged(message, *args):
        if message.startswith("serving on") and point == "before-serving-line":
            hit()
        info(message, *args)
        if message.startswith("serving on") and point == "after-serving-line":
            hit()
    server.log.info = logged
sys.exit(cli.main(["tests.functional.apps:hello_app", "--port", "0", "--threads", "2"]))
"""

POINTS = ["importing-the-app", "socket-listening", "poller-created", "first-worker",
          "all-workers", "before-serving-line", "after-serving-line"]


def assert_clean(result: subprocess.CompletedProcess, where: str) -> None:
    if result.returncode == -signal.SIGTERM and not result.stderr:
        return  # the signal's default action, before the interpreter ran our code
    assert result.returncode == 0, f"{where}: exit {result.returncode}: {result.stderr}"
    assert "error" not in result.stderr.lower(), f"{where}: {result.stderr}"
    assert "Traceback" not in result.stderr, f"{where}: {result.stderr}"


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("point", POINTS)
def test_signal_at_each_point_of_start_up_stops_cleanly(point, signal_name):
    result = subprocess.run([sys.executable, "-c", DRIVER, point, signal_name], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert_clean(result, f"{signal_name} at {point}")


def test_signal_after_a_spread_of_delays_stops_cleanly():
    delays = [0.0, 0.02, 0.05, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4, 0.6]
    processes = []
    for delay in delays:
        process = subprocess.Popen(
            [sys.executable, "-m", "wsgiserver", "tests.functional.apps:hello_app",
             "--port", "0", "--threads", "2"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        processes.append((delay, process))
    started = time.monotonic()
    for delay, process in processes:
        time.sleep(max(0.0, started + delay - time.monotonic()))
        process.send_signal(signal.SIGTERM)
    for delay, process in processes:
        try:
            stdout, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        assert_clean(result, f"SIGTERM after {delay} s")
