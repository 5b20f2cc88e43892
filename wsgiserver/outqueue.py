"""What one response has yet to send, for either protocol.

Owns the queue between an application and its client: bytes in memory up to
a per-response bound (and, optionally, within a share of memory its
connection's responses hold together), past that an unlinked spool file
within the server's spool budget, and ranges of files the application handed
over; taking its front (bytes up to N for an HTTP/2 DATA frame, or the front
piece as it is for a socket's send or sendfile), closing the spool and
discarding. Knows no socket, frame or deadline: HTTP/1.1's ``ResponseOutput``
and an HTTP/2 stream's framer (``Http2Stream.output``) decide when to take.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import IO

from . import system
from .budget import Budget, FileCount

__all__ = ["OutputQueue", "FileRange", "SpoolSettings", "Share", "FileEnded"]

log = logging.getLogger("wsgiserver")


class FileEnded(Exception):
    """A file handed over ended before the length its response announced."""


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


class Share:
    """Bytes in memory across one connection's responses, and their bound."""

    __slots__ = ("used", "limit")

    def __init__(self, limit: int) -> None:
        self.used = 0
        self.limit = limit

    @property
    def over(self) -> bool:
        return self.used > self.limit


class OutputQueue:
    """One response's bytes to send, front first.

    ``high_water``: what it keeps in memory before it spools; ``share``: the
    memory of its connection's responses, also a bound (None: none);
    ``spool``: where bytes past them go (None: nowhere, they stay in memory
    and the caller makes its application wait). The spool file is open
    exactly while some of its bytes wait to be sent, and holds at most the
    response's share of the spool (``per_response``), sent bytes included:
    they stay on disk until it closes, so they stay in the server's budget
    until then too (``--max-spool-bytes`` bounds the disk, not only what
    waits).
    """

    __slots__ = ("_queue", "in_memory", "_high_water", "_share", "_spool_settings",
                 "_spool", "_spool_size", "_spooled")

    def __init__(self, high_water: int, spool: SpoolSettings | None,
                 share: Share | None = None) -> None:
        self._queue: deque[memoryview | FileRange] = deque()
        self.in_memory = 0  # bytes in memory (file ranges are not)
        self._high_water = high_water
        self._share = share
        self._spool_settings = spool
        self._spool: IO[bytes] | None = None  # the spool file, while bytes of it wait
        self._spool_size = 0  # bytes written to it (on disk, and in the budget, until it closes)
        self._spooled = 0  # of those, bytes not yet taken

    def __bool__(self) -> bool:
        """True while something is still to be sent."""
        return bool(self._queue)

    @property
    def items(self) -> deque[memoryview | FileRange]:
        """What waits, front first (to look at: ``add``, ``take`` and
        ``consume`` change it). The same deque for the queue's life."""
        return self._queue

    # -- adding ------------------------------------------------------------

    def add(self, data: bytes | memoryview, spill: bool = True) -> None:
        """Queue ``data``: in memory while within the bounds, past them (or
        once the queue ends in the spool) in the spool file while it has
        room, else in memory all the same. ``spill`` False: bytes made in
        full stay in memory, where they are already."""
        size = len(data)
        if spill:
            share = self._share
            if (self.in_memory + size > self._high_water or self._spooling or
                    share is not None and share.used + size > share.limit) and \
                    self._spill(data):
                return
        self._queue.append(data if type(data) is memoryview else memoryview(data))
        self.in_memory += size
        if self._share is not None:
            self._share.used += size

    def add_file(self, fd: int, offset: int, count: int) -> None:
        """Queue ``count`` bytes of the file ``fd`` from ``offset`` (the
        descriptor is duplicated: the caller keeps its own)."""
        self._queue.append(FileRange(os.dup(fd), offset, count))

    def push_front(self, data: memoryview) -> None:
        """Put bytes read off the front but not sent back in front, in memory."""
        self._queue.appendleft(data)
        self.in_memory += len(data)
        if self._share is not None:
            self._share.used += len(data)

    @property
    def _spooling(self) -> bool:
        """The queue ends in the spool: new bytes go after it, there."""
        queue = self._queue
        return bool(queue) and type(queue[-1]) is FileRange and queue[-1].spooled

    def _spill(self, data: bytes | memoryview) -> bool:
        """Append ``data`` to the spool file; False (nothing queued) when this
        response's share of the spool or the budget across connections would
        be passed, or the file cannot be opened or written."""
        settings = self._spool_settings
        size = len(data)
        # The share bounds the file, not only what of it waits: bytes sent
        # stay on disk until the file closes (once none of it waits).
        if settings is None or self._spool_size + size > settings.per_response:
            return False
        if not settings.budget.take(size):
            return False
        spool = self._spool if self._spool is not None else self._open_spool(settings)
        if spool is None:
            settings.budget.give(size)
            return False
        offset = self._spool_size
        last = self._queue[-1] if self._queue else None
        extend = type(last) is FileRange and last.spooled and last.offset + last.count == offset
        fd = -1
        try:
            if not extend:
                fd = os.dup(spool.fileno())  # before the write: nothing to undo if it fails
            _write_at(spool, offset, data)
        except OSError:
            if fd >= 0:
                os.close(fd)
            settings.budget.give(size)
            if not self._spooled:
                self._close_spool()  # nothing of it waits
            return False  # a full disk: the caller waits for the client instead
        self._spool_size = offset + size
        self._spooled += size
        if extend:
            assert type(last) is FileRange
            last.count += size  # contiguous with the range still queued
        else:
            self._queue.append(FileRange(fd, offset, size, spooled=True))
        return True

    def _open_spool(self, settings: SpoolSettings) -> IO[bytes] | None:
        # Unlinked at once; tempfile (a megabyte of modules) only when a
        # response first needs it.
        import tempfile

        files = settings.files
        if files is not None and not files.take(1):
            return None  # no descriptor to spare: wait for the client
        try:
            spool = tempfile.TemporaryFile(dir=settings.directory, buffering=0)
        except OSError as error:
            if files is not None:
                files.give(1)
            log.error("a response could not be spooled: %s", error)
            return None
        self._spool = spool
        return spool

    # -- taking ------------------------------------------------------------

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes off the front (b"" when nothing is queued), a
        copy; FileEnded when a file is shorter than it was said to be."""
        queue = self._queue
        if not queue:
            return b""
        item = queue[0]
        if type(item) is FileRange:
            try:
                piece = system.pread(item.fd, min(size, item.count), item.offset)
            except OSError:
                piece = b""
            if not piece:
                raise FileEnded("the file ended before its announced length")
            self.consume(len(piece))
            return piece
        assert type(item) is memoryview
        piece = bytes(item[:size])
        self.consume(len(piece))
        return piece

    def consume(self, count: int) -> None:
        """``count`` bytes of the front piece left (a socket took them from
        the memoryview, or sendfile from the file range)."""
        queue = self._queue
        item = queue[0]
        if type(item) is FileRange:
            item.offset += count
            item.count -= count
            if not item.count:
                os.close(item.fd)
                queue.popleft()
            if item.spooled and count:
                self._spooled -= count
                if not self._spooled:
                    self._close_spool()  # none of it waits: off the disk and the budget
            return
        assert type(item) is memoryview
        if count == len(item):
            queue.popleft()
        else:
            queue[0] = item[count:]
        self.in_memory -= count
        if self._share is not None:
            self._share.used -= count

    # -- ending ------------------------------------------------------------

    def clear(self) -> None:
        """Drop everything queued and the spool file, and give back what they
        held (idempotent)."""
        for item in self._queue:
            if type(item) is FileRange:
                os.close(item.fd)
        self._queue.clear()
        if self._share is not None:
            self._share.used -= self.in_memory
        self.in_memory = 0
        self._spooled = 0
        self._close_spool()

    def _close_spool(self) -> None:
        """Close the spool file once nothing queued holds a descriptor of
        it: its bytes leave the disk, and go back to the budget."""
        spool = self._spool
        if spool is None:
            return
        settings = self._spool_settings
        assert settings is not None
        size, self._spool, self._spool_size = self._spool_size, None, 0
        try:
            spool.close()
        except OSError:
            pass
        settings.budget.give(size)
        if settings.files is not None:
            settings.files.give(1)


def _write_at(spool: IO[bytes], offset: int, data: bytes | memoryview) -> None:
    """All of ``data`` at ``offset`` (an unbuffered file may write short); an
    interrupted write is cut back off, so nothing half-written follows the
    bytes queued and the next write lands where they end."""
    view = memoryview(data)
    try:
        spool.seek(offset)
        while view:
            view = view[spool.write(view):]
    except OSError:
        try:
            spool.truncate(offset)
        except OSError:
            pass
        raise
