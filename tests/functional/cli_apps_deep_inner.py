"""Imported by cli_apps_deep: fails while reading its settings."""


def read_settings() -> dict:
    raise ValueError("DATABASE_URL is not set")


SETTINGS = read_settings()
