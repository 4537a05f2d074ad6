"""token_store.py: oauth.py's view of the users table. What it loads is what the provider
issued, a swap happens only over the pair it replaces, and a dead refresh token clears
only itself."""

from datetime import UTC, datetime

import pytest
from peewee import OperationalError

import dialects
import oauth
import token_store
from database import open_database
from models import User, db
from token_store import UserTokenStore

EXPIRY = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url):
    open_database(database_url)
    with db.connection_context():
        yield UserTokenStore()


def tokens(user_id="ABC123", access="a1", refresh="r1"):
    return oauth.Tokens(user_id, access, refresh, EXPIRY, "activity profile")


def signed_in(provider, issued):
    person = dialects.Person(provider, "ABC123", "hu-1" if provider == "google" else None, "Al")
    return token_store.sign_in(person, issued)


def test_loads_what_was_stored_and_names_the_user_only_where_refreshes_do(store):
    fitbit_user = signed_in("fitbit", tokens())
    assert store.load(fitbit_user.id) == tokens()
    # Google's refresh answers name nobody, so its tokens carry no user id to compare.
    token_store.clear_tokens(fitbit_user.id)
    google_user = signed_in("google", tokens(user_id=None, access="g1", refresh="gr1"))
    assert google_user.id == fitbit_user.id  # the same person, moved to Google Health
    assert store.load(google_user.id) == tokens(user_id=None, access="g1", refresh="gr1")


def test_a_disconnected_or_unknown_user_has_no_tokens(store):
    user = signed_in("fitbit", tokens())
    token_store.clear_tokens(user.id)
    assert store.load(user.id) is None
    assert store.load(user.id + 1) is None


def test_replace_swaps_only_over_the_pair_it_replaces(store):
    user = signed_in("fitbit", tokens())
    old, new = store.load(user.id), tokens(access="a2", refresh="r2")
    assert store.replace(user.id, old, new)
    assert store.load(user.id) == new
    # A second worker holding the old pair must not overwrite the new one.
    assert not store.replace(user.id, old, tokens(access="a3", refresh="r3"))
    assert store.load(user.id) == new


def test_forget_clears_only_the_refresh_token_that_died(store):
    user = signed_in("fitbit", tokens())
    dead = store.load(user.id)
    store.replace(user.id, dead, tokens(access="a2", refresh="r2"))
    assert not store.forget(user.id, dead)  # another worker stored a new pair meanwhile
    assert store.load(user.id).refresh_token == "r2"
    assert store.forget(user.id, store.load(user.id))
    assert store.load(user.id) is None


def test_a_locked_database_is_tried_again_before_the_new_pair_is_given_up(store, monkeypatch):
    user = signed_in("fitbit", tokens())
    old, new = store.load(user.id), tokens(access="a2", refresh="r2")
    attempts = []
    real = User.replace_tokens

    def locked_twice(*args):
        attempts.append(1)
        if len(attempts) <= 2:
            raise OperationalError("database is locked")
        return real(*args)

    monkeypatch.setattr(User, "replace_tokens", locked_twice)
    assert store.replace(user.id, old, new)
    assert len(attempts) == 3 and store.load(user.id) == new


def test_a_database_locked_through_every_try_raises(store, monkeypatch):
    user = signed_in("fitbit", tokens())
    old = store.load(user.id)

    attempts = []

    def locked(*args):
        attempts.append(1)
        raise OperationalError("database is locked")

    monkeypatch.setattr(User, "replace_tokens", locked)
    with pytest.raises(OperationalError):
        store.replace(user.id, old, tokens(access="a2", refresh="r2"))
    assert len(attempts) == token_store.STORE_ATTEMPTS
