"""Response bytes on their way to one client.

Owns the queue between the application's thread and the socket: bytes go
out at once while the socket takes them and wait in the queue beyond that.
While an application still produces, the queue is bounded and its thread
waits for the client (backpressure); what is left once the application is
done (bytes it already made, or the rest of a file) is finished later by
the poller without holding a thread. Knows the transport and a clock,
nothing of HTTP.
"""

from __future__ import annotations

import os
from collections import deque

from . import system
from .clock import Clock
from .errors import ClientDisconnected
from .transport import Transport

__all__ = ["ResponseOutput", "FileRange"]

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
    """The rest of a file to send: a descriptor of our own, where, how much."""

    __slots__ = ("fd", "offset", "count")

    def __init__(self, fd: int, offset: int, count: int) -> None:
        self.fd = fd
        self.offset = offset
        self.count = count


class ResponseOutput:
    """One connection's outgoing bytes; see the module docstring.

    ``high_water`` bounds what waits in memory while the application still
    produces: past it, ``write`` blocks until the client has taken the queue
    down to ``low_water``, or raises ClientDisconnected once the client took
    nothing for ``write_timeout`` seconds.
    """

    def __init__(self, transport: Transport, clock: Clock, *, write_timeout: float,
                 high_water: int, low_water: int) -> None:
        self._transport = transport
        self._clock = clock
        self._write_timeout = write_timeout
        self._high_water = high_water
        self._low_water = low_water
        self._queue: deque[memoryview | FileRange] = deque()
        self._queued = 0  # bytes in memory (file ranges are not)
        self.progress_at = clock.monotonic()  # when bytes last left
        self.sent = 0  # bytes the socket took (for the metrics)

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
        self._queue.append(view)
        self._queued += len(view)
        if wait and self._queued > self._high_water:
            self.drain(self._low_water)

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
        while self._queued > target or (target == 0 and self._queue):
            if self.flush():
                return
            deadline = self.progress_at + self._write_timeout
            if not self._transport.wait_writable(deadline):
                raise ClientDisconnected("write timed out")

    def flush(self) -> bool:
        """Send what the socket takes now; True once nothing is left."""
        queue = self._queue
        sent_any = False
        while queue:
            item = queue[0]
            if type(item) is FileRange:
                sent = self._send_file_range(item)
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
        return not queue

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


def _file_ended(fd: int, offset: int) -> bool:
    """sendfile sent nothing: the socket is full, or the file is shorter than promised."""
    try:
        return os.fstat(fd).st_size <= offset
    except OSError:
        return True
