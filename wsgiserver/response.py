"""ResponseWriter: frames one HTTP response onto a byte sink.

Owns the rules of the response side of RFC 9112: when a body may be sent,
Content-Length versus chunked versus close-delimited, hop-by-hop fields, and
the Date and Server fields. Knows no sockets (it is given a ``send``
callable) and no WSGI (it is given checked status and header strings).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .protocol.writer import LAST_CHUNK, BodyFraming, choose_framing, encode_chunk, encode_head

__all__ = ["ResponseWriter", "HttpDate", "ResponseError"]

# Fields a WSGI application must not set (PEP 3333): the server frames the
# message and manages the connection itself.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "proxy-connection"}
)


class ResponseError(Exception):
    """The application's response cannot be sent as given (an app error)."""


class HttpDate:
    """The current time as an IMF-fixdate (RFC 9110 section 5.6.7), cached per second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self._second:
            # Both assignments are racy but each value is a valid date.
            self._value = format_http_date(now)
            self._second = now
        return self._value


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_http_date(seconds: float) -> str:
    """``Sun, 06 Nov 1994 08:49:37 GMT`` (RFC 9110 section 5.6.7, IMF-fixdate)."""
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


class ResponseWriter:
    """Frames one response: head once, then body data, then ``finish()``."""

    def __init__(
        self,
        send: Callable[[bytes], None],
        *,
        method: bytes,
        http_version: tuple[int, int],
        keep_alive: bool,
        date: Callable[[], str] | None,
        server_name: str | None,
        closing: Callable[[], bool] | None = None,
    ) -> None:
        self._send = send
        self._closing = closing  # true once the connection must end (shutdown)
        self._method = method
        self._http_version = http_version
        self.keep_alive = keep_alive
        self._date = date
        self._server_name = server_name
        self._status = ""
        self._status_code = 0
        self._headers: list[tuple[str, str]] = []
        self._content_length: int | None = None
        self._framing = BodyFraming.NONE
        self._left = 0  # bytes still owed under Content-Length
        self.head_sent = False
        self.body_bytes = 0  # body bytes actually sent
        # The connection was handed to the app (a protocol upgrade): this
        # writer sends nothing more.
        self.upgraded = False

    # -- head --------------------------------------------------------------

    def set_head(self, status: str, headers: list[tuple[str, str]]) -> None:
        """Replace the pending head; allowed until the head has been sent."""
        if self.head_sent:
            raise ResponseError("the response head was already sent")
        code = int(status[:3])
        kept: list[tuple[str, str]] = []
        length: int | None = None
        for name, value in headers:
            lower = name.lower()
            if lower in _HOP_BY_HOP:
                if lower == "connection" and "close" in value.lower():
                    self.keep_alive = False
                continue
            if lower == "content-length":
                length = _parse_length(value, length)
                continue
            kept.append((name, value))
        self._status, self._status_code = status, code
        self._headers, self._content_length = kept, length

    def take_over(self) -> None:
        """The app switched protocols and now owns the connection's bytes."""
        self.upgraded = True
        self.head_sent = True
        self.keep_alive = False
        self._status_code = 101

    @property
    def response_headers(self) -> list[tuple[str, str]]:
        """The application's header fields as kept (no hop-by-hop fields)."""
        return self._headers

    @property
    def status_code(self) -> int:
        """The status of the pending or sent head."""
        return self._status_code

    def _head_bytes(self, body_length: int | None) -> bytes:
        code = self._status_code
        if self._content_length is None and body_length is not None:
            self._content_length = self._known_length(code, body_length)
        framing = choose_framing(self._http_version, self._method, code, self._content_length)
        self._framing = framing
        headers = self._headers
        if framing is BodyFraming.LENGTH or (
            self._content_length is not None and code >= 200 and code != 204
        ):
            # HEAD and 304 keep the length a GET would have had (RFC 9110 8.6).
            headers = headers + [("Content-Length", str(self._content_length))]
            self._left = self._content_length or 0
        elif framing is BodyFraming.CHUNKED:
            headers = headers + [("Transfer-Encoding", "chunked")]
        elif framing is BodyFraming.CLOSE:
            self.keep_alive = False
        return encode_head(self._status, headers + self._connection_fields())

    def _known_length(self, code: int, body_length: int) -> int | None:
        """Content-Length from a body known whole, where it describes one."""
        if code < 200 or code in (204, 304):
            return None
        if self._method == b"HEAD" and body_length == 0:
            return None  # an empty HEAD body says nothing of the GET's length
        return body_length

    def _connection_fields(self) -> list[tuple[str, str]]:
        if self._closing is not None and self._closing():
            self.keep_alive = False
        fields = []
        names = {name.lower() for name, _ in self._headers}
        if self._date is not None and "date" not in names:
            fields.append(("Date", self._date()))
        if self._server_name and "server" not in names:
            fields.append(("Server", self._server_name))
        options = []
        if not self.keep_alive:
            options.append("close")
        elif self._http_version < (1, 1):
            options.append("keep-alive")
        if "upgrade" in names:
            options.append("upgrade")  # RFC 9110 section 7.8: Upgrade is listed in Connection
        if options:
            fields.append(("Connection", ", ".join(options)))
        return fields

    # -- body --------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send body data (the head first, if it has not gone yet)."""
        if not self.head_sent:
            self.head_sent = True
            self._send(self._head_bytes(None) + self._frame(data))
        elif data:
            framed = self._frame(data)
            if framed:
                self._send(framed)

    def write_whole(self, data: bytes) -> None:
        """Send the entire body at once; its length becomes Content-Length."""
        if self.head_sent:
            self.write(data)
            self.finish()
            return
        self.head_sent = True
        self._send(self._head_bytes(len(data)) + self._frame(data) + self._trailer())

    def finish(self) -> None:
        """End the body. A body shorter than its Content-Length spoils the connection."""
        if not self.head_sent:
            # The iterable was empty: the whole body is known to be empty.
            self.write_whole(b"")
            return
        tail = self._trailer()
        if tail:
            self._send(tail)

    def _trailer(self) -> bytes:
        if self._framing is BodyFraming.CHUNKED:
            return LAST_CHUNK
        if self._framing is BodyFraming.LENGTH and self._left:
            # The application promised more than it gave: the client cannot
            # tell where this response ends, so the connection must end.
            self.keep_alive = False
            raise ResponseError(
                f"response ended {self._left} bytes short of its Content-Length"
            )
        return b""

    def _frame(self, data: bytes) -> bytes:
        framing = self._framing
        if not data or framing is BodyFraming.NONE:
            return b""
        if framing is BodyFraming.CHUNKED:
            self.body_bytes += len(data)
            return encode_chunk(data)
        if framing is BodyFraming.LENGTH:
            if len(data) > self._left:
                # Never send more than announced: the excess would be read
                # as the start of the next response.
                self.keep_alive = False
                data = data[: self._left]
            self._left -= len(data)
        self.body_bytes += len(data)
        return data

    def file_range(self, available: int) -> int | None:
        """How many bytes of a file to send raw (sendfile), or None to iterate.

        Call after the head is sent; ``available`` is the file's size from its
        current position.
        """
        if self._framing is BodyFraming.LENGTH:
            return min(self._left, available)
        if self._framing is BodyFraming.CLOSE:
            return available
        if self._framing is BodyFraming.NONE:
            return 0
        return None

    def sent_raw(self, count: int) -> None:
        """Account for ``count`` body bytes sent around ``write`` (sendfile)."""
        self.body_bytes += count
        if self._framing is BodyFraming.LENGTH:
            self._left -= count

    def send_head_now(self, body_length: int | None = None) -> None:
        """Send the head alone, before a body that goes out raw (sendfile)."""
        if not self.head_sent:
            self.head_sent = True
            self._send(self._head_bytes(body_length))


def _parse_length(value: str, previous: int | None) -> int:
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise ResponseError(f"invalid Content-Length from the application: {value!r}")
    length = int(value)
    if previous is not None and previous != length:
        raise ResponseError("conflicting Content-Length values from the application")
    return length
