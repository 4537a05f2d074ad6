"""models.py on its own: users by Fitbit id, the token compare-and-swap, sessions."""

import os
import stat
from datetime import UTC, datetime

import pytest

import oauth
from models import BrowserSession, PendingSignIn, User, db, open_database

EXPIRY = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "models.db"
    open_database(f"sqlite:///{path}")
    with db.connection_context():
        yield path


def tokens(user_id="ABC123", access="a1", refresh="r1"):
    return oauth.Tokens(user_id, access, refresh, EXPIRY, "activity profile")


def test_upsert_inserts_then_updates_the_same_row(database):
    first = User.upsert(tokens(), "Alex")
    second = User.upsert(tokens(access="a2", refresh="r2"), "Alexandra")
    assert User.select().count() == 1
    assert second.id == first.id
    assert (second.display_name, second.access_token, second.refresh_token) == (
        "Alexandra",
        "a2",
        "r2",
    )
    assert second.expires_at == EXPIRY  # back from SQLite as an aware UTC datetime


def test_lookup_by_fitbit_id_is_case_sensitive(database):
    User.upsert(tokens("ABC123"), "Upper")
    User.upsert(tokens("abc123"), "Lower")
    assert User.select().count() == 2
    assert User.by_fitbit_id("ABC123").display_name == "Upper"
    assert User.by_fitbit_id("abc123").display_name == "Lower"
    assert User.by_fitbit_id("Abc123") is None


def test_replace_tokens_is_a_compare_and_swap(database):
    User.upsert(tokens(refresh="r1"), "Alex")
    assert User.replace_tokens("r1", tokens(access="a2", refresh="r2"))
    # A second worker that also spent r1 must not overwrite the pair just stored.
    assert not User.replace_tokens("r1", tokens(access="a3", refresh="r3"))
    assert User.get().refresh_token == "r2"


def test_replace_tokens_does_not_revive_a_disconnected_user(database):
    User.upsert(tokens(refresh="r1"), "Alex")
    User.clear_tokens("ABC123")
    assert not User.replace_tokens("r1", tokens(access="a2", refresh="r2"))
    assert not User.get().connected


def test_flashes_are_popped_once(database):
    session = BrowserSession.create(key="k", csrf_token="c")
    session.add_flash("one")
    session.add_flash("two")
    assert BrowserSession.get().pop_flashes() == ["one", "two"]
    assert BrowserSession.get().pop_flashes() == []


def test_pending_sign_in_is_consumed_once(database):
    session = BrowserSession.create(key="k", csrf_token="c")
    pending = PendingSignIn.create(session=session, state="s", code_verifier="v")
    assert pending.consume()
    assert not pending.consume()


def test_deleting_a_session_deletes_its_pending_sign_in(database):
    session = BrowserSession.create(key="k", csrf_token="c")
    PendingSignIn.create(session=session, state="s", code_verifier="v")
    session.delete_instance()
    assert PendingSignIn.select().count() == 0


def test_sqlite_file_is_created_private(database):
    assert stat.S_IMODE(os.stat(database).st_mode) == 0o600
