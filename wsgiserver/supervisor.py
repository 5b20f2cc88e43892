"""Supervisor: N worker processes serving the same listening sockets.

Owns processes and signals: forks workers after the sockets are bound (so
all share each socket's accept queue), replaces a worker that dies, that
served ``--max-requests`` or whose threads are all stuck past
``--worker-timeout`` (their stacks logged first), drains them all on
SIGTERM/SIGINT, and on SIGHUP replaces them one by one, starting each new
worker before stopping an old one, so no connection is refused. Reads the
workers' numbers from the shared metrics table. Knows nothing of HTTP; each
worker runs an ordinary threaded Server.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from .binding import Listener
from .config import ServerConfig
from .hooks import WorkerHooks
from .metrics import Board
from .server import Server
from .wsgi import WSGIApp

__all__ = ["Supervisor"]

log = logging.getLogger("wsgiserver")

# A worker that dies sooner than this after starting is crash-looping:
# wait before replacing it, doubling the wait up to the cap.
_QUICK_DEATH = 2.0
_MAX_BACKOFF = 10.0
# How long a new worker may take to start listening before a reload gives up.
_READY_TIMEOUT = 30.0
# How often a worker checks that its supervisor is still alive.
_ORPHAN_CHECK = 0.5
# How long a stuck worker gets to write its threads' stacks before it is killed.
_STACKS_GRACE = 1.0
# What the supervisor answers: stop (TERM, INT), roll the workers (HUP), have
# them reopen their logs (USR1), a worker's exit (CHLD), and TTIN/TTOU, which
# would otherwise freeze it.
# (POSIX names: the module is imported everywhere, the supervisor forks only there.)
_SUPERVISOR_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGTTIN",
                                       "SIGTTOU", "SIGCHLD") if hasattr(signal, name))
# What asks a worker for its threads' stacks (SIGUSR1 reopens the logs, as
# logrotate's gunicorn recipe expects).
STACKS_SIGNAL: int = getattr(signal, "SIGUSR2", 0)


@dataclass
class _Worker:
    pid: int
    ready_fd: int
    slot: int  # its row in the shared metrics table
    limit: int = 0  # requests after which it is replaced; 0: never
    started: float = field(default_factory=time.monotonic)
    retiring: bool = False


class Supervisor:
    """Runs ``config.workers`` processes of ``Server(app)`` on ``listeners``."""

    def __init__(self, app: WSGIApp | None, config: ServerConfig, listeners: list[Listener],
                 metrics_listener: Listener | None = None,
                 hooks: WorkerHooks | None = None) -> None:
        self.app = app
        self.hooks = hooks or WorkerHooks()
        self.config = config
        self.listeners = listeners
        self.metrics_listener = metrics_listener
        self._workers: dict[int, _Worker] = {}
        self._signals: list[int] = []
        self._backoff = 0.0
        # Rows for twice the workers: old and new overlap while one is replaced.
        self.board = Board(2 * config.workers)
        self._free_slots = list(range(self.board.slots - 1, 0, -1))
        self._stopping = False
        self._shutdown_clean = True  # no worker cut requests off, or had to be killed

    def run(self, early_signals: Sequence[int] = ()) -> int:
        """Supervise until SIGTERM/SIGINT; the exit status. ``early_signals``
        arrived before the supervisor's own handlers were installed."""
        for signum in _SUPERVISOR_SIGNALS:
            signal.signal(signum, self._on_signal)
        self._signals.extend(early_signals)
        for listener in self.listeners:
            log.info("serving on %s with %d workers of %d threads", listener.describe(),
                     self.config.workers, self.config.threads)
        if self.metrics_listener is not None:
            log.info("metrics on %s/metrics", self.metrics_listener.describe())
        for _ in range(self.config.workers):
            self._spawn()
        while True:
            self._reap()
            signals, self._signals = self._signals, []
            if signal.SIGTERM in signals or signal.SIGINT in signals:
                break
            if signal.SIGHUP in signals:
                self._reload()
            if signal.SIGUSR1 in signals:
                log.info("SIGUSR1: every worker reopens its access log")
                for worker in list(self._workers.values()):
                    _signal(worker.pid, signal.SIGUSR1)
            for signum in (signal.SIGTTIN, signal.SIGTTOU):
                if signum in signals:
                    log.warning("%s ignored: the number of workers is set by --workers (%d)",
                                signal.Signals(signum).name, self.config.workers)
            self._check_workers()
            self._keep_count()
            time.sleep(0.1)
        self._stop_all()
        return 0 if self._shutdown_clean else 1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    # -- workers ---------------------------------------------------------

    def _spawn(self) -> _Worker:
        slot = self._free_slots.pop()
        ready_read, ready_write = os.pipe()
        # A SIGTERM between the fork and the worker's own handler would run
        # the supervisor's handler in the worker, and be lost: blocked across
        # the fork, it waits for the handler the worker installs first.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(ready_read)
            status = 1
            try:
                status = self._work(ready_write, slot)
            except BaseException:
                log.exception("worker failed")
            finally:
                os._exit(status)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        os.close(ready_write)
        limit = self.config.max_requests
        if limit:
            import random

            limit += random.randint(0, self.config.max_requests_jitter)
        worker = _Worker(pid, ready_read, slot, limit)
        self._workers[pid] = worker
        log.info("started worker %d", pid)
        return worker

    def _work(self, ready_fd: int, slot: int) -> int:
        """The body of a worker process: serve until SIGTERM; 1 if the
        shutdown's grace period cut requests off."""
        # A stop asked for while the server starts is kept for when it runs.
        stop_asked = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stop_asked.set())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        # The supervisor decides about Ctrl-C and reloads for everyone.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTTIN, signal.SIG_IGN)  # their default would freeze it
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # until the server can reopen its log
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # What the supervisor asks for before it kills a stuck worker: where
        # every thread is, written by C code that needs no GIL.
        faulthandler.register(STACKS_SIGNAL, all_threads=True)
        listeners = [Listener(item.sock, item.ssl_context) for item in self.listeners]
        metrics = (Listener(self.metrics_listener.sock) if self.metrics_listener is not None
                   else None)
        hooks = self.hooks
        if hooks.on_start is not None:
            hooks.on_start()
        app = hooks.load() if hooks.load is not None else self.app
        assert app is not None, "no application, and none to import"
        server = Server(app, self.config, listeners=listeners, multiprocess=True,
                        metrics_listener=metrics, board=self.board, slot=slot)
        server.start()
        os.write(ready_fd, b"ready")
        os.close(ready_fd)
        signal.signal(signal.SIGTERM, lambda signum, frame: server.stop_in_background())
        signal.signal(signal.SIGUSR1, lambda signum, frame: threading.Thread(
            target=server.reopen_logs, name="wsgiserver-reopen", daemon=True).start())
        if stop_asked.is_set():
            server.stop_in_background()
        _stop_when_orphaned(server, os.getppid())
        server.serve_forever()
        if hooks.on_exit is not None:
            try:
                hooks.on_exit()
            except Exception:  # the worker is done either way: say what failed
                log.exception("the worker's exit hook failed")
        return 1 if server.cut_off else 0

    def _reap(self) -> None:
        """Collect exited workers; unexpected deaths are logged."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self._workers.pop(pid, None)
            if worker is None:
                continue
            os.close(worker.ready_fd)
            self.board.retire(worker.slot)
            self._free_slots.append(worker.slot)
            if not worker.retiring:
                lived = time.monotonic() - worker.started
                log.warning("worker %d died (%s) after %.1f s; replacing it",
                            pid, _describe_status(status), lived)
                self.board.count_restart()
                self._backoff = (
                    min(max(self._backoff * 2, 0.5), _MAX_BACKOFF) if lived < _QUICK_DEATH else 0.0
                )
            elif self._stopping and status != 0:
                self._shutdown_clean = False

    def _keep_count(self) -> None:
        """Start workers where some are missing, into free slots only: a
        retiring worker keeps its slot until it has drained and exited, and
        the next look spawns what this one could not."""
        active = [w for w in self._workers.values() if not w.retiring]
        missing = min(self.config.workers - len(active), len(self._free_slots))
        if missing <= 0:
            return
        if self._backoff:
            time.sleep(self._backoff)
        for _ in range(missing):
            self._spawn()

    def _reload(self) -> None:
        """Replace every worker, one at a time, new before old."""
        log.info("reloading: replacing %d workers", len(self._workers))
        for old in list(self._workers.values()):
            if not old.retiring and not self._replace(old):
                return

    def _replace(self, old: _Worker) -> bool:
        """A new worker first; once it serves, the old one drains and stops."""
        if not self._await_slot():
            log.error("no metrics slot came free for a new worker; keeping worker %d", old.pid)
            return False
        new = self._spawn()
        if not _wait_ready(new.ready_fd, _READY_TIMEOUT):
            log.error("new worker %d did not start; keeping worker %d", new.pid, old.pid)
            return False
        old.retiring = True
        _signal(old.pid, signal.SIGTERM)
        self.board.count_restart()
        return True

    def _await_slot(self) -> bool:
        """Wait until a worker's slot is free: workers that retire keep theirs
        until they have drained and exited (bounded by their grace period)."""
        deadline = time.monotonic() + self.config.shutdown_timeout + _READY_TIMEOUT
        while not self._free_slots:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
            self._reap()
        return True

    def _check_workers(self) -> None:
        """Replace workers that served their quota, or whose threads are stuck."""
        now = time.monotonic()
        for worker in list(self._workers.values()):
            if worker.retiring:
                continue
            served = sum(self.board.get(worker.slot, f"requests_{c}")
                         for c in ("1xx", "2xx", "3xx", "4xx", "5xx"))
            if worker.limit and served >= worker.limit:
                if not self._free_slots:
                    continue  # retiring workers still drain: again on the next look
                log.info("worker %d served %d requests: replacing it", worker.pid, served)
                self._replace(worker)
            elif self.config.worker_timeout and self._stuck(worker, now):
                self._kill_stuck(worker)

    def _stuck(self, worker: _Worker, now: float) -> bool:
        """The worker's loop that takes new work has not turned for
        worker_timeout seconds (its heartbeat says when it last did; a worker
        that cannot even say so is stuck too). Requests that queue while
        others finish keep it turning: only threads that all stay held do not."""
        turned_at = max(self.board.get(worker.slot, "free_at_ms") / 1000, worker.started)
        return now - turned_at > self.config.worker_timeout

    def _kill_stuck(self, worker: _Worker) -> None:
        log.error("worker %d: every thread stuck in the application for more than %g s "
                  "(no thread has taken new work); its threads' stacks follow, then it is "
                  "replaced", worker.pid, self.config.worker_timeout)
        worker.retiring = True
        _signal(worker.pid, STACKS_SIGNAL)  # faulthandler writes the stacks
        time.sleep(_STACKS_GRACE)
        _signal(worker.pid, signal.SIGKILL)
        self.board.count_restart()

    def _stop_all(self) -> None:
        """Graceful stop of every worker, then SIGKILL what is left."""
        log.info("shutting down %d workers", len(self._workers))
        self._stopping = True
        for worker in self._workers.values():
            worker.retiring = True
            _signal(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.shutdown_timeout + 5
        while self._workers and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        for worker in list(self._workers.values()):
            log.warning("worker %d did not stop in time; killing it", worker.pid)
            _signal(worker.pid, signal.SIGKILL)
        while self._workers and time.monotonic() < deadline + 5:
            self._reap()
            time.sleep(0.05)
        for listener in self.listeners:
            listener.close()
        if self.metrics_listener is not None:
            self.metrics_listener.close()


def _stop_when_orphaned(server: Server, parent: int) -> None:
    """A worker whose supervisor died (even by SIGKILL) shuts down too."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_ORPHAN_CHECK)
        log.warning("supervisor %d is gone; worker %d stopping", parent, os.getpid())
        server.stop()

    threading.Thread(target=watch, name="wsgiserver-orphan-watch", daemon=True).start()


def _wait_ready(fd: int, timeout: float) -> bool:
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable) and os.read(fd, 16) == b"ready"


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"
