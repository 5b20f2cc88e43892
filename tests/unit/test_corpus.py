"""Replays tests/corpus/*.http against the parser; see tests/corpus/README.md.

Each case is fed whole, one byte at a time, and in several random splits
seeded by its name, and must give the outcome its .expect file describes
every time.
"""

from __future__ import annotations

import codecs
import shutil
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from wsgiserver.protocol import NEED_DATA, Framing, ParserLimits
from wsgiserver.protocol.state import client_persists

from .parsing import Message, Outcome, bytewise, parse, random_splits

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CASES = sorted(CORPUS.glob("*.http"))
RANDOM_SPLITS = 6


@dataclass
class Block:
    """One expected outcome, in order: a message ("ok"), an error, or a wait."""

    kind: str  # "ok", "status" or "incomplete"
    status: int | None = None
    checks: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Expectation:
    limits: ParserLimits | None
    blocks: list[Block]


def unescape(text: str) -> bytes:
    """A value as written in an .expect file: Python bytes escapes allowed."""
    return codecs.escape_decode(text.encode("latin-1"))[0]


def load_expectation(path: Path) -> Expectation:
    limits = None
    blocks: list[Block] = []
    for number, raw_line in enumerate(path.read_text("latin-1").splitlines(), 1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if key == "limits":
            limits = ParserLimits(**{k: int(v) for k, v in (p.split("=") for p in value.split())})
        elif key == "ok" or key == "incomplete":
            blocks.append(Block(key))
        elif key == "status":
            blocks.append(Block(key, status=int(value)))
        elif blocks and blocks[-1].kind == "ok":
            blocks[-1].checks.append((key, unescape(value)))
        else:
            raise ValueError(f"{path.name}:{number}: {line!r} outside an ok block")
    if not blocks:
        raise ValueError(f"{path.name}: no expectation")
    for block in blocks[:-1]:
        if block.kind != "ok":
            raise ValueError(f"{path.name}: '{block.kind}' must be the last block")
    return Expectation(limits, blocks)


FLAGS = {b"yes": True, b"no": False}
FRAMINGS = {framing.value.encode(): framing for framing in Framing}


def check_message(message: Message, checks: list[tuple[str, bytes]]) -> None:
    request = message.request
    for key, value in checks:
        if key == "header":
            name, _, expected = value.partition(b" ")
            assert request.header(name) == expected, f"header {name!r}"
        elif key == "no-header":
            assert request.header(value) is None, f"header {value!r}"
        elif key == "trailer":
            name, _, expected = value.partition(b" ")
            assert (name, expected) in message.trailers, f"trailer {name!r}: {message.trailers}"
        elif key == "no-trailers":
            assert message.trailers == ()
        elif key == "body":
            assert message.body == value
        elif key == "version":
            assert request.http_version == tuple(map(int, value.split(b".")))
        elif key == "framing":
            assert request.framing is FRAMINGS[value]
        elif key == "length":
            assert request.content_length == (None if value == b"none" else int(value))
        elif key == "keep-alive":
            # The client's half of persistence; the connection state adds
            # the server's (tests/unit/test_state.py).
            assert client_persists(request) is FLAGS[value], key
        elif key == "expect-continue":
            assert request.expect_continue is FLAGS[value], key
        elif key in ("method", "target", "path", "query", "scheme", "authority"):
            actual = getattr(request, key)
            assert actual == (None if value == b"none" else value), f"{key}: {actual!r}"
        else:
            raise ValueError(f"unknown check {key!r}")


def check_outcome(outcome: Outcome, expectation: Expectation) -> None:
    blocks = expectation.blocks
    oks = [block for block in blocks if block.kind == "ok"]
    assert len(outcome.messages) == len(oks), (
        f"{len(outcome.messages)} messages, expected {len(oks)}; error {outcome.error!r}"
    )
    for message, block in zip(outcome.messages, oks, strict=True):
        check_message(message, block.checks)
    last = blocks[-1]
    if last.kind == "status":
        assert outcome.error is not None, "accepted; expected an error"
        assert outcome.status == last.status, repr(outcome.error)
        return
    assert outcome.error is None, repr(outcome.error)
    if last.kind == "incomplete":
        assert outcome.parser.next_event() is NEED_DATA
        assert outcome.parser.buffered > 0
    else:
        # Every byte of the file belongs to the messages described.
        assert outcome.partial is None
        assert outcome.parser.buffered == 0


def feedings(raw: bytes, name: str):
    yield "whole", [raw]
    yield "bytewise", bytewise(raw)
    seed = zlib.crc32(name.encode())
    for number, pieces in enumerate(random_splits(raw, seed, RANDOM_SPLITS)):
        yield f"random-{number}", pieces


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.stem)
def test_corpus_case_parses_as_expected_in_any_split(case: Path):
    expectation = load_expectation(case.with_suffix(".expect"))
    raw = case.read_bytes()
    for how, pieces in feedings(raw, case.stem):
        outcome = parse(pieces, expectation.limits)
        try:
            check_outcome(outcome, expectation)
        except AssertionError as failure:
            raise AssertionError(f"{case.name} fed {how}: {failure}") from failure


def test_corpus_is_complete():
    http = {path.stem for path in CORPUS.glob("*.http")}
    expect = {path.stem for path in CORPUS.glob("*.expect")}
    assert http == expect, f"without a pair: {sorted(http ^ expect)}"
    assert len(http) >= 100
    kinds = {load_expectation(CORPUS / f"{stem}.expect").blocks[-1].kind for stem in http}
    assert kinds == {"ok", "status", "incomplete"}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_corpus_files_are_binary_to_git():
    # CRLF must survive checkout on any platform: the files are not text.
    result = subprocess.run(
        ["git", "check-attr", "text", "--", "tests/corpus/cl-te-both.http"],
        cwd=CORPUS.parents[1], capture_output=True, text=True,
    )
    if result.returncode != 0:
        pytest.skip("not a git work tree")
    assert result.stdout.strip().endswith("text: unset")
