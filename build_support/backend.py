"""setuptools' build backend, asking for mypy (which brings mypyc) only when
the compiled build is asked for (WSGISERVER_COMPILE=1): the default build
needs nothing but setuptools."""

from __future__ import annotations

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (the rest of the interface as it is)


def _compiler_requires() -> list[str]:
    wanted = os.environ.get("WSGISERVER_COMPILE", "").lower() in ("1", "true", "yes")
    return ["mypy>=1.10"] if wanted else []


def get_requires_for_build_wheel(config_settings=None):  # type: ignore[no-untyped-def]
    return _setuptools.get_requires_for_build_wheel(config_settings) + _compiler_requires()


def get_requires_for_build_editable(config_settings=None):  # type: ignore[no-untyped-def]
    return _setuptools.get_requires_for_build_editable(config_settings) + _compiler_requires()
