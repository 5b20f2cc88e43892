"""Processes for the benchmark: start, watch (/proc) and stop them, by PID only.

Every process is started in a session of its own, so a Ctrl-C in the terminal
reaches only the driver, which then stops what it started. Stopping is by the
PID we got from Popen: SIGTERM, a grace period, then SIGKILL to the process,
every descendant we can see, and the process group it leads.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
TICKS = os.sysconf("SC_CLK_TCK")

_started: list[subprocess.Popen] = []


def start(cmd: list[str], log_path: str | None = None, **kwargs) -> subprocess.Popen:
    """Popen in a new session; output to log_path (or discarded) unless given in kwargs."""
    if log_path is not None:
        log = open(log_path, "ab")  # noqa: SIM115 - the child keeps it; we close our copy
        kwargs.setdefault("stdout", log)
        kwargs.setdefault("stderr", subprocess.STDOUT)
    else:
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    try:
        proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    finally:
        if log_path is not None:
            log.close()
    _started.append(proc)
    return proc


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()


def descendants(pid: int) -> list[int]:
    """Every live descendant of pid, from the parent links in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree(pid: int) -> list[int]:
    return [pid, *descendants(pid)]


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(pid: int, key: str = "VmRSS") -> float:
    """Sum of a /proc status memory field (VmRSS now, VmHWM peak) over the tree, in MiB."""
    return sum(_status_kib(p, key) for p in tree(pid)) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the live processes of the tree."""
    total = 0
    for p in tree(pid):
        fields = _stat_fields(p)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def stop(proc: subprocess.Popen, grace: float = 5.0) -> int | None:
    """Stop proc and its descendants by PID; return its exit code (None if it had to be killed)."""
    if proc.poll() is None:
        family = descendants(proc.pid)
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        for pid in [proc.pid, *family, *descendants(proc.pid)]:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:  # anything left in the group this process leads (start_new_session)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        code = proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        code = None
    if proc in _started:
        _started.remove(proc)
    return code


def stop_all() -> None:
    """Stop everything start() started and is still registered (driver's finally)."""
    for proc in list(reversed(_started)):
        stop(proc, grace=2.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str = "/", timeout: float = 2.0) -> tuple[int, bytes]:
    """One GET on a fresh connection; (status, body). Raises OSError when not served."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def settle(pid: int, timeout: float = 5.0, step: float = 0.25) -> None:
    """Wait until the tree's processes and RSS stop changing (workers still booting)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        now = (tuple(sorted(tree(pid))), round(rss_mib(pid)))
        if now == last:
            return
        last = now
        time.sleep(step)


def wait_ready(proc: subprocess.Popen, port: int, timeout: float = 15.0) -> str | None:
    """Wait until GET / answers; None when ready, else why not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with code {proc.returncode} before serving"
        try:
            status, _ = http_get(port)
            if status == 200:
                return None
            return f"GET / answered {status}"
        except (OSError, http.client.HTTPException):  # not listening yet
            time.sleep(0.05)
    return f"not serving after {timeout:.0f} s"
