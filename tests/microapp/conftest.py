"""Fixtures for microapp's in-process tests: the bundled app and a WebTest client."""

from __future__ import annotations

import pytest
import webtest

from microapp import create_app


@pytest.fixture
def files_dir(tmp_path):
    """An empty directory for the bundled app's files."""
    directory = tmp_path / "files"
    directory.mkdir()
    return directory


@pytest.fixture
def bundled(files_dir):
    """The bundled app serving ``files_dir``."""
    return create_app(str(files_dir))


@pytest.fixture
def client(bundled) -> webtest.TestApp:
    """WebTest, with its lint on, around the bundled app."""
    return webtest.TestApp(bundled, lint=True)
