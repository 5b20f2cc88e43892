"""The reloader: which files are watched, what counts as a change, and a real
reloader process restarting a tiny child command, waiting out a failed
child, passing signals on and killing a child that will not stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import wsgiserver
from wsgiserver.reload import changed, watched_files

REPOSITORY = str(Path(wsgiserver.__file__).resolve().parent.parent)

# -- watched_files and changed -----------------------------------------------------


def make_tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def test_watched_files_finds_sources_and_skips_the_rest(tmp_path):
    make_tree(tmp_path, [
        "app.py", "pkg/models.py", "pkg/deep/er.py", "notes.txt", "pkg/data.pyc",
        ".git/hooks/x.py", "__pycache__/c.py", "venv/lib/d.py", ".venv/lib/d.py",
        "node_modules/e.py", "lib/site-packages/f.py", "myenv/pyvenv.cfg", "myenv/g.py",
    ])
    found = watched_files(str(tmp_path))
    assert sorted(found) == [str(tmp_path / name) for name in
                             ("app.py", "pkg/deep/er.py", "pkg/models.py")]
    assert found[str(tmp_path / "app.py")] == os.stat(tmp_path / "app.py").st_mtime


def test_watched_files_is_bounded(tmp_path):
    make_tree(tmp_path, [f"m{number}.py" for number in range(30)])
    assert len(watched_files(str(tmp_path), limit=10)) == 10


def test_watched_files_of_a_missing_root_is_empty(tmp_path):
    assert watched_files(str(tmp_path / "missing")) == {}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"a": 1.0}, {"a": 1.0}, []),
        ({"a": 1.0}, {"a": 2.0}, ["a"]),
        ({"a": 1.0}, {"a": 1.0, "b": 1.0}, ["b"]),
        ({"a": 1.0, "b": 1.0}, {"b": 1.0}, ["a"]),
        ({"c": 1.0, "a": 1.0}, {"c": 3.0, "b": 1.0}, ["a", "b", "c"]),
    ],
)
def test_changed_reports_added_removed_and_modified(before, after, expected):
    assert changed(before, after) == expected


# -- a real reloader ---------------------------------------------------------------

# The child: records each start (pid and the reloader's marker), then runs
# until told to stop. MODE picks how it behaves.
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    starts_file, mode = sys.argv[1], sys.argv[2]
    # Handlers first: the test may signal as soon as it sees the start.
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(7))
    signal.signal(signal.SIGINT, lambda number, frame: sys.exit(8))
    with open(starts_file, "a") as starts:
        starts.write(f"{os.getpid()} {os.environ.get('WSGISERVER_RELOADER_CHILD')}\\n")
    with open(starts_file) as starts:
        count = len(starts.read().splitlines())
    if mode == "fail-first" and count == 1:
        sys.exit(3)
    if mode == "exit-zero":
        sys.exit(0)
    while True:
        time.sleep(1)
""")

RELOADER = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from wsgiserver.reload import run_with_reloader
    root, stop_timeout, command = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    sys.exit(run_with_reloader(command, root, 0.05, stop_timeout=stop_timeout))
""")


def wait_for(condition, what: str, timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


class Run:
    """A reloader process over a project directory, and its child's starts."""

    def __init__(self, tmp_path: Path, mode: str, stop_timeout: float) -> None:
        self.project = tmp_path / "project"
        self.project.mkdir()
        self.source = self.project / "app.py"
        self.source.write_text("VALUE = 1\n")
        self.child_script = tmp_path / "child.py"
        self.child_script.write_text(CHILD)
        self.starts_file = tmp_path / "starts.txt"
        self.log_file = tmp_path / "reloader.log"
        command = [sys.executable, str(self.child_script), str(self.starts_file), mode]
        with open(self.log_file, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", RELOADER, str(self.project), str(stop_timeout), *command],
                stderr=log, env={**os.environ, "PYTHONPATH": REPOSITORY},
            )

    def starts(self) -> list[str]:
        """Each start's "pid marker" line."""
        return self.starts_file.read_text().splitlines() if self.starts_file.exists() else []

    def log(self) -> str:
        return self.log_file.read_text()

    def wait_started(self, count: int) -> None:
        wait_for(lambda: len(self.starts()) >= count, f"start number {count}")
        wait_for(lambda: "watching 1 files" in self.log(), "the first snapshot")

    def touch(self) -> None:
        """Modify the watched source, moving its mtime well past any clock tick."""
        mtime = self.source.stat().st_mtime + 10
        os.utime(self.source, (mtime, mtime))

    def finish(self, number: int | None = None, timeout: float = 20.0) -> int:
        """Send ``number`` (if any) and return the reloader's exit status."""
        if number is not None:
            self.process.send_signal(number)
        return self.process.wait(timeout)

    def cleanup(self) -> None:
        """Kill what is still running: the reloader, then our children by pid."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for line in self.starts():
            pid = int(line.split()[0])
            if str(self.child_script) in _command_line(pid):
                os.kill(pid, signal.SIGKILL)


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    return bool(_command_line(pid))


@pytest.fixture
def reloader(tmp_path):
    runs: list[Run] = []

    def start(mode: str = "serve", stop_timeout: float = 5.0) -> Run:
        run = Run(tmp_path, mode, stop_timeout)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.cleanup()


pytestmark_linux = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(),
                                      reason="needs /proc to find child processes")


@pytestmark_linux
def test_change_restarts_the_child(reloader):
    run = reloader()
    run.wait_started(1)
    first_pid = int(run.starts()[0].split()[0])
    run.touch()
    run.wait_started(2)
    assert not alive(first_pid)
    assert all(line.endswith(" 1") for line in run.starts())  # WSGISERVER_RELOADER_CHILD=1
    assert f"{run.source} changed; restarting" in run.log()
    assert run.finish(signal.SIGTERM) == 7  # the child's own status on SIGTERM
    assert len(run.starts()) == 2


@pytestmark_linux
def test_sigint_is_passed_on_and_its_status_returned(reloader):
    run = reloader()
    run.wait_started(1)
    pid = int(run.starts()[0].split()[0])
    assert run.finish(signal.SIGINT) == 8
    assert not alive(pid)


@pytestmark_linux
def test_failed_child_is_restarted_only_after_a_change(reloader):
    run = reloader("fail-first")
    run.wait_started(1)
    wait_for(lambda: "exited with status 3" in run.log(), "the failure to be logged")
    assert len(run.starts()) == 1
    run.touch()
    run.wait_started(2)
    assert run.log().count("exited with status") == 1
    assert run.finish(signal.SIGTERM) == 7


@pytestmark_linux
def test_stop_signal_while_waiting_returns_the_failed_status(reloader):
    run = reloader("fail-first")
    run.wait_started(1)
    wait_for(lambda: "exited with status 3" in run.log(), "the failure to be logged")
    assert run.finish(signal.SIGTERM) == 3


@pytestmark_linux
def test_child_that_ignores_sigterm_is_killed(reloader):
    run = reloader("ignore-term", stop_timeout=0.5)
    run.wait_started(1)
    first_pid = int(run.starts()[0].split()[0])
    run.touch()
    run.wait_started(2)
    assert not alive(first_pid)
    assert "did not stop" in run.log()
    assert run.finish(signal.SIGTERM) == 128 + signal.SIGKILL


@pytestmark_linux
def test_child_that_exits_cleanly_ends_the_reloader(reloader):
    run = reloader("exit-zero")
    assert run.finish() == 0
    assert len(run.starts()) == 1
