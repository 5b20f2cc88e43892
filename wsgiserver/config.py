"""ServerConfig: every setting of the server, typed, frozen, with its reason."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["ServerConfig"]

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class ServerConfig:
    """All settings in one place. Components receive values, never this object."""

    host: str = "127.0.0.1"
    port: int = 4221
    # Worker threads that run requests. Idle and half-received connections
    # never hold one, so this bounds concurrent *requests*, not connections.
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
    # before a byte of the body is read.
    max_body_bytes: int = 1024 * MiB
    # Unread body bytes we read and discard to keep a connection alive;
    # beyond that, closing is cheaper than reading.
    max_drain_bytes: int = 256 * KiB

    # Seconds an idle keep-alive connection is kept open.
    keepalive_timeout: float = 15.0
    # Seconds from a request's first byte to the end of its head; slower
    # clients get 408. Bounds slowloris-style trickling.
    header_timeout: float = 10.0
    # Seconds a body read or a response write may wait for the peer.
    body_timeout: float = 30.0
    write_timeout: float = 30.0
    # Seconds in-flight requests get to finish on SIGTERM/SIGINT.
    shutdown_timeout: float = 30.0

    # Open WebSocket connections; each holds a worker thread while open, so
    # the cap leaves threads for ordinary requests. Beyond it: 503.
    max_websockets: int = 4
    # Largest WebSocket message (bytes); larger ones close with 1009.
    max_websocket_message_bytes: int = 1024 * KiB

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
    # Access log target ("-" for stderr, "stdout", or a file); None: off.
    access_log: str | None = None
    access_log_format: str | None = None
    access_log_json: bool = False

    # Exposed to every application as environ["wsgiserver.directory"].
    directory: str | None = None
    send_date_header: bool = True
    send_server_header: bool = True
    server_name: str = "wsgiserver"

    def replace(self, **changes: object) -> ServerConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        for name in ("threads", "workers", "backlog", "max_connections", "max_request_line",
                     "max_header_bytes", "max_header_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("max_body_bytes", "max_drain_bytes", "max_websockets",
                     "max_websocket_message_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("keepalive_timeout", "header_timeout", "body_timeout", "write_timeout",
                     "shutdown_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if self.client_certs not in ("none", "optional", "required"):
            raise ValueError("client_certs must be none, optional or required")
        if self.client_certs != "none" and not self.ca_certs:
            raise ValueError("client certificates need ca_certs")
        if (self.keyfile or self.ca_certs) and not self.certfile:
            raise ValueError("keyfile and ca_certs need certfile")
