"""Budgets shared by every connection of a server: what is taken and given
back, never more than the limit in all.

Owns the numbers and their locks: bytes (request bodies in memory, bytes
spooled to disk by bodies and responses) and spool files, counted with the
connections against the descriptors the process has for clients. Knows
nothing of files or sockets: the body and the output take and give.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Budget", "BodyBudgets", "FileCount"]


class Budget:
    """``limit`` bytes, taken and given back from any thread; with a
    ``parent``, each byte taken here is taken there too (a connection's
    share of the server's budget)."""

    __slots__ = ("limit", "_used", "_lock", "_parent")

    def __init__(self, limit: int, parent: Budget | None = None) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()
        self._parent = parent

    @property
    def used(self) -> int:
        """Bytes taken and not given back."""
        return self._used

    def take(self, count: int) -> bool:
        """Take ``count`` bytes if they fit here and in the parent; False
        (nothing taken) if not."""
        with self._lock:
            if self._used + count > self.limit:
                return False
            if self._parent is not None and not self._parent.take(count):
                return False
            self._used += count
            return True

    def give(self, count: int) -> None:
        """Give back ``count`` bytes taken earlier."""
        with self._lock:
            self._used -= count
        if self._parent is not None:
            self._parent.give(count)


class FileCount:
    """Spool files open across the server, counted beside its connections:
    together they may not pass ``limit`` (the descriptors the process has
    for clients), so spool files never eat the descriptors kept for the
    application. ``connections`` says how many are open now."""

    __slots__ = ("limit", "_connections", "_open", "_lock")

    def __init__(self, limit: int, connections: Callable[[], int] = lambda: 0) -> None:
        self.limit = limit
        self._connections = connections
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        """Spool files open now."""
        return self._open

    def take(self, count: int = 1) -> bool:
        """Open ``count`` more files if connections and files stay within the limit."""
        with self._lock:
            if self._connections() + self._open + count > self.limit:
                return False
            self._open += count
            return True

    def give(self, count: int = 1) -> None:
        """``count`` files were closed."""
        with self._lock:
            self._open -= count


@dataclass(frozen=True)
class BodyBudgets:
    """What request bodies share across a server: bytes in memory, bytes
    spooled (shared with responses), and spool files (descriptors)."""

    memory: Budget
    spool: Budget
    files: FileCount
