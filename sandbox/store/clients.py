"""The apps registered at the stand-in, as at dev.fitbit.com or in Google Cloud."""

import secrets

from .records import RegisteredClient


class Clients:
    def __init__(self, db):
        self.db = db

    def register(self, client, generated=False):
        with self.db.transaction() as sql:
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

    def generated(self, redirect_uri, new_id):
        """The client registered for `redirect_uri` by nobody in particular: made by the
        first process that asks, and the same for every other one, and after a restart.
        `new_id()` makes its client id."""
        with self.db.transaction() as sql:
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
        return self.get(row[0])

    def get(self, client_id):
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT client_id, client_secret, redirect_uri, name FROM clients "
                "WHERE client_id = ?",
                (client_id,),
            ).fetchone()
        return RegisteredClient(*row) if row else None

    def all(self):
        with self.db.transaction() as sql:
            rows = sql.execute(
                "SELECT client_id, client_secret, redirect_uri, name FROM clients"
            ).fetchall()
        return [RegisteredClient(*row) for row in rows]
