"""The one-shot readiness poller the leading worker thread waits on.

Owns the epoll set (or a selector where there is no epoll) and the wake-up
pipe that ends a wait early. A descriptor is armed for reading, for
writing or for either (``READ``, ``WRITE``, ``BOTH``); it fires once and
stays silent until armed again, so no two threads ever act on one
connection's event. Knows descriptors, not
connections or HTTP.
"""

from __future__ import annotations

import os
import select
import selectors
import threading

__all__ = ["Poller", "EpollPoller", "SelectorPoller", "make_poller", "READ", "WRITE", "BOTH"]

# What a descriptor is armed for.
READ = 1
WRITE = 2
BOTH = READ | WRITE


class Poller:
    """What the server needs from a poller; see the module docstring."""

    def register(self, fd: int, interest: int = READ) -> None:
        """Start watching ``fd`` for one event of ``interest``."""
        raise NotImplementedError

    def rearm(self, fd: int, interest: int = READ) -> None:
        """Watch ``fd`` again, after its event was delivered, or for another
        interest before it was."""
        raise NotImplementedError

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd`` (before it is closed); quiet if it was not watched."""
        raise NotImplementedError

    def wait(self, timeout: float) -> int | None:
        """The next ready descriptor, or None on timeout or wake-up."""
        raise NotImplementedError

    def wake(self) -> None:
        """End the current wait early (shutdown, or a descriptor to add)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the poller's descriptors."""
        raise NotImplementedError


class _WakePipe:
    """A pipe whose read end, once written to, makes a wait return."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def poke(self) -> None:
        try:
            os.write(self.write_fd, b".")
        except BlockingIOError:
            pass  # full: a wake-up is pending anyway

    def drain(self) -> None:
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


class EpollPoller(Poller):
    """epoll with EPOLLONESHOT: the kernel gives the one-shot guarantee."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wake = _WakePipe()
        self._epoll.register(self._wake.read_fd, select.EPOLLIN)
        read = select.EPOLLIN | select.EPOLLONESHOT | select.EPOLLRDHUP
        write = select.EPOLLOUT | select.EPOLLONESHOT
        self._masks = {READ: read, WRITE: write, BOTH: read | write}

    def register(self, fd: int, interest: int = READ) -> None:
        """Start watching ``fd`` for one event."""
        self._epoll.register(fd, self._masks[interest])

    def rearm(self, fd: int, interest: int = READ) -> None:
        """Watch ``fd`` again."""
        self._epoll.modify(fd, self._masks[interest])

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``."""
        try:
            self._epoll.unregister(fd)
        except (KeyError, OSError, ValueError):
            pass

    def wait(self, timeout: float) -> int | None:
        """The next ready descriptor, or None."""
        events = self._epoll.poll(timeout, 1)
        if not events:
            return None
        fd = events[0][0]
        if fd == self._wake.read_fd:
            self._wake.drain()
            return None
        return fd

    def wake(self) -> None:
        """End the current wait early."""
        self._wake.poke()

    def close(self) -> None:
        """Release the epoll set and the pipe."""
        self._epoll.close()
        self._wake.close()


class SelectorPoller(Poller):
    """A selector (poll or select) made one-shot: a descriptor leaves the set
    when its event is delivered. Arming from another thread wakes the wait,
    so the new descriptor is watched at once."""

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        self._selector = selector or selectors.DefaultSelector()
        self._wake = _WakePipe()
        self._selector.register(self._wake.read_fd, selectors.EVENT_READ)
        self._lock = threading.Lock()  # the selector's map is not thread-safe

    def register(self, fd: int, interest: int = READ) -> None:
        """Start watching ``fd`` for one event."""
        events = (selectors.EVENT_READ if interest & READ else 0) | \
            (selectors.EVENT_WRITE if interest & WRITE else 0)
        with self._lock:
            try:
                self._selector.register(fd, events)
            except KeyError:  # armed already: change what for
                self._selector.modify(fd, events)
        self._wake.poke()

    def rearm(self, fd: int, interest: int = READ) -> None:
        """Watch ``fd`` again."""
        self.register(fd, interest)

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``."""
        with self._lock:
            try:
                self._selector.unregister(fd)
            except (KeyError, OSError, ValueError):
                pass

    def wait(self, timeout: float) -> int | None:
        """The next ready descriptor, or None."""
        for key, _ in self._selector.select(timeout):
            if key.fd == self._wake.read_fd:
                self._wake.drain()
                continue
            self.unregister(key.fd)  # one-shot
            return key.fd
        return None

    def wake(self) -> None:
        """End the current wait early."""
        self._wake.poke()

    def close(self) -> None:
        """Release the selector and the pipe."""
        self._selector.close()
        self._wake.close()


def make_poller() -> Poller:
    """epoll where the system has it, else the best selector."""
    if hasattr(select, "epoll"):
        return EpollPoller()
    return SelectorPoller()  # pragma: no cover - other systems
