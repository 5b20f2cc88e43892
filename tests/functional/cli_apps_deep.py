"""An application whose import fails two modules down, for the CLI tests."""

from tests.functional import cli_apps_deep_inner  # noqa: F401

app = None
