"""A module that fails on import, for the CLI tests."""

raise ImportError("this module is broken on purpose")
