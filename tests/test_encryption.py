"""Encryption at rest (encryption.py, token_store.py, database.py): every token and cached
answer is written sealed, bound to its row; none can be read from the database's files; the
keys rotate without a row lost; a wrong key stops the app before it changes anything; and a
value tampered with is that user's "connect again", never a 500 and never another's data.
"""

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import held, running_app
from peewee import PostgresqlDatabase
from test_end_to_end import Browser
from test_models import make_first_release_database

import dialects
import encryption
import oauth
import token_store
from database import open_database
from models import ApiCache, TraceEntry, User, db
from tools import reencrypt

EXPIRY = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
ANSWER = {"activities-steps": [{"dateTime": "2026-11-23", "value": "8123"}]}


def keys(*texts):
    return encryption.parse_keys(",".join(texts))


def tokens(access="a-SENTINEL-1", refresh="r-SENTINEL-1"):
    return oauth.Tokens("7QW2XR", access, refresh, EXPIRY, "activity profile")


def alex(access="a-SENTINEL-1", refresh="r-SENTINEL-1"):
    person = dialects.Person("fitbit", "7QW2XR", None, "Alex")
    return token_store.sign_in(person, tokens(access, refresh))


def raw(database_url, sql):
    with db.connection_context():
        return db.execute_sql(sql).fetchall()


# --- The seal -------------------------------------------------------------------------------


def test_a_value_opens_only_for_its_own_row_and_column_and_unchanged():
    keyring = encryption.Keyring(keys(encryption.new_key_text()))
    sealed = keyring.seal("refresh-SENTINEL", "users.refresh_token:1")
    assert "refresh-SENTINEL" not in sealed
    assert sealed.startswith(f"v1:{keyring.newest}:")
    assert keyring.open(sealed, "users.refresh_token:1") == "refresh-SENTINEL"
    for elsewhere in ("users.refresh_token:2", "users.access_token:1"):
        with pytest.raises(encryption.Unreadable):
            keyring.open(sealed, elsewhere)  # moved to another row, or another column
    flipped = sealed[:-5] + ("A" if sealed[-5] != "A" else "B") + sealed[-4:]
    with pytest.raises(encryption.Unreadable):
        keyring.open(flipped, "users.refresh_token:1")
    # Each seal has a nonce of its own: the same token never looks the same twice.
    assert keyring.seal("refresh-SENTINEL", "users.refresh_token:1") != sealed


def test_a_value_opens_with_the_key_that_sealed_it_and_no_other():
    old, new = encryption.new_key_text(), encryption.new_key_text()
    sealed = encryption.Keyring(keys(old)).seal("x", "c")
    assert encryption.Keyring(keys(new, old)).open(sealed, "c") == "x"
    # Without the key that sealed it: not a value tampered with, but one to leave alone.
    with pytest.raises(encryption.KeyNotHeld) as missing:
        encryption.Keyring(keys(new)).open(sealed, "c")
    assert missing.value.kid == encryption.key_id(keys(old)[0])


# --- What the database holds ------------------------------------------------------------------


def test_tokens_and_answers_are_written_sealed_and_read_back(database_url):
    open_database(database_url)
    with db.connection_context():
        user = alex()
        token_store.keep_answer(user, "/steps", ANSWER)
        row = User.get()
        assert encryption.is_sealed(row.access_token) and encryption.is_sealed(row.refresh_token)
        assert "SENTINEL" not in row.access_token + row.refresh_token
        assert encryption.is_sealed(ApiCache.get().body) and "8123" not in ApiCache.get().body
        assert token_store.tokens_of(row) == tokens()
        assert token_store.cached_answer(row, "/steps").text.startswith('{"activities-steps"')


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_no_token_the_stand_in_issued_is_in_the_database_files(tmp_path, provider):
    # Tokens that are due at once (the app refreshes 5 minutes early): every page view
    # after the sign-in refreshes them.
    name = "stand-in-google.db" if provider == "google" else "stand-in.db"
    issued = set()

    def note_issued():
        # Read as they come: the stand-in forgets the tokens it has replaced.
        with sqlite3.connect(tmp_path / name) as stand_in:
            for table in ("access_tokens", "refresh_tokens", "refresh_issued"):
                issued.update(token for (token,) in stand_in.execute(f"SELECT token FROM {table}"))

    with running_app(tmp_path, expires_in=300, provider=provider, FITBIT_CACHE_SECONDS="0") as (
        url,
        _,
    ):
        browser = Browser(url)
        assert "steps today" in browser.sign_in().text
        note_issued()
        for _ in range(2):
            assert "steps today" in browser.get("/").text  # a refresh, then the API
            note_issued()
        with db.connection_context():
            refreshed = User.get()
    assert len(issued) >= 4  # the sign-in's pair, and at least two refreshes' access tokens
    assert held(refreshed).access_token in issued
    files = [p for p in tmp_path.iterdir() if p.name.startswith("live.db") and p.suffix != ".key"]
    found = b"".join(path.read_bytes() for path in files)
    assert [token for token in issued if token.encode() in found] == []
    # And the answers: none of the provider's field names is there to read either.
    for field in (b"activities-steps", b"rollupDataPoints", b"healthUserId", b"countSum"):
        assert field not in found


def test_the_upgrade_seals_what_was_kept_in_plain_text_and_leaves_none_behind(database_url):
    make_first_release_database(database_url)  # Alex's tokens "v1-access", "v1-refresh"
    database = open_database_raw(database_url)
    database.execute_sql(
        "INSERT INTO apicache (user_id, path, body, fetched_at) VALUES "
        '(1, \'/1/user/-/profile.json\', \'{"user": {"fullName": "Alex Plain"}}\', '
        "'2026-11-23 11:00:00+00:00')"
    )
    # A trace step kept in plain text, as the releases before encryption kept them (no
    # session shows it, so the start-up's pruning deletes it once it is sealed).
    with database.bind_ctx([TraceEntry]):
        TraceEntry.create_table()
        TraceEntry.create(trace="t-1", title="Step 5", body='{"name": "Alex Traced"}')
    files = table_files(database)
    database.close()
    open_database(database_url)
    with db.connection_context():
        alex_row = User.get(User.fitbit_id == "7QW2XR")
        assert held(alex_row).refresh_token == "v1-refresh"
        assert token_store.key_ids_in_use() == {encryption.keyring().newest: 3}
        assert "Alex Plain" in token_store.cached_answer(alex_row, "/1/user/-/profile.json").text
    if database_url.startswith("sqlite"):
        path = Path(database_url.split("///", 1)[1])
        found = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert b"v1-refresh" not in found and b"v1-access" not in found
        assert b"Alex Plain" not in found and b"Alex Traced" not in found
    else:
        # PostgreSQL keeps a changed row's old version until the table is rewritten: each
        # table with sealed values is, into files of its own.
        database = open_database_raw(database_url)
        after = table_files(database)
        database.close()
        assert [table for table in files if files[table] == after[table]] == []


def table_files(database):
    """{table with sealed values: the file PostgreSQL keeps it in}; {} on SQLite."""
    if not isinstance(database, PostgresqlDatabase):
        return {}
    return {
        model._meta.table_name: database.execute_sql(
            "SELECT pg_relation_filenode(%s)", (model._meta.table_name,)
        ).fetchone()[0]
        for model, *_ in token_store.SEALED
    }


def open_database_raw(database_url):
    from playhouse.db_url import connect

    return connect(database_url)


# --- Keys -----------------------------------------------------------------------------------


def test_keys_rotate_without_a_row_lost_and_the_command_is_safe_twice(database_url, capsys):
    old, new = encryption.new_key_text(), encryption.new_key_text()
    open_database(database_url, keys(old))
    with db.connection_context():
        user = alex()
        token_store.keep_answer(user, "/steps", ANSWER)
        token_store.keep_answer(user, "/sleep", {"sleep": []})
    environ = {"DATABASE_URL": database_url, encryption.SETTING: f"{new},{old}"}
    assert reencrypt.main(environ) == 3  # the user's row and two answers
    assert "3 rows sealed again" in capsys.readouterr().out
    assert reencrypt.main(environ) == 0
    # Now the new key alone opens everything.
    open_database(database_url, keys(new))
    with db.connection_context():
        row = User.get()
        assert token_store.tokens_of(row) == tokens()
        assert token_store.cached_answer(row, "/steps").text == '{"activities-steps": ' + (
            '[{"dateTime": "2026-11-23", "value": "8123"}]}'
        )
        # Four values: the user's two tokens, and two answers.
        assert token_store.key_ids_in_use() == {encryption.key_id(keys(new)[0]): 4}


def test_what_the_old_key_sealed_is_not_left_in_the_files_after_reencrypt(tmp_path, capsys):
    """The rows are sealed again in place; SQLite's write-ahead log would still hold them as
    the old key sealed them, until a checkpoint: `make reencrypt` empties it."""
    path = tmp_path / "rotated.db"
    old, new = encryption.new_key_text(), encryption.new_key_text()
    open_database(f"sqlite:///{path}", keys(old))
    with db.connection_context():
        token_store.keep_answer(alex(), "/steps", ANSWER)
        row = User.get()
        # Past "v1:<key id>:", the part of each value its nonce makes its own.
        before = [value[12:72] for value in (row.access_token, row.refresh_token)]
        before.append(ApiCache.get().body[12:72])
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.suffix != ".key")
    assert all(value.encode() in on_disk for value in before)
    environ = {"DATABASE_URL": f"sqlite:///{path}", encryption.SETTING: f"{new},{old}"}
    assert reencrypt.main(environ) == 2
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.suffix != ".key")
    assert [value for value in before if value.encode() in on_disk] == []


def test_reencrypt_on_a_database_that_is_not_there_makes_nothing(tmp_path, capsys):
    """A mistyped DATABASE_URL is said to be one, not met by a new empty database and key."""
    missing = tmp_path / "mistyped.db"
    environ = {"DATABASE_URL": f"sqlite:///{missing}", encryption.SETTING: ""}
    with pytest.raises(SystemExit, match="No database at .*mistyped.db"):
        reencrypt.main(environ)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SystemExit) as helped:
        reencrypt.main(environ, ["--help"])
    assert helped.value.code == 0 and "DATABASE_URL" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_a_missing_key_stops_the_start_naming_the_setting_and_changes_nothing(database_url):
    old, other = encryption.new_key_text(), encryption.new_key_text()
    open_database(database_url, keys(old))
    with db.connection_context():
        token_store.keep_answer(alex(), "/steps", ANSWER)
        before = raw(database_url, "SELECT access_token, refresh_token FROM users") + raw(
            database_url, "SELECT body FROM apicache"
        )
    with pytest.raises(SystemExit) as stopped:
        open_database(database_url, keys(other))
    message = str(stopped.value)
    assert "TOKEN_ENCRYPTION_KEYS" in message and encryption.key_id(keys(old)[0]) in message
    assert old not in message and other not in message  # a key is never printed
    open_database(database_url, keys(old))
    after = raw(database_url, "SELECT access_token, refresh_token FROM users") + raw(
        database_url, "SELECT body FROM apicache"
    )
    assert after == before
    with db.connection_context():
        assert token_store.tokens_of(User.get()) == tokens()


def test_in_sandbox_mode_a_deleted_key_file_stops_the_start(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    open_database(url)
    with db.connection_context():
        alex()
    (tmp_path / "app.db.key").unlink()
    with pytest.raises(SystemExit, match="TOKEN_ENCRYPTION_KEYS"):
        open_database(url)


# --- Tampering --------------------------------------------------------------------------------


def tamper(sealed):
    """The same value with one character of its ciphertext changed."""
    i = len(sealed) - 10
    return sealed[:i] + ("A" if sealed[i] != "A" else "B") + sealed[i + 1 :]


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_a_tampered_token_is_that_users_connect_again_and_nobody_elses(tmp_path, provider):
    people = ("7QW2XR", "9KD3MS") if provider == "fitbit" else ("hu-4f1e9c2a7b", "hu-8d03b6e5c1")
    with running_app(tmp_path, provider=provider, FITBIT_CACHE_SECONDS="0") as (url, _):
        alex_browser, sam_browser = Browser(url), Browser(url)
        alex_browser.sign_in(user=people[0])
        sam_browser.sign_in(user=people[1])
        with db.connection_context():
            alex_row, sam_row = User.select().order_by(User.id)
            User.update(access_token=tamper(alex_row.access_token)).where(
                User.id == alex_row.id
            ).execute()
        page = alex_browser.get("/")
        assert page.status_code == 200 and "Connect again" in page.text
        assert "Hello, Alex" in page.text and "Sam" not in page.text
        sam_page = sam_browser.get("/")
        assert sam_page.status_code == 200 and "steps today" in sam_page.text
        # Sam's sealed tokens, moved into Alex's row, open for nobody: Alex connects again.
        alex_browser.sign_in(user=people[0])
        with db.connection_context():
            sam_row = User.get_by_id(sam_row.id)
            moved = {c: getattr(sam_row, c) for c in ("access_token", "refresh_token")}
            User.update(**moved).where(User.id == alex_row.id).execute()
        page = alex_browser.get("/")
        assert page.status_code == 200 and "Connect again" in page.text
        assert "Sam" not in page.text
        with db.connection_context():
            assert not User.get_by_id(alex_row.id).connected  # the unreadable tokens forgotten
            assert held(User.get_by_id(sam_row.id)).access_token is not None


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_a_tampered_cached_answer_is_asked_for_again(tmp_path, provider):
    with running_app(tmp_path, provider=provider, FITBIT_CACHE_SECONDS="3600") as (url, _):
        browser = Browser(url)
        browser.sign_in()
        with db.connection_context():
            for cached in ApiCache.select():
                ApiCache.update(body=tamper(cached.body)).where(ApiCache.id == cached.id).execute()
        page = browser.get("/")
        assert page.status_code == 200 and "steps today" in page.text
        with db.connection_context():
            user = User.get()
            readable = [token_store.cached_answer(user, c.path) for c in ApiCache.select()]
        assert readable and None not in readable  # each fetched again, and readable


def test_the_key_file_is_the_owners_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'own.db'}"
    open_database(url)
    assert oct((tmp_path / "own.db.key").stat().st_mode & 0o777) == "0o600"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}\n", (tmp_path / "own.db.key").read_text())
