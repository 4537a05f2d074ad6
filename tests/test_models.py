"""models.py on its own: users by Fitbit id, the token compare-and-swap, sessions."""

import os
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from conftest import empty_database, held
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st
from peewee import DateTimeField, SqliteDatabase
from playhouse.db_url import connect
from werkzeug.test import Client

import dialects
import fitbit_legacy
import google_health
import models
import oauth
import token_store
from database import open_database
from fitbit_oauth_app import create_app
from models import ApiCache, BrowserSession, PendingSignIn, User, db
from schema import SCHEMA_VERSION, SchemaVersion
from settings import Config

HERE = os.path.dirname(os.path.abspath(__file__))

EXPIRY = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


@pytest.fixture
def database(database_url):
    open_database(database_url)
    with db.connection_context():
        yield database_url


def tokens(user_id="ABC123", access="a1", refresh="r1"):
    return oauth.Tokens(user_id, access, refresh, EXPIRY, "activity profile")


def fitbit_sign_in(tokens, name):
    return token_store.sign_in(dialects.Person("fitbit", tokens.user_id, None, name), tokens)


def google_sign_in(tokens, name, health_id="hu-1", legacy_id=None):
    return token_store.sign_in(dialects.Person("google", legacy_id, health_id, name), tokens)


def test_a_sign_in_inserts_then_updates_the_same_row(database):
    first = fitbit_sign_in(tokens(), "Alex")
    second = fitbit_sign_in(tokens(access="a2", refresh="r2"), "Alexandra")
    assert User.select().count() == 1
    assert second.id == first.id
    assert (second.display_name, held(second).access_token, held(second).refresh_token) == (
        "Alexandra",
        "a2",
        "r2",
    )
    assert second.expires_at == EXPIRY  # back from SQLite as an aware UTC datetime


def test_lookup_by_fitbit_id_is_case_sensitive(database):
    fitbit_sign_in(tokens("ABC123"), "Upper")
    fitbit_sign_in(tokens("abc123"), "Lower")
    assert User.select().count() == 2
    assert User.by_fitbit_id("ABC123").display_name == "Upper"
    assert User.by_fitbit_id("abc123").display_name == "Lower"
    assert User.by_fitbit_id("Abc123") is None


def test_moving_from_fitbit_to_google_keeps_one_row_and_drops_the_fitbit_tokens(database):
    alex = fitbit_sign_in(tokens("7QW2XR", access="fitbit-a", refresh="fitbit-r"), "Alex R.")
    token_store.keep_answer(alex, "/1/user/-/profile.json", {"user": {}})
    moved = google_sign_in(
        tokens(None, access="ya29.a", refresh="1//r"), "Alex Rivera", "hu-alex", "7QW2XR"
    )
    assert User.select().count() == 1 and moved.id == alex.id
    assert (moved.provider, moved.fitbit_id, moved.health_user_id) == (
        "google",
        "7QW2XR",
        "hu-alex",
    )
    assert (held(moved).access_token, held(moved).refresh_token) == ("ya29.a", "1//r")
    assert ApiCache.select().count() == 0  # answers in Fitbit's shape are gone with its tokens
    # Back on the legacy API (the stand-in), the same row again.
    back = fitbit_sign_in(tokens("7QW2XR", access="fitbit-b", refresh="fitbit-s"), "Alex R.")
    assert back.id == alex.id and back.provider == "fitbit" and back.health_user_id == "hu-alex"


def test_a_google_user_without_a_fitbit_id_gets_a_row_of_their_own(database):
    fitbit_sign_in(tokens("7QW2XR"), "Alex")
    robin = google_sign_in(tokens(None, access="ya29.b", refresh="1//s"), "Robin", "hu-robin")
    assert User.select().count() == 2 and robin.fitbit_id is None
    again = google_sign_in(tokens(None, access="ya29.c", refresh="1//s"), "Robin", "hu-robin")
    assert again.id == robin.id and User.select().count() == 2


def test_a_google_sign_in_without_a_refresh_token_keeps_the_one_it_has(database):
    google_sign_in(tokens(None, access="ya29.a", refresh="1//kept"), "Robin", "hu-robin")
    again = google_sign_in(tokens(None, access="ya29.b", refresh=None), "Robin", "hu-robin")
    assert (held(again).access_token, held(again).refresh_token) == ("ya29.b", "1//kept")


def test_a_sign_in_with_no_refresh_token_anywhere_stores_nothing(database):
    fitbit_sign_in(tokens("7QW2XR", refresh="fitbit-r"), "Alex")
    # Fitbit's refresh token is no use to Google, and Google sent none.
    moved = google_sign_in(tokens(None, refresh=None), "Alex", "hu-alex", "7QW2XR")
    assert moved is None
    alex = User.get()
    assert (alex.provider, held(alex).refresh_token, alex.health_user_id) == (
        "fitbit",
        "fitbit-r",
        None,
    )
    assert google_sign_in(tokens(None, refresh=None), "Robin", "hu-robin") is None
    assert User.select().count() == 1


def test_two_sign_ins_of_a_new_person_at_once_make_one_row(database):
    """Two browsers, one new person, the same moment: whichever insert loses finds the
    winner's row and updates it (on PostgreSQL, after a unique violation)."""
    count, barrier, errors = 8, threading.Barrier(8), []

    def sign_in(n):
        try:
            with db.connection_context():
                barrier.wait()
                google_sign_in(
                    tokens(None, access=f"ya29.{n}", refresh="1//r"), "Robin", "hu-robin"
                )
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=sign_in, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert User.select().where(User.health_user_id == "hu-robin").count() == 1


def test_replace_tokens_is_a_compare_and_swap_on_the_access_token(database):
    alex = fitbit_sign_in(tokens(access="a1", refresh="r1"), "Alex")
    assert User.replace_tokens(
        alex.id,
        token_store.digest("a1"),
        token_store.token_fields(alex.id, tokens(access="a2", refresh="r2")),
    )
    # A second worker that also refreshed a1 must not overwrite the pair just stored.
    assert not User.replace_tokens(
        alex.id,
        token_store.digest("a1"),
        token_store.token_fields(alex.id, tokens(access="a3", refresh="r3")),
    )
    assert held(User.get()).refresh_token == "r2"


def test_replace_tokens_does_not_revive_a_disconnected_user(database):
    alex = fitbit_sign_in(tokens(access="a1"), "Alex")
    token_store.clear_tokens(alex.id)
    assert not User.replace_tokens(
        alex.id,
        token_store.digest("a1"),
        token_store.token_fields(alex.id, tokens(access="a2", refresh="r2")),
    )
    assert not User.get().connected


def test_only_one_worker_gets_the_refresh_lease(database):
    alex = fitbit_sign_in(tokens(access="a1"), "Alex")
    until = datetime.now(UTC) + oauth.REFRESH_LEASE
    first = User.take_lease(alex.id, token_store.digest("a1"), until)
    assert first is not None
    assert User.take_lease(alex.id, token_store.digest("a1"), until) is None
    User.release_lease(alex.id, "not-mine")  # someone else's release leaves ours alone
    assert User.take_lease(alex.id, token_store.digest("a1"), until) is None
    User.release_lease(alex.id, first)
    assert User.take_lease(alex.id, token_store.digest("a1"), until) is not None


def test_a_lease_runs_out_and_can_then_be_taken(database):
    alex = fitbit_sign_in(tokens(access="a1"), "Alex")
    with freeze_time("2026-11-23 12:00") as clock:
        assert User.take_lease(
            alex.id, token_store.digest("a1"), datetime.now(UTC) + timedelta(seconds=30)
        )
        clock.tick(timedelta(seconds=29))
        assert (
            User.take_lease(
                alex.id, token_store.digest("a1"), datetime.now(UTC) + timedelta(seconds=30)
            )
            is None
        )
        clock.tick(timedelta(seconds=2))
        assert User.take_lease(
            alex.id, token_store.digest("a1"), datetime.now(UTC) + timedelta(seconds=30)
        )


def test_no_lease_on_tokens_that_were_already_refreshed(database):
    alex = fitbit_sign_in(tokens(access="a2"), "Alex")
    assert (
        User.take_lease(alex.id, token_store.digest("a1"), datetime.now(UTC) + oauth.REFRESH_LEASE)
        is None
    )


def test_storing_the_new_pair_ends_the_lease(database):
    alex = fitbit_sign_in(tokens(access="a1", refresh="r1"), "Alex")
    assert User.take_lease(
        alex.id, token_store.digest("a1"), datetime.now(UTC) + oauth.REFRESH_LEASE
    )
    # Google's way: a new access token, the same refresh token.
    assert User.replace_tokens(
        alex.id,
        token_store.digest("a1"),
        token_store.token_fields(alex.id, tokens(access="a2", refresh="r1")),
    )
    assert User.get().refresh_lease is None
    assert User.take_lease(
        alex.id, token_store.digest("a2"), datetime.now(UTC) + oauth.REFRESH_LEASE
    )


def test_clearing_a_dead_refresh_token_never_wipes_a_newer_pair(database):
    alex = fitbit_sign_in(tokens(refresh="r2"), "Alex")  # another worker stored r2 just now
    assert not token_store.clear_tokens(alex.id, dead_refresh_token="r1")
    assert held(User.get()).refresh_token == "r2"
    assert token_store.clear_tokens(alex.id, dead_refresh_token="r2")
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


@freeze_time("2026-11-23 12:00:00")  # an hour after Alex's session began, as it was kept
def test_a_database_of_the_first_release_is_upgraded_in_place(database_url):
    make_first_release_database(database_url)
    # Alex is signed in somewhere, with a cached answer: changing the users table must not
    # cascade into deleting either (SQLite rebuilds the table to change a column).
    database = connect(database_url)
    database.execute_sql(
        "INSERT INTO browsersession VALUES ('k1', 'csrf', 1, '[]', '2026-11-23 11:00:00+00:00')"
    )
    database.execute_sql(
        "INSERT INTO apicache (user_id, path, body, fetched_at) "
        "VALUES (1, '/1/user/-/profile.json', '{}', '2026-11-23 11:00:00+00:00')"
    )
    database.close()
    open_database(database_url)
    with db.connection_context():
        assert SchemaVersion.get().version == SCHEMA_VERSION
        alex, sam = User.select().order_by(User.id)
        assert (alex.fitbit_id, alex.display_name, held(alex).refresh_token) == (
            "7QW2XR",
            "Alex R.",
            "v1-refresh",
        )
        assert alex.connected and alex.rate_remaining == 140 and not sam.connected
        assert alex.expires_at == EXPIRY  # the same moment, now with its zone
        assert (alex.provider, alex.health_user_id, sam.provider) == ("fitbit", None, "fitbit")
        assert BrowserSession.get().user_id == alex.id and ApiCache.get().user_id == alex.id
        # The new columns work: the upgraded row takes a refresh lease, and moves to Google.
        assert User.take_lease(
            alex.id, token_store.digest("v1-access"), datetime.now(UTC) + oauth.REFRESH_LEASE
        )
        moved = token_store.sign_in(
            dialects.Person("google", "7QW2XR", "hu-alex", "Alex Rivera"),
            oauth.Tokens(None, "ya29.a", "1//r", EXPIRY, "openid"),
        )
        assert moved.id == alex.id and User.select().count() == 2
    open_database(database_url)  # a second start changes nothing
    with db.connection_context():
        assert User.select().count() == 2 and SchemaVersion.select().count() == 1
        assert BrowserSession.select().count() == 1


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
        schema[table] = (sorted(columns), sorted(indexes), never_reused_ids(database, table))
    database.close()
    return schema


@pytest.mark.parametrize("made", ["new", "first-release"])
def test_the_id_of_a_deleted_user_is_never_given_to_the_next(database_url, made):
    """Everything sealed for a user is bound to their row's id: the newest user deleted,
    the next person must get another. On SQLite that takes AUTOINCREMENT (the upgrade adds
    it to databases made before); on PostgreSQL, SERIAL's sequence never goes back."""
    if made == "first-release":
        make_first_release_database(database_url)  # Alex is 1 and Sam 2
    open_database(database_url)
    with db.connection_context():
        if made == "new":
            for fitbit_id in ("7QW2XR", "9KD3MS"):
                User.create(fitbit_id=fitbit_id, display_name=fitbit_id)
        newest = User.select().order_by(User.id.desc()).get()
        User.delete().where(User.id == newest.id).execute()
        again = User.create(fitbit_id=newest.fitbit_id, display_name="Signed in again")
        assert again.id > newest.id
        # And so on, whoever deletes: no id is ever given twice.
        ids = [newest.id, again.id]
        for n in range(3):
            User.delete().where(User.id == ids[-1]).execute()
            ids.append(User.create(fitbit_id=f"NEW{n}", display_name="x").id)
        assert len(set(ids)) == len(ids) and ids == sorted(ids)


def never_reused_ids(database, table):
    """Whether SQLite says the table's ids are never given twice (AUTOINCREMENT); None on
    PostgreSQL, whose SERIAL draws from a sequence."""
    if not isinstance(database, SqliteDatabase):
        return None
    made = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?"
    return "AUTOINCREMENT" in database.execute_sql(made, (table,)).fetchone()[0]


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
    start = f"import database; database.open_database('sqlite:///{path}')"
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


def test_a_session_is_found_with_its_user_by_sql_written_once(database, monkeypatch):
    user = fitbit_sign_in(tokens(), "Alex")
    BrowserSession.create(key="signed-in", csrf_token="c", user=user)
    BrowserSession.create(key="anonymous", csrf_token="c")
    written = []
    query = models.SESSION_BY_KEY.query
    monkeypatch.setattr(models.SESSION_BY_KEY, "query", lambda: written.append(1) or query())
    models.SESSION_BY_KEY.sql.clear()
    for _ in range(5):
        found = BrowserSession.find("signed-in")
        assert found.user.display_name == "Alex" and found.user.expires_at == EXPIRY
        assert BrowserSession.find("anonymous").user is None
        assert BrowserSession.find("no-such-key") is None
    assert written == [1]  # once for this database, whatever the number of pages
    # The same for every kind of column: a datetime comes back a datetime, with its zone.
    assert found.created_at.tzinfo is not None and found.csrf_token == "c"


def test_a_session_read_again_is_made_from_its_row_as_it_is_now(database):
    """The values made from a row are used again only for the very same row: a change in any
    column, made by another process, is seen at once; and what one page changes in its
    instance is not what the next page finds."""
    user = fitbit_sign_in(tokens(), "Alex")
    BrowserSession.create(key="k", csrf_token="c", user=user)
    seen = []
    for _ in range(3):
        found = BrowserSession.find("k")
        assert (found.flashes, found.user.display_name) == ("[]", "Alex")
        assert all(found is not other and found.user is not other.user for other in seen)
        found.flashes = found.user.display_name = "changed in this instance only"
        seen.append(found)
    # Another process changes the rows, a column each, as webhooks and consent rounds do.
    User.update(scope="activity heartrate").where(User.id == user.id).execute()
    BrowserSession.update(trace="t1").where(BrowserSession.key == "k").execute()
    changed = BrowserSession.find("k")
    assert (changed.user.scope, changed.trace) == ("activity heartrate", "t1")
    User.delete().where(User.id == user.id).execute()  # and the session goes with it
    assert BrowserSession.find("k") is None


def test_an_old_session_is_not_found(database):
    with freeze_time("2026-11-01 12:00:00"):
        BrowserSession.create(key="old", csrf_token="c")
    with freeze_time("2026-11-15 12:00:01"):
        assert BrowserSession.find("old") is None
    with freeze_time("2026-11-15 11:59:59"):
        assert BrowserSession.find("old") is not None


@settings(max_examples=500, deadline=None)
@given(moment=st.datetimes(timezones=st.one_of(st.none(), st.timezones())))
def test_a_moment_kept_as_text_reads_back_as_peewee_reads_it(moment):
    """SQLite keeps a datetime as the text its adapter writes (isoformat with a space):
    MomentField reads it with datetime.fromisoformat, to the same value peewee's own
    DateTimeField finds by trying its formats."""
    text = moment.isoformat(" ")
    assert models.MomentField().python_value(text) == DateTimeField().python_value(text)
    # What no format reads stays as it was, for both.
    assert models.MomentField().python_value("soon") == "soon"


def test_moments_read_back_from_the_database_as_they_were_written(database):
    moments = [datetime(2026, 11, 23, 20, 0, tzinfo=UTC), datetime(2026, 11, 23, 20, 0, 1, 5)]
    for moment in moments:
        row = User.create(display_name="M", fitbit_id=str(moment.microsecond), expires_at=moment)
        read = User.get_by_id(row.id).expires_at
        # PostgreSQL hands back every moment in UTC; SQLite as it was written.
        assert read == moment if moment.tzinfo else read.replace(tzinfo=None) == moment


@pytest.mark.parametrize("dialect", ["fitbit", "google"])
def test_a_name_of_any_length_from_the_provider_is_kept_cut_short(database, dialect):
    """PostgreSQL refuses what does not fit its columns: a name is cut to MAX_NAME, and a
    grant of every scope (Google's are URLs) fits its column whole."""
    module = {"fitbit": fitbit_legacy, "google": google_health}[dialect]
    body = {"user": {"displayName": "A" * 1000}} if dialect == "fitbit" else {"name": "A" * 1000}
    name = module.read_profile(body)[0]
    assert name == "A" * dialects.MAX_NAME
    scope = " ".join(kind.scope for kind in module.DATA) + " " + module.SCOPES
    tokens = oauth.Tokens("X1", "access", "refresh", EXPIRY, scope)
    token_store.sign_in(dialects.Person(dialect, "X1", None, name), tokens)
    assert (User.get().display_name, User.get().scope) == (name, scope)
