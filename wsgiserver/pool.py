"""Worker threads: one leads, the others wait their turn.

The leader waits on the poller and handles what it reports, running a
request's application itself, so the common request crosses no thread
boundary and only one thread at a time wants the GIL. Where requests
usually take long (they wait on a database, a service, a sleep) the leader
hands the lead on as it starts one, so they run side by side at once; a
watchdog does the same for the occasional slow request among fast ones,
and starts a replacement thread when a request goes long (a WebSocket, a
stream, a long poll), so that ``size`` threads always remain for ordinary
requests. Besides leading, threads run tasks handed to ``submit`` (the
streams of an HTTP/2 connection, which run side by side): an idle thread
takes one at once, else the leader runs it between two waits on the poller.
Knows nothing of sockets, connections or HTTP: the server gives it
``lead``, the step a leader takes over and over, and ``wake``, which ends a
leader's wait on the poller.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import deque
from collections.abc import Callable

from .clock import SYSTEM_CLOCK, Clock

__all__ = ["WorkerPool", "Worker"]

log = logging.getLogger("wsgiserver")

_WATCHDOG_TICK = 0.01
# Looks in a row that find nothing running before the watchdog dozes: short
# gaps between requests (clients that connect for each one) then cost no
# wake-up, which would hand the GIL to the watchdog once per request.
_IDLE_LOOKS = 10


def _nothing() -> None:
    return None


Task = Callable[["Worker"], None]
_LEAD = object()  # what _next gives a thread that is to lead


class Worker:
    """One thread's slot: what the watchdog reads about it."""

    __slots__ = ("name", "busy_since", "detached", "cut", "thread", "detach")

    def __init__(self, name: str) -> None:
        self.name = name
        # Replaces this worker in the pool (its request became a WebSocket);
        # set by the pool, so the hot path makes no closure per request.
        self.detach: Callable[[], None] = _nothing
        # When the current request's application call began; None between
        # requests. Written by the worker, read by the watchdog.
        self.busy_since: float | None = None
        # Why a replacement took its place in the pool: "long" or "websocket".
        self.detached: str | None = None
        # Ends the current request early: called by the watchdog when a long
        # request is over the cap (answered 503 if it can be).
        self.cut: Callable[[], None] | None = None
        self.thread: threading.Thread | None = None


class WorkerPool:
    """``size`` threads taking turns to lead; see the module docstring.

    ``promote_after``: seconds the leader may spend in one request before a
    waiting thread takes over the poller. ``long_after``: seconds after which
    a request is long and its thread is replaced; at most ``max_long`` such
    requests at once (beyond, the request is cut), WebSockets apart (their
    own cap is checked before one is accepted).
    """

    def __init__(
        self,
        size: int,
        lead: Callable[[Worker], None],
        *,
        clock: Clock = SYSTEM_CLOCK,
        promote_after: float = 0.002,
        long_after: float = 2.0,
        max_long: int = 32,
        name: str = "wsgiserver",
        wake: Callable[[], None] = _nothing,
    ) -> None:
        self.size = size
        self._lead = lead
        self._wake_leader = wake
        self._clock = clock
        self._promote_after = promote_after
        self._long_after = long_after
        self.max_long = max_long
        self._name = name
        self._cond = threading.Condition()
        self._leader: Worker | None = None
        self._workers: list[Worker] = []  # every live thread's slot
        self._detached = {"long": 0, "websocket": 0}
        self._tasks: deque[Task] = deque()
        self._idle = 0  # threads waiting for the lead or a task
        self._stopped = False
        self._spawned = 0
        self._watchdog: threading.Thread | None = None
        self._wakeup = threading.Event()
        self._dozing = False  # the watchdog waits for a request to start
        # How often the watchdog looks while requests run: every look costs
        # the leader a trip of the GIL, so not more often than needed to catch
        # the occasional slow request among fast ones within a few ms.
        self._tick = max(promote_after, _WATCHDOG_TICK)
        # How long application calls take, on average (exponentially
        # weighted): when it passes promote_after, the leader hands on the
        # lead as a request starts instead of waiting for the watchdog.
        self._average = 0.0
        self._slow = False

    # -- life ------------------------------------------------------------------

    def start(self) -> None:
        """Start the threads and the watchdog."""
        with self._cond:
            for _ in range(self.size):
                self._spawn_locked()
        self._watchdog = threading.Thread(target=self._watch, name=f"{self._name}-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def stop(self, timeout: float) -> None:
        """Let every thread leave once its current step ends; wait up to ``timeout``."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            threads = [w.thread for w in self._workers if w.thread is not None]
        self._wakeup.set()
        deadline = self._clock.monotonic() + timeout
        for thread in threads:
            thread.join(max(deadline - self._clock.monotonic(), 0.05))
        if self._watchdog is not None:
            self._watchdog.join(1.0)

    @property
    def threads(self) -> int:
        """Live worker threads, regular and detached."""
        return len(self._workers)

    @property
    def long_requests(self) -> int:
        """Requests running on a detached thread because they went long."""
        return self._detached["long"]

    @property
    def websockets(self) -> int:
        """WebSockets running on a detached thread."""
        return self._detached["websocket"]

    def counts(self) -> tuple[int, int]:
        """(busy, idle) regular threads, as the metrics show them."""
        workers = list(self._workers)
        busy = sum(1 for w in workers if w.detached is None and w.busy_since is not None)
        regular = sum(1 for w in workers if w.detached is None)
        return busy, regular - busy

    def _regular_locked(self) -> int:
        return sum(1 for worker in self._workers if worker.detached is None)

    def _spawn_locked(self) -> None:
        worker = Worker(f"{self._name}-worker-{self._spawned}")
        worker.detach = functools.partial(self.detach, worker)
        self._spawned += 1
        worker.thread = threading.Thread(target=self._run, args=(worker,), name=worker.name,
                                         daemon=True)
        self._workers.append(worker)
        worker.thread.start()

    # -- a worker's life -----------------------------------------------------------

    def _run(self, worker: Worker) -> None:
        try:
            while (job := self._next(worker)) is not None:
                if job is _LEAD:
                    while self._leader is worker and not self._stopped:
                        task = self._take_task() if self._tasks else None
                        if task is not None:
                            task(worker)
                        else:
                            self._lead(worker)
                else:
                    job(worker)  # type: ignore[operator]
                if worker.detached is not None and not self._rejoin(worker):
                    return
        except BaseException:  # a bug of ours: say so; _leave keeps the pool whole
            log.exception("worker thread failed")
        finally:
            self._leave(worker)

    def _next(self, worker: Worker) -> object | None:
        """Wait for the lead (``_LEAD``) or a task; None when the pool stops.
        The lead comes first: someone must wait on the poller."""
        with self._cond:
            self._idle += 1
            try:
                while not self._stopped:
                    if self._leader is None:
                        self._leader = worker
                        return _LEAD
                    if self._tasks:
                        return self._tasks.popleft()
                    self._cond.wait()
                return None
            finally:
                self._idle -= 1

    def _take_task(self) -> Task | None:
        with self._cond:
            return self._tasks.popleft() if self._tasks else None

    def submit(self, task: Task) -> None:
        """Run ``task(worker)`` on a pool thread soon.

        As with requests the leader finds itself: where application calls
        are quick, the leader runs the tasks it submitted after its current
        step (one thread, no hand-over, no fight for the GIL; the watchdog
        hands the lead on if one runs long); where they usually wait, an idle
        thread takes each at once, so they run side by side. A task from any
        other thread goes to an idle thread, else to the leader."""
        wake = False
        with self._cond:
            if self._stopped:
                return
            self._tasks.append(task)
            leader = self._leader
            by_leader = leader is not None and leader.thread is threading.current_thread()
            if by_leader and not self._slow:
                pass  # the leader takes it after this step
            elif self._idle:
                self._cond.notify()
            elif leader is not None and not by_leader:
                wake = True  # the leader may be waiting on the poller: end that wait
        if wake:
            self._wake_leader()

    @property
    def waiting(self) -> int:
        """Threads waiting for the lead or a task (not the leader at its poller)."""
        return self._idle

    @property
    def queued(self) -> int:
        """Tasks waiting for a thread."""
        return len(self._tasks)

    def _rejoin(self, worker: Worker) -> bool:
        """A detached worker's request ended: back to the pool if the pool is
        short of threads, else the thread ends (False)."""
        with self._cond:
            assert worker.detached is not None
            self._detached[worker.detached] -= 1
            worker.detached = None
            if self._stopped or self._regular_locked() > self.size:
                worker.detached = "leaving"  # not counted as regular while it ends
                return False
            return True

    def _leave(self, worker: Worker) -> None:
        with self._cond:
            self._workers.remove(worker)
            if self._leader is worker:
                self._leader = None
                self._cond.notify()
            # A regular thread that failed gives its place to a new one.
            while not self._stopped and self._regular_locked() < self.size:
                self._spawn_locked()

    # -- what a leader calls around a request's application call -----------------

    def begin(self, worker: Worker, cut: Callable[[], None] | None = None) -> None:
        """``worker`` enters a request's application call."""
        worker.cut = cut
        worker.busy_since = self._clock.monotonic()
        if self._dozing:
            self._wakeup.set()
        if self._slow and self._leader is worker:
            self._promote(worker)

    def end(self, worker: Worker) -> None:
        """``worker`` is out of the application call."""
        since = worker.busy_since
        worker.busy_since = None
        worker.cut = None
        if since is not None:
            took = self._clock.monotonic() - since
            self._average += (took - self._average) / 8
            self._slow = self._average > self._promote_after

    def detach(self, worker: Worker) -> None:
        """``worker``'s request became a WebSocket: replace it in the pool at once."""
        with self._cond:
            if worker.detached is None:
                self._detach_locked(worker, "websocket")

    def _detach_locked(self, worker: Worker, kind: str) -> None:
        worker.detached = kind
        self._detached[kind] += 1
        if self._leader is worker:
            self._leader = None
            self._cond.notify()
        if not self._stopped:
            self._spawn_locked()

    # -- the watchdog --------------------------------------------------------------

    def _watch(self) -> None:
        idle_looks = 0
        while not self._stopped:
            self._wakeup.wait(None if self._dozing else self._tick)
            self._wakeup.clear()
            if self._check(self._clock.monotonic()):
                self._dozing = False
                idle_looks = 0
                continue
            idle_looks += 1
            if idle_looks < _IDLE_LOOKS:
                continue
            # Doze until a request starts; look once more after saying so,
            # since a request may have started in between.
            self._dozing = True
            if self._check(self._clock.monotonic()):
                self._dozing = False
                idle_looks = 0

    def _check(self, now: float) -> bool:
        """Promote, replace or cut as the clock says; whether any worker is busy."""
        busy = False
        for worker in list(self._workers):
            since = worker.busy_since
            if since is None:
                continue
            busy = True
            if worker is self._leader and now - since >= self._promote_after:
                self._promote(worker)
            if worker.detached is None and now - since >= self._long_after:
                self._went_long(worker)
        return busy

    def _promote(self, worker: Worker) -> None:
        """The leader is held by a request: a waiting thread takes the poller."""
        with self._cond:
            if self._leader is worker and worker.busy_since is not None:
                self._leader = None
                self._cond.notify()

    def _went_long(self, worker: Worker) -> None:
        with self._cond:
            if worker.detached is not None or worker.busy_since is None:
                return
            if self._detached["long"] < self.max_long:
                self._detach_locked(worker, "long")
                return
            cut, worker.cut = worker.cut, None  # once
        if cut is not None:
            log.warning("%d requests have run long already: cutting off %s's",
                        self.max_long, worker.name)
            cut()
