"""What the app keeps of the provider's for each user, read and written only here: their
tokens, and the provider's answers cached for them. models.py has the tables and their SQL;
this module says what goes into them and what comes out.

    sign_in()          step 5: a sign-in's tokens, filed under its person
    tokens_of()        a user's tokens, as oauth.Tokens
    clear_tokens()     a user disconnected: the tokens go, and their cached answers
    UserTokenStore     oauth.TokenStore: what oauth.ApiClient loads, leases, replaces and
                       forgets, so that the protocol stays apart from the database
    keep_answer()      an API answer, cached
    answer_text()      a cached answer's JSON text

Every process and worker of the app shares the tables, and so the store.
"""

import json
import logging

from peewee import IntegrityError, OperationalError

import oauth
from models import ApiCache, User, db, now
from providers import dialect_of

log = logging.getLogger("fitbit_oauth_app")
# Tries at storing a refreshed pair while the database is locked.
STORE_ATTEMPTS = 5


# --- Tokens ---------------------------------------------------------------------------------


def sign_in(person, tokens):
    """Step 5: file a sign-in under its person (a dialects.Person): the row with their Health
    user id, else the one with their Fitbit id (someone moving from Fitbit to Google Health),
    else a new one. Tokens of the other dialect are dropped, with the answers cached for
    them. Without a refresh token (Google sends one only on a consent), the one kept for the
    same provider stays; with none at all, nothing is stored and None is returned."""
    for attempt in range(2):
        try:
            with db.atomic():
                return _sign_in(person, tokens)
        except IntegrityError:
            # The same new person signed in twice at once, and the other insert won: the
            # second try finds that row.
            if attempt:
                raise


def _sign_in(person, tokens):
    row = User.of(person)
    same_provider = row is not None and row.provider == person.provider
    refresh_token = tokens.refresh_token
    if refresh_token is None and same_provider:
        refresh_token = row.refresh_token
    if refresh_token is None:
        return None
    fields = token_fields(tokens)
    # A name that could not be read now (person.name None) is the one kept from before.
    kept = row.display_name if row is not None else None
    fields.update(
        refresh_token=refresh_token,
        provider=person.provider,
        display_name=person.name or kept or person.fitbit_id or person.health_user_id,
        fitbit_id=person.fitbit_id or (row.fitbit_id if row else None),
        health_user_id=person.health_user_id or (row.health_user_id if row else None),
    )
    if row is None:
        return User.create(**fields)
    if not same_provider:
        ApiCache.delete().where(ApiCache.user == row).execute()  # the other dialect's
        fields.update(rate_remaining=None, rate_reset_at=None, last_sync_at=None)
    User.update(**fields).where(User.id == row.id).execute()
    return User.get_by_id(row.id)


def token_fields(tokens):
    """The users table's columns for a new pair. New tokens end any refresh lease: there is
    nothing left to spend under it."""
    return dict(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
        scope=tokens.scope,
        updated_at=now(),
        refresh_lease=None,
        refresh_lease_until=None,
    )


def tokens_of(user):
    """The user's tokens, as oauth.Tokens; None when they are not connected."""
    if not user.connected:
        return None
    return oauth.Tokens(
        # Fitbit's refresh answers name the user, and must name this one.
        user_id=user.fitbit_id if "user_id" in dialect_of(user).TOKEN_FIELDS else None,
        access_token=user.access_token,
        refresh_token=user.refresh_token,
        expires_at=user.expires_at,
        scope=user.scope,
    )


def clear_tokens(user_id, dead_refresh_token=None):
    """Disconnected: the tokens go, and so does the data kept for this user. With
    `dead_refresh_token`, only if the row still holds that one, so a pair another worker
    has just stored is never wiped. True if the row was cleared."""
    return User.clear_tokens(user_id, dead_refresh_token)


class UserTokenStore:
    """oauth.TokenStore backed by the users table, keyed by the row's id."""

    def load(self, key):
        user = User.get_or_none(User.id == key)
        return tokens_of(user) if user is not None else None

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
                return User.replace_tokens(key, old.access_token, token_fields(new))
            except OperationalError:
                if attempt == STORE_ATTEMPTS - 1:
                    log.error("user %s: the new tokens could not be stored", key)
                    raise

    def forget(self, key, dead):
        return clear_tokens(key, dead_refresh_token=dead.refresh_token)


# --- Answers --------------------------------------------------------------------------------


def keep_answer(user, path, data, asked_at=None):
    """Keep an API answer for the user, as fetched at `asked_at`: the moment its request was
    sent, so that a change notified while it was on its way leaves it stale. Returns its
    JSON text."""
    text = json.dumps(data)
    ApiCache.store(user, path, text, asked_at or now())
    return text


def answer_text(cached):
    """A cached answer's JSON text (an ApiCache row's)."""
    return cached.body
