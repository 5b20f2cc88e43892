"""How the server drives a connection, whatever its protocol: the steps a
connection answers with, and the settings every connection of a listening
socket shares.

Both the HTTP/1.1 connection (connection.py) and the HTTP/2 one
(h2connection.py) import this; neither imports the other.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from .budget import BodyBudgets
from .clock import Clock
from .exchange import ExchangeSettings
from .outqueue import SpoolSettings
from .protocol.policy import ParserLimits
from .proxy import ProxyTrust
from .transport import Peer

__all__ = ["Step", "ConnectionSettings", "Http2Options", "DRAIN_QUIET_SECONDS",
           "SPOOL_FULL_RETRY_AFTER"]

# While the server drains for shutdown, an idle keep-alive connection is
# closed once it has been quiet this long: a client that just received a
# response and sends its next request at once gets it answered (with
# Connection: close) instead of finding the connection gone.
DRAIN_QUIET_SECONDS = 0.25
# Seconds a client refused for lack of spool room is told to wait (Retry-After),
# on either protocol.
SPOOL_FULL_RETRY_AFTER = 5


class Step(enum.Enum):
    """What the connection needs next from the server."""

    READ = "read"  # watch for bytes to read
    WRITE = "write"  # watch for room to write
    READ_WRITE = "read or write"  # watch for either (HTTP/2: frames both ways)
    RUN = "run"  # a request is complete: run its exchange now
    SWITCH = "switch"  # the connection now speaks HTTP/2: hand it over
    CLOSED = "closed"


# The members under plain names, for the request path: Python 3.11 reads an
# Enum class's attributes through EnumType.__getattr__, about four times the
# cost of a global (3.12 dropped the hook). Counted with callgrind, enum member
# reads were some 35,000 of a hello request's 254,000 instructions.
STEP_READ, STEP_WRITE, STEP_READ_WRITE = Step.READ, Step.WRITE, Step.READ_WRITE
STEP_RUN, STEP_SWITCH, STEP_CLOSED = Step.RUN, Step.SWITCH, Step.CLOSED


@dataclass(frozen=True)
class Http2Options:
    """How a listening socket offers HTTP/2 (h2connection.py serves it)."""

    max_concurrent_streams: int = 100
    # Cleartext HTTP/2, each way apart, from ``trust``'s peers only.
    prior_knowledge: bool = False
    upgrade: bool = False
    trust: ProxyTrust | None = None

    def cleartext_for(self, peer: Peer) -> bool:
        """Whether h2c may be spoken with ``peer`` at all."""
        return (self.prior_knowledge or self.upgrade) and self.trust is not None \
            and self.trust.trusts(peer[0])


@dataclass(frozen=True)
class ConnectionSettings:
    """What every connection of one listening socket shares."""

    exchange: ExchangeSettings
    limits: ParserLimits
    keepalive_timeout: float
    header_timeout: float
    # A body: never body_timeout without a byte, at least min_body_rate bytes
    # a second over any window, and max_body_seconds in all.
    body_timeout: float
    min_body_rate: int
    write_timeout: float
    body_memory_bytes: int
    spool_dir: str | None
    output_high_water: int
    # What bodies share across connections (None: no limits beyond each body's).
    body_budgets: BodyBudgets | None
    # Past output_high_water, a streamed response's bytes wait in a spool file
    # (None: its thread waits for the client); and how fast a client must read.
    output_spool: SpoolSettings | None
    min_response_rate: int
    date: Callable[[], str] | None
    server_name: str | None
    draining: Callable[[], bool]
    clock: Clock
    http2: Http2Options | None = None  # None: HTTP/1.1 only
    max_body_seconds: float = 7200.0
