"""Shared pytest configuration. Fixtures live in modules of their own, one per concern."""

pytest_plugins = [
    "tests.conftest_db",
    "tests.engine_fixtures",
    "tests.ui_fixtures",
    "tests.remote_fixtures",
]
