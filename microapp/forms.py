"""Forms: urlencoded and multipart bodies as fields, uploaded files and
streamed parts, within FormLimits.

Owns what the limits mean, turning parser events into values, spooling file
parts (memory, then an unnamed temporary file) and closing what it opened.
Knows no environ, routes or file store: the request hands it body chunks.
"""

from __future__ import annotations

import io
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Generic, TypeVar
from urllib.parse import parse_qsl

from microapp.errors import HTTPError
from microapp.multipart import (
    BOUNDARY,
    Event,
    MultipartError,
    MultipartParser,
    PartData,
    PartStarted,
)
from microapp.parameters import parse_parameters

__all__ = [
    "DEFAULT_FORM_LIMITS",
    "Fields",
    "FormLimits",
    "FormPart",
    "MultipartReader",
    "UploadedFile",
    "multipart_boundary",
    "read_form",
]

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# RFC 7578 section 4.6: a field named _charset_ gives the charset of the
# text fields that do not name one; the HTML standard sends UTF-8.
CHARSET_FIELD = "_charset_"
DEFAULT_CHARSET = "utf-8"

Value = TypeVar("Value")
BodyReader = Callable[[int], Iterable[bytes]]


@dataclass(frozen=True)
class FormLimits:
    """What one form may cost: beyond a per-part limit the request gets 400,
    beyond the total 413."""

    # Parts of a multipart body, or pairs of a urlencoded one: each costs
    # parsing, a Python object and, for files, perhaps a temporary file.
    max_parts: int = 1000
    # One multipart text field, held in memory as it arrives; also a whole
    # urlencoded body, which is all text and read into memory at once.
    max_field_bytes: int = 1024 * 1024
    # A whole multipart body, files included: bounds the disk one request uses.
    max_total_bytes: int = 64 * 1024 * 1024
    # One part's header section, buffered until its empty line arrives.
    max_part_header_bytes: int = 8 * 1024
    # File bytes one request keeps in memory; later file bytes go to
    # unnamed temporary files, which vanish when closed (or on a crash).
    memory_threshold: int = 512 * 1024

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"FormLimits.{name} must be a non-negative int, not {value!r}")


DEFAULT_FORM_LIMITS = FormLimits()


class Fields(Mapping[str, Value], Generic[Value]):
    """Form values by name, in the order sent: ``fields[name]`` is the first
    value, ``get_all(name)`` every one."""

    def __init__(self, pairs: Iterable[tuple[str, Value]] = ()) -> None:
        self._values: dict[str, list[Value]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def __getitem__(self, name: str) -> Value:
        return self._values[name][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get_all(self, name: str) -> list[Value]:
        """Every value sent under ``name`` (an empty list for none)."""
        return list(self._values.get(name, ()))

    def __repr__(self) -> str:
        return f"Fields({self._values!r})"


@dataclass
class UploadedFile:
    """A file part of a form: ``file`` is positioned at its first byte and
    closed when the request ends. ``filename`` is the last path segment of the
    client's name, never trusted further ("" when no file was chosen)."""

    name: str
    filename: str
    content_type: str
    headers: tuple[tuple[str, str], ...]
    file: IO[bytes]
    size: int

    def read(self) -> bytes:
        """The whole content (from the file's current position)."""
        return self.file.read()

    def close(self) -> None:
        self.file.close()


def multipart_boundary(content_type: str) -> bytes:
    """The boundary parameter of a multipart Content-Type; HTTPError 400 when
    it is missing or not a usable boundary (multipart.BOUNDARY)."""
    _, parameters = parse_parameters(content_type)
    boundary = parameters.get("boundary")
    if boundary is None:
        raise HTTPError(400, "multipart/form-data without a boundary parameter")
    if not BOUNDARY.fullmatch(boundary):
        raise HTTPError(400, "the multipart boundary is not valid: 1 to 200 visible "
                        "ASCII characters (RFC 2046 section 5.1.1)")
    return boundary.encode("ascii")


class FormPart:
    """One part of a multipart body while it streams: its headers now, its
    content through chunks() (once; what is not read is skipped)."""

    def __init__(self, started: PartStarted, reader: MultipartReader, index: int) -> None:
        self.name = started.name
        self.filename = started.filename
        self.content_type = started.content_type
        self.headers = started.headers
        self._reader = reader
        self._index = index
        self._taken = False

    def chunks(self) -> Iterator[bytes]:
        """The content as it arrives; RuntimeError when asked twice. Once the
        next part is asked for, this part's chunks stop."""
        if self._taken:
            raise RuntimeError(f"the content of part {self.name!r} was already read")
        self._taken = True
        return self._reader.content(self._index)

    def read(self) -> bytes:
        """The whole content, in memory (bounded for fields by max_field_bytes)."""
        return b"".join(self.chunks())


class MultipartReader:
    """Drives a MultipartParser over body chunks, pulling only as far as the
    caller reads; the parser's errors become HTTPErrors."""

    def __init__(self, chunks: Iterable[bytes], parser: MultipartParser) -> None:
        self._chunks = iter(chunks)
        self._parser = parser
        self._events: deque[Event] = deque()
        self._ended = False
        self._current = 0  # the index of the part whose content is next
        self._in_content = False

    def parts(self) -> Iterator[FormPart]:
        """Each part in order; the body is read to its end (and checked
        complete) before the iteration stops."""
        while (event := self._next_event()) is not None:
            if isinstance(event, PartStarted):
                self._current += 1
                self._in_content = True
                yield FormPart(event, self, self._current)
                self._skip_content()

    def content(self, index: int) -> Iterator[bytes]:
        """Part ``index``'s content chunks, while it is the current part."""
        while self._in_content and index == self._current:
            event = self._next_event()
            if isinstance(event, PartData):
                yield event.data
            else:
                self._in_content = False

    def _skip_content(self) -> None:
        while self._in_content:
            if not isinstance(self._next_event(), PartData):
                self._in_content = False

    def _next_event(self) -> Event | None:
        while not self._events:
            if self._ended:
                return None
            try:
                chunk = next(self._chunks, None)
                if chunk is None:
                    self._parser.finish()
                    self._ended = True
                else:
                    self._events.extend(self._parser.feed(chunk))
            except MultipartError as error:
                raise HTTPError(error.status, error.detail) from None
        return self._events.popleft()


def new_multipart_reader(content_type: str, read_body: BodyReader,
                         limits: FormLimits) -> MultipartReader:
    """A reader of a multipart/form-data body of ``content_type``, within ``limits``."""
    parser = MultipartParser(
        multipart_boundary(content_type), max_parts=limits.max_parts,
        max_part_header_bytes=limits.max_part_header_bytes,
        max_field_bytes=limits.max_field_bytes, max_total_bytes=limits.max_total_bytes)
    return MultipartReader(read_body(limits.max_total_bytes), parser)


def read_form(content_type: str, read_body: BodyReader,
              limits: FormLimits) -> tuple[Fields[str], Fields[UploadedFile]]:
    """The fields and files of a form body. ``read_body(limit)`` gives the
    body's chunks, at most ``limit`` bytes. Other media types have no form:
    both are empty, and the body is not read."""
    media_type, _ = parse_parameters(content_type)
    if media_type == URLENCODED:
        body = b"".join(read_body(limits.max_field_bytes))
        return _parse_urlencoded(body, limits.max_parts), Fields()
    if media_type == MULTIPART:
        return _collect(new_multipart_reader(content_type, read_body, limits), limits)
    return Fields(), Fields()


def _parse_urlencoded(body: bytes, max_parts: int) -> Fields[str]:
    """The HTML standard's application/x-www-form-urlencoded, UTF-8."""
    try:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True,
                          errors="replace", max_num_fields=max_parts)
    except ValueError:
        raise HTTPError(400, f"the form has more than {max_parts} fields") from None
    return Fields(pairs)


@dataclass
class _TextPart:
    name: str
    content: bytes
    charset: str | None


def _collect(reader: MultipartReader,
             limits: FormLimits) -> tuple[Fields[str], Fields[UploadedFile]]:
    """Every part: text fields into memory, files spooled; on any failure
    the files opened so far are closed."""
    texts: list[_TextPart] = []
    files: list[tuple[str, UploadedFile]] = []
    budget = _MemoryBudget(limits.memory_threshold)
    try:
        for part in reader.parts():
            if part.filename is None:
                charset = parse_parameters(part.content_type)[1].get("charset")
                texts.append(_TextPart(part.name, part.read(), charset))
            else:
                files.append((part.name, _spool(part, budget)))
    except BaseException:
        for _, upload in files:
            upload.close()
        raise
    return _decode_texts(texts), Fields(files)


def _decode_texts(texts: list[_TextPart]) -> Fields[str]:
    """Text fields in their charset: the part's own, else _charset_'s, else
    UTF-8; undecodable bytes become U+FFFD rather than a refused form."""
    default = next((text.content.decode("ascii", "replace") for text in texts
                    if text.name == CHARSET_FIELD), DEFAULT_CHARSET)
    pairs = []
    for text in texts:
        try:
            value = text.content.decode(text.charset or default, "replace")
        except LookupError:  # a charset Python does not know
            value = text.content.decode(DEFAULT_CHARSET, "replace")
        pairs.append((text.name, value))
    return Fields(pairs)


class _MemoryBudget:
    """The file bytes one request may still keep in memory."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, size: int) -> bool:
        if size > self.left:
            return False
        self.left -= size
        return True


def _spool(part: FormPart, budget: _MemoryBudget) -> UploadedFile:
    """A file part in memory while the budget lasts, then on disk."""
    file: IO[bytes] = io.BytesIO()
    size = 0
    try:
        for chunk in part.chunks():
            if isinstance(file, io.BytesIO) and not budget.take(len(chunk)):
                budget.left += file.tell()  # those bytes leave memory now
                file = _to_disk(file)
            file.write(chunk)
            size += len(chunk)
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return UploadedFile(part.name, part.filename or "", part.content_type, part.headers,
                        file, size)


def _to_disk(memory: io.BytesIO) -> IO[bytes]:
    """An unnamed temporary file holding ``memory``'s bytes: no name on disk,
    so nothing is left behind however the process ends."""
    disk = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the request
    try:
        disk.write(memory.getbuffer())
    except BaseException:
        disk.close()
        raise
    memory.close()
    return disk
