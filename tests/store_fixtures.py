"""Stores for the tests: a SQLite file in the test's folder, or a schema of its own on the real PostgreSQL.

PostgreSQL is the machine's (127.0.0.1:5432, trust auth, database `test`), or the one IVIG_CDS_TEST_POSTGRES_URL
names. Each test gets a schema no other run uses (the URL sets it as the search_path, the way a deployment
could), dropped with everything in it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from cds_service.store import engine_url

POSTGRES_URL = os.environ.get("IVIG_CDS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """The URL of an empty schema of this test's own on the real PostgreSQL."""
    schema = f"ivig_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(engine_url(POSTGRES_URL))
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} ({type(exc).__name__}): start it, or set "
                    "IVIG_CDS_TEST_POSTGRES_URL to one where this user may create a schema")
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """Each test using this runs once on a SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'store.sqlite3'}"
    return request.getfixturevalue("postgres_url")
