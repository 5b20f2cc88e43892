"""The server's error types. Owns nothing but their shape: the status is data."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol.events import RequestHead

__all__ = ["ProtocolError", "ResponseError", "ClientDisconnected", "SpoolFull"]


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; ``status`` is the response to answer with.

    Raised by the sans-IO parser and turned into a response in exactly one
    place, the connection. After a ProtocolError the framing of the
    connection can no longer be trusted, so it is closed after the answer.
    """

    def __init__(self, status: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail
        # Seconds after which the client may try again (a 503 for lack of room).
        self.retry_after = retry_after
        # The request line and fields, when they parsed before the refusal
        # (a protocol.events.RequestHead): the access log names the request.
        self.head: RequestHead | None = None


class ResponseError(Exception):
    """The application's response cannot be sent as given (an app error)."""


class ClientDisconnected(ConnectionError):
    """A response could not be written: the client went away or stopped
    reading past the write timeout. Never logged as an application error."""


class SpoolFull(OSError):
    """The server's spool (or its descriptors) has no room for this body now:
    answered 503 with Retry-After, before more of its bytes are taken."""
