"""Instructions per request, counted with callgrind: a figure that does not
move with the machine's load, to decide what to change (wall-clock runs,
bench/run.py, are what to report).

For each scenario the server runs under ``valgrind --tool=callgrind`` with
one thread; a client sends N requests, then 3N more in another run; the
difference of the two totals divided by 2N is one request's cost, start-up
and shut-down cancelled out. The server is the checkout given (``--tree``,
default this one): a tree built with ``WSGISERVER_COMPILE=1 python setup.py
build_ext --inplace`` runs compiled, and the output says which.

Scenarios: ``hello`` (GET / keep-alive), ``close`` (GET / with Connection:
close, a connection each), ``upload`` (POST /upload, 64 KiB read by the
app, keep-alive), ``flask`` (GET / of bench.flask_app, needs flask).

Usage: ``python bench/cost.py [--tree DIR] [--scenarios hello,close] [-n 300]``
(needs valgrind: apt-get install valgrind; installed here when missing and
apt-get is there).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
UPLOAD = 64 * 1024

SCENARIOS = {
    "hello": ("bench.apps:app", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
    "close": ("bench.apps:app", b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
              False),
    "upload": ("bench.apps:app", b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
               % UPLOAD + b"u" * UPLOAD, True),
    "flask": ("bench.flask_app:app", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
}


def valgrind() -> str:
    found = shutil.which("valgrind")
    if found is None and shutil.which("apt-get") is not None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=False,
                       stdout=subprocess.DEVNULL)
        found = shutil.which("valgrind")
    if found is None:
        raise SystemExit("bench/cost.py needs valgrind: apt-get install valgrind")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_response(sock: socket.socket, pending: bytearray) -> None:
    """Read one response (Content-Length framed) off ``sock``."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        pending += chunk
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed within a response")
        rest += chunk
    pending[:] = rest[length:]


def drive(port: int, request: bytes, keep_alive: bool, count: int) -> None:
    if keep_alive:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            pending = bytearray()
            for _ in range(count):
                sock.sendall(request)
                read_response(sock, pending)
        return
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(request)
            read_response(sock, bytearray())


def instructions(tree: Path, app: str, request: bytes, keep_alive: bool, count: int,
                 keep: Path | None = None) -> int:
    """Instructions the server process ran to serve ``count`` requests;
    ``keep``: where to copy callgrind's output (for callgrind_annotate)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        server = subprocess.Popen(
            [valgrind(), "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, "-m", "wsgiserver", app, "--threads", "1", "--port", str(port),
             "--log-level", "warning"],
            cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the server in {tree} did not start") from None
                    time.sleep(0.2)
            drive(port, request, keep_alive, count)
        finally:
            server.terminate()
            server.wait(120)
        if keep is not None:
            shutil.copyfile(out, keep)
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        if match is None:
            raise SystemExit("callgrind wrote no total")
        return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=HERE, help="the checkout to run")
    parser.add_argument("--scenarios", default="hello,close,upload,flask")
    parser.add_argument("-n", type=int, default=300, help="requests of the short run")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each scenario's longer callgrind output in DIR")
    args = parser.parse_args()
    build = subprocess.run([sys.executable, "-m", "wsgiserver", "--version"], cwd=args.tree,
                           capture_output=True, text=True).stdout.strip()
    print(f"{build} in {args.tree}; instructions per request (callgrind, 1 thread):")
    for name in args.scenarios.split(","):
        app, request, keep_alive = SCENARIOS[name]
        if name == "flask" and shutil.which(sys.executable) and \
                subprocess.run([sys.executable, "-c", "import flask"],
                               capture_output=True).returncode:
            print(f"  {name:8} skipped: pip install flask")
            continue
        short = instructions(args.tree, app, request, keep_alive, args.n)
        keep = args.keep / f"callgrind.{name}.out" if args.keep else None
        long = instructions(args.tree, app, request, keep_alive, 3 * args.n, keep)
        print(f"  {name:8} {(long - short) / (2 * args.n):>10,.0f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
