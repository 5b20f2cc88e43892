"""Response bytes on their way to one client.

Owns the queue between the application's thread and the socket: bytes go
out at once while the socket takes them and wait in the queue beyond that.
While an application still produces, what waits in memory is bounded; past
that bound the rest goes to an unlinked spool file (bounded per response and
by a budget shared across connections), so the application's thread is
released however slowly its client reads; only past both does the thread
wait for the client (backpressure). What is left once the application is
done (bytes it made, the spool, the rest of a file) is finished later by the
poller without holding a thread. Also owns how fast a client must read: a
minimum rate over a sliding window. Knows the transport and a clock,
nothing of HTTP.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import IO

from . import system
from .budget import Budget, FileCount
from .clock import Clock
from .errors import ClientDisconnected
from .transport import Transport

__all__ = ["ResponseOutput", "FileRange", "SpoolSettings", "RATE_WINDOW"]

log = logging.getLogger("wsgiserver")

# The window a client's reading rate is measured over (min_response_rate).
RATE_WINDOW = 20.0

# Reads of a file that cannot go out with sendfile (TLS): one block at a time.
_FILE_BLOCK = 256 * 1024
# A file's thread stays with a client that reads at speed: while the socket
# makes room within _KEEP_UP seconds, for at most _KEEP_UP_TOTAL in all; then
# the rest is the poller's. A round through the poller for every socket's
# worth of a fast download cost 14% of a 10 MiB file's throughput; a slow
# reader still holds the thread 10 ms at most.
_KEEP_UP = 0.01
_KEEP_UP_TOTAL = 0.1


class FileRange:
    """The rest of a file to send: a descriptor of our own, where, how much.
    ``spooled``: the bytes are ours (the spool), counted in the budget."""

    __slots__ = ("fd", "offset", "count", "spooled")

    def __init__(self, fd: int, offset: int, count: int, spooled: bool = False) -> None:
        self.fd = fd
        self.offset = offset
        self.count = count
        self.spooled = spooled


class SpoolSettings:
    """Where and how much of a response may wait on disk for a slow client:
    ``per_response`` bytes each, within ``budget`` across connections, each
    spool file a descriptor counted in ``files``."""

    __slots__ = ("directory", "per_response", "budget", "files")

    def __init__(self, directory: str | None, per_response: int, budget: Budget,
                 files: FileCount | None = None) -> None:
        self.directory = directory
        self.per_response = per_response
        self.budget = budget
        self.files = files


class ResponseOutput:
    """One connection's outgoing bytes; see the module docstring.

    ``high_water`` bounds what waits in memory while the application still
    produces: past it, ``write`` blocks until the client has taken the queue
    down to ``low_water``, or raises ClientDisconnected once the client took
    nothing for ``write_timeout`` seconds.
    """

    def __init__(self, transport: Transport, clock: Clock, *, write_timeout: float,
                 high_water: int, low_water: int, spool: SpoolSettings | None = None,
                 min_rate: int = 0) -> None:
        self._transport = transport
        self._clock = clock
        self._write_timeout = write_timeout
        self._high_water = high_water
        self._low_water = low_water
        self._spool_settings = spool
        self._min_rate = min_rate
        self._queue: deque[memoryview | FileRange] = deque()
        self._queued = 0  # bytes in memory (file ranges are not)
        self._spool: IO[bytes] | None = None  # this response's spool file, while in use
        self._spool_size = 0  # bytes written to it
        self._spooled = 0  # of those, bytes not yet sent (taken from the budget)
        self.progress_at = clock.monotonic()  # when bytes last left
        self.sent = 0  # bytes the socket took (for the metrics)
        # The minimum rate's sliding window: when it began, and self.sent then.
        self._window_at = self.progress_at
        self._window_sent = 0
        # Set while the producing thread waits for its client (drain).
        self.waiting = False

    @property
    def pending(self) -> bool:
        """True while something is still to be sent."""
        return bool(self._queue)

    def write(self, data: bytes, wait: bool = True) -> None:
        """Send ``data`` or queue what the socket does not take now.

        ``wait``: the application is still producing, so keep the queue
        bounded by waiting for the client. Bytes already made in full (a
        list the application returned) are queued without waiting.
        """
        if not data:
            return
        if not self._queue:
            sent = self._transport.send(data)
            self.sent += sent
            if sent == len(data):
                return
            view = memoryview(data)[sent:]
        else:
            view = memoryview(data)
        if wait and (self._spooling or self._queued + len(view) > self._high_water) \
                and self._spill(view):
            return
        self._queue.append(view)
        self._queued += len(view)
        if wait and self._queued > self._high_water:
            self.drain(self._low_water)

    @property
    def _spooling(self) -> bool:
        """The queue ends in the spool: new bytes go after it, there."""
        return bool(self._queue) and type(self._queue[-1]) is FileRange \
            and self._queue[-1].spooled

    def _spill(self, view: memoryview) -> bool:
        """Append ``view`` to the spool file; False (nothing done) when the
        response's share or the budget across connections would be passed."""
        settings = self._spool_settings
        if settings is None or self._spooled + len(view) > settings.per_response:
            return False
        if not settings.budget.take(len(view)):
            return False
        try:
            spool = self._spool
            if spool is None:
                # Unlinked at once; tempfile (a megabyte of modules) only when
                # a response first needs it.
                import tempfile

                if settings.files is not None and not settings.files.take():
                    settings.budget.give(len(view))
                    return False  # no descriptor to spare: wait for the client
                try:
                    spool = self._spool = tempfile.TemporaryFile(dir=settings.directory)
                except OSError:
                    if settings.files is not None:
                        settings.files.give()
                    raise
                self._spool_size = 0
            spool.write(view)
            spool.flush()
        except OSError:
            settings.budget.give(len(view))
            return False  # a full disk: wait for the client instead
        last = self._queue[-1] if self._queue else None
        if type(last) is FileRange and last.spooled and \
                last.offset + last.count == self._spool_size:
            last.count += len(view)
        else:
            self._queue.append(FileRange(os.dup(spool.fileno()), self._spool_size, len(view),
                                         spooled=True))
        self._spool_size += len(view)
        self._spooled += len(view)
        return True

    def send_file(self, fd: int, offset: int, count: int) -> None:
        """Send ``count`` bytes of a file from ``offset``: what the socket takes
        now goes at once (sendfile where the transport can); the rest is left,
        on a duplicate descriptor, so the application may close its file."""
        if not self._queue and self._transport.can_sendfile:
            clock = self._clock
            began = clock.monotonic()
            before = self.sent
            while count:
                sent = self._transport.sendfile(fd, offset, count)
                if not sent:
                    now = clock.monotonic()
                    if now - began > _KEEP_UP_TOTAL or _file_ended(fd, offset) or \
                            not self._transport.wait_writable(now + _KEEP_UP):
                        break  # the rest is queued (a short file fails there)
                    continue
                self.sent += sent
                offset += sent
                count -= sent
            if self.sent != before:
                self.progress_at = clock.monotonic()
        if count:
            self._queue.append(FileRange(os.dup(fd), offset, count))
            if not self._transport.can_sendfile:
                self.flush()

    def drain(self, target: int = 0) -> None:
        """Block until at most ``target`` bytes wait in memory (and, for 0, no
        file either); ClientDisconnected when the client stops reading."""
        self.waiting = True
        try:
            while self._queued > target or (target == 0 and self._queue):
                if self.flush():
                    return
                if not self._transport.wait_writable(self.deadline()) and self.too_slow():
                    reason = self.slow_reason()
                    log.info("%s:%s: response cut off: %s", *self._transport.peer, reason)
                    raise ClientDisconnected(reason)
        finally:
            self.waiting = False

    def flush(self) -> bool:
        """Send what the socket takes now; True once nothing is left."""
        queue = self._queue
        sent_any = False
        while queue:
            item = queue[0]
            if type(item) is FileRange:
                before = item.count
                sent = self._send_file_range(item)
                if item.spooled and item.count != before:  # out of the file (sent, or in memory)
                    self._spooled -= before - item.count
                    self._spool_settings.budget.give(before - item.count)  # type: ignore[union-attr]
                if not item.count:
                    os.close(item.fd)
                    queue.remove(item)
            else:
                assert type(item) is memoryview
                sent = self._transport.send(item)
                if sent == len(item):
                    queue.popleft()
                else:
                    queue[0] = item[sent:]
                self._queued -= sent
            if not sent:
                break
            self.sent += sent
            sent_any = True
        if sent_any:
            self.progress_at = self._clock.monotonic()
        if not queue:
            self._close_spool()
        return not queue

    def _close_spool(self) -> None:
        if self._spool is not None:
            try:
                self._spool.close()  # what is queued of it holds descriptors of its own
            except OSError:
                pass
            self._spool = None
            files = self._spool_settings.files if self._spool_settings is not None else None
            if files is not None:
                files.give()

    # -- how fast the client reads --------------------------------------------

    def deadline(self) -> float:
        """When the client must next have shown progress: some bytes within
        the write timeout, and the minimum rate by the end of the window."""
        deadline = self.progress_at + self._write_timeout
        if self._min_rate:
            deadline = min(deadline, self._window_at + RATE_WINDOW)
        return deadline

    def too_slow(self) -> bool:
        """At the deadline: whether the client is to be cut. A window whose
        rate was met slides on (True only for a client slower than the rate,
        or silent for the write timeout)."""
        now = self._clock.monotonic()
        if now >= self.progress_at + self._write_timeout:
            return True
        due = self._window_at + RATE_WINDOW
        if self._min_rate and now >= due:
            # Judged over the window as it was due, however late the look.
            if self.sent - self._window_sent < self._min_rate * RATE_WINDOW:
                return True
            self._window_at, self._window_sent = due, self.sent
        return False

    def slow_reason(self) -> str:
        """Why too_slow() said so, for the log."""
        if self._clock.monotonic() >= self.progress_at + self._write_timeout:
            return f"the client read nothing for {self._write_timeout:g} s"
        return f"the client reads slower than {self._min_rate} bytes/s"

    def start_window(self) -> None:
        """A response begins to wait for its client: the rate is measured from now."""
        self._window_at, self._window_sent = self._clock.monotonic(), self.sent

    def _send_file_range(self, item: FileRange) -> int:
        if self._transport.can_sendfile:
            sent = self._transport.sendfile(item.fd, item.offset, item.count)
            if not sent and _file_ended(item.fd, item.offset):
                raise ClientDisconnected("the file ended before its announced length")
            item.offset += sent
            item.count -= sent
            return sent
        data = system.pread(item.fd, min(item.count, _FILE_BLOCK), item.offset)
        if not data:
            raise ClientDisconnected("the file ended before its announced length")
        item.offset += len(data)
        item.count -= len(data)
        sent = self._transport.send(data)
        if sent < len(data):
            rest = memoryview(data)[sent:]
            self._queue.appendleft(rest)
            self._queued += len(rest)
        return sent

    def discard(self) -> None:
        """Drop whatever is still queued (the connection is going away)."""
        for item in self._queue:
            if type(item) is FileRange:
                os.close(item.fd)
        self._queue.clear()
        self._queued = 0
        if self._spooled:
            self._spool_settings.budget.give(self._spooled)  # type: ignore[union-attr]
            self._spooled = 0
        self._close_spool()


def _file_ended(fd: int, offset: int) -> bool:
    """sendfile sent nothing: the socket is full, or the file is shorter than promised."""
    try:
        return os.fstat(fd).st_size <= offset
    except OSError:
        return True
