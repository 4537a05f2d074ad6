"""The signed-in page kept between views (kept_pages.py): served again only while
everything it shows still holds, in both dialects, against the stand-ins on real sockets.
That it holds across processes too is in test_processes.py
(test_a_notification_to_one_process_costs_one_fetch_across_both)."""

import json
import re

import pytest
import requests
from conftest import beside_a_stand_in
from freezegun import freeze_time
from test_app import LONG_LABEL_HOST
from test_day import PEOPLE, panel
from test_end_to_end import Browser

import unchanged_reads
from models import BrowserSession, db

PROVIDERS = ["fitbit", "google"]
AN_HOUR = {"FITBIT_CACHE_SECONDS": "3600"}
ELSEWHERE = "A message left by another writer"


def steps_today(text):
    return re.search(r"<strong>([0-9,]+)</strong> steps today", text).group(1)


def last_day(text):
    return re.findall(r"<title>(\w+ \d+ \w+): [\d,]+ steps</title>", panel(text, "steps"))[-1]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_view_with_nothing_changed_asks_nobody_and_a_webhook_change_shows_at_once(
    tmp_path, provider
):
    alex = PEOPLE[provider][0]
    with beside_a_stand_in(tmp_path, provider, webhooks=True, **AN_HOUR) as (url, stand_in):
        browser = Browser(url)
        browser.sign_in(user=alex)
        first = browser.get("/").text
        asked = len(stand_in.asked)
        assert browser.get("/").text == first
        assert len(stand_in.asked) == asked
        stand_in.walk(alex, 2500, retry_in_background=False)
        after = browser.get("/").text
    assert steps_today(after) != steps_today(first)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_kept_page_goes_when_its_answers_age(tmp_path, provider):
    alex = PEOPLE[provider][0]
    with (
        freeze_time("2026-12-07 18:00:00") as clock,
        beside_a_stand_in(tmp_path, provider, **AN_HOUR) as (url, stand_in),
    ):
        browser = Browser(url)
        before = steps_today(browser.sign_in(user=alex).text)
        asked = len(stand_in.asked)
        clock.move_to("2026-12-07 18:59:00")  # the answers are 59 minutes old: kept
        assert steps_today(browser.get("/").text) == before
        assert len(stand_in.asked) == asked
        clock.move_to("2026-12-07 19:01:00")  # past the hour: asked again, and more steps
        after = steps_today(browser.get("/").text)
        assert len(stand_in.asked) > asked
    assert int(after.replace(",", "")) > int(before.replace(",", ""))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_kept_page_goes_at_the_users_own_midnight(tmp_path, provider):
    """Sam lives in Auckland: 10:59 UTC is 23:59 there, 11:01 is the next day. The answers
    are kept a day long, so only the day's end can make the page new."""
    sam = PEOPLE[provider][1]
    settings = {"FITBIT_CACHE_SECONDS": "86400"}
    with (
        freeze_time("2026-12-07 10:59:00") as clock,
        beside_a_stand_in(tmp_path, provider, **settings) as (url, _),
    ):
        browser = Browser(url)
        browser.sign_in(user=sam)
        assert last_day(browser.get("/").text) == "Mon 7 Dec"
        clock.move_to("2026-12-07 11:01:00")
        assert last_day(browser.get("/").text) == "Tue 8 Dec"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_browser_is_kept_its_own_page_and_sees_what_another_did(tmp_path, provider):
    alex = PEOPLE[provider][0]
    with beside_a_stand_in(tmp_path, provider, **AN_HOUR) as (url, _):
        laptop, phone = Browser(url), Browser(url)
        assert "You are signed in" in laptop.sign_in(user=alex).text
        assert "You are signed in" not in laptop.get("/").text  # shown once, never kept
        phone.sign_in(user=alex)
        tokens = [
            re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/").text).group(1)
            for browser in (laptop, phone)
        ]
        assert tokens[0] != tokens[1]  # each page holds its own browser's form token
        assert "This app no longer has access" not in phone.get("/").text
        laptop.submit("/auth/revoke")  # Disconnect, on the laptop
        assert "This app no longer has access" in phone.get("/").text
        assert "You are signed out" in phone.submit("/logout").text
        assert "Hello, " not in phone.get("/").text
        assert "Hello, " in laptop.get("/").text  # signed in still, though not connected


def test_with_no_cache_time_every_view_asks_again(tmp_path):
    alex = PEOPLE["fitbit"][0]
    with beside_a_stand_in(tmp_path, "fitbit") as (url, stand_in):  # FITBIT_CACHE_SECONDS=0
        browser = Browser(url)
        browser.sign_in(user=alex)
        asked = len(stand_in.asked)
        browser.get("/")
        assert len(stand_in.asked) > asked


def headers_of(response):
    return {name: value for name, value in response.headers.items() if name != "Date"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_kept_view_asks_sqlite_only_whether_the_database_changed(tmp_path, provider, monkeypatch):
    """Served at the door (KeptPages.at_the_door): the session and the stamps come from
    what the connection read last, while SQLite's change counter, asked once a view, stands
    still; the page and its headers are as they were drawn. A write from another connection
    is read at the next view."""
    statements = []
    made = unchanged_reads.Connection.__init__

    def traced(connection, *args, **kwargs):
        made(connection, *args, **kwargs)
        connection.set_trace_callback(statements.append)

    monkeypatch.setattr(unchanged_reads.Connection, "__init__", traced)
    with beside_a_stand_in(tmp_path, provider, **AN_HOUR) as (url, stand_in):
        browser = Browser(url)
        browser.sign_in(user=PEOPLE[provider][0])
        drawn = browser.get("/")
        statements.clear()
        kept = [browser.get("/") for _ in range(5)]
        assert statements == ["PRAGMA data_version"] * 5  # once a view, for both reads
        assert all(page.text == drawn.text for page in kept)
        assert all(headers_of(page) == headers_of(drawn) for page in kept)
        with db.connection_context():
            BrowserSession.update(flashes=json.dumps([{"text": ELSEWHERE, "link": None}])).execute()
        assert ELSEWHERE in browser.get("/").text


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_kept_page_is_not_served_to_a_host_no_machine_can_have(tmp_path, provider):
    """A page is kept for the address it was drawn for: sent to a Host the URL map refuses,
    the same cookie gets the 400 that every route gives (docs/security.md item 55)."""
    with beside_a_stand_in(tmp_path, provider, **AN_HOUR) as (url, _):
        browser = Browser(url)
        browser.sign_in(user=PEOPLE[provider][0])
        drawn = browser.get("/").text
        assert browser.get("/").text == drawn
        # Sent by hand: requests matches its cookies to the Host header, and this one has none.
        cookie = f"session={browser.http.cookies['session']}"
        headers = {"Host": LONG_LABEL_HOST, "Cookie": cookie}
        refused = requests.get(url + "/", headers=headers, timeout=10)
        assert refused.status_code == 400
        assert "Hello, " not in refused.text
        assert browser.get("/").text == drawn


def test_a_view_without_a_session_takes_no_connection_though_pages_are_kept(tmp_path, monkeypatch):
    """The signed-out page asks the database nothing, and takes no connection from the pool:
    neither with no cookie at all nor with other cookies only, while another browser's
    page is kept in this process."""
    with beside_a_stand_in(tmp_path, "fitbit", **AN_HOUR) as (url, _):
        browser = Browser(url)
        browser.sign_in(user=PEOPLE["fitbit"][0])
        assert browser.get("/").text == browser.get("/").text  # kept
        connect, taken = db.obj.connect, []
        monkeypatch.setattr(db.obj, "connect", lambda *args: taken.append(1) or connect(*args))
        visitors = [{}, {"sessionid": "another-apps"}]
        pages = [requests.get(url + "/", cookies=cookies, timeout=10) for cookies in visitors]
        assert all('href="/auth"' in page.text for page in pages)
        assert taken == []
