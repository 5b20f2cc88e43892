"""The one-shot readiness poller the leading worker thread waits on.

Owns the epoll set (or poll, or select: ``make_poller`` chooses, as
``--poller`` says or as the system allows) and the wake-up pipe that ends a
wait early. A descriptor is armed for reading, for
writing or for either (``READ``, ``WRITE``, ``BOTH``); it fires once and
stays silent until armed again, so no two threads ever act on one
connection's event. Knows descriptors, not
connections or HTTP.
"""

from __future__ import annotations

import select
import selectors
import threading
from collections import deque

from . import system
from .system import Waker

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

    def unregister(self, fd: int, closed: bool = False) -> None:
        """Stop watching ``fd``; quiet if it was not watched. ``closed``: the
        descriptor was closed already (epoll forgot it then, by itself)."""
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

    name = "poller"
    # How many descriptors it can watch, and below which value (select's
    # FD_SETSIZE); None: as many as the process may open.
    capacity: int | None = None

    def accepts(self, fd: int) -> bool:
        """Whether ``fd`` can be watched at all (select: below its limit)."""
        return self.capacity is None or fd < self.capacity


class EpollPoller(Poller):
    """epoll with EPOLLONESHOT: the kernel gives the one-shot guarantee."""

    name = "epoll"

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wake = Waker()
        self._epoll.register(self._wake.fd, select.EPOLLIN)
        read = select.EPOLLIN | select.EPOLLONESHOT | select.EPOLLRDHUP
        write = select.EPOLLOUT | select.EPOLLONESHOT
        self._masks = {READ: read, WRITE: write, BOTH: read | write}

    def register(self, fd: int, interest: int = READ) -> None:
        """Start watching ``fd`` for one event."""
        self._epoll.register(fd, self._masks[interest])

    def rearm(self, fd: int, interest: int = READ) -> None:
        """Watch ``fd`` again."""
        self._epoll.modify(fd, self._masks[interest])

    def unregister(self, fd: int, closed: bool = False) -> None:
        """Stop watching ``fd``."""
        if closed:
            return  # the close removed it (no socket of ours is ever duplicated)
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
        if fd == self._wake.fd:
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
    when its event is taken from the kernel. Every descriptor one select()
    found ready is queued and handed out in turn before the next call, so
    none starves (select lists them by number: the lowest would otherwise
    win every time) and one call serves several events. Arming while another
    thread waits wakes that wait, so the new descriptor is watched at once;
    the leader arming before its own next wait (the usual case: it served the
    request itself) costs no wake-up, since a wait reads the set as it begins."""

    def __init__(self, selector: selectors.BaseSelector | None = None, name: str = "poll",
                 capacity: int | None = None) -> None:
        self._selector = selector or selectors.DefaultSelector()
        self.name = name
        self.capacity = capacity
        self._wake = Waker()
        self._selector.register(self._wake.fd, selectors.EVENT_READ)
        self._lock = threading.Lock()  # the selector's map is not thread-safe
        # Threads inside select() (the leader, one at a time). Counted and read
        # under the lock: an arming that sees none came before the wait began,
        # and the wait reads the set it left.
        self._waiting = 0
        self._ready: deque[int] = deque()  # found ready, out of the set, not yet handed out

    def register(self, fd: int, interest: int = READ) -> None:
        """Start watching ``fd`` for one event."""
        events = (selectors.EVENT_READ if interest & READ else 0) | \
            (selectors.EVENT_WRITE if interest & WRITE else 0)
        with self._lock:
            try:
                self._selector.register(fd, events)
            except KeyError:  # armed already: change what for
                self._selector.modify(fd, events)
            waiting = self._waiting
        if waiting:
            self._wake.poke()

    def rearm(self, fd: int, interest: int = READ) -> None:
        """Watch ``fd`` again."""
        self.register(fd, interest)

    def unregister(self, fd: int, closed: bool = False) -> None:
        """Stop watching ``fd`` (an event of it found but not handed out is dropped)."""
        with self._lock:
            try:
                self._selector.unregister(fd)
            except (KeyError, OSError, ValueError):
                pass
            if fd in self._ready:
                self._ready.remove(fd)

    def wait(self, timeout: float) -> int | None:
        """The next ready descriptor, or None."""
        with self._lock:
            if self._ready:
                return self._ready.popleft()
            self._waiting += 1
        found: list[tuple[selectors.SelectorKey, int]] = []
        try:
            found = self._selector.select(timeout)
        finally:
            with self._lock:
                self._waiting -= 1
                for key, _ in found:
                    if key.fd == self._wake.fd:
                        self._wake.drain()
                        continue
                    try:
                        self._selector.unregister(key.fd)  # one-shot
                    except (KeyError, ValueError):
                        continue  # unregistered while select() ran: its event is stale
                    self._ready.append(key.fd)
                fd = self._ready.popleft() if self._ready else None
        return fd

    def accepts(self, fd: int) -> bool:
        """select takes descriptors below its limit (POSIX), or that many
        sockets at most (Windows); poll takes any."""
        if self.capacity is None:
            return True
        if system.WINDOWS:
            return len(self._selector.get_map()) < self.capacity
        return fd < self.capacity

    def wake(self) -> None:
        """End the current wait early."""
        self._wake.poke()

    def close(self) -> None:
        """Release the selector and the pipe."""
        self._selector.close()
        self._wake.close()


POLLERS = ("auto", "epoll", "poll", "select")


def make_poller(kind: str = "auto") -> Poller:
    """The poller ``kind`` names; ``auto``: epoll on Linux, poll on macOS and
    the BSDs, select on Windows. ValueError, in one line, for one this
    system does not have."""
    if kind == "auto":
        kind = "epoll" if system.HAS_EPOLL else "poll" if system.HAS_POLL else "select"
    if kind == "epoll":
        if not system.HAS_EPOLL:
            raise ValueError(system.unavailable("--poller epoll", "epoll") +
                             "; use auto, poll or select")
        return EpollPoller()
    if kind == "poll":
        if not system.HAS_POLL:
            raise ValueError(system.unavailable("--poller poll", "poll()") +
                             "; use auto or select")
        return SelectorPoller(selectors.PollSelector(), "poll")
    if kind == "select":
        return SelectorPoller(selectors.SelectSelector(), "select", system.SELECT_LIMIT)
    raise ValueError(f"--poller must be one of {', '.join(POLLERS)}, not {kind!r}")
