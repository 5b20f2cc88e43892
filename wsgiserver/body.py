"""A request body received before the application runs: in memory up to a
threshold, beyond it in an unlinked temporary file.

Owns where the bytes are kept and the stream ``wsgi.input`` reads them
from. Knows no sockets, framing or limits beyond its threshold: the
connection feeds it de-chunked bytes, the parser enforces the body limit.
"""

from __future__ import annotations

import io
from typing import IO

__all__ = ["RequestBody"]


class RequestBody:
    """Bytes in with ``write``; once ``finish`` is called, a stream to read."""

    __slots__ = ("_threshold", "_spool_dir", "_memory", "_file", "size")

    def __init__(self, threshold: int, spool_dir: str | None = None) -> None:
        self._threshold = threshold
        self._spool_dir = spool_dir
        self._memory = io.BytesIO()
        self._file: IO[bytes] | None = None
        self.size = 0

    @property
    def spooled(self) -> bool:
        """True once the body went to a temporary file."""
        return self._file is not None

    def write(self, data: bytes | memoryview) -> None:
        """Keep ``data``; past the threshold, move everything to a temporary file."""
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
        elif self.size <= self._threshold:
            self._memory.write(data)
        else:
            self._spill(data)

    def _spill(self, data: bytes | memoryview) -> None:
        # Unlinked at once (O_TMPFILE where the system has it): nothing is
        # left behind, whatever happens to the process. (tempfile costs a
        # megabyte of modules: imported by the first body that needs it.)
        import tempfile

        spool = tempfile.TemporaryFile(dir=self._spool_dir)
        try:
            spool.write(self._memory.getbuffer())
            spool.write(data)
        except BaseException:
            spool.close()
            raise
        self._file = spool
        self._memory = io.BytesIO()

    def finish(self) -> IO[bytes]:
        """The whole body as a stream positioned at its start (for ``wsgi.input``)."""
        stream: IO[bytes] = self._file if self._file is not None else self._memory
        stream.seek(0)
        return stream

    def close(self) -> None:
        """Release the memory or the temporary file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = io.BytesIO()
