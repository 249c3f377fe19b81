"""Shared fixtures: a throwaway PostgreSQL server for the tests that need one.

The server is started once per test run (initdb into a temporary directory, a free loopback
port) and stopped at the end; each test gets a database of its own.  Where the server binaries
are absent (the distribution's `postgresql` package is not installed) those tests skip, saying
so; CI installs the package, so there they run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from scripts.pgserver import PgServer, PgUnavailable
from tests import engines

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        server = PgServer()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    try:
        server.start()
    except Exception:
        server.destroy()
        raise
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the shared server; dropped after the test."""
    name = f"t{next(_databases)}"
    url = pg_server.create_database(name)
    try:
        yield url
    finally:
        try:
            pg_server.drop_database(name)
        except RuntimeError:
            pass  # the server was stopped by the test and not started again: nothing to drop


# -- the same tests on each store engine ----------------------------------------------------------
#
# A module opts in with `pytestmark = pytest.mark.usefixtures("store_engine")`: each of its tests
# then runs once on SQLite and once on PostgreSQL (a fresh database of its own).  Helpers that open
# a store or write a gateway config ask `tests.engines.location(tmp_path)` where the store lives.
# A test that checks something only one engine has is marked `@pytest.mark.engine("sqlite")`.


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "engine(name): run this test on that store engine only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_engine" not in metafunc.fixturenames:
        return
    only = metafunc.definition.get_closest_marker("engine")
    names = [only.args[0]] if only is not None else list(engines.ENGINES)
    metafunc.parametrize("store_engine", names, indirect=True)


@pytest.fixture
def store_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    name = getattr(request, "param", "sqlite")
    if name == "sqlite":
        with engines.using(None):
            yield name
        return
    server = request.getfixturevalue("pg_server")
    made: list[str] = []

    def new_database() -> str:
        db = f"e{next(_databases)}"
        made.append(db)
        return server.create_database(db)

    try:
        with engines.using(new_database):
            yield name
    finally:
        for db in made:
            try:
                server.drop_database(db)
            except RuntimeError:
                pass  # the server was stopped by the test and not started again
