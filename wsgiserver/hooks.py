"""What runs in each worker process besides the server: the application's
import (after the fork, when asked) and the operator's start and exit hooks.

Owns their shape only; the supervisor calls them in each worker, the runner
in its one process. Knows nothing of HTTP or of how they were named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .wsgi import WSGIApp

__all__ = ["WorkerHooks"]


@dataclass(frozen=True)
class WorkerHooks:
    """What runs in each worker process: ``load`` imports the application
    after the fork (instead of once before it, gunicorn without --preload),
    ``on_start`` runs before it serves (open per-process resources there),
    ``on_exit`` once it has stopped. A hook that raises ends that worker's
    start (logged, the worker is replaced) or is logged at exit."""

    load: Callable[[], WSGIApp] | None = None
    on_start: Callable[[], object] | None = None
    on_exit: Callable[[], object] | None = None
