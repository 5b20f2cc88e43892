"""What the server did, in numbers: counters and gauges in a shared table, and
the Prometheus text exposition of their sum.

Owns the table's layout, recording into one slot, and the text format. The
table lives in anonymous shared memory made before ``--workers`` fork, one
slot per worker process plus one for the counts of workers that ended, so
any process can render the sum, and the supervisor reads what it needs to
replace workers (requests served, when a thread was last free). Knows no
sockets, HTTP parsing or WSGI beyond a status code.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Board", "Recorder", "render", "DURATION_BUCKETS"]

# Seconds; the upper bounds of the request duration histogram's buckets.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REFUSED = (400, 408, 413, 414, 431, 503)  # statuses of requests the app never saw
_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_SCALE = 1_000_000  # durations are kept in microseconds


class _Layout:
    """Where each number lives in a slot (signed 64-bit integers)."""

    def __init__(self) -> None:
        names: list[str] = ["pid", "free_at_ms"]  # identity and liveness first
        self.gauges = ["connections", "busy_threads", "idle_threads", "websockets",
                       "long_requests", "spooled_bytes", "body_memory_bytes", "spool_files"]
        self.counters = ([f"requests_{c}" for c in _CLASSES]
                         + [f"bucket_{i}" for i in range(len(DURATION_BUCKETS))]
                         + ["duration_us", "received_bytes", "sent_bytes", "worker_restarts",
                            "websocket_timeouts"]
                         + [f"refused_{status}" for status in REFUSED])
        # This process's own figures, rendered per worker, never summed.
        self.process = ["rss_bytes", "open_fds", "cpu_ms", "start_time_ms"]
        names += self.gauges + self.counters + self.process
        self.index = {name: number for number, name in enumerate(names)}
        self.size = len(names)


LAYOUT = _Layout()


class Board:
    """The shared table: slot 0 holds what ended workers counted, slots 1..N
    one worker process each. Made before forking, shared by every process."""

    def __init__(self, workers: int) -> None:
        self.slots = workers + 1
        import mmap  # only where metrics are on

        self._memory = mmap.mmap(-1, self.slots * LAYOUT.size * 8)
        self._numbers = memoryview(self._memory).cast("q")

    def slot(self, number: int) -> memoryview:
        """The numbers of slot ``number`` (a view: writes are shared)."""
        start = number * LAYOUT.size
        return self._numbers[start:start + LAYOUT.size]

    def get(self, number: int, name: str) -> int:
        """One number of one slot."""
        return self._numbers[number * LAYOUT.size + LAYOUT.index[name]]

    def retire(self, number: int) -> None:
        """A worker's process ended: add its counters to slot 0, clear its slot."""
        slot, retired = self.slot(number), self.slot(0)
        for name in LAYOUT.counters:
            index = LAYOUT.index[name]
            retired[index] += slot[index]
        for index in range(LAYOUT.size):
            slot[index] = 0

    def count_restart(self) -> None:
        """The supervisor replaced a worker."""
        self.slot(0)[LAYOUT.index["worker_restarts"]] += 1

    def workers(self) -> list[tuple[int, dict[str, int]]]:
        """(slot, its process figures) of each live worker process."""
        found = []
        for number in range(1, self.slots):
            if self.get(number, "pid"):
                found.append((number, {name: self.get(number, name) for name in LAYOUT.process}))
        return found

    def totals(self) -> dict[str, int]:
        """Every number summed over the slots."""
        sums = dict.fromkeys(LAYOUT.index, 0)
        for number in range(self.slots):
            slot = self.slot(number)
            for name, index in LAYOUT.index.items():
                sums[name] += slot[index]
        return sums


class Recorder:
    """One process's writer into its slot; safe from any thread (one lock,
    taken once per request)."""

    def __init__(self, board: Board, slot: int, pid: int) -> None:
        self._slot = board.slot(slot)
        self._lock = threading.Lock()
        self._slot[LAYOUT.index["pid"]] = pid
        index = LAYOUT.index
        self._classes = [index[f"requests_{c}"] for c in _CLASSES]
        self._buckets = [index[f"bucket_{i}"] for i in range(len(DURATION_BUCKETS))]
        self._duration = index["duration_us"]
        self._received, self._sent = index["received_bytes"], index["sent_bytes"]
        self._websocket_timeouts = index["websocket_timeouts"]
        self._refused = {status: index[f"refused_{status}"] for status in REFUSED}

    def request(self, status: int, duration: float) -> None:
        """A request the application answered."""
        slot = self._slot
        with self._lock:
            slot[self._classes[min(max(status // 100, 1), 5) - 1]] += 1
            slot[self._duration] += int(duration * _SCALE)
            for bound, index in zip(DURATION_BUCKETS, self._buckets, strict=True):
                if duration <= bound:
                    slot[index] += 1  # cumulative buckets are summed at rendering
                    break

    def refused(self, status: int) -> None:
        """A request answered by the server itself, before any application."""
        index = self._refused.get(status)
        if index is not None:
            with self._lock:
                self._slot[index] += 1

    def websocket_timeout(self) -> None:
        """A WebSocket closed because its peer stopped answering pings, or idled."""
        with self._lock:
            self._slot[self._websocket_timeouts] += 1

    def transferred(self, received: int, sent: int) -> None:
        """Bytes read from and written to clients."""
        with self._lock:
            self._slot[self._received] += received
            self._slot[self._sent] += sent

    def process(self, rss: int, fds: int, cpu_seconds: float, started: float) -> None:
        """This process's resident memory, descriptors, CPU time and start
        (Unix time): the standard process metrics, per worker."""
        slot, index = self._slot, LAYOUT.index
        slot[index["rss_bytes"]] = rss
        slot[index["open_fds"]] = fds
        slot[index["cpu_ms"]] = int(cpu_seconds * 1000)
        slot[index["start_time_ms"]] = int(started * 1000)

    def gauges(self, values: dict[str, int], free_at: float | None) -> None:
        """Set the gauges, and the worker's heartbeat: when its loop that
        takes new work last turned (monotonic s; see WorkerPool.turned_at)."""
        slot = self._slot
        for name, value in values.items():
            slot[LAYOUT.index[name]] = value
        if free_at is not None:
            slot[LAYOUT.index["free_at_ms"]] = int(free_at * 1000)


@dataclass(frozen=True)
class _Family:
    name: str
    kind: str
    help: str


def render(totals: dict[str, int],
           workers: Sequence[tuple[int, dict[str, int]]] = ()) -> str:
    """The Prometheus text exposition format (version 0.0.4) of ``totals``,
    and the standard process families of each of ``workers`` (slot, figures),
    labelled ``worker``."""
    lines: list[str] = []

    def family(name: str, kind: str, text: str, samples: Sequence[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    family("wsgiserver_requests_total", "counter", "Requests the application answered, "
           "by status class.",
           [(f'{{code="{c}"}}', totals[f"requests_{c}"]) for c in _CLASSES])
    family("wsgiserver_request_duration_seconds", "histogram",
           "Time from a complete request to the application's last byte.",
           _histogram(totals))
    family("wsgiserver_requests_in_flight", "gauge", "Requests inside an application now.",
           [("", totals["busy_threads"] + totals["long_requests"])])
    family("wsgiserver_connections_open", "gauge", "Client connections open.",
           [("", totals["connections"])])
    family("wsgiserver_worker_threads", "gauge", "Worker threads of the pools, by state.",
           [('{state="busy"}', totals["busy_threads"]), ('{state="idle"}', totals["idle_threads"])])
    family("wsgiserver_websockets_open", "gauge", "WebSockets open.",
           [("", totals["websockets"])])
    family("wsgiserver_spooled_bytes", "gauge", "Bytes in spool files: request bodies and "
           "responses waiting for slow clients (bounded by --max-spool-bytes).",
           [("", totals["spooled_bytes"])])
    family("wsgiserver_body_memory_bytes", "gauge", "Request body bytes held in memory "
           "(bounded by --max-body-memory-bytes).", [("", totals["body_memory_bytes"])])
    family("wsgiserver_spool_files_open", "gauge", "Spool files open (descriptors counted "
           "with the connections).", [("", totals["spool_files"])])
    family("wsgiserver_received_bytes_total", "counter", "Bytes read from clients.",
           [("", totals["received_bytes"])])
    family("wsgiserver_sent_bytes_total", "counter", "Bytes written to clients.",
           [("", totals["sent_bytes"])])
    family("wsgiserver_refused_requests_total", "counter", "Requests the server answered itself "
           "without the application (limits, timeouts, too many long requests).",
           [(f'{{reason="{status}"}}', totals[f"refused_{status}"]) for status in REFUSED])
    family("wsgiserver_websocket_timeouts_total", "counter", "WebSockets closed because the "
           "peer did not answer a ping in time (1011) or sent no message for the idle "
           "timeout (1001).", [("", totals["websocket_timeouts"])])
    family("wsgiserver_worker_restarts_total", "counter", "Worker processes replaced.",
           [("", totals["worker_restarts"])])
    for name, kind, text, key, scale in _PROCESS_FAMILIES:
        samples = [(f'{{worker="{number}"}}', figures[key] / scale)
                   for number, figures in workers if figures[key] >= 0 and figures["start_time_ms"]]
        if samples:
            family(name, kind, text, samples)
    return "\n".join(lines) + "\n"


# The process families every Prometheus client library exports, here per
# worker process: (name, type, help, figure, divisor).
_PROCESS_FAMILIES = (
    ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
     "rss_bytes", 1),
    ("process_open_fds", "gauge", "Number of open file descriptors.", "open_fds", 1),
    ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
     "cpu_ms", 1000),
    ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in "
     "seconds.", "start_time_ms", 1000),
)


def _histogram(totals: dict[str, int]) -> list[tuple[str, float]]:
    samples: list[tuple[str, float]] = []
    running = 0
    for number, bound in enumerate(DURATION_BUCKETS):
        running += totals[f"bucket_{number}"]
        samples.append((f'_bucket{{le="{bound}"}}', running))
    count = sum(totals[f"requests_{c}"] for c in _CLASSES)
    samples.append(('_bucket{le="+Inf"}', count))
    samples.append(("_sum", totals["duration_us"] / _SCALE))
    samples.append(("_count", count))
    return samples


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
