"""The opt-in compiled build: what it compiles exists, the running copy
knows whether it is compiled, and a build that cannot compile says so in
one line and builds pure Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from wsgiserver import build

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_the_compiled_build_names_exists():
    assert build.COMPILED_MODULES
    for module in build.COMPILED_MODULES:
        assert (ROOT / module).is_file(), module


def test_the_copy_knows_whether_it_runs_compiled():
    extension = any((ROOT / "wsgiserver" / "protocol").glob("parser.*.so")) or \
        any((ROOT / "wsgiserver" / "protocol").glob("parser.*.pyd"))
    assert build.compiled() is extension
    assert build.describe().endswith("compiled with mypyc" if extension else "pure Python")
    if os.environ.get("TEST_EXPECT_COMPILED") == "1":  # set by .ci/run's compiled run
        assert build.compiled(), "the compiled run is running pure Python"


def test_without_a_compiler_the_build_says_so_and_stays_pure(tmp_path):
    environ = dict(os.environ, WSGISERVER_COMPILE="1", CC=str(tmp_path / "no-such-cc"))
    result = subprocess.run([sys.executable, "setup.py", "--name"], cwd=ROOT, env=environ,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "wsgiserver-microapp"
    assert "no C compiler" in result.stderr and "pure Python" in result.stderr
