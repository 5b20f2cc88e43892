"""Time, injectable: a monotonic clock for deadlines, the wall clock for the
Date field and the access log. Knows nothing of sockets or HTTP beyond the
date format; tests give components a ManualClock instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "ManualClock", "HttpDate", "format_http_date", "SYSTEM_CLOCK"]


class Clock(Protocol):
    """What components read the time from."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (dates)."""
        ...


class SystemClock:
    """The real clocks (the functions themselves: no call in between)."""

    __slots__ = ()
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to: timeouts in tests without sleeping."""

    def __init__(self, start: float = 1000.0, epoch: float = 1_795_252_320.0) -> None:
        self._now = start
        self._offset = epoch - start

    def monotonic(self) -> float:
        """The current reading."""
        return self._now

    def time(self) -> float:
        """The wall clock, moving with the monotonic one."""
        return self._now + self._offset

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        self._now += seconds

    def advance_to(self, moment: float) -> None:
        """Move forward to ``moment`` (never back)."""
        self._now = max(self._now, moment)


class HttpDate:
    """The current time as an IMF-fixdate (RFC 9110 section 5.6.7), made once a second."""

    __slots__ = ("_clock", "_second", "_value")

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._second = -1
        self._value = ""

    def __call__(self) -> str:
        now = int(self._clock.time())
        if now != self._second:
            # Both assignments race between threads, but each value is a valid date.
            self._value = format_http_date(now)
            self._second = now
        return self._value


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_http_date(seconds: float) -> str:
    """``Sun, 06 Nov 1994 08:49:37 GMT`` (RFC 9110 section 5.6.7, IMF-fixdate)."""
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
