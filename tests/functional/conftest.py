"""Fixtures shared by the functional tests."""

from __future__ import annotations

import pytest

from tests.functional.browser import launch


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium on loopback and a DevTools connection to it
    (skips, saying how to install it, when there is no Chromium)."""
    with launch(tmp_path) as devtools:
        yield devtools
