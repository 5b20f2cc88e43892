"""Raw WSGI calls for tests that must see exactly what an app sends
(WebTest decodes gzip and fills in what an app leaves out)."""

from __future__ import annotations

import io
import wsgiref.util
import wsgiref.validate
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Exchange:
    """What a raw WSGI call produced: the head, every chunk, and the environ."""

    status: str
    headers: list[tuple[str, str]]
    chunks: list[bytes]
    environ: dict[str, Any]

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def code(self) -> int:
        return int(self.status.split()[0])

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


def make_environ(method: str = "GET", path: str = "/", body: bytes = b"",
                 headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """A complete PEP 3333 environ; header names as in HTTP ("Accept-Encoding")."""
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path,
                               "QUERY_STRING": "",
                               "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO()}
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    environ.update(extra)
    wsgiref.util.setup_testing_defaults(environ)
    return environ


def call_wsgi(app: Callable[..., Any], method: str = "GET", path: str = "/",
              validate: bool = True, **kwargs: Any) -> Exchange:
    """Run ``app`` once, through wsgiref's validator unless told not to."""
    environ = make_environ(method, path, **kwargs)
    head: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        head["status"], head["headers"] = status, headers
        return lambda data: head.setdefault("written", []).append(data)

    wrapped = wsgiref.validate.validator(app) if validate else app
    result = wrapped(environ, start_response)
    try:
        chunks = list(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return Exchange(head["status"], head["headers"], head.get("written", []) + chunks, environ)
