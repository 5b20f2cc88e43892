"""Response bytes on their way to one HTTP/1.1 client.

Owns the sending: bytes go out at once while the socket takes them and wait
in the response's ``OutputQueue`` (outqueue.py, the queue HTTP/2's streams
use too) beyond that. While an application still produces, what waits in
memory is bounded; past that bound the rest goes to the queue's unlinked
spool file (bounded per response and by a budget shared across
connections), so the application's thread is released however slowly its
client reads; only past both does the thread wait for the client
(backpressure). What is left once the application is done (bytes it made,
the spool, the rest of a file) is finished later by the poller without
holding a thread, with sendfile where the transport can. Also owns how fast
a client must read: a minimum rate over a sliding window. Knows the
transport and a clock, nothing of HTTP.
"""

from __future__ import annotations

import logging
import os

from .clock import Clock
from .errors import ClientDisconnected
from .outqueue import FileEnded, FileRange, OutputQueue, SpoolSettings
from .transport import Transport

__all__ = ["ResponseOutput", "RATE_WINDOW"]

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
        self._min_rate = min_rate
        # What waits (memory, then the spool, file ranges): the queue both
        # protocols use; its deque is looked at directly where every request
        # passes (is anything queued?).
        self._queue = OutputQueue(high_water, spool)
        self._items = self._queue.items
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
        return bool(self._items)

    def write(self, data: bytes, wait: bool = True) -> None:
        """Send ``data`` or queue what the socket does not take now.

        ``wait``: the application is still producing, so keep the queue
        bounded (the spool, then waiting for the client). Bytes already made
        in full (a list the application returned) are queued in memory
        without waiting.
        """
        if not data:
            return
        if not self._items:
            sent = self._transport.send(data)
            self.sent += sent
            if sent == len(data):
                return
            view = memoryview(data)[sent:]
        else:
            view = memoryview(data)
        queue = self._queue
        queue.add(view, spill=wait)
        if wait and queue.in_memory > self._high_water:
            self.drain(self._low_water)

    def send_file(self, fd: int, offset: int, count: int) -> None:
        """Send ``count`` bytes of a file from ``offset``: what the socket takes
        now goes at once (sendfile where the transport can); the rest is left,
        on a duplicate descriptor, so the application may close its file."""
        if not self._items and self._transport.can_sendfile:
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
            self._queue.add_file(fd, offset, count)
            if not self._transport.can_sendfile:
                self.flush()

    def drain(self, target: int = 0) -> None:
        """Block until at most ``target`` bytes wait in memory (and, for 0, no
        file either); ClientDisconnected when the client stops reading."""
        self.waiting = True
        queue = self._queue
        try:
            while queue.in_memory > target or (target == 0 and self._items):
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
        items = self._items
        sent_any = False
        while items:
            item = items[0]
            if type(item) is FileRange:
                sent = self._send_file_range(item)
            else:
                assert type(item) is memoryview
                sent = self._transport.send(item)
                self._queue.consume(sent)
            if not sent:
                break
            self.sent += sent
            sent_any = True
        if sent_any:
            self.progress_at = self._clock.monotonic()
        return not items

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
        """Send from the file range in front: sendfile, or read (TLS) with
        what the socket does not take put back in front, in memory."""
        queue = self._queue
        if self._transport.can_sendfile:
            sent = self._transport.sendfile(item.fd, item.offset, item.count)
            if not sent and _file_ended(item.fd, item.offset):
                raise ClientDisconnected("the file ended before its announced length")
            queue.consume(sent)
            return sent
        try:
            data = queue.take(_FILE_BLOCK)
        except FileEnded as error:
            raise ClientDisconnected(str(error)) from None
        sent = self._transport.send(data)
        if sent < len(data):
            queue.push_front(memoryview(data)[sent:])
        return sent

    def discard(self) -> None:
        """Drop whatever is still queued (the connection is going away)."""
        self._queue.clear()


def _file_ended(fd: int, offset: int) -> bool:
    """sendfile sent nothing: the socket is full, or the file is shorter than promised."""
    try:
        return os.fstat(fd).st_size <= offset
    except OSError:
        return True
