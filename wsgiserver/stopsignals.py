"""The signals a running server answers, from the first moment of its life.

Owns what each signal means to one process (the supervisor has its own
table): SIGTERM and SIGINT stop gracefully (a second SIGINT exits at once),
SIGUSR1 reopens the access log, SIGHUP and SIGTTIN/SIGTTOU are answered with
a line saying what would handle them. Imports nothing heavy, so the command
line installs it before the server and the application are imported.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from . import system

__all__ = ["StopSignals"]

log = logging.getLogger("wsgiserver")


class StopSignals:
    """Records SIGTERM and SIGINT from the moment it is installed, and passes
    them to whatever is being served, so that no moment of start-up is
    without a handler: a stop asked for early is acted on once there is
    something to stop. SIGUSR1 goes to the reopen target, when there is one."""

    def __init__(self) -> None:
        self.requested: list[int] = []
        self._target: Callable[[], None] | None = None
        self._reopen: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def install(self) -> bool:
        """Handle the signals (main thread only); False where that is impossible."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for number in system.STOP_SIGNALS:  # SIGTERM, SIGINT, and SIGBREAK on Windows
            signal.signal(number, self._on_stop)
        if system.SIGHUP is not None:
            signal.signal(system.SIGHUP, self._on_hangup)
        if system.SIGUSR1 is not None:
            signal.signal(system.SIGUSR1, self._on_reopen)
        for number in system.WORKER_COUNT_SIGNALS:
            signal.signal(number, self._on_worker_count)
        return True

    def notify(self, target: Callable[[], None],
               reopen: Callable[[], None] | None = None) -> None:
        """Call ``target`` on a stop signal (at once if one came already), and
        ``reopen`` on SIGUSR1."""
        with self._lock:
            self._target = target
            self._reopen = reopen
            pending = bool(self.requested)
        if pending:
            target()

    def _on_stop(self, number: int, frame: FrameType | None) -> None:
        if self.requested and number == signal.SIGINT:
            log.warning("second interrupt: exiting now")
            os._exit(1)
        self.requested.append(number)
        log.info("received %s: shutting down", signal.Signals(number).name)
        # A signal handler must not block on the lock a thread may hold.
        target = self._target
        if target is not None:
            target()

    def _on_reopen(self, number: int, frame: FrameType | None) -> None:
        reopen = self._reopen
        if reopen is not None:
            # On a thread: the handler must not wait for the log's lock.
            threading.Thread(target=reopen, name="wsgiserver-reopen", daemon=True).start()

    def _on_hangup(self, number: int, frame: FrameType | None) -> None:
        log.warning("SIGHUP ignored: reloading needs the supervisor (--workers 2 or more, "
                    "--max-requests or --worker-timeout)")

    def _on_worker_count(self, number: int, frame: FrameType | None) -> None:
        log.warning("%s ignored: the number of worker processes is set by --workers",
                    signal.Signals(number).name)
