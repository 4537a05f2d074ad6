"""The users' tokens as oauth.py sees them: an oauth.TokenStore backed by the users table.

oauth.ApiClient loads, leases, replaces and forgets tokens through this store, never
through the models directly, so the protocol stays apart from the database. Every process
and worker of the app shares the table, and so the store.
"""

import logging

from peewee import OperationalError

import oauth
from models import User
from providers import dialect_of

log = logging.getLogger("fitbit_oauth_app")
# Tries at storing a refreshed pair while the database is locked.
STORE_ATTEMPTS = 5


class UserTokenStore:
    """oauth.TokenStore backed by the users table, keyed by the row's id."""

    def load(self, key):
        user = User.get_or_none(User.id == key)
        if user is None or not user.connected:
            return None
        return oauth.Tokens(
            # Fitbit's refresh answers name the user, and must name this one.
            user_id=user.fitbit_id if "user_id" in dialect_of(user).TOKEN_FIELDS else None,
            access_token=user.access_token,
            refresh_token=user.refresh_token,
            expires_at=user.expires_at,
            scope=user.scope,
        )

    def take_lease(self, key, tokens, until):
        return User.take_lease(key, tokens.access_token, until)

    def release(self, key, lease):
        User.release_lease(key, lease)

    def replace(self, key, old, new):
        # Once the provider has answered, the new pair is the only live one: losing it
        # would log the user out. So a locked database is waited out, each try waiting
        # SQLite's busy timeout (5 s), for about as long as the refresh lease lasts.
        for attempt in range(STORE_ATTEMPTS):
            try:
                return User.replace_tokens(key, old.access_token, new)
            except OperationalError:
                if attempt == STORE_ATTEMPTS - 1:
                    log.error("user %s: the new tokens could not be stored", key)
                    raise

    def forget(self, key, dead):
        return User.clear_tokens(key, dead_refresh_token=dead.refresh_token)
