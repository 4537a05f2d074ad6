"""What the app keeps of the provider's for each user, read and written only here: their
tokens, and the provider's answers cached for them, each encrypted at rest (encryption.py)
and bound to its row. models.py has the tables and their SQL; this module says what goes
into them and what comes out.

    sign_in()          step 5: a sign-in's tokens, filed under its person
    tokens_of()        a user's tokens, as oauth.Tokens
    take_tokens()      step 9: a user's tokens taken out of their row, to be revoked
    clear_tokens()     a user disconnected: the tokens go, and their cached answers
    UserTokenStore     oauth.TokenStore: what oauth.ApiClient loads, leases, replaces and
                       forgets, so that the protocol stays apart from the database
    keep_answer()      an API answer, cached
    cached_answer()    a cached answer, with its JSON text
    keep_step(), steps_of()   a browser's trace, which holds parts of the answers too
    reseal()           every value sealed again with the newest key (`make reencrypt`)

A value that its key does not open (changed in the file, or moved from another row) is
worth nothing to anyone: tokens are forgotten, so the user is asked to connect again, and an
answer is asked for again. A value sealed by a key this process does not hold is another
matter: another process has that key already (a new key is being rolled out), so it is
left as it is and encryption.KeyNotHeld goes up to the page, which asks to try again.
Every process and worker of the app shares the tables, and so the store.
"""

import hashlib
import json
import logging
from functools import lru_cache

from peewee import IntegrityError, OperationalError, fn

import encryption
import oauth
from models import ApiCache, TraceEntry, User, db, now
from providers import dialect_of

log = logging.getLogger("fitbit_oauth_app")
# Tries at storing a refreshed pair while the database is locked.
STORE_ATTEMPTS = 5
TOKEN_COLUMNS = ("access_token", "refresh_token")


# What each value is bound to (AES-GCM's associated data): its column and its row, so that
# it opens nowhere else.


def token_context(user_id, column):
    return f"users.{column}:{user_id}"  # "users.refresh_token:42"


def answer_context(user_id, path):
    return f"apicache.body:{user_id}:{path}"


def step_context(trace):
    return f"traceentry.body:{trace}"


def digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


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
        except (IntegrityError, User.DoesNotExist):
            # The same new person signed in twice at once, and the other insert won: the
            # second try finds that row. (Or their row was deleted at this very moment:
            # the second try makes them a new one.)
            if attempt:
                raise


def _sign_in(person, tokens):
    row = User.of(person)
    same_provider = row is not None and row.provider == person.provider
    if tokens.refresh_token is None and not (same_provider and row.connected):
        return None
    # A name that could not be read now (person.name None) is the one kept from before.
    kept = row.display_name if row is not None else None
    fields = dict(
        signed_in_at=now(),
        provider=person.provider,
        display_name=person.name or kept or person.fitbit_id or person.health_user_id,
        fitbit_id=person.fitbit_id or (row.fitbit_id if row else None),
        health_user_id=person.health_user_id or (row.health_user_id if row else None),
    )
    if row is None:
        # The row's id binds its tokens to it: it is made first, in the same transaction.
        row = User.create(**fields)
    elif not same_provider:
        ApiCache.delete().where(ApiCache.user == row).execute()  # the other dialect's
        fields.update(rate_remaining=None, rate_reset_at=None, last_sync_at=None)
    fields.update(token_fields(row.id, tokens))  # without a refresh token, the kept one stays
    if not User.update(**fields).where(User.id == row.id).execute():
        raise User.DoesNotExist(row.id)  # deleted since it was read
    return User.get_by_id(row.id)


def token_fields(user_id, tokens):
    """The users table's columns for a new pair, sealed for the row `user_id`. New tokens
    end any refresh lease: there is nothing left to spend under it."""
    keyring = encryption.keyring()
    fields = dict(expires_at=tokens.expires_at, scope=tokens.scope, updated_at=now())
    fields.update(refresh_lease=None, refresh_lease_until=None)
    for column in TOKEN_COLUMNS:
        token = getattr(tokens, column)
        if token is not None:
            fields[column] = keyring.seal(token, token_context(user_id, column))
            fields[f"{column}_digest"] = digest(token)
    return fields


def tokens_of(user):
    """The user's tokens, as oauth.Tokens; None when they are not connected, or when their
    tokens no longer open (then they are forgotten: the user connects again). KeyNotHeld,
    changing nothing, for tokens sealed by a key this process lacks."""
    if not user.connected:
        return None
    keyring = encryption.keyring()
    try:
        access, refresh = (
            keyring.open(getattr(user, column), token_context(user.id, column))
            for column in TOKEN_COLUMNS
        )
    except encryption.Unreadable as unreadable:
        log.warning("user %s: tokens that no key opens (key id %s): forgotten", user.id, unreadable)
        User.clear_tokens(user.id, only_if=User.refresh_token == user.refresh_token)
        return None
    return oauth.Tokens(
        # Fitbit's refresh answers name the user, and must name this one.
        user_id=user.fitbit_id if "user_id" in dialect_of(user).TOKEN_FIELDS else None,
        access_token=access,
        refresh_token=refresh,
        expires_at=user.expires_at,
        scope=user.scope,
    )


def take_tokens(user_id):
    """Step 9, Disconnect (and Delete my data): the user's tokens taken out of their row, so
    that no process refreshes them any more, as they were, to be revoked; None when the row
    held none, or none that opens (then there is nothing to revoke with). The row is cleared
    only while it still holds what was read: if a refresh in another process stores a pair
    meanwhile, that is the pair taken."""
    while True:
        user = User.get_or_none(User.id == user_id)
        if user is None or not user.connected:
            return None
        tokens = tokens_of(user)  # None, and cleared, when they do not open
        if tokens is None:
            return None
        held = User.access_token_digest == digest(tokens.access_token)
        if User.clear_tokens(user_id, only_if=held):
            return tokens


def clear_tokens(user_id, dead_refresh_token=None):
    """Disconnected: the tokens go, and so does the data kept for this user. With
    `dead_refresh_token`, only if the row still holds that one, so a pair another worker
    has just stored is never wiped. True if the row was cleared."""
    only_if = None
    if dead_refresh_token is not None:
        only_if = User.refresh_token_digest == digest(dead_refresh_token)
    return User.clear_tokens(user_id, only_if)


class UserTokenStore:
    """oauth.TokenStore backed by the users table, keyed by the row's id."""

    def load(self, key):
        user = User.get_or_none(User.id == key)
        return tokens_of(user) if user is not None else None

    def take_lease(self, key, tokens, until):
        return User.take_lease(key, digest(tokens.access_token), until)

    def release(self, key, lease):
        User.release_lease(key, lease)

    def replace(self, key, old, new):
        # Once the provider has answered, the new pair is the only live one: losing it
        # would log the user out. So a locked database is waited out, each try waiting
        # SQLite's busy timeout (5 s), for about as long as the refresh lease lasts.
        fields = token_fields(key, new)
        for attempt in range(STORE_ATTEMPTS):
            try:
                return User.replace_tokens(key, digest(old.access_token), fields)
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
    sealed = encryption.keyring().seal(text, answer_context(user.id, path))
    ApiCache.store(user, path, sealed, asked_at or now())
    return text


def cached_answer(user, path):
    """The answer cached for the user at `path`, an ApiCache row with its JSON `text`; None
    when there is none, or when it no longer opens (then it is dropped, and asked for
    again). KeyNotHeld, changing nothing, for one sealed by a key this process lacks."""
    cached = user.cached_answer(path)
    if cached is None:
        return None
    try:
        cached.text = opened(cached.body, answer_context(user.id, path))
    except encryption.Unreadable as unreadable:
        log.warning(
            "user %s: a cached answer no key opens (key id %s): dropped", user.id, unreadable
        )
        ApiCache.delete().where(
            (ApiCache.id == cached.id) & (ApiCache.body == cached.body)
        ).execute()
        return None
    return cached


@lru_cache(maxsize=1024)
def opened(sealed, where):
    """A sealed answer's text, opened once per answer, not per view: the same sealed text
    (its nonce is its own) always opens to the same. A failure is not kept."""
    return encryption.keyring().open(sealed, where)


# --- The trace ------------------------------------------------------------------------------


def keep_step(trace, title, shown):
    """A step of a browser's trace (tracing.py): what it shows is masked already, but holds
    parts of the provider's answers, so it is sealed too, bound to its trace."""
    body = encryption.keyring().seal(json.dumps(shown), step_context(trace))
    TraceEntry.add(trace, title, body)


def steps_of(trace):
    """[(title, what it shows)] of a trace, oldest first; a step that its key does not open
    is left out (KeyNotHeld for one sealed by a key this process lacks)."""
    steps = []
    for entry in TraceEntry.select().where(TraceEntry.trace == trace).order_by(TraceEntry.id):
        try:
            shown = opened(entry.body, step_context(trace))
        except encryption.Unreadable:
            log.warning("A step of a trace that no key opens was left out")
        else:
            steps.append((entry.title, json.loads(shown)))
    return steps


# --- Keys -----------------------------------------------------------------------------------

# Each table with sealed columns: the columns, the others a value is bound to, and how.
SEALED = (
    (
        User,
        (User.access_token, User.refresh_token),
        (),
        lambda row, column: token_context(row.id, column),
    ),
    (
        ApiCache,
        (ApiCache.body,),
        (ApiCache.user, ApiCache.path),
        lambda row, column: answer_context(row.user_id, row.path),
    ),
    (
        TraceEntry,
        (TraceEntry.body,),
        (TraceEntry.trace,),
        lambda row, column: step_context(row.trace),
    ),
)


def key_ids_in_use():
    """{key id: how many values it sealed} over every sealed column; "" for values still in
    plain text (from before encryption)."""
    found = {}
    for model, columns, _, _ in SEALED:
        for column in columns:
            prefix = fn.SUBSTR(column, 1, 11)  # "v1:" and the key id
            count = fn.COUNT(model._meta.primary_key)
            rows = model.select(prefix.alias("p"), count.alias("n")).where(column.is_null(False))
            for row in rows.group_by(prefix).dicts():
                _, kid, _ = encryption.sealed_parts(row["p"] + ":")
                found[kid] = found.get(kid, 0) + row["n"]
    return found


def reseal(batch=200):
    """Seal every value again with the newest key (and every value still in plain text
    for the first time): how many rows changed. Each row is swapped only if it still holds
    what was read, so it is safe while the app serves, and a second run changes nothing."""
    keyring = encryption.keyring()
    changed = 0
    for model, columns, binding, bound in SEALED:
        key = model._meta.primary_key
        # Only these columns: run by an upgrade, a later version's may not be there yet.
        chosen = model.select(key, *columns, *binding)
        after = 0
        while rows := list(chosen.where(key > after).order_by(key).limit(batch)):
            changed += sum(reseal_row(keyring, model, columns, bound, row) for row in rows)
            after = rows[-1].id
    return changed


def reseal_row(keyring, model, columns, bound, row):
    """One row's values, sealed again with the newest key; 1 if the row changed."""
    fields, held = {}, model._meta.primary_key == row.id
    for column in columns:
        value = getattr(row, column.name)
        if value is None or keyring.sealed_by_newest(value):
            continue
        where = bound(row, column.name)
        try:
            text = keyring.open(value, where) if encryption.is_sealed(value) else value
        except encryption.Unreadable:
            continue  # worth nothing: forgotten when it is next read
        except encryption.KeyNotHeld:
            continue  # sealed by a process with a key not given here: left as it is
        fields[column.name] = keyring.seal(text, where)
        if model is User:
            fields[f"{column.name}_digest"] = digest(text)
        held &= column == value
    if not fields:
        return 0
    return model.update(**fields).where(held).execute()
