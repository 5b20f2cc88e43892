"""What one HTTP/2 stream has yet to send, whatever its windows allow now.

Owns the queue of a response's bytes: in memory (counted against the
connection's share, ``Share``), in the response's own spool file past that
share (an unlinked temporary file, within the server's spool budget), and
ranges of files the application handed over; and taking the next piece of
at most N bytes off its front for a DATA frame. Knows no frames, windows or
h2: the stream asks for pieces, the connection decides when.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import IO

from . import system
from .budget import FileCount
from .output import FileRange, SpoolSettings

__all__ = ["Share", "StreamOutput", "FileEnded"]

log = logging.getLogger("wsgiserver")


class FileEnded(Exception):
    """A file handed over ended before the length its response announced."""


class Share:
    """Bytes in memory across one connection's streams, and their bound."""

    __slots__ = ("used", "limit")

    def __init__(self, limit: int) -> None:
        self.used = 0
        self.limit = limit

    @property
    def over(self) -> bool:
        return self.used > self.limit


class StreamOutput:
    """One stream's bytes to send. ``high_water``: what this stream keeps in
    memory before it spools; ``share``: the connection's memory, also a
    bound; ``spool``: where bytes past both go (None: nowhere, they stay in
    memory and the application is made to wait)."""

    def __init__(self, share: Share, high_water: int, spool: SpoolSettings | None) -> None:
        self._share = share
        self._high_water = high_water
        self._spool_settings = spool
        self._queue: deque[memoryview | FileRange] = deque()
        self.in_memory = 0  # bytes in memory
        self._spool: IO[bytes] | None = None
        self._spool_size = 0

    def __bool__(self) -> bool:
        """True while something is still to be sent."""
        return bool(self._queue)

    def add(self, data: bytes) -> None:
        """Queue ``data``: in memory while this stream and the connection are
        within their bounds, else in the spool file when it has room."""
        share = self._share
        over = self.in_memory + len(data) > self._high_water or \
            share.used + len(data) > share.limit
        if over and self._to_spool(data):
            return
        self._queue.append(memoryview(data))
        self.in_memory += len(data)
        share.used += len(data)

    def add_file(self, fd: int, offset: int, count: int) -> None:
        """Queue ``count`` bytes of the file ``fd`` from ``offset`` (the
        descriptor is duplicated: the caller keeps its own)."""
        self._queue.append(FileRange(os.dup(fd), offset, count))

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes off the front (b"" when nothing is queued);
        FileEnded when a file is shorter than it was said to be."""
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
            item.offset += len(piece)
            item.count -= len(piece)
            if item.spooled:
                self._give_spool(len(piece))
            if not item.count:
                os.close(item.fd)
                queue.popleft()
            return piece
        assert type(item) is memoryview
        piece = bytes(item[:size])
        if len(piece) == len(item):
            queue.popleft()
        else:
            queue[0] = item[size:]
        self.in_memory -= len(piece)
        self._share.used -= len(piece)
        return piece

    def clear(self) -> None:
        """Drop everything queued and the spool file, and give back what they
        held (idempotent)."""
        for item in self._queue:
            if type(item) is FileRange:
                os.close(item.fd)
                if item.spooled:
                    self._give_spool(item.count)
        self._queue.clear()
        self._share.used -= self.in_memory
        self.in_memory = 0
        self.close_spool()

    def close_spool(self) -> None:
        """Close the spool file (once nothing queued refers to it)."""
        if self._spool is None:
            return
        try:
            self._spool.close()
        except OSError:
            pass
        self._spool = None
        files = self._spool_settings.files if self._spool_settings is not None else None
        if files is not None:
            files.give(1)

    def _to_spool(self, data: bytes) -> bool:
        spool = self._spool_settings
        if spool is None or self._spool_size + len(data) > spool.per_response:
            return False
        if not spool.budget.take(len(data)):
            return False
        if self._spool is None and not self._open_spool(spool.directory, spool.files):
            spool.budget.give(len(data))
            return False
        assert self._spool is not None
        try:
            self._spool.write(data)
        except OSError:
            spool.budget.give(len(data))
            return False
        offset, self._spool_size = self._spool_size, self._spool_size + len(data)
        last = self._queue[-1] if self._queue else None
        if type(last) is FileRange and last.spooled and last.offset + last.count == offset:
            last.count += len(data)  # contiguous with the range still queued
        else:
            self._queue.append(FileRange(os.dup(self._spool.fileno()), offset, len(data),
                                         spooled=True))
        return True

    def _open_spool(self, directory: str | None, files: FileCount | None) -> bool:
        import tempfile  # a megabyte of modules: only once a response needs it

        if files is not None and not files.take(1):
            return False
        try:
            self._spool = tempfile.TemporaryFile(dir=directory, buffering=0)
        except OSError as error:
            if files is not None:
                files.give(1)
            log.error("a response could not be spooled: %s", error)
            return False
        return True

    def _give_spool(self, count: int) -> None:
        if self._spool_settings is not None:
            self._spool_settings.budget.give(count)
