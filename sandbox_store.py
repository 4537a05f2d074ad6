"""The stand-ins' memory: registered apps, consent pages, codes, grants and tokens.

Kept in a SQLite file of its own, so that every worker of a multi-process server sees the
same codes and tokens, and a restart forgets nobody. Each stand-in (sandbox.py for Fitbit,
sandbox_google.py for Google) keeps a file of its own. Like them, it is written from the
provider's side and shares nothing with the app's own database. Every change is one short
transaction (BEGIN IMMEDIATE), so two workers never both redeem the same code or refresh
token. Times are stored as seconds since the epoch.
"""

import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class RegisteredClient:
    """An app registered at dev.fitbit.com: a Server (confidential) client."""

    client_id: str
    client_secret: str
    redirect_uri: str
    name: str = "OAuth Teaching App"

    def __post_init__(self):
        # dev.fitbit.com refuses application names with the word "Fitbit" in them.
        if "fitbit" in self.name.lower():
            raise ValueError('An application name may not contain the word "Fitbit".')


@dataclass(frozen=True)
class Grant:
    """What one Allow granted: who, to which app, with what scope. Every token issued from
    it, through all its refreshes, belongs to the same grant."""

    client_id: str
    user_id: str
    scope: str
    grant_id: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass(frozen=True)
class AuthorizationCode:
    grant: Grant
    redirect_uri: str
    code_challenge: str
    issued_at: datetime


@dataclass(frozen=True)
class ConsentRequest:
    """An authorization request waiting for the user to click Allow or Deny."""

    client: RegisteredClient
    scopes: tuple
    state: str | None
    code_challenge: str
    created_at: datetime


@dataclass(frozen=True)
class AccessToken:
    grant: Grant
    expires_at: datetime


class StandInStore:
    def __init__(self, path=":memory:"):
        self.path = str(path)
        self.lock = threading.Lock()  # one connection per process, shared by its threads
        self._connection, self._pid = None, None

    # Plumbing ---------------------------------------------------------------------------

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

    # Registered apps --------------------------------------------------------------------

    def register(self, client, generated=False):
        with self.transaction() as sql:
            sql.execute(
                "INSERT OR REPLACE INTO clients VALUES (?, ?, ?, ?, ?)",
                (
                    client.client_id,
                    client.client_secret,
                    client.redirect_uri,
                    client.name,
                    int(generated),
                ),
            )

    def generated_client(self, redirect_uri, new_id):
        """The client registered for `redirect_uri` by nobody in particular: made by the
        first process that asks, and the same for every other one, and after a restart.
        `new_id()` makes its client id."""
        with self.transaction() as sql:
            row = sql.execute(
                "SELECT client_id FROM clients WHERE generated = 1 AND redirect_uri = ?",
                (redirect_uri,),
            ).fetchone()
            if row is None:
                row = (new_id(),)
                sql.execute(
                    "INSERT INTO clients VALUES (?, ?, ?, ?, 1)",
                    (row[0], secrets.token_hex(16), redirect_uri, RegisteredClient.name),
                )
        return self.client(row[0])

    def client(self, client_id):
        with self.transaction() as sql:
            row = sql.execute(
                "SELECT client_id, client_secret, redirect_uri, name FROM clients "
                "WHERE client_id = ?",
                (client_id,),
            ).fetchone()
        return RegisteredClient(*row) if row else None

    def clients(self):
        with self.transaction() as sql:
            rows = sql.execute(
                "SELECT client_id, client_secret, redirect_uri, name FROM clients"
            ).fetchall()
        return [RegisteredClient(*row) for row in rows]

    # Consent pages ----------------------------------------------------------------------

    def add_consent(self, request_id, consent):
        with self.transaction() as sql:
            sql.execute(
                "INSERT INTO consents VALUES (?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    consent.client.client_id,
                    " ".join(consent.scopes),
                    consent.state,
                    consent.code_challenge,
                    epoch(consent.created_at),
                ),
            )

    def take_consent(self, request_id):
        """The consent request, deleted as it is read: a form can be answered once."""
        with self.transaction() as sql:
            row = sql.execute(
                "SELECT client_id, scopes, state, code_challenge, created_at FROM consents "
                "WHERE request_id = ?",
                (request_id,),
            ).fetchone()
            sql.execute("DELETE FROM consents WHERE request_id = ?", (request_id,))
        if row is None:
            return None
        client_id, scopes, state, challenge, created_at = row
        return ConsentRequest(
            self.client(client_id), tuple(scopes.split()), state, challenge, moment_of(created_at)
        )

    # Codes ------------------------------------------------------------------------------

    def add_code(self, code, issued):
        grant = issued.grant
        with self.transaction() as sql:
            sql.execute(
                "INSERT INTO grants VALUES (?, ?, ?, ?)",
                (grant.grant_id, grant.client_id, grant.user_id, grant.scope),
            )
            sql.execute(
                "INSERT INTO codes (code, grant_id, redirect_uri, code_challenge, issued_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    code,
                    grant.grant_id,
                    issued.redirect_uri,
                    issued.code_challenge,
                    epoch(issued.issued_at),
                ),
            )

    def redeem_code(self, code):
        """(the code, replayed): the code the first time it is redeemed; None and True on
        any later try, when every token issued from it has just been revoked."""
        with self.transaction() as sql:
            row = sql.execute(
                "SELECT grant_id, redirect_uri, code_challenge, issued_at, redeemed FROM codes "
                "WHERE code = ?",
                (code,),
            ).fetchone()
            if row is None:
                return None, False
            grant_id, redirect_uri, challenge, issued_at, redeemed = row
            if redeemed:
                self._forget(sql, "grant_id = ?", (grant_id,))
                return None, True
            sql.execute("UPDATE codes SET redeemed = 1 WHERE code = ?", (code,))
            grant = self._grant(sql, grant_id)
        return AuthorizationCode(grant, redirect_uri, challenge, moment_of(issued_at)), False

    # Tokens -----------------------------------------------------------------------------

    def add_tokens(self, grant, access, refresh, expires_at):
        with self.transaction() as sql:
            sql.execute(
                "INSERT INTO access_tokens VALUES (?, ?, ?)",
                (access, grant.grant_id, epoch(expires_at)),
            )
            if refresh is not None:  # Google gives none on a refresh, or without offline
                sql.execute("INSERT INTO refresh_tokens VALUES (?, ?)", (refresh, grant.grant_id))
                sql.execute("INSERT INTO refresh_issued VALUES (?, ?)", (refresh, epoch(now())))

    def access_token(self, token):
        with self.transaction() as sql:
            row = sql.execute(
                "SELECT grant_id, expires_at FROM access_tokens WHERE token = ?", (token,)
            ).fetchone()
            return AccessToken(self._grant(sql, row[0]), moment_of(row[1])) if row else None

    def spend_refresh_token(self, token, client_id):
        """The grant of `client_id`'s refresh token, the token deleted in the same
        transaction: of two workers spending it at once, one gets the grant and the other
        None. Another app's token is left as it was."""
        with self.transaction() as sql:
            grant = self._refresh_grant(sql, token, client_id)
            if grant is not None:
                sql.execute("DELETE FROM refresh_tokens WHERE token = ?", (token,))
            return grant

    def refresh_grant(self, token, client_id, issued_after):
        """The grant of `client_id`'s refresh token if it was issued after `issued_after`: it
        stays valid until then (Google's are reused). Otherwise None."""
        with self.transaction() as sql:
            grant = self._refresh_grant(sql, token, client_id)
            issued = sql.execute(
                "SELECT issued_at FROM refresh_issued WHERE token = ?", (token,)
            ).fetchone()
        if grant is None or issued is None or issued[0] <= epoch(issued_after):
            return None
        return grant

    def _refresh_grant(self, sql, token, client_id):
        row = sql.execute(
            "SELECT grant_id FROM refresh_tokens WHERE token = ? AND grant_id IN "
            "(SELECT grant_id FROM grants WHERE client_id = ?)",
            (token, client_id),
        ).fetchone()
        return self._grant(sql, row[0]) if row else None

    def has_refresh_token(self, client_id, user_id, issued_after):
        """True if the user has a refresh token for the app issued after `issued_after`."""
        with self.transaction() as sql:
            return bool(
                sql.execute(
                    "SELECT 1 FROM refresh_tokens JOIN grants USING (grant_id) "
                    "JOIN refresh_issued USING (token) "
                    "WHERE client_id = ? AND user_id = ? AND issued_at > ?",
                    (client_id, user_id, epoch(issued_after)),
                ).fetchone()
            )

    def forget_grant(self, grant_id):
        """Revoke every token of one grant."""
        with self.transaction() as sql:
            self._forget(sql, "grant_id = ?", (grant_id,))

    def keep_extras(self, key, value, created_at):
        """A dialect's own facts about a consent page or a code, as a JSON text."""
        with self.transaction() as sql:
            sql.execute(
                "INSERT OR REPLACE INTO extras VALUES (?, ?, ?)", (key, value, epoch(created_at))
            )

    def extras(self, key):
        with self.transaction() as sql:
            row = sql.execute("SELECT value FROM extras WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def grant_of(self, token):
        """The grant an access or refresh token belongs to, or None."""
        with self.transaction() as sql:
            row = sql.execute(
                "SELECT grant_id FROM access_tokens WHERE token = ? UNION "
                "SELECT grant_id FROM refresh_tokens WHERE token = ?",
                (token, token),
            ).fetchone()
            return self._grant(sql, row[0]) if row else None

    def forget_user(self, client_id, user_id):
        """Revoke every token of one user for one app."""
        with self.transaction() as sql:
            self._forget(
                sql,
                "grant_id IN (SELECT grant_id FROM grants WHERE client_id = ? AND user_id = ?)",
                (client_id, user_id),
            )

    @staticmethod
    def _forget(sql, where, params):
        for table in ("access_tokens", "refresh_tokens"):
            sql.execute(f"DELETE FROM {table} WHERE {where}", params)  # noqa: S608

    @staticmethod
    def _grant(sql, grant_id):
        client_id, user_id, scope = sql.execute(
            "SELECT client_id, user_id, scope FROM grants WHERE grant_id = ?", (grant_id,)
        ).fetchone()
        return Grant(client_id, user_id, scope, grant_id)

    # The hourly budget ------------------------------------------------------------------

    def count_call(self, client_id, user_id, hour):
        """Add one API call to the hour's count; returns the count."""
        with self.transaction() as sql:
            sql.execute(
                "INSERT INTO calls VALUES (?, ?, ?, 1) ON CONFLICT (client_id, user_id, hour) "
                "DO UPDATE SET count = count + 1",
                (client_id, user_id, hour),
            )
            return sql.execute(
                "SELECT count FROM calls WHERE client_id = ? AND user_id = ? AND hour = ?",
                (client_id, user_id, hour),
            ).fetchone()[0]

    # Forgetting -------------------------------------------------------------------------

    def prune(self, code_cutoff, token_cutoff, hour, most):
        """Delete at most `most` rows of each kind that can no longer matter: consent pages
        and codes older than `code_cutoff`, access tokens expired before `token_cutoff`,
        call counts of other hours, and grants with nothing left."""
        stale = [
            ("consents", "request_id", "created_at < ?", (epoch(code_cutoff),)),
            ("codes", "code", "issued_at < ?", (epoch(code_cutoff),)),
            ("extras", "key", "created_at < ?", (epoch(code_cutoff),)),
            (
                "refresh_issued",
                "token",
                "token NOT IN (SELECT token FROM refresh_tokens)",
                (),
            ),
            ("access_tokens", "token", "expires_at < ?", (epoch(token_cutoff),)),
            ("calls", "rowid", "hour != ?", (hour,)),
            (
                "grants",
                "grant_id",
                "grant_id NOT IN (SELECT grant_id FROM codes UNION "
                "SELECT grant_id FROM access_tokens UNION SELECT grant_id FROM refresh_tokens)",
                (),
            ),
        ]
        with self.transaction() as sql:
            for table, key, where, params in stale:
                sql.execute(
                    f"DELETE FROM {table} WHERE {key} IN "  # noqa: S608
                    f"(SELECT {key} FROM {table} WHERE {where} LIMIT ?)",
                    (*params, most),
                )
