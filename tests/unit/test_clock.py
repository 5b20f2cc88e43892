"""The injectable clock and the Date field."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from wsgiserver.clock import HttpDate, ManualClock, format_http_date


@pytest.mark.parametrize("seconds", [0, 784111777, 951782400, 1_700_000_000, 4_102_444_799])
def test_http_date_is_imf_fixdate(seconds):
    assert format_http_date(seconds) == formatdate(seconds, usegmt=True)


def test_http_date_follows_the_injected_clock_second_by_second():
    clock = ManualClock(start=10.0, epoch=784111777.0)
    date = HttpDate(clock)
    assert date() == "Sun, 06 Nov 1994 08:49:37 GMT"
    clock.advance(0.5)
    assert date() == "Sun, 06 Nov 1994 08:49:37 GMT"
    clock.advance(0.5)
    assert date() == "Sun, 06 Nov 1994 08:49:38 GMT"


def test_manual_clock_moves_only_forward():
    clock = ManualClock(start=5.0)
    clock.advance_to(3.0)
    assert clock.monotonic() == 5.0
    clock.advance_to(7.5)
    assert clock.monotonic() == 7.5
