"""Soak test: mixed traffic for N minutes at one wsgiserver process, then a
verdict on errors, memory and file descriptors.

Not part of the unit suite (CI does not run it). From the repository root:

    python bench/soak.py --minutes 2        # the run whose figures we quote
    python bench/soak.py --seconds 20       # a quick check

It starts ``python -m wsgiserver microapp:app --directory <temp dir>`` on a
free port of 127.0.0.1 (a subprocess in a session of its own, stopped by its
PID), and drives it from client threads of this process, each one kind of
traffic, every answer checked:

- keep-alive GETs (``/echo/<text>``, ``/user-agent``), 50 to a connection;
- ``Connection: close`` GETs, which must end in EOF;
- uploads of random size (Content-Length) to names of their own, read back
  whole, by HEAD and by Range; conditional GETs that must give 304;
- chunked uploads, some PUT to one shared name by several threads at once
  (every body names its own seed, so any whole one can be verified);
- downloads of a 4 MiB file (sendfile), compared by SHA-256;
- ten pipelined requests in one write, answered in order;
- bad requests, each of which must get its own status (400, 404, 405, 413,
  414, 431, 501, 505);
- clients that vanish mid-head, mid-body (FIN or RST) and mid-response;
- slow clients: a head trickled over a second (served), a head left
  unfinished (408 after the header timeout), a body trickled over half a
  second (stored whole).

Phases: start, warm-up traffic, settle, **start figures**, traffic for the
run's duration, settle, **end figures**, then a last request and SIGTERM.
"Settle" stops the clients and waits until the server has closed every
connection (its descriptor count stays the same for two seconds; lingering
closes take up to 2 s, the keep-alive timeout is set to 3 s). Figures: the
number of entries in /proc/PID/fd, and VmRSS as it is and *trimmed*: read
just after SIGUSR1 made the server collect garbage and call glibc's
malloc_trim(0), so that free memory the allocator keeps (fragmented arenas:
~20 MiB in 2 minutes, none of it in use) is not mistaken for a leak. The
server is run as ``python bench/soak.py --serve-child ARGS``: the wsgiserver
command line unchanged, plus that SIGUSR1 hook.

Exits 0 only when: no client saw a wrong answer or an unexpected error; the
server's log holds no warning, error or traceback; no temporary upload file
is left; the server exits 0 on SIGTERM; the descriptor count at the end
equals the one at the start; and trimmed RSS grew by no more than
``--max-rss-growth-mib`` (default 8 MiB, why in --help and bench/README.md).

Loopback only, bounded: every socket has a timeout, every loop checks the
stop flag, and the run ends after warm-up + duration + two settles.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import procs  # noqa: E402

HOST = "127.0.0.1"
TIMEOUT = 10.0  # seconds any client socket operation may take
BIG_FILE_BYTES = 4 * 1024 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024  # the server's limit: a larger announced body gets 413
SERVER_TIMEOUTS = {  # short, so that settling (and the 408 case) takes seconds
    "--keepalive-timeout": "3",
    "--header-timeout": "3",
    "--body-timeout": "3",
    "--write-timeout": "3",
}
TEMPORARY_PREFIX = ".microapp-upload-"


class WrongAnswer(Exception):
    """The server answered, but not what it must."""


# -- a small, strict HTTP/1.1 client over raw sockets ----------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Conn:
    """One client connection with a read buffer; raw bytes out, Responses in."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(262144)
        self.buffer += data
        return bool(data)

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not self._fill():
                raise WrongAnswer(f"connection closed before {marker!r}")
        data, _, self.buffer = self.buffer.partition(marker)
        return data

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise WrongAnswer(f"connection closed {size - len(self.buffer)} bytes short")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def response(self, method: str = "GET") -> Response:
        """The next final response (1xx skipped)."""
        while True:
            head = self._until(b"\r\n\r\n").decode("latin-1")
            status_line, *lines = head.split("\r\n")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or parts[0] != "HTTP/1.1" or not parts[1].isdigit():
                raise WrongAnswer(f"bad status line {status_line!r}")
            status = int(parts[1])
            if status >= 200:
                break
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding") == "chunked":
            pieces = []
            while size := int(self._until(b"\r\n").split(b";")[0], 16):
                pieces.append(self._exactly(size + 2)[:-2])
            while self._until(b"\r\n"):  # trailer fields, then the empty line
                pass
            body = b"".join(pieces)
        elif "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
        else:
            body = self.until_closed()
        return Response(status, headers, body)

    def until_closed(self) -> bytes:
        """Everything until EOF (a reset counts as EOF)."""
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            pass
        data, self.buffer = self.buffer, b""
        return data

    def close(self, reset: bool = False) -> None:
        if reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.sock.close()


def request(method: str, target: str, headers: dict[str, str] | None = None,
            body: bytes = b"") -> bytes:
    """A request's bytes; Content-Length added for a body."""
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost"]
    fields = dict(headers or {})
    if body and "Transfer-Encoding" not in fields:
        fields["Content-Length"] = str(len(body))
    lines += [f"{name}: {value}" for name, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(pieces: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


def expect(response: Response, status: int, body: bytes | None = None, what: str = "") -> None:
    if response.status != status:
        raise WrongAnswer(f"{what}: status {response.status}, wanted {status}")
    if body is not None and response.body != body:
        raise WrongAnswer(f"{what}: body of {len(response.body)} bytes differs "
                          f"from the {len(body)} expected")


def seeded_body(seed: int, size: int) -> bytes:
    """A body that names its own seed: verifiable whichever writer won."""
    return struct.pack(">Q", seed) + random.Random(seed).randbytes(size)


def check_seeded(body: bytes) -> bool:
    return len(body) >= 8 and body == seeded_body(struct.unpack(">Q", body[:8])[0],
                                                  len(body) - 8)


# -- the kinds of traffic ---------------------------------------------------------
# Each takes (port, rng, worker state) and returns how many requests it made;
# a wrong answer raises WrongAnswer, anything unexpected its own exception.


def keep_alive_gets(port: int, rng: random.Random, state: dict) -> int:
    conn = Conn(port)
    try:
        for n in range(50):
            if n % 10 == 9:
                agent = f"soak/{rng.randrange(10**6)}"
                conn.send(request("GET", "/user-agent", {"User-Agent": agent}))
                expect(conn.response(), 200, agent.encode(), "user-agent")
            else:
                text = f"t{rng.randrange(10**9)}"
                conn.send(request("GET", f"/echo/{text}"))
                expect(conn.response(), 200, text.encode(), "keep-alive echo")
    finally:
        conn.close()
    return 50


def close_gets(port: int, rng: random.Random, state: dict) -> int:
    conn = Conn(port)
    try:
        conn.send(request("GET", "/", {"Connection": "close"}))
        response = conn.response()
        expect(response, 200, b"", "Connection: close")
        if response.headers.get("connection") != "close":
            raise WrongAnswer("no Connection: close on a closing response")
        if conn.until_closed():
            raise WrongAnswer("bytes after the last response")
    finally:
        conn.close()
    return 1


def uploads(port: int, rng: random.Random, state: dict) -> int:
    name = f"{state['name']}-{rng.randrange(4)}"
    body = rng.randbytes(rng.choice([0, 1, 1000, 65536, 200_000, rng.randrange(600_000)]))
    conn = Conn(port)
    try:
        conn.send(request("POST", f"/files/{name}", body=body))
        expect(conn.response(), 201, b"", "upload")
        conn.send(request("GET", f"/files/{name}"))
        got = conn.response()
        expect(got, 200, body, "download of an upload")
        conn.send(request("HEAD", f"/files/{name}"))
        head = conn.response("HEAD")
        if head.headers.get("content-length") != str(len(body)):
            raise WrongAnswer("HEAD Content-Length differs from the upload")
        conn.send(request("GET", f"/files/{name}", {"If-None-Match": got.headers["etag"]}))
        expect(conn.response(), 304, b"", "conditional GET")
        if len(body) > 100:
            conn.send(request("GET", f"/files/{name}", {"Range": "bytes=10-99"}))
            expect(conn.response(), 206, body[10:100], "range")
            return 5
        return 4
    finally:
        conn.close()


def chunked_uploads(port: int, rng: random.Random, state: dict) -> int:
    shared = rng.random() < 0.5
    name = "shared" if shared else f"{state['name']}-c"
    body = seeded_body(rng.randrange(2**63), rng.randrange(300_000))
    cuts = sorted(rng.randrange(len(body) + 1) for _ in range(rng.randrange(1, 6)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    conn = Conn(port)
    try:
        method = "PUT" if shared else "POST"
        conn.send(request(method, f"/files/{name}", {"Transfer-Encoding": "chunked"})
                  + chunked(pieces))
        status = conn.response().status
        if status not in ((201, 204) if shared else (201,)):
            raise WrongAnswer(f"chunked upload: status {status}")
        conn.send(request("GET", f"/files/{name}"))
        got = conn.response()
        if got.status != 200 or not check_seeded(got.body):
            raise WrongAnswer(f"{name}: not one whole upload ({got.status}, {len(got.body)} B)")
        if not shared and got.body != body:
            raise WrongAnswer("chunked upload read back differently")
    finally:
        conn.close()
    return 2


def big_downloads(port: int, rng: random.Random, state: dict) -> int:
    conn = Conn(port)
    try:
        conn.send(request("GET", "/files/big"))
        got = conn.response()
        if got.status != 200 or hashlib.sha256(got.body).hexdigest() != state["big_sha256"]:
            raise WrongAnswer(f"big download: {got.status}, {len(got.body)} bytes, wrong hash")
    finally:
        conn.close()
    return 1


def pipelined(port: int, rng: random.Random, state: dict) -> int:
    texts = [f"p{rng.randrange(10**6)}" for _ in range(10)]
    methods = [rng.choice(["GET", "GET", "HEAD"]) for _ in texts]
    conn = Conn(port)
    try:
        conn.send(b"".join(request(m, f"/echo/{t}") for m, t in zip(methods, texts, strict=True)))
        for method, text in zip(methods, texts, strict=True):
            response = conn.response(method)
            expect(response, 200, b"" if method == "HEAD" else text.encode(), "pipelined")
            if response.headers.get("content-length") != str(len(text)):
                raise WrongAnswer("pipelined: wrong Content-Length")
    finally:
        conn.close()
    return 10


# (request bytes, status, whether the server must close the connection after it)
BAD_REQUESTS = [
    (b"GET / HTTP/1.1\r\n\r\n", 400, True),  # no Host
    (b"GARBAGE\r\n\r\n", 400, True),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400, True),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, True),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431, True),
    (b"POST /files/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
     % (MAX_BODY_BYTES + 1), 413, True),
    (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, True),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, True),
    # Both framings (RFC 9112 section 6.1): chunked wins, and the connection
    # MUST close after the response, so the smuggled second request is never read.
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 200, True),
    (b"GET /files/..%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n\r\n", 400, False),
    (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404, False),
    (b"DELETE /files/x HTTP/1.1\r\nHost: x\r\n\r\n", 405, False),
    (b"GET /files/missing HTTP/1.1\r\nHost: x\r\nRange: bytes=5-9\r\n\r\n", 404, False),
]


def bad_requests(port: int, rng: random.Random, state: dict) -> int:
    data, status, closes = BAD_REQUESTS[state.setdefault("bad", 0) % len(BAD_REQUESTS)]
    state["bad"] += 1
    what = f"bad request {data[:40]!r}"
    conn = Conn(port)
    try:
        conn.send(data)
        response = conn.response()
        expect(response, status, None, what)
        if closes:
            if response.headers.get("connection") != "close":
                raise WrongAnswer(f"{what}: no Connection: close")
            if conn.until_closed():
                raise WrongAnswer(f"{what}: more bytes after the response")
    finally:
        conn.close()
    return 1


def disconnects(port: int, rng: random.Random, state: dict) -> int:
    """Vanish at some point of a request; the answer is not checked (there is none)."""
    step = state.setdefault("cut", 0) % 6
    state["cut"] += 1
    conn = Conn(port)
    reset = rng.random() < 0.5
    try:
        if step == 0:  # mid-head
            conn.send(b"GET /echo/x HTTP/1.1\r\nHo")
        elif step in (1, 2):  # mid-body of an upload, Content-Length or chunked
            name = f"{state['name']}-cut"
            if step == 1:
                conn.send(b"POST /files/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                          % name.encode() + b"a" * rng.randrange(1, 100_000))
            else:
                conn.send(b"POST /files/%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                          b"\r\n\r\n1000\r\n" % name.encode() + b"a" * rng.randrange(4096))
            time.sleep(0.01)
        elif step == 3:  # mid-response of a big file
            conn.send(request("GET", "/files/big"))
            conn.sock.recv(65536)
            reset = True
        elif step == 4:  # before reading any of the response
            conn.send(request("GET", "/echo/unread"))
        else:  # mid-way through pipelined requests
            conn.send(request("GET", "/echo/a") + request("GET", "/echo/b")[:20])
    finally:
        conn.close(reset=reset)
    return 1


def slow_clients(port: int, rng: random.Random, state: dict) -> int:
    step = state.setdefault("slow", 0) % 5
    state["slow"] += 1
    conn = Conn(port)
    try:
        if step == 4:  # an unfinished head, left alone: 408 after the header timeout
            conn.send(b"GET /echo/slow HTTP/1.1\r\nHost: x\r\n")
            expect(conn.response(), 408, None, "stalled head")
            return 1
        if step == 3:  # a body trickled over half a second: stored whole
            body = rng.randbytes(1000)
            data = request("POST", f"/files/{state['name']}-slow", body=body)
            head_end = len(data) - len(body)
            conn.send(data[:head_end])
            for offset in range(0, len(body), 100):
                conn.send(body[offset:offset + 100])
                time.sleep(0.05)
            expect(conn.response(), 201, b"", "trickled body")
            return 1
        data = request("GET", "/echo/trickled")  # a head trickled over a second
        for offset in range(0, len(data), max(len(data) // 10, 1)):
            conn.send(data[offset:offset + max(len(data) // 10, 1)])
            time.sleep(0.1)
        expect(conn.response(), 200, b"trickled", "trickled head")
        return 1
    finally:
        conn.close()


KINDS = {  # name: (function, threads)
    "keep-alive": (keep_alive_gets, 2),
    "close": (close_gets, 1),
    "upload": (uploads, 2),
    "chunked-upload": (chunked_uploads, 2),
    "big-download": (big_downloads, 1),
    "pipelined": (pipelined, 1),
    "bad-request": (bad_requests, 1),
    "disconnect": (disconnects, 1),
    "slow": (slow_clients, 1),
}


# -- running the traffic ------------------------------------------------------


@dataclass
class Tally:
    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[str] = field(default_factory=list)  # the first error messages
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, count: int) -> None:
        with self.lock:
            self.requests[kind] += count

    def error(self, kind: str, message: str) -> None:
        with self.lock:
            self.errors[kind] += 1
            if len(self.samples) < 20:
                self.samples.append(f"{kind}: {message}")


class Traffic:
    """Client threads, one kind of traffic each, until stopped."""

    def __init__(self, port: int, big_sha256: str, seed: int, tally: Tally) -> None:
        self.stop_flag = threading.Event()
        self.threads = []
        for kind, (function, count) in KINDS.items():
            for n in range(count):
                state = {"name": f"{kind}{n}", "big_sha256": big_sha256}
                rng = random.Random(f"{seed}-{kind}-{n}")
                self.threads.append(threading.Thread(
                    target=self._loop, args=(kind, function, port, rng, state, tally),
                    name=f"soak-{kind}-{n}", daemon=True))

    def _loop(self, kind, function, port, rng, state, tally) -> None:
        while not self.stop_flag.is_set():
            try:
                tally.add(kind, function(port, rng, state))
            except Exception as error:  # noqa: BLE001 - every failure is a finding
                tally.error(kind, f"{type(error).__name__}: {error}")
                self.stop_flag.wait(0.1)  # no hot loop against a broken server

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> list[str]:
        """Stop and join; the names of threads that did not end (bounded wait)."""
        self.stop_flag.set()
        deadline = time.monotonic() + 3 * TIMEOUT
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
        return [t.name for t in self.threads if t.is_alive()]


def run_traffic(port: int, seconds: float, big_sha256: str, seed: int, tally: Tally,
                pid: int, samples: list[tuple[float, float, int]] | None = None) -> None:
    traffic = Traffic(port, big_sha256, seed, tally)
    traffic.start()
    started = time.monotonic()
    try:
        while (left := started + seconds - time.monotonic()) > 0:
            time.sleep(min(left, 8.5))
            if samples is not None and started + seconds - time.monotonic() > 1.5:
                # Under load, so above the settled figures; what matters is the trend.
                rss = trimmed_rss_mib(pid)
                samples.append((time.monotonic() - started, rss, fd_count(pid)))
    finally:
        stuck = traffic.stop()
        for name in stuck:
            tally.error("driver", f"client thread {name} did not stop")


# -- the server and its figures ----------------------------------------------------


def serve_child(argv: list[str]) -> int:
    """``python bench/soak.py --serve-child ARGS``: exactly ``python -m wsgiserver
    ARGS``, plus one hook: SIGUSR1 runs the garbage collector and glibc's
    malloc_trim(0), so that RSS read just after it counts memory in use, not
    free memory the allocator keeps (see bench/README.md, "Soak")."""
    import ctypes
    import gc
    import signal

    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError):
        trim = None

    def on_usr1(number, frame) -> None:
        gc.collect()
        if trim is not None:
            trim(0)

    signal.signal(signal.SIGUSR1, on_usr1)
    from wsgiserver.cli import main as wsgiserver_main

    return wsgiserver_main(argv)


def trimmed_rss_mib(pid: int) -> float:
    """RSS after the server collected garbage and gave free heap back (SIGUSR1).
    Its main thread runs the handler within half a second."""
    os.kill(pid, signal.SIGUSR1)
    time.sleep(1.5)
    return procs.rss_mib(pid)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle(pid: int, quiet: float = 2.0, limit: float = 20.0) -> int:
    """Wait until the fd count is unchanged for ``quiet`` seconds; that count."""
    deadline = time.monotonic() + limit
    last, since = fd_count(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = fd_count(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def log_problems(path: str) -> list[str]:
    """Lines of the server's log that show a problem (it runs at --log-level warning)."""
    with open(path, errors="replace") as log:
        return [line.rstrip() for line in log
                if any(word in line for word in ("WARNING", "ERROR", "CRITICAL", "Traceback"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="traffic duration in minutes")
    length.add_argument("--seconds", type=float, help="traffic duration in seconds (quick runs)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds of traffic before the start figures "
                             "(default: a tenth of the run, 5 to 30 s)")
    parser.add_argument("--threads", type=int, default=8, help="server worker threads (8)")
    parser.add_argument("--max-rss-growth-mib", type=float, default=8.0,
                        help="trimmed RSS growth from start to end that fails the run "
                             "(8 MiB): above the 0.2-3 MiB pymalloc drifts by after "
                             "warm-up, below what a leak of one small object per request "
                             "makes in a 2-minute run (~500 k requests, ~16 B/request)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="the kinds of traffic to drive, comma-separated (all): "
                             "to find which one a failure comes from")
    parser.add_argument("--seed", type=int, default=1, help="seed of the traffic's randomness")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and server log")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes or 2.0)
    if not seconds > 0:
        parser.error("the duration must be positive")
    unknown = set(args.kinds.split(",")) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    for kind in set(KINDS) - set(args.kinds.split(",")):
        del KINDS[kind]
    warmup = args.warmup if args.warmup is not None else min(max(seconds / 10, 5.0), 30.0)

    workdir = tempfile.mkdtemp(prefix="wsgiserver-soak-")
    files = os.path.join(workdir, "files")
    os.mkdir(files)
    big = random.Random(args.seed).randbytes(BIG_FILE_BYTES)
    with open(os.path.join(files, "big"), "wb") as f:
        f.write(big)
    big_sha256 = hashlib.sha256(big).hexdigest()
    log_path = os.path.join(workdir, "server.log")
    port = procs.free_port()
    cmd = [sys.executable, os.path.abspath(__file__), "--serve-child", "microapp:app",
           "--directory", files,
           "--host", HOST, "--port", str(port), "--threads", str(args.threads),
           "--max-body-bytes", str(MAX_BODY_BYTES), "--log-level", "warning"]
    for option, value in SERVER_TIMEOUTS.items():
        cmd += [option, value]
    print("server: python -m wsgiserver", " ".join(cmd[3:]), "(+ the SIGUSR1 trim hook)")
    print(f"traffic: {sum(n for _, n in KINDS.values())} client threads "
          f"({', '.join(f'{k} x{n}' for k, (_, n) in KINDS.items())})")
    print(f"warm-up {warmup:.0f} s, run {seconds:.0f} s", flush=True)

    tally, warm_tally = Tally(), Tally()
    failures: list[str] = []
    proc = procs.start(cmd, log_path, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
    try:
        problem = procs.wait_ready(proc, port)
        if problem:
            print(f"the server is not serving: {problem}")
            return 2
        pid = proc.pid
        fd_idle = fd_count(pid)
        run_traffic(port, warmup, big_sha256, args.seed, warm_tally, pid)
        fd_start = settle(pid)
        raw_start = procs.rss_mib(pid)
        rss_start = trimmed_rss_mib(pid)
        print(f"start (after warm-up): RSS {rss_start:.1f} MiB trimmed ({raw_start:.1f} before), "
              f"{fd_start} fds (before warm-up: {fd_idle})", flush=True)

        samples: list[tuple[float, float, int]] = []
        began = time.monotonic()
        run_traffic(port, seconds, big_sha256, args.seed + 1, tally, pid, samples)
        elapsed = time.monotonic() - began
        fd_end = settle(pid)
        raw_end = procs.rss_mib(pid)
        rss_end = trimmed_rss_mib(pid)
        peak = procs.rss_mib(pid, "VmHWM")

        try:
            status, _ = procs.http_get(port, "/echo/last", timeout=TIMEOUT)
            if status != 200:
                failures.append(f"the last request got {status}")
        except OSError as error:
            failures.append(f"the last request failed: {error}")
    finally:
        code = procs.stop(proc, grace=10.0)
    leftovers = [n for n in os.listdir(files) if n.startswith(TEMPORARY_PREFIX)]
    problems = log_problems(log_path)

    total = sum(tally.requests.values())
    errors = sum(tally.errors.values()) + sum(warm_tally.errors.values())
    print()
    print(f"traffic: {total} requests in {elapsed:.0f} s ({total / elapsed:.0f}/s), "
          f"{errors} errors")
    for kind in KINDS:
        print(f"  {kind:<15} {tally.requests[kind]:>8} requests  {tally.errors[kind]:>3} errors")
    for message in warm_tally.samples + tally.samples:
        print("  error:", message)
    print("during the run, trimmed RSS every 10 s (s: MiB/fds):",
          " ".join(f"{t:.0f}:{rss:.1f}/{fds}" for t, rss, fds in samples))
    growth = rss_end - rss_start
    print(f"RSS (trimmed): start {rss_start:.1f} MiB, end {rss_end:.1f} MiB, "
          f"growth {growth:+.1f} MiB (limit {args.max_rss_growth_mib:g})")
    print(f"RSS (untrimmed): start {raw_start:.1f} MiB, end {raw_end:.1f} MiB, "
          f"growth {raw_end - raw_start:+.1f} MiB, peak {peak:.1f} MiB")
    print(f"fds: start {fd_start}, end {fd_end}")
    print(f"server log problems: {len(problems)}; temporary files left: {len(leftovers)}; "
          f"exit code on SIGTERM: {code}")
    for line in problems[:10]:
        print("  log:", line)

    if errors:
        failures.append(f"{errors} client errors")
    if fd_end != fd_start:
        failures.append(f"descriptors did not return: {fd_start} -> {fd_end}")
    if growth > args.max_rss_growth_mib:
        failures.append(f"RSS grew by {growth:.1f} MiB")
    if problems:
        failures.append(f"{len(problems)} problem lines in the server log")
    if leftovers:
        failures.append(f"{len(leftovers)} temporary upload files left")
    if code != 0:
        failures.append(f"the server exited with {code} on SIGTERM")
    if args.keep:
        print(f"kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print("FAIL: " + "; ".join(failures) if failures else "PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-child"]:
        sys.exit(serve_child(sys.argv[2:]))
    try:
        sys.exit(main())
    finally:
        procs.stop_all()  # on Ctrl-C or an error too: by PID, what we started
