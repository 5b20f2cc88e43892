"""The worker pool: one thread leads at a time, the lead moves on when a
request holds it, long requests get replacement threads within a cap.

The pool runs real threads; the lead step here is a fake that takes
"requests" from a queue instead of a poller. Every wait is bounded."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from wsgiserver.clock import ManualClock
from wsgiserver.pool import Worker, WorkerPool


class FakeServer:
    """Requests are callables put on a queue; the leader runs each inline,
    marked busy, as the server does with exchanges."""

    def __init__(self) -> None:
        self.requests: queue.Queue = queue.Queue()
        self.pool: WorkerPool | None = None
        self.leaders: list[str] = []
        self.lock = threading.Lock()
        self.running = 0
        self.most_running = 0

    def lead(self, worker: Worker) -> None:
        try:
            request = self.requests.get(timeout=0.05)
        except queue.Empty:
            return
        assert self.pool is not None
        with self.lock:
            self.leaders.append(worker.name)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.pool.begin(worker, getattr(request, "cut", None))
        try:
            request(worker)
        finally:
            self.pool.end(worker)
            with self.lock:
                self.running -= 1


@pytest.fixture
def pool_of():
    made: list[WorkerPool] = []

    def make(size: int, **options) -> tuple[WorkerPool, FakeServer]:
        server = FakeServer()
        pool = WorkerPool(size, server.lead, **options)
        server.pool = pool
        pool.start()
        made.append(pool)
        return pool, server

    yield make
    for pool in made:
        pool.stop(5.0)


def wait_until(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_fast_requests_are_all_served_by_one_thread(pool_of):
    # The pool's clock stands still: every request is quick, however loaded
    # the machine is (on the real clock, a step past 2 ms hands the lead on).
    pool, server = pool_of(4, clock=ManualClock())
    done = []
    for _ in range(200):
        server.requests.put(lambda worker: done.append(1))
    assert wait_until(lambda: len(done) == 200)
    assert len(set(server.leaders)) == 1  # no hand-offs between threads


def test_requests_that_wait_run_side_by_side(pool_of):
    pool, server = pool_of(4, promote_after=0.005)
    release = threading.Event()
    for _ in range(4):
        server.requests.put(lambda worker: release.wait(5))
    assert wait_until(lambda: server.running == 4)
    release.set()
    assert wait_until(lambda: server.running == 0)
    assert server.most_running == 4


def test_a_long_request_gets_a_replacement_and_its_thread_rejoins_or_ends(pool_of):
    pool, server = pool_of(2, long_after=0.05)
    release = threading.Event()
    server.requests.put(lambda worker: release.wait(5))
    assert wait_until(lambda: pool.long_requests == 1)
    assert wait_until(lambda: pool.threads == 3)  # two remain for ordinary requests
    ordinary = threading.Event()
    server.requests.put(lambda worker: ordinary.set())
    assert ordinary.wait(5)
    release.set()
    assert wait_until(lambda: pool.long_requests == 0 and pool.threads == 2)


def test_long_requests_beyond_the_cap_are_cut(pool_of):
    pool, server = pool_of(2, long_after=0.05, max_long=1)
    release = threading.Event()
    cuts = []

    class Request:
        def __init__(self, name: str) -> None:
            self.name = name

        def __call__(self, worker: Worker) -> None:
            release.wait(5)

        def cut(self) -> None:
            cuts.append(self.name)

    server.requests.put(Request("first"))
    assert wait_until(lambda: pool.long_requests == 1)
    server.requests.put(Request("second"))
    assert wait_until(lambda: cuts == ["second"])
    assert pool.long_requests == 1
    release.set()


def test_a_websocket_detaches_at_once(pool_of):
    pool, server = pool_of(1)
    release = threading.Event()

    def websocket(worker: Worker) -> None:
        worker.detach()
        release.wait(5)

    server.requests.put(websocket)
    assert wait_until(lambda: pool.websockets == 1 and pool.threads == 2)
    served = threading.Event()
    server.requests.put(lambda worker: served.set())
    assert served.wait(5)  # the one regular thread is free for ordinary requests
    release.set()
    assert wait_until(lambda: pool.websockets == 0 and pool.threads == 1)


def test_a_request_that_must_wait_for_its_client_goes_long_at_once(pool_of):
    # The clock stands still: only went_long can make it long (an HTTP/2
    # stream whose window is shut), and the one regular thread is replaced.
    pool, server = pool_of(1, clock=ManualClock())
    release = threading.Event()

    def waiting(worker: Worker) -> None:
        pool.went_long(worker)
        pool.went_long(worker)  # again while waiting: nothing more happens
        release.wait(5)

    server.requests.put(waiting)
    assert wait_until(lambda: pool.long_requests == 1 and pool.threads == 2)
    served = threading.Event()
    server.requests.put(lambda worker: served.set())
    assert served.wait(5)
    release.set()
    assert wait_until(lambda: pool.long_requests == 0 and pool.threads == 1)


def test_stop_ends_every_thread(pool_of):
    pool, server = pool_of(3)
    pool.stop(5.0)
    assert pool.threads == 0


def test_tasks_from_another_thread_run_on_the_pool(pool_of):
    pool, _ = pool_of(4)
    ran: list[str] = []
    done = threading.Event()

    def task(worker: Worker) -> None:
        ran.append(worker.name)
        if len(ran) == 20:
            done.set()

    for _ in range(20):
        pool.submit(task)
    assert done.wait(5)
    assert all(name.startswith("wsgiserver-worker-") for name in ran)
    assert pool.queued == 0


def test_tasks_the_leader_submits_run_on_the_leader_while_apps_are_quick(pool_of):
    pool, server = pool_of(4, clock=ManualClock())  # quick whatever the machine's load
    # Every other thread is waiting: one still starting would find the tasks
    # queued on its way in and take one, as it should.
    assert wait_until(lambda: pool.waiting == 3)
    ran: list[str] = []
    finished = threading.Event()

    def quick(worker: Worker) -> None:
        ran.append(worker.name)
        if len(ran) == 11:  # the submitter's line and ten tasks
            finished.set()

    def request(worker: Worker) -> None:  # a poller step that finds ten streams
        ran.clear()
        for _ in range(10):
            pool.submit(quick)
        ran.append("submitter " + worker.name)

    server.requests.put(request)
    assert finished.wait(5)
    submitter = ran[0].removeprefix("submitter ")
    assert ran[1:] == [submitter] * 10  # no hand-over: the same thread ran them all


def test_tasks_that_wait_run_side_by_side_once_the_pool_has_seen_slow_calls(pool_of):
    pool, server = pool_of(4)
    for _ in range(8):  # the average application call: 20 ms
        server.requests.put(lambda worker: time.sleep(0.02))
    assert wait_until(lambda: server.requests.empty() and server.running == 0)
    running, most = [0], [0]
    lock = threading.Lock()
    done = threading.Barrier(5, timeout=5)

    def waits(worker: Worker) -> None:
        pool.begin(worker)
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        pool.end(worker)
        done.wait()

    def request(worker: Worker) -> None:
        for _ in range(4):
            pool.submit(waits)

    server.requests.put(request)
    done.wait()
    assert most[0] >= 3  # not one after another


# -- one state per thread: counts follow it on every path ---------------------


def test_stop_wakes_a_leader_that_already_took_its_wake_up():
    # The leader waits on its "poller" (an event, as long as a real poll may
    # be); a wake-up sent before the stop flag was set is taken and gone.
    poked = threading.Event()
    waits: list[str] = []

    def lead(worker: Worker) -> None:
        waits.append(worker.name)
        poked.wait(60)
        poked.clear()

    pool = WorkerPool(1, lead, clock=ManualClock(), wake=poked.set)
    pool.start()
    try:
        assert wait_until(lambda: len(waits) == 1)
        poked.set()  # the server's wake-up, taken before the pool stops
        assert wait_until(lambda: len(waits) == 2)
        pool.stop(5.0)  # returns within its timeout in any case: judge by the threads
        assert pool.threads == 0
    finally:
        poked.set()
        pool.stop(1.0)


def test_the_watchdog_dozes_while_only_websockets_and_long_requests_are_open(pool_of):
    clock = ManualClock()
    pool, server = pool_of(2, clock=clock, long_after=2.0)
    release = threading.Event()

    def websocket(worker: Worker) -> None:
        worker.detach()
        release.wait(10)

    def long_request(worker: Worker) -> None:
        release.wait(10)

    server.requests.put(websocket)
    assert wait_until(lambda: pool.websockets == 1)
    server.requests.put(long_request)
    assert wait_until(lambda: server.running == 2)
    clock.advance(3)  # the second one goes long
    assert wait_until(lambda: pool.long_requests == 1)
    assert wait_until(lambda: pool.dozing)
    release.set()


def test_a_long_request_that_becomes_a_websocket_no_longer_counts_as_long(pool_of):
    clock = ManualClock()
    pool, server = pool_of(1, clock=clock, long_after=2.0)
    went_long, release = threading.Event(), threading.Event()

    def slow_then_websocket(worker: Worker) -> None:
        went_long.wait(10)
        worker.detach()  # accepted only now
        release.wait(10)

    server.requests.put(slow_then_websocket)
    assert wait_until(lambda: server.running == 1)
    clock.advance(3)
    assert wait_until(lambda: pool.long_requests == 1)
    went_long.set()
    assert wait_until(lambda: pool.websockets == 1 and pool.long_requests == 0)
    assert pool.threads == 2  # no second replacement: it had one already
    release.set()
    assert wait_until(lambda: pool.websockets == 0 and pool.threads == 1)


def test_a_detached_thread_that_dies_takes_its_count_with_it(pool_of, caplog):
    clock = ManualClock()
    pool, server = pool_of(1, clock=clock, long_after=2.0)
    fail = threading.Event()

    def dies_after_going_long(worker: Worker) -> None:
        fail.wait(10)
        raise SystemExit  # a bug of ours would end the thread the same way

    server.requests.put(dies_after_going_long)
    assert wait_until(lambda: server.running == 1)
    clock.advance(3)
    assert wait_until(lambda: pool.long_requests == 1)
    fail.set()
    assert wait_until(lambda: pool.threads == 1)
    assert pool.long_requests == 0
    assert pool.counts() == (0, 1)


def test_over_the_cap_the_request_waiting_longest_for_its_client_is_cut():
    clock = ManualClock()
    requests: queue.Queue = queue.Queue()
    release = threading.Event()
    cuts: list[str] = []

    class Request:
        def __init__(self, name: str, waiting: float) -> None:
            self.name, self.waiting = name, waiting
            self.started = threading.Event()

        def __call__(self, worker: Worker) -> None:
            self.started.set()
            release.wait(10)

        def cut(self) -> None:
            cuts.append(self.name)

        def stalled(self) -> float:
            return self.waiting

    def lead(worker: Worker) -> None:  # as the server: begin() with the request's stalled()
        try:
            request = requests.get(timeout=0.05)
        except queue.Empty:
            return
        pool.begin(worker, request.cut, request.stalled)
        try:
            request(worker)
        finally:
            pool.end(worker)

    pool = WorkerPool(2, lead, clock=clock, long_after=2.0, max_long=1)
    pool.start()
    try:
        slow_reader = Request("slow reader", waiting=30.0)  # its client takes nothing
        requests.put(slow_reader)
        assert slow_reader.started.wait(5)
        clock.advance(3)
        assert wait_until(lambda: pool.long_requests == 1)
        working = Request("working", waiting=0.0)
        requests.put(working)
        assert working.started.wait(5)
        clock.advance(3)
        assert wait_until(lambda: cuts == ["slow reader"]), cuts
        assert wait_until(lambda: pool.long_requests == 2)  # the working one took its place
    finally:
        release.set()
        pool.stop(5.0)
