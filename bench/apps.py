"""The one WSGI application every benchmarked server runs.

Routes by PATH_INFO:

- ``/``        13-byte ``Hello, World!``
- ``/1mib``    1 MiB body from memory (one bytes object)
- ``/16mib``   16 MiB body, the same 1 MiB object yielded 16 times (a large
               response for the slow readers without 16 MiB per request)
- ``/file``    a 10 MiB file through ``environ['wsgi.file_wrapper']``, with
               Content-Length (the file named by $BENCH_FILE_PATH,
               created on first use if missing)
- ``/upload``  reads the request body fully and answers its length (a
               chunked body without Content-Length: read until its end)
- ``/sleep``   waits 300 ms, then answers like ``/`` (an app that waits on
               a database or a service: what concurrency is for)

``FLASK_PAYLOAD`` is the JSON that ``bench.flask_app:app`` answers, kept here
(standard library) so the driver can check it without importing Flask.

Standard library only, so every server loads exactly the same code:
``bench.apps:app`` from the repository root.
"""

from __future__ import annotations

import os
import tempfile
import time

HELLO = b"Hello, World!"
ONE_MIB = b"x" * (1024 * 1024)
FILE_SIZE = 10 * 1024 * 1024
FILE_PATH = os.environ.get("BENCH_FILE_PATH") or os.path.join(
    tempfile.gettempdir(), "wsgiserver-bench-10mib.bin"
)
READ_CHUNK = 64 * 1024
SIXTEEN_MIB = 16 * len(ONE_MIB)
# A few hundred bytes of JSON, the shape of a small API answer.
FLASK_PAYLOAD = {
    "hello": "world",
    "n": 42,
    "items": [{"id": i, "name": f"item {i}", "price": round(i * 1.25, 2), "tags": ["a", "b"]}
              for i in range(6)],
}


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


def sixteen_mib(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(SIXTEEN_MIB))])
    return [ONE_MIB] * 16  # 16 references to one object: no 16 MiB per request


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


def _read_to_end(stream) -> int:
    received = 0
    while chunk := stream.read(READ_CHUNK):
        received += len(chunk)
    return received


def upload(environ, start_response):
    stream = environ["wsgi.input"]
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or \
        environ.get("wsgi.input_terminated", False)  # servers that keep TE to themselves
    if chunked and not environ.get("CONTENT_LENGTH"):
        # The server de-chunks and ends wsgi.input at the last chunk (waitress
        # instead buffers the whole body and sets CONTENT_LENGTH).
        return _plain(start_response, str(_read_to_end(stream)).encode())
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _plain(start_response, b"bad Content-Length", "400 Bad Request")
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


def sleep(environ, start_response):
    time.sleep(0.3)
    return hello(environ, start_response)


ROUTES = {"/": hello, "/sleep": sleep, "/1mib": one_mib, "/16mib": sixteen_mib, "/file": send_file,
          "/upload": upload}


def app(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO") or "/")
    if handler is None:
        return _plain(start_response, b"Not Found", "404 Not Found")
    return handler(environ, start_response)
