"""The ``wsgiserver`` command's entry point: signal handlers first, then the rest.

Importing the server and the application takes a while (a tenth of a second
here, far more on a loaded machine or with a large application); a SIGINT
or SIGTERM in that time must stop the server once it runs, not be lost (a
process started in the background by a script inherits SIGINT ignored).
So this module imports only the signal table before installing it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Install the signal handlers, then run the command line."""
    from .stopsignals import StopSignals

    signals = StopSignals()
    signals.install()
    from .cli import main as run

    return run(argv, signals=signals)
