"""A budget of bytes shared by every connection of a server: what is taken
and given back, never more than the limit in all.

Owns one number and its lock. The response spool of every connection takes
from it before it writes a byte to disk, and gives back as the client takes
the bytes; a response that finds it spent waits for its client instead.
Knows nothing of files or sockets.
"""

from __future__ import annotations

import threading

__all__ = ["Budget"]


class Budget:
    """``limit`` bytes, taken and given back from any thread."""

    __slots__ = ("limit", "_used", "_lock")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Bytes taken and not given back."""
        return self._used

    def take(self, count: int) -> bool:
        """Take ``count`` bytes if they fit; False (nothing taken) if not."""
        with self._lock:
            if self._used + count > self.limit:
                return False
            self._used += count
            return True

    def give(self, count: int) -> None:
        """Give back ``count`` bytes taken earlier."""
        with self._lock:
            self._used -= count
