"""Google's OpenID Connect signing keys: RSA private keys by their key id (`kid`). Two are
published at a time, and the newest signs: a rotation adds a key and retires the oldest, so
a client meets a key id it has not seen, as it does at Google now and then."""

import secrets

from .database import epoch, now

PUBLISHED = 2


class IdTokenKeys:
    def __init__(self, db):
        self.db = db

    def published(self, new_key):
        """[(kid, PEM)] of the keys published now, oldest first; the last one signs. Made with
        `new_key()` up to two, by the first process that asks."""
        with self.db.transaction() as sql:
            rows = sql.execute(
                "SELECT kid, private_key FROM id_token_keys ORDER BY created_at, rowid"
            ).fetchall()
            while len(rows) < PUBLISHED:
                row = (secrets.token_hex(20), new_key())
                sql.execute("INSERT INTO id_token_keys VALUES (?, ?, ?)", (*row, epoch(now())))
                rows.append(row)
        return rows[-PUBLISHED:]

    def rotate(self, new_key):
        """A new key signs from now on; the oldest is no longer published. Its kid."""
        kid = secrets.token_hex(20)
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT INTO id_token_keys VALUES (?, ?, ?)", (kid, new_key(), epoch(now()))
            )
            kept = sql.execute(
                "SELECT kid FROM id_token_keys ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (PUBLISHED,),
            ).fetchall()
            marks = ",".join("?" * len(kept))
            sql.execute(
                f"DELETE FROM id_token_keys WHERE kid NOT IN ({marks})",  # noqa: S608
                [row[0] for row in kept],
            )
        return kid
