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

import enum
import functools
import logging
import threading
from collections import deque
from collections.abc import Callable

from .clock import SYSTEM_CLOCK, Clock

__all__ = ["WorkerPool", "Worker", "WorkerState"]

log = logging.getLogger("wsgiserver")

_WATCHDOG_TICK = 0.01
# Looks in a row that find nothing running before the watchdog dozes: short
# gaps between requests (clients that connect for each one) then cost no
# wake-up, which would hand the GIL to the watchdog once per request.
_IDLE_LOOKS = 10


def _nothing() -> None:
    return None


def _stalled(worker: Worker) -> float:
    """Seconds ``worker``'s request has waited for its client (0: it works)."""
    stalled = worker.stalled
    if stalled is None:
        return 0.0
    try:
        return stalled()
    except Exception:  # a connection closing under us: it is waiting for nothing
        return 0.0


Task = Callable[["Worker"], None]
_LEAD = object()  # what _next gives a thread that is to lead


class WorkerState(enum.IntEnum):
    """What one worker thread is doing. Changed only by the pool, under its
    lock; read by the watchdog, the metrics and the supervisor's heartbeat.
    (An IntEnum: counted per request in a dict, where an Enum's hash is a
    Python call.)"""

    IDLE = 0  # waiting for the lead or a task
    LEADING = 1  # holds the lead: waits on the poller, or handles what it found
    RUNNING = 2  # in a request or a task (the leader too, until it hands the lead on)
    LONG = 3  # its request went long: detached, a replacement took its place
    WEBSOCKET = 4  # its request became a WebSocket: detached, likewise
    LEAVING = 5  # its thread is ending


_IDLE, _LEADING, _RUNNING = WorkerState.IDLE, WorkerState.LEADING, WorkerState.RUNNING
# States of a thread the pool no longer counts among its ``size``.
_DETACHED = frozenset({WorkerState.LONG, WorkerState.WEBSOCKET, WorkerState.LEAVING})


class Worker:
    """One thread's slot. ``state`` and ``since`` are the pool's to write."""

    __slots__ = ("name", "state", "since", "cut", "stalled", "thread", "detach")

    def __init__(self, name: str) -> None:
        self.name = name
        # Replaces this worker in the pool (its request became a WebSocket);
        # set by the pool, so the hot path makes no closure per request.
        self.detach: Callable[[], None] = _nothing
        # RUNNING until its thread first asks for work: a thread still
        # starting is not yet waiting.
        self.state = WorkerState.RUNNING
        # When the current request's application call began; None outside one.
        self.since: float | None = None
        # Ends the current request early: called by the watchdog when a long
        # request is over the cap (answered 503 if it can be).
        self.cut: Callable[[], None] | None = None
        # Seconds the current request has been waiting for its client (0
        # while it works): over the cap, the one waiting longest is cut.
        self.stalled: Callable[[], float] | None = None
        self.thread: threading.Thread | None = None


class WorkerPool:
    """``size`` threads taking turns to lead; see the module docstring.

    ``promote_after``: seconds the leader may spend in one request before a
    waiting thread takes over the poller. ``long_after``: seconds after which
    a request is long and its thread is replaced; at most ``max_long`` such
    requests at once (beyond, the request is cut), WebSockets apart (their
    own cap is checked before one is accepted).

    Every worker is in one WorkerState, changed only here under ``_cond``'s
    lock (``_set``), which also keeps the count of each state: the counts
    follow the states on every path, a thread that dies included.
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
        # One lock for the states, the lead and the tasks; the condition waits
        # on it. The lock itself (C) on the hot path, not the condition's
        # Python-level __enter__; where every request passes (begin, end) as
        # acquire/release in try/finally, which costs less than a ``with``.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._leader: Worker | None = None
        self._workers: list[Worker] = []  # every live thread's slot
        self._counts = [0] * len(WorkerState)  # threads per state, by its number
        self._tasks: deque[Task] = deque()
        self._stopped = False
        self._spawned = 0
        # When a thread last took the lead, or a request last began or ended:
        # the heartbeat of the loop that takes new work (see turned_at).
        self._turned_at = clock.monotonic()
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
        with self._lock:
            for _ in range(self.size):
                self._spawn_locked()
        self._watchdog = threading.Thread(target=self._watch, name=f"{self._name}-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def stop(self, timeout: float) -> None:
        """Let every thread leave once its current step ends; wait up to ``timeout``.

        The leader may be waiting on the poller, having already taken a
        wake-up meant for it before the stop flag was set: it is woken
        again here, after the flag, so no stop waits out a poll."""
        with self._lock:
            self._stopped = True
            self._cond.notify_all()
            threads = [w.thread for w in self._workers if w.thread is not None]
        self._wake_leader()
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
        return self._counts[WorkerState.LONG]

    @property
    def websockets(self) -> int:
        """Threads detached for a WebSocket."""
        return self._counts[WorkerState.WEBSOCKET]

    def counts(self) -> tuple[int, int]:
        """(busy, idle) regular threads, as the metrics show them: busy ones
        are in a request or a task, idle ones wait or lead."""
        with self._lock:
            busy = self._counts[WorkerState.RUNNING]
            return busy, self._regular_locked() - busy

    @property
    def dozing(self) -> bool:
        """The watchdog waits for a request to start rather than ticking."""
        return self._dozing

    def turned_at(self) -> float:
        """When the loop that takes new work last turned: now while a thread
        waits for work or leads, else when one last took the lead or a
        request began or ended. The supervisor's heartbeat: a worker process
        whose loop stands still while work waits is stuck; one whose
        requests merely queue is not."""
        with self._lock:
            if self._counts[WorkerState.IDLE] or self._counts[WorkerState.LEADING]:
                return self._clock.monotonic()
            return self._turned_at

    def _regular_locked(self) -> int:
        return len(self._workers) - sum(self._counts[state] for state in _DETACHED)

    def _set(self, worker: Worker, state: WorkerState) -> None:
        """The one place a worker's state changes (``_cond`` held)."""
        counts = self._counts
        counts[worker.state] -= 1
        counts[state] += 1
        worker.state = state

    def _spawn_locked(self) -> None:
        worker = Worker(f"{self._name}-worker-{self._spawned}")
        worker.detach = functools.partial(self.detach, worker)
        self._spawned += 1
        worker.thread = threading.Thread(target=self._run, args=(worker,), name=worker.name,
                                         daemon=True)
        self._workers.append(worker)
        self._counts[worker.state] += 1
        worker.thread.start()

    # -- a worker's life -----------------------------------------------------------

    def _run(self, worker: Worker) -> None:
        try:
            while (job := self._next(worker)) is not None:
                if job is _LEAD:
                    while self._leader is worker and not self._stopped:
                        task = self._take_task(worker) if self._tasks else None
                        if task is not None:
                            task(worker)
                            self._settle(worker)
                        else:
                            self._lead(worker)
                else:
                    job(worker)  # type: ignore[operator]
                if worker.state in _DETACHED and not self._rejoin(worker):
                    return
        except BaseException:  # a bug of ours: say so; _leave keeps the pool whole
            log.exception("worker thread failed")
        finally:
            self._leave(worker)

    def _next(self, worker: Worker) -> object | None:
        """Wait for the lead (``_LEAD``) or a task; None when the pool stops.
        The lead comes first: someone must wait on the poller."""
        with self._lock:
            self._set(worker, WorkerState.IDLE)
            while not self._stopped:
                if self._leader is None:
                    self._take_lead_locked(worker)
                    return _LEAD
                if self._tasks:
                    self._set(worker, WorkerState.RUNNING)
                    return self._tasks.popleft()
                self._cond.wait()
            return None

    def _take_lead_locked(self, worker: Worker) -> None:
        self._leader = worker
        self._set(worker, WorkerState.LEADING)
        self._turned_at = self._clock.monotonic()

    def _take_task(self, worker: Worker) -> Task | None:
        """The leader takes a queued task between two waits on the poller."""
        with self._lock:
            if not self._tasks:
                return None
            self._set(worker, WorkerState.RUNNING)
            return self._tasks.popleft()

    def _settle(self, worker: Worker) -> None:
        """After a task run by the leader: leading again, unless it was
        promoted away or detached meanwhile."""
        with self._lock:
            if worker.state is WorkerState.RUNNING and self._leader is worker:
                self._set(worker, WorkerState.LEADING)

    def submit(self, task: Task) -> None:
        """Run ``task(worker)`` on a pool thread soon.

        As with requests the leader finds itself: where application calls
        are quick, the leader runs the tasks it submitted after its current
        step (one thread, no hand-over, no fight for the GIL; the watchdog
        hands the lead on if one runs long); where they usually wait, an idle
        thread takes each at once, so they run side by side. A task from any
        other thread goes to an idle thread, else to the leader."""
        wake = False
        with self._lock:
            if self._stopped:
                return
            self._tasks.append(task)
            leader = self._leader
            by_leader = leader is not None and leader.thread is threading.current_thread()
            if by_leader and not self._slow:
                pass  # the leader takes it after this step
            elif self._counts[WorkerState.IDLE]:
                self._cond.notify()
            elif leader is not None and not by_leader:
                wake = True  # the leader may be waiting on the poller: end that wait
        if wake:
            self._wake_leader()

    @property
    def waiting(self) -> int:
        """Threads waiting for the lead or a task (not the leader at its poller)."""
        return self._counts[WorkerState.IDLE]

    @property
    def queued(self) -> int:
        """Tasks waiting for a thread."""
        return len(self._tasks)

    def _rejoin(self, worker: Worker) -> bool:
        """A detached worker's request ended: back to the pool if the pool is
        short of threads, else the thread ends (False)."""
        with self._lock:
            if self._stopped or self._regular_locked() >= self.size:
                self._set(worker, WorkerState.LEAVING)
                return False
            self._set(worker, WorkerState.RUNNING)  # until _next finds it work
            return True

    def _leave(self, worker: Worker) -> None:
        with self._lock:
            self._set(worker, WorkerState.LEAVING)
            self._counts[WorkerState.LEAVING] -= 1
            self._workers.remove(worker)
            if self._leader is worker:
                self._leader = None
                self._cond.notify()
            # A regular thread that failed gives its place to a new one.
            while not self._stopped and self._regular_locked() < self.size:
                self._spawn_locked()

    # -- what a leader calls around a request's application call -----------------

    def begin(self, worker: Worker, cut: Callable[[], None] | None = None,
              stalled: Callable[[], float] | None = None) -> None:
        """``worker`` enters a request's application call (the hot path: the
        state change of ``_set`` written out, under the lock)."""
        now = self._clock.monotonic()
        lock = self._lock  # acquire/release: a ``with`` costs more, every request
        lock.acquire()
        try:
            worker.cut = cut
            worker.stalled = stalled
            worker.since = self._turned_at = now
            state = worker.state
            if state is _LEADING or state is _IDLE:
                counts = self._counts
                counts[state] -= 1
                counts[_RUNNING] += 1
                worker.state = _RUNNING
            if self._slow and self._leader is worker:
                self._leader = None
                self._cond.notify()
        finally:
            lock.release()
        if self._dozing:
            self._wakeup.set()

    def end(self, worker: Worker) -> None:
        """``worker`` is out of the application call."""
        now = self._clock.monotonic()
        lock = self._lock
        lock.acquire()
        try:
            since = worker.since
            worker.since = worker.cut = worker.stalled = None
            self._turned_at = now
            if worker.state is _RUNNING and self._leader is worker:
                counts = self._counts
                counts[_RUNNING] -= 1
                counts[_LEADING] += 1
                worker.state = _LEADING
        finally:
            lock.release()
        if since is not None:
            self._average += (now - since - self._average) / 8
            self._slow = self._average > self._promote_after

    def detach(self, worker: Worker) -> None:
        """``worker``'s request became a WebSocket: replace it in the pool at
        once (a request that went long was replaced already: it only changes
        its state, so it no longer counts against ``max_long``)."""
        with self._lock:
            if worker.state is WorkerState.RUNNING:
                self._detach_locked(worker, WorkerState.WEBSOCKET)
            elif worker.state is WorkerState.LONG:
                self._set(worker, WorkerState.WEBSOCKET)

    def _detach_locked(self, worker: Worker, state: WorkerState) -> None:
        self._set(worker, state)
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
        """Promote, replace or cut as the clock says; whether a request runs
        attached to the pool (the only thing worth waking for: a WebSocket
        or a request already long has nothing left to promote or replace)."""
        running = False
        for worker in list(self._workers):
            since = worker.since
            if since is None or worker.state is not WorkerState.RUNNING:
                continue
            running = True
            if worker is self._leader and now - since >= self._promote_after:
                self._promote(worker)
            if now - since >= self._long_after:
                self._went_long(worker)
        return running

    def _promote(self, worker: Worker) -> None:
        """The leader is held by a request: a waiting thread takes the poller."""
        with self._lock:
            if self._leader is worker and worker.since is not None:
                self._leader = None
                self._cond.notify()

    def went_long(self, worker: Worker) -> None:
        """``worker``'s request must wait for its client now (an HTTP/2
        window held shut): treat it as long at once, so a replacement takes
        its place, or over the cap the least progressing one is cut."""
        self._went_long(worker)

    def _went_long(self, worker: Worker) -> None:
        """``worker``'s request went long: a replacement takes its place;
        over the cap, the request making the least progress on its client is
        cut (the longest waiting for it), never one that works while another
        waits; if none waits, the one that just went long."""
        with self._lock:
            if worker.state is not WorkerState.RUNNING or worker.since is None:
                return
            if self._counts[WorkerState.LONG] < self.max_long:
                self._detach_locked(worker, WorkerState.LONG)
                return
            longs = [w for w in self._workers if w.state is WorkerState.LONG and w.cut]
        victim = max([worker, *longs], key=_stalled)
        if victim is not worker and _stalled(victim) > _stalled(worker):
            with self._lock:
                cut, victim.cut = victim.cut, None  # once
                if worker.state is WorkerState.RUNNING and worker.since is not None:
                    self._detach_locked(worker, WorkerState.LONG)  # in the victim's place
        else:
            victim = worker
            with self._lock:
                cut, worker.cut = worker.cut, None  # once
        if cut is not None:
            log.warning("%d requests have run long already: cutting off %s's (waiting for its "
                        "client %.1f s)", self.max_long, victim.name, _stalled(victim))
            cut()
