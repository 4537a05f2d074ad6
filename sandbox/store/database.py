"""The stand-in's SQLite file: one connection per process, one short transaction at a time.

Every change is one transaction begun IMMEDIATE, so two workers never both redeem the same
code or refresh token. Times are stored as seconds since the epoch.
"""

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY, client_secret TEXT NOT NULL, redirect_uri TEXT NOT NULL,
    name TEXT NOT NULL, generated INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS consents (
    request_id TEXT PRIMARY KEY, client_id TEXT NOT NULL, scopes TEXT NOT NULL, state TEXT,
    code_challenge TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS consents_created_at ON consents (created_at);
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY, client_id TEXT NOT NULL, user_id TEXT NOT NULL,
    scope TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS grants_user ON grants (client_id, user_id);
CREATE TABLE IF NOT EXISTS codes (
    code TEXT PRIMARY KEY, grant_id TEXT NOT NULL, redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL, issued_at REAL NOT NULL,
    redeemed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS codes_issued_at ON codes (issued_at);
CREATE TABLE IF NOT EXISTS access_tokens (
    token TEXT PRIMARY KEY, grant_id TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS access_tokens_expires_at ON access_tokens (expires_at);
CREATE INDEX IF NOT EXISTS access_tokens_grant ON access_tokens (grant_id);
CREATE TABLE IF NOT EXISTS refresh_tokens (token TEXT PRIMARY KEY, grant_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE TABLE IF NOT EXISTS refresh_issued (token TEXT PRIMARY KEY, issued_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS extras (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS extras_created_at ON extras (created_at);
CREATE TABLE IF NOT EXISTS subscribers (
    client_id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, secret TEXT NOT NULL,
    subscriber_id TEXT NOT NULL, verified INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS subscriptions (
    client_id TEXT NOT NULL, subscription_id TEXT NOT NULL, user_id TEXT NOT NULL,
    collection TEXT NOT NULL, subscriber_id TEXT NOT NULL,
    PRIMARY KEY (client_id, subscription_id, collection));
CREATE TABLE IF NOT EXISTS walks (
    user_id TEXT NOT NULL, day TEXT NOT NULL, steps INTEGER NOT NULL,
    PRIMARY KEY (user_id, day));
CREATE TABLE IF NOT EXISTS nights (
    user_id TEXT NOT NULL, day TEXT NOT NULL, minutes INTEGER NOT NULL,
    PRIMARY KEY (user_id, day));
CREATE TABLE IF NOT EXISTS signing_keys (
    key_id INTEGER PRIMARY KEY, private_key TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS id_token_keys (
    kid TEXT PRIMARY KEY, private_key TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS project_subscribers (
    name TEXT PRIMARY KEY, project TEXT NOT NULL, resource TEXT NOT NULL, secret TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operations (
    name TEXT PRIMARY KEY, project TEXT NOT NULL, subscriber TEXT NOT NULL,
    action TEXT NOT NULL, change TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, result TEXT,
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS service_tokens (
    token TEXT PRIMARY KEY, client_id TEXT NOT NULL, scope TEXT NOT NULL,
    expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    client_id TEXT NOT NULL, user_id TEXT NOT NULL, hour TEXT NOT NULL,
    count INTEGER NOT NULL, PRIMARY KEY (client_id, user_id, hour));
"""


def now():
    return datetime.now(UTC)


def epoch(moment):
    return moment.timestamp()


def moment_of(seconds):
    return datetime.fromtimestamp(seconds, UTC)


class Database:
    def __init__(self, path=":memory:"):
        self.path = str(path)
        self.lock = threading.Lock()  # one connection per process, shared by its threads
        self._connection, self._pid = None, None

    def connection(self):
        # A forked worker must not share its parent's connection: each process opens its own.
        if self._pid != os.getpid():
            if self.path != ":memory:" and not os.path.exists(self.path):
                # Tokens live in this file: only its owner may read it.
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10
            )
            self._switch_to_wal(connection)
            connection.executescript(f"BEGIN IMMEDIATE; {SCHEMA} COMMIT;")
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    @staticmethod
    def _switch_to_wal(connection):
        # Readers go on while a worker writes. Switching does not wait for the file, so a
        # worker starting beside another one tries again.
        for _ in range(100):
            try:
                connection.execute("PRAGMA journal_mode = wal")
                return
            except sqlite3.OperationalError:
                time.sleep(0.05)

    @contextmanager
    def transaction(self):
        with self.lock:
            connection = self.connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def count(self, table):
        """How many rows a table holds (for tests and curious readers)."""
        with self.transaction() as sql:
            return sql.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
