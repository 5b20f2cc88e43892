"""Transports: one client socket's I/O, plain or TLS, and nothing else.

Owns recv, send and sendfile on a non-blocking socket, waiting for
readiness until a deadline, the TLS handshake, half-close, reset and
close. Knows no HTTP, no parser and no threads; deadlines are read on the
clock it is given. ``Transport`` is the interface the connection uses, so
tests drive a connection over an in-memory fake instead of a socket.
"""

from __future__ import annotations

import os
import select
import socket
import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from . import system
from .clock import SYSTEM_CLOCK, Clock
from .errors import ClientDisconnected

if TYPE_CHECKING:  # ssl costs megabytes of memory: imported only for TLS listeners
    import ssl

__all__ = ["Transport", "SocketTransport", "TlsTransport", "PlainHttpOnTls", "Peer"]

# (address, port) of the client; ("", 0) on a Unix socket.
Peer = tuple[str, int]

_RECV_SIZE = 64 * 1024
# How long a TLS handshake may wait for room to send its next flight.
_TLS_HANDSHAKE_RECORD = 22
_NOTHING: Mapping[str, str] = MappingProxyType({})
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close sends RST
# "Not now" from a non-blocking socket (TLS adds its own, see TlsTransport).
_WOULD_BLOCK: tuple[type[Exception], ...] = (BlockingIOError, InterruptedError)
_FOREVER = float("inf")  # a deadline that never passes: wait until woken


class Transport(Protocol):
    """The I/O a connection needs from its client's socket."""

    fd: int
    peer: Peer
    can_sendfile: bool
    # The protocol ALPN chose in the TLS handshake ("h2", "http/1.1"), if any.
    alpn: str | None
    # The handshake waits for room to write (its flight did not fit), not for
    # bytes: the poller watches for writability, never a thread.
    handshake_writing: bool
    # recv_into reads the socket itself (no layer in between keeps bytes back
    # from the poller's sight, as TLS does).
    direct_reads: bool

    @property
    def environ(self) -> Mapping[str, str]:
        """What the connection adds to every request's environ (TLS facts)."""
        ...

    def handshake(self) -> bool:
        """Advance a TLS handshake: True once done; OSError when it failed."""
        ...

    def recv(self, max_bytes: int = _RECV_SIZE) -> bytes | None:
        """What arrived: None when nothing has, b"" when the client is gone."""
        ...

    def recv_into(self, buffer: memoryview) -> int | None:
        """Read into ``buffer``: the count, None when nothing arrived, 0 when
        the client is gone (only where ``direct_reads``)."""
        ...

    def send(self, data: bytes | memoryview) -> int:
        """Bytes taken now (0 when the socket is full); ClientDisconnected on failure."""
        ...

    def wait_readable(self, deadline: float) -> bool:
        """Block until bytes arrive (True) or the deadline passes (False)."""
        ...

    def wait_writable(self, deadline: float) -> bool:
        """Block until the socket takes bytes (True) or the deadline passes (False)."""
        ...

    def wait_for(self, deadline: float, write: bool = False, wake_fd: int | None = None) -> None:
        """Block until bytes arrive, the socket takes bytes (``write``), ``wake_fd``
        becomes readable, or the deadline passes."""
        ...

    def sendfile(self, file_fd: int, offset: int, count: int) -> int:
        """Send up to ``count`` bytes of a file without waiting; the number sent
        (0: the socket is full, or the file ended). ClientDisconnected on failure."""
        ...

    def shutdown_write(self) -> bool:
        """Stop sending (FIN) but keep reading; False if the socket is gone."""
        ...

    def shutdown(self) -> None:
        """End both directions now, from any thread; the descriptor stays
        valid until ``close``, so a thread using it gets errors, not another socket."""
        ...

    def abort_on_close(self) -> None:
        """Make the next ``close`` a reset."""
        ...

    def abort(self) -> None:
        """Close with a reset, so no client takes what it got for a whole response."""
        ...

    def close(self) -> None:
        """Close the socket (idempotent)."""
        ...


class SocketTransport:
    """A plain TCP or Unix socket, non-blocking."""

    can_sendfile = system.HAS_SENDFILE
    direct_reads = True
    handshake_writing = False

    def __init__(self, sock: socket.socket, peer: Peer, clock: Clock = SYSTEM_CLOCK) -> None:
        self.alpn: str | None = None  # the protocol TLS agreed on (ALPN)
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self._clock = clock
        self._would_block = _WOULD_BLOCK

    def handshake(self) -> bool:
        """Nothing to agree on: always done."""
        return True

    @property
    def environ(self) -> Mapping[str, str]:
        """Nothing to add to a request's environ."""
        return _NOTHING

    def recv(self, max_bytes: int = _RECV_SIZE) -> bytes | None:
        """What arrived: None when nothing has, b"" when the client is gone."""
        try:
            return self.sock.recv(max_bytes)
        except self._would_block:
            return None
        except OSError:
            return b""  # reset or failed: gone either way

    def recv_into(self, buffer: memoryview) -> int | None:
        """Read into ``buffer``: the count, None when nothing arrived, 0 when gone."""
        try:
            return self.sock.recv_into(buffer)
        except self._would_block:
            return None
        except OSError:
            return 0

    def send(self, data: bytes | memoryview) -> int:
        """Bytes taken now (0 when the socket is full); ClientDisconnected on failure."""
        try:
            return self.sock.send(data)
        except self._would_block:
            return 0
        except OSError as error:
            raise ClientDisconnected(str(error)) from None

    def wait_readable(self, deadline: float) -> bool:
        """Block until bytes arrive (True) or the deadline passes (False)."""
        return self._wait((self.fd,), (), deadline)

    def wait_writable(self, deadline: float) -> bool:
        """Block until the socket takes bytes (True) or the deadline passes (False)."""
        return self._wait((), (self.fd,), deadline)

    def wait_for(self, deadline: float, write: bool = False, wake_fd: int | None = None) -> None:
        """Block until bytes arrive, the socket takes bytes (``write``), ``wake_fd``
        becomes readable, or the deadline passes."""
        readable = (self.fd,) if wake_fd is None else (self.fd, wake_fd)
        self._wait(readable, (self.fd,) if write else (), deadline, once=True)

    def _wait(self, readable: tuple[int, ...], writable: tuple[int, ...], deadline: float,
              once: bool = False) -> bool:
        """Wait for any of the descriptors (poll, or select where there is
        none); False when the deadline passed first."""
        while (remaining := deadline - self._clock.monotonic()) > 0:
            if system.HAS_POLL:
                poller = select.poll()
                for fd in readable:
                    poller.register(fd, select.POLLIN)
                for fd in writable:
                    poller.register(fd, select.POLLOUT | (select.POLLIN if fd in readable else 0))
                ready = bool(poller.poll(None if remaining == _FOREVER else remaining * 1000))
            else:
                ready = any(select.select(readable, writable, (),
                                          None if remaining == _FOREVER else remaining))
            if ready or once:
                return ready
        return False

    def sendfile(self, file_fd: int, offset: int, count: int) -> int:
        """os.sendfile without waiting: the kernel copies, we never touch the bytes."""
        while True:
            try:
                return os.sendfile(self.fd, file_fd, offset, count)
            except InterruptedError:
                continue
            except BlockingIOError:
                return 0
            except OSError as error:
                raise ClientDisconnected(str(error)) from None

    def shutdown_write(self) -> bool:
        """Stop sending (FIN) but keep reading; False if the socket is gone."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        return True

    def shutdown(self) -> None:
        """End both directions now; the descriptor stays valid until close()."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def abort_on_close(self) -> None:
        """Make the next ``close`` a reset (SO_LINGER with a zero timeout)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        except OSError:
            pass

    def abort(self) -> None:
        """Close with a reset."""
        self.abort_on_close()
        self.close()

    def close(self) -> None:
        """Close the socket (idempotent)."""
        try:
            self.sock.close()
        except OSError:
            pass


class PlainHttpOnTls(Exception):
    """A client spoke plain HTTP to a TLS port (a common mistake: http:// for
    https://). The connection answers it in plain text, with a hint."""


class TlsTransport(SocketTransport):
    """A TLS socket: the handshake advances as bytes arrive, never blocking a thread."""

    can_sendfile = False  # the kernel cannot encrypt for us
    direct_reads = False  # decrypted bytes may wait inside the TLS layer

    def __init__(self, sock: socket.socket, peer: Peer, context: ssl.SSLContext,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        # Plain until the client's first bytes show a TLS record: plain HTTP
        # on this port is then answered in plain text rather than dropped.
        super().__init__(sock, peer, clock)
        self._context = context
        self._tls: ssl.SSLSocket | None = None
        self._handshaken = False
        self._environ: dict[str, str] | None = None

    def handshake(self) -> bool:
        """Advance the handshake: True once done, False while it waits for the
        client; PlainHttpOnTls for an HTTP request; OSError (or ValueError)
        when it failed."""
        if self._handshaken:
            return True
        import ssl

        if self._tls is None and not self._start_tls():
            return False
        assert self._tls is not None
        self.handshake_writing = False
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLWantWriteError:
            # Our flight did not fit (a client that reads nothing, or a large
            # certificate chain): the poller waits for room, like any write.
            self.handshake_writing = True
            return False
        self._handshaken = True
        self.alpn = self._tls.selected_alpn_protocol()
        return True

    def _start_tls(self) -> bool:
        """Look at the first bytes (without taking them): TLS goes on, plain
        HTTP raises PlainHttpOnTls, anything else fails."""
        import ssl

        try:
            first = self.sock.recv(1, socket.MSG_PEEK)
        except self._would_block:
            return False
        if not first:
            raise ConnectionResetError("closed before the TLS handshake")
        # RFC 8446 section 5.1: every TLS record starts with its content
        # type; a ClientHello travels in a handshake record (22).
        if first[0] != _TLS_HANDSHAKE_RECORD:
            if first.isalpha():  # a request-line starts with its method
                raise PlainHttpOnTls()
            raise ValueError(f"not a TLS record: {first!r}")
        self._tls = self._context.wrap_socket(self.sock, server_side=True,
                                              do_handshake_on_connect=False)
        self.sock = self._tls
        self._would_block = _WOULD_BLOCK + (ssl.SSLWantReadError, ssl.SSLWantWriteError)
        return True

    @property
    def environ(self) -> Mapping[str, str]:
        """The connection's TLS facts under the names mod_ssl made familiar:
        SSL_PROTOCOL, SSL_CIPHER, SSL_CLIENT_VERIFY and, for a verified client
        certificate, SSL_CLIENT_S_DN, SSL_CLIENT_I_DN, SSL_CLIENT_CERT (PEM),
        SSL_CLIENT_M_SERIAL, SSL_CLIENT_V_START, SSL_CLIENT_V_END."""
        if self._environ is None:
            self._environ = _tls_environ(self._tls) if self._tls is not None else {}
        return self._environ

    def recv(self, max_bytes: int = _RECV_SIZE) -> bytes | None:
        """What arrived, including everything already decrypted: the poller
        cannot see bytes buffered inside the TLS layer."""
        data = super().recv(max_bytes)
        if data and self._tls is not None:
            try:
                while pending := self._tls.pending():
                    data += self._tls.recv(pending)
            except self._would_block:
                pass
            except OSError:
                pass  # the next recv reports it
        return data

    def sendfile(self, file_fd: int, offset: int, count: int) -> int:
        """Not offered: the file is read and sent through TLS instead."""
        raise NotImplementedError("no sendfile through TLS")




# RFC 4514 section 3: the short names a distinguished name is written with.
_DN_NAMES = {
    "commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
    "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
    "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID",
}


def _tls_environ(tls: ssl.SSLSocket) -> dict[str, str]:
    import ssl

    cipher = tls.cipher()
    environ = {"SSL_PROTOCOL": tls.version() or "", "SSL_CIPHER": cipher[0] if cipher else ""}
    der = tls.getpeercert(binary_form=True)
    if der is None:
        environ["SSL_CLIENT_VERIFY"] = "NONE"
        return environ
    # A certificate that reached here passed verification: with optional
    # client certificates OpenSSL still fails the handshake on a bad one.
    certificate = tls.getpeercert()
    environ["SSL_CLIENT_VERIFY"] = "SUCCESS"
    environ["SSL_CLIENT_CERT"] = ssl.DER_cert_to_PEM_cert(der)
    if certificate:
        environ["SSL_CLIENT_S_DN"] = _dn(certificate.get("subject", ()))
        environ["SSL_CLIENT_I_DN"] = _dn(certificate.get("issuer", ()))
        for key, name in (("serialNumber", "SSL_CLIENT_M_SERIAL"),
                          ("notBefore", "SSL_CLIENT_V_START"), ("notAfter", "SSL_CLIENT_V_END")):
            if key in certificate:
                environ[name] = str(certificate[key])
    return environ


def _dn(rdns: object) -> str:
    """A distinguished name as RFC 4514 writes it: last RDN first, escaped."""
    parts = []
    for rdn in reversed(list(rdns)):  # type: ignore[call-overload]
        parts.append("+".join(f"{_DN_NAMES.get(name, name)}={_dn_escape(value)}"
                              for name, value in rdn))
    return ",".join(parts)


def _dn_escape(value: str) -> str:
    """RFC 4514 section 2.4: escape what would end or change the value."""
    escaped = "".join("\\" + char if char in ',+"\\<>;=' else char for char in value)
    if escaped[:1] in ("#", " "):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped
