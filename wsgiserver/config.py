"""ServerConfig: every setting of the server, typed, frozen, with its reason."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["ServerConfig", "SettingError"]

KiB = 1024
MiB = 1024 * KiB


class SettingError(ValueError):
    """A setting out of range (``name``), or one that ``needs`` another set too.

    Carries the field names, so that the command line can name its options
    and a configuration file its keys, where the message speaks of fields.
    """

    def __init__(self, name: str, message: str, needs: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.needs = needs


# The largest request body when neither the settings nor the application
# say otherwise: a general-purpose default (waitress has 1 GiB, nginx 1 MiB).
DEFAULT_MAX_BODY_BYTES = 100 * MiB


@dataclass(frozen=True)
class ServerConfig:
    """All settings in one place. Components receive values, never this object."""

    host: str = "127.0.0.1"
    port: int = 4221
    # Worker threads that run applications. Connections that are idle, still
    # sending a request (head and body) or still reading a finished response
    # never hold one, and long requests (WebSockets, streams) get a
    # replacement: this bounds ordinary requests running at once.
    threads: int = 8
    # Processes sharing the listening socket; 1 means no supervisor.
    workers: int = 1
    # Pending connections the kernel queues for us. Small backlogs (5) give
    # second-long p99 latencies under load.
    backlog: int = 2048
    # Open client connections; past it we stop accepting and the kernel's
    # backlog holds the rest. Clamped to the process's file limit.
    max_connections: int = 4096

    # RFC 9112 section 3 recommends supporting request-lines of 8000 octets.
    max_request_line: int = 8 * KiB
    # The whole header section (and, separately, a trailer section).
    max_header_bytes: int = 64 * KiB
    max_header_count: int = 100
    # Largest request body; 413 past it. A Content-Length above it is refused
    # before a byte of the body is read. None: 100 MiB, or what the
    # application declares it takes (an attribute max_request_body_bytes on
    # the application object: the bundled app's files routes ask for their
    # upload limit so), see body_limit_for.
    max_body_bytes: int | None = None
    # Bodies are received whole before the application runs: up to this many
    # bytes in memory, beyond it in an unlinked temporary file in spool_dir
    # (None: the system's temporary directory). Bounds memory per upload.
    body_memory_bytes: int = 512 * KiB
    spool_dir: str | None = None
    # Bodies in memory across connections; past it a body goes to a spool
    # file however small (2,000 connections each holding 512 KiB would take
    # 1 GiB otherwise).
    max_body_memory_bytes: int = 64 * MiB
    # While an application is still producing, this much of its response may
    # wait in memory for a slow client; beyond it, up to response_spool_bytes
    # more go to an unlinked temporary file in spool_dir, so the application's
    # thread is released however slowly the client reads; beyond that (or
    # once max_spool_bytes are spooled across the process, request bodies
    # and responses together: a body that finds no room is refused with 503
    # and Retry-After before its bytes are taken) the thread waits
    # for the client (backpressure). A response made in full is never held back.
    response_buffer_bytes: int = 1 * MiB
    response_spool_bytes: int = 64 * MiB
    max_spool_bytes: int = 1024 * MiB

    # Seconds an idle keep-alive connection is kept open.
    keepalive_timeout: float = 15.0
    # Seconds from a request's first byte to the end of its head; slower
    # clients get 408. Bounds slowloris-style trickling.
    header_timeout: float = 10.0
    # A body may never go body_timeout seconds without a byte, must arrive at
    # min_body_rate bytes a second or more over any 20 s (a sliding window:
    # a fast start buys no later stall; 0: no minimum), and may take
    # max_body_seconds in all. 408 otherwise.
    body_timeout: float = 30.0
    min_body_rate: int = 1 * KiB
    max_body_seconds: float = 7200.0
    # Seconds a response may wait for the client to read anything; then reset.
    write_timeout: float = 30.0
    # Slowest a client may read a response that waits for it, in bytes per
    # second over any 20 s (a sliding window: a fast start buys no later
    # stall); slower ones are disconnected and logged. 0: none.
    min_response_rate: int = 1 * KiB
    # Seconds in-flight requests get to finish on SIGTERM/SIGINT.
    shutdown_timeout: float = 30.0

    # Open WebSocket connections. Each runs on a thread of its own (the pool
    # replaces it), so ordinary requests keep their threads. Beyond it: 503.
    max_websockets: int = 1000
    # A request still in its application after this many seconds (a stream,
    # a long poll, a slow call downstream) gets a replacement thread; at most
    # max_long_requests at once (None: four times threads), beyond that a
    # long request is cut off (503 if its head has not gone out) and logged.
    long_request_seconds: float = 2.0
    max_long_requests: int | None = None
    # Largest WebSocket message (bytes); larger ones close with 1009.
    max_websocket_message_bytes: int = 1024 * KiB
    # An open WebSocket whose peer sent nothing for websocket_ping_interval
    # seconds is pinged; no answer within websocket_ping_timeout closes it
    # (1011): peers that vanished without a FIN, or never answer, give their
    # slot back. websocket_idle_timeout: close (1001) after that long without
    # a message, whatever the pings say. 0 turns each off.
    websocket_ping_interval: float = 20.0
    websocket_ping_timeout: float = 20.0
    websocket_idle_timeout: float = 0.0

    # A worker process is replaced (new before old) after this many
    # requests, 0: never. Bounds what a slow leak in the application can grow
    # to. Each worker adds a random 0..max_requests_jitter, so that workers
    # started together do not all restart together.
    max_requests: int = 0
    max_requests_jitter: int = 0
    # A worker process whose loop that takes new work has not turned for
    # this many seconds (every thread held in the application, replacements
    # for long requests included: a deadlock, calls that never return) is
    # replaced, its threads' stacks logged first so that the cause can be
    # found; 0: never. Requests that merely queue never count. No timeout can
    # stop one thread in Python, but a process can be replaced. Either of
    # these two runs even one worker under the supervisor.
    worker_timeout: float = 0.0
    # How the waiting thread watches sockets: "auto" (epoll on Linux, poll on
    # macOS and the BSDs, select on Windows), or one of them by name. select
    # watches at most 1024 descriptors (512 sockets on Windows): connections
    # beyond are refused.
    poller: str = "auto"
    # Where Prometheus metrics are served, in the bind syntax ("HOST:PORT",
    # "unix:PATH"): a listener of its own, so the metrics need not be public
    # where the application is. None: no metrics endpoint.
    metrics_bind: str | None = None

    # Where to listen, as bind specs ("HOST:PORT", "[::1]:PORT", "unix:PATH",
    # "fd://N"); empty means host and port. systemd socket activation, when
    # present, takes precedence over both.
    binds: tuple[str, ...] = ()
    # chmod for Unix sockets (e.g. 0o660 so only the proxy's group connects).
    unix_socket_mode: int | None = None
    # TLS: a certificate (with its key) turns every TCP listener into https.
    certfile: str | None = None
    keyfile: str | None = None
    ca_certs: str | None = None
    client_certs: str = "none"  # "optional" or "required" with ca_certs
    # Peers whose X-Forwarded-* / Forwarded fields are believed: addresses,
    # CIDR ranges, "unix" or "*". Empty: nobody, and those fields are removed.
    forwarded_allow_ips: tuple[str, ...] = ()
    # HTTP/2 (RFC 9113), which needs the h2 package (pip install
    # '.[http2]'). http2: offered by ALPN on TLS listeners, h2
    # before http/1.1. Cleartext HTTP/2 (h2c) is for a proxy in front, so
    # each way of it is turned on apart and taken only from peers in
    # forwarded_allow_ips (others are served HTTP/1.1): by prior knowledge
    # (a connection opening with the HTTP/2 preface), and by "Upgrade: h2c".
    http2: bool = False
    h2c_prior_knowledge: bool = False
    h2c_upgrade: bool = False
    # Streams one HTTP/2 connection may have open at once
    # (SETTINGS_MAX_CONCURRENT_STREAMS); they run side by side on the threads.
    http2_max_concurrent_streams: int = 100
    # Access log target ("-" for stderr, "stdout", or a file); None: off.
    access_log: str | None = None
    access_log_format: str | None = None
    access_log_json: bool = False

    # Exposed to every application as environ["wsgiserver.directory"].
    directory: str | None = None
    # The names this server answers to, given to applications as
    # environ["wsgiserver.allowed_hosts"] (the bundled app's files routes
    # refuse any other Host with 421, against DNS rebinding). Empty: the
    # application's own default.
    allowed_hosts: tuple[str, ...] = ()
    # Files served by the server without calling the app: "/PREFIX=DIR" each
    # (static.py).
    static: tuple[str, ...] = ()
    send_date_header: bool = True
    send_server_header: bool = True
    server_name: str = "wsgiserver"

    def body_limit_for(self, app: object) -> int:
        """The largest request body: the setting, else what ``app`` declares
        (``max_request_body_bytes``), else DEFAULT_MAX_BODY_BYTES."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        declared = getattr(app, "max_request_body_bytes", None)
        if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 0:
            return declared
        return DEFAULT_MAX_BODY_BYTES

    @property
    def long_request_cap(self) -> int:
        """How many long requests may run at once."""
        if self.max_long_requests is None:
            return 4 * self.threads
        return self.max_long_requests

    def replace(self, **changes: object) -> ServerConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        for name in ("threads", "workers", "backlog", "max_connections", "max_request_line",
                     "max_header_bytes", "max_header_count",
                     "http2_max_concurrent_streams"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"{name} must be at least 1")
        if self.max_body_bytes is not None and self.max_body_bytes < 0:
            raise SettingError("max_body_bytes", "max_body_bytes must not be negative")
        for name in ("max_websockets", "max_websocket_message_bytes",
                     "body_memory_bytes", "min_body_rate", "response_buffer_bytes",
                     "response_spool_bytes", "max_spool_bytes", "min_response_rate",
                     "max_body_memory_bytes",
                     "max_requests", "max_requests_jitter"):
            if getattr(self, name) < 0:
                raise SettingError(name, f"{name} must not be negative")
        for name in ("keepalive_timeout", "header_timeout", "body_timeout", "write_timeout",
                     "max_body_seconds",
                     "shutdown_timeout", "long_request_seconds"):
            if not getattr(self, name) > 0:
                raise SettingError(name, f"{name} must be a positive number of seconds")
        for name in ("websocket_ping_interval", "websocket_ping_timeout",
                     "websocket_idle_timeout"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise SettingError(name, f"{name} must be 0 (off) or seconds")
        if not 0 <= self.worker_timeout < float("inf"):  # NaN fails too
            raise SettingError("worker_timeout", "worker_timeout must be 0 (off) or seconds")
        if self.max_long_requests is not None and self.max_long_requests < 0:
            raise SettingError("max_long_requests", "max_long_requests must not be negative")
        if not 0 <= self.port <= 65535:
            raise SettingError("port", "port must be between 0 and 65535")
        if self.poller not in ("auto", "epoll", "poll", "select"):
            raise SettingError("poller", "poller must be auto, epoll, poll or select")
        if self.client_certs not in ("none", "optional", "required"):
            raise SettingError("client_certs", "client_certs must be none, optional or required")
        self._check_needs()

    def _check_needs(self) -> None:
        """The one setting refused for lack of another: client certificates
        that cannot be checked would let every client in, a protection asked
        for and not given. Others that do nothing without another are
        warned about (``without_effect``), not refused."""
        if self.client_certs != "none" and not self.ca_certs:
            raise SettingError("client_certs", "client certificates need ca_certs", "ca_certs")
        if self.metrics_bind and _same_address(self.metrics_bind, self.binds or
                                               (f"{self.host}:{self.port}",)):
            raise SettingError("metrics_bind", f"{self.metrics_bind} is the application's own "
                               "address: give the metrics a port of their own")

    @property
    def supervised(self) -> bool:
        """Whether worker processes run under the supervisor: several of them,
        or one that it replaces after --max-requests or when stuck."""
        return self.workers > 1 or bool(self.max_requests) or bool(self.worker_timeout)

    def without_effect(self) -> list[tuple[str, str]]:
        """(field, what it needs) for each setting given that does nothing
        in this configuration: the command line warns about each."""
        found: list[tuple[str, str]] = []
        for name in ("keyfile", "ca_certs", "http2"):
            if getattr(self, name) and not self.certfile:
                found.append((name, "certfile"))
        for name in ("h2c_prior_knowledge", "h2c_upgrade"):
            if getattr(self, name) and not self.forwarded_allow_ips:
                found.append((name, "forwarded_allow_ips"))
        http2 = self.http2 and self.certfile or (self.h2c_prior_knowledge or self.h2c_upgrade) \
            and self.forwarded_allow_ips
        if self.http2_max_concurrent_streams != 100 and not http2:
            found.append(("http2_max_concurrent_streams", "http2"))
        if self.max_requests_jitter and not self.max_requests:
            found.append(("max_requests_jitter", "max_requests"))
        if self.unix_socket_mode is not None and \
                not any(bind.startswith("unix:") for bind in self.binds):
            found.append(("unix_socket_mode", "binds"))
        for name in ("access_log_format", "access_log_json"):
            if getattr(self, name) and self.access_log is None:
                found.append((name, "access_log"))
        return found


def _same_address(spec: str, binds: tuple[str, ...]) -> bool:
    """Whether ``spec`` (HOST:PORT or unix:PATH) would listen where one of
    ``binds`` does: the same socket path, or the same TCP port on the same
    host or on every interface (port 0 is a new port each time)."""
    if spec.startswith("unix:"):
        return spec in binds
    host, _, port = spec.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return False
    every = {"", "0.0.0.0", "[::]", "::", "*"}
    for bind in binds:
        other_host, _, other_port = bind.rpartition(":")
        if other_port == port and (host == other_host or host in every or other_host in every):
            return True
    return False
