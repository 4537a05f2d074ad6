"""The database the app is pointed at (DATABASE_URL): opened at start-up, pooled, in
write-ahead logging on SQLite, its schema brought up to date (schema.py); and one
connection per request, taken only when a query needs it.
"""

import logging
import os
import time
from contextlib import contextmanager
from urllib.parse import urlparse

from peewee import OperationalError, SqliteDatabase
from playhouse.db_url import connect

import encryption
import token_store
import unchanged_reads
from models import db, prune
from schema import upgrade_schema

log = logging.getLogger("fitbit_oauth_app")
# Where the key is kept without the setting, for a database that is not a SQLite file.
DEFAULT_KEY_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "token_encryption.key")


@contextmanager
def connection_when_needed():
    """For one request: peewee takes a connection from the pool at the first query, and it
    goes back at the end. A page that asks the database nothing costs it nothing."""
    try:
        yield
    finally:
        db.close()


def sqlite_file(database_url):
    """The file of a SQLite DATABASE_URL; None for a database in memory, or not SQLite."""
    if not database_url.startswith("sqlite:"):
        return None
    path = urlparse(database_url).path[1:]
    return None if path in ("", ":memory:") else path


def key_file_for(database_url):
    """Where the key is kept without TOKEN_ENCRYPTION_KEYS: beside a SQLite file, as
    <file>.key; for any other database, in the app's folder. None for a database in memory."""
    if database_url.startswith("sqlite:"):
        path = sqlite_file(database_url)
        return path + ".key" if path else None
    return DEFAULT_KEY_FILE


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


def open_database(database_url, keys=()):
    """Connect the models to DATABASE_URL, create or upgrade the tables, and seal what is
    kept of the users' with `keys` (TOKEN_ENCRYPTION_KEYS, newest first); without them,
    with the key kept beside the database (key_file_for())."""
    # A pool keeps each thread's connection open between requests: opening one, with its
    # pragmas, costs more than all the queries of a page.
    scheme, rest = database_url.split(":", 1)
    pooled = f"{scheme}+pool:{rest}"
    pool = {"max_connections": 64, "stale_timeout": 300, "timeout": 10}
    if database_url.startswith("sqlite:"):
        path = sqlite_file(database_url)
        if path and not os.path.exists(path):
            # Tokens live in this file: only its owner may read it.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        # BEGIN IMMEDIATE: a transaction takes the write lock first, waiting for it if need
        # be. Deferred, one that read before writing would fail at once ("database is
        # locked") whenever another process had written in between.
        database = connect(
            pooled,
            # secure_delete: what a row held is overwritten with zeros when it is changed
            # or deleted, so that no old token lingers in the file's free space.
            pragmas={"foreign_keys": 1, "secure_delete": 1},
            lock_type="IMMEDIATE",
            check_same_thread=False,  # a pooled connection serves one thread at a time
            factory=unchanged_reads.Connection,
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
    if keys:
        keyring = encryption.Keyring(keys)
    else:
        keyring = encryption.key_in_file(key_file_for(database_url))
    encryption.use(keyring)
    with db.connection_context():
        if isinstance(database, SqliteDatabase):
            use_wal(database)
        if upgrade_schema(database):
            leave_no_plain_text(database)
        check_keys(keyring)
        prune()
    return database


def check_keys(keyring):
    """Refuse to start, changing nothing, when values here were sealed by a key not given:
    every one of them would be lost."""
    missing = {
        kid: count
        for kid, count in token_store.key_ids_in_use().items()
        if kid and not keyring.holds(kid)
    }
    if missing:
        named = ", ".join(f"{kid} ({count} values)" for kid, count in sorted(missing.items()))
        raise SystemExit(
            f"{encryption.SETTING}: the database holds values sealed by keys it lacks: "
            f"{named}. Set {encryption.SETTING} to the keys they were sealed with (the newest "
            f"first; the keys in use now: {keyring.where}). Nothing was changed."
        )


def forget_what_was_deleted():
    """After Delete my data and `make reencrypt`: what the rows held before is gone from the
    database's files too. SQLite overwrites what a row held in its file (secure_delete), but
    its write-ahead log keeps the pages as they were until a checkpoint: this one waits for
    readers (up to the busy timeout), copies the log back and empties it. PostgreSQL keeps
    its own log, and old versions of rows until a VACUUM: docs/operations.md says what to do."""
    if isinstance(db.obj, SqliteDatabase):
        busy, _, _ = db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.warning("The write-ahead log is still in use: it is emptied at the next checkpoint")


def leave_no_plain_text(database):
    """After the upgrade that sealed the values kept in plain text: none of them is left in
    the database's files. SQLite: the write-ahead log emptied, and the file rebuilt without
    its free pages. PostgreSQL: each table with sealed columns rewritten, without the old
    rows' versions."""
    if isinstance(database, SqliteDatabase):
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        database.execute_sql("VACUUM")
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        tables = ", ".join(model._meta.table_name for model, *_ in token_store.SEALED)
        database.execute_sql(f"VACUUM FULL {tables}")
