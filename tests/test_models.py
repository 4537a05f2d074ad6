"""models.py on its own: users by Fitbit id, the token compare-and-swap, sessions."""

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from conftest import empty_database
from freezegun import freeze_time
from playhouse.db_url import connect
from werkzeug.test import Client

import oauth
from fitbit_oauth_app import Config, create_app
from models import (
    SCHEMA_VERSION,
    BrowserSession,
    PendingSignIn,
    SchemaVersion,
    User,
    db,
    open_database,
)

HERE = os.path.dirname(os.path.abspath(__file__))

EXPIRY = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


@pytest.fixture
def database(database_url):
    open_database(database_url)
    with db.connection_context():
        yield database_url


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


def test_only_one_worker_gets_the_refresh_lease(database):
    User.upsert(tokens(refresh="r1"), "Alex")
    until = datetime.now(UTC) + oauth.REFRESH_LEASE
    first = User.take_lease("ABC123", "r1", until)
    assert first is not None
    assert User.take_lease("ABC123", "r1", until) is None
    User.release_lease("ABC123", "not-mine")  # someone else's release leaves ours alone
    assert User.take_lease("ABC123", "r1", until) is None
    User.release_lease("ABC123", first)
    assert User.take_lease("ABC123", "r1", until) is not None


def test_a_lease_runs_out_and_can_then_be_taken(database):
    User.upsert(tokens(refresh="r1"), "Alex")
    with freeze_time("2026-11-23 12:00") as clock:
        assert User.take_lease("ABC123", "r1", datetime.now(UTC) + timedelta(seconds=30))
        clock.tick(timedelta(seconds=29))
        assert User.take_lease("ABC123", "r1", datetime.now(UTC) + timedelta(seconds=30)) is None
        clock.tick(timedelta(seconds=2))
        assert User.take_lease("ABC123", "r1", datetime.now(UTC) + timedelta(seconds=30))


def test_no_lease_on_a_refresh_token_that_was_already_rotated(database):
    User.upsert(tokens(refresh="r2"), "Alex")
    assert User.take_lease("ABC123", "r1", datetime.now(UTC) + oauth.REFRESH_LEASE) is None


def test_storing_the_new_pair_ends_the_lease(database):
    User.upsert(tokens(refresh="r1"), "Alex")
    assert User.take_lease("ABC123", "r1", datetime.now(UTC) + oauth.REFRESH_LEASE)
    assert User.replace_tokens("r1", tokens(access="a2", refresh="r2"))
    assert User.get().refresh_lease is None
    assert User.take_lease("ABC123", "r2", datetime.now(UTC) + oauth.REFRESH_LEASE)


def test_clearing_a_dead_refresh_token_never_wipes_a_newer_pair(database):
    User.upsert(tokens(refresh="r2"), "Alex")  # another worker stored r2 a moment ago
    assert not User.clear_tokens("ABC123", dead_refresh_token="r1")
    assert User.get().refresh_token == "r2"
    assert User.clear_tokens("ABC123", dead_refresh_token="r2")
    assert not User.get().connected


def make_first_release_database(database_url):
    """The first release's tables, with two users in them: one connected, one not."""
    kind = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    with open(os.path.join(HERE, f"schema_v1_{kind}.sql")) as schema:
        statements = [sql for sql in schema.read().split(";\n") if sql.strip()]
    database = connect(database_url)
    for sql in statements:
        database.execute_sql(sql)
    database.close()


def test_a_database_of_the_first_release_is_upgraded_in_place(database_url):
    make_first_release_database(database_url)
    open_database(database_url)
    with db.connection_context():
        assert SchemaVersion.get().version == SCHEMA_VERSION
        alex, sam = User.select().order_by(User.id)
        assert (alex.fitbit_id, alex.display_name, alex.refresh_token) == (
            "7QW2XR",
            "Alex R.",
            "v1-refresh",
        )
        assert alex.connected and alex.rate_remaining == 140 and not sam.connected
        assert alex.expires_at == EXPIRY  # the same moment, now with its zone
        # The new columns work: the upgraded row takes a refresh lease.
        assert User.take_lease("7QW2XR", "v1-refresh", datetime.now(UTC) + oauth.REFRESH_LEASE)
    open_database(database_url)  # a second start changes nothing
    with db.connection_context():
        assert User.select().count() == 2 and SchemaVersion.select().count() == 1


def test_the_app_starts_on_a_first_release_database_with_its_users_still_there(
    database_url, client_config
):
    make_first_release_database(database_url)
    app = create_app(Config(client_config, database_url, secret_key=b"k"))
    with freeze_time("2026-11-23 12:00:00"):
        users = Client(app).get("/users").get_data(as_text=True)
    assert "Alex R." in users and "expires in 8 hours" in users
    assert "Sam K." in users and "needs reconnecting" in users


def schema_of(database_url):
    """Each table's columns with their types, and each index, as the database reports them."""
    database = connect(database_url)
    schema = {}
    for table in database.get_tables():
        columns = [(c.name, c.data_type.lower(), c.null) for c in database.get_columns(table)]
        indexes = [(i.name, tuple(i.columns), i.unique) for i in database.get_indexes(table)]
        schema[table] = (sorted(columns), sorted(indexes))
    database.close()
    return schema


def test_an_upgraded_database_has_the_schema_of_a_new_one(database_url):
    open_database(database_url)
    new = schema_of(database_url)
    empty_database(database_url)
    make_first_release_database(database_url)
    open_database(database_url)
    assert schema_of(database_url) == new


@pytest.mark.parametrize("first_release", [False, True], ids=["new-file", "first-release"])
def test_processes_starting_together_set_up_the_database_once(tmp_path, first_release):
    path = tmp_path / "shared.db"
    if first_release:
        make_first_release_database(f"sqlite:///{path}")
    start = f"import models; models.open_database('sqlite:///{path}')"
    root = os.path.dirname(HERE)
    starts = [subprocess.Popen([sys.executable, "-c", start], cwd=root) for _ in range(4)]
    assert [process.wait(30) for process in starts] == [0, 0, 0, 0]
    open_database(f"sqlite:///{path}")
    with db.connection_context():
        assert SchemaVersion.get().version == SCHEMA_VERSION
        assert db.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)
        assert User.select().count() == (2 if first_release else 0)


def test_flashes_are_popped_once(database):
    session = BrowserSession.create(key="k", csrf_token="c")
    session.add_flash("one")
    session.add_flash("two", link=("/trace", "See"))
    assert BrowserSession.get().pop_flashes() == [
        {"text": "one", "link": None},
        {"text": "two", "link": ["/trace", "See"]},
    ]
    assert BrowserSession.get().pop_flashes() == []


def test_a_flash_kept_by_the_first_release_still_shows(database):
    BrowserSession.create(key="k", csrf_token="c", flashes='["Hello Alex!"]')
    assert BrowserSession.get().pop_flashes() == [{"text": "Hello Alex!", "link": None}]


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


def test_sqlite_file_is_created_private(tmp_path):
    open_database(f"sqlite:///{tmp_path / 'private.db'}")
    assert stat.S_IMODE(os.stat(tmp_path / "private.db").st_mode) == 0o600
