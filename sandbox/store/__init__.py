"""The stand-ins' memory, split by what it remembers.

Kept in a SQLite file of its own, so that every worker of a multi-process server sees the
same codes and tokens, and a restart forgets nobody. Each stand-in keeps a file of its own.
Like them, it is written from the provider's side and shares nothing with the app's own
database.

    database.py   the file, its schema, and one short transaction at a time
    clients.py    the registered apps
    consents.py   consent pages waiting for Allow or Deny, and each dialect's extras
    grants.py     what each Allow granted, and the codes and tokens issued from it
    calls.py      the API calls counted against each user's budget
    webhooks.py   subscribers, subscriptions, steps walked, nights logged, signing keys
    id_token_keys.py   Google's OpenID Connect signing keys
    project_subscribers.py   Google's subscribers API: subscribers, operations, service tokens
"""

from .calls import Calls
from .clients import Clients
from .consents import Consents, Extras
from .database import Database, epoch
from .grants import Grants
from .id_token_keys import IdTokenKeys
from .project_subscribers import Operations, ProjectSubscribers, ServiceTokens
from .records import (
    AuthorizationCode,
    ConsentRequest,
    Grant,
    RegisteredClient,
    Subscriber,
    Subscription,
)
from .webhooks import Nights, SigningKeys, Subscribers, Subscriptions, Walks

__all__ = [
    "AuthorizationCode",
    "ConsentRequest",
    "Grant",
    "RegisteredClient",
    "Store",
    "Subscriber",
    "Subscription",
]


class Store:
    """Everything one stand-in remembers, in the SQLite file at `path`."""

    def __init__(self, path=":memory:"):
        self.db = Database(path)
        self.clients = Clients(self.db)
        self.consents = Consents(self.db, self.clients)
        self.extras = Extras(self.db)
        self.grants = Grants(self.db)
        self.calls = Calls(self.db)
        self.subscribers = Subscribers(self.db)
        self.subscriptions = Subscriptions(self.db)
        self.walks = Walks(self.db)
        self.nights = Nights(self.db)
        self.signing_keys = SigningKeys(self.db)
        self.id_token_keys = IdTokenKeys(self.db)
        self.project_subscribers = ProjectSubscribers(self.db)
        self.operations = Operations(self.db)
        self.service_tokens = ServiceTokens(self.db)

    def count(self, table):
        """How many rows a table holds (for tests and curious readers)."""
        return self.db.count(table)

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
            ("service_tokens", "token", "expires_at < ?", (epoch(token_cutoff),)),
            ("calls", "rowid", "hour != ?", (hour,)),
            (
                "grants",
                "grant_id",
                "grant_id NOT IN (SELECT grant_id FROM codes UNION "
                "SELECT grant_id FROM access_tokens UNION SELECT grant_id FROM refresh_tokens)",
                (),
            ),
        ]
        with self.db.transaction() as sql:
            for table, key, where, params in stale:
                sql.execute(
                    f"DELETE FROM {table} WHERE {key} IN "  # noqa: S608
                    f"(SELECT {key} FROM {table} WHERE {where} LIMIT ?)",
                    (*params, most),
                )
