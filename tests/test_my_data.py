"""my_data.py, through the app: Download my data (one JSON file, each kind of data as CSV,
from what is kept, with no call to the provider, never a token) and Delete my data (the
grant revoked and Fitbit's subscriptions deleted, then nothing of the user left in any
table), in both dialects, against the stand-ins over real HTTP.
"""

import csv
import io
import re
import sqlite3
import threading

import pytest
import requests
import responses
from conftest import CLIENT_SECRET, SECRETS, beside_a_stand_in, held, running_app, sign_in
from test_end_to_end import Browser
from test_google_health import CLIENT_ID, REDIRECT_URI
from test_google_health import sign_in as google_sign_in
from werkzeug.test import Client

import fitbit_legacy
import google_health
import oauth
from fitbit_oauth_app import create_app
from models import BrowserSession, User, db
from settings import Config

PEOPLE = {"fitbit": ("7QW2XR", "9KD3MS"), "google": ("hu-4f1e9c2a7b", "hu-8d03b6e5c1")}
# Alex's name as each stand-in's profile gives it.
ALEX = {"fitbit": "Alex R.", "google": "Alex Rivera"}
STAND_IN_API = {"fitbit": "/sandbox/1/user/-/profile.json", "google": "/sandbox/google/v1/userinfo"}


def csrf(page_text):
    return re.search(r'name="csrf_token" value="([^"]+)"', page_text).group(1)


# --- Download --------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_download_is_what_is_kept_as_a_file_never_a_token_and_asks_nobody(tmp_path, provider):
    alex, sam = PEOPLE[provider]
    with running_app(tmp_path, provider=provider) as (url, _):
        browser, other = Browser(url), Browser(url)
        other.sign_in(user=sam)
        home = browser.sign_in(user=alex)
        assert "Download my data" in home.text
        with db.connection_context():
            user = (
                User.get(User.fitbit_id == alex)
                if provider == "fitbit"
                else User.get(User.health_user_id == alex)
            )
            tokens = held(user)
        calls = count_stand_in_calls(tmp_path, provider)
        answer = browser.get("/my-data")
        assert count_stand_in_calls(tmp_path, provider) == calls  # from the cache alone
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"] == 'attachment; filename="my-data.json"'
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Content-Type"].startswith("application/json")
    export = answer.json()
    assert export["profile"]["name"] == ALEX[provider]
    assert export["granted_scopes"] == user.scope.split()
    assert export["times"]["first_signed_in"] and export["times"]["last_signed_in"]
    steps = export["data"]["steps"]
    assert steps["fetched_at"] and len(steps["rows"]) >= 28
    assert set(steps["rows"][-1]) == {"date", "steps"}
    assert export["answers_kept"] and all(a["fetched_at"] for a in export["answers_kept"])
    for secret in (tokens.access_token, tokens.refresh_token, *SECRETS):
        assert secret not in answer.text
    assert "Sam" not in answer.text  # another user's data, never


def count_stand_in_calls(tmp_path, provider):
    name = "stand-in-google.db" if provider == "google" else "stand-in.db"
    with sqlite3.connect(tmp_path / name) as stand_in:
        return stand_in.execute("SELECT coalesce(sum(count), 0) FROM calls").fetchone()[0]


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_each_kind_of_data_downloads_as_csv_a_line_a_day(tmp_path, provider):
    with running_app(tmp_path, provider=provider) as (url, _):
        browser = Browser(url)
        browser.sign_in(user=PEOPLE[provider][0])
        steps = browser.get("/my-data/steps.csv")
        sleep = browser.get("/my-data/sleep.csv")  # not granted: its header alone
        missing = browser.get("/my-data/weight.csv")
    assert steps.status_code == 200 and steps.headers["Content-Type"].startswith("text/csv")
    assert steps.headers["Content-Disposition"] == 'attachment; filename="my-steps.csv"'
    rows = list(csv.DictReader(io.StringIO(steps.text)))
    assert len(rows) >= 28 and all(re.fullmatch(r"\d{4}-\d\d-\d\d", r["date"]) for r in rows)
    assert all(r["steps"].isdigit() for r in rows)
    [header] = sleep.text.splitlines()
    assert header.startswith("date,minutes_asleep,minutes_in_bed,minutes_deep")
    assert missing.status_code == 404


def test_a_browser_signed_out_gets_no_data(app):
    browser = Client(app)
    for path in ("/my-data", "/my-data/steps.csv", "/my-data/delete"):
        assert browser.get(path).status_code == 403


# --- Delete ----------------------------------------------------------------------------------


def everything_of(values, user_id):
    """[(table, column, value)] of each value in any table of the database that is the
    user's: a reference to their row, or one of `values`. Every table of the schema is
    looked at, so that a table added later is covered too."""
    found = []
    with db.connection_context():
        for table in db.get_tables():
            columns = [column.name for column in db.get_columns(table)]
            references = {
                key.column for key in db.get_foreign_keys(table) if key.dest_table == "users"
            }
            for row in db.execute_sql(f'SELECT * FROM "{table}"').fetchall():  # noqa: S608
                for column, value in zip(columns, row, strict=True):
                    if column in references and value == user_id:
                        found.append((table, column, value))
                    elif table == "users" and column == "id" and value == user_id:
                        found.append((table, column, value))
                    elif isinstance(value, str) and any(v in value for v in values):
                        found.append((table, column, value[:40]))
    return found


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_delete_my_data_leaves_nothing_of_the_user_in_any_table(tmp_path, provider):
    alex, sam = PEOPLE[provider]
    with running_app(tmp_path, provider=provider) as (url, _):
        browser, second_browser, sams = Browser(url), Browser(url), Browser(url)
        sams.sign_in(user=sam)
        second_browser.sign_in(user=alex)
        home = browser.sign_in(user=alex)
        assert "Delete my data" in home.text
        with db.connection_context():
            user = User.get(User.display_name == ALEX[provider])
            tokens, row = (
                held(user),
                {k: getattr(user, k) for k in ("access_token", "refresh_token")},
            )
            sessions = BrowserSession.select().where(BrowserSession.user == user.id)
            traces = [session.trace for session in sessions]
        confirm = browser.get("/my-data/delete")
        assert confirm.status_code == 200
        assert "2 browsers" in confirm.text and ALEX[provider] in confirm.text
        assert "your name and picture" in confirm.text and "your steps" in confirm.text
        refused = browser.http.post(url + "/my-data/delete", data={"csrf_token": "forged"})
        assert refused.status_code == 403
        done = browser.http.post(url + "/my-data/delete", data={"csrf_token": csrf(confirm.text)})
        assert done.status_code == 200 and "Your data is deleted" in done.text
        assert "Hello" not in done.text  # this browser is signed out
        assert "Hello" not in second_browser.get("/").text  # and so is the other one
        assert "Hello, Sam" in sams.get("/").text  # Sam keeps everything
        # The grant is gone at the provider: the tokens no longer work there.
        dead = requests.get(
            url + STAND_IN_API[provider],
            headers={"Authorization": f"Bearer {tokens.access_token}"},
            timeout=10,
        )
        assert dead.status_code == 401
        values = [alex, ALEX[provider], *row.values(), *traces]
        assert everything_of(values, user.id) == []
        if provider == "fitbit":
            with sqlite3.connect(tmp_path / "stand-in.db") as stand_in:
                left = stand_in.execute(
                    "SELECT count(*) FROM subscriptions WHERE user_id = ?", (alex,)
                ).fetchone()[0]
            assert left == 0  # Fitbit's subscriptions deleted
        # Signing in again starts as somebody new.
        again = browser.sign_in(user=alex)
        assert f"Hello, {ALEX[provider]}" in again.text
        with db.connection_context():
            fresh = User.get(User.display_name == ALEX[provider])
            assert fresh.created_at > user.created_at


def deleted_while_unreachable(browser, mock, dialect):
    """Delete my data with the provider's revoke endpoint down: the page it comes back to."""
    mock.upsert(responses.POST, dialect.REVOKE_URL, status=503, json={})
    confirm = browser.get("/my-data/delete").get_data(as_text=True)
    done = browser.post("/my-data/delete", data={"csrf_token": csrf(confirm)})
    assert done.status_code == 302
    with db.connection_context():
        assert User.select().count() == 0  # deleted here all the same
    return browser.get("/").get_data(as_text=True)


def test_delete_when_fitbit_cannot_be_reached_deletes_here_and_says_where_to_revoke(
    browser, fitbit
):
    sign_in(browser, fitbit)
    page = deleted_while_unreachable(browser, fitbit, fitbit_legacy)
    assert "Your data is deleted here, but Fitbit did not confirm" in page
    assert fitbit_legacy.SITE_FOR_REVOKING in page


def test_delete_when_google_cannot_be_reached_deletes_here_and_says_where_to_revoke(
    tmp_path, google
):
    client = oauth.Client(google_health, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    app = create_app(Config(client, f"sqlite:///{tmp_path / 'g.db'}", secret_key=b"t"))
    browser = Client(app)
    google_sign_in(browser, google)
    page = deleted_while_unreachable(browser, google, google_health)
    assert "Your data is deleted here, but Google Health did not confirm" in page
    assert google_health.SITE_FOR_REVOKING in page


def delete_my_data(browser):
    confirm = browser.get("/my-data/delete")
    return browser.http.post(
        browser.base_url + "/my-data/delete", data={"csrf_token": csrf(confirm.text)}, timeout=10
    )


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_a_request_on_its_way_during_a_delete_writes_nothing_of_the_deleted_person(
    tmp_path, provider
):
    """Alex's page, in one browser, waits on the provider's answer while Alex deletes their
    data in another: when the answer comes, neither it nor a step of the trace is written."""
    person = PEOPLE[provider][0]
    with beside_a_stand_in(tmp_path, provider) as (url, stand_in):
        on_its_way, deleting = Browser(url), Browser(url)
        on_its_way.sign_in(user=person)
        deleting.sign_in(user=person)
        with db.connection_context():
            user = User.get()
            traces = [session.trace for session in BrowserSession.select()]
        stand_in.hold("steps")  # the answer made, then held on its way back
        viewed = {}
        view = threading.Thread(target=lambda: viewed.update(page=on_its_way.get("/")))
        view.start()
        assert stand_in.arrived.wait(10)
        assert "Your data is deleted" in delete_my_data(deleting).text
        stand_in.release()
        view.join(30)
        assert viewed["page"].status_code == 200, viewed["page"].text[-400:]
        assert everything_of([person, user.display_name, *traces], user.id) == []


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_whoever_signs_in_after_a_delete_is_never_given_the_deleted_id(tmp_path, provider):
    alex, sam = PEOPLE[provider]
    with running_app(tmp_path, provider=provider) as (url, _):
        Browser(url).sign_in(user=alex)
        browser = Browser(url)
        browser.sign_in(user=sam)
        with db.connection_context():
            sams = User.select().order_by(User.id.desc()).get().id  # the newest row
        assert "Your data is deleted" in delete_my_data(browser).text
        browser.sign_in(user=sam)
        with db.connection_context():
            assert User.select().order_by(User.id.desc()).get().id > sams


def database_files(tmp_path):
    """Every byte of the app's SQLite database as it lies on disk: the file, its write-ahead
    log and the log's index."""
    files = [p for p in tmp_path.iterdir() if p.name.startswith("live.db") and p.suffix != ".key"]
    return b"".join(path.read_bytes() for path in files)


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_what_a_delete_deleted_is_not_left_in_the_database_files(tmp_path, provider):
    """SQLite overwrites what a deleted row held (secure_delete), but its write-ahead log
    holds the pages as they were until a checkpoint: the Delete empties it."""
    alex, sam = PEOPLE[provider]
    with running_app(tmp_path, provider=provider) as (url, _):
        Browser(url).sign_in(user=sam)
        browser = Browser(url)
        browser.sign_in(user=alex)
        with db.connection_context():
            user = User.get(User.display_name == ALEX[provider])
            sealed = [user.access_token, user.refresh_token]
            sealed += [answer.body for answer in user.cached_answers().values()]
            # 60 characters of each, past "v1:<key id>:": a long value is cut across pages.
            sealed = [value[12:72] for value in sealed]
        found = database_files(tmp_path)
        assert alex.encode() in found and all(value.encode() in found for value in sealed)
        assert "Your data is deleted" in delete_my_data(browser).text
        found = database_files(tmp_path)
        left = [value[:24] for value in [alex, ALEX[provider], *sealed] if value.encode() in found]
        assert left == []
        assert sam.encode() in found  # Sam's row is still there to be read
