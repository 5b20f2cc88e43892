"""``--reload``: restart the server when a Python source file changes (development).

Owns finding the files to watch, polling their modification times and the
life of one child process: start, stop on change, restart, pass signals on.
Knows nothing of HTTP, the server or its options: it runs a command.

Polling with the standard library only: a stat per file per interval, fine
for a project's sources and bounded for trees that are not.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import system

if TYPE_CHECKING:  # imported where the reloader runs: the server never needs it
    import subprocess

__all__ = ["CHILD_VARIABLE", "MAX_WATCHED_FILES", "watched_files", "changed",
           "run_with_reloader"]

log = logging.getLogger("wsgiserver")

# Set in the child's environment, so the CLI knows not to start a reloader.
CHILD_VARIABLE = "WSGISERVER_RELOADER_CHILD"
# A stat per file per interval; past this many the tree is not a project.
MAX_WATCHED_FILES = 20_000
# Directories that hold other people's code or none at all.
_SKIPPED_DIRECTORIES = frozenset({"__pycache__", "node_modules", "site-packages", "venv"})
# Signals that end the reloader; each is passed on to the child first.
_STOP_SIGNALS = system.STOP_SIGNALS + ((system.SIGHUP,) if system.SIGHUP is not None else ())
# How often a sleeping reloader looks for a stop signal.
_SIGNAL_CHECK = 0.1


def watched_files(root: str, limit: int = MAX_WATCHED_FILES) -> dict[str, float]:
    """``*.py`` files under ``root`` and their modification times, at most ``limit``."""
    found: dict[str, float] = {}
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories
                                   if not _skipped(directory, name))
        for name in sorted(names):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            try:
                found[path] = os.stat(path).st_mtime
            except OSError:
                continue  # removed while we looked
            if len(found) >= limit:
                return found
    return found


def _skipped(parent: str, name: str) -> bool:
    """Hidden directories, caches, dependencies and virtual environments."""
    if name.startswith(".") or name in _SKIPPED_DIRECTORIES:
        return True
    return os.path.exists(os.path.join(parent, name, "pyvenv.cfg"))


def changed(before: dict[str, float], after: dict[str, float]) -> list[str]:
    """Files added, removed or modified between two snapshots, sorted."""
    differ = {path for path in before.keys() & after.keys() if before[path] != after[path]}
    return sorted(differ | (before.keys() ^ after.keys()))


class _Child:
    """The one running copy of the command, and the signals passed to it."""

    def __init__(self, command: Sequence[str], stop_timeout: float) -> None:
        self.command = list(command)
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen | None = None
        self.stop_signal: int | None = None
        self.signalled = False  # the current process got the stop signal

    def start(self) -> None:
        import subprocess

        environment = {**os.environ, CHILD_VARIABLE: "1"}
        # Its own session: a terminal's Ctrl-C reaches only the reloader,
        # which passes it on once (a second SIGINT makes the server hurry).
        self.process = subprocess.Popen(self.command, env=environment, start_new_session=True)
        self.signalled = False

    def on_signal(self, number: int, frame: object) -> None:
        """Signal handler: remember the request to stop, pass it on at once."""
        self.stop_signal = number
        process = self.process
        if process is not None and process.returncode is None:
            try:
                os.kill(process.pid, number)
                self.signalled = True
            except ProcessLookupError:
                pass

    def stop(self) -> int:
        """Ask the child to stop (SIGTERM), kill it past the timeout; its status."""
        import subprocess

        process = self.process
        assert process is not None
        if process.poll() is None and not self.signalled:
            process.terminate()
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("reloader: the application did not stop in %.0f s; killing it",
                        self.stop_timeout)
            process.kill()
            process.wait()
        return process.returncode


def run_with_reloader(command: list[str], root: str, interval: float = 1.0,
                      *, stop_timeout: float = 10.0) -> int:
    """Run ``command``, restarting it whenever a ``*.py`` file under ``root``
    changes, until SIGTERM, SIGINT or SIGHUP. Returns the child's last exit
    status, 128 + N for a child ended by signal N."""
    child = _Child(command, stop_timeout)
    previous = _install_handlers(child)
    try:
        child.start()
        _supervise(child, root, interval)
        return _exit_status(child.stop())
    finally:
        if child.process is not None and child.process.poll() is None:
            child.stop()
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def _supervise(child: _Child, root: str, interval: float) -> None:
    """Restart the child on changes; return when a stop signal came or the
    child finished cleanly on its own."""
    snapshot = watched_files(root)
    log.info("reloader: watching %d files under %s", len(snapshot), root)
    waiting = False  # the child failed: only a change brings it back
    while child.stop_signal is None:
        status = child.process.poll() if child.process is not None else None
        if status is not None and not waiting:
            if status == 0:
                log.info("reloader: the application exited; stopping")
                return
            log.warning("reloader: the application exited with status %d; "
                        "restarting after the next change", status)
            waiting = True
        _sleep(interval, child)
        if child.stop_signal is not None:
            return
        current = watched_files(root)
        modified = changed(snapshot, current)
        snapshot = current
        if modified:
            _restart(child, modified)
            waiting = False


def _restart(child: _Child, modified: list[str]) -> None:
    more = f" and {len(modified) - 1} more" if len(modified) > 1 else ""
    log.info("reloader: %s%s changed; restarting", modified[0], more)
    child.stop()
    child.start()


def _sleep(seconds: float, child: _Child) -> None:
    """Sleep, waking early when a stop signal arrives."""
    deadline = time.monotonic() + seconds
    while child.stop_signal is None and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, _SIGNAL_CHECK))


def _install_handlers(child: _Child) -> dict[int, Any]:
    """Route stop signals to the child; the handlers they replace."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # signals reach only the main thread: nothing to route
    return {number: signal.signal(number, child.on_signal) for number in _STOP_SIGNALS}


def _exit_status(returncode: int) -> int:
    """A shell's view of an exit: 128 + N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode
