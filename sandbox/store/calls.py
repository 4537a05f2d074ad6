"""How many API calls each user of each app made in the current hour (or minute)."""


class Calls:
    def __init__(self, db):
        self.db = db

    def add(self, client_id, user_id, hour):
        """Add one API call to the hour's count; returns the count."""
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT INTO calls VALUES (?, ?, ?, 1) ON CONFLICT (client_id, user_id, hour) "
                "DO UPDATE SET count = count + 1",
                (client_id, user_id, hour),
            )
            return sql.execute(
                "SELECT count FROM calls WHERE client_id = ? AND user_id = ? AND hour = ?",
                (client_id, user_id, hour),
            ).fetchone()[0]
