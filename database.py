"""The database the app is pointed at (DATABASE_URL): opened at start-up, pooled, in
write-ahead logging on SQLite, its schema brought up to date (schema.py); and one
connection per request, taken only when a query needs it.
"""

import os
import time
from contextlib import contextmanager
from urllib.parse import urlparse

from peewee import OperationalError, SqliteDatabase
from playhouse.db_url import connect

from models import db, prune
from schema import upgrade_schema


@contextmanager
def connection_when_needed():
    """For one request: peewee takes a connection from the pool at the first query, and it
    goes back at the end. A page that asks the database nothing costs it nothing."""
    try:
        yield
    finally:
        db.close()


def use_wal(database):
    """Write-ahead logging: readers go on while one process writes. The file keeps the mode,
    but switching to it needs the file to itself for a moment and does not wait for it, so a
    process starting beside another one tries again."""
    for _ in range(100):
        try:
            database.execute_sql("PRAGMA journal_mode = wal")
            return
        except OperationalError:
            time.sleep(0.05)
    raise OperationalError("could not switch the database to write-ahead logging")


def open_database(database_url):
    """Connect the models to DATABASE_URL, and create or upgrade the tables."""
    # A pool keeps each thread's connection open between requests: opening one, with its
    # pragmas, costs more than all the queries of a page.
    scheme, rest = database_url.split(":", 1)
    pooled = f"{scheme}+pool:{rest}"
    pool = {"max_connections": 64, "stale_timeout": 300, "timeout": 10}
    if database_url.startswith("sqlite:"):
        path = urlparse(database_url).path[1:]
        if path and path != ":memory:" and not os.path.exists(path):
            # Tokens live in this file: only its owner may read it.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        # BEGIN IMMEDIATE: a transaction takes the write lock first, waiting for it if need
        # be. Deferred, one that read before writing would fail at once ("database is
        # locked") whenever another process had written in between.
        database = connect(
            pooled,
            pragmas={"foreign_keys": 1},
            lock_type="IMMEDIATE",
            check_same_thread=False,  # a pooled connection serves one thread at a time
            **pool,
        )
    elif database_url.startswith(("postgres:", "postgresql:")):
        database = connect(
            pooled,
            **pool,
            # Every moment here is a UTC datetime with its zone. PostgreSQL's plain TIMESTAMP
            # would hand them back without one, and comparing those with aware ones fails.
            field_types={"DATETIME": "TIMESTAMPTZ"},
            # UTC, so times come back as they went in; and a lock wait ends as SQLite's
            # does, after 5 s with an OperationalError, not never.
            options="-c timezone=UTC -c lock_timeout=5s",
        )
    else:
        database = connect(database_url)
    db.initialize(database)
    with db.connection_context():
        if isinstance(database, SqliteDatabase):
            use_wal(database)
        upgrade_schema(database)
        prune()
    return database
