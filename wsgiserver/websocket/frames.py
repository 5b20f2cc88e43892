"""RFC 6455 framing: client frame bytes in, message events out; frames encoded.

Sans-IO: FrameParser owns a byte buffer and the state of one connection's
incoming messages, and knows nothing of sockets, threads, clocks, logging
or WSGI. Every violation is a WebSocketError carrying the close code to
fail the connection with (RFC 6455 section 7.1.7); after one the parser
refuses to go on, because the framing can no longer be trusted.
"""

from __future__ import annotations

import codecs
import enum
import io
from dataclasses import dataclass

from .deflate import Deflate, Inflater, InflateTooLarge, compressed_bound

__all__ = [
    "Opcode",
    "CloseCode",
    "WebSocketError",
    "TextMessage",
    "BinaryMessage",
    "Ping",
    "Pong",
    "CloseReceived",
    "NEED_DATA",
    "FrameParser",
    "encode_frame",
    "encode_close",
    "is_valid_close_code",
    "MAX_CONTROL_PAYLOAD",
]

# RFC 6455 section 5.5: "All control frames MUST have a payload length of
# 125 bytes or less".
MAX_CONTROL_PAYLOAD = 125
# Section 5.5.1: a close payload is a 2-byte code and the reason.
_MAX_CLOSE_REASON = MAX_CONTROL_PAYLOAD - 2


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2); 0x3-0x7 and 0xB-0xF are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @property
    def is_control(self) -> bool:
        """Opcodes with the high bit set are control frames (section 5.5)."""
        return self >= 0x8


class CloseCode(enum.IntEnum):
    """Status codes of section 7.4.1 and the IANA registry (section 11.7)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005  # never sent: "no status code was actually present"
    ABNORMAL = 1006  # never sent: closed without a Close frame
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never sent


class WebSocketError(Exception):
    """The peer broke RFC 6455; ``close_code`` is the code to close with."""

    def __init__(self, close_code: int, detail: str) -> None:
        super().__init__(f"{close_code} {detail}")
        self.close_code = close_code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A complete text message, its fragments joined and decoded."""

    data: str


@dataclass(frozen=True, slots=True)
class BinaryMessage:
    """A complete binary message, its fragments joined."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """A Ping; the peer expects a Pong with the same payload (section 5.5.2)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A Pong, solicited or not (section 5.5.3)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer's Close frame; ``code`` is None when it carried no status."""

    code: int | None
    reason: str


class _Signal(enum.Enum):
    NEED_DATA = "need data"


# The parser needs more bytes before it can produce another event.
NEED_DATA = _Signal.NEED_DATA

Event = TextMessage | BinaryMessage | Ping | Pong | CloseReceived


def is_valid_close_code(code: int) -> bool:
    """May ``code`` appear in a Close frame (RFC 6455 section 7.4)?

    0-999 are unused; 1000-2999 are for the protocol, of which 1004 is
    reserved and 1005, 1006 and 1015 "MUST NOT be set as a status code in a
    Close control frame"; 1012-1014 were registered with IANA after the RFC
    (section 11.7) and are accepted; 3000-4999 are for libraries and
    applications.
    """
    if 3000 <= code <= 4999:
        return True
    return 1000 <= code <= 1014 and code not in (1004, 1005, 1006)


@dataclass(frozen=True, slots=True)
class _FrameHeader:
    fin: bool
    opcode: Opcode
    length: int
    mask: bytes | None
    compressed: bool = False  # RSV1 on a message's first frame (RFC 7692 6.1)


class FrameParser:
    """Parses the frames a client sends into whole messages and control events.

    ``feed(bytes)`` adds received bytes; ``next_event()`` returns a
    TextMessage, BinaryMessage, Ping, Pong or CloseReceived, or NEED_DATA.
    Control frames come out as soon as they are complete, even between the
    fragments of a message (section 5.4). After CloseReceived the peer may
    send nothing more (section 5.5.1), so later bytes are discarded.

    ``max_message_bytes`` bounds a whole message and ``max_frame_bytes`` one
    frame's payload; both are checked against the announced lengths, before
    the payload is buffered, and answered with 1009. The memory a message
    takes is its bytes, however it is fragmented: fragments are joined as
    they arrive, and an empty one keeps nothing. With ``deflate`` agreed, a
    compressed message is inflated as it arrives within the same bound (a
    compression bomb is closed with 1009, never inflated). ``expect_masked``
    is True on the server side: clients MUST mask, servers MUST NOT (5.1).
    """

    def __init__(
        self,
        max_message_bytes: int,
        max_frame_bytes: int | None = None,
        *,
        expect_masked: bool = True,
        deflate: Deflate | None = None,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_frame_bytes = max_frame_bytes
        self.expect_masked = expect_masked
        self.deflate = deflate
        self._buffer = bytearray()
        self._frame: _FrameHeader | None = None
        self._frame_received = 0  # payload bytes of the current frame consumed
        self._message_opcode: Opcode | None = None  # TEXT/BINARY while one is open
        self._message_length = 0
        self._binary = bytearray()  # a binary message so far
        self._text = io.StringIO()  # a text message so far, decoded
        self._decoder: codecs.IncrementalDecoder | None = None
        self._inflater: Inflater | None = None
        self._closed = False
        self._error: WebSocketError | None = None

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer."""
        if not self._closed:
            self._buffer += data

    @property
    def closed(self) -> bool:
        """True once the peer's Close frame came out as CloseReceived."""
        return self._closed

    def next_event(self) -> Event | _Signal:
        """The next event, or NEED_DATA; raises WebSocketError (sticky)."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except WebSocketError as error:
            self._error = error
            self._buffer.clear()
            raise

    def _next_event(self) -> Event | _Signal:
        while not self._closed:
            if self._frame is None:
                self._frame = self._read_header()
                if self._frame is None:
                    return NEED_DATA
                self._begin_frame(self._frame)
            if self._frame.opcode.is_control:
                return self._read_control()
            if not self._read_data():
                return NEED_DATA
            if self._frame_done():
                return self._finish_message()
        return NEED_DATA

    # -- frame header (section 5.2) -----------------------------------------

    def _read_header(self) -> _FrameHeader | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        fin, opcode, compressed = self._check_first_byte(buffer[0])
        masked, length7 = bool(buffer[1] & 0x80), buffer[1] & 0x7F
        self._check_sequence(fin, opcode, length7)
        if masked != self.expect_masked:
            # Section 5.1: a server MUST close on an unmasked client frame;
            # a client MUST close on a masked server frame.
            raise WebSocketError(1002, "frame masking is wrong for this side")
        extra = {126: 2, 127: 8}.get(length7, 0)
        size = 2 + extra + (4 if masked else 0)
        if len(buffer) < size:
            return None
        length = self._checked_length(length7, bytes(buffer[2 : 2 + extra]))
        mask = bytes(buffer[size - 4 : size]) if masked else None
        del buffer[:size]
        return _FrameHeader(fin, opcode, length, mask, compressed)

    def _check_first_byte(self, first: int) -> tuple[bool, Opcode, bool]:
        try:
            opcode = Opcode(first & 0x0F)
        except ValueError:
            raise WebSocketError(1002, f"reserved opcode {first & 0x0F:#x}") from None
        # "RSV1, RSV2, RSV3: MUST be 0 unless an extension is negotiated".
        # permessage-deflate gives RSV1 a meaning on the first frame of a
        # data message only (RFC 7692 section 6.1); nothing uses RSV2, RSV3.
        if first & 0x30:
            raise WebSocketError(1002, "reserved bits set without an extension")
        compressed = bool(first & 0x40)
        if compressed and (self.deflate is None or opcode.is_control
                           or opcode is Opcode.CONTINUATION):
            raise WebSocketError(1002, "RSV1 set where no extension gives it a meaning")
        return bool(first & 0x80), opcode, compressed

    def _check_sequence(self, fin: bool, opcode: Opcode, length7: int) -> None:
        if opcode.is_control:
            # Section 5.5: control frames are at most 125 bytes and "MUST NOT
            # be fragmented"; 126 and 127 announce longer lengths.
            if length7 > MAX_CONTROL_PAYLOAD:
                raise WebSocketError(1002, "control frame longer than 125 bytes")
            if not fin:
                raise WebSocketError(1002, "fragmented control frame")
        elif opcode is Opcode.CONTINUATION and self._message_opcode is None:
            # Section 5.4: fragments are continuation frames after a start.
            raise WebSocketError(1002, "continuation frame without a message")
        elif opcode is not Opcode.CONTINUATION and self._message_opcode is not None:
            # Section 5.4: fragments of one message are never interleaved
            # with another message's (no extension allows it here).
            raise WebSocketError(1002, "new message inside a fragmented message")

    def _checked_length(self, length7: int, extended: bytes) -> int:
        length = int.from_bytes(extended, "big") if extended else length7
        # Section 5.2: with 127 "the most significant bit MUST be 0", and "in
        # all cases, the minimal number of bytes MUST be used to encode the
        # length". A peer that breaks either is not following the framing,
        # so the connection is failed (1002) rather than guessed at.
        if length >> 63:
            raise WebSocketError(1002, "64-bit payload length with the high bit set")
        if extended and length < (126 if length7 == 126 else 65536):
            raise WebSocketError(1002, "payload length not in its minimal encoding")
        if self.max_frame_bytes is not None and length > self.max_frame_bytes:
            raise WebSocketError(1009, f"frame of {length} bytes is over the limit")
        return length

    # -- payloads -----------------------------------------------------------

    def _read_control(self) -> Event | _Signal:
        frame = self._frame
        assert frame is not None
        if len(self._buffer) < frame.length:
            return NEED_DATA
        payload = _unmask(bytes(self._buffer[: frame.length]), frame.mask, 0)
        del self._buffer[: frame.length]
        self._frame = None
        if frame.opcode is Opcode.PING:
            return Ping(payload)
        if frame.opcode is Opcode.PONG:
            return Pong(payload)
        event = _parse_close(payload)
        self._closed = True
        self._buffer.clear()
        return event

    def _read_data(self) -> bool:
        """Consume what has arrived of a data frame; False if more is needed."""
        frame = self._frame
        assert frame is not None
        take = min(frame.length - self._frame_received, len(self._buffer))
        if take == 0 and frame.length > self._frame_received:
            return False
        chunk = _unmask(bytes(self._buffer[:take]), frame.mask, self._frame_received)
        del self._buffer[:take]
        self._frame_received += take
        self._append(chunk)
        return self._frame_received == frame.length

    def _begin_frame(self, frame: _FrameHeader) -> None:
        self._frame_received = 0
        if frame.opcode.is_control:
            return
        if frame.opcode is not Opcode.CONTINUATION:
            self._start_message(frame.opcode, frame.compressed)
        self._check_message_length(frame.length)

    def _start_message(self, opcode: Opcode, compressed: bool) -> None:
        self._message_opcode = opcode
        self._message_length = 0
        self._decoder = None
        if opcode is Opcode.TEXT:
            self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._inflater = None
        if compressed:
            assert self.deflate is not None
            self._inflater = self.deflate.inflater(self.max_message_bytes)

    def _check_message_length(self, frame_length: int) -> None:
        # Refused from the announced length, before any of it is buffered.
        # The limit is the message's size as the application receives it: a
        # compressed message is bounded as it inflates (InflateTooLarge), and
        # on the wire only by a bound no honest encoder reaches, since
        # incompressible data comes out a little larger than it went in.
        self._message_length += frame_length
        if self._inflater is not None:
            if self._message_length > compressed_bound(self.max_message_bytes):
                raise WebSocketError(1009, "compressed message far over the limit of "
                                     f"{self.max_message_bytes} bytes")
        elif self._message_length > self.max_message_bytes:
            raise WebSocketError(
                1009, f"message over the limit of {self.max_message_bytes} bytes"
            )

    def _append(self, chunk: bytes, final: bool = False) -> None:
        if self._inflater is not None:
            chunk = self._inflate(chunk, final)
        if self._decoder is None:
            self._binary += chunk
            return
        # Section 8.1: text must be valid UTF-8; each piece is decoded as it
        # arrives so that invalid text fails the connection at once (1007).
        try:
            text = self._decoder.decode(chunk, final=final)
        except UnicodeDecodeError:
            raise WebSocketError(1007, "text message is not valid UTF-8") from None
        if text:
            self._text.write(text)

    def _inflate(self, chunk: bytes, final: bool) -> bytes:
        inflater = self._inflater
        assert inflater is not None
        try:
            return inflater.feed(chunk) + (inflater.finish() if final else b"")
        except InflateTooLarge:
            raise WebSocketError(
                1009, f"message inflates past the limit of {self.max_message_bytes} bytes"
            ) from None
        except ValueError as error:
            raise WebSocketError(1002, str(error)) from None

    def _frame_done(self) -> bool:
        """The current data frame is complete: forget it; True if it was final."""
        frame = self._frame
        assert frame is not None
        self._frame = None
        return frame.fin

    def _finish_message(self) -> TextMessage | BinaryMessage:
        try:
            self._append(b"", final=True)
        except WebSocketError as error:
            if error.close_code == 1007:
                raise WebSocketError(1007, "text message ends inside a character") from None
            raise
        decoder = self._decoder
        self._message_opcode, self._decoder, self._inflater = None, None, None
        if decoder is None:
            data = bytes(self._binary)
            self._binary = bytearray()
            return BinaryMessage(data)
        text = self._text.getvalue()
        self._text = io.StringIO()
        return TextMessage(text)


def _parse_close(payload: bytes) -> CloseReceived:
    """A Close frame's payload (section 5.5.1): nothing, or a code and a reason."""
    if not payload:
        return CloseReceived(None, "")
    if len(payload) == 1:
        raise WebSocketError(1002, "close payload of one byte")
    code = int.from_bytes(payload[:2], "big")
    if not is_valid_close_code(code):
        raise WebSocketError(1002, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise WebSocketError(1007, "close reason is not valid UTF-8") from None
    return CloseReceived(code, reason)


def _unmask(data: bytes, mask: bytes | None, offset: int) -> bytes:
    """XOR ``data`` with ``mask``, starting ``offset`` bytes into the payload (5.3)."""
    if mask is None or not data:
        return data
    start = offset % 4
    rotated = mask[start:] + mask[:start]
    key = (rotated * (len(data) // 4 + 1))[: len(data)]
    # One big-integer XOR runs in C; a Python loop per byte would not.
    value = int.from_bytes(data, "big") ^ int.from_bytes(key, "big")
    return value.to_bytes(len(data), "big")


def encode_frame(
    opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None,
    compressed: bool = False,
) -> bytes:
    """One frame (RFC 6455 section 5.2) with the minimal length encoding.

    Servers send unmasked frames (section 5.1); ``mask`` is a 4-byte key
    for a client's frames (and tests playing the client). ``compressed``
    sets RSV1 on a data message's first frame (RFC 7692 section 6.1).
    """
    opcode = Opcode(opcode)
    if opcode.is_control and (len(payload) > MAX_CONTROL_PAYLOAD or not fin):
        raise ValueError("control frames carry at most 125 bytes and are never fragmented")
    if compressed and (opcode.is_control or opcode is Opcode.CONTINUATION):
        raise ValueError("only a data message's first frame is marked compressed")
    if mask is not None and len(mask) != 4:
        raise ValueError("a masking key is 4 bytes")
    length = len(payload)
    mask_bit = 0x80 if mask is not None else 0
    head = bytearray([(0x80 if fin else 0) | (0x40 if compressed else 0) | opcode])
    if length < 126:
        head.append(mask_bit | length)
    elif length < 65536:
        head.append(mask_bit | 126)
        head += length.to_bytes(2, "big")
    else:
        head.append(mask_bit | 127)
        head += length.to_bytes(8, "big")
    if mask is None:
        return bytes(head) + payload
    return bytes(head) + mask + _unmask(bytes(payload), mask, 0)


def encode_close(
    code: int | None = CloseCode.NORMAL, reason: str = "", mask: bytes | None = None
) -> bytes:
    """A Close frame (section 5.5.1); ``code`` None sends an empty payload.

    Raises ValueError for a code that may not be sent (section 7.4) or a
    reason over 123 bytes of UTF-8.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return encode_frame(Opcode.CLOSE, b"", mask=mask)
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent")
    encoded = reason.encode("utf-8")
    if len(encoded) > _MAX_CLOSE_REASON:
        raise ValueError(f"close reason over {_MAX_CLOSE_REASON} bytes of UTF-8")
    return encode_frame(Opcode.CLOSE, code.to_bytes(2, "big") + encoded, mask=mask)
