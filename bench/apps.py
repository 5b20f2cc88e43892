"""The one WSGI application every benchmarked server runs.

Routes by PATH_INFO:

- ``/``        13-byte ``Hello, World!``
- ``/1mib``    1 MiB body from memory (one bytes object)
- ``/file``    a 10 MiB file through ``environ['wsgi.file_wrapper']``, with
               Content-Length (the file named by $WSGISERVER_BENCH_FILE,
               created on first use if missing)
- ``/upload``  reads the request body fully and answers its length

Standard library only, so every server loads exactly the same code:
``bench.apps:app`` from the repository root.
"""

from __future__ import annotations

import os
import tempfile

HELLO = b"Hello, World!"
ONE_MIB = b"x" * (1024 * 1024)
FILE_SIZE = 10 * 1024 * 1024
FILE_PATH = os.environ.get("WSGISERVER_BENCH_FILE") or os.path.join(
    tempfile.gettempdir(), "wsgiserver-bench-10mib.bin"
)
READ_CHUNK = 64 * 1024


def make_file(path: str = FILE_PATH, size: int = FILE_SIZE) -> str:
    """Write the benchmark file (a fixed byte pattern) unless it already has the right size."""
    if not os.path.exists(path) or os.path.getsize(path) != size:
        block = bytes(range(256)) * 4096  # 1 MiB
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            for _ in range(size // len(block)):
                f.write(block)
            f.write(block[: size % len(block)])
        os.replace(tmp, path)
    return path


def _plain(start_response, body: bytes, status: str = "200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def hello(environ, start_response):
    return _plain(start_response, HELLO)


def one_mib(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(ONE_MIB)))])
    return [ONE_MIB]


def _file_chunks(f):
    """Fallback for a server without wsgi.file_wrapper; closes the file at the end."""
    try:
        while chunk := f.read(READ_CHUNK):
            yield chunk
    finally:
        f.close()


def send_file(environ, start_response):
    if not os.path.exists(FILE_PATH):
        make_file()
    f = open(FILE_PATH, "rb")  # noqa: SIM115 - closed by the server via the wrapper's close()
    size = os.fstat(f.fileno()).st_size
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is None:
        return _file_chunks(f)
    return wrapper(f, READ_CHUNK)


def upload(environ, start_response):
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _plain(start_response, b"bad Content-Length", "400 Bad Request")
    stream = environ["wsgi.input"]
    received = 0
    while remaining > 0:
        chunk = stream.read(min(READ_CHUNK, remaining))
        if not chunk:
            break
        received += len(chunk)
        remaining -= len(chunk)
    if remaining:
        return _plain(start_response, b"body truncated", "400 Bad Request")
    return _plain(start_response, str(received).encode())


ROUTES = {"/": hello, "/1mib": one_mib, "/file": send_file, "/upload": upload}


def app(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO") or "/")
    if handler is None:
        return _plain(start_response, b"Not Found", "404 Not Found")
    return handler(environ, start_response)
