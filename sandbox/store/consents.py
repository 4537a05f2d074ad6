"""Consent pages waiting for the user's Allow or Deny, and each dialect's own facts about
a consent page or a code (the `extras`)."""

from .database import epoch, moment_of
from .records import ConsentRequest


class Consents:
    def __init__(self, db, clients):
        self.db, self.clients = db, clients

    def add(self, request_id, consent):
        with self.db.transaction() as sql:
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

    def take(self, request_id):
        """The consent request, deleted as it is read: a form can be answered once."""
        with self.db.transaction() as sql:
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
            self.clients.get(client_id),
            tuple(scopes.split()),
            state,
            challenge,
            moment_of(created_at),
        )


class Extras:
    """A dialect's own facts about a consent page or a code, as a JSON text."""

    def __init__(self, db):
        self.db = db

    def keep(self, key, value, created_at):
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT OR REPLACE INTO extras VALUES (?, ?, ?)", (key, value, epoch(created_at))
            )

    def get(self, key):
        with self.db.transaction() as sql:
            row = sql.execute("SELECT value FROM extras WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None
