"""Fuzz the sans-IO request parser; see tests/fuzz/README.md.

    python tests/fuzz/fuzz_parser.py -max_total_time=60 [libFuzzer options] [CORPUS_DIR ...]
    python tests/fuzz/fuzz_parser.py --hypothesis --minutes 5

The oracle, for every input: the parser raises nothing but ProtocolError;
every message it accepts obeys the framing and field rules (check_accepted);
and its verdict (the messages it produces, and whether it refuses) is the
same fed whole, in random splits, and (for short inputs) one byte at a time.
The first input byte picks the limits and how to split; the rest is the
request stream.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

BYTEWISE_MAX = 2000


def load_modules():
    """Import the parser, instrumented for coverage when atheris runs us."""
    global Framing, ParserLimits, parse, events_of, split_at, SMALL
    from tests.unit.parsing import events_of, parse, split_at
    from wsgiserver.protocol import Framing, ParserLimits

    SMALL = ParserLimits(
        max_request_line=40, max_header_bytes=80, max_header_count=4, max_body_bytes=30
    )


TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def check_accepted(message) -> None:
    """What every accepted message must satisfy, however it was framed."""
    request = message.request
    assert TOKEN.fullmatch(request.method), request.method
    hosts = [value for name, value in request.headers if name == b"host"]
    assert len(hosts) == 1 if request.http_version == (1, 1) else len(hosts) <= 1, hosts
    for name, value in request.headers + message.trailers:
        assert TOKEN.fullmatch(name) and name == name.lower(), name
        assert BAD_VALUE.search(value) is None, value
        assert value == value.strip(b" \t"), value
    names = {name for name, _ in request.headers}
    if b"transfer-encoding" in names:
        assert request.framing is Framing.CHUNKED and request.http_version == (1, 1)
        assert b"content-length" not in names  # both at once are refused
    elif b"content-length" in names:
        assert len(message.body) == request.content_length
        for name, value in request.headers:
            if name == b"content-length":
                for element in value.split(b","):
                    assert int(element.strip(b" \t")) == request.content_length
    else:
        assert request.framing is Framing.NONE and message.body == b""


def verdict(outcome) -> tuple[list, bool]:
    for message in outcome.messages:
        check_accepted(message)
    complete = [entry for entry in events_of(outcome) if len(entry) == 3]
    return complete, outcome.error is None


def check(data: bytes) -> None:
    """Raise on a finding: anything but ProtocolError, or a split-dependent verdict."""
    if not data:
        return
    control, raw = data[0], data[1:]
    limits = SMALL if control & 1 else None
    whole = verdict(parse([raw], limits))
    rng = random.Random(data)
    for _ in range(1 + (control >> 5)):
        cuts = [rng.randrange(len(raw) + 1) for _ in range(rng.randint(1, 12))]
        split = verdict(parse(split_at(raw, cuts), limits))
        if split != whole:
            raise AssertionError(f"verdict depends on the split at {sorted(cuts)}: {whole} / {split}")
    if control & 2 and len(raw) <= BYTEWISE_MAX:
        bytewise = verdict(parse([raw[i : i + 1] for i in range(len(raw))], limits))
        if bytewise != whole:
            raise AssertionError(f"verdict differs fed byte by byte: {whole} / {bytewise}")


def run_atheris(argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["wsgiserver", "tests.unit.parsing"]):
        load_modules()
    atheris.Setup(argv, check)
    atheris.Fuzz()


def run_hypothesis(minutes: float, seed: int | None) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    load_modules()
    from tests.unit.test_parser_properties import hostile_inputs, valid_messages

    inputs = st.tuples(
        st.integers(0, 255),
        hostile_inputs | st.lists(valid_messages(), min_size=1, max_size=3).map(
            lambda messages: b"".join(raw for raw, _ in messages)
        ),
    ).map(lambda pair: bytes([pair[0]]) + pair[1])

    deadline = time.monotonic() + minutes * 60
    rounds, total = 0, 0
    base = seed if seed is not None else random.randrange(1 << 32)
    while time.monotonic() < deadline:
        @hypothesis_seed(base + rounds)
        @settings(max_examples=500, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(inputs)
        def fuzz(data):
            check(data)

        fuzz()  # raises, with the falsifying example, on a finding
        rounds += 1
        total += 500
    print(f"hypothesis fuzzing: {total} inputs in {rounds} rounds, seed {base}, no finding")


def main() -> None:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--hypothesis", action="store_true")
    options.add_argument("--minutes", type=float, default=1.0)
    options.add_argument("--seed", type=int)
    known, rest = options.parse_known_args()
    if known.hypothesis:
        run_hypothesis(known.minutes, known.seed)
        return
    try:
        import atheris  # noqa: F401
    except ImportError:
        sys.exit("atheris is not installed: pip install atheris, or use --hypothesis --minutes N")
    run_atheris([sys.argv[0], *rest])


if __name__ == "__main__":
    main()
