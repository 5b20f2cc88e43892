"""--workers: processes sharing the socket, replaced when they die, drained on
SIGTERM, replaced one by one on SIGHUP without refusing a connection."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(item) for item in path.read_text().split()} if path.exists() else set()


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def get(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read()
    finally:
        conn.close()


def test_workers_serve_and_report_multiprocess(start_cli):
    process, port = start_cli("tests.functional.cli_apps:pid_app", "--workers", "2")
    workers = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    pid, multiprocess = get(port).split()
    assert int(pid) in workers
    assert multiprocess == b"True"


def test_a_dead_worker_is_replaced(start_cli):
    process, port = start_cli("tests.functional.cli_apps:pid_app", "--workers", "2")
    before = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    after = wait_for(lambda: (c := children(process.pid)) and len(c) == 2 and victim not in c and c)
    assert victim not in after
    assert int(get(port).split()[0]) in after


def test_sighup_replaces_every_worker_without_refusing_connections(start_cli):
    process, port = start_cli("tests.functional.cli_apps:pid_app", "--workers", "2")
    before = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    failures: list[Exception] = []
    stop = threading.Event()
    served = []

    def hammer():
        while not stop.is_set() and len(served) < 5000:
            try:
                served.append(get(port))
            except Exception as error:  # any refused or broken request
                failures.append(error)

    client = threading.Thread(target=hammer)
    client.start()
    try:
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGHUP)
        wait_for(lambda: (c := children(process.pid)) and len(c) == 2 and not (c & before),
                 timeout=20)
        time.sleep(0.3)
    finally:
        stop.set()
        client.join(10)
    assert failures == []
    assert len(served) > 10


def test_sigterm_drains_all_workers_and_exits_zero(start_cli):
    process, port = start_cli("tests.functional.cli_apps:pid_app", "--workers", "2")
    workers = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    assert get(port)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=20)
    assert process.returncode == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


class KeepAliveClient:
    """Requests on one kept-alive connection, reconnecting only when the
    server said ``Connection: close``, as wrk does: a request the server drops
    on a kept-alive connection is a failure, not a retry."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self) -> bytes:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.conn.request("GET", "/")
        response = self.conn.getresponse()
        body = response.read()
        if response.will_close:
            self.conn.close()
            self.conn = None
        return body

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def test_two_rolling_restarts_under_keep_alive_load_fail_no_request(start_cli):
    process, port = start_cli("tests.functional.cli_apps:pid_app", "--workers", "2",
                              "--threads", "4")
    first = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    failures: list[Exception] = []
    served: list[bytes] = []
    stop = threading.Event()

    def load() -> None:
        client = KeepAliveClient(port)
        try:
            while not stop.is_set() and len(served) < 200_000:
                try:
                    served.append(client.get())
                except Exception as error:  # reset, EOF or timeout on a kept-alive request
                    failures.append(error)
                    client.close()
                    client = KeepAliveClient(port)
        finally:
            client.close()

    clients = [threading.Thread(target=load) for _ in range(8)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(0.5)
        os.kill(process.pid, signal.SIGHUP)
        second = wait_for(lambda: (c := children(process.pid)) and len(c) == 2
                          and not (c & first) and c, timeout=20)
        time.sleep(0.5)
        os.kill(process.pid, signal.SIGHUP)
        wait_for(lambda: (c := children(process.pid)) and len(c) == 2 and not (c & second),
                 timeout=20)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in clients:
            thread.join(20)
    assert failures == []
    pids = {int(body.split()[0]) for body in served}
    assert len(pids) >= 4, "the requests were not served by both generations of workers"


def test_a_worker_stuck_in_the_application_is_replaced_after_its_stacks_are_logged(start_cli):
    process, port = start_cli("tests.functional.cli_apps:hang_app", "--workers", "2",
                              "--threads", "1", "--worker-timeout", "1")
    first = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    stuck = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        stuck.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        # One worker is stuck: it is killed and replaced; the other serves on.
        replaced = wait_for(lambda: (c := children(process.pid)) and len(c) == 2
                            and c != first and c, timeout=15)
        assert len(replaced & first) == 1
        assert int(get(port).split()[0]) in replaced
    finally:
        stuck.close()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert "every thread stuck in the application" in stderr
    assert "hang_here_for_the_test" in stderr  # the dump shows where it hung


def test_sigterm_exits_1_and_says_so_when_the_grace_period_cuts_requests_off(start_cli):
    process, port = start_cli("tests.functional.cli_apps:slow_app", "--shutdown-timeout", "0.5")
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)  # the request is in the application
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        slow.close()
    assert process.returncode == 1
    assert "1 requests cut off" in stderr


def test_sigterm_exits_0_when_every_request_finished(start_cli):
    process, port = start_cli("tests.functional.cli_apps:slow_app", "--shutdown-timeout", "10")
    assert get(port) == b"ok"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0 and "cut off" not in stderr


def test_a_worker_told_to_stop_while_it_starts_stops():
    """SIGTERM reaching a worker before its server is up (a supervisor's
    stop, or a roll, as it forks): the worker stops once it is up, instead
    of running the supervisor's handler it was born with and going on."""
    import re
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "wsgiserver", "tests.functional.apps:hello_app", "--workers", "2",
         "--port", "0"], cwd=root, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the first worker, just forked
            found = re.search(r"started worker (\d+)", line)
            if found:
                worker = int(found.group(1))
                os.kill(worker, signal.SIGTERM)
                break

        def gone() -> bool:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{worker}/status").read_text().find("zombie") >= 0

        assert wait_for(gone, 10), "the worker went on serving"
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def test_worker_timeout_never_kills_a_worker_whose_requests_merely_queue(start_cli):
    # 40 clients looping over 0.5 s requests on 2 x 8 threads: requests queue,
    # yet every worker keeps taking work. None may be killed, none reset.
    process, port = start_cli("tests.functional.cli_apps:half_second_app", "--workers", "2",
                              "--threads", "8", "--worker-timeout", "2")
    first = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    stop = threading.Event()
    served, failures = [], []

    def client() -> None:
        while not stop.is_set():
            try:
                served.append(get(port))
            except (OSError, http.client.HTTPException) as error:
                failures.append(repr(error))

    clients = [threading.Thread(target=client) for _ in range(40)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(6)  # three times the timeout, with a queue all along
    finally:
        stop.set()
        for thread in clients:
            thread.join(20)
    assert failures == []
    assert children(process.pid) == first  # no worker replaced
    assert len(served) >= 100
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert "stuck" not in stderr


def test_max_requests_applies_with_one_worker(start_cli):
    process, port = start_cli("tests.functional.cli_apps:pid_app", "--workers", "1",
                              "--max-requests", "3")
    pids = [int(get(port).split()[0]) for _ in range(3)]
    assert len(set(pids)) == 1
    # The supervisor replaces it (new before old) once it served its quota.
    later = wait_for(lambda: (pid := int(get(port).split()[0])) != pids[0] and pid)
    assert later != pids[0]
    assert process.pid not in pids  # the server ran in a worker, not in the supervisor


def test_worker_timeout_applies_with_one_worker(start_cli):
    process, port = start_cli("tests.functional.cli_apps:hang_app", "--workers", "1",
                              "--threads", "1", "--worker-timeout", "1",
                              "--max-long-requests", "0")
    first = wait_for(lambda: children(process.pid))
    stuck = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        stuck.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        replaced = wait_for(lambda: (c := children(process.pid)) and c != first and c,
                            timeout=15)
        assert int(get(port).split()[0]) in replaced
    finally:
        stuck.close()


def hook_files(directory: Path, kind: str) -> set[int]:
    return {int(path.name.split("-", 1)[1]) for path in directory.glob(f"{kind}-*")}


def test_worker_hooks_run_in_each_worker_and_the_app_is_imported_there(tmp_path, monkeypatch):
    import subprocess
    import sys

    from tests.functional.conftest import ROOT, free_port

    monkeypatch.setenv("HOOK_DIR", str(tmp_path))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wsgiserver", "tests.functional.cli_apps_imports:app",
         "--workers", "2", "--worker-import",
         "--on-worker-start", "tests.functional.cli_apps:record_start",
         "--on-worker-exit", "tests.functional.cli_apps:record_exit", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        workers = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
        wait_for(lambda: get(port))
        assert wait_for(lambda: hook_files(tmp_path, "import") == workers)
        assert hook_files(tmp_path, "start") == workers
        assert process.pid not in hook_files(tmp_path, "import")  # not in the supervisor
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert hook_files(tmp_path, "exit") == workers
