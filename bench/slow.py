"""Slow clients, and the ordinary requests timed while they are connected (issue 11).

Two commands, each run as its own process (pinned to CPU 1 with --pin):

    python -m bench.slow clients --port 8080 --kind up --count 24 --hold 240
    python -m bench.slow probe --port 8080 --count 20 --timeout 10

``clients`` keeps --count connections of one kind busy, from one process
with selectors, one step per client every --interval seconds (0.5):

- ``up``: ``POST /upload`` with ``Content-Length: 1048576``, 1 KiB a step;
- ``chunk``: ``POST /upload`` with ``Transfer-Encoding: chunked``, one
  100-byte chunk a step;
- ``read``: ``GET /16mib`` with a 4 KiB ``SO_RCVBUF``, reading 1 KiB a step:
  the small window keeps the response in the server's hands, so the server
  really sees a slow reader.

At that pace no client finishes within a run (1 MiB takes 8 minutes), which
is the point: a server that gives each of them a thread has none left.
Protocol with the driver (stdout, one line each):

    ready <connected> <failed>    --settle seconds (1) after connecting
    done {json}                   when stdin closes or --hold ends

``done`` counts the clients' own errors: ``connect``, ``reset``, ``closed``
(the server hung up before the client was finished) and ``status NNN`` (an
answer other than 200, e.g. a 408 for a body too slow).

``probe`` sends --count ``GET /`` one after another, each on a fresh
connection with --timeout seconds for the whole exchange, checks each answer
(200, ``Hello, World!``) and prints one JSON line: the latencies of those
answered and why the others were not.
"""

from __future__ import annotations

import argparse
import errno
import json
import selectors
import socket
import statistics
import sys
import time

from bench.apps import HELLO

KiB = 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1")
KINDS = ("up", "chunk", "read")
UPLOAD_BYTES = 1024 * KiB
CHUNK_BYTES = 100
READ_RCVBUF = 4 * KiB


# ---------------------------------------------------------------- parsing (pure)

def parse_head(buf: bytes) -> tuple[int, int | None, int] | None:
    """(status, Content-Length or None, offset of the body) once the head of
    a response is complete in buf; None while it is not; ValueError if it is
    not HTTP."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    if not version.startswith(b"HTTP/") or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:60]!r}")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return int(rest[:3]), length, end + 4


def request_head(kind: str, host: str, port: int) -> bytes:
    """The head each kind of slow client sends first."""
    if kind == "read":
        return f"GET /16mib HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    framing = (f"Content-Length: {UPLOAD_BYTES}" if kind == "up"
               else "Transfer-Encoding: chunked")
    return (f"POST /upload HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n").encode()


def next_piece(kind: str, body_sent: int) -> bytes:
    """What an uploading client sends at its next step (b'' once the body is whole)."""
    if kind == "up":
        return b"a" * min(KiB, UPLOAD_BYTES - body_sent)
    return b"%x\r\n" % CHUNK_BYTES + b"a" * CHUNK_BYTES + b"\r\n"  # never the last chunk


def summarize(latencies_s: list[float], errors: dict[str, int], count: int) -> dict:
    """The probe's report: answered, p50 and max in ms, why the others were not."""
    ms = sorted(x * 1000 for x in latencies_s)
    return {"count": count, "answered": len(ms),
            "p50_ms": statistics.median(ms) if ms else None, "max_ms": ms[-1] if ms else None,
            "latencies_ms": [round(x, 3) for x in ms], "errors": errors}


# ---------------------------------------------------------------- slow clients

class Client:
    """One slow connection: what it still has to send and what it has seen."""

    def __init__(self, kind: str, sock: socket.socket, head: bytes) -> None:
        self.kind = kind
        self.sock = sock
        self.out = head  # bytes waiting to be sent (the head, then at most one piece)
        self.connected = False
        self.body_sent = 0
        self.inbuf = b""  # the response head, until parsed
        self.body_received = 0
        self.status: int | None = None
        self.error: str | None = None
        self.finished = False
        self.sent = 0
        self.received = 0


class Clients:
    def __init__(self, args) -> None:
        self.args = args
        self.sel = selectors.DefaultSelector()
        self.clients: list[Client] = []

    def open_all(self) -> None:
        head = request_head(self.args.kind, self.args.host, self.args.port)
        for _ in range(self.args.count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if self.args.kind == "read":  # before connect: it sets the window offered
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, READ_RCVBUF)
            sock.setblocking(False)
            client = Client(self.args.kind, sock, head)
            self.clients.append(client)
            if sock.connect_ex((self.args.host, self.args.port)) not in (0, errno.EINPROGRESS):
                self.fail(client, "connect")
                continue
            self.sel.register(sock, selectors.EVENT_WRITE, client)

    def fail(self, client: Client, why: str) -> None:
        client.error = client.error or why
        self.close(client)

    def close(self, client: Client) -> None:
        try:
            self.sel.unregister(client.sock)
        except (KeyError, ValueError):
            pass  # never registered, or a reader between its steps
        client.sock.close()

    def live(self) -> list[Client]:
        return [c for c in self.clients if c.error is None and not c.finished]

    def on_writable(self, client: Client) -> None:
        if not client.connected:
            err = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.fail(client, "connect")
                return
            client.connected = True
        self.flush(client)

    def flush(self, client: Client) -> None:
        """Send what is waiting; watch for writability only while something is."""
        if client.out:
            try:
                sent = client.sock.send(client.out)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.fail(client, "reset")
                return
            client.out = client.out[sent:]
            client.sent += sent
        # Readers read only on their steps; uploaders watch for an early answer.
        events = selectors.EVENT_WRITE if client.out else 0
        if client.kind != "read":
            events |= selectors.EVENT_READ
        if events:
            self.sel.modify(client.sock, events, client)
        else:
            self.sel.unregister(client.sock)

    def on_readable(self, client: Client, limit: int = 64 * KiB) -> None:
        try:
            data = client.sock.recv(limit)
        except BlockingIOError:
            return
        except OSError:
            self.fail(client, "reset")
            return
        if not data:
            self.fail(client, "closed")
            return
        client.received += len(data)
        if client.status is None:
            client.inbuf += data
            try:
                head = parse_head(client.inbuf)
            except ValueError:
                self.fail(client, "not http")
                return
            if head is None:
                return
            client.status, length, start = head
            data = client.inbuf[start:]
            client.inbuf = b""
            if client.status != 200:
                self.fail(client, f"status {client.status}")
                return
        client.body_received += len(data)
        if client.kind != "read":
            # A 200 is a success only once the whole body went out (never, at
            # this pace, within a run; a chunked upload never sends its end).
            if client.kind == "up" and client.body_sent >= UPLOAD_BYTES:
                client.finished = True
                self.close(client)
            else:
                self.fail(client, "answered early")
        elif client.body_received >= 16 * UPLOAD_BYTES:
            client.finished = True
            self.close(client)

    def step(self) -> None:
        """Every live client moves by one piece: sends it, or reads 1 KiB."""
        for client in self.live():
            if not client.connected:
                continue
            if client.kind == "read":
                if not client.out:
                    self.on_readable(client, limit=KiB)
                continue
            if not client.out and (client.kind == "chunk" or client.body_sent < UPLOAD_BYTES):
                piece = next_piece(client.kind, client.body_sent)
                client.out = piece
                client.body_sent += len(piece) if client.kind == "up" else CHUNK_BYTES
                self.flush(client)

    def run(self, until: float, stop_on_stdin: bool) -> None:
        """Events and steps until the time `until` (or stdin closes)."""
        next_step = time.monotonic() + self.args.interval
        while (now := time.monotonic()) < until:
            if now >= next_step:
                self.step()
                next_step = now + self.args.interval  # late: no burst to catch up
                continue
            for key, mask in self.sel.select(timeout=min(next_step, until) - now):
                if key.data is None:
                    if stop_on_stdin:
                        return
                    continue
                client = key.data
                if client.error is not None or client.finished:
                    continue
                if mask & selectors.EVENT_WRITE:
                    self.on_writable(client)
                elif mask & selectors.EVENT_READ:
                    self.on_readable(client)

    def report(self) -> dict:
        errors: dict[str, int] = {}
        for c in self.clients:
            if c.error:
                errors[c.error] = errors.get(c.error, 0) + 1
        return {"kind": self.args.kind, "clients": len(self.clients),
                "connected": sum(c.connected for c in self.clients),
                "open": len(self.live()), "finished": sum(c.finished for c in self.clients),
                "errors": errors, "sent": sum(c.sent for c in self.clients),
                "received": sum(c.received for c in self.clients)}


def run_clients(args) -> None:
    clients = Clients(args)
    clients.open_all()
    clients.run(time.monotonic() + args.settle, stop_on_stdin=False)
    connected = sum(c.connected for c in clients.clients)
    print(f"ready {connected} {args.count - connected}", flush=True)
    try:
        clients.sel.register(sys.stdin, selectors.EVENT_READ, None)
    except (PermissionError, ValueError):
        pass  # stdin is a file or closed: only --hold ends the wait
    clients.run(time.monotonic() + args.hold, stop_on_stdin=True)
    print("done " + json.dumps(clients.report()), flush=True)
    for c in clients.live():
        c.sock.close()


# ---------------------------------------------------------------- probes

def probe_once(host: str, port: int, timeout: float) -> tuple[float | None, str | None]:
    """One GET / on a fresh connection within timeout: (seconds, None) or (None, why)."""
    start = time.monotonic()
    deadline = start + timeout
    buf = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            while True:
                head = parse_head(buf)
                if head is not None and head[1] is not None and len(buf) >= head[2] + head[1]:
                    break
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                data = sock.recv(65536)
                if not data:
                    return None, "closed"
                buf += data
    except TimeoutError:
        return None, "timeout"
    except ConnectionRefusedError:
        return None, "refused"
    except ValueError:
        return None, "not http"
    except OSError:
        return None, "reset"
    elapsed = time.monotonic() - start
    status, length, start_body = head
    if status != 200:
        return None, f"status {status}"
    if buf[start_body:start_body + length] != HELLO:
        return None, "wrong body"
    return elapsed, None


def run_probes(args) -> None:
    latencies, errors = [], {}
    for _ in range(args.count):
        seconds, why = probe_once(args.host, args.port, args.timeout)
        if why is None:
            latencies.append(seconds)
        else:
            errors[why] = errors.get(why, 0) + 1
    print(json.dumps(summarize(latencies, errors, args.count)), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("clients", help="hold slow clients open")
    c.add_argument("--kind", choices=KINDS, required=True)
    c.add_argument("--count", type=int, default=24)
    c.add_argument("--interval", type=float, default=0.5, help="seconds between steps")
    c.add_argument("--settle", type=float, default=1.0,
                   help="seconds between connecting and reporting ready")
    c.add_argument("--hold", type=float, default=240.0, help="longest time after ready")
    p = sub.add_parser("probe", help="time ordinary GET / requests")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request, in all")
    for s in (c, p):
        s.add_argument("--host", default="127.0.0.1")
        s.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.host not in LOOPBACK:
        parser.error("loopback only")
    run_clients(args) if args.command == "clients" else run_probes(args)


if __name__ == "__main__":
    main()
