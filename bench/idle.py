"""Hold N connections open against a server, from one process, with selectors.

Keep-alive mode (default): each connection sends one ``GET /`` and reads the
whole response, then stays open and silent. Silent mode (``--silent``): each
connection is opened and never sends a byte.

Protocol with the driver (stdout, one line each):

    ready <opened> <answered> <failed>      once every connection is settled
    held <open> <closed_by_server>           when stdin closes or --hold ends

Then every socket is closed and the process exits. Bounded: it never runs
longer than ``--hold`` seconds after being ready, nor ``--setup`` seconds
before it.

    python -m bench.idle --port 8080 --count 1000 --hold 60
"""

from __future__ import annotations

import argparse
import errno
import resource
import selectors
import socket
import sys
import time

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Conn:
    """One held connection and what it has received so far."""

    def __init__(self, sock: socket.socket, request: bytes) -> None:
        self.sock = sock
        self.out = request
        self.inbuf = b""
        self.answered = False
        self.closed = False

    def response_complete(self) -> bool:
        """True once a whole response with Content-Length has arrived."""
        head, sep, body = self.inbuf.partition(b"\r\n\r\n")
        if not sep:
            return False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return len(body) >= int(value.strip())
        return True  # no length: take the head as the answer


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def open_all(host: str, port: int, count: int, request: bytes, sel, deadline: float) -> list:
    conns = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            continue
        conn = Conn(sock, request)
        conns.append(conn)
        sel.register(sock, selectors.EVENT_WRITE if request else selectors.EVENT_READ, conn)
        if time.monotonic() > deadline:
            break
    return conns


def on_event(sel, conn: Conn, mask: int) -> None:
    """Advance one connection: finish connecting and sending, then read its answer."""
    if mask & selectors.EVENT_WRITE:
        try:
            sent = conn.sock.send(conn.out)
        except OSError:
            close(sel, conn)
            return
        conn.out = conn.out[sent:]
        if not conn.out:
            sel.modify(conn.sock, selectors.EVENT_READ, conn)
        return
    try:
        data = conn.sock.recv(65536)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        close(sel, conn)
        return
    conn.inbuf += data
    if not conn.answered and conn.response_complete():
        conn.answered = True
        conn.inbuf = b""


def close(sel, conn: Conn) -> None:
    if not conn.closed:
        conn.closed = True
        sel.unregister(conn.sock)
        conn.sock.close()


def settled(conns: list, silent: bool) -> bool:
    if silent:
        return True
    return all(c.answered or c.closed for c in conns)


def run(args) -> None:
    raise_fd_limit(args.count + 64)
    request = b"" if args.silent else (
        f"GET / HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n\r\n".encode())
    sel = selectors.DefaultSelector()
    deadline = time.monotonic() + args.setup
    conns = open_all(args.host, args.port, args.count, request, sel, deadline)
    while not settled(conns, args.silent) and time.monotonic() < deadline:
        for key, mask in sel.select(timeout=0.1):
            on_event(sel, key.data, mask)
    answered = sum(c.answered for c in conns)
    failed = args.count - (len(conns) if args.silent else answered)
    print(f"ready {len(conns)} {answered} {failed}", flush=True)

    try:
        sel.register(sys.stdin, selectors.EVENT_READ, None)
    except (PermissionError, ValueError):
        pass  # stdin is a file or closed: only --hold ends the wait
    end = time.monotonic() + args.hold
    while time.monotonic() < end:
        events = sel.select(timeout=0.5)
        if any(key.data is None for key, _ in events):
            break  # driver closed our stdin: report and leave
        for key, mask in events:
            on_event(sel, key.data, mask)
    open_now = sum(not c.closed for c in conns)
    print(f"held {open_now} {len(conns) - open_now}", flush=True)
    for conn in conns:
        if not conn.closed:
            conn.sock.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--silent", action="store_true", help="never send a byte")
    parser.add_argument("--setup", type=float, default=15.0,
                        help="seconds allowed to open and settle the connections")
    parser.add_argument("--hold", type=float, default=120.0,
                        help="longest time to hold them, in seconds")
    args = parser.parse_args(argv)
    if args.host not in LOOPBACK:
        parser.error("loopback only")
    run(args)


if __name__ == "__main__":
    main()
