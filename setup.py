"""The build. Pure Python by default (no compiler, installs in seconds).

``WSGISERVER_COMPILE=1 pip install .`` compiles the request path
(``wsgiserver/build.py`` lists the modules) into C extensions with mypyc:
the same source, imported in place of the ``.py`` files. Without mypyc or a
C compiler, or if compiling fails, it says so in one line and builds pure
Python.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent


def say(text: str) -> None:
    print(f"wsgiserver build: {text}", file=sys.stderr)


def compiled_modules() -> list[str]:
    """The list in wsgiserver/build.py, read without importing the package."""
    tree = ast.parse((HERE / "wsgiserver" / "build.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == \
                "COMPILED_MODULES":
            return list(ast.literal_eval(node.value))
    raise SystemExit("wsgiserver/build.py has no COMPILED_MODULES")


def extensions() -> list:
    if os.environ.get("WSGISERVER_COMPILE", "").lower() not in ("1", "true", "yes"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        say("WSGISERVER_COMPILE is set but mypyc is missing (pip install mypy): pure Python")
        return []
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(os.environ.get("CC", compiler).split()[0]) is None:
        say(f"no C compiler ({compiler}) on PATH: pure Python")
        return []
    say("compiling the request path with mypyc")
    # The optional h2 need not be in the build's environment: only
    # h2connection.py uses it, and that module is not compiled.
    flags = ["--ignore-missing-imports", "--no-warn-unused-ignores"]
    try:
        return mypycify([*flags, *compiled_modules()], opt_level="3")
    except (SystemExit, Exception) as error:  # mypyc reports type errors by exiting
        say(f"mypyc could not compile ({error}): pure Python")
        return []


class OptionalBuildExt(build_ext):
    """A failed compile leaves the pure-Python package, with a line saying so."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # CompileError, LinkError, a missing header
            say(f"compiling failed ({error}): pure Python")


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
