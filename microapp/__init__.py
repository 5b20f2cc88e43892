"""microapp: a small WSGI framework, and the application wsgiserver serves.

Standard library only; imports nothing from wsgiserver, so any WSGI server
runs it and WebTest tests it in-process. ``microapp:app`` is the bundled
application (see views.py); create_app(directory) builds another.
"""

from __future__ import annotations

from microapp.application import App
from microapp.compression import GzipMiddleware
from microapp.errors import HTTPError
from microapp.forms import FormLimits, UploadedFile
from microapp.request import Request
from microapp.response import Response
from microapp.views import create_app

__all__ = ["App", "FormLimits", "GzipMiddleware", "HTTPError", "Request", "Response",
           "UploadedFile", "app", "create_app"]

app = create_app()
