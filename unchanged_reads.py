"""Reads a SQLite connection answers again, with no query, while the database is unchanged.

Every view of the signed-in page asks the same two things: the session and its user, and the
stamps of the user's answers (kept_pages.py). Between two views, nothing changes most of the
time, yet asking took two fifths of a kept view's time. SQLite can say whether anything has
changed, in any process, far more cheaply than it can answer the questions:

- PRAGMA data_version gives a connection a number that changes whenever any other
  connection, in this process or another, has committed a change to the database since the
  connection last asked;
- Connection.total_changes counts the rows this connection itself has changed.

While both are as they were, the database is as it was, and so is every answer read from it.
So each connection (the pool lends each thread one) keeps what it read, and empties it as
soon as either number moves. Nothing is kept inside a transaction, whose reads may see its own
writes before they are committed or rolled back. (The schema changes at start, before any
read is kept; a change of schema made later by this connection would not be counted.)

Each read asks the counter again, unless it is made within one_moment(): reads that belong
together (a page's session, and what the page was drawn from) ask it once, as one snapshot
of the database would be read.

PostgreSQL has no such number: there, each read is a query.
"""

import sqlite3
from contextlib import contextmanager

# Reads kept per connection while the database is unchanged; past this, all are dropped.
MOST_READS = 1024


class Connection(sqlite3.Connection):
    """A SQLite connection that keeps its reads while the database is unchanged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = None  # (data_version, total_changes) when `reads` began
        self.reads = {}  # {(SQL, values): rows}
        self.moment = None  # within one_moment(): total_changes when the counter was read

    def unchanged_reads(self):
        """The reads kept since the database last changed (emptied now if it has changed
        since the last call), to look in and add to; None inside a transaction."""
        if self.in_transaction:
            return None
        if self.moment == self.total_changes:
            return self.reads  # asked already within this moment, and nothing written since
        now = (self.execute("PRAGMA data_version").fetchone()[0], self.total_changes)
        if now != self.seen or len(self.reads) >= MOST_READS:
            self.seen, self.reads = now, {}
        if self.moment is not None:
            self.moment = self.total_changes
        return self.reads


@contextmanager
def one_moment(connection):
    """Within it, `connection` asks whether the database has changed once, at its first
    read: a read kept is answered as the database was at that moment, and one not kept is
    made then and there. Its own writes it sees at once, as ever."""
    if not isinstance(connection, Connection):
        yield
        return
    connection.moment = -1  # not yet asked: total_changes is never negative
    try:
        yield
    finally:
        connection.moment = None


def rows(connection, sql, values, run):
    """The rows of `sql` with `values` (a tuple of tuples): those `connection` read for them
    while the database has not changed since, or else `run()`'s, kept for the next time."""
    reads = connection.unchanged_reads() if isinstance(connection, Connection) else None
    if reads is None:
        return tuple(run())
    key = (sql, values)
    found = reads.get(key)
    if found is None:
        found = reads[key] = tuple(run())
    return found
