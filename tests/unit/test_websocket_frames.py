"""FrameParser and the frame encoders against RFC 6455 sections 5 and 7.4.

Every parse case is fed whole and one byte at a time; every error must be
sticky. Client frames are built here byte by byte (with the masking done by
this file, not by the code under test) so that broken encodings can be
written too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wsgiserver.websocket
from wsgiserver.websocket import (
    NEED_DATA,
    BinaryMessage,
    CloseReceived,
    FrameParser,
    Opcode,
    Ping,
    Pong,
    TextMessage,
    WebSocketError,
    encode_close,
    encode_frame,
    is_valid_close_code,
)

# The masking key of the examples in RFC 6455 section 5.7.
MASK = bytes.fromhex("37fa213d")
WAYS = ("whole", "bytewise")

FIN = 0x80
TEXT, BINARY, CONT = 0x1, 0x2, 0x0
CLOSE, PING, PONG = 0x8, 0x9, 0xA


def masked(payload: bytes, mask: bytes = MASK) -> bytes:
    """Section 5.3: octet i of the payload XOR octet i MOD 4 of the key."""
    return bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def length_field(length: int) -> bytes:
    """The 7-bit length and its extension, minimally encoded (section 5.2)."""
    if length < 126:
        return bytes([length])
    if length < 65536:
        return b"\x7e" + length.to_bytes(2, "big")
    return b"\x7f" + length.to_bytes(8, "big")


def raw(first: int, payload: bytes = b"", *, length: bytes | None = None, mask: bool = True):
    """A client frame: ``first`` is FIN|RSV|opcode; ``length`` overrides the
    length field (7-bit value plus extension) to write broken encodings."""
    field = length_field(len(payload)) if length is None else length
    head = bytes([first, field[0] | (0x80 if mask else 0)]) + field[1:]
    return head + MASK + masked(payload) if mask else head + payload


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def parse(data: bytes, way: str, max_message_bytes: int = 1 << 20, **options):
    """Feed ``data`` whole or bytewise; the events, and the error if any."""
    parser = FrameParser(max_message_bytes, **options)
    pieces = [data] if way == "whole" else [data[i : i + 1] for i in range(len(data))]
    events: list = []
    for piece in pieces:
        parser.feed(piece)
        try:
            while (event := parser.next_event()) is not NEED_DATA:
                events.append(event)
        except WebSocketError as error:
            with pytest.raises(WebSocketError) as again:
                parser.next_event()
            assert again.value is error, "errors must be sticky"
            return events, error
    return events, None


def events_of(data: bytes, way: str, **options) -> list:
    events, error = parse(data, way, **options)
    assert error is None, f"unexpected {error!r}"
    return events


def error_of(data: bytes, way: str, **options) -> WebSocketError:
    _, error = parse(data, way, **options)
    assert error is not None, "expected a WebSocketError"
    return error


# -- messages and control frames -------------------------------------------


@pytest.mark.parametrize("way", WAYS)
def test_rfc_masked_hello_is_a_text_message(way):
    # Section 5.7: "A single-frame masked text message".
    data = bytes.fromhex("818537fa213d7f9f4d5158")
    assert events_of(data, way) == [TextMessage("Hello")]


@pytest.mark.parametrize("way", WAYS)
def test_fragmented_text_with_interleaved_control_frames(way):
    data = (
        raw(TEXT, b"Hel")
        + raw(FIN | PING, b"p1")
        + raw(CONT, b"lo, ")
        + raw(FIN | PONG, b"q")
        + raw(FIN | PING)
        + raw(FIN | CONT, b"world")
    )
    assert events_of(data, way) == [
        Ping(b"p1"),
        Pong(b"q"),
        Ping(b""),
        TextMessage("Hello, world"),
    ]


@pytest.mark.parametrize("way", WAYS)
def test_utf8_character_split_across_three_fragments(way):
    euro = "€".encode()  # e2 82 ac
    data = raw(TEXT, euro[:1]) + raw(CONT, euro[1:2]) + raw(FIN | CONT, euro[2:] + b"!")
    assert events_of(data, way) == [TextMessage("€!")]


@pytest.mark.parametrize("way", WAYS)
def test_fragmented_binary_message_is_joined(way):
    data = raw(BINARY, b"\x00\x01") + raw(CONT, b"") + raw(FIN | CONT, b"\xff")
    assert events_of(data, way) == [BinaryMessage(b"\x00\x01\xff")]


@pytest.mark.parametrize("way", WAYS)
def test_empty_messages_and_back_to_back_messages(way):
    data = raw(FIN | TEXT) + raw(FIN | BINARY) + raw(FIN | TEXT, b"a") + raw(FIN | BINARY, b"b")
    assert events_of(data, way) == [
        TextMessage(""),
        BinaryMessage(b""),
        TextMessage("a"),
        BinaryMessage(b"b"),
    ]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 70000])
def test_payload_lengths_at_the_encoding_boundaries(way, size):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    data = raw(FIN | BINARY, payload)
    if way == "bytewise" and size > 1000:
        # Byte by byte over 64 KiB is slow and adds nothing over 1,000-byte pieces.
        parser = FrameParser(1 << 20)
        for start in range(0, len(data), 1000):
            parser.feed(data[start : start + 1000])
            event = parser.next_event()
        assert event == BinaryMessage(payload)
    else:
        assert events_of(data, way) == [BinaryMessage(payload)]


@pytest.mark.parametrize("way", WAYS)
def test_close_without_payload_has_no_code(way):
    assert events_of(raw(FIN | CLOSE), way) == [CloseReceived(None, "")]


@pytest.mark.parametrize("way", WAYS)
def test_close_with_code_and_utf8_reason(way):
    data = raw(FIN | CLOSE, close_payload(1001, "au revoir, héhé".encode()))
    assert events_of(data, way) == [CloseReceived(1001, "au revoir, héhé")]


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                  1012, 1013, 1014, 3000, 3999, 4000, 4999])
def test_valid_close_codes_are_accepted(code):
    assert events_of(raw(FIN | CLOSE, close_payload(code)), "whole") == [CloseReceived(code, "")]


@pytest.mark.parametrize("way", WAYS)
def test_bytes_after_close_are_discarded(way):
    data = raw(FIN | CLOSE, close_payload(1000)) + raw(FIN | TEXT, b"late") + b"\xff\xff"
    assert events_of(data, way) == [CloseReceived(1000, "")]


def test_parser_reports_closed_after_close_frame():
    parser = FrameParser(100)
    parser.feed(raw(FIN | CLOSE))
    assert not parser.closed
    assert parser.next_event() == CloseReceived(None, "")
    assert parser.closed
    parser.feed(raw(FIN | TEXT, b"more"))
    assert parser.next_event() is NEED_DATA


def test_unmasked_frames_are_read_when_parsing_as_the_client():
    # Section 5.7: "A fragmented unmasked text message" and an unmasked Ping.
    data = bytes.fromhex("010348656c" "80026c6f" "890548656c6c6f")
    events = events_of(data, "whole", expect_masked=False)
    assert events == [TextMessage("Hello"), Ping(b"Hello")]


def test_masked_frame_is_refused_when_parsing_as_the_client():
    error = error_of(raw(FIN | TEXT, b"hi"), "whole", expect_masked=False)
    assert error.close_code == 1002


# -- protocol errors (1002) ------------------------------------------------

PROTOCOL_ERRORS = {
    "unmasked client frame": raw(FIN | TEXT, b"hi", mask=False),
    "unmasked empty client frame": raw(FIN | BINARY, mask=False),
    "RSV1 without an extension": raw(FIN | 0x40 | TEXT, b"hi"),
    "RSV2 without an extension": raw(FIN | 0x20 | TEXT, b"hi"),
    "RSV3 without an extension": raw(FIN | 0x10 | BINARY, b"hi"),
    "RSV1 on a control frame": raw(FIN | 0x40 | PING),
    "ping over 125 bytes": raw(FIN | PING, b"x" * 126),
    "close over 125 bytes": raw(FIN | CLOSE, close_payload(1000, b"x" * 124)),
    "pong with a 64-bit length": raw(FIN | PONG, b"x", length=b"\x7f" + (1).to_bytes(8, "big")),
    "fragmented ping": raw(PING, b"x"),
    "fragmented close": raw(CLOSE),
    "continuation without a start": raw(FIN | CONT, b"x"),
    "unfinished continuation without a start": raw(CONT, b"x"),
    "text inside a fragmented text": raw(TEXT, b"a") + raw(FIN | TEXT, b"b"),
    "binary inside a fragmented text": raw(TEXT, b"a") + raw(FIN | BINARY, b"b"),
    "text inside a fragmented binary": raw(BINARY, b"a") + raw(TEXT, b"b"),
    "continuation after a finished message": raw(FIN | TEXT, b"a") + raw(FIN | CONT, b"b"),
    "close payload of one byte": raw(FIN | CLOSE, b"\x03"),
    "64-bit length with its high bit set": raw(
        FIN | BINARY, length=b"\x7f\x80\x00\x00\x00\x00\x00\x00\x01"
    ),
    "16-bit encoding of a 7-bit length": raw(FIN | BINARY, b"abc", length=b"\x7e\x00\x03"),
    "16-bit encoding of 125": raw(FIN | BINARY, b"x" * 125, length=b"\x7e\x00\x7d"),
    "64-bit encoding of a 7-bit length": raw(
        FIN | TEXT, b"abc", length=b"\x7f" + (3).to_bytes(8, "big")
    ),
    "64-bit encoding of 65535": raw(
        FIN | BINARY, b"x" * 65535, length=b"\x7f" + (65535).to_bytes(8, "big")
    ),
}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("data", PROTOCOL_ERRORS.values(), ids=PROTOCOL_ERRORS.keys())
def test_protocol_violation_fails_with_1002(data, way):
    assert error_of(data, way).close_code == 1002


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcode_fails_with_1002(opcode, way):
    assert error_of(raw(FIN | opcode, b"x"), way).close_code == 1002


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
                                  5000, 65535])
def test_invalid_close_code_fails_with_1002(code, way):
    assert error_of(raw(FIN | CLOSE, close_payload(code)), way).close_code == 1002


def test_minimal_16_and_64_bit_lengths_are_accepted():
    # The smallest lengths each extension may carry (section 5.2).
    assert events_of(raw(FIN | BINARY, b"x" * 126), "whole") == [BinaryMessage(b"x" * 126)]
    data = raw(FIN | BINARY, b"y" * 65536)
    assert events_of(data, "whole") == [BinaryMessage(b"y" * 65536)]


# -- invalid UTF-8 (1007) --------------------------------------------------

INVALID_TEXT = {
    "invalid start byte": raw(FIN | TEXT, b"ok\xff"),
    "lone continuation byte": raw(FIN | TEXT, b"\x80"),
    "encoded surrogate": raw(FIN | TEXT, b"\xed\xa0\x80"),
    "overlong encoding": raw(FIN | TEXT, b"\xc0\xaf"),
    "beyond U+10FFFF": raw(FIN | TEXT, b"\xf4\x90\x80\x80"),
    "message ends inside a character": raw(FIN | TEXT, b"a\xe2\x82"),
    "fragments end inside a character": raw(TEXT, b"a") + raw(FIN | CONT, b"\xe2\x82"),
    "character broken across fragments": raw(TEXT, b"\xce") + raw(FIN | CONT, b"A"),
    "invalid in a later fragment": raw(TEXT, "é".encode()) + raw(FIN | CONT, b"\xff"),
    "close reason": raw(FIN | CLOSE, close_payload(1000, b"\xff")),
    "close reason ends inside a character": raw(FIN | CLOSE, close_payload(1000, b"\xe2\x82")),
}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("data", INVALID_TEXT.values(), ids=INVALID_TEXT.keys())
def test_invalid_utf8_fails_with_1007(data, way):
    assert error_of(data, way).close_code == 1007


def test_invalid_utf8_fails_before_the_frame_is_complete():
    parser = FrameParser(1 << 20)
    frame = raw(FIN | TEXT, b"ok\xff" + b"a" * 1000)
    parser.feed(frame[:12])  # header (2), 16-bit length (2), mask (4), 4 payload bytes
    with pytest.raises(WebSocketError) as caught:
        parser.next_event()
    assert caught.value.close_code == 1007


def test_invalid_utf8_fails_before_the_message_is_complete():
    parser = FrameParser(1 << 20)
    parser.feed(raw(TEXT, b"fine") + raw(CONT, b"\xc3\x28"))
    with pytest.raises(WebSocketError) as caught:
        parser.next_event()
    assert caught.value.close_code == 1007


def test_binary_messages_are_not_checked_as_utf8():
    assert events_of(raw(FIN | BINARY, b"\xff\xfe"), "whole") == [BinaryMessage(b"\xff\xfe")]


# -- size limits (1009) ----------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
def test_message_at_the_limit_is_accepted(way):
    data = raw(TEXT, b"12345") + raw(FIN | CONT, b"67890")
    assert events_of(data, way, max_message_bytes=10) == [TextMessage("1234567890")]


@pytest.mark.parametrize("way", WAYS)
def test_message_over_the_limit_fails_with_1009(way):
    data = raw(TEXT, b"12345") + raw(FIN | CONT, b"678901")
    assert error_of(data, way, max_message_bytes=10).close_code == 1009


def test_oversized_frame_is_refused_from_its_header_alone():
    parser = FrameParser(max_message_bytes=100)
    parser.feed(raw(FIN | BINARY, b"x" * 101)[:8])  # 2 header bytes + 2 length + mask
    with pytest.raises(WebSocketError) as caught:
        parser.next_event()
    assert caught.value.close_code == 1009


def test_huge_announced_length_is_refused_without_its_payload():
    parser = FrameParser(max_message_bytes=1 << 20)
    parser.feed(bytes([FIN | BINARY, 0x80 | 127]) + (1 << 62).to_bytes(8, "big") + MASK)
    with pytest.raises(WebSocketError) as caught:
        parser.next_event()
    assert caught.value.close_code == 1009


def test_later_fragment_over_the_limit_is_refused_from_its_header():
    parser = FrameParser(max_message_bytes=10)
    parser.feed(raw(BINARY, b"x" * 6) + raw(FIN | CONT, b"y" * 5)[:6])
    with pytest.raises(WebSocketError) as caught:
        parser.next_event()
    assert caught.value.close_code == 1009


@pytest.mark.parametrize("way", WAYS)
def test_frame_over_max_frame_bytes_fails_with_1009(way):
    data = raw(BINARY, b"1234") + raw(FIN | CONT, b"12345")
    assert error_of(data, way, max_frame_bytes=4).close_code == 1009
    ok = raw(BINARY, b"1234") + raw(FIN | CONT, b"1234")
    assert events_of(ok, way, max_frame_bytes=4) == [BinaryMessage(b"12341234")]


@pytest.mark.parametrize("way", WAYS)
def test_control_frames_do_not_count_towards_the_message_limit(way):
    data = raw(TEXT, b"12345") + raw(FIN | PING, b"p" * 100) + raw(FIN | CONT, b"12345")
    events = events_of(data, way, max_message_bytes=10)
    assert events == [Ping(b"p" * 100), TextMessage("1234512345")]


def test_limit_applies_to_each_message_not_the_connection():
    data = raw(FIN | BINARY, b"x" * 10) * 3
    assert events_of(data, "whole", max_message_bytes=10) == [BinaryMessage(b"x" * 10)] * 3


# -- encoding --------------------------------------------------------------


def test_encode_frame_matches_rfc_examples():
    # Section 5.7, unmasked and masked.
    assert encode_frame(Opcode.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    assert encode_frame(Opcode.TEXT, b"Hello", mask=MASK) == bytes.fromhex(
        "818537fa213d7f9f4d5158"
    )
    assert encode_frame(Opcode.TEXT, b"Hel", fin=False) == bytes.fromhex("010348656c")
    assert encode_frame(Opcode.CONTINUATION, b"lo") == bytes.fromhex("80026c6f")
    assert encode_frame(Opcode.PONG, b"Hello", mask=MASK) == bytes.fromhex(
        "8a8537fa213d7f9f4d5158"
    )
    assert encode_frame(Opcode.BINARY, bytes(256))[:4] == bytes.fromhex("827e0100")
    assert encode_frame(Opcode.BINARY, bytes(65536))[:10] == bytes.fromhex("827f0000000000010000")


@pytest.mark.parametrize(
    "size, header",
    [(0, "8200"), (125, "827d"), (126, "827e007e"), (65535, "827effff"),
     (65536, "827f0000000000010000")],
)
def test_encode_frame_uses_the_minimal_length(size, header):
    frame = encode_frame(Opcode.BINARY, b"z" * size)
    assert frame == bytes.fromhex(header) + b"z" * size


def test_encode_frame_refuses_invalid_control_frames():
    with pytest.raises(ValueError):
        encode_frame(Opcode.PING, b"x" * 126)
    with pytest.raises(ValueError):
        encode_frame(Opcode.CLOSE, b"", fin=False)
    with pytest.raises(ValueError):
        encode_frame(Opcode.TEXT, b"x", mask=b"abc")
    with pytest.raises(ValueError):
        encode_frame(0x3, b"x")


@pytest.mark.parametrize("size", [0, 1, 5, 126, 70000])
def test_masked_encoding_round_trips_through_the_parser(size):
    payload = bytes(i % 251 for i in range(size))
    frame = encode_frame(Opcode.BINARY, payload, mask=b"\x01\x02\x03\x04")
    assert events_of(frame, "whole") == [BinaryMessage(payload)]


def test_encode_close_payloads():
    assert encode_close(1000) == b"\x88\x02\x03\xe8"
    assert encode_close(1001, "bye") == b"\x88\x05\x03\xe9bye"
    assert encode_close(None) == b"\x88\x00"
    assert encode_close(4000, "é" * 61 + "x") == b"\x88\x7d\x0f\xa0" + ("é" * 61 + "x").encode()


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_encode_close_refuses_codes_that_may_not_be_sent(code):
    with pytest.raises(ValueError):
        encode_close(code)


def test_encode_close_refuses_long_reason_and_reason_without_code():
    with pytest.raises(ValueError):
        encode_close(1000, "x" * 124)
    with pytest.raises(ValueError):
        encode_close(1000, "é" * 62)  # 124 bytes of UTF-8
    with pytest.raises(ValueError):
        encode_close(None, "why")


def test_close_code_validity_table():
    valid = [code for code in range(0, 6000) if is_valid_close_code(code)]
    expected = [1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)]
    assert valid == expected


# -- layering --------------------------------------------------------------

FORBIDDEN = {"socket", "threading", "time", "logging", "select", "selectors", "asyncio"}


@pytest.mark.parametrize("module", ["frames.py", "handshake.py"])
def test_sans_io_modules_import_no_io(module):
    path = Path(wsgiserver.websocket.__file__).parent / module
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)]
    assert not [s for s in strings if isinstance(s, str) and s.startswith("HTTP_")]


def test_public_api_is_listed():
    for name in wsgiserver.websocket.__all__:
        assert hasattr(wsgiserver.websocket, name)
