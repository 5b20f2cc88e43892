"""What one HTTP/2 connection has framed and the socket has yet to take.

Owns the framed bytes waiting for the socket (written in one go, so that
many small responses cost one TLS record, not one each), when they last
moved, whether a stream's thread has asked the poller's side to look, and
the applications asleep until output moves. Knows no frames or h2: the
connection frames, this sends.
"""

from __future__ import annotations

import threading
from collections import deque

from .clock import Clock
from .drive import STEP_READ, STEP_READ_WRITE, STEP_WRITE, Step
from .errors import ClientDisconnected
from .transport import Transport

__all__ = ["SendQueue", "OUTPUT_LOW", "OUTPUT_LIMIT"]

# DATA is framed while less than this waits for the socket; beyond
# OUTPUT_LIMIT unsent (the client reads nothing, while sending frames that
# want answers) nothing more is read from it until it reads.
OUTPUT_LOW = 128 * 1024
OUTPUT_LIMIT = 1 << 20


class SendQueue:
    """Framed bytes on their way to the socket; every method but ``sleep``'s
    wakers is called with the connection's io_lock held (``lock``)."""

    def __init__(self, transport: Transport, clock: Clock, lock: threading.Lock) -> None:
        self._transport = transport
        self._clock = clock
        self._out: deque[memoryview] = deque()
        self.waiting_bytes = 0
        self.progress_at = clock.monotonic()  # when bytes last left
        self.sent = 0
        # An application's thread queued output and asked the poller's side
        # to frame and send it; more queued before that turn rides along.
        self.flush_asked = False
        self._waiters = 0  # application threads asleep on _moved
        self._moved = threading.Condition(lock)  # output left, or a stream ended

    def __bool__(self) -> bool:
        """True while framed bytes wait for the socket."""
        return bool(self._out)

    def add(self, data: bytes) -> None:
        if data:
            self._out.append(memoryview(data))
            self.waiting_bytes += len(data)

    def ask_poller(self) -> bool:
        """From a thread not the poller's: something was queued (a head,
        bytes, the end, a reset) that only the poller's side frames and
        writes, so that the responses of all the streams that ran in one
        turn go out in one write (one TLS record and one system call, not
        one a stream). True when the poller's side must be asked to look:
        once until its next turn."""
        if self.flush_asked:
            return False
        self.flush_asked = True
        return True

    def flush(self) -> bool:
        """Send what the socket takes; False when the client went away."""
        out = self._out
        sent_any = False
        if len(out) > 1:
            # One write for what every stream framed (each TLS write is a
            # record and a system call); the queue is bounded (OUTPUT_LOW
            # of DATA, what h2 answers besides).
            joined = memoryview(b"".join(out))
            out.clear()
            out.append(joined)
        try:
            while out:
                item = out[0]
                sent = self._transport.send(item)
                if not sent:
                    break
                sent_any = True
                self.sent += sent
                self.waiting_bytes -= sent
                if sent == len(item):
                    out.popleft()
                else:
                    out[0] = item[sent:]
        except ClientDisconnected:
            self.clear()
            return False
        finally:
            if sent_any:
                self.progress_at = self._clock.monotonic()
        return True

    def clear(self) -> None:
        self._out.clear()
        self.waiting_bytes = 0

    @property
    def over_limit(self) -> bool:
        """The client reads nothing: read nothing of it until it does."""
        return self.waiting_bytes > OUTPUT_LIMIT

    def interest(self) -> Step:
        if self.waiting_bytes > OUTPUT_LIMIT:
            return STEP_WRITE
        return STEP_READ_WRITE if self._out else STEP_READ

    def moved(self) -> None:
        """Output left or a stream ended: wake the applications asleep."""
        if self._waiters:
            self._moved.notify_all()

    def sleep(self, seconds: float) -> None:
        """An application's thread sleeps until output moves, ``seconds`` at most."""
        self._waiters += 1
        try:
            self._moved.wait(seconds)
        finally:
            self._waiters -= 1
