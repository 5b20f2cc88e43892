"""HPACK that remembers the blocks it coded: always the bytes and fields a
plain coder gives, whatever the table does in between."""

from __future__ import annotations

import random

import pytest

hpack = pytest.importorskip("hpack")

from wsgiserver.h2hpack import RememberingDecoder, RememberingEncoder  # noqa: E402

RESPONSE = [(b":status", b"200"), (b"content-type", b"text/plain"),
            (b"content-length", b"13"), (b"server", b"wsgiserver")]


def _field_lists(count: int, seed: int) -> list[list[tuple[bytes, bytes]]]:
    """Field lists that repeat often and change now and then (a new date, a
    new length), some large enough to evict entries from a small table."""
    chooser = random.Random(seed)
    lists = []
    for n in range(count):
        fields = [(b":status", b"200"), (b"date", b"second %d" % (n // 7))]
        fields.append((b"content-length", b"%d" % chooser.choice([13, 13, 13, 2048])))
        if chooser.random() < 0.1:
            fields.append((b"x-large", b"v" * chooser.choice([100, 600, 5000])))
        lists.append(fields)
    return lists


@pytest.mark.parametrize("table_size", [4096, 256, 0])
def test_encoded_blocks_are_the_plain_encoders_bytes(table_size):
    remembering, plain = RememberingEncoder(), hpack.Encoder()
    remembering.header_table_size = plain.header_table_size = table_size
    for fields in _field_lists(300, seed=table_size):
        assert remembering.encode(list(fields)) == plain.encode(list(fields))


@pytest.mark.parametrize("table_size", [4096, 256])
def test_decoded_fields_are_the_plain_decoders(table_size):
    encoder = hpack.Encoder()
    encoder.header_table_size = table_size
    remembering, plain = RememberingDecoder(65536), hpack.Decoder(65536)
    for fields in _field_lists(300, seed=table_size + 1):
        block = encoder.encode(fields)
        assert remembering.decode(block, raw=True) == plain.decode(block, raw=True) == fields


def test_a_repeated_block_is_decoded_from_memory_and_a_copy_each_time():
    encoder, decoder = hpack.Encoder(), RememberingDecoder(65536)
    decoder.decode(encoder.encode(RESPONSE), raw=True)  # enters the table
    block = encoder.encode(RESPONSE)  # all references now
    first = decoder.decode(block, raw=True)
    first.append((b"x", b"y"))  # the caller's list is its own
    assert decoder.decode(block, raw=True) == RESPONSE


def test_a_size_update_is_sent_though_the_fields_were_coded_before():
    encoder = RememberingEncoder()
    encoder.encode(list(RESPONSE))
    remembered = encoder.encode(list(RESPONSE))
    encoder.header_table_size = 0  # the peer's SETTINGS_HEADER_TABLE_SIZE
    block = encoder.encode(list(RESPONSE))
    assert block != remembered and block[0] & 0xE0 == 0x20  # RFC 7541 6.3
    assert hpack.Decoder().decode(block, raw=True) == RESPONSE


def test_a_never_indexed_field_is_never_taken_for_a_plain_one():
    remembering, plain = RememberingEncoder(), hpack.Encoder()
    sensitive = [hpack.NeverIndexedHeaderTuple(b"authorization", b"secret")]
    fields = [(b"authorization", b"secret")]
    for encoder in (remembering, plain):
        encoder.encode(list(sensitive))
        encoder.encode(list(fields))
        encoder.encode(list(fields))
    assert remembering.encode(sensitive) == plain.encode(sensitive)
    assert remembering.encode(list(fields)) == plain.encode(list(fields))


def test_a_header_list_over_the_limit_is_refused_even_after_it_was_taken():
    encoder, decoder = hpack.Encoder(), RememberingDecoder(4096)
    fields = [(b"x-a", b"a" * 40)]
    decoder.decode(encoder.encode(fields), raw=True)
    block = encoder.encode(fields)
    assert decoder.decode(block, raw=True) == fields
    decoder.max_header_list_size = 50
    with pytest.raises(hpack.OversizedHeaderListError):
        decoder.decode(block, raw=True)


def test_a_block_of_many_indexed_fields_is_not_kept():
    # A byte per indexed field: 300 bytes can name 300 fields. Such a block
    # decodes right, but is not kept (its fields would cost ~100x its bytes).
    decoder = RememberingDecoder(1 << 20)
    block = bytes([0x82]) * 300  # :method GET, 300 times (static table, index 2)
    assert decoder.decode(block, raw=True) == [(b":method", b"GET")] * 300
    assert decoder._blocks == {}
    small = bytes([0x82]) * 3
    decoder.decode(small, raw=True)
    assert list(decoder._blocks) == [small]


def test_the_table_changes_only_the_ways_the_counter_sees():
    # h2hpack counts changes through HeaderTable.add and the maxsize setter;
    # a new way to change the table in hpack would make kept blocks stale.
    from hpack.table import HeaderTable

    members = {name for name in vars(HeaderTable) if not name.startswith("__")}
    assert members == {"DEFAULT_SIZE", "STATIC_TABLE", "STATIC_TABLE_LENGTH",
                       "STATIC_TABLE_MAPPING", "_shrink", "add", "get_by_index",
                       "maxsize", "search"}, "hpack's HeaderTable changed: review h2hpack.py"
