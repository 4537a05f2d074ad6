"""Google's subscribers API, from Google's side: each Cloud project's subscribers, the
long-running operations that create, change and delete them, and the service tokens that
may call it.

A subscriber is kept as the resource the API answers with (its secret beside it, never in
it). An operation keeps the change it will make; the change is made, or refused, when the
operation is settled, in the same transaction that marks it done, so that of two workers
settling one operation at once only one makes the change.
"""

import json

from .database import epoch, moment_of, now


class ProjectSubscribers:
    def __init__(self, db):
        self.db = db

    def get(self, name):
        """(the resource, its secret) of the subscriber named `name`, or None."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT resource, secret FROM project_subscribers WHERE name = ?", (name,)
            ).fetchone()
        return (json.loads(row[0]), row[1]) if row else None

    def of_project(self, project, after="", most=1000):
        """[(the resource, its secret)] of a project's subscribers, by name, after `after`."""
        with self.db.transaction() as sql:
            rows = sql.execute(
                "SELECT resource, secret FROM project_subscribers WHERE project = ? AND name > ? "
                "ORDER BY name LIMIT ?",
                (project, after, most),
            ).fetchall()
        return [(json.loads(resource), secret) for resource, secret in rows]


class Operations:
    def __init__(self, db):
        self.db = db

    def start(self, name, project, subscriber, action, change):
        """A new operation, not done: `action` ("create", "patch", "delete") of the
        subscriber named `subscriber`, with `change` (its resource and secret, as it will
        be)."""
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT INTO operations (name, project, subscriber, action, change, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, project, subscriber, action, json.dumps(change), epoch(now())),
            )

    def get(self, name):
        """The operation named `name` as a dict (its `change` and `result` read), or None."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT name, project, subscriber, action, change, done, result, created_at "
                "FROM operations WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            return None
        keys = ("name", "project", "subscriber", "action", "change", "done", "result")
        operation = dict(zip(keys, row, strict=False))
        operation.update(
            change=json.loads(row[4]),
            done=bool(row[5]),
            result=json.loads(row[6]) if row[6] else None,
            created_at=moment_of(row[7]),
        )
        return operation

    def pending(self, project):
        """The names of a project's operations not done yet, oldest first."""
        with self.db.transaction() as sql:
            rows = sql.execute(
                "SELECT name FROM operations WHERE project = ? AND done = 0 "
                "ORDER BY created_at, rowid",
                (project,),
            ).fetchall()
        return [row[0] for row in rows]

    def finish(self, operation, result, succeeded):
        """Mark the operation done with `result` ({"response": ...} or {"error": ...}), and
        when it `succeeded`, make its change. False if another worker finished it first."""
        change = operation["change"]
        with self.db.transaction() as sql:
            marked = sql.execute(
                "UPDATE operations SET done = 1, result = ? WHERE name = ? AND done = 0",
                (json.dumps(result), operation["name"]),
            ).rowcount
            if not marked or not succeeded:
                return bool(marked)
            if operation["action"] == "delete":
                sql.execute(
                    "DELETE FROM project_subscribers WHERE name = ?", (operation["subscriber"],)
                )
            else:
                sql.execute(
                    "INSERT OR REPLACE INTO project_subscribers VALUES (?, ?, ?, ?)",
                    (
                        operation["subscriber"],
                        operation["project"],
                        json.dumps(change["resource"]),
                        change["secret"],
                    ),
                )
        return True


class ServiceTokens:
    """Access tokens for the subscribers API: a client's own (its client credentials stand
    in for a Cloud project's service account), with the scope it was given."""

    def __init__(self, db):
        self.db = db

    def issue(self, token, client_id, scope, expires_at):
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT INTO service_tokens VALUES (?, ?, ?, ?)",
                (token, client_id, scope, epoch(expires_at)),
            )

    def get(self, token):
        """(client id, scope) of an unexpired service token, or None."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT client_id, scope FROM service_tokens WHERE token = ? AND expires_at > ?",
                (token, epoch(now())),
            ).fetchone()
        return tuple(row) if row else None
