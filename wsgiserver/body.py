"""A request body received before the application runs: in memory up to a
threshold, beyond it in an unlinked temporary file.

Owns where the bytes are kept, the stream ``wsgi.input`` reads them from,
when a body still arriving must next show progress (``BodyClock``, the same
rule for an HTTP/1.1 connection and an HTTP/2 stream), and the body's share
of the server's budgets: bytes in memory across
connections (past it, a body goes to disk however small), bytes spooled
across connections (past it, the body is refused: SpoolFull, a 503), and
open spool files (each a descriptor). Knows no sockets, framing or limits
beyond these: the connection feeds it de-chunked bytes, the parser enforces
the body limit.
"""

from __future__ import annotations

import io
from typing import IO

from .budget import BodyBudgets
from .errors import SpoolFull

__all__ = ["RequestBody", "BodyClock", "SpoolFull", "NO_BODY", "BODY_RATE_WINDOW"]

# The window a body's arrival rate is measured over (--min-body-rate).
BODY_RATE_WINDOW = 20.0


class BodyClock:
    """When a body being received must next show progress, and whether it
    has: a byte within ``body_timeout``, at least ``min_rate`` bytes a
    second over each window (first judged once the body has had
    ``body_timeout`` seconds, over all of them; then over each window after:
    sliding, so a fast start buys no later stall), the whole body within
    ``max_seconds``. Time and the body's size come from the caller."""

    __slots__ = ("_timeout", "_max_seconds", "_min_rate", "_started", "_progress_at",
                 "_window_at", "_window_size")

    def __init__(self, now: float, body_timeout: float, max_seconds: float,
                 min_rate: int) -> None:
        self._timeout = body_timeout
        self._max_seconds = max_seconds
        self._min_rate = min_rate
        self._started = self._progress_at = self._window_at = now
        self._window_size = 0  # the body's size when its window began

    def arrived(self, now: float) -> None:
        """Bytes of the body arrived (or its head did)."""
        self._progress_at = now

    def deadline(self) -> float:
        """When the body must next have shown progress."""
        deadline = min(self._progress_at + self._timeout, self._started + self._max_seconds)
        if self._min_rate:
            deadline = min(deadline, self._rate_due())
        return deadline

    def on_time(self, now: float, size: int) -> bool:
        """At the deadline, with ``size`` bytes received: whether the body may
        go on; a window whose rate was met slides on."""
        if now >= self._progress_at + self._timeout or now >= self._started + self._max_seconds:
            return False
        due = self._rate_due()
        if self._min_rate and now >= due:
            # Judged over the window as it was due, however late the look.
            if size - self._window_size < self._min_rate * (due - self._window_at):
                return False
            self._window_at, self._window_size = due, size
        return True

    def _rate_due(self) -> float:
        return max(self._window_at + BODY_RATE_WINDOW, self._started + self._timeout)


class RequestBody:
    """Bytes in with ``write``; once ``finish`` is called, a stream to read."""

    __slots__ = ("_threshold", "_spool_dir", "_memory", "_file", "size", "_budgets",
                 "_in_memory", "_on_disk", "_reserved")

    def __init__(self, threshold: int, spool_dir: str | None = None,
                 budgets: BodyBudgets | None = None) -> None:
        self._threshold = threshold
        self._spool_dir = spool_dir
        self._memory = io.BytesIO()
        self._file: IO[bytes] | None = None
        self._budgets = budgets
        self._in_memory = 0  # bytes taken from the memory budget
        self._on_disk = 0  # bytes taken from the spool budget (reserved or written)
        self._reserved = False  # the whole announced length is taken already
        self.size = 0

    @property
    def spooled(self) -> bool:
        """True once the body went to a temporary file."""
        return self._file is not None

    def reserve(self, length: int) -> bool:
        """A body of announced ``length`` that will not fit in memory: take
        its room on disk now, so it is refused before any byte is read
        rather than half-way through; False when there is none."""
        budgets = self._budgets
        if budgets is None or length <= self._threshold:
            return True
        if not budgets.spool.take(length):
            return False
        self._on_disk, self._reserved = length, True
        return True

    def write(self, data: bytes | memoryview) -> None:
        """Keep ``data``; past the threshold (or the memory budget), move
        everything to a temporary file. SpoolFull when there is no room."""
        self.size += len(data)
        if self._file is not None:
            self._take_disk(len(data))
            self._file.write(data)
        elif self.size <= self._threshold and self._take_memory(len(data)):
            self._memory.write(data)
        else:
            self._spill(data)

    def _take_memory(self, count: int) -> bool:
        budgets = self._budgets
        if budgets is None:
            return True
        if not budgets.memory.take(count):
            return False
        self._in_memory += count
        return True

    def _take_disk(self, count: int) -> None:
        budgets = self._budgets
        if budgets is None or self._reserved:
            return
        if not budgets.spool.take(count):
            raise SpoolFull("no room in the spool for this body now")
        self._on_disk += count

    def _spill(self, data: bytes | memoryview) -> None:
        # Unlinked at once (O_TMPFILE where the system has it): nothing is
        # left behind, whatever happens to the process. (tempfile costs a
        # megabyte of modules: imported by the first body that needs it.)
        import tempfile

        budgets = self._budgets
        held = self._memory.getbuffer().nbytes
        self._take_disk(held + len(data))
        if budgets is not None and not budgets.files.take(1):
            raise SpoolFull("no descriptor left for a spool file now")
        try:
            spool = tempfile.TemporaryFile(dir=self._spool_dir)
        except BaseException:
            if budgets is not None:
                budgets.files.give(1)
            raise
        try:
            spool.write(self._memory.getbuffer())
            spool.write(data)
        except BaseException:
            self._close_file(spool)
            raise
        self._file = spool
        self._memory = io.BytesIO()
        self._give_memory()

    def _give_memory(self) -> None:
        if self._budgets is not None and self._in_memory:
            self._budgets.memory.give(self._in_memory)
        self._in_memory = 0

    def _close_file(self, spool: IO[bytes]) -> None:
        try:
            spool.close()
        except OSError:
            pass  # a failed flush of bytes being thrown away is no error (a full disk)
        if self._budgets is not None:
            self._budgets.files.give(1)

    def finish(self) -> IO[bytes]:
        """The whole body as a stream positioned at its start (for ``wsgi.input``)."""
        stream: IO[bytes] = self._file if self._file is not None else self._memory
        stream.seek(0)
        return stream

    def close(self) -> None:
        """Release the memory or the temporary file, and the body's budgets;
        never raises (closing a connection must close its socket)."""
        if self._file is not None:
            self._close_file(self._file)
            self._file = None
        self._memory = io.BytesIO()
        self._give_memory()
        if self._budgets is not None and self._on_disk:
            self._budgets.spool.give(self._on_disk)
        self._on_disk, self._reserved = 0, False


class _NoBody:
    """``wsgi.input`` of a request without a body: always at its end.
    Read-only and stateless, so one serves every such request."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> _NoBody:
        return self

    def __next__(self) -> bytes:
        raise StopIteration

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        return None


NO_BODY: IO[bytes] = _NoBody()  # type: ignore[assignment]
