"""HPACK (RFC 7541) for one HTTP/2 connection, remembering the header blocks
it has just coded, given to the h2 library in place of its own coder.

A server answers many responses with the same fields, and a client sends
many requests with the same header block. Once every field of a block is in
the dynamic table (RFC 7541 section 2.3), the block codes to the same bytes,
and the same bytes decode to the same fields, until the table changes: so the
first blocks coded after a change are kept (a few, small ones only), and
forgotten whenever the table changes again (an entry added or evicted, a
size update). Knows nothing of frames, streams or sockets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack import Decoder, Encoder, HeaderTuple
from hpack.table import HeaderTable

__all__ = ["RememberingEncoder", "RememberingDecoder"]

# Blocks kept per direction and connection, the largest kept, and the most
# fields a kept block may decode to (a byte per indexed field: 512 bytes can
# name 512 fields): the memory stays small (some tens of KiB at most),
# whatever the client sends.
_BLOCKS_KEPT = 16
_LARGEST_BLOCK = 512
_MOST_FIELDS = 64


class _CountedTable(HeaderTable):
    """A dynamic table that counts its changes (what a kept block depends on)."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.changes += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class RememberingEncoder(Encoder):
    """An HPACK encoder that codes a field list it coded since the table
    last changed from memory."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table: _CountedTable = _CountedTable()
        self._blocks: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}
        self._changes = 0

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.header_table
        # Only plain (name, value) lists: a never-indexed field compares
        # equal to a plain one, but is coded differently.
        if type(headers) is not list or not huffman or table.resized or \
                not all(type(field) is tuple for field in headers):
            return super().encode(headers, huffman)
        if table.changes != self._changes:
            self._blocks.clear()
            self._changes = table.changes
        key = tuple(headers)
        block = self._blocks.get(key)
        if block is None:
            block = super().encode(headers, huffman)
            # Kept only if coding it changed nothing: it is then all
            # references, and codes the same way until the table changes.
            if table.changes == self._changes and len(block) <= _LARGEST_BLOCK and \
                    len(headers) <= _MOST_FIELDS and len(self._blocks) < _BLOCKS_KEPT:
                self._blocks[key] = block
        return block


class RememberingDecoder(Decoder):
    """An HPACK decoder that decodes a block it decoded since the table last
    changed from memory (the fields as bytes: ``raw``)."""

    def __init__(self, max_header_list_size: int) -> None:
        super().__init__(max_header_list_size)
        self.header_table: _CountedTable = _CountedTable()
        self._blocks: dict[bytes, list[HeaderTuple]] = {}
        self._state: tuple[int, int, int] = (0, 0, 0)

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        if not raw or len(data) > _LARGEST_BLOCK:
            return super().decode(data, raw)
        # What a block's fields depend on besides its bytes: the table, and
        # the limits it was checked against.
        state = (self.header_table.changes, self.max_header_list_size,
                 self.max_allowed_table_size)
        if state != self._state:
            self._blocks.clear()
            self._state = state
        key = bytes(data)
        fields = self._blocks.get(key)
        if fields is not None:
            return list(fields)
        decoded = list(super().decode(data, raw))
        if self.header_table.changes == state[0] and len(self._blocks) < _BLOCKS_KEPT \
                and len(decoded) <= _MOST_FIELDS:
            self._blocks[key] = decoded
            return list(decoded)
        return decoded
