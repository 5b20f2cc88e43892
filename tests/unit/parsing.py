"""Test helper: feed the sans-IO parser in chosen pieces and collect what it says.

Every parser test goes through here, so that each case can be fed whole, one
byte at a time, in arbitrary splits, and with a pipelined request after it,
and so that the event order and the stickiness of errors are checked on every
case, not only where a test remembers to.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wsgiserver.errors import ProtocolError
from wsgiserver.protocol import (
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    ParserLimits,
    Request,
    RequestParser,
)
from wsgiserver.protocol.state import client_persists

# A complete request that must come out intact after any case it follows.
FOLLOWING = b"GET /following?x=1 HTTP/1.1\r\nHost: following.example\r\n\r\n"

# How each table case is fed: see pieces_for().
WAYS = ("whole", "bytewise", "trailing")


@dataclass
class Message:
    """One complete request: its head, its whole body, its trailers."""

    request: Request
    body: bytes = b""
    trailers: tuple[tuple[bytes, bytes], ...] = ()
    data_events: int = 0


@dataclass
class Outcome:
    """Everything the parser produced for one feeding."""

    parser: RequestParser
    messages: list[Message] = field(default_factory=list)
    # A request whose head came out but whose body did not end.
    partial: Message | None = None
    error: ProtocolError | None = None

    @property
    def status(self) -> int | None:
        return None if self.error is None else self.error.status

    @property
    def message(self) -> Message:
        """The one complete message; fails the test if there is not exactly one."""
        assert self.error is None, f"unexpected {self.error!r}"
        assert len(self.messages) == 1, f"{len(self.messages)} messages"
        return self.messages[0]

    @property
    def request(self) -> Request:
        return self.message.request


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (duplicates and ends allowed)."""
    points = sorted({0, len(data), *(c for c in cuts if 0 <= c <= len(data))})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)] or [b""]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_splits(data: bytes, seed: int, count: int) -> list[list[bytes]]:
    """``count`` seeded random splittings of ``data`` into 2..9 pieces."""
    rng = random.Random(seed)
    splittings = []
    for _ in range(count):
        cuts = [rng.randrange(len(data) + 1) for _ in range(rng.randint(1, 8))]
        splittings.append(split_at(data, cuts))
    return splittings


def parse(
    pieces: Sequence[bytes],
    limits: ParserLimits | None = None,
    max_data: int | None = None,
    stop_after: int | None = None,
) -> Outcome:
    """Feed ``pieces`` one after another, pulling events after each.

    Goes on through pipelined requests (calling start_next_request) until
    ``stop_after`` messages are complete, then keeps feeding the rest of the
    pieces without pulling, so they stay buffered. Stops at the first
    ProtocolError, after checking that the parser raises it again.
    """
    parser = RequestParser(limits)
    outcome = Outcome(parser)
    for piece in pieces:
        parser.feed(piece)
        if outcome.error is None and not _done(outcome, stop_after):
            _pull(outcome, max_data, stop_after)
    return outcome


def _done(outcome: Outcome, stop_after: int | None) -> bool:
    return stop_after is not None and len(outcome.messages) >= stop_after


def _pull(outcome: Outcome, max_data: int | None, stop_after: int | None) -> None:
    parser = outcome.parser
    while True:
        try:
            event = parser.next_event(max_data)
        except ProtocolError as error:
            outcome.error = error
            _check_error_is_sticky(parser, error)
            return
        if event is NEED_DATA:
            return
        if event is PAUSED:
            assert outcome.partial is None, "PAUSED before EndOfMessage"
            assert parser.request_complete
            if _done(outcome, stop_after):
                return
            parser.start_next_request()
            continue
        _record(outcome, event, max_data)


def _record(outcome: Outcome, event, max_data: int | None) -> None:
    partial = outcome.partial
    if isinstance(event, Request):
        assert partial is None, "Request event inside a message"
        outcome.partial = Message(event)
    elif isinstance(event, Data):
        assert partial is not None, "Data event before a Request"
        assert event.data, "empty Data event"
        assert max_data is None or len(event.data) <= max_data
        partial.body += event.data
        partial.data_events += 1
    elif isinstance(event, EndOfMessage):
        assert partial is not None, "EndOfMessage before a Request"
        partial.trailers = event.trailers
        outcome.messages.append(partial)
        outcome.partial = None
    else:
        raise AssertionError(f"unknown event {event!r}")


def _check_error_is_sticky(parser: RequestParser, error: ProtocolError) -> None:
    # After an error the framing cannot be trusted: every later call, even
    # with more (valid) bytes, must raise the same error again.
    for more in (b"", FOLLOWING):
        parser.feed(more)
        try:
            event = parser.next_event()
        except ProtocolError as again:
            assert again.status == error.status, (again, error)
        else:
            raise AssertionError(f"parser went on after {error!r} with {event!r}")


def pieces_for(data: bytes, way: str) -> list[bytes]:
    """The pieces a table case is fed in: whole, bytewise, or whole with FOLLOWING."""
    if way == "whole":
        return [data]
    if way == "bytewise":
        return bytewise(data)
    if way == "trailing":
        return [data + FOLLOWING]
    raise ValueError(way)


def parse_way(data: bytes, way: str, limits: ParserLimits | None = None, **options) -> Outcome:
    """Parse one case the given way; for "trailing", check FOLLOWING comes out intact."""
    outcome = parse(pieces_for(data, way), limits, stop_after=1, **options)
    if way == "trailing" and outcome.error is None and outcome.messages:
        assert_following_intact(outcome)
    return outcome


def assert_following_intact(outcome: Outcome) -> None:
    """After a complete message, FOLLOWING is buffered and parses unchanged."""
    parser = outcome.parser
    assert parser.next_event() is PAUSED
    parser.start_next_request()
    after = Outcome(parser)
    _pull(after, None, 1)
    assert after.error is None, f"the following request was refused: {after.error!r}"
    assert len(after.messages) == 1, "the following request did not come out"
    following = after.messages[0]
    assert following.request.target == b"/following?x=1"
    assert following.request.header(b"host") == b"following.example"
    assert following.body == b""
    assert parser.buffered == 0


def assert_outcome(outcome: Outcome, expected) -> None:
    """``expected`` is a status (int) or a dict of Request attributes, plus
    optionally ``body`` and ``trailers``, the one message must have."""
    if isinstance(expected, int):
        assert outcome.error is not None, f"accepted; expected {expected}"
        assert outcome.status == expected, f"{outcome.error!r}; expected {expected}"
        return
    message = outcome.message
    for name, value in expected.items():
        if name == "body":
            actual = message.body
        elif name == "trailers":
            actual = message.trailers
        elif name == "client_persists":
            actual = client_persists(message.request)
        else:
            actual = getattr(message.request, name)
        assert actual == value, f"{name}: {actual!r} != {value!r}"


def events_of(outcome: Outcome) -> list:
    """The outcome as comparable values: one tuple per message, then the error."""
    summary: list = [(m.request, m.body, m.trailers) for m in outcome.messages]
    if outcome.partial is not None:
        summary.append(("partial", outcome.partial.request, outcome.partial.body))
    if outcome.error is not None:
        summary.append(("error", outcome.error.status))
    return summary
