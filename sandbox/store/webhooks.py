"""What the stand-ins need to send notifications: each app's subscriber (its endpoint and
secret), Fitbit's per-user subscriptions, the steps the demo people walked and the nights
they logged on top of what they "recorded", and Google's signing keys."""

import secrets

from .database import epoch, now
from .records import Subscriber, Subscription


class Subscribers:
    """Fitbit's: one subscriber per app, as added at dev.fitbit.com. (Google's are a Cloud
    project's, kept by project_subscribers.py.)"""

    def __init__(self, db):
        self.db = db

    def generated(self, client_id, endpoint, new_secret):
        """The app's subscriber at `endpoint`: made by the first process that asks, with
        `new_secret()`, and the same for every other one and after a restart. A new
        endpoint must pass the handshake again."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT endpoint FROM subscribers WHERE client_id = ?", (client_id,)
            ).fetchone()
            if row is None:
                sql.execute(
                    "INSERT INTO subscribers VALUES (?, ?, ?, '1', 0)",
                    (client_id, endpoint, new_secret()),
                )
            elif row[0] != endpoint:
                sql.execute(
                    "UPDATE subscribers SET endpoint = ?, verified = 0 WHERE client_id = ?",
                    (endpoint, client_id),
                )
        return self.get(client_id)

    def get(self, client_id):
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT client_id, endpoint, secret, subscriber_id, verified FROM subscribers "
                "WHERE client_id = ?",
                (client_id,),
            ).fetchone()
        return Subscriber(*row[:4], verified=bool(row[4])) if row else None

    def verified(self, client_id):
        with self.db.transaction() as sql:
            sql.execute("UPDATE subscribers SET verified = 1 WHERE client_id = ?", (client_id,))


class Subscriptions:
    """Fitbit's: which user's collection each app asked to hear of, under its own id."""

    def __init__(self, db):
        self.db = db

    def add(self, subscription):
        """'created', 'exists' (the same one again), or 'taken' (that id is another
        user's)."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT user_id FROM subscriptions WHERE client_id = ? AND subscription_id = ? "
                "AND collection = ?",
                (subscription.client_id, subscription.subscription_id, subscription.collection),
            ).fetchone()
            if row is not None:
                return "exists" if row[0] == subscription.user_id else "taken"
            sql.execute(
                "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?)",
                (
                    subscription.client_id,
                    subscription.subscription_id,
                    subscription.user_id,
                    subscription.collection,
                    subscription.subscriber_id,
                ),
            )
            return "created"

    def remove(self, client_id, user_id, subscription_id, collection):
        with self.db.transaction() as sql:
            removed = sql.execute(
                "DELETE FROM subscriptions WHERE client_id = ? AND user_id = ? AND "
                "subscription_id = ? AND collection = ?",
                (client_id, user_id, subscription_id, collection),
            ).rowcount
        return removed == 1

    def of(self, user_id, client_id=None):
        """The user's subscriptions, at every app or at one."""
        query = (
            "SELECT client_id, subscription_id, user_id, collection, subscriber_id "
            "FROM subscriptions WHERE user_id = ?"
        )
        params = (user_id,)
        if client_id is not None:
            query, params = query + " AND client_id = ?", (user_id, client_id)
        with self.db.transaction() as sql:
            rows = sql.execute(query + " ORDER BY rowid", params).fetchall()
        return [Subscription(*row) for row in rows]


class Walks:
    """Steps a demo person walked today, added to what their day "recorded"."""

    def __init__(self, db):
        self.db = db

    def add(self, user_id, day, steps):
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT INTO walks VALUES (?, ?, ?) ON CONFLICT (user_id, day) "
                "DO UPDATE SET steps = steps + excluded.steps",
                (user_id, day.isoformat(), steps),
            )

    def of(self, user_id):
        """{day: steps walked} for one person."""
        with self.db.transaction() as sql:
            rows = sql.execute(
                "SELECT day, steps FROM walks WHERE user_id = ?", (user_id,)
            ).fetchall()
        return dict(rows)


class Nights:
    """Nights a demo person logged by hand: minutes in bed, by the morning they ended."""

    def __init__(self, db):
        self.db = db

    def log(self, user_id, day, minutes):
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT INTO nights VALUES (?, ?, ?) ON CONFLICT (user_id, day) "
                "DO UPDATE SET minutes = excluded.minutes",
                (user_id, day.isoformat(), minutes),
            )

    def of(self, user_id):
        """{ISO day: minutes in bed} for one person."""
        with self.db.transaction() as sql:
            rows = sql.execute(
                "SELECT day, minutes FROM nights WHERE user_id = ?", (user_id,)
            ).fetchall()
        return dict(rows)


class SigningKeys:
    """Google's webhook signing keys: PEM private keys by their Tink key id."""

    def __init__(self, db):
        self.db = db

    def primary(self, new_key):
        """(key id, PEM) of the newest enabled key, made with `new_key()` if there is none."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT key_id, private_key FROM signing_keys WHERE status = 'ENABLED' "
                "ORDER BY created_at DESC LIMIT 1"
            ).fetchone()
            if row is None:
                row = (secrets.randbits(31) + 1, new_key())
                sql.execute(
                    "INSERT INTO signing_keys VALUES (?, ?, 'ENABLED', ?)", (*row, epoch(now()))
                )
        return row

    def add(self, pem, status="ENABLED"):
        """A new key, which becomes the primary when enabled; its id."""
        key_id = secrets.randbits(31) + 1
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT INTO signing_keys VALUES (?, ?, ?, ?)", (key_id, pem, status, epoch(now()))
            )
        return key_id

    def set_status(self, key_id, status):
        with self.db.transaction() as sql:
            sql.execute("UPDATE signing_keys SET status = ? WHERE key_id = ?", (status, key_id))

    def all(self):
        """[(key id, PEM, status)], oldest first."""
        with self.db.transaction() as sql:
            return sql.execute(
                "SELECT key_id, private_key, status FROM signing_keys ORDER BY created_at"
            ).fetchall()
