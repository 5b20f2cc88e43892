"""The one-shot readiness poller that every worker thread waits on.

Owns the epoll set (or a selector where there is no epoll) and the wake-up
pipe that ends every wait at shutdown. Knows descriptors, not connections
or HTTP.
"""

from __future__ import annotations

import os
import select
import threading

__all__ = ["Poller"]


class Poller:
    """A one-shot readiness poller shared by all worker threads.

    A registered descriptor fires once, to one waiting thread, and stays
    silent until ``rearm``: so no two workers ever serve one connection.
    epoll gives exactly this on Linux; elsewhere a lock lets one thread at a
    time select, and unregistering on delivery makes it one-shot.
    """

    def __init__(self) -> None:
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._epoll: select.epoll | None = None
        if hasattr(select, "epoll"):
            self._epoll = select.epoll()
            self._oneshot = select.EPOLLIN | select.EPOLLONESHOT | select.EPOLLRDHUP
            # Level-triggered and never disarmed: once written, wakes every waiter.
            self._epoll.register(self._wake_read, select.EPOLLIN)
        else:  # pragma: no cover - exercised on non-Linux systems
            import selectors

            self._selector = selectors.DefaultSelector()
            self._selector.register(self._wake_read, selectors.EVENT_READ)
            self._select_lock = threading.Lock()

    def register(self, fd: int) -> None:
        """Watch ``fd`` for one readable event."""
        if self._epoll is not None:
            self._epoll.register(fd, self._oneshot)
        else:  # pragma: no cover
            import selectors

            self._selector.register(fd, selectors.EVENT_READ)
            self._nudge()

    def rearm(self, fd: int) -> None:
        """Watch ``fd`` again after its event was delivered."""
        if self._epoll is not None:
            self._epoll.modify(fd, self._oneshot)
        else:  # pragma: no cover
            self.register(fd)

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd`` (before it is closed)."""
        try:
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:  # pragma: no cover
                self._selector.unregister(fd)
        except (KeyError, OSError, ValueError):
            pass

    def wait(self, timeout: float) -> int | None:
        """The next ready descriptor, or None on timeout or wake-up."""
        if self._epoll is not None:
            events = self._epoll.poll(timeout, 1)
            if events and events[0][0] != self._wake_read:
                return events[0][0]
            return None
        with self._select_lock:  # pragma: no cover
            for key, _ in self._selector.select(timeout):
                if key.fd == self._wake_read:
                    self._drain_wakeups()
                    continue
                self._selector.unregister(key.fd)
                return key.fd
        return None  # pragma: no cover

    def wake_all(self) -> None:
        """Wake every waiting thread for good (shutdown)."""
        os.write(self._wake_write, b"x")

    def _nudge(self) -> None:  # pragma: no cover
        try:
            os.write(self._wake_write, b".")
        except BlockingIOError:
            pass

    def _drain_wakeups(self) -> None:  # pragma: no cover
        try:
            while os.read(self._wake_read, 4096) == b"." * 4096:
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Release the poller's descriptors."""
        if self._epoll is not None:
            self._epoll.close()
        else:  # pragma: no cover
            self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
