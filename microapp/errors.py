"""HTTPError: the one exception a handler raises to answer with an HTTP error.

Owns only its shape (the status is data); turning it into a response is the
App's job.
"""

from __future__ import annotations

from collections.abc import Iterable

from microapp.headers import HeaderList, check_header, reason_phrase

__all__ = ["HTTPError"]


class HTTPError(Exception):
    """Raise anywhere in a request to answer with ``status``.

    ``detail`` becomes the text/plain body (the reason phrase when omitted);
    ``headers`` are added to the response (``Allow`` for a 405, ...).
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        if not 300 <= status <= 599:
            raise ValueError(f"HTTPError needs a 3xx, 4xx or 5xx status, not {status}")
        self.status = status
        self.detail = reason_phrase(status) if detail is None else detail
        self.headers: HeaderList = list(headers)
        for name, value in self.headers:
            check_header(name, value)
        super().__init__(f"{status} {self.detail}")
