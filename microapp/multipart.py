"""multipart/form-data (RFC 7578) parsed as it arrives: bytes in through
feed(), events out.

Owns the RFC 2046 section 5.1.1 body grammar, part headers, and the limits
that bound what one body may cost. Sans-IO: it knows no WSGI, files,
temporary storage or HTTPError; MultipartError carries the status to answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from microapp.parameters import TOKEN, filename_of, parse_parameters

__all__ = [
    "BOUNDARY",
    "RFC_BOUNDARY",
    "Event",
    "MultipartError",
    "MultipartParser",
    "PartData",
    "PartEnded",
    "PartStarted",
]

# RFC 2046 section 5.1.1:
#   boundary := 0*69<bchars> bcharsnospace
#   bchars := bcharsnospace / " "
#   bcharsnospace := DIGIT / ALPHA / "'" / "(" / ")" / "+" / "_" / "," / "-" / "." /
#                    "/" / ":" / "=" / "?"
RFC_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# That grammar binds senders. Recipients meet wider boundaries (WebTest ends
# its own with "$"), so any visible ASCII is accepted, never CR, LF or other
# controls (which could end a line early), up to 200 characters, not ending
# in a space (RFC 2046: trailing spaces are transport padding).
BOUNDARY = re.compile(r"[ -~]{0,199}[!-~]")
_FIELD_NAME = re.compile(TOKEN)
# RFC 2046 section 5.1.1: transport-padding := *LWSP-char. Bounded, so a
# boundary line of endless spaces cannot grow the buffer.
MAX_PADDING = 256
# RFC 7578 section 4.7: Content-Transfer-Encoding is deprecated in forms; the
# identity codings are harmless, anything else is refused rather than guessed.
IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
# RFC 7578 section 4.4: a part without Content-Type is text/plain.
DEFAULT_CONTENT_TYPE = "text/plain"


class MultipartError(Exception):
    """The body cannot be accepted: ``status`` is the answer and ``detail``
    says why, for the client. A malformed body, and a part over a per-part
    limit (count, field size, header size), is 400: the request is wrong in
    its parts. Only the whole form over its total is 413 (RFC 9110 15.5.14)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class PartStarted:
    """A part's headers are complete. ``filename`` is None for a plain field
    and otherwise only the last path segment of what the client sent."""

    name: str
    filename: str | None
    content_type: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PartData:
    """Some of the current part's content, in order."""

    data: bytes


@dataclass(frozen=True)
class PartEnded:
    """The current part's content is complete."""


Event = PartStarted | PartData | PartEnded


class State(Enum):
    PREAMBLE = "preamble"
    BOUNDARY_LINE = "boundary line"
    HEADERS = "headers"
    CONTENT = "content"
    EPILOGUE = "epilogue"


# What an unfinished body lacked, by the state it ended in.
_ENDED_EARLY = {
    State.PREAMBLE: "the multipart body has no boundary line",
    State.BOUNDARY_LINE: "the multipart body ended inside a boundary line",
    State.HEADERS: "the multipart body ended inside a part's headers",
    State.CONTENT: "the multipart body ended before its closing boundary",
}


class MultipartParser:
    """Parse one multipart/form-data body with ``boundary`` (bytes; ValueError
    unless BOUNDARY matches it). feed() returns the events the new bytes
    complete; finish() says the body ended. After a MultipartError the parser
    must not be fed again.

    Memory is bounded whatever the input: the buffer holds at most one
    part's headers or a delimiter's length of content, never a whole part.
    """

    def __init__(self, boundary: bytes, *, max_parts: int, max_part_header_bytes: int,
                 max_field_bytes: int, max_total_bytes: int) -> None:
        if not BOUNDARY.fullmatch(boundary.decode("ascii", "replace")):
            raise ValueError(f"invalid multipart boundary {boundary!r}")
        # RFC 2046 section 5.1.1: delimiter := CRLF dash-boundary; the CRLF
        # belongs to the delimiter, not to the content before it.
        self._delimiter = b"\r\n--" + boundary
        self.max_parts = max_parts
        self.max_part_header_bytes = max_part_header_bytes
        self.max_field_bytes = max_field_bytes
        self.max_total_bytes = max_total_bytes
        self._state = State.PREAMBLE
        # The body may open with dash-boundary and no CRLF: a CRLF in front
        # lets one search find the first boundary line and every later one.
        self._buffer = bytearray(b"\r\n")
        self._position = 0
        self._total = 0
        self._parts = 0
        self._field_bytes: int | None = None  # None inside a file part
        self._in_part = False

    @property
    def finished(self) -> bool:
        """Whether the closing boundary has been seen."""
        return self._state is State.EPILOGUE

    def feed(self, data: bytes) -> list[Event]:
        """Take the next bytes of the body; the events they complete. When
        they hold an error, MultipartError is raised and their events are not
        returned: the body is refused as a whole."""
        self._total += len(data)
        if self._total > self.max_total_bytes:
            raise MultipartError(413, f"the form is larger than {self.max_total_bytes} bytes")
        if self._state is State.EPILOGUE:  # RFC 2046 section 5.1.1: ignored
            return []
        self._buffer += data
        events: list[Event] = []
        while self._step(events):
            pass
        del self._buffer[:self._position]
        self._position = 0
        return events

    def finish(self) -> None:
        """The body ended: MultipartError 400 unless it was complete."""
        if self._state is not State.EPILOGUE:
            raise MultipartError(400, _ENDED_EARLY[self._state])

    def _step(self, events: list[Event]) -> bool:
        """Advance through the buffer once; False when more input is needed."""
        if self._state is State.PREAMBLE:
            return self._skip_preamble()
        if self._state is State.BOUNDARY_LINE:
            return self._read_boundary_line(events)
        if self._state is State.HEADERS:
            return self._read_headers(events)
        if self._state is State.CONTENT:
            return self._read_content(events)
        return False

    def _skip_preamble(self) -> bool:
        """RFC 2046 section 5.1.1: anything before the first boundary line is
        a preamble, to be ignored."""
        found = self._buffer.find(self._delimiter, self._position)
        if found < 0:
            self._position = max(self._position, len(self._buffer) - len(self._delimiter) + 1)
            return False
        self._position = found + len(self._delimiter)
        self._state = State.BOUNDARY_LINE
        return True

    def _read_boundary_line(self, events: list[Event]) -> bool:
        """After a delimiter: ``--`` closes the body, else transport-padding
        CRLF opens the next part (RFC 2046 section 5.1.1)."""
        buffer, start = self._buffer, self._position
        if buffer[start:start + 2] == b"--":
            self._end_part(events)
            self._state = State.EPILOGUE
            self._position = len(buffer)
            return False
        padding_end = start
        while padding_end < len(buffer) and buffer[padding_end] in b" \t":
            padding_end += 1
        if padding_end - start > MAX_PADDING:
            raise MultipartError(400, "a boundary line has too much padding")
        line_end = buffer[padding_end:padding_end + 2]
        if line_end == b"\r\n":
            self._end_part(events)
            self._position = padding_end + 2
            self._state = State.HEADERS
            return True
        if line_end in (b"", b"\r") or buffer[start:] == b"-":  # the rest is still coming
            return False
        raise MultipartError(400, "a boundary line has characters after the boundary")

    def _end_part(self, events: list[Event]) -> None:
        if self._in_part:
            events.append(PartEnded())
            self._in_part = False

    def _read_headers(self, events: list[Event]) -> bool:
        """A part's header section up to its empty line, within the limit."""
        buffer, start = self._buffer, self._position
        if buffer[start:start + 2] == b"\r\n":
            block_end, content_start = start, start + 2  # no header fields at all
        else:
            block_end = buffer.find(b"\r\n\r\n", start)
            content_start = block_end + 4
        size = (content_start if block_end >= 0 else len(buffer)) - start
        if size > self.max_part_header_bytes:
            raise MultipartError(
                400, f"a part's headers are larger than {self.max_part_header_bytes} bytes")
        if block_end < 0:
            return False
        self._parts += 1
        if self._parts > self.max_parts:
            raise MultipartError(400, f"the form has more than {self.max_parts} parts")
        started = _part_started(bytes(buffer[start:block_end]))
        events.append(started)
        self._in_part = True
        self._field_bytes = 0 if started.filename is None else None
        self._position = content_start
        self._state = State.CONTENT
        return True

    def _read_content(self, events: list[Event]) -> bool:
        """Content up to the next delimiter; all but a delimiter's length of
        it while the delimiter has not been seen."""
        found = self._buffer.find(self._delimiter, self._position)
        end = found if found >= 0 else len(self._buffer) - len(self._delimiter) + 1
        if end > self._position:
            self._emit(events, bytes(self._buffer[self._position:end]))
            self._position = end
        if found < 0:
            return False
        self._position = found + len(self._delimiter)
        self._state = State.BOUNDARY_LINE
        return True

    def _emit(self, events: list[Event], data: bytes) -> None:
        if self._field_bytes is not None:
            self._field_bytes += len(data)
            if self._field_bytes > self.max_field_bytes:
                raise MultipartError(
                    400, f"a form field is larger than {self.max_field_bytes} bytes")
        events.append(PartData(data))


def _decode(block: bytes) -> str:
    """Header bytes as text: UTF-8, as browsers send names (the HTML
    standard's form encoding), else ISO-8859-1 for older clients."""
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("latin-1")


def parse_part_headers(block: bytes) -> tuple[tuple[str, str], ...]:
    """A part's header section (without its final empty line) as (name,
    value) pairs. RFC 5322 section 2.2.3 folded lines are unfolded; bare CR,
    LF or NUL, lines without a colon and names that are not tokens are refused."""
    headers: list[list[str]] = []
    for line in _decode(block).split("\r\n") if block else ():
        if any(character in line for character in "\r\n\x00"):
            raise MultipartError(400, "a part header contains a bare CR, LF or NUL")
        if line[:1] in (" ", "\t"):
            if not headers:
                raise MultipartError(400, "a part's headers start with a folded line")
            headers[-1][1] += " " + line.strip(" \t")
            continue
        name, colon, value = line.partition(":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            raise MultipartError(400, f"malformed part header line {line[:100]!r}")
        headers.append([name, value.strip(" \t")])
    return tuple((name, value) for name, value in headers)


def _single(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    """The one value of ``name``; two are refused, since parsers that
    disagree on which counts could be played against each other."""
    values = [value for key, value in headers if key.lower() == name]
    if len(values) > 1:
        raise MultipartError(400, f"a part has more than one {name} header")
    return values[0] if values else None


def _part_started(block: bytes) -> PartStarted:
    """RFC 7578 section 4.2: every part has ``Content-Disposition: form-data``
    with a ``name``; a ``filename`` makes it a file."""
    headers = parse_part_headers(block)
    disposition = _single(headers, "content-disposition")
    if disposition is None:
        raise MultipartError(400, "a part has no Content-Disposition header")
    kind, parameters = parse_parameters(disposition)
    if kind != "form-data":
        raise MultipartError(400, "a part's Content-Disposition is not form-data")
    if "name" not in parameters:
        raise MultipartError(400, "a part's Content-Disposition has no name")
    encoding = _single(headers, "content-transfer-encoding")
    if encoding is not None and encoding.strip().lower() not in IDENTITY_ENCODINGS:
        raise MultipartError(400, f"Content-Transfer-Encoding {encoding!r} is not supported")
    content_type = _single(headers, "content-type") or DEFAULT_CONTENT_TYPE
    return PartStarted(parameters["name"], filename_of(parameters), content_type, headers)
