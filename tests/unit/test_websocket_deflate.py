"""permessage-deflate (RFC 7692): which offers are taken, messages compressed
and inflated, bombs stopped; and a message's memory bounded whatever its
fragmentation."""

from __future__ import annotations

import os
import tracemalloc
import zlib

import pytest

from wsgiserver.websocket import BinaryMessage, FrameParser, Opcode, TextMessage, WebSocketError
from wsgiserver.websocket.deflate import Deflate, negotiate
from wsgiserver.websocket.frames import encode_frame

MASK = b"\x01\x02\x03\x04"
OURS = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


@pytest.mark.parametrize("offer, response", [
    ("permessage-deflate", OURS),
    ("permessage-deflate; client_max_window_bits", OURS),  # Chromium's offer
    ("permessage-deflate; client_max_window_bits=12", OURS),
    ("PerMessage-Deflate; server_no_context_takeover", OURS),
    ("permessage-deflate; server_max_window_bits=10", OURS + "; server_max_window_bits=10"),
    ('permessage-deflate; server_max_window_bits="12"', OURS + "; server_max_window_bits=12"),
    # The first offer we can honour wins (RFC 7692 section 5).
    ("x-webkit-deflate-frame, permessage-deflate; foo=1, permessage-deflate", OURS),
])
def test_offers_we_honour(offer, response):
    agreed = negotiate(offer)
    assert agreed is not None and agreed.response == response


@pytest.mark.parametrize("offer", [
    None,
    "",
    "x-webkit-deflate-frame",
    "permessage-deflate; unknown_parameter",
    "permessage-deflate; server_max_window_bits=8",  # zlib cannot compress with 8 bits
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits",  # needs a value
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
])
def test_offers_we_decline(offer):
    assert negotiate(offer) is None


def client_compress(payload: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def frames_of(data: bytes, opcode=Opcode.BINARY, piece: int = 0, compressed=True) -> bytes:
    """A client's masked frames for ``data``, in pieces of ``piece`` bytes (0: one frame)."""
    if not piece:
        return encode_frame(opcode, data, mask=MASK, compressed=compressed)
    pieces = [data[i:i + piece] for i in range(0, len(data), piece)] or [b""]
    out = []
    for index, chunk in enumerate(pieces):
        out.append(encode_frame(opcode if index == 0 else Opcode.CONTINUATION, chunk,
                                fin=index == len(pieces) - 1, mask=MASK,
                                compressed=compressed and index == 0))
    return b"".join(out)


def parse_all(parser: FrameParser, data: bytes):
    parser.feed(data)
    return parser.next_event()


@pytest.mark.parametrize("piece", [0, 1, 7, 1000])
def test_a_compressed_message_is_inflated_whole_or_fragmented(piece):
    text = ("the quick brown fox " * 500).encode()
    parser = FrameParser(1 << 20, deflate=Deflate())
    event = parse_all(parser, frames_of(client_compress(text), Opcode.TEXT, piece))
    assert event == TextMessage(text.decode())


def test_a_compression_bomb_is_closed_with_1009_before_it_is_inflated():
    bomb = client_compress(b"\0" * (64 << 20))  # 64 MiB of zeros: about 64 KiB on the wire
    assert len(bomb) < 100_000
    parser = FrameParser(1 << 20, deflate=Deflate())
    tracemalloc.start()
    with pytest.raises(WebSocketError) as raised:
        parse_all(parser, frames_of(bomb, piece=4096))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert raised.value.close_code == 1009
    assert peak < 8 << 20  # never near the 64 MiB it would inflate to


def test_rsv1_without_the_extension_or_on_a_continuation_is_a_protocol_error():
    with pytest.raises(WebSocketError) as raised:
        parse_all(FrameParser(1 << 20), frames_of(b"x"))
    assert raised.value.close_code == 1002
    continuation_marked = (encode_frame(Opcode.BINARY, b"a", fin=False, mask=MASK)
                           + bytes([0x80 | 0x40]) + encode_frame(Opcode.CONTINUATION, b"b",
                                                                 mask=MASK)[1:])
    with pytest.raises(WebSocketError) as raised:
        parse_all(FrameParser(1 << 20, deflate=Deflate()), continuation_marked)
    assert raised.value.close_code == 1002


def test_garbage_marked_as_compressed_fails_the_connection():
    with pytest.raises(WebSocketError) as raised:
        parse_all(FrameParser(1 << 20, deflate=Deflate()), frames_of(b"\xff\xff\xff\xff"))
    assert raised.value.close_code == 1002


def test_our_messages_compress_and_a_client_inflates_them():
    deflate = Deflate()
    payload = b"abcabcabc" * 1000
    compressed = deflate.compress(payload)
    assert compressed is not None and len(compressed) < len(payload) // 10
    inflater = zlib.decompressobj(-15)
    assert inflater.decompress(compressed + b"\x00\x00\xff\xff") == payload
    assert deflate.compress(b"short") is None  # not worth it
    assert deflate.compress(os.urandom(4096)) is None  # incompressible: sent as it is


def test_uncompressed_messages_still_pass_when_deflate_is_agreed():
    parser = FrameParser(1 << 20, deflate=Deflate())
    assert parse_all(parser, frames_of(b"plain", compressed=False)) == BinaryMessage(b"plain")


# -- memory whatever the fragmentation ----------------------------------------------


def test_a_message_in_64_byte_fragments_is_whole_and_costs_its_size():
    data = os.urandom(1 << 20)  # 16,384 fragments (the functional test echoes 4 MiB)
    parser = FrameParser(8 << 20)
    wire = frames_of(data, piece=64, compressed=False)
    tracemalloc.start()
    for start in range(0, len(wire), 1 << 16):
        parser.feed(wire[start:start + (1 << 16)])
        event = parser.next_event()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert event == BinaryMessage(data)
    assert peak < 3 * len(data)  # the message (and its copy out), not an entry per fragment


def test_empty_fragments_keep_nothing():
    parser = FrameParser(1 << 20)
    parser.feed(encode_frame(Opcode.BINARY, b"", fin=False, mask=MASK))
    parser.next_event()
    empty = encode_frame(Opcode.CONTINUATION, b"", fin=False, mask=MASK)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(50):
        parser.feed(empty * 1000)  # 50,000 empty fragments, 6 bytes each on the wire
        parser.next_event()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert kept < 64 * 1024  # an entry per fragment would be 400 KB
    parser.feed(encode_frame(Opcode.CONTINUATION, b"end", mask=MASK))
    assert parser.next_event() == BinaryMessage(b"end")


# The message limit counts the message as the application receives it.

LIMIT = 16 * 1024


def message_of(size: int, kind: str) -> bytes:
    if kind == "random":
        return os.urandom(size)
    return (b"repetitive " * (size // 11 + 1))[:size]


def client_frames(payload: bytes, compressed: bool, piece: int) -> bytes:
    data = client_compress(payload) if compressed else payload
    return frames_of(data, Opcode.BINARY, piece, compressed=compressed)


@pytest.mark.parametrize("piece", [0, 1000], ids=["whole", "fragmented"])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "deflate"])
@pytest.mark.parametrize("kind", ["random", "repetitive"])
@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT])
def test_a_message_up_to_the_limit_arrives_whatever_its_coding(size, kind, compressed, piece):
    payload = message_of(size, kind)
    if compressed and kind == "random":
        assert len(client_compress(payload)) > size  # the case that was refused
    parser = FrameParser(LIMIT, deflate=Deflate())
    assert parse_all(parser, client_frames(payload, compressed, piece)) == BinaryMessage(payload)


@pytest.mark.parametrize("piece", [0, 1000], ids=["whole", "fragmented"])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "deflate"])
@pytest.mark.parametrize("kind", ["random", "repetitive"])
def test_a_message_one_byte_over_the_limit_is_closed_with_1009(kind, compressed, piece):
    payload = message_of(LIMIT + 1, kind)
    parser = FrameParser(LIMIT, deflate=Deflate())
    with pytest.raises(WebSocketError) as raised:
        parse_all(parser, client_frames(payload, compressed, piece))
    assert raised.value.close_code == 1009


def test_a_stream_of_empty_deflate_blocks_is_closed_past_the_wire_bound():
    # Each sync flush of nothing is 5 bytes on the wire and inflates to none:
    # without a bound on the wire this would never end.
    empty_blocks = b"\x00\x00\x00\xff\xff" * 20_000  # 100,000 bytes
    parser = FrameParser(LIMIT, deflate=Deflate())
    with pytest.raises(WebSocketError) as raised:
        parse_all(parser, frames_of(empty_blocks, piece=4096))
    assert raised.value.close_code == 1009
