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

import http.client
import signal
import subprocess
import sys
import time

import pytest

from tests.functional.conftest import ROOT
from wsgiserver import build

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
    if point in ("first-worker", "all-workers", "poller-created") and build.compiled():
        pytest.skip("these points wrap Server._spawn or make_poller, which the compiled build "
                    "calls natively (they cannot be replaced); the pure runs test them")
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


INHERITED_IGNORE = r"""
import os, signal, sys
# A process started in the background by a script inherits SIGINT ignored.
signal.signal(signal.SIGINT, signal.SIG_IGN)
sent = []

class SignalWhileImporting:
    # The signal lands while the server's modules are imported.
    def find_spec(self, name, path=None, target=None):
        if name == sys.argv[1] and not sent:
            sent.append(name)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, SignalWhileImporting())
from wsgiserver.command import main
sys.exit(main(["tests.functional.apps:hello_app", "--port", "0", "--threads", "2"]))
"""


@pytest.mark.parametrize("module", ["wsgiserver.server", "wsgiserver.cli",
                                    "tests.functional.apps"])
def test_sigint_inherited_as_ignored_still_stops_a_server_that_is_starting(module):
    result = subprocess.run([sys.executable, "-c", INHERITED_IGNORE, module], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert_clean(result, f"SIGINT while importing {module}")
    assert "serving on" not in result.stderr


def run_cli(*args: str) -> tuple[subprocess.Popen, int]:
    from tests.functional.conftest import launch_cli

    return launch_cli(*args, seconds=15)


def get_ok(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def wait_for_file_line(path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    return ""


def count_lines(path) -> int:
    return path.read_text().count('"GET / HTTP/1.1" 200') if path.exists() else 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigusr1_reopens_the_access_log_as_logrotate_expects(tmp_path, workers):
    log_file, rotated = tmp_path / "access.log", tmp_path / "access.log.1"
    process, port = run_cli("tests.functional.apps:hello_app", "--workers", workers,
                            "--access-log", str(log_file))
    try:
        assert get_ok(port) == 200
        assert wait_for_file_line(log_file)
        log_file.rename(rotated)  # what logrotate does, then it sends SIGUSR1
        process.send_signal(signal.SIGUSR1)
        # Each worker reopens on its own: once the old file stops growing
        # while requests go on, every one of them writes to the new file.
        deadline, steady = time.monotonic() + 15, 0
        before = count_lines(rotated)
        while steady < 8 and time.monotonic() < deadline:
            assert get_ok(port) == 200
            now = count_lines(rotated)
            steady = steady + 1 if now == before and log_file.exists() else 0
            before = now
            time.sleep(0.05)
        assert steady == 8, "the old file kept growing: a worker did not reopen"
        new_before = count_lines(log_file)
        for _ in range(4):
            assert get_ok(port) == 200
        deadline = time.monotonic() + 5
        while count_lines(log_file) < new_before + 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count_lines(log_file) == new_before + 4
        assert count_lines(rotated) == before  # nothing more went to the rotated file
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigttin_and_sigttou_neither_stop_nor_freeze_the_server(workers):
    process, port = run_cli("tests.functional.apps:hello_app", "--workers", workers)
    try:
        for number in (signal.SIGTTIN, signal.SIGTTOU, signal.SIGTTIN):
            process.send_signal(number)
        time.sleep(0.3)  # give a frozen process the time to show it
        assert get_ok(port) == 200
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "SIGTTIN ignored" in stderr
