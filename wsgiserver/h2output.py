"""What one HTTP/2 stream has yet to send, whatever its windows allow now.

The output queue both protocols use (``OutputQueue``, outqueue.py) as a
stream holds it: bounded in memory by the stream's ``high_water`` and by
the connection's ``Share`` of memory across its streams, past them the
stream's own spool file, and ranges of files the application handed over;
the connection takes pieces of at most N bytes off its front for DATA
frames. Knows no frames, windows or h2: the stream queues, the connection
decides when to take.
"""

from __future__ import annotations

from .outqueue import FileEnded, OutputQueue, Share, SpoolSettings

__all__ = ["Share", "StreamOutput", "FileEnded"]


class StreamOutput(OutputQueue):
    """One stream's bytes to send. ``high_water``: what this stream keeps in
    memory before it spools; ``share``: the connection's memory, also a
    bound; ``spool``: where bytes past both go (None: nowhere, they stay in
    memory and the application is made to wait)."""

    __slots__ = ()

    def __init__(self, share: Share, high_water: int, spool: SpoolSettings | None) -> None:
        super().__init__(high_water, spool, share)
